#!/usr/bin/env bash
# The main job on a fresh Debian or Ubuntu machine: installs the software Vulkan driver when
# there is no Vulkan driver, and the Fashion-MNIST data set (package dataset-fashion-mnist),
# builds wgcnn in release mode, and trains the default model on the GPU path. Extra arguments
# go to `wgcnn train`, such as `--epochs 1` or `--device cpu`.
set -euo pipefail
cd "$(dirname "$0")/.."
# Mesa's drivers print an error when XDG_RUNTIME_DIR is unset, as under sudo or in containers.
# A private folder for this run keeps that line out of wgcnn's own messages.
if [ -z "${XDG_RUNTIME_DIR:-}" ]; then
    XDG_RUNTIME_DIR="$(mktemp -d)"
    export XDG_RUNTIME_DIR
    trap 'rmdir "$XDG_RUNTIME_DIR" 2>/dev/null || true' EXIT
fi

bash scripts/install-deps.sh --data
cargo build --release --locked --quiet
./target/release/wgcnn train "$@"
