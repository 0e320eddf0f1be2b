//! XDP CPU balancing: spreads an interface's receive work over CPUs by weight (see
//! `bpf/cpu_balance.bpf.c` for the kernel side).
//!
//! This module owns attaching the balancer to one named interface, changing its weights in place,
//! reading its per-CPU counters, and detaching it. Everything is pinned under
//! `/sys/fs/bpf/disgrafs/cpu-balance/<netns>/<iface>/`, so a later process (`accel status`,
//! `accel cpu-balance --weights`, `accel detach`) finds it:
//!
//! | pin | what |
//! | --- | --- |
//! | `link_xdp_driver` / `link_xdp_generic` | the XDP link (the name records the mode) |
//! | `link_enqueue_drops` | tp_btf link counting CPUMAP enqueue drops (absent if unsupported) |
//! | `cpu_map`, `cpu_slots`, `cb_config`, `cb_stats`, `flow_cpus` | the maps |
//!
//! Weights change by rewriting `cpu_slots` then `cb_config.nslots`; every CPUMAP entry (one per
//! online CPU, queue size [`DEFAULT_QUEUE_SIZE`] or more) is installed at attach time, so a new
//! weight never needs a program fd or a reattach. A weight change remaps some flows once (each
//! then stays on its new CPU).

pub mod weights;

use std::collections::BTreeMap;

use aya::{
    Btf, Ebpf, EbpfLoader,
    maps::{Array, CpuMap, HashMap, Map, MapData, PerCpuArray},
    programs::{BtfTracePoint, Xdp, links::FdLink},
};
use serde::Serialize;
pub use weights::Weights;

use crate::{
    AccelError,
    netlink::{self, XdpAttached},
    objects::{self, load_err, map_mut, open_pinned},
    pin::{self, Accelerator, Attachment},
    sys,
};

/// CPUMAP queue size per CPU. 256 dropped 5-9 % of frames on the receiving CPU in a probe on
/// this machine kind; 2048 dropped none.
pub const DEFAULT_QUEUE_SIZE: u32 = 2048;

const OBJECT: &str = "cpu_balance.bpf.o";
const PIN_LINK_DROPS: &str = "link_enqueue_drops";
const MAPS: [&str; 5] = ["cpu_map", "cpu_slots", "cb_config", "cb_stats", "flow_cpus"];

/// How to attach the XDP program.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, clap::ValueEnum, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum AttachMode {
    /// Native (driver) mode, falling back to generic mode with a warning when the driver lacks
    /// it; generic mode on veth, where native mode breaks TCP from the peer.
    #[default]
    Auto,
    /// Native mode only.
    Native,
    /// Generic (skb) mode only.
    Generic,
}

/// Where and how to balance.
#[derive(Debug, Clone)]
pub struct BalanceConfig {
    pub iface: String,
    /// Named network namespace (`/run/netns/NAME`) the interface lives in.
    pub netns: Option<String>,
    pub weights: Weights,
    pub mode: AttachMode,
    /// CPUMAP queue size per CPU; at least [`DEFAULT_QUEUE_SIZE`].
    pub queue_size: u32,
    /// Record which CPUs each flow landed on (`flow_cpus`): a check for tests, costs a hash
    /// lookup per frame.
    pub track_flows: bool,
}

impl BalanceConfig {
    pub fn new(iface: &str, netns: Option<&str>, weights: Weights) -> Self {
        BalanceConfig {
            iface: iface.to_string(),
            netns: netns.map(str::to_string),
            weights,
            mode: AttachMode::Auto,
            queue_size: DEFAULT_QUEUE_SIZE,
            track_flows: false,
        }
    }
}

/// What [`attach`] did.
#[derive(Debug, Clone, Serialize)]
pub struct AttachReport {
    /// "driver" or "generic".
    pub mode: &'static str,
    /// Things the user should know (fallback to generic mode, no drop counter).
    pub warnings: Vec<String>,
}

/// Mirror of `struct cb_config` in cpu_balance.bpf.c.
#[repr(C)]
#[derive(Debug, Clone, Copy, Default)]
struct CbConfig {
    nslots: u32,
    track_flows: u32,
    cpu_map_id: u32,
    _pad: u32,
}

