//! The same-host TCP bypass against real connections, every byte checked.
//!
//! The peers (`sockmap_peer.py`) run as child processes placed in a child cgroup v2 that holds
//! only them (the bypass is attached there, never to the root) and in a network namespace of
//! their own, so their loopback traffic meets nobody else's. Each scenario is bounded: sockets
//! have timeouts and the test kills the peer at its deadline. Needs root (skips with the reason
//! otherwise; fails instead under DISGRAFS_REQUIRE_PRIVILEGED=1).
#![allow(
    unused_crate_dependencies,
    reason = "integration tests link all of their package's dependencies; the lint checks lib and bin"
)]

use std::{
    io::{BufRead, BufReader, Read, Write},
    path::{Path, PathBuf},
    process::Stdio,
    sync::mpsc,
    time::{Duration, Instant},
};

use disgrafs_accel::{
    harness::{self, CgroupGuard, NetNsGuard},
    sockmap::{self, SmallWritePolicy, SockmapConfig, SockmapCounters},
};

const PEER: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/sockmap_peer.py");
const PYTHON: &str = "/usr/bin/python3";
const DEADLINE: Duration = Duration::from_secs(150);

/// The bypass on a test cgroup, detached on drop (also when the test panics). Declare it after
/// the cgroup guard so it drops first.
struct Bypass(PathBuf);

impl Bypass {
    fn attach(cg: &CgroupGuard, policy: SmallWritePolicy) -> Bypass {
        sockmap::attach(&SockmapConfig {
            cgroup: cg.path().to_path_buf(),
            policy,
        })
        .expect("attaching the bypass to the test cgroup");
        Bypass(cg.path().to_path_buf())
    }

    fn counters(&self) -> SockmapCounters {
        sockmap::counters(&self.0).expect("reading the counters")
    }

    fn sockets(&self) -> u64 {
        disgrafs_accel::status::status()
            .unwrap()
            .sockmap
            .iter()
            .find(|s| s.cgroup.ends_with(self.0.file_name().unwrap()))
            .map(|s| s.sockets)
            .expect("the bypass is in the status")
    }
}

impl Drop for Bypass {
    fn drop(&mut self) {
        sockmap::detach_cgroup(&self.0).ok();
    }
}

fn can_run(name: &str) -> bool {
    if !harness::privileged_or_skip(name) {
        return false;
    }
    if !Path::new(PYTHON).exists() {
        if std::env::var(harness::REQUIRE_ENV).as_deref() == Ok("1") {
            panic!("{name}: {PYTHON} is missing");
        }
        eprintln!("skipping {name}: {PYTHON} is missing");
        return false;
    }
    true
}

/// Runs one scenario of the peer script in the cgroup and namespace; `at_ready` runs when the
/// peers print "ready" (they then wait for a line on stdin). Returns the JSON report.
fn run_peer(
    cg: &CgroupGuard,
    ns: &NetNsGuard,
    scenario: &str,
    at_ready: impl FnOnce(),
) -> serde_json::Value {
    let mut child = cg
        .command(Some(ns), PYTHON)
        .arg(PEER)
        .arg(scenario)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("starting the peers");
    let stdout = child.stdout.take().unwrap();
    let mut stderr = child.stderr.take().unwrap();
    let (tx, rx) = mpsc::channel();
    std::thread::spawn(move || {
        for line in BufReader::new(stdout).lines().map_while(Result::ok) {
            tx.send(line).ok();
        }
    });
    let err_reader = std::thread::spawn(move || {
        let mut s = String::new();
        stderr.read_to_string(&mut s).ok();
        s
    });
    let deadline = Instant::now() + DEADLINE;
    let mut at_ready = Some(at_ready);
    let mut last = String::new();
    loop {
        let left = deadline.saturating_duration_since(Instant::now());
        match rx.recv_timeout(left) {
            Ok(line) if line == "ready" => {
                if let Some(f) = at_ready.take() {
                    f();
                }
                child.stdin.as_mut().unwrap().write_all(b"go\n").ok();
            }
            Ok(line) => last = line,
            Err(mpsc::RecvTimeoutError::Disconnected) => break,
            Err(mpsc::RecvTimeoutError::Timeout) => {
                child.kill().ok();
                child.wait().ok();
                panic!("{scenario}: the peers did not finish within {DEADLINE:?}");
            }
        }
    }
    let status = child.wait().unwrap();
    let errors = err_reader.join().unwrap_or_default();
    assert!(
        status.success(),
        "{scenario} failed ({status}):\n{errors}\nreport: {last}"
    );
    serde_json::from_str(&last).unwrap_or_else(|e| panic!("{scenario}: report {last:?}: {e}"))
}

