//! The same-host TCP bypass (see `bpf/sockmap.bpf.c` for the kernel side): between two local
//! TCP sockets of processes in a named cgroup v2, `sendmsg`/`sendfile`/`splice` data goes
//! straight to the peer's receive queue instead of through the TCP/IP stack.
//!
//! This module owns attaching the bypass to one cgroup (never the root, never implicitly),
//! reading its counters, and detaching it without losing bytes. Everything is pinned under
//! `/sys/fs/bpf/disgrafs/sockmap/@cgroup/<cgroup path, '/' as %2F>/`:
//!
//! | pin | what |
//! | --- | --- |
//! | `link_sockops` | the cgroup sock_ops link (new sockets join the map while it exists) |
//! | `sock_map` | the SOCKHASH; the sk_msg program is attached to it and lives as long as it |
//! | `sm_config`, `sm_stats`, `sk_state`, `spoke` | settings, per-CPU counters, per-socket state, who answered whom (small-write policy) |
//! | `members` | which keys joined, and whether they sent over TCP (who may join, who leaves; see the BPF source) |
//!
//! Detaching is ordered so that open connections keep every byte (see [`detach`]).

use std::{
    fs,
    os::fd::{AsFd, AsRawFd, BorrowedFd},
    path::{Path, PathBuf},
};

use aya::{
    EbpfLoader,
    maps::{Array, Map, MapData, PerCpuArray, SockHash},
    programs::{CgroupAttachMode, SkMsg, SockOps, links::FdLink},
};
use serde::Serialize;

use crate::{
    AccelError,
    objects::{self, load_err, map_mut, open_pinned},
    pin::{self, Accelerator, Attachment},
    sys,
};

const OBJECT: &str = "sockmap.bpf.o";
const PIN_LINK: &str = "link_sockops";
const MAPS: [&str; 6] = [
    "sock_map",
    "sm_config",
    "sm_stats",
    "sk_state",
    "spoke",
    "members",
];
const CGROUP2_SUPER_MAGIC: i64 = 0x63677270;

/// When a direction of a connection leaves the bypass because it looks like a stream of tiny
/// writes (each redirected message is delivered alone, while TCP coalesces them).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct SmallWritePolicy {
    /// A message below this many bytes is small; 0 turns the policy off (everything is
    /// redirected).
    pub small_bytes: u32,
    /// After this many small messages in a row without a message coming back, the direction
    /// takes the normal TCP path for the rest of the connection.
    pub run: u32,
}

impl SmallWritePolicy {
    pub const OFF: SmallWritePolicy = SmallWritePolicy {
        small_bytes: 0,
        run: 0,
    };
    /// Opt-in: streams of small writes take TCP after 16 messages below 1 KiB without a reply.
    /// The receiver stays in the map, and FIONREAD there does not count bytes that came over
    /// TCP: a reader that relies on FIONREAD (nginx) can stall. What it gains is measured in
    /// the crate README.
    pub const STREAMS: SmallWritePolicy = SmallWritePolicy {
        small_bytes: 1024,
        run: 16,
    };
    /// The default: off, every message between two members is redirected.
    pub const DEFAULT: SmallWritePolicy = SmallWritePolicy::OFF;
}

impl Default for SmallWritePolicy {
    fn default() -> Self {
        Self::DEFAULT
    }
}

/// Mirror of `struct sock_key` in sockmap.bpf.c.
#[repr(C)]
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct SockKey {
    pub local_ip: [u32; 4],
    pub remote_ip: [u32; 4],
    pub local_port: u32,
    pub remote_port: u32,
    pub netns: u64,
}

// SAFETY: plain repr(C) integers, no padding (48 bytes, 8-aligned).
unsafe impl aya::Pod for SockKey {}

/// Mirror of `struct sm_config` in sockmap.bpf.c.
#[repr(C)]
#[derive(Debug, Clone, Copy, Default)]
struct SmConfig {
    redirect: u32,
    small_bytes: u32,
    small_run: u32,
    _pad: u32,
}

// SAFETY: plain repr(C) u32s.
unsafe impl aya::Pod for SmConfig {}