// SAFETY: plain repr(C) integers, no padding beyond the explicit field.
unsafe impl aya::Pod for CbConfig {}

/// Mirror of `struct cb_stats` in cpu_balance.bpf.c: one per CPU.
#[repr(C)]
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize)]
pub struct CpuCounters {
    /// Frames the XDP program saw on this CPU.
    pub received: u64,
    /// Frames this CPU handed to a CPUMAP queue.
    pub redirected: u64,
    /// Frames passed up the stack on this CPU (not IP, balancing off).
    pub passed: u64,
    /// Frames the CPUMAP dropped when this CPU enqueued them (queue full).
    pub dropped: u64,
    /// Frames the CPUMAP delivered to this CPU: the receive work it took over.
    pub delivered: u64,
}

// SAFETY: plain repr(C) u64s.
unsafe impl aya::Pod for CpuCounters {}

/// The balancer's state on one interface, for `status` and the metrics endpoint.
#[derive(Debug, Clone, Serialize)]
pub struct BalanceStatus {
    pub iface: String,
    pub netns: String,
    /// "driver" or "generic".
    pub mode: String,
    /// Kernel ids of the XDP link and program.
    pub link_id: u32,
    pub prog_id: u32,
    /// Weights as realised: CPU → slots out of 256.
    pub slots: Vec<(u32, u32)>,
    /// Whether CPUMAP enqueue drops are being counted.
    pub counts_drops: bool,
    /// Per possible CPU, indexed by CPU number.
    pub per_cpu: Vec<CpuCounters>,
}

fn attachment(iface: &str, netns: Option<&str>) -> Result<Attachment, AccelError> {
    Attachment::new(Accelerator::CpuBalance, netns, iface)
}

fn link_pin(a: &Attachment) -> Option<(&'static str, &'static str)> {
    pin::xdp_link_pinned(a)
}

/// True when the balancer is attached to `iface` (pins present).
pub fn is_attached(iface: &str, netns: Option<&str>) -> Result<bool, AccelError> {
    Ok(attachment(iface, netns)?.exists())
}

/// Attaches the balancer to `cfg.iface` when it is not attached yet, or changes its weights in
/// place when it is (the other settings of an attached balancer stay as they were).
pub fn apply(cfg: &BalanceConfig) -> Result<Option<AttachReport>, AccelError> {
    if is_attached(&cfg.iface, cfg.netns.as_deref())? {
        set_weights(&cfg.iface, cfg.netns.as_deref(), &cfg.weights)?;
        Ok(None)
    } else {
        attach(cfg).map(Some)
    }
}

