#!/usr/bin/env bash
# Installs the CUDA 13 build of onnxruntime-node 1.29.0's CUDA execution provider, which ships on
# the npm registry inside com.github.asus4.onnxruntime.linux-x64-gpu@0.4.9, next to
# onnxruntime-node's own libonnxruntime.so.1. The provider checks that the core library has the
# same version, so onnxruntime-node stays pinned to 1.29.0.
set -euo pipefail
cd "$(dirname "$0")/.."
target=node_modules/onnxruntime-node/bin/napi-v6/linux/x64
[ -f "$target/libonnxruntime.so.1" ] || { echo "run npm install first" >&2; exit 1; }
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
(cd "$work" && npm pack --silent com.github.asus4.onnxruntime.linux-x64-gpu@0.4.9 >/dev/null && tar -xzf ./*.tgz)
cp "$work"/package/Plugins/Linux/x64/libonnxruntime_providers_{cuda,shared}.so "$target/"
echo "CUDA provider installed in $target"