/// Mirror of `struct sm_stats` in sockmap.bpf.c: one per CPU, or their sum.
#[repr(C)]
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize)]
pub struct SockmapCounters {
    /// Established local sockets put in the map.
    pub sockets_added: u64,
    /// Sockets of the map that closed (the kernel removes them itself).
    pub sockets_removed: u64,
    /// Sockets the map refused (full, or the kernel declined the socket).
    pub add_failed: u64,
    /// Messages (one per sendmsg chunk) handed straight to the peer socket, and their bytes.
    pub msgs_redirected: u64,
    pub bytes_redirected: u64,
    /// Messages of sockets in the map that took the normal path, and their bytes.
    pub msgs_passed: u64,
    pub bytes_passed: u64,
    /// Connection directions moved to the normal path by the small-write policy.
    pub directions_to_tcp: u64,
    /// Sockets taken out of the map because bytes reached them over TCP (a peer outside the
    /// bypass, or a direction on the normal path): FIONREAD on a socket in the map would not
    /// count those bytes (see `bpf/sockmap.bpf.c`).
    pub sockets_left: u64,
}

// SAFETY: plain repr(C) u64s.
unsafe impl aya::Pod for SockmapCounters {}

impl SockmapCounters {
    fn add(&mut self, o: &SockmapCounters) {
        self.sockets_added += o.sockets_added;
        self.sockets_removed += o.sockets_removed;
        self.add_failed += o.add_failed;
        self.msgs_redirected += o.msgs_redirected;
        self.bytes_redirected += o.bytes_redirected;
        self.msgs_passed += o.msgs_passed;
        self.bytes_passed += o.bytes_passed;
        self.directions_to_tcp += o.directions_to_tcp;
        self.sockets_left += o.sockets_left;
    }
}

/// The bypass on one cgroup, for `status` and the metrics endpoint.
#[derive(Debug, Clone, Serialize)]
pub struct SockmapStatus {
    pub cgroup: PathBuf,
    pub link_id: u32,
    pub prog_id: u32,
    /// Sockets in the map now.
    pub sockets: u64,
    pub policy: SmallWritePolicy,
    /// Summed over CPUs.
    pub counters: SockmapCounters,
}

/// Where to attach.
#[derive(Debug, Clone)]
pub struct SockmapConfig {
    /// A cgroup v2 directory other than the root.
    pub cgroup: PathBuf,
    pub policy: SmallWritePolicy,
}

/// Checks that `path` is a cgroup v2 directory and not the root of a hierarchy; returns its
/// canonical path and the path relative to the hierarchy's mount.
pub fn check_cgroup(path: &Path) -> Result<(PathBuf, PathBuf), AccelError> {
    let canon = fs::canonicalize(path)
        .map_err(|e| AccelError::InvalidArgument(format!("cgroup {}: {e}", path.display())))?;
    let c = std::ffi::CString::new(canon.as_os_str().as_encoded_bytes())
        .map_err(|_| AccelError::InvalidArgument(format!("cgroup {}", path.display())))?;
    // SAFETY: statfs writes into the zeroed struct we own.
    let mut st: libc::statfs = unsafe { std::mem::zeroed() };
    // SAFETY: c is NUL-terminated and st is writable.
    if unsafe { libc::statfs(c.as_ptr(), &mut st) } != 0
        || st.f_type as i64 != CGROUP2_SUPER_MAGIC
        || !canon.is_dir()
    {
        return Err(AccelError::InvalidArgument(format!(
            "{} is not a cgroup v2 directory",
            path.display()
        )));
    }
    let mount = sys::cgroup2_mounts()
        .into_iter()
        .filter(|m| canon.starts_with(m))
        .max_by_key(|m| m.as_os_str().len());
    // The root cgroup has no cgroup.type; a mount point is a root as far as we can tell.
    let rel = mount
        .as_ref()
        .and_then(|m| canon.strip_prefix(m).ok())
        .map(Path::to_path_buf)
        .unwrap_or_default();
    if rel.as_os_str().is_empty() || !canon.join("cgroup.type").exists() {
        return Err(AccelError::InvalidArgument(format!(
            "refusing to attach to the root cgroup {}: name a child cgroup (e.g. mkdir {}/disgrafs)",
            canon.display(),
            canon.display()
        )));
    }
    Ok((canon, rel))
}

