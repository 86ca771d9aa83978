#!/usr/bin/env bash
# Runs wgcnn's whole test suite on a fresh Debian or Ubuntu machine: installs the software
# Vulkan and OpenGL drivers when they are missing, then runs every test, including the GPU
# tests on the Vulkan and the GL adapter.
set -euo pipefail
cd "$(dirname "$0")/.."
# Mesa's drivers print an error when XDG_RUNTIME_DIR is unset, as under sudo or in containers.
# A private folder for this run keeps that line out of wgcnn's own messages.
if [ -z "${XDG_RUNTIME_DIR:-}" ]; then
    XDG_RUNTIME_DIR="$(mktemp -d)"
    export XDG_RUNTIME_DIR
    trap 'rmdir "$XDG_RUNTIME_DIR" 2>/dev/null || true' EXIT
fi

bash scripts/install-deps.sh
cargo test --all-targets
cargo test --doc