/// Loads the balancer, attaches it to `cfg.iface` and pins it.
pub fn attach(cfg: &BalanceConfig) -> Result<AttachReport, AccelError> {
    sys::require_privileged("attaching the XDP CPU balancer")?;
    sys::require_btf()?;
    if cfg.queue_size < DEFAULT_QUEUE_SIZE {
        return Err(AccelError::InvalidArgument(format!(
            "CPUMAP queue size {} is below {DEFAULT_QUEUE_SIZE}: smaller queues drop frames under load",
            cfg.queue_size
        )));
    }
    let a = attachment(&cfg.iface, cfg.netns.as_deref())?;
    if a.exists() {
        return Err(AccelError::AlreadyAttached {
            what: "the CPU balancer".into(),
            iface: cfg.iface.clone(),
        });
    }
    let ncpus = sys::possible_cpus()?;
    let online = sys::online_cpus()?;
    for (cpu, w) in cfg.weights.pairs() {
        if *w > 0 && !online.contains(cpu) {
            return Err(AccelError::InvalidWeights {
                input: cfg.weights.to_string(),
                reason: format!("CPU {cpu} is offline"),
            });
        }
    }

    let mut ebpf = EbpfLoader::new()
        .map_max_entries("cpu_map", ncpus as u32)
        .load(objects::CPU_BALANCE)
        .map_err(|e| load_err(OBJECT, "maps", e))?;

    // The program run on the target CPU, installed in every CPUMAP entry.
    let on_cpu: &mut Xdp = objects::program_mut(&mut ebpf, OBJECT, "cpu_balance_on_cpu")?;
    on_cpu
        .load()
        .map_err(|e| load_err("cpu_balance_on_cpu", "XDP (CPUMAP)", e))?;
    let on_cpu_fd = on_cpu
        .fd()
        .map_err(|e| AccelError::bpf("cpu_balance_on_cpu", e))?
        .try_clone()
        .map_err(|e| AccelError::io("duplicating a program fd", e))?;

    {
        let mut cpu_map: CpuMap<&mut MapData> =
            CpuMap::try_from(map_mut(&mut ebpf, OBJECT, "cpu_map")?)
                .map_err(|e| AccelError::bpf("cpu_map", e))?;
        for cpu in &online {
            cpu_map
                .set(*cpu, cfg.queue_size, Some(&on_cpu_fd), 0)
                .map_err(|e| load_err("cpu_map entry", "CPUMAP with a program", e))?;
        }
    }
    let cpu_map_id = match map_mut(&mut ebpf, OBJECT, "cpu_map")? {
        Map::CpuMap(d) => d
            .info()
            .map_err(|e| AccelError::bpf("cpu_map info", e))?
            .id(),
        _ => 0,
    };
    write_slots(map_mut(&mut ebpf, OBJECT, "cpu_slots")?, &cfg.weights)?;
    {
        let mut conf: Array<&mut MapData, CbConfig> =
            Array::try_from(map_mut(&mut ebpf, OBJECT, "cb_config")?)
                .map_err(|e| AccelError::bpf("cb_config", e))?;
        let c = CbConfig {
            nslots: weights::SLOTS as u32,
            track_flows: cfg.track_flows as u32,
            cpu_map_id,
            _pad: 0,
        };
        conf.set(0, c, 0)
            .map_err(|e| AccelError::bpf("writing cb_config", e))?;
    }

    let mut warnings = Vec::new();
    let xdp: &mut Xdp = objects::program_mut(&mut ebpf, OBJECT, "cpu_balance")?;
    xdp.load().map_err(|e| load_err("cpu_balance", "XDP", e))?;

    // Attach inside the interface's namespace; the link works from anywhere afterwards.
    let netns = cfg.netns.as_deref();
    let (link, mode) = sys::in_netns(netns, || {
        let ifindex = sys::if_index(&cfg.iface, netns)?;
        let before = netlink::xdp_state(ifindex)?;
        if before.attached != XdpAttached::None {
            // Ours under another namespace label (attached with --netns, asked without, or the
            // reverse) is not someone else's: say so rather than "foreign".
            if pinned_prog_ids().contains(&before.prog_id) {
                return Err(AccelError::AlreadyAttached {
                    what: "the CPU balancer".into(),
                    iface: cfg.iface.clone(),
                });
            }
            return Err(AccelError::ForeignProgramAttached {
                iface: cfg.iface.clone(),
            });
        }
        let mode = mode_for(cfg.mode, before.veth, &cfg.iface, &mut warnings);
        objects::attach_xdp(xdp, ifindex, &cfg.iface, mode, &mut warnings)
    })?;

    // Drop counting is a nice-to-have: a kernel without tp_btf still balances.
    let drops_link = match attach_drop_counter(&mut ebpf) {
        Ok(l) => Some(l),
        Err(e) => {
            warnings.push(format!("CPUMAP drops will not be counted: {e}"));
            None
        }
    };

    // Pin everything; on any failure remove what was pinned (dropping the links detaches).
    let pinned = pin::pin_maps(&ebpf, &a, &MAPS).and_then(|()| {
        link.pin(a.path(pin::xdp_link_pin(mode)))
            .map_err(|e| AccelError::bpf("pinning the XDP link", e))?;
        if let Some(l) = drops_link {
            l.pin(a.path(PIN_LINK_DROPS))
                .map_err(|e| AccelError::bpf("pinning the drop counter link", e))?;
        }
        Ok(())
    });
    if let Err(e) = pinned {
        pin::remove_attachment(&a).ok();
        return Err(e);
    }
    Ok(AttachReport { mode, warnings })
}

