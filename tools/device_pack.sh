#!/usr/bin/env bash
# Packs what a GPU test run needs on the lent GPU machine (no network, no npm, no Deno there) into
# .device/ (git-ignored): Deno (../shared/device/pack.sh), and .device/payload.tar.xz with the
# built WASM core and NVIDIA library, the few node_modules packages the tests import (protobufjs,
# onnxruntime-node for the oracle), the ONNX node tests and the shared models. On the machine:
#   . .device/env.sh && bash .device/unpack.sh && KILN_TEST_GPU=device deno test -A --no-check tests/gpu_*_test.ts
# Build first: deno task build && deno task build:hip (nvcc).
set -euo pipefail
root=$(git rev-parse --show-toplevel)
cd "$root"
shared="$root/../shared"
[ -f build/kiln_wasm.ts ] || { echo "device_pack: run 'deno task build' first" >&2; exit 1; }
[ -f build/hip/libkiln_hip.so ] || { echo "device_pack: run 'deno task build:hip' (nvcc) first" >&2; exit 1; }
sh "$shared/device/pack.sh"
ort=node_modules/onnxruntime-node
paths=(
  build/kiln_wasm.ts build/hip/libkiln_hip.so
  node_modules/protobufjs node_modules/@protobufjs node_modules/long node_modules/onnxruntime-common
  "$ort/package.json" "$ort/dist" "$ort/lib" "$ort/bin/napi-v6/linux/x64"
)
stage=$(mktemp -d)
trap 'rm -rf "$stage"' EXIT
mkdir -p "$stage/.device/models" "$stage/.device/onnx-testdata"
cp -a "$shared"/models/*.onnx "$stage/.device/models/" 2>/dev/null || echo "device_pack: no shared models"
if [ -d /usr/share/libonnx-testdata/data/node ]; then
  cp -a /usr/share/libonnx-testdata/data/node "$stage/.device/onnx-testdata/"
fi
tar -cf "$stage/payload.tar" "${paths[@]}"
tar -C "$stage" -rf "$stage/payload.tar" .device/models .device/onnx-testdata
xz -T0 -6 -c "$stage/payload.tar" > .device/payload.tar.xz
cat > .device/unpack.sh <<'SH'
# on the GPU machine, after `. .device/env.sh`: restores the payload in place; then
#   export KILN_SHARED_MODELS=$PWD/.device/models KILN_ONNX_NODE_TESTS=$PWD/.device/onnx-testdata/node
tar -xJf .device/payload.tar.xz || { echo "unpack: tar failed" >&2; exit 1; }
echo "unpack: node_modules: $(ls node_modules | tr '\n' ' '); $(ls .device/models | wc -l) shared models;" \
  "$(ls .device/onnx-testdata/node 2>/dev/null | wc -l) node tests"
SH
du -sh .device | awk '{print "device_pack: .device is " $1 " (carry .device; the whole tree must stay under 64 MiB)"}'
