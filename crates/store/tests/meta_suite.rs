//! The contract every `MetaStore` adapter keeps, run against each adapter (SQLite here; the
//! PostgreSQL adapter of the scale-out issue joins this list).
#![allow(
    unused_crate_dependencies,
    reason = "integration tests link all of their package's dependencies; the lint checks lib and bin"
)]

use disgrafs_core::query::parse;
use disgrafs_core::{FileKind, FileName};
use disgrafs_store::*;
use std::collections::BTreeMap;
use std::sync::Arc;

async fn sqlite(dir: &std::path::Path) -> Arc<dyn MetaStore> {
    Arc::new(SqliteMeta::open(&dir.join("t.db"), 0.2).await.unwrap())
}

fn name(s: &str) -> FileName {
    FileName::new(s).unwrap()
}

fn new<'a>(name: &'a FileName, hash: &'a str) -> NewFile<'a> {
    NewFile {
        name,
        hash,
        size: 10,
        mime: "text/plain",
        kind: FileKind::Document,
    }
}

fn h(n: u8) -> String {
    format!("{:064x}", n)
}

async fn tag_result(tags: &[(&str, f64)], version: u32) -> TagResult {
    TagResult {
        mime: "text/markdown".into(),
        kind: FileKind::Document,
        tags: tags
            .iter()
            .map(|(n, w)| NewAutoTag {
                name: n.to_string(),
                extractor: "keywords".into(),
                version,
                confidence: *w,
            })
            .collect(),
        fields: BTreeMap::new(),
        versions: BTreeMap::from([("keywords".to_string(), version)]),
    }
}

async fn jobs_contract(m: Arc<dyn MetaStore>) {
    let a = m.insert_file(new(&name("a.md"), &h(1))).await.unwrap();
    m.insert_file(new(&name("b.md"), &h(2))).await.unwrap();
    // The same content again queues nothing new.
    m.insert_file(new(&name("a-copy.md"), &h(1))).await.unwrap();
    assert_eq!(m.job_stats().await.unwrap().queued, 2);

    let j1 = m.claim_job(60_000).await.unwrap().unwrap();
    let j2 = m.claim_job(60_000).await.unwrap().unwrap();
    assert_ne!(j1.hash, j2.hash);
    assert!(
        m.claim_job(60_000).await.unwrap().is_none(),
        "leased jobs are not handed out twice"
    );

    // A worker that dies loses its lease; the job comes back.
    let j3 = m.claim_job(-1).await.unwrap();
    assert!(j3.is_none());
    m.renew_job(&j2, -1).await.unwrap();
    let again = m.claim_job(60_000).await.unwrap().unwrap();
    assert_eq!(again.hash, j2.hash);
    assert_eq!(again.attempts, 2);

    // Completing records tags on the content: both records with that hash carry them.
    let j_a = if j1.hash == h(1) {
        j1.clone()
    } else {
        again.clone()
    };
    m.complete_job(&j_a, tag_result(&[("rust", 0.9), ("faint", 0.05)], 1).await)
        .await
        .unwrap();
    let rec = m.get_file(&a.id).await.unwrap();
    assert_eq!(rec.mime, "text/markdown");
    let names: Vec<&str> = rec.tags.iter().map(|t| t.name.as_str()).collect();
    assert_eq!(
        names,
        ["rust"],
        "low-confidence tags are kept but not shown"
    );
    let (copies, _) = m
        .list_files(&parse("rust").unwrap(), ListOptions::default())
        .await
        .unwrap();
    assert_eq!(copies.len(), 2);

    // Failing: retried with a delay, then marked failed.
    let j_b = if j1.hash == h(2) { j1 } else { again };
    m.fail_job(
        &Job {
            attempts: 3,
            ..j_b.clone()
        },
        "boom",
        3,
    )
    .await
    .unwrap();
    assert_eq!(m.job_stats().await.unwrap().failed, 1);

    // Retag: outdated ones only, then all; failed ones are queued again.
    let current = BTreeMap::from([("keywords".to_string(), 1u32)]);
    assert_eq!(
        m.enqueue_retag(Retag::Outdated(current)).await.unwrap(),
        1,
        "only the never-tagged content"
    );
    let newer = BTreeMap::from([("keywords".to_string(), 2u32)]);
    assert_eq!(m.enqueue_retag(Retag::Outdated(newer)).await.unwrap(), 2);
    assert_eq!(m.job_stats().await.unwrap().queued, 2);

    // Deleting the last reference drops the content's job and says the blob can go.
    let (all, _) = m
        .list_files(&parse("").unwrap(), ListOptions::default())
        .await
        .unwrap();
    let b = all.iter().find(|f| f.name == "b.md").unwrap();
    assert_eq!(m.delete_file(&b.id).await.unwrap(), Some(h(2)));
    assert_eq!(m.job_stats().await.unwrap().queued, 1);
    assert_eq!(
        m.delete_file(&a.id).await.unwrap(),
        None,
        "a-copy.md still uses it"
    );
    assert!(matches!(
        m.get_file(&a.id).await,
        Err(StoreError::NotFound(_))
    ));
}

