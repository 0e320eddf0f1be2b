//! The XDP CPU balancer on a real veth pair: load from the peer namespace with many flows, shares
//! per CPU against the weights, flow affinity, weights changed in place, status and detach from
//! a new process, and refusal to replace someone else's XDP program. Needs root (skips with the
//! reason otherwise; fails instead under DISGRAFS_REQUIRE_PRIVILEGED=1).
#![allow(
    unused_crate_dependencies,
    reason = "integration tests link all of their package's dependencies; the lint checks lib and bin"
)]

use std::{
    collections::BTreeMap,
    process::Command,
    time::{Duration, Instant},
};

use disgrafs_accel::{
    AccelError,
    cpu_balance::{self, AttachMode, BalanceConfig, CpuCounters, Weights},
    harness::{
        self, AttachmentGuard, NetNsGuard, VethNet, VethOptions,
        packet::{FrameSpec, RawSender, frame},
    },
    netlink::{self, XdpAttached},
    pin::Accelerator,
    status, sys,
};

/// Only one test at a time may own /sys/fs/bpf/disgrafs (detach_all removes everything).
static PINS: std::sync::Mutex<()> = std::sync::Mutex::new(());

fn lock() -> std::sync::MutexGuard<'static, ()> {
    PINS.lock().unwrap_or_else(|p| p.into_inner())
}

/// Sends `per_flow` UDP datagrams on each of `flows` flows (distinct source ports) from
/// namespace a to b, round-robin over the flows. Bounded in count and in time (60 s). Paced:
/// after every 128 frames it waits for veth's ring and the CPUMAP queues to drain, so the shares
/// measured are the balancer's, not those of a queue overflowing (the benchmark measures unpaced
/// load), even when the machine is busy and softirqs are deferred.
fn send_flows(net: &VethNet, flows: u16, per_flow: u32, port_base: u16) -> u64 {
    let ns = net.b.name().to_string();
    let seen_before = totals(&cpu_balance::counters(VethNet::IF_B, Some(&ns)).unwrap()).received;
    let dst_mac = VethNet::mac(&net.b, VethNet::IF_B).unwrap();
    let src_mac = VethNet::mac(&net.a, VethNet::IF_A).unwrap();
    net.a
        .run(|| {
            let tx = RawSender::new(VethNet::IF_A)?;
            let frames: Vec<Vec<u8>> = (0..flows)
                .map(|i| {
                    frame(&FrameSpec {
                        src_mac,
                        dst_mac,
                        proto: 17,
                        sport: port_base + i,
                        dport: 9,
                        payload: &[0x5a; 64],
                        ..Default::default()
                    })
                })
                .collect();
            let deadline = Instant::now() + Duration::from_secs(60);
            let mut sent = 0u64;
            'outer: for _ in 0..per_flow {
                for f in &frames {
                    tx.send(f)?;
                    sent += 1;
                    if sent.is_multiple_of(128) {
                        settled(VethNet::IF_B, &ns, seen_before + sent);
                    }
                }
                if Instant::now() > deadline {
                    break 'outer;
                }
            }
            Ok(sent)
        })
        .unwrap()
}

fn totals(c: &[CpuCounters]) -> CpuCounters {
    c.iter().fold(CpuCounters::default(), |a, b| CpuCounters {
        received: a.received + b.received,
        redirected: a.redirected + b.redirected,
        passed: a.passed + b.passed,
        dropped: a.dropped + b.dropped,
        delivered: a.delivered + b.delivered,
    })
}

/// Waits until the XDP program has seen `seen` frames in all (veth's 256-frame ring is drained)
/// and every redirected frame is delivered or dropped (the CPUMAP queues are drained).
fn settled(iface: &str, ns: &str, seen: u64) -> Vec<CpuCounters> {
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let c = cpu_balance::counters(iface, Some(ns)).unwrap();
        let t = totals(&c);
        if (t.received >= seen && t.delivered + t.dropped >= t.redirected)
            || Instant::now() > deadline
        {
            return c;
        }
        std::thread::sleep(Duration::from_millis(2));
    }
}

