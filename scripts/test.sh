#!/usr/bin/env bash
# Runs wgcnn's whole test suite on a fresh Debian or Ubuntu machine: installs the software
# Vulkan and OpenGL drivers when they are missing, then runs every test, including the GPU
# tests on the Vulkan and the GL adapter.
set -euo pipefail
cd "$(dirname "$0")/.."

bash scripts/install-deps.sh
cargo test --all-targets
cargo test --doc
