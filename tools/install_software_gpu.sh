#!/usr/bin/env bash
# Makes sure this machine has a Vulkan device for the wgpu test suite: when no Vulkan driver is
# installed, installs Mesa's software one (lavapipe, Debian/Ubuntu package mesa-vulkan-drivers),
# which runs Burn's wgpu backend on the CPU, f32 only. Idempotent and non-interactive; a machine
# with a Vulkan driver (a real GPU, or lavapipe already) is left as it is.
set -euo pipefail

have_vulkan() {
  ldconfig -p 2>/dev/null | grep -q 'libvulkan\.so\.1' &&
    compgen -G '/usr/share/vulkan/icd.d/*.json' >/dev/null
}

if have_vulkan; then
  exit 0
fi
command -v apt-get >/dev/null || {
  echo "install_software_gpu: no Vulkan driver and no apt-get: install Mesa's Vulkan drivers (lavapipe) by hand" >&2
  exit 1
}
SUDO=()
if [[ "$(id -u)" -ne 0 ]]; then SUDO=(sudo -n); fi
echo "install_software_gpu: installing mesa-vulkan-drivers (software Vulkan: lavapipe)" >&2
"${SUDO[@]}" env DEBIAN_FRONTEND=noninteractive apt-get update -qq
"${SUDO[@]}" env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends \
  mesa-vulkan-drivers libvulkan1 >/dev/null
have_vulkan || { echo "install_software_gpu: still no Vulkan driver after installing mesa-vulkan-drivers" >&2; exit 1; }
