//! The bpffs layout under [`ROOT`] that lets a new process find what an earlier one attached.
//!
//! ```text
//! /sys/fs/bpf/disgrafs/<accelerator>/<netns>/<iface>/<object>
//! ```
//! `<netns>` is the name given with `--netns`, or [`CURRENT_NETNS`] for the namespace of the
//! process that attached. Links are pinned, so an attachment outlives its process; removing the
//! pins (`accel detach`) releases the links and the kernel detaches the programs. Regular files
//! cannot live in bpffs, so what a later process must know (the XDP mode, for instance) is carried
//! by the pin names themselves.

use std::{
    ffi::CString,
    fs, io,
    path::{Path, PathBuf},
};

use crate::AccelError;

/// Where bpffs is mounted.
pub const BPFFS: &str = "/sys/fs/bpf";
/// disgrafs' own subtree of bpffs: nothing outside it is ever touched.
pub const ROOT: &str = "/sys/fs/bpf/disgrafs";
/// Directory name standing for "the namespace the attaching process ran in" (no `--netns`).
/// A leading '@' keeps it apart from any name `ip netns add` would be given in practice.
pub const CURRENT_NETNS: &str = "@current";
/// The `<netns>` level of accelerators attached to a cgroup rather than an interface (their
/// programs see every namespace); the `<iface>` level is then the cgroup's encoded path.
pub const CGROUP_SCOPE: &str = "@cgroup";
/// Marker left when disgrafs mounted bpffs itself, so `detach` can unmount it and restore the
/// machine as it was.
const MOUNT_MARKER: &str = "/run/disgrafs/bpffs-mounted-by-disgrafs";
const BPF_FS_MAGIC: i64 = 0xcafe4a11;

/// The accelerators that pin state. Their names are the directory names under [`ROOT`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum Accelerator {
    CpuBalance,
    Sockmap,
    Afxdp,
}

impl Accelerator {
    pub const ALL: [Accelerator; 3] = [
        Accelerator::CpuBalance,
        Accelerator::Sockmap,
        Accelerator::Afxdp,
    ];

    pub fn dir_name(self) -> &'static str {
        match self {
            Accelerator::CpuBalance => "cpu-balance",
            Accelerator::Sockmap => "sockmap",
            Accelerator::Afxdp => "afxdp",
        }
    }
}

/// One accelerator attached to one interface: the directory holding its pins.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Attachment {
    pub accelerator: Accelerator,
    /// `None` for [`CURRENT_NETNS`].
    pub netns: Option<String>,
    pub iface: String,
    pub dir: PathBuf,
}

impl Attachment {
    pub fn new(
        accelerator: Accelerator,
        netns: Option<&str>,
        iface: &str,
    ) -> Result<Self, AccelError> {
        validate_component("interface name", iface)?;
        if let Some(ns) = netns {
            validate_component("network namespace name", ns)?;
        }
        let dir = Path::new(ROOT)
            .join(accelerator.dir_name())
            .join(netns.unwrap_or(CURRENT_NETNS))
            .join(iface);
        Ok(Attachment {
            accelerator,
            netns: netns.map(str::to_string),
            iface: iface.to_string(),
            dir,
        })
    }

    pub fn path(&self, object: &str) -> PathBuf {
        self.dir.join(object)
    }

    /// True when the accelerator is attached here: its directory holds pinned links and every
    /// one of them is still attached to something. A directory left by a process killed between
    /// pinning its maps and its link, or whose interface or namespace has gone since, is stale:
    /// it is removed (with a warning), so the caller attaches afresh instead of changing a
    /// balancer that balances nothing.
    pub fn exists(&self) -> bool {
        if !self.dir.is_dir() {
            return false;
        }
        if self.is_live() {
            return true;
        }
        log::warn!(
            "{}: stale attachment (no live link); removing it",
            self.dir.display()
        );
        remove_attachment(self).ok();
        false
    }

    /// Whether the directory holds at least one pinned link and all of them are alive.
    pub fn is_live(&self) -> bool {
        let links: Vec<String> = pins(&self.dir)
            .into_iter()
            .filter(|n| n.starts_with("link"))
            .collect();
        !links.is_empty() && links.iter().all(|n| link_alive(&self.path(n)))
    }

