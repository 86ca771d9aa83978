#!/usr/bin/env bash
# Installs what wgcnn's tests and main job need on Debian or Ubuntu, skipping what is there:
# a Vulkan loader and driver (Mesa's lavapipe when there is no GPU driver), EGL and Mesa's
# OpenGL driver for wgpu's GL backend, and with --data the Fashion-MNIST data set.
set -euo pipefail

packages=(libvulkan1 libegl1 libegl-mesa0 libgl1-mesa-dri)
# A Vulkan driver is present when the loader finds an ICD manifest.
if ! ls /usr/share/vulkan/icd.d/*.json /etc/vulkan/icd.d/*.json >/dev/null 2>&1; then
  packages+=(mesa-vulkan-drivers)
fi
if [ "${1:-}" = "--data" ]; then
  packages+=(dataset-fashion-mnist)
fi

missing=()
for package in "${packages[@]}"; do
  dpkg-query -W -f='${Status}' "$package" 2>/dev/null | grep -q "ok installed" || missing+=("$package")
done
if [ "${#missing[@]}" -eq 0 ]; then
  exit 0
fi

sudo=""
if [ "$(id -u)" -ne 0 ]; then
  sudo="sudo"
fi
echo "installing: ${missing[*]}" >&2
$sudo apt-get update -qq
DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq "${missing[@]}" >/dev/null
