#!/usr/bin/env bash
# The committed BPF objects must be exactly what clang-19 builds from the committed sources.
set -euo pipefail
cd "$(dirname "$0")/../.."
cargo xtask check-bpf