/// The XDP mode to attach in. On veth, native XDP breaks TCP from the peer: veth sends TCP with
/// checksum offload (CHECKSUM_PARTIAL: the checksum field holds only the pseudo-header sum), and
/// a natively redirected frame reaches the CPUMAP as a bare `xdp_frame`, from which the target
/// CPU builds a new skb that has lost that state, so TCP finds a bad checksum
/// (TcpInCsumErrors), drops every segment, and connections time out. In generic mode the CPUMAP
/// queues the skb itself, checksum state included. Wire NICs deliver complete checksums, so
/// native mode stays the default there.
fn mode_for(asked: AttachMode, veth: bool, iface: &str, warnings: &mut Vec<String>) -> AttachMode {
    match (asked, veth) {
        (AttachMode::Auto, true) => AttachMode::Generic,
        (AttachMode::Native, true) => {
            warnings.push(format!(
                "{iface} is a veth: in native mode TCP from its peer fails the checksum check \
                 unless the peer's checksum offload is off (ethtool -K PEER tx off); \
                 --mode auto uses generic mode on veth"
            ));
            AttachMode::Native
        }
        (m, _) => m,
    }
}

/// Program ids of every XDP link disgrafs has pinned.
fn pinned_prog_ids() -> Vec<u32> {
    pin::attachments()
        .iter()
        .filter(|a| a.accelerator == Accelerator::CpuBalance)
        .filter_map(|a| xdp_link_ids(a).ok())
        .map(|(_, prog)| prog)
        .collect()
}

/// (link id, program id) of an attachment's pinned XDP link.
fn xdp_link_ids(a: &Attachment) -> Result<(u32, u32), AccelError> {
    let (name, _) = link_pin(a).ok_or_else(|| AccelError::NotAttached {
        what: "the CPU balancer".into(),
        iface: a.iface.clone(),
    })?;
    let link = aya::programs::links::PinnedLink::from_pin(a.path(name))
        .map_err(|e| AccelError::bpf("opening the XDP link pin", e))?;
    let fd: FdLink = link.into();
    let info = fd.info().map_err(|e| AccelError::bpf("XDP link info", e))?;
    Ok((info.id(), info.program_id()))
}

fn attach_drop_counter(ebpf: &mut Ebpf) -> Result<FdLink, AccelError> {
    let btf = Btf::from_sys_fs().map_err(|e| AccelError::bpf("reading kernel BTF", e))?;
    let tp: &mut BtfTracePoint = objects::program_mut(ebpf, OBJECT, "cpu_balance_enqueue")?;
    tp.load("xdp_cpumap_enqueue", &btf)
        .map_err(|e| load_err("cpu_balance_enqueue", "tp_btf", e))?;
    let id = tp
        .attach()
        .map_err(|e| AccelError::bpf("attaching tp_btf/xdp_cpumap_enqueue", e))?;
    let link = tp
        .take_link(id)
        .map_err(|e| AccelError::bpf("taking the tp_btf link", e))?;
    Ok(link.into())
}

fn write_slots(map: &mut Map, w: &Weights) -> Result<(), AccelError> {
    let mut slots: Array<&mut MapData, u32> =
        Array::try_from(map).map_err(|e| AccelError::bpf("cpu_slots", e))?;
    for (i, cpu) in w.slot_table().into_iter().enumerate() {
        slots
            .set(i as u32, cpu, 0)
            .map_err(|e| AccelError::bpf("writing cpu_slots", e))?;
    }
    Ok(())
}

/// Changes the weights of an attached balancer, without reattaching.
///
/// The slot table is rewritten in place; while it is being written a few frames may go by a mix
/// of the old and new table, which only means a flow may move once.
pub fn set_weights(iface: &str, netns: Option<&str>, w: &Weights) -> Result<(), AccelError> {
    sys::require_privileged("changing CPU balancer weights")?;
    let a = attachment(iface, netns)?;
    if !a.exists() {
        return Err(AccelError::NotAttached {
            what: "the CPU balancer".into(),
            iface: iface.to_string(),
        });
    }
    let online = sys::online_cpus()?;
    if let Some((cpu, _)) = w
        .pairs()
        .iter()
        .find(|(c, wt)| *wt > 0 && !online.contains(c))
    {
        return Err(AccelError::InvalidWeights {
            input: w.to_string(),
            reason: format!("CPU {cpu} is offline"),
        });
    }
    let mut m = open_pinned(&a, "cpu_slots")?;
    write_slots(&mut m, w)
}

