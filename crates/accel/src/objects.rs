//! The BPF objects, built by `cargo xtask build-bpf` from `crates/accel/bpf/*.bpf.c` and
//! committed, embedded here so the binary carries its programs and a plain `cargo build` needs no
//! clang. aya wants them 8-byte aligned, hence `include_bytes_aligned!`.

/// HTTP observer socket filter (bpf/http_filter.bpf.c).
pub static HTTP_FILTER: &[u8] = aya::include_bytes_aligned!("../bpf/http_filter.bpf.o");

/// XDP CPU balancer (bpf/cpu_balance.bpf.c).
pub static CPU_BALANCE: &[u8] = aya::include_bytes_aligned!("../bpf/cpu_balance.bpf.o");