/// The pin directory name of a cgroup path relative to its mount ('%' and '/' escaped).
fn encode(rel: &Path) -> String {
    rel.to_string_lossy()
        .replace('%', "%25")
        .replace('/', "%2F")
}

fn decode(name: &str) -> String {
    name.replace("%2F", "/").replace("%25", "%")
}

fn attachment_of(rel: &Path) -> Result<Attachment, AccelError> {
    Attachment::new(Accelerator::Sockmap, Some(pin::CGROUP_SCOPE), &encode(rel))
}

/// The cgroup an attachment belongs to, as a path under the first cgroup v2 mount.
pub(crate) fn cgroup_of(a: &Attachment) -> PathBuf {
    let root = sys::cgroup2_mounts().into_iter().next().unwrap_or_default();
    root.join(decode(&a.iface))
}

fn write_config(map: &mut Map, redirect: bool, p: SmallWritePolicy) -> Result<(), AccelError> {
    let mut conf: Array<&mut MapData, SmConfig> =
        Array::try_from(map).map_err(|e| AccelError::bpf("sm_config", e))?;
    let c = SmConfig {
        redirect: redirect as u32,
        small_bytes: p.small_bytes,
        small_run: p.run,
        _pad: 0,
    };
    conf.set(0, c, 0)
        .map_err(|e| AccelError::bpf("writing sm_config", e))
}

fn read_config(a: &Attachment) -> Result<SmConfig, AccelError> {
    let m = open_pinned(a, "sm_config")?;
    let conf: Array<&MapData, SmConfig> =
        Array::try_from(&m).map_err(|e| AccelError::bpf("sm_config", e))?;
    conf.get(&0, 0)
        .map_err(|e| AccelError::bpf("reading sm_config", e))
}

/// Attaches the sk_msg program to the map with BPF_PROG_ATTACH, keeping no descriptor: the map
/// holds the program from then on and releases it when it is freed (detach). aya's handle for
/// this attachment either detaches when dropped or, forgotten, keeps a duplicate of the map's
/// descriptor open, which would keep the map (and every socket in it) alive in a long-running
/// process after `detach`.
fn attach_to_map(prog: BorrowedFd<'_>, map: BorrowedFd<'_>) -> Result<(), AccelError> {
    #[repr(C)]
    struct ProgAttach {
        target_fd: u32,
        attach_bpf_fd: u32,
        attach_type: u32,
        attach_flags: u32,
        replace_bpf_fd: u32,
    }
    const BPF_PROG_ATTACH: libc::c_long = 8;
    const BPF_SK_MSG_VERDICT: u32 = 7;
    let attr = ProgAttach {
        target_fd: map.as_raw_fd() as u32,
        attach_bpf_fd: prog.as_raw_fd() as u32,
        attach_type: BPF_SK_MSG_VERDICT,
        attach_flags: 0,
        replace_bpf_fd: 0,
    };
    // SAFETY: attr is a valid prefix of union bpf_attr for BPF_PROG_ATTACH; both descriptors
    // are open for the duration of the call.
    let rc = unsafe {
        libc::syscall(
            libc::SYS_bpf,
            BPF_PROG_ATTACH,
            &attr as *const ProgAttach,
            std::mem::size_of::<ProgAttach>(),
        )
    };
    if rc < 0 {
        return Err(AccelError::io(
            "attaching sk_msg to sock_map",
            std::io::Error::last_os_error(),
        ));
    }
    Ok(())
}

/// True when the bypass is attached to `cgroup`.
pub fn is_attached(cgroup: &Path) -> Result<bool, AccelError> {
    let (_, rel) = check_cgroup(cgroup)?;
    Ok(attachment_of(&rel)?.exists())
}

