#!/usr/bin/env bash
# The test command (README, and CI through .ci/run): installs a software Vulkan GPU when the
# machine has no Vulkan driver (tools/install_software_gpu.sh) and makes the Python venv of the
# interop tests when it is missing (tools/setup_venv.sh: transformers and PEFT must load what
# safeaware writes), then runs every test in release,
# with the wgpu and cuda backends built in: the CPU suites, the wgpu suite (parity, training and
# evaluation against the CPU on the Vulkan device) and the missing-driver/adapter checks. The NCCL
# build (`--features cuda,nccl`) is compile-checked first.
# Extra arguments go to `cargo test` (e.g. a test name filter).
set -euo pipefail
cd "$(dirname "$0")/.."
tools/install_software_gpu.sh
tools/setup_venv.sh
# The NCCL build (Burn's `distributed` feature, which leaves out the CPU backend) is compiled, not
# run: its path needs CUDA GPUs and libnccl.
cargo check --release --no-default-features --features cuda,nccl
# `failpoints` compiles in the fault-injection points the crash tests set (FAILPOINTS); release
# builds leave it off.
exec cargo test --release --workspace --features wgpu,cuda,failpoints "$@"
