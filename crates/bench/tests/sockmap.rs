//! `disgrafs bench sockmap` runs, reports its rows and leaves nothing behind. Its own test
//! binary, because the benchmark moves the whole process into a cgroup of its own for a while.
//! Needs root (skips with the reason otherwise; fails instead under
//! DISGRAFS_REQUIRE_PRIVILEGED=1). No timing is asserted: speed is the benchmark's output.
#![allow(
    unused_crate_dependencies,
    reason = "integration tests link all of their package's dependencies; the lint checks lib and bin"
)]

use disgrafs_accel::{harness, sockmap};

#[test]
fn bench_compares_loopback_with_the_bypass_and_leaves_nothing_attached() {
    if !harness::privileged_or_skip(
        "bench_compares_loopback_with_the_bypass_and_leaves_nothing_attached",
    ) {
        return;
    }
    // DISGRAFS_SOCKMAP_BENCH=full runs the defaults of `disgrafs bench sockmap` (less the
    // service path, which needs the disgrafs binary as its server) and prints
    // the table (the same function the CLI calls).
    let full = std::env::var("DISGRAFS_SOCKMAP_BENCH").as_deref() == Ok("full");
    let opts = if full {
        disgrafs_bench::sockmap::Args {
            repeats: 3,
            round_trips: 20_000,
            bulk_bytes: 256 << 20,
            service_seconds: 0,
            pgbench_seconds: 0,
        }
    } else {
        disgrafs_bench::sockmap::Args {
            repeats: 1,
            round_trips: 200,
            bulk_bytes: 4 << 20,
            service_seconds: 0,
            pgbench_seconds: 0,
        }
    };
    let rows = disgrafs_bench::sockmap::run(&opts, &disgrafs_bench::Stop::default())
        .expect("the benchmark runs");
    println!("{}", disgrafs_bench::render_table(&rows));
    // 6 ping-pong and 3 bulk metrics, each against the bypass with and without the policy.
    // (The service path needs the disgrafs binary as its server: crates/cli/tests/sockmap_proxy.rs
    // runs it through `disgrafs bench sockmap`.)
    assert_eq!(rows.len(), 18);
    for r in &rows {
        assert_eq!(r.baseline_name, "loopback TCP");
        assert!(
            r.baseline.is_some_and(|b| b > 0.0) && r.candidate > 0.0,
            "{r:?}"
        );
    }
    assert!(sockmap::attached_cgroups().is_empty());
    let own = std::fs::read_to_string("/proc/self/cgroup").unwrap();
    assert!(
        !own.contains("disgrafs-bench"),
        "the benchmark left its cgroup: {own}"
    );
}
