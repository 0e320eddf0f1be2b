//! `disgrafs bench scale` at a tiny size: every row comes out, with sane shapes (names, units,
//! finite non-negative figures); and the one
//! corpus generator fills PostgreSQL with what it fills SQLite with, so the two stores give the
//! same answers to the query mix. No timing is asserted: speed is the benchmark's output.
//!
//! Needs PostgreSQL, SeaweedFS and wrk (installed by scripts/deps.d/60-postgres.sh,
//! 65-seaweedfs.sh and 20-accel.sh): skipped with the reason without them, unless the test
//! command installed them (DISGRAFS_REQUIRE_POSTGRES, DISGRAFS_REQUIRE_WEED), when that fails.
#![allow(
    unused_crate_dependencies,
    reason = "integration tests link all of their package's dependencies; the lint checks lib and bin"
)]

mod common;

use common::BIN;
use disgrafs_bench::{BenchRow, Better, pg, query, weed};
use std::process::Command;

/// The same corpus on SQLite and on PostgreSQL: the same records and edges, and the same answer
/// from both stores to every question of the mix.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_corpus_on_postgres_answers_the_mix_as_on_sqlite() {
    let Some(cluster) = pg::cluster() else { return };
    let dir = tempfile::tempdir().unwrap();
    let (lite, pgdir) = (dir.path().join("sqlite"), dir.path().join("pg"));
    let corpus = query::generate(&lite, 1_500, 7).await.unwrap();
    let url = cluster.create_db("scale_corpus");
    query::generate_postgres(&url, &pgdir, 1_500, 7)
        .await
        .unwrap();
    let sqlite = disgrafs_store::Store::open_local(&lite, query::MIN_CONFIDENCE)
        .await
        .unwrap();
    let local = disgrafs_store::BlobLocation::Local;
    let pgstore = disgrafs_store::Store::open(&pgdir, Some(&url), &local, query::MIN_CONFIDENCE)
        .await
        .unwrap();
    let (a, b) = (
        sqlite.stats(&disgrafs_store::Viewer::All).await.unwrap(),
        pgstore.stats(&disgrafs_store::Viewer::All).await.unwrap(),
    );
    assert_eq!(
        (a.files, a.blobs, a.tags, a.edges),
        (b.files, b.blobs, b.tags, b.edges)
    );
    assert_eq!(a.files, 1_500);
    let db = query::read_only_pool(&lite).await.unwrap();
    let mut any = None;
    for rep in 0..3 {
        for q in query::mix(&corpus, &db, rep).await.unwrap() {
            let ours = q.ask_store(&pgstore).await.unwrap();
            let theirs = q.ask_store(&sqlite).await.unwrap();
            if matches!(q, query::Question::List { .. }) {
                assert!(!theirs.is_empty(), "{} has an answer", q.label());
                // After the total: the page's ids.
                any = any.or_else(|| theirs.get(1).cloned());
            }
            assert_eq!(ours, theirs, "{q:?}");
        }
    }
    // The explicit tag ids left PostgreSQL's sequence past them: the product can add a tag.
    let any = any.expect("a listed file");
    let rec = pgstore
        .add_user_tags(
            &disgrafs_store::Viewer::All,
            &any,
            &["brand-new-tag".to_string()],
        )
        .await
        .unwrap();
    assert!(
        rec.tags.iter().any(|t| t.name == "brand-new-tag"),
        "{rec:?}"
    );
}

/// Whether the servers this suite needs are here (or a skip message, when allowed).
fn servers_here(test: &str) -> bool {
    if pg::cluster().is_none() || weed::weed_binary(test).is_none() {
        return false;
    }
    let wrk = Command::new("wrk").arg("--version").output().is_ok();
    if !wrk {
        assert!(
            std::env::var("DISGRAFS_REQUIRE_WEED").as_deref() != Ok("1"),
            "{test}: wrk is not installed (scripts/deps.d/20-accel.sh installs it)"
        );
        eprintln!("skipping {test}: wrk is not installed");
    }
    wrk
}