fn assert_shares(delta: &[(u32, u64)], w: &Weights) {
    let total: u64 = delta.iter().map(|(_, n)| n).sum();
    eprintln!("weights {w}: deliveries per CPU {delta:?} of {total}");
    for (cpu, want) in w.shares() {
        let got =
            delta.iter().find(|(c, _)| *c == cpu).map_or(0, |(_, n)| *n) as f64 / total as f64;
        assert!(
            (got - want).abs() <= 0.10 * want,
            "CPU {cpu}: share {got:.4}, weight share {want:.4} (more than 10 % apart); deliveries {delta:?}"
        );
    }
}

fn delivered_since(before: &[CpuCounters], after: &[CpuCounters]) -> Vec<(u32, u64)> {
    after
        .iter()
        .zip(before)
        .enumerate()
        .map(|(i, (a, b))| (i as u32, a.delivered - b.delivered))
        .collect()
}

#[test]
fn spreads_many_flows_by_weight_and_keeps_each_flow_on_one_cpu() {
    if !harness::privileged_or_skip("spreads_many_flows_by_weight_and_keeps_each_flow_on_one_cpu") {
        return;
    }
    let online = sys::online_cpus().unwrap();
    assert!(online.len() >= 2, "needs two online CPUs, has {online:?}");
    let _g = lock();
    let net = VethNet::new(VethOptions::default()).unwrap();
    let ns = net.b.name().to_string();
    let _pins = AttachmentGuard::new(Accelerator::CpuBalance, Some(&ns), VethNet::IF_B).unwrap();
    let ncpu = sys::possible_cpus().unwrap();
    let w = Weights::parse("0:1,1:3", ncpu).unwrap();
    let mut cfg = BalanceConfig::new(VethNet::IF_B, Some(&ns), w.clone());
    cfg.track_flows = true;
    let report = cpu_balance::attach(&cfg).unwrap();
    assert_eq!(
        report.mode, "generic",
        "auto mode is generic on veth (native mode breaks TCP from the peer): {report:?}"
    );
    let link_before = status::status().unwrap().cpu_balance[0].link_id;

    // 4096 flows x 25 = 102,400 datagrams.
    let sent = send_flows(&net, 4096, 25, 10_000);
    assert_eq!(sent, 102_400);
    let after = settled(VethNet::IF_B, &ns, sent);
    let t = totals(&after);
    assert!(t.received >= sent, "{t:?}");
    assert!(
        t.redirected >= sent,
        "every UDP datagram is redirected: {t:?}"
    );
    assert_eq!(t.dropped, 0, "qsize 2048 drops nothing at this rate: {t:?}");
    assert_eq!(t.delivered, t.redirected, "{t:?}");
    assert_shares(
        &delivered_since(&vec![CpuCounters::default(); ncpu], &after),
        &w,
    );

    // Flow affinity: every flow landed on exactly one CPU.
    let flows = cpu_balance::flow_cpus(VethNet::IF_B, Some(&ns)).unwrap();
    assert!(flows.len() >= 4096, "{} flows recorded", flows.len());
    let split: BTreeMap<&u32, &u64> = flows.iter().filter(|(_, m)| m.count_ones() != 1).collect();
    assert!(split.is_empty(), "flows seen on several CPUs: {split:?}");

    // New weights in place: same link, new shares.
    let w2 = Weights::parse("0:1,1:1", ncpu).unwrap();
    cpu_balance::apply(&BalanceConfig::new(VethNet::IF_B, Some(&ns), w2.clone())).unwrap();
    let st = status::status().unwrap();
    assert_eq!(
        st.cpu_balance[0].link_id, link_before,
        "weights changed without reattaching"
    );
    assert_eq!(st.cpu_balance[0].slots, vec![(0, 128), (1, 128)]);
    cpu_balance::set_flow_tracking(VethNet::IF_B, Some(&ns), true).unwrap();
    let sent2 = send_flows(&net, 4096, 25, 30_000);
    let after2 = settled(VethNet::IF_B, &ns, t.received + sent2);
    assert_eq!(
        totals(&after2).delivered - t.delivered,
        sent2 + (totals(&after2).redirected - t.redirected - sent2)
    );
    assert_shares(&delivered_since(&after, &after2), &w2);
    let flows = cpu_balance::flow_cpus(VethNet::IF_B, Some(&ns)).unwrap();
    assert!(
        flows.values().all(|m| m.count_ones() == 1),
        "a flow moved between CPUs at steady weights"
    );

    // The same interface reached without --netns (from inside the namespace) is recognised as
    // ours, not reported as someone else's.
    let again = net
        .b
        .run(|| {
            Ok(cpu_balance::attach(&BalanceConfig::new(
                VethNet::IF_B,
                None,
                w2.clone(),
            )))
        })
        .unwrap();
    assert!(
        matches!(again, Err(AccelError::AlreadyAttached { .. })),
        "{again:?}"
    );

    // Status and detach from a new process.
    let child = child_probe("status");
    assert!(
        child.contains(&format!("\"netns\":\"{ns}\"")) && child.contains("\"mode\":\"generic\""),
        "{child}"
    );
    let child = child_probe("detach");
    assert!(child.contains("removed 1"), "{child}");
    let state = net
        .b
        .run(|| netlink::xdp_state(sys::if_index(VethNet::IF_B, None)?))
        .unwrap();
    assert_eq!(
        state.attached,
        XdpAttached::None,
        "detach removed the XDP program"
    );
    assert!(status::status().unwrap().cpu_balance.is_empty());
    assert!(
        status::detach_all().unwrap().removed.is_empty(),
        "detach is idempotent"
    );
    assert!(
        !std::path::Path::new(disgrafs_accel::pin::ROOT).exists(),
        "no pins left"
    );
}