/// Loads the programs, attaches sock_ops to the cgroup and sk_msg to the map, and pins them.
pub fn attach(cfg: &SockmapConfig) -> Result<(), AccelError> {
    sys::require_privileged("attaching the same-host TCP bypass")?;
    sys::require_btf()?;
    let (canon, rel) = check_cgroup(&cfg.cgroup)?;
    let a = attachment_of(&rel)?;
    if a.exists() {
        return Err(AccelError::AlreadyAttached {
            what: "the same-host TCP bypass".into(),
            iface: format!("cgroup {}", canon.display()),
        });
    }
    let mut ebpf = EbpfLoader::new()
        .load(objects::SOCKMAP)
        .map_err(|e| load_err(OBJECT, "maps", e))?;
    write_config(map_mut(&mut ebpf, OBJECT, "sm_config")?, true, cfg.policy)?;

    let map_fd = {
        let m = map_mut(&mut ebpf, OBJECT, "sock_map")?;
        let hash: SockHash<&mut MapData, SockKey> =
            SockHash::try_from(m).map_err(|e| AccelError::bpf("sock_map", e))?;
        hash.fd()
            .try_clone()
            .map_err(|e| AccelError::io("duplicating the map fd", e))?
    };
    let msg: &mut SkMsg = objects::program_mut(&mut ebpf, OBJECT, "sockmap_msg")?;
    msg.load()
        .map_err(|e| load_err("sockmap_msg", "sk_msg", e))?;
    let prog_fd = msg.fd().map_err(|e| AccelError::bpf("sockmap_msg", e))?;
    attach_to_map(prog_fd.as_fd(), map_fd.as_fd())?;

    let ops: &mut SockOps = objects::program_mut(&mut ebpf, OBJECT, "sockmap_sockops")?;
    ops.load()
        .map_err(|e| load_err("sockmap_sockops", "sock_ops", e))?;
    let cg = fs::File::open(&canon)
        .map_err(|e| AccelError::io(format!("opening {}", canon.display()), e))?;
    let id = ops
        .attach(&cg, CgroupAttachMode::Single)
        .map_err(|e| AccelError::bpf(format!("attaching sock_ops to {}", canon.display()), e))?;
    let link: FdLink = ops
        .take_link(id)
        .map_err(|e| AccelError::bpf("taking the sock_ops link", e))?
        .try_into()
        .map_err(|e| AccelError::bpf("the kernel gave no bpf_link for sock_ops", e))?;

    let pinned = pin::pin_maps(&ebpf, &a, &MAPS).and_then(|()| {
        link.pin(a.path(PIN_LINK))
            .map_err(|e| AccelError::bpf("pinning the sock_ops link", e))?;
        Ok(())
    });
    if let Err(e) = pinned {
        pin::remove_attachment(&a).ok();
        return Err(e);
    }
    Ok(())
}

fn sockets_in_map(a: &Attachment) -> Result<u64, AccelError> {
    let m = open_pinned(a, "sock_map")?;
    let hash: SockHash<&MapData, SockKey> =
        SockHash::try_from(&m).map_err(|e| AccelError::bpf("sock_map", e))?;
    Ok(hash.keys().filter(Result::is_ok).count() as u64)
}

fn read_counters(a: &Attachment) -> Result<SockmapCounters, AccelError> {
    let m = open_pinned(a, "sm_stats")?;
    let stats: PerCpuArray<&MapData, SockmapCounters> =
        PerCpuArray::try_from(&m).map_err(|e| AccelError::bpf("sm_stats", e))?;
    let v = stats
        .get(&0, 0)
        .map_err(|e| AccelError::bpf("reading sm_stats", e))?;
    let mut sum = SockmapCounters::default();
    for c in v.iter() {
        sum.add(c);
    }
    Ok(sum)
}

/// Counters of the bypass on `cgroup`, summed over CPUs (for the metrics endpoint).
pub fn counters(cgroup: &Path) -> Result<SockmapCounters, AccelError> {
    let (_, rel) = check_cgroup(cgroup)?;
    read_counters(&attachment_of(&rel)?)
}

/// Every cgroup the bypass is attached to.
pub fn attached_cgroups() -> Vec<PathBuf> {
    pin::attachments()
        .iter()
        .filter(|a| a.accelerator == Accelerator::Sockmap)
        .map(cgroup_of)
        .collect()
}

/// Status of one pinned bypass.
pub fn status(a: &Attachment) -> Result<SockmapStatus, AccelError> {
    let (link_id, prog_id) = if a.path(PIN_LINK).exists() {
        let link = aya::programs::links::PinnedLink::from_pin(a.path(PIN_LINK))
            .map_err(|e| AccelError::bpf("opening the sock_ops link pin", e))?;
        let fd: FdLink = link.into();
        let info = fd
            .info()
            .map_err(|e| AccelError::bpf("sock_ops link info", e))?;
        (info.id(), info.program_id())
    } else {
        (0, 0)
    };
    let c = read_config(a)?;
    Ok(SockmapStatus {
        cgroup: cgroup_of(a),
        link_id,
        prog_id,
        sockets: sockets_in_map(a)?,
        policy: SmallWritePolicy {
            small_bytes: c.small_bytes,
            run: c.small_run,
        },
        counters: read_counters(a)?,
    })
}

