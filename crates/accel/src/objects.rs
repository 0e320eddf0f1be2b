//! The BPF objects, built by `cargo xtask build-bpf` from `crates/accel/bpf/*.bpf.c` and
//! committed, embedded here so the binary carries its programs and a plain `cargo build` needs no
//! clang. aya wants them 8-byte aligned, hence `include_bytes_aligned!`.

/// HTTP observer socket filter (bpf/http_filter.bpf.c).
pub static HTTP_FILTER: &[u8] = aya::include_bytes_aligned!("../bpf/http_filter.bpf.o");

/// XDP CPU balancer (bpf/cpu_balance.bpf.c).
pub static CPU_BALANCE: &[u8] = aya::include_bytes_aligned!("../bpf/cpu_balance.bpf.o");

/// AF_XDP steering (bpf/xsk_steer.bpf.c).
pub static XSK_STEER: &[u8] = aya::include_bytes_aligned!("../bpf/xsk_steer.bpf.o");

/// A program of a loaded object, by name and type; a missing one is a build mistake, reported as
/// one line like every other failure.
pub(crate) fn program_mut<'a, T>(
    ebpf: &'a mut aya::Ebpf,
    object: &str,
    name: &str,
) -> Result<&'a mut T, crate::AccelError>
where
    &'a mut T: TryFrom<&'a mut aya::programs::Program>,
{
    ebpf.program_mut(name)
        .and_then(|p| p.try_into().ok())
        .ok_or_else(|| crate::AccelError::Bpf {
            context: object.to_string(),
            detail: format!("no program {name} of the expected type"),
        })
}
