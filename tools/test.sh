#!/usr/bin/env bash
# The test command (README, `.ci/run`): installs what the tests need, builds, runs every
# suite and ends with a plain "N passed, N failed, N skipped" line.
set -uo pipefail
cd "$(dirname "$0")/.."
deno=./node_modules/.bin/deno
[ -x "$deno" ] || { echo "tools/test.sh: run 'npm ci' first (no node_modules/.bin/deno)" >&2; exit 1; }

# The ONNX backend node tests come from Debian's libonnx-testdata; the conformance suite
# skips with a printed reason where it cannot be installed.
if [ ! -d /usr/share/libonnx-testdata/data/node ]; then
  if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null; then
    echo "test: installing libonnx-testdata (ONNX backend node tests)"
    (apt-get update -q && DEBIAN_FRONTEND=noninteractive apt-get install -y -q libonnx-testdata) >/tmp/kiln-apt.log 2>&1 ||
      echo "test: could not install libonnx-testdata (see /tmp/kiln-apt.log); conformance will be skipped"
  else
    echo "test: libonnx-testdata is not installed and this user cannot install it; conformance will be skipped"
  fi
fi

"$deno" task build || { echo "0 passed, 1 failed"; exit 1; }
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
