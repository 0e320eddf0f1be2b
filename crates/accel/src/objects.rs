//! The BPF objects, built by `cargo xtask build-bpf` from `crates/accel/bpf/*.bpf.c` and
//! committed, embedded here so the binary carries its programs and a plain `cargo build` needs no
//! clang. aya wants them 8-byte aligned, hence `include_bytes_aligned!`.

/// HTTP observer socket filter (bpf/http_filter.bpf.c).
pub static HTTP_FILTER: &[u8] = aya::include_bytes_aligned!("../bpf/http_filter.bpf.o");

/// XDP CPU balancer (bpf/cpu_balance.bpf.c).
pub static CPU_BALANCE: &[u8] = aya::include_bytes_aligned!("../bpf/cpu_balance.bpf.o");

/// Same-host TCP bypass, sock_ops + sk_msg (bpf/sockmap.bpf.c).
pub static SOCKMAP: &[u8] = aya::include_bytes_aligned!("../bpf/sockmap.bpf.o");
/// AF_XDP steering (bpf/xsk_steer.bpf.c).
pub static XSK_STEER: &[u8] = aya::include_bytes_aligned!("../bpf/xsk_steer.bpf.o");
/// Random loss on a test host's interface, for kernels without netem (bpf/test_loss.bpf.c).
pub static TEST_LOSS: &[u8] = aya::include_bytes_aligned!("../bpf/test_loss.bpf.o");

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

/// A map of a loaded object, by name; a missing one is a build mistake.
pub(crate) fn map_mut<'a>(
    ebpf: &'a mut aya::Ebpf,
    object: &str,
    name: &str,
) -> Result<&'a mut aya::maps::Map, crate::AccelError> {
    ebpf.map_mut(name).ok_or_else(|| crate::AccelError::Bpf {
        context: object.to_string(),
        detail: format!("no map {name}"),
    })
}

/// A map an attachment pinned, opened by a later process.
pub(crate) fn open_pinned(
    a: &crate::pin::Attachment,
    name: &str,
) -> Result<aya::maps::Map, crate::AccelError> {
    let p = a.path(name);
    let data = aya::maps::MapData::from_pin(&p)
        .map_err(|e| crate::AccelError::bpf(format!("opening {}", p.display()), e))?;
    aya::maps::Map::from_map_data(data)
        .map_err(|e| crate::AccelError::bpf(format!("opening {}", p.display()), e))
}

/// The one-line error for a program or map the kernel refused.
pub(crate) fn load_err(
    program: &str,
    kind: &str,
    e: impl std::error::Error + 'static,
) -> crate::AccelError {
    // EPERM for a privileged process means the kernel forbids the program type (as it does
    // fentry on some kernels), not missing capabilities.
    if crate::error::errno_of(&e) == Some(libc::EPERM) && !crate::sys::is_privileged() {
        return crate::AccelError::NotPrivileged {
            what: format!("loading {program}"),
        };
    }
    crate::AccelError::ProgramUnsupported {
        program: program.to_string(),
        kind: kind.to_string(),
        detail: crate::error::chain(&e),
    }
}

/// Attaches a loaded XDP program to `ifindex` in `mode` (Auto: native, falling back to generic
/// with a warning) and returns the link with the mode it got, "driver" or "generic".
pub(crate) fn attach_xdp(
    xdp: &mut aya::programs::Xdp,
    ifindex: u32,
    iface: &str,
    mode: crate::cpu_balance::AttachMode,
    warnings: &mut Vec<String>,
) -> Result<(aya::programs::links::FdLink, &'static str), crate::AccelError> {
    use crate::AccelError;
    use crate::cpu_balance::AttachMode;
    use aya::programs::XdpMode;
    let try_mode = |xdp: &mut aya::programs::Xdp, mode: XdpMode| {
        let id =
            xdp.attach_to_if_index(ifindex, mode).map_err(|e| {
                match crate::error::errno_of(&e) {
                    Some(libc::EBUSY | libc::EEXIST) => AccelError::ForeignProgramAttached {
                        iface: iface.to_string(),
                    },
                    Some(libc::EPERM) => AccelError::NotPrivileged {
                        what: "attaching XDP".into(),
                    },
                    _ => AccelError::bpf(format!("attaching XDP to {iface}"), e),
                }
            })?;
        let link = xdp
            .take_link(id)
            .map_err(|e| AccelError::bpf("taking the XDP link", e))?;
        aya::programs::links::FdLink::try_from(link).map_err(|e| {
            AccelError::bpf(
                "the kernel gave no bpf_link for XDP (needs Linux >= 5.9)",
                e,
            )
        })
    };
    match mode {
        AttachMode::Native => Ok((try_mode(xdp, XdpMode::Driver)?, "driver")),
        AttachMode::Generic => Ok((try_mode(xdp, XdpMode::Skb)?, "generic")),
        AttachMode::Auto => match try_mode(xdp, XdpMode::Driver) {
            Ok(l) => Ok((l, "driver")),
            Err(AccelError::Bpf { detail, .. }) => {
                warnings.push(format!(
                    "{iface}: native XDP unsupported ({detail}); using generic mode, which is slower"
                ));
                Ok((try_mode(xdp, XdpMode::Skb)?, "generic"))
            }
            Err(e) => Err(e),
        },
    }
}