/// Removes the bypass from `cgroup`. Returns whether it was attached.
pub fn detach_cgroup(cgroup: &Path) -> Result<bool, AccelError> {
    let (_, rel) = check_cgroup(cgroup)?;
    let a = attachment_of(&rel)?;
    if !a.exists() {
        return Ok(false);
    }
    detach(&a)?;
    Ok(true)
}

/// Removes one attachment; open connections keep working and keep every byte.
///
/// Order matters: (1) every message from now on takes the normal path (the program marks each
/// direction that does so, for good, so none goes back to redirecting while bytes are on the
/// TCP path); (2) no new socket joins (the sock_ops link goes); (3) the pins go. The map itself
/// lives on while sockets are in it (each socket's psock holds the sk_msg program, which holds
/// the map) and goes with the last of them; the sockets are never taken out early, because
/// taking a socket out drops the bytes redirected to it that it has not read yet
/// (`detach_keeps_bytes_redirected_but_not_yet_read` in tests/sockmap.rs holds it to that).
pub fn detach(a: &Attachment) -> Result<(), AccelError> {
    sys::require_privileged("detaching the same-host TCP bypass")?;
    if a.path("sm_config").exists() {
        let policy = read_config(a).map(|c| SmallWritePolicy {
            small_bytes: c.small_bytes,
            run: c.small_run,
        })?;
        let mut m = open_pinned(a, "sm_config")?;
        write_config(&mut m, false, policy)?;
    }
    pin::remove_attachment(a)
}

/// A cgroup of this process's own, a child of the one it runs in, with the bypass attached:
/// what `disgrafs serve --accel sockmap` runs in. Created and entered by [`OwnCgroup::enter`]
/// (before the process opens the sockets that should be bypassed: a socket belongs to the
/// cgroup it was created in); on drop the bypass is detached, the processes in it go back to
/// the parent and the cgroup is removed.
#[derive(Debug)]
pub struct OwnCgroup {
    path: PathBuf,
    home: PathBuf,
}

impl OwnCgroup {
    /// Creates `disgrafs-serve-<pid>` under this process's cgroup, moves the process there and
    /// attaches the bypass to it.
    pub fn enter(policy: SmallWritePolicy) -> Result<OwnCgroup, AccelError> {
        let g = OwnCgroup::create("serve")?;
        attach(&SockmapConfig {
            cgroup: g.path.clone(),
            policy,
        })?;
        Ok(g)
    }

    /// Creates `disgrafs-<prefix>-<pid>` under this process's cgroup and moves the process
    /// there, without attaching anything.
    pub fn create(prefix: &str) -> Result<OwnCgroup, AccelError> {
        sys::require_privileged("running in a cgroup with the same-host TCP bypass")?;
        let home = sys::own_cgroup().ok_or_else(|| {
            AccelError::InvalidArgument("no cgroup v2 hierarchy is mounted".into())
        })?;
        let path = home.join(format!("disgrafs-{prefix}-{}", std::process::id()));
        fs::create_dir(&path)
            .map_err(|e| AccelError::io(format!("creating cgroup {}", path.display()), e))?;
        let g = OwnCgroup { path, home };
        // "0" moves the writing process, with all its threads; children it starts later follow.
        fs::write(g.path.join("cgroup.procs"), "0")
            .map_err(|e| AccelError::io(format!("entering cgroup {}", g.path.display()), e))?;
        Ok(g)
    }

    pub fn path(&self) -> &Path {
        &self.path
    }
}

impl Drop for OwnCgroup {
    fn drop(&mut self) {
        detach_cgroup(&self.path).ok();
        if let Ok(procs) = fs::read_to_string(self.path.join("cgroup.procs")) {
            for pid in procs.lines() {
                fs::write(self.home.join("cgroup.procs"), pid).ok();
            }
        }
        fs::remove_dir(&self.path).ok();
    }
}
