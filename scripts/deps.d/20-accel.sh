# The eBPF accelerators (crates/accel): clang-19/llvm-19 and libbpf's headers rebuild the committed
# BPF objects for the object check, bpftool regenerates vmlinux.h, iproute2, util-linux (nsenter)
# and iputils-ping build and probe the test hosts (network namespaces, veth pairs), curl is one of
# the HTTP observer's and the AF_XDP fast path's clients, python3 runs the peers of the sockmap
# tests, ethtool turns off the peer veth's checksum offload for the fast path's tests, wrk loads
# both paths in the `bench afxdp` test.
need_debs clang-19 llvm-19 libbpf-dev bpftool iproute2 util-linux curl iputils-ping python3 ethtool wrk
# As root (and always in CI) the privileged accel tests must run: with this set, a test that
# cannot run (no root, no BTF, a missing program type) fails instead of skipping.
if [ "$(id -u)" = 0 ] || [ -n "${CI:-}" ]; then
  export DISGRAFS_REQUIRE_PRIVILEGED="${DISGRAFS_REQUIRE_PRIVILEGED:-1}"
fi
