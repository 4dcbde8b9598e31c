#!/usr/bin/env bash
# The test command (README, `.ci/run`): installs what the tests need, builds, runs every
# suite and ends with a plain "N passed, N failed, N skipped" line.
set -uo pipefail
cd "$(dirname "$0")/.."
deno=./node_modules/.bin/deno
[ -x "$deno" ] || { echo "tools/test.sh: run 'npm ci' first (no node_modules/.bin/deno)" >&2; exit 1; }

# Debian's packages the tests use: libonnx-testdata (the ONNX backend node tests; the conformance
# suites skip with a printed reason without it), HIP for AMD (hipcc, libamdhip64-dev,
# rocm-device-libs: the AMD build of hip/; skipped with a message without it) and chromium (the
# browser example, driven headless; skipped with a message without it).
need=()
[ -d /usr/share/libonnx-testdata/data/node ] || need+=(libonnx-testdata)
command -v hipcc >/dev/null || need+=(hipcc libamdhip64-dev rocm-device-libs)
command -v chromium >/dev/null || need+=(chromium)
if [ ${#need[@]} -gt 0 ]; then
  if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null; then
    echo "test: installing ${need[*]}"
    (apt-get update -q && DEBIAN_FRONTEND=noninteractive apt-get install -y -q "${need[@]}") >/tmp/kiln-apt.log 2>&1 ||
      echo "test: could not install ${need[*]} (see /tmp/kiln-apt.log); what needs them will be skipped"
  else
    echo "test: ${need[*]} not installed and this user cannot install them; what needs them will be skipped"
  fi
fi

"$deno" task build || { echo "0 passed, 1 failed"; exit 1; }
# kiln's HIP library: NVIDIA (nvcc), AMD (hipcc) and the CPU emulator the gpu tests run on in CI
"$deno" task build:hip || { echo "0 passed, 1 failed"; exit 1; }
log=$(mktemp)
"$deno" test -A --parallel tests/ "$@" 2>&1 | tee "$log"
rc=${PIPESTATUS[0]}
# Deno's summary: "ok | 12 passed (30 steps) | 0 failed | 2 ignored (1 step) (3s)"
summary=$(sed 's/\x1b\[[0-9;]*m//g' "$log" | grep -E '^(ok|FAILED) \| [0-9]+ passed' | tail -n 1)
passed=$(sed -nE 's/.*\| ([0-9]+) passed.*/\1/p' <<<"$summary")
failed=$(sed -nE 's/.*\| ([0-9]+) failed.*/\1/p' <<<"$summary")
ignored=$(sed -nE 's/.*\| ([0-9]+) ignored.*/\1/p' <<<"$summary")
rm -f "$log"
if [ -z "$summary" ]; then
  echo "0 passed, 1 failed"
  exit 1
fi
echo "${passed:-0} passed, ${failed:-0} failed, ${ignored:-0} skipped"
[ "$rc" = 0 ] && [ "${failed:-0}" = 0 ]
