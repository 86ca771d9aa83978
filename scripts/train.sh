#!/usr/bin/env bash
# The main job on a fresh Debian or Ubuntu machine: installs the software Vulkan driver when
# there is no Vulkan driver, and the Fashion-MNIST data set (package dataset-fashion-mnist),
# builds wgcnn in release mode, and trains the default model on the GPU path. Extra arguments
# go to `wgcnn train`, such as `--epochs 1` or `--device cpu`.
set -euo pipefail
cd "$(dirname "$0")/.."

bash scripts/install-deps.sh --data
cargo build --release --locked --quiet
exec ./target/release/wgcnn train "$@"
