//! `accel status` and `accel detach`: what disgrafs has attached, found through its pins alone
//! (so any new process sees it), and the removal of all of it.

use serde::Serialize;

use crate::{
    AccelError,
    afxdp::{self, AfxdpStatus},
    cpu_balance::{self, BalanceStatus},
    pin::{self, Accelerator},
    sockmap::{self, SockmapStatus},
    sys,
};

#[derive(Debug, Clone, Serialize)]
pub struct Status {
    pub privileged: bool,
    pub btf: bool,
    pub bpffs_mounted: bool,
    pub cpu_balance: Vec<BalanceStatus>,
    pub sockmap: Vec<SockmapStatus>,
    pub afxdp: Vec<AfxdpStatus>,
    /// Attachments whose pins could not be read, one line each.
    pub errors: Vec<String>,
}

/// Reads every attachment pinned under `/sys/fs/bpf/disgrafs/`.
pub fn status() -> Result<Status, AccelError> {
    let mut st = Status {
        privileged: sys::is_privileged(),
        btf: sys::has_btf(),
        bpffs_mounted: pin::bpffs_mounted(),
        cpu_balance: Vec::new(),
        sockmap: Vec::new(),
        afxdp: Vec::new(),
        errors: Vec::new(),
    };
    if st.bpffs_mounted && !st.privileged {
        return Err(AccelError::NotPrivileged {
            what: "reading disgrafs' BPF pins".into(),
        });
    }
    for a in pin::attachments() {
        if !a.is_live() {
            st.errors.push(format!(
                "{}: stale (its link is gone or was never pinned); removed",
                a.dir.display()
            ));
            pin::remove_attachment(&a).ok();
            continue;
        }
        match a.accelerator {
            Accelerator::CpuBalance => match cpu_balance::status(&a) {
                Ok(s) => st.cpu_balance.push(s),
                Err(e) => st.errors.push(format!("{}: {e}", a.dir.display())),
            },
            Accelerator::Sockmap => match sockmap::status(&a) {
                Ok(s) => st.sockmap.push(s),
                Err(e) => st.errors.push(format!("{}: {e}", a.dir.display())),
            },
            Accelerator::Afxdp => match afxdp::status(&a) {
                Ok(s) => st.afxdp.push(s),
                Err(e) => st.errors.push(format!("{}: {e}", a.dir.display())),
            },
        }
    }
    Ok(st)
}

/// The text form of [`Status`].
pub fn render(st: &Status) -> String {
    let mut out = String::new();
    if st.cpu_balance.is_empty()
        && st.sockmap.is_empty()
        && st.afxdp.is_empty()
        && st.errors.is_empty()
    {
        out.push_str("nothing attached by disgrafs\n");
    }
    for b in &st.cpu_balance {
        let slots: Vec<String> = b.slots.iter().map(|(c, n)| format!("{c}:{n}")).collect();
        out.push_str(&format!(
            "cpu-balance on {} (netns {}): XDP {} mode, link {} prog {}, slots {} of 256{}\n",
            b.iface,
            b.netns,
            b.mode,
            b.link_id,
            b.prog_id,
            slots.join(","),
            if b.counts_drops {
                ""
            } else {
                ", drops not counted"
            }
        ));
        out.push_str(&format!(
            "  {:>4} {:>12} {:>12} {:>12} {:>12} {:>12}\n",
            "cpu", "received", "redirected", "passed", "dropped", "delivered"
        ));
        for (cpu, c) in b.per_cpu.iter().enumerate() {
            out.push_str(&format!(
                "  {cpu:>4} {:>12} {:>12} {:>12} {:>12} {:>12}\n",
                c.received, c.redirected, c.passed, c.dropped, c.delivered
            ));
        }
    }
    for s in &st.sockmap {
        let c = &s.counters;
        out.push_str(&format!(
            "sockmap on cgroup {}: link {} prog {}, {} sockets in the map (added {}, closed {}, left for TCP {}, refused {})\n",
            s.cgroup.display(),
            s.link_id,
            s.prog_id,
            s.sockets,
            c.sockets_added,
            c.sockets_removed,
            c.sockets_left,
            c.add_failed
        ));
        out.push_str(&format!(
            "  redirected {} messages / {} bytes, normal path {} messages / {} bytes, {} directions moved to TCP (small writes: < {} B x {})\n",
            c.msgs_redirected,
            c.bytes_redirected,
            c.msgs_passed,
            c.bytes_passed,
            c.directions_to_tcp,
            s.policy.small_bytes,
            s.policy.run
        ));
    }
    for x in &st.afxdp {
        let s = &x.steering;
        out.push_str(&format!(
            "afxdp on {} (netns {}): XDP {} mode, TCP port {}, UDP port {}\n  kernel: seen {} tcp {} udp {} passed {} no_socket {}\n  fast path:",
            x.iface, x.netns, x.mode, x.tcp_port, x.udp_port, s.seen, s.tcp, s.udp, s.passed, s.no_socket
        ));
        for (name, v) in &x.fast_path {
            out.push_str(&format!(" {name} {v}"));
        }
        out.push('\n');
        if !x.running {
            let age = x
                .heartbeat_age_ms
                .map_or("never".to_string(), |ms| format!("{} s ago", ms / 1000));
            out.push_str(&format!(
                "  NOT RUNNING: its loop last ran {age}; nothing answers the port (`disgrafs accel detach` removes the steering)\n"
            ));
        }
    }
    for e in &st.errors {
        out.push_str(&format!("error: {e}\n"));
    }
    out
}

#[derive(Debug, Clone, Default, Serialize)]
pub struct DetachReport {
    /// "cpu-balance on IF (netns NS)" per attachment removed.
    pub removed: Vec<String>,
    /// True when bpffs was mounted by disgrafs and has now been unmounted.
    pub unmounted_bpffs: bool,
}

/// Removes everything disgrafs attached. Idempotent: a second call removes nothing.
pub fn detach_all() -> Result<DetachReport, AccelError> {
    let mut report = DetachReport::default();
    if !pin::bpffs_mounted() {
        return Ok(report);
    }
    sys::require_privileged("detaching disgrafs' BPF programs")?;
    for a in pin::attachments() {
        match a.accelerator {
            Accelerator::Sockmap => {
                sockmap::detach(&a)?;
                report.removed.push(format!(
                    "sockmap on cgroup {}",
                    sockmap::cgroup_of(&a).display()
                ));
            }
            Accelerator::CpuBalance | Accelerator::Afxdp => {
                pin::remove_attachment(&a)?;
                report.removed.push(format!(
                    "{} on {} (netns {})",
                    a.accelerator.dir_name(),
                    a.iface,
                    a.netns_label()
                ));
            }
        }
    }
    // Leftover empty directories (an interrupted attach) go too.
    pin::prune_empty();
    report.unmounted_bpffs = pin::release_bpffs_if_ours();
    Ok(report)
}