#[test]
fn refuses_to_replace_a_foreign_xdp_program() {
    if !harness::privileged_or_skip("refuses_to_replace_a_foreign_xdp_program") {
        return;
    }
    let _g = lock();
    let net = VethNet::new(VethOptions::default()).unwrap();
    let ns = net.b.name().to_string();
    // "Someone else's" program: the balancer's own XDP program attached by plain aya, unpinned.
    let mut ebpf = aya::Ebpf::load(disgrafs_accel::objects::CPU_BALANCE).unwrap();
    let prog: &mut aya::programs::Xdp =
        ebpf.program_mut("cpu_balance").unwrap().try_into().unwrap();
    prog.load().unwrap();
    net.b
        .run(|| {
            prog.attach(VethNet::IF_B, aya::programs::XdpMode::Skb)
                .map_err(|e| AccelError::Harness(e.to_string()))?;
            Ok(())
        })
        .unwrap();
    let before = net
        .b
        .run(|| netlink::xdp_state(sys::if_index(VethNet::IF_B, None)?))
        .unwrap();
    assert_eq!(before.attached, XdpAttached::Generic);

    let cfg = BalanceConfig::new(VethNet::IF_B, Some(&ns), Weights::parse("0:1", 1).unwrap());
    let err = cpu_balance::attach(&cfg).unwrap_err();
    assert!(
        matches!(err, AccelError::ForeignProgramAttached { .. }),
        "{err}"
    );
    assert!(err.to_string().contains("refusing to replace"), "{err}");
    let after = net
        .b
        .run(|| netlink::xdp_state(sys::if_index(VethNet::IF_B, None)?))
        .unwrap();
    assert_eq!(after, before, "the foreign program is untouched");
    assert!(
        status::detach_all().unwrap().removed.is_empty(),
        "detach does not touch it either"
    );
    let still = net
        .b
        .run(|| netlink::xdp_state(sys::if_index(VethNet::IF_B, None)?))
        .unwrap();
    assert_eq!(still, before);
}