    /// Human label for the namespace.
    pub fn netns_label(&self) -> &str {
        self.netns.as_deref().unwrap_or(CURRENT_NETNS)
    }
}

/// Whether the link pinned at `path` is still attached. The kernel keeps a link whose target
/// went away (an interface deleted with its namespace, a cgroup removed) but clears its target
/// in the link's info: the first word of the type-specific part (`ifindex` of an XDP or TCX
/// link, `cgroup_id` of a cgroup link) is then 0.
fn link_alive(path: &Path) -> bool {
    use std::os::fd::{FromRawFd, OwnedFd};
    const BPF_OBJ_GET: libc::c_long = 7;
    const BPF_OBJ_GET_INFO_BY_FD: libc::c_long = 15;
    #[repr(C)]
    struct ObjGet {
        pathname: u64,
        bpf_fd: u32,
        file_flags: u32,
    }
    #[repr(C)]
    struct InfoByFd {
        bpf_fd: u32,
        info_len: u32,
        info: u64,
    }
    let Ok(c) = CString::new(path.as_os_str().as_encoded_bytes()) else {
        return false;
    };
    let get = ObjGet {
        pathname: c.as_ptr() as u64,
        bpf_fd: 0,
        file_flags: 0,
    };
    // SAFETY: `get` is a valid prefix of union bpf_attr for BPF_OBJ_GET; `c` outlives the call.
    let fd = unsafe {
        libc::syscall(
            libc::SYS_bpf,
            BPF_OBJ_GET,
            &get as *const ObjGet,
            std::mem::size_of::<ObjGet>(),
        )
    };
    if fd < 0 {
        return false;
    }
    // SAFETY: the kernel just returned this descriptor to us; nothing else owns it.
    let fd = unsafe { OwnedFd::from_raw_fd(fd as i32) };
    // struct bpf_link_info: type, id, prog_id, padding, then the union at byte 16.
    let mut info = [0u64; 16];
    let attr = InfoByFd {
        bpf_fd: std::os::fd::AsRawFd::as_raw_fd(&fd) as u32,
        info_len: std::mem::size_of_val(&info) as u32,
        info: info.as_mut_ptr() as u64,
    };
    // SAFETY: `attr` is a valid prefix of union bpf_attr for BPF_OBJ_GET_INFO_BY_FD, and `info`
    // is writable for `info_len` bytes for the duration of the call.
    let rc = unsafe {
        libc::syscall(
            libc::SYS_bpf,
            BPF_OBJ_GET_INFO_BY_FD,
            &attr as *const InfoByFd,
            std::mem::size_of::<InfoByFd>(),
        )
    };
    if rc != 0 {
        return false;
    }
    // Only links bound to an interface or a cgroup lose their target; a tracing link (the
    // drop counter's tp_btf) has no target to lose, and its union holds other things (for a raw
    // tracepoint, a name buffer pointer that is 0 when none was asked for).
    const BPF_LINK_TYPE_CGROUP: u64 = 3;
    const BPF_LINK_TYPE_XDP: u64 = 6;
    const BPF_LINK_TYPE_TCX: u64 = 11;
    let link_type = info[0] & 0xffff_ffff;
    !matches!(
        link_type,
        BPF_LINK_TYPE_CGROUP | BPF_LINK_TYPE_XDP | BPF_LINK_TYPE_TCX
    ) || info[2] != 0
}

fn validate_component(what: &str, s: &str) -> Result<(), AccelError> {
    if s.is_empty() || s.len() > 255 || s.contains('/') || s.contains('\0') || s == "." || s == ".."
    {
        return Err(AccelError::InvalidArgument(format!("{what} {s:?}")));
    }
    Ok(())
}

/// True when bpffs is mounted at [`BPFFS`].
pub fn bpffs_mounted() -> bool {
    let Ok(c) = CString::new(BPFFS) else {
        return false;
    };
    // SAFETY: statfs writes into the zeroed struct we own.
    let mut st: libc::statfs = unsafe { std::mem::zeroed() };
    // SAFETY: c is NUL-terminated and st is writable.
    let rc = unsafe { libc::statfs(c.as_ptr(), &mut st) };
    rc == 0 && st.f_type as i64 == BPF_FS_MAGIC
}

