//! The test hosts themselves: namespaces, veth pairs and cgroups are torn down even when the test
//! that made them panics, and nothing is created in the root namespace or the root cgroup. Needs
//! root (skips with the reason otherwise; fails instead under DISGRAFS_REQUIRE_PRIVILEGED=1).
#![allow(
    unused_crate_dependencies,
    reason = "integration tests link all of their package's dependencies; the lint checks lib and bin"
)]

use std::{panic, path::Path, process::Command};

use disgrafs_accel::harness::{self, CgroupGuard, NetNsGuard, VethNet, VethOptions};

fn netns_exists(name: &str) -> bool {
    Path::new("/run/netns").join(name).exists()
}

#[test]
fn veth_net_is_torn_down_even_when_the_test_panics() {
    if !harness::privileged_or_skip("veth_net_is_torn_down_even_when_the_test_panics") {
        return;
    }
    let root_links_before = Command::new("ip")
        .args(["-o", "link"])
        .output()
        .unwrap()
        .stdout;
    let names = std::sync::Mutex::new(Vec::new());
    let result = panic::catch_unwind(|| {
        let net = VethNet::new(VethOptions { single_queue: true }).unwrap();
        names
            .lock()
            .unwrap()
            .extend([net.a.name().to_string(), net.b.name().to_string()]);
        // Both ends are up and reachable inside the namespaces only.
        let out = net
            .a
            .command("ping")
            .args(["-c", "1", "-W", "2", "198.18.0.2"])
            .output();
        if let Ok(o) = out {
            assert!(
                o.status.success(),
                "ping across the pair: {}",
                String::from_utf8_lossy(&o.stdout)
            );
        }
        panic!("deliberate");
    });
    assert!(result.is_err());
    for n in names.lock().unwrap().iter() {
        assert!(!netns_exists(n), "{n} survived the panic");
    }
    let root_links_after = Command::new("ip")
        .args(["-o", "link"])
        .output()
        .unwrap()
        .stdout;
    assert_eq!(
        String::from_utf8_lossy(&root_links_before),
        String::from_utf8_lossy(&root_links_after),
        "the root namespace's interfaces changed"
    );
}

#[test]
fn cgroup_guard_holds_only_its_processes_and_cleans_up() {
    if !harness::privileged_or_skip("cgroup_guard_holds_only_its_processes_and_cleans_up") {
        return;
    }
    let Some(root) = harness::cgroup2_root() else {
        panic!("no cgroup v2 hierarchy is mounted");
    };
    let mut child = Command::new("sleep").arg("30").spawn().unwrap();
    let path;
    {
        let cg = CgroupGuard::new("harness").unwrap();
        path = cg.path().to_path_buf();
        assert_ne!(path, root, "never the root cgroup");
        assert!(path.starts_with(&root));
        cg.add(child.id()).unwrap();
        let procs = std::fs::read_to_string(path.join("cgroup.procs")).unwrap();
        assert_eq!(procs.trim(), child.id().to_string());
        let own = std::fs::read_to_string(format!("/proc/{}/cgroup", child.id())).unwrap();
        assert!(
            own.contains(path.file_name().unwrap().to_str().unwrap()),
            "{own}"
        );
    }
    assert!(!path.exists(), "the cgroup was removed on drop");
    child.kill().unwrap();
    child.wait().unwrap();
}

#[test]
fn cgroup_command_joins_the_cgroup_then_the_namespace() {
    if !harness::privileged_or_skip("cgroup_command_joins_the_cgroup_then_the_namespace") {
        return;
    }
    let ns = NetNsGuard::new("cg").unwrap();
    let cg = CgroupGuard::new("cmd").unwrap();
    let mut child = cg.command(Some(&ns), "sleep").arg("30").spawn().unwrap();
    // nsenter execs sleep in place: same pid. Wait until it has.
    let pid = child.id();
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(5);
    while std::fs::read_to_string(format!("/proc/{pid}/comm"))
        .unwrap_or_default()
        .trim()
        != "sleep"
    {
        assert!(std::time::Instant::now() < deadline, "sleep never started");
        std::thread::sleep(std::time::Duration::from_millis(10));
    }
    let cgroup = std::fs::read_to_string(format!("/proc/{pid}/cgroup")).unwrap();
    assert!(
        cgroup.contains(cg.path().file_name().unwrap().to_str().unwrap()),
        "{cgroup}"
    );
    let child_ns = std::fs::metadata(format!("/proc/{pid}/ns/net")).unwrap();
    let want_ns = std::fs::metadata(format!("/run/netns/{}", ns.name())).unwrap();
    use std::os::unix::fs::MetadataExt;
    assert_eq!(
        child_ns.ino(),
        want_ns.ino(),
        "the child is in the test namespace"
    );
    child.kill().unwrap();
    child.wait().unwrap();
}