#[test]
fn one_line_errors_for_bad_targets() {
    if !harness::privileged_or_skip("one_line_errors_for_bad_targets") {
        return;
    }
    let _g = lock();
    let net = VethNet::new(VethOptions::default()).unwrap();
    let w = Weights::parse("0:1", 1).unwrap();
    let err = cpu_balance::attach(&BalanceConfig::new(
        "no-such-if",
        Some(net.b.name()),
        w.clone(),
    ))
    .unwrap_err();
    assert_eq!(
        err.to_string(),
        format!(
            "interface no-such-if not found in network namespace {}",
            net.b.name()
        )
    );
    let err = cpu_balance::attach(&BalanceConfig::new(
        VethNet::IF_B,
        Some("dgf-no-such-ns"),
        w.clone(),
    ))
    .unwrap_err();
    assert!(
        err.to_string()
            .starts_with("network namespace dgf-no-such-ns not found"),
        "{err}"
    );
    let err = cpu_balance::set_weights(VethNet::IF_B, Some(net.b.name()), &w).unwrap_err();
    assert!(matches!(err, AccelError::NotAttached { .. }), "{err}");
    assert!(!err.to_string().contains('\n'));
    let mut cfg = BalanceConfig::new(VethNet::IF_B, Some(net.b.name()), w);
    cfg.queue_size = 256;
    let err = cpu_balance::attach(&cfg).unwrap_err().to_string();
    assert!(err.contains("below 2048") && !err.contains('\n'), "{err}");
}

#[test]
fn falls_back_to_generic_mode_where_native_xdp_is_missing() {
    if !harness::privileged_or_skip("falls_back_to_generic_mode_where_native_xdp_is_missing") {
        return;
    }
    let _g = lock();
    // An ifb interface has no native XDP support (and, unlike dummy, is built into this kernel).
    let ns = NetNsGuard::new("ifb").unwrap();
    ns.ip(&["link", "add", "dgf-d0", "type", "ifb"]).unwrap();
    ns.ip(&["link", "set", "dgf-d0", "up"]).unwrap();
    let _pins = AttachmentGuard::new(Accelerator::CpuBalance, Some(ns.name()), "dgf-d0").unwrap();
    let w = Weights::parse("0:1", 1).unwrap();
    let mut cfg = BalanceConfig::new("dgf-d0", Some(ns.name()), w);
    cfg.mode = AttachMode::Native;
    let err = cpu_balance::attach(&cfg).unwrap_err().to_string();
    assert!(
        err.contains("attaching XDP to dgf-d0") && !err.contains('\n'),
        "{err}"
    );
    cfg.mode = AttachMode::Auto;
    let report = cpu_balance::attach(&cfg).unwrap();
    assert_eq!(report.mode, "generic");
    assert!(
        report
            .warnings
            .iter()
            .any(|w| w.contains("native XDP unsupported")),
        "{report:?}"
    );
    let state = ns
        .run(|| netlink::xdp_state(sys::if_index("dgf-d0", None)?))
        .unwrap();
    assert_eq!(state.attached, XdpAttached::Generic);
    assert!(cpu_balance::detach("dgf-d0", Some(ns.name())).unwrap());
    let state = ns
        .run(|| netlink::xdp_state(sys::if_index("dgf-d0", None)?))
        .unwrap();
    assert_eq!(state.attached, XdpAttached::None);
}

/// Runs this test binary again as a new process, executing only [`child_probe_entry`].
fn child_probe(what: &str) -> String {
    let out = Command::new(std::env::current_exe().unwrap())
        .args([
            "--exact",
            "child_probe_entry",
            "--nocapture",
            "--test-threads=1",
        ])
        .env("DISGRAFS_CHILD_PROBE", what)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// Not a test of its own: the body of [`child_probe`]'s new process (does nothing otherwise).
#[test]
fn child_probe_entry() {
    match std::env::var("DISGRAFS_CHILD_PROBE").as_deref() {
        Ok("status") => println!(
            "{}",
            serde_json::to_string(&status::status().unwrap()).unwrap()
        ),
        Ok("detach") => println!("removed {}", status::detach_all().unwrap().removed.len()),
        _ => {}
    }
}