/// Mounts bpffs at [`BPFFS`] when it is not there (remembering that we did) and creates
/// [`ROOT`].
pub fn ensure_root() -> Result<(), AccelError> {
    if !bpffs_mounted() {
        fs::create_dir_all(BPFFS).map_err(|e| AccelError::io(format!("creating {BPFFS}"), e))?;
        let (src, target, fstype, opts) = (
            c"bpf",
            CString::new(BPFFS).expect("no NUL"),
            c"bpf",
            c"mode=0700",
        );
        // SAFETY: all pointers are NUL-terminated strings that outlive the call.
        let rc = unsafe {
            libc::mount(
                src.as_ptr(),
                target.as_ptr(),
                fstype.as_ptr(),
                0,
                opts.as_ptr().cast(),
            )
        };
        if rc != 0 {
            return Err(AccelError::Bpffs(format!(
                "cannot mount bpffs at {BPFFS}: {}",
                io::Error::last_os_error()
            )));
        }
        if let Some(parent) = Path::new(MOUNT_MARKER).parent() {
            fs::create_dir_all(parent).ok();
        }
        fs::write(MOUNT_MARKER, b"").ok();
    }
    fs::create_dir_all(ROOT).map_err(|e| AccelError::io(format!("creating {ROOT}"), e))
}

/// Creates an attachment's directory (mounting bpffs when needed) and pins the named maps of
/// `ebpf` in it.
pub fn pin_maps(ebpf: &aya::Ebpf, a: &Attachment, names: &[&str]) -> Result<(), AccelError> {
    ensure_root()?;
    fs::create_dir_all(&a.dir)
        .map_err(|e| AccelError::io(format!("creating {}", a.dir.display()), e))?;
    for name in names {
        let m = ebpf.map(name).ok_or_else(|| AccelError::Bpf {
            context: "pinning".into(),
            detail: format!("no map {name}"),
        })?;
        m.pin(a.path(name))
            .map_err(|e| AccelError::bpf(format!("pinning {name}"), e))?;
    }
    Ok(())
}

/// Every attachment pinned under [`ROOT`].
pub fn attachments() -> Vec<Attachment> {
    let mut out = Vec::new();
    if !bpffs_mounted() {
        return out;
    }
    for acc in Accelerator::ALL {
        let base = Path::new(ROOT).join(acc.dir_name());
        for ns in sorted_dirs(&base) {
            let ns_name = ns
                .file_name()
                .and_then(|n| n.to_str())
                .unwrap_or_default()
                .to_string();
            for iface in sorted_dirs(&ns) {
                let iface_name = iface
                    .file_name()
                    .and_then(|n| n.to_str())
                    .unwrap_or_default()
                    .to_string();
                out.push(Attachment {
                    accelerator: acc,
                    netns: (ns_name != CURRENT_NETNS).then(|| ns_name.clone()),
                    iface: iface_name,
                    dir: iface,
                });
            }
        }
    }
    out
}

fn sorted_dirs(p: &Path) -> Vec<PathBuf> {
    let mut v: Vec<PathBuf> = fs::read_dir(p)
        .into_iter()
        .flatten()
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.is_dir())
        .collect();
    v.sort();
    v
}

/// Names of the pins in an attachment directory.
pub fn pins(dir: &Path) -> Vec<String> {
    let mut v: Vec<String> = fs::read_dir(dir)
        .into_iter()
        .flatten()
        .filter_map(|e| {
            e.ok()
                .and_then(|e| e.file_name().to_str().map(str::to_string))
        })
        .collect();
    v.sort();
    v
}

/// Removes an attachment's pins, links first (that detaches the programs), then its directory
/// and the parents it leaves empty, up to and including [`ROOT`].
pub fn remove_attachment(a: &Attachment) -> Result<(), AccelError> {
    let mut names = pins(&a.dir);
    // Links before maps: a link going away is what detaches; maps then have no users left.
    names.sort_by_key(|n| !n.starts_with("link"));
    for n in names {
        let p = a.dir.join(&n);
        match fs::remove_file(&p) {
            Ok(()) => {}
            Err(e) if e.kind() == io::ErrorKind::NotFound => {}
            Err(e) => return Err(AccelError::io(format!("removing pin {}", p.display()), e)),
        }
    }
    let mut dir = Some(a.dir.as_path());
    while let Some(d) = dir {
        if !d.starts_with(ROOT) || fs::remove_dir(d).is_err() {
            break; // not ours, or not empty: stop climbing
        }
        dir = d.parent();
    }
    if !Path::new(ROOT).exists() {
        release_bpffs_if_ours();
    }
    Ok(())
}