/// Waits (bounded) until every socket of the scenario has left the map.
fn wait_map_empty(b: &Bypass) -> u64 {
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let n = b.sockets();
        if n == 0 || Instant::now() > deadline {
            return n;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
}

fn hosts(name: &str) -> (NetNsGuard, CgroupGuard) {
    (
        NetNsGuard::new(name).expect("a test namespace"),
        CgroupGuard::new(name).expect("a test cgroup"),
    )
}

#[test]
fn stress_many_connections_every_size_both_ways_every_byte_in_order() {
    if !can_run("stress_many_connections_every_size_both_ways_every_byte_in_order") {
        return;
    }
    let (ns, cg) = hosts("smstress");
    let b = Bypass::attach(&cg, SmallWritePolicy::STREAMS);
    let report = run_peer(&cg, &ns, "stress", || {});
    let c = b.counters();
    let conns = report["connections"].as_u64().unwrap();
    // Both ends of every connection (IPv4, IPv6, v4-mapped) joined the map...
    assert_eq!(c.sockets_added, 2 * conns, "{c:?}");
    assert_eq!(c.add_failed, 0, "{c:?}");
    // ...bytes skipped the stack until the run of 1-byte writes moved directions to TCP, in
    // mid-stream (the switch every byte above survived).
    assert!(c.bytes_redirected > 0, "{c:?}");
    assert!(c.directions_to_tcp > conns, "{c:?}");
    assert_eq!(wait_map_empty(&b), 0, "closed sockets leave the map");
    let c = b.counters();
    // A member leaves either by closing or, when its first message raced its peer's join,
    // at once (both ends, before a byte was redirected).
    assert_eq!(c.sockets_removed + c.sockets_left, 2 * conns, "{c:?}");
}

#[test]
fn stress_with_the_small_write_policy_off_redirects_everything() {
    if !can_run("stress_with_the_small_write_policy_off_redirects_everything") {
        return;
    }
    let (ns, cg) = hosts("smoff");
    let b = Bypass::attach(&cg, SmallWritePolicy::OFF);
    let report = run_peer(&cg, &ns, "stress", || {});
    let c = b.counters();
    assert_eq!(c.directions_to_tcp, 0, "{c:?}");
    // Only what a side sends after its peer half-closed takes TCP (the kernel redirects only
    // to established sockets): at most a quarter of the bytes.
    let total = 2
        * report["connections"].as_u64().unwrap()
        * report["bytes_per_direction"].as_u64().unwrap();
    assert!(c.bytes_redirected >= total / 2, "{c:?}");
}

#[test]
fn slow_reader_gets_every_byte() {
    if !can_run("slow_reader_gets_every_byte") {
        return;
    }
    let (ns, cg) = hosts("smslow");
    let b = Bypass::attach(&cg, SmallWritePolicy::DEFAULT);
    let report = run_peer(&cg, &ns, "slow", || {});
    eprintln!("slow reader: {report}");
    assert!(b.counters().bytes_redirected >= report["total"].as_u64().unwrap());
}

#[test]
fn peers_exiting_or_resetting_mid_stream_never_hang_and_deliver_a_prefix() {
    if !can_run("peers_exiting_or_resetting_mid_stream_never_hang_and_deliver_a_prefix") {
        return;
    }
    let (ns, cg) = hosts("smabrupt");
    let b = Bypass::attach(&cg, SmallWritePolicy::DEFAULT);
    let report = run_peer(&cg, &ns, "abrupt", || {});
    eprintln!("abrupt: {report}");
    assert!(b.counters().bytes_redirected > 0);
    assert_eq!(wait_map_empty(&b), 0);
}

#[test]
fn detach_in_the_middle_of_traffic_keeps_every_byte() {
    if !can_run("detach_in_the_middle_of_traffic_keeps_every_byte") {
        return;
    }
    let (ns, cg) = hosts("smdetach");
    let b = Bypass::attach(&cg, SmallWritePolicy::DEFAULT);
    let path = cg.path().to_path_buf();
    let mut redirected_before = 0;
    run_peer(&cg, &ns, "detach", || {
        redirected_before = b.counters().bytes_redirected;
        assert!(sockmap::detach_cgroup(&path).expect("detach"));
    });
    assert!(redirected_before > 0);
    // Other tests of this file may have their own attachments meanwhile: look at ours only.
    assert!(!sockmap::is_attached(&path).unwrap());
    assert!(
        !sockmap::attached_cgroups()
            .iter()
            .any(|c| c.ends_with(path.file_name().unwrap())),
        "detach leaves no pins of this cgroup"
    );
}

#[test]
fn the_root_cgroup_and_non_cgroups_are_refused_in_one_line() {
    let Some(root) = harness::cgroup2_root() else {
        eprintln!("skipping: no cgroup v2 hierarchy");
        return;
    };
    let e = sockmap::check_cgroup(&root).unwrap_err().to_string();
    assert!(e.contains("refusing to attach to the root cgroup"), "{e}");
    assert!(!e.contains('\n'));
    let e = sockmap::check_cgroup(Path::new("/tmp"))
        .unwrap_err()
        .to_string();
    assert!(e.contains("is not a cgroup v2 directory"), "{e}");
    let e = sockmap::check_cgroup(Path::new("/nonexistent/cg"))
        .unwrap_err()
        .to_string();
    assert!(e.contains("/nonexistent/cg"), "{e}");
}

#[test]
fn detach_keeps_bytes_redirected_but_not_yet_read() {
    if !can_run("detach_keeps_bytes_redirected_but_not_yet_read") {
        return;
    }
    let (ns, cg) = hosts("smunread");
    let b = Bypass::attach(&cg, SmallWritePolicy::DEFAULT);
    let path = cg.path().to_path_buf();
    let mut redirected_before = 0;
    run_peer(&cg, &ns, "unread", || {
        redirected_before = b.counters().bytes_redirected;
        assert!(sockmap::detach_cgroup(&path).expect("detach"));
    });
    assert_eq!(
        redirected_before,
        1 << 20,
        "the unread MiB went through the bypass"
    );
}

#[test]
fn fionread_counts_bytes_from_peers_outside_the_bypass() {
    if !can_run("fionread_counts_bytes_from_peers_outside_the_bypass") {
        return;
    }
    let (ns, cg) = hosts("smoutside");
    let b = Bypass::attach(&cg, SmallWritePolicy::DEFAULT);
    run_peer(&cg, &ns, "outside", || {});
    let c = b.counters();
    // The server's socket never joined (its client is not a member); the client's joined and
    // left before its first byte went out over TCP.
    assert_eq!(c.sockets_added, 1, "{c:?}");
    assert_eq!(c.sockets_left, 1, "{c:?}");
    assert_eq!(c.bytes_redirected, 0, "{c:?}");
}