async fn recovery_contract(dir: &std::path::Path) {
    let m = sqlite(dir).await;
    m.insert_file(new(&name("x"), &h(9))).await.unwrap();
    let j = m.claim_job(600_000).await.unwrap().unwrap();
    drop(m);
    // A new run of the process re-queues what the old one held.
    let m = sqlite(dir).await;
    assert!(m.claim_job(60_000).await.unwrap().is_none(), "still leased");
    assert_eq!(m.recover_jobs().await.unwrap(), 1);
    assert_eq!(m.claim_job(60_000).await.unwrap().unwrap().hash, j.hash);
}

async fn poison_contract(m: Arc<dyn MetaStore>) {
    m.insert_file(new(&name("poison"), &h(7))).await.unwrap();
    // A worker that dies on this content, every time (its lease runs out at once here).
    for attempt in 1..=MAX_JOB_ATTEMPTS {
        let j = m.claim_job(-1).await.unwrap().expect("claimed again");
        assert_eq!(j.attempts, attempt);
    }
    assert!(
        m.claim_job(-1).await.unwrap().is_none(),
        "not tried forever"
    );
    assert_eq!(m.job_stats().await.unwrap().failed, 1);
    let (files, _) = m
        .list_files(&parse("").unwrap(), ListOptions::default())
        .await
        .unwrap();
    assert_eq!(files[0].tagging, disgrafs_core::TaggingState::Failed);
}

async fn names_contract(m: Arc<dyn MetaStore>) {
    // Names are checked where they enter (`FileName`); the store keeps them byte for byte.
    for n in [
        "报告 2026.md",
        "  spaced  .txt",
        "Ünïcödé.pdf",
        "a'b\"c;--.sql",
    ] {
        let rec = m.insert_file(new(&name(n), &h(3))).await.unwrap();
        assert_eq!(m.get_file(&rec.id).await.unwrap().name, n);
        assert_eq!(m.get_content(&rec.id).await.unwrap().name, n);
    }
}

#[tokio::test]
async fn sqlite_jobs() {
    let d = tempfile::tempdir().unwrap();
    jobs_contract(sqlite(d.path()).await).await;
}

#[tokio::test]
async fn sqlite_recovery() {
    let d = tempfile::tempdir().unwrap();
    recovery_contract(d.path()).await;
}

#[tokio::test]
async fn sqlite_names() {
    let d = tempfile::tempdir().unwrap();
    names_contract(sqlite(d.path()).await).await;
}

#[tokio::test]
async fn sqlite_poison() {
    let d = tempfile::tempdir().unwrap();
    poison_contract(sqlite(d.path()).await).await;
}