/// Removes the empty directories left under [`ROOT`] (an attach interrupted before pinning),
/// and [`ROOT`] itself when it ends up empty.
pub fn prune_empty() {
    fn prune(dir: &Path) -> bool {
        let Ok(entries) = fs::read_dir(dir) else {
            return false;
        };
        let mut empty = true;
        for e in entries.flatten() {
            let p = e.path();
            if !(p.is_dir() && prune(&p)) {
                empty = false;
            }
        }
        empty && fs::remove_dir(dir).is_ok()
    }
    prune(Path::new(ROOT));
}

/// After the last attachment is gone: unmounts bpffs when disgrafs mounted it and nothing else
/// lives there. Returns whether it unmounted.
pub fn release_bpffs_if_ours() -> bool {
    if !Path::new(MOUNT_MARKER).exists() || !bpffs_mounted() {
        return false;
    }
    // maps.debug and progs.debug are the kernel's own (bpf_preload) and come with every mount.
    let empty = fs::read_dir(BPFFS)
        .map(|d| {
            d.filter_map(Result::ok)
                .all(|e| matches!(e.file_name().to_str(), Some("maps.debug" | "progs.debug")))
        })
        .unwrap_or(false);
    if !empty {
        return false;
    }
    let target = CString::new(BPFFS).expect("no NUL");
    // SAFETY: target is a NUL-terminated path.
    if unsafe { libc::umount2(target.as_ptr(), 0) } == 0 {
        fs::remove_file(MOUNT_MARKER).ok();
        if let Some(parent) = Path::new(MOUNT_MARKER).parent() {
            fs::remove_dir(parent).ok(); // only when empty
        }
        return true;
    }
    false
}

/// The pin names of an XDP link, by the mode it was attached in: the name records the mode, so
/// `status` can tell it from the pins alone.
const XDP_LINK_PINS: [(&str, &str); 2] = [
    ("link_xdp_driver", "driver"),
    ("link_xdp_generic", "generic"),
];

/// Where an XDP link attached in `mode` ("driver" or "generic") is pinned.
pub(crate) fn xdp_link_pin(mode: &str) -> &'static str {
    XDP_LINK_PINS
        .iter()
        .find(|(_, m)| *m == mode)
        .map_or(XDP_LINK_PINS[1].0, |(p, _)| p)
}

/// The pinned XDP link of an attachment and its mode, if there is one.
pub(crate) fn xdp_link_pinned(a: &Attachment) -> Option<(&'static str, &'static str)> {
    XDP_LINK_PINS.into_iter().find(|(p, _)| a.path(p).exists())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_directory_without_a_live_link_is_not_attached() {
        if !crate::harness::privileged_or_skip("a_directory_without_a_live_link_is_not_attached") {
            return;
        }
        // What a kill between pinning the maps and the link leaves: a directory, no link.
        let a = Attachment::new(Accelerator::CpuBalance, Some("@stale-test"), "nolink0").unwrap();
        ensure_root().unwrap();
        fs::create_dir_all(&a.dir).unwrap();
        assert!(!a.is_live());
        assert!(!a.exists(), "a directory without a link counts as attached");
        assert!(!a.dir.exists(), "the stale directory was not cleaned");
        assert!(!crate::cpu_balance::is_attached("nolink0", Some("@stale-test")).unwrap());
        prune_empty();
    }

    #[test]
    fn layout() {
        let a = Attachment::new(Accelerator::CpuBalance, Some("ns1"), "veth0").unwrap();
        assert_eq!(
            a.dir,
            Path::new("/sys/fs/bpf/disgrafs/cpu-balance/ns1/veth0")
        );
        let b = Attachment::new(Accelerator::CpuBalance, None, "eth1").unwrap();
        assert_eq!(b.netns_label(), "@current");
        assert!(Attachment::new(Accelerator::CpuBalance, None, "../x").is_err());
        assert!(Attachment::new(Accelerator::CpuBalance, Some(".."), "x").is_err());
    }
}