/// Turns recording of flow → CPU sets on or off (and clears what was recorded when turning on).
pub fn set_flow_tracking(iface: &str, netns: Option<&str>, on: bool) -> Result<(), AccelError> {
    let a = attachment(iface, netns)?;
    if on {
        let mut m = open_pinned(&a, "flow_cpus")?;
        let mut flows: HashMap<&mut MapData, u32, u64> =
            HashMap::try_from(&mut m).map_err(|e| AccelError::bpf("flow_cpus", e))?;
        let keys: Vec<u32> = flows.keys().filter_map(Result::ok).collect();
        for k in keys {
            flows.remove(&k).ok();
        }
    }
    let mut m = open_pinned(&a, "cb_config")?;
    let mut conf: Array<&mut MapData, CbConfig> =
        Array::try_from(&mut m).map_err(|e| AccelError::bpf("cb_config", e))?;
    let mut c = conf
        .get(&0, 0)
        .map_err(|e| AccelError::bpf("reading cb_config", e))?;
    c.track_flows = on as u32;
    conf.set(0, c, 0)
        .map_err(|e| AccelError::bpf("writing cb_config", e))
}

/// Flow hash → bitmask of the CPUs its frames were delivered on (tracking must be on).
pub fn flow_cpus(iface: &str, netns: Option<&str>) -> Result<BTreeMap<u32, u64>, AccelError> {
    let a = attachment(iface, netns)?;
    let m = open_pinned(&a, "flow_cpus")?;
    let flows: HashMap<&MapData, u32, u64> =
        HashMap::try_from(&m).map_err(|e| AccelError::bpf("flow_cpus", e))?;
    Ok(flows.iter().filter_map(Result::ok).collect())
}

/// Per-CPU counters of the balancer on `iface`, indexed by CPU.
pub fn counters(iface: &str, netns: Option<&str>) -> Result<Vec<CpuCounters>, AccelError> {
    read_counters(&attachment(iface, netns)?)
}

fn read_counters(a: &Attachment) -> Result<Vec<CpuCounters>, AccelError> {
    let m = open_pinned(a, "cb_stats")?;
    let stats: PerCpuArray<&MapData, CpuCounters> =
        PerCpuArray::try_from(&m).map_err(|e| AccelError::bpf("cb_stats", e))?;
    let v = stats
        .get(&0, 0)
        .map_err(|e| AccelError::bpf("reading cb_stats", e))?;
    Ok(v.iter().copied().collect())
}

/// Status of one pinned balancer.
pub fn status(a: &Attachment) -> Result<BalanceStatus, AccelError> {
    let mode = link_pin(a).map_or("detached", |(_, m)| m);
    let (link_id, prog_id) = if link_pin(a).is_some() {
        xdp_link_ids(a)?
    } else {
        (0, 0)
    };
    let slots_map = open_pinned(a, "cpu_slots")?;
    let slots: Array<&MapData, u32> =
        Array::try_from(&slots_map).map_err(|e| AccelError::bpf("cpu_slots", e))?;
    let table: Vec<u32> = slots.iter().filter_map(Result::ok).collect();
    Ok(BalanceStatus {
        iface: a.iface.clone(),
        netns: a.netns_label().to_string(),
        mode: mode.to_string(),
        link_id,
        prog_id,
        slots: Weights::from_slot_table(&table),
        counts_drops: a.path(PIN_LINK_DROPS).exists(),
        per_cpu: read_counters(a)?,
    })
}

/// Detaches the balancer from `iface` (removes its pins). Returns whether it was attached.
pub fn detach(iface: &str, netns: Option<&str>) -> Result<bool, AccelError> {
    let a = attachment(iface, netns)?;
    if !a.exists() {
        return Ok(false);
    }
    pin::remove_attachment(&a)?;
    Ok(true)
}