#[test]
fn bench_scale_prints_every_row_with_sane_shapes() {
    let test = "bench_scale_prints_every_row_with_sane_shapes";
    if !servers_here(test) {
        return;
    }
    let out = Command::new(BIN)
        .args(["bench", "scale", "--json", "--docs", "6", "--size", "3MiB"])
        .args(["--seconds", "1", "--files", "400", "--reps", "3"])
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "bench scale failed: {stderr}");
    let rows: Vec<BenchRow> = serde_json::from_slice(&out.stdout)
        .unwrap_or_else(|e| panic!("not JSON rows ({e}): {stderr}"));
    let metric = |m: &str| {
        rows.iter()
            .find(|r| r.metric == m)
            .unwrap_or_else(|| panic!("no row {m:?} in {rows:#?}"))
    };
    // Tagging: 1 worker beside SQLite, then 2 and 4 beside 1 and beside linear per core.
    let one = metric("tagging, 1 worker process (PostgreSQL queue, SeaweedFS blobs)");
    assert_eq!((one.unit.as_str(), one.better), ("files/s", Better::Higher));
    for n in [2, 4] {
        let vs1 = metric(&format!("tagging, {n} worker processes vs 1"));
        assert_eq!(vs1.baseline, Some(one.candidate));
        let linear = metric(&format!("tagging, {n} worker processes vs linear per core"));
        let cores = std::thread::available_parallelism().map_or(1, |c| c.get());
        let want = one.candidate * n.min(cores) as f64;
        assert!((linear.baseline.unwrap() - want).abs() < 1e-6 * want.max(1.0));
        assert_eq!(linear.candidate, vs1.candidate);
    }
    // Blobs: local disk beside SeaweedFS, four rows.
    for m in [
        "upload 3.0 MiB (PUT, BLAKE3)",
        "download 3.0 MiB",
        "4 KiB GET, wrk -t2 -c64",
        "4 KiB GET p99",
    ] {
        let r = metric(m);
        assert_eq!(
            (r.baseline_name.as_str(), r.candidate_name.as_str()),
            ("local disk", "SeaweedFS S3")
        );
    }
    // Query: the generation row, then p50 and p99 of every question of the mix.
    let generation = metric("corpus generation");
    assert!(generation.note.as_deref().unwrap().contains("400 files"));
    let latencies: Vec<&BenchRow> = rows
        .iter()
        .filter(|r| r.baseline_name == "SQLite store")
        .collect();
    assert_eq!(latencies.len(), 2 * 14, "{latencies:#?}");
    for r in &latencies {
        assert_eq!(
            (r.unit.as_str(), r.candidate_name.as_str()),
            ("ms", "PostgreSQL store")
        );
        assert!(
            r.metric.ends_with(" p50") || r.metric.ends_with(" p99"),
            "{r:?}"
        );
    }
    for r in &rows {
        let figures = r.baseline.into_iter().chain([r.candidate]);
        for v in figures {
            assert!(v.is_finite() && v >= 0.0, "{r:?}");
        }
        if r.unit != "ms" {
            assert!(r.candidate > 0.0, "{r:?}");
        }
    }
    assert_eq!(rows.len(), 5 + 4 + 1 + 28, "{rows:#?}");
}

/// Bad flags: a one-line refusal before anything starts.
#[test]
fn bench_scale_refuses_zero_sizes_in_one_line() {
    let out = Command::new(BIN)
        .args(["bench", "scale", "--docs", "0"])
        .output()
        .unwrap();
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("must be at least 1"), "{err}");
    assert_eq!(err.trim().lines().count(), 1, "{err}");
    let out = Command::new(BIN)
        .args(["bench", "scale", "--parts", "tagging,nonsense"])
        .output()
        .unwrap();
    assert!(!out.status.success());
}
