//! The contract every `MetaStore` adapter keeps, written once and run against each adapter:
//! SQLite (a temporary file) and PostgreSQL (a database of its own per test in the binary's
//! private cluster, `support/pg.rs`; skipped with the reason when PostgreSQL is not installed).
//! Every method of the trait is exercised here.
#![allow(
    unused_crate_dependencies,
    reason = "integration tests link all of their package's dependencies; the lint checks lib and bin"
)]

mod support {
    pub mod pg;
}

use disgrafs_core::query::{Expr, parse};
use disgrafs_core::{FileKind, FileName, FolderPath, GraphNode, TagKind, TaggingState};
use disgrafs_store::*;
use std::collections::{BTreeMap, HashMap, HashSet};
use std::sync::Arc;

/// A store under test, and how to open the same database again (a new process would).
struct Db {
    m: Arc<dyn MetaStore>,
    target: Target,
    _dir: Option<tempfile::TempDir>,
}

enum Target {
    Sqlite(std::path::PathBuf),
    Postgres(String),
}

/// The threshold every contract is written for: tags under it are kept, not shown.
const MIN_CONFIDENCE: f64 = 0.2;

impl Db {
    async fn reopen(&self) -> Arc<dyn MetaStore> {
        match &self.target {
            Target::Sqlite(p) => Arc::new(SqliteMeta::open(p, MIN_CONFIDENCE).await.unwrap()),
            Target::Postgres(url) => Arc::new(PgMeta::connect(url, MIN_CONFIDENCE).await.unwrap()),
        }
    }

    /// The same database with queries bounded by `budget`.
    async fn reopen_with(&self, budget: QueryBudget) -> Arc<dyn MetaStore> {
        match &self.target {
            Target::Sqlite(p) => Arc::new(
                SqliteMeta::open_with_budget(p, MIN_CONFIDENCE, budget)
                    .await
                    .unwrap(),
            ),
            Target::Postgres(url) => Arc::new(
                PgMeta::connect_with_budget(url, MIN_CONFIDENCE, budget)
                    .await
                    .unwrap(),
            ),
        }
    }

    /// Whether one process owns the database, so a restart may take back its running jobs.
    fn single_owner(&self) -> bool {
        matches!(self.target, Target::Sqlite(_))
    }
}

async fn open_sqlite(_label: &str) -> Option<Db> {
    let d = tempfile::tempdir().unwrap();
    let path = d.path().join("t.db");
    Some(Db {
        m: Arc::new(SqliteMeta::open(&path, MIN_CONFIDENCE).await.unwrap()),
        target: Target::Sqlite(path),
        _dir: Some(d),
    })
}

async fn open_postgres(label: &str) -> Option<Db> {
    let url = support::pg::cluster()?.create_db(label);
    Some(Db {
        m: Arc::new(PgMeta::connect(&url, MIN_CONFIDENCE).await.unwrap()),
        target: Target::Postgres(url),
        _dir: None,
    })
}

fn name(s: &str) -> FileName {
    FileName::new(s).unwrap()
}

fn new<'a>(name: &'a FileName, hash: &'a str) -> NewFile<'a> {
    NewFile {
        name,
        folder: FolderPath::default(),
        hash,
        size: 10,
        mime: "text/plain",
        kind: FileKind::Document,
        owner: None,
    }
}

fn sized<'a>(name: &'a FileName, hash: &'a str, size: u64, mime: &'a str) -> NewFile<'a> {
    NewFile {
        size,
        mime,
        kind: if mime.starts_with("image/") {
            FileKind::Image
        } else {
            FileKind::Document
        },
        ..new(name, hash)
    }
}

fn h(n: u8) -> String {
    format!("{:064x}", n)
}

/// A hash whose first hex digit is `n` (< 16), so prefixes tell contents apart.
fn lh(n: u8) -> String {
    format!("{n:x}{}", "7".repeat(63))
}

fn tag_result(tags: &[(&str, f64)], version: u32) -> TagResult {
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
        fields: BTreeMap::from([("words".to_string(), "12".to_string())]),
        versions: BTreeMap::from([("keywords".to_string(), version)]),
        text: String::new(),
    }
}

/// Runs every queued job, tagging each content with what `tags` gives its hash (nothing if
/// absent).
async fn tag_all(m: &dyn MetaStore, tags: &HashMap<String, Vec<(&str, f64)>>) {
    while let Some(j) = m.claim_job(60_000).await.unwrap() {
        let t = tags.get(&j.hash).cloned().unwrap_or_default();
        m.complete_job(&j, tag_result(&t, 1)).await.unwrap();
    }
}

/// A new user's id.
async fn user(m: &dyn MetaStore, name: &str, role: disgrafs_core::auth::Scope) -> i64 {
    m.create_user(name, None, role).await.unwrap().unwrap()
}

fn strings(v: &[&str]) -> Vec<String> {
    v.iter().map(|s| s.to_string()).collect()
}

async fn names_of(m: &dyn MetaStore, q: &str) -> Vec<String> {
    let (files, total) = m
        .list_files(&Viewer::All, &parse(q).unwrap(), ListOptions::default())
        .await
        .unwrap();
    assert_eq!(total as usize, files.len(), "{q}: one page holds them all");
    let mut names: Vec<String> = files.into_iter().map(|f| f.name).collect();
    names.sort();
    names
}

// Files.

async fn files_contract(db: Db) {
    let m = &*db.m;
    let a = m.insert_file(new(&name("a.md"), &h(1))).await.unwrap();
    assert_eq!(
        (a.name.as_str(), a.size, a.hash.as_str()),
        ("a.md", 10, h(1).as_str())
    );
    assert_eq!(
        (a.mime.as_str(), a.kind),
        ("text/plain", FileKind::Document)
    );
    assert_eq!(a.tagging, TaggingState::Pending);
    assert_eq!(m.get_file(&Viewer::All, &a.id).await.unwrap().id, a.id);
    let c = m.get_content(&Viewer::All, &a.id).await.unwrap();
    assert_eq!(
        c,
        FileContent {
            name: "a.md".into(),
            hash: h(1),
            size: 10,
            mime: "text/plain".into()
        }
    );
    let copy = m.insert_file(new(&name("copy.md"), &h(1))).await.unwrap();
    assert_ne!(copy.id, a.id, "every upload is a record of its own");
    let s = m.stats(&Viewer::All).await.unwrap();
    assert_eq!(
        (s.files, s.blobs, s.bytes),
        (2, 1, 10),
        "one content, stored once"
    );

    for missing in ["nope", "0196a7c0-0000-7000-8000-000000000000"] {
        assert!(matches!(
            m.get_file(&Viewer::All, missing).await,
            Err(StoreError::NotFound(_))
        ));
        assert!(matches!(
            m.get_content(&Viewer::All, missing).await,
            Err(StoreError::NotFound(_))
        ));
        assert!(matches!(
            m.delete_file(&Viewer::All, missing).await,
            Err(StoreError::NotFound(_))
        ));
    }
    assert_eq!(
        m.delete_file(&Viewer::All, &a.id).await.unwrap(),
        None,
        "copy.md still uses it"
    );
    assert_eq!(
        m.delete_file(&Viewer::All, &copy.id).await.unwrap(),
        Some(h(1))
    );
    assert_eq!(m.stats(&Viewer::All).await.unwrap(), StoreStats::default());
    assert_eq!(m.job_stats().await.unwrap(), JobStats::default());
}

async fn names_contract(db: Db) {
    let m = &*db.m;
    // Names are checked where they enter (`FileName`); the store keeps them byte for byte.
    for n in [
        "报告 2026.md",
        "  spaced  .txt",
        "Ünïcödé.pdf",
        "a'b\"c;--.sql",
        "100%_$1?.txt",
    ] {
        let rec = m.insert_file(new(&name(n), &h(3))).await.unwrap();
        assert_eq!(m.get_file(&Viewer::All, &rec.id).await.unwrap().name, n);
        assert_eq!(m.get_content(&Viewer::All, &rec.id).await.unwrap().name, n);
    }
}

// Tags, hiding and the visibility rule.

async fn tags_contract(db: Db) {
    let m = &*db.m;
    let a = m.insert_file(new(&name("a.md"), &h(1))).await.unwrap();
    let b = m.insert_file(new(&name("b.md"), &h(1))).await.unwrap();
    m.insert_file(new(&name("c.md"), &h(2))).await.unwrap();
    let tags = HashMap::from([
        (h(1), vec![("rust", 0.9), ("faint", 0.1), ("async", 0.5)]),
        (h(2), vec![("rust", 0.4)]),
    ]);
    tag_all(m, &tags).await;
    let rec = m.get_file(&Viewer::All, &a.id).await.unwrap();
    assert_eq!(rec.tagging, TaggingState::Done);
    assert_eq!(
        (rec.mime.as_str(), rec.kind),
        ("text/markdown", FileKind::Document)
    );
    assert_eq!(rec.fields.get("words").map(String::as_str), Some("12"));
    let shown: Vec<(&str, TagKind, f64)> = rec
        .tags
        .iter()
        .map(|t| (t.name.as_str(), t.kind, t.weight))
        .collect();
    assert_eq!(
        shown,
        [("rust", TagKind::Auto, 0.9), ("async", TagKind::Auto, 0.5)],
        "by weight; under min_confidence kept but not shown"
    );
    assert_eq!(rec.tags[0].extractor.as_deref(), Some("keywords"));

    // User tags come first, at weight 1, and belong to the record only.
    let rec = m
        .add_user_tags(&Viewer::All, &a.id, &strings(&["project-x", "async"]))
        .await
        .unwrap();
    let shown: Vec<(&str, TagKind)> = rec.tags.iter().map(|t| (t.name.as_str(), t.kind)).collect();
    assert_eq!(
        shown,
        [
            ("async", TagKind::User),
            ("project-x", TagKind::User),
            ("rust", TagKind::Auto)
        ],
        "a user tag supersedes the automatic edge of that name"
    );
    assert!(
        rec.tags
            .iter()
            .filter(|t| t.kind == TagKind::User)
            .all(|t| t.weight == 1.0)
    );
    assert!(rec.modified >= rec.created);
    assert!(
        m.get_file(&Viewer::All, &b.id)
            .await
            .unwrap()
            .tags
            .iter()
            .all(|t| t.name != "project-x")
    );
    // Adding twice changes nothing.
    let again = m
        .add_user_tags(&Viewer::All, &a.id, &strings(&["project-x"]))
        .await
        .unwrap();
    assert_eq!(again.tags.len(), 3);

    // Hiding: removing an automatic tag hides it on this file only; the content keeps it.
    let rec = m
        .remove_tags(
            &Viewer::All,
            &a.id,
            &strings(&["rust", "project-x", "never-there"]),
        )
        .await
        .unwrap();
    let names: Vec<&str> = rec.tags.iter().map(|t| t.name.as_str()).collect();
    assert_eq!(names, ["async"]);
    let b_tags: Vec<String> = m
        .get_file(&Viewer::All, &b.id)
        .await
        .unwrap()
        .tags
        .into_iter()
        .map(|t| t.name)
        .collect();
    assert_eq!(b_tags, ["rust", "async"]);
    assert_eq!(
        names_of(m, "rust").await,
        ["b.md", "c.md"],
        "hidden on a.md"
    );
    // Adding a hidden tag back makes it the person's.
    let rec = m
        .add_user_tags(&Viewer::All, &a.id, &strings(&["rust"]))
        .await
        .unwrap();
    assert!(
        rec.tags
            .iter()
            .any(|t| t.name == "rust" && t.kind == TagKind::User)
    );
    // Removing the user tag "async" leaves the automatic one hidden, as the person asked.
    let rec = m
        .remove_tags(&Viewer::All, &a.id, &strings(&["async"]))
        .await
        .unwrap();
    assert!(rec.tags.iter().all(|t| t.name != "async"));

    for missing in ["nope"] {
        let t = strings(&["x"]);
        assert!(matches!(
            m.add_user_tags(&Viewer::All, missing, &t).await,
            Err(StoreError::NotFound(_))
        ));
        assert!(matches!(
            m.remove_tags(&Viewer::All, missing, &t).await,
            Err(StoreError::NotFound(_))
        ));
    }

    // The tag list: visible edges only, counted per file, user if any person used it.
    let all = m.tags(&Viewer::All, "", 10).await.unwrap();
    let listed: Vec<(&str, TagKind, u64)> = all
        .iter()
        .map(|t| (t.name.as_str(), t.kind, t.files))
        .collect();
    assert_eq!(
        listed,
        [("rust", TagKind::User, 3), ("async", TagKind::Auto, 1)],
        "faint is under the threshold; project-x was removed"
    );
    let r: Vec<String> = m
        .tags(&Viewer::All, "RU", 10)
        .await
        .unwrap()
        .into_iter()
        .map(|t| t.name)
        .collect();
    assert_eq!(r, ["rust"], "prefix, case-insensitive");
    assert_eq!(m.tags(&Viewer::All, "rust", 10).await.unwrap().len(), 1);
    assert!(
        m.tags(&Viewer::All, "%", 10).await.unwrap().is_empty(),
        "no pattern characters"
    );
    assert_eq!(m.tags(&Viewer::All, "", 1).await.unwrap().len(), 1);
    // Stats count every edge, shown or not: a has rust (user) and faint (async is hidden), b
    // has rust, faint and async, c has rust.
    assert_eq!(m.stats(&Viewer::All).await.unwrap().edges, 6);
}

// Listing and the query language, every form.

async fn listing_contract(db: Db) {
    let m = &*db.m;
    let files = [
        ("Annual Report.PDF", 1, 5_000_000, "application/pdf"),
        ("notes.md", 2, 3_000, "text/markdown"),
        ("photo.jpg", 3, 2_000_000, "image/jpeg"),
        ("draft notes.md", 4, 100, "text/markdown"),
        ("icon.png", 5, 4_096, "image/png"),
    ];
    let mut ids = HashMap::new();
    for (n, hash, size, mime) in files {
        let r = m
            .insert_file(sized(&name(n), &lh(hash), size, mime))
            .await
            .unwrap();
        ids.insert(n, r.id);
    }
    // Tags without changing the detected types: complete with each content's own type.
    let tags: HashMap<u8, Vec<(&str, f64)>> = HashMap::from([
        (1, vec![("report", 0.9), ("finance", 0.8)]),
        (2, vec![("rust", 0.9)]),
        (3, vec![("holiday", 0.7)]),
        (4, vec![("rust", 0.6), ("draft", 0.9)]),
        (5, vec![("weak", 0.05)]),
    ]);
    while let Some(j) = m.claim_job(60_000).await.unwrap() {
        let n = (0..16u8).find(|n| lh(*n) == j.hash).unwrap();
        let (_, _, _, mime) = files.iter().find(|f| f.1 == n).unwrap();
        let mut r = tag_result(&tags[&n], 1);
        r.mime = mime.to_string();
        r.kind = if mime.starts_with("image/") {
            FileKind::Image
        } else {
            FileKind::Document
        };
        m.complete_job(&j, r).await.unwrap();
    }
    // Tags arrive normalised (lower case) from the API.
    m.add_user_tags(
        &Viewer::All,
        &ids["photo.jpg"],
        &strings(&["and", "big data"]),
    )
    .await
    .unwrap();

    let cases: &[(&str, &[&str])] = &[
        (
            "",
            &[
                "Annual Report.PDF",
                "draft notes.md",
                "icon.png",
                "notes.md",
                "photo.jpg",
            ],
        ),
        ("rust", &["draft notes.md", "notes.md"]),
        ("RUST", &["draft notes.md", "notes.md"]),
        ("rust AND draft", &["draft notes.md"]),
        ("rust draft", &["draft notes.md"]),
        ("rust && draft", &["draft notes.md"]),
        ("rust AND NOT draft", &["notes.md"]),
        ("rust -draft", &["notes.md"]),
        ("rust !draft", &["notes.md"]),
        ("report OR holiday", &["Annual Report.PDF", "photo.jpg"]),
        ("report || holiday", &["Annual Report.PDF", "photo.jpg"]),
        (
            "(rust OR report) AND NOT finance",
            &["draft notes.md", "notes.md"],
        ),
        ("\"big data\"", &["photo.jpg"]),
        ("tag:AND", &["photo.jpg"]),
        ("weak", &[]),
        ("nosuchtag", &[]),
        ("name:notes", &["draft notes.md", "notes.md"]),
        ("name:REPORT", &["Annual Report.PDF"]),
        ("name:\"annual report\"", &["Annual Report.PDF"]),
        ("name:%", &[]),
        ("name:_", &[]),
        ("kind:image", &["icon.png", "photo.jpg"]),
        (
            "kind:document",
            &["Annual Report.PDF", "draft notes.md", "notes.md"],
        ),
        ("mime:image/*", &["icon.png", "photo.jpg"]),
        ("mime:image/png", &["icon.png"]),
        ("mime:text/markdown", &["draft notes.md", "notes.md"]),
        ("ext:pdf", &["Annual Report.PDF"]),
        ("ext:md", &["draft notes.md", "notes.md"]),
        ("ext:d", &[]),
        ("size>1MB", &["Annual Report.PDF", "photo.jpg"]),
        (
            "size>=4KiB",
            &["Annual Report.PDF", "icon.png", "photo.jpg"],
        ),
        ("size<4KiB", &["draft notes.md", "notes.md"]),
        ("size<=100", &["draft notes.md"]),
        ("size=4096", &["icon.png"]),
        (
            "created>=2026-01-01",
            &[
                "Annual Report.PDF",
                "draft notes.md",
                "icon.png",
                "notes.md",
                "photo.jpg",
            ],
        ),
        ("created<2000", &[]),
        ("modified<2000-01", &[]),
        (
            "modified>=2000-01-01T00:00:00Z AND kind:image",
            &["icon.png", "photo.jpg"],
        ),
    ];
    for (q, want) in cases {
        assert_eq!(names_of(m, q).await, strings(want), "query {q:?}");
        // A directory's entries answer every query form as the listing does.
        let expr = parse(q).unwrap();
        let entries = m
            .entries(&Viewer::All, EntryScope::Query(&expr), None, false, 100)
            .await
            .unwrap();
        let mut got: Vec<String> = entries.into_iter().map(|e| e.name).collect();
        got.sort();
        assert_eq!(got, strings(want), "entries of {q:?}");
    }
    // Oldest record first, newest first on demand, at most `limit`; an entry is its record's.
    let all = parse("").unwrap();
    let oldest = m
        .entries(&Viewer::All, EntryScope::Query(&all), None, false, 100)
        .await
        .unwrap();
    let created: Vec<_> = oldest.iter().map(|e| (e.created, e.id.clone())).collect();
    let mut sorted = created.clone();
    sorted.sort();
    assert_eq!(created, sorted);
    let newest = m
        .entries(&Viewer::All, EntryScope::Query(&all), None, true, 2)
        .await
        .unwrap();
    let tail: Vec<&FileEntry> = oldest.iter().rev().take(2).collect();
    assert_eq!(newest.iter().collect::<Vec<_>>(), tail);
    let prefixed = m
        .entries(
            &Viewer::All,
            EntryScope::Query(&all),
            Some("notes"),
            false,
            100,
        )
        .await
        .unwrap();
    let got: Vec<&str> = prefixed.iter().map(|e| e.name.as_str()).collect();
    assert_eq!(got, ["notes.md"], "a prefix of the lower-cased name");
    let prefixed = m
        .entries(
            &Viewer::All,
            EntryScope::Query(&all),
            Some("annual r"),
            false,
            100,
        )
        .await
        .unwrap();
    assert_eq!(prefixed.len(), 1, "case-insensitive");
    let rec = m.get_file(&Viewer::All, &oldest[0].id).await.unwrap();
    assert_eq!(oldest[0], FileEntry::of(&rec));
    let h3 = lh(3);
    assert_eq!(
        names_of(m, &format!("hash:{}", &h3[..8])).await,
        ["photo.jpg"],
        "a prefix"
    );
    assert_eq!(
        names_of(m, &format!("hash:{h3}")).await,
        ["photo.jpg"],
        "a whole hash"
    );
    assert_eq!(names_of(m, "hash:00000000").await.len(), 0);

    // Sorting and paging: by every key, both directions, with the total of all pages.
    let page = |sort, descending, limit, offset| ListOptions {
        sort,
        descending,
        limit,
        offset,
    };
    let (by_name, total) = m
        .list_files(&Viewer::All, &all, page(SortKey::Name, false, 2, 0))
        .await
        .unwrap();
    assert_eq!(total, 5);
    let got: Vec<&str> = by_name.iter().map(|f| f.name.as_str()).collect();
    assert_eq!(
        got,
        ["Annual Report.PDF", "draft notes.md"],
        "by lower-case name"
    );
    let (next, _) = m
        .list_files(&Viewer::All, &all, page(SortKey::Name, false, 2, 2))
        .await
        .unwrap();
    let got: Vec<&str> = next.iter().map(|f| f.name.as_str()).collect();
    assert_eq!(got, ["icon.png", "notes.md"]);
    let (last, _) = m
        .list_files(&Viewer::All, &all, page(SortKey::Name, false, 2, 4))
        .await
        .unwrap();
    assert_eq!(last.len(), 1);
    let (none, total) = m
        .list_files(&Viewer::All, &all, page(SortKey::Name, false, 2, 99))
        .await
        .unwrap();
    assert!(none.is_empty());
    assert_eq!(total, 5);
    let (by_size, _) = m
        .list_files(&Viewer::All, &all, page(SortKey::Size, true, 1, 0))
        .await
        .unwrap();
    assert_eq!(by_size[0].name, "Annual Report.PDF");
    let (by_mime, _) = m
        .list_files(&Viewer::All, &all, page(SortKey::Mime, false, 1, 0))
        .await
        .unwrap();
    assert_eq!(by_mime[0].mime, "application/pdf");
    let (newest, _) = m
        .list_files(&Viewer::All, &all, page(SortKey::Created, true, 5, 0))
        .await
        .unwrap();
    let (oldest, _) = m
        .list_files(&Viewer::All, &all, page(SortKey::Created, false, 5, 0))
        .await
        .unwrap();
    let rev: Vec<&str> = oldest.iter().rev().map(|f| f.id.as_str()).collect();
    let fwd: Vec<&str> = newest.iter().map(|f| f.id.as_str()).collect();
    assert_eq!(fwd, rev, "ties broken by id, the same both ways");
    // The last one touched is the most recently modified (a later millisecond than the others:
    // equal times would fall back to the id order).
    tokio::time::sleep(std::time::Duration::from_millis(5)).await;
    m.add_user_tags(&Viewer::All, &ids["notes.md"], &strings(&["touched"]))
        .await
        .unwrap();
    let (recent, _) = m
        .list_files(&Viewer::All, &all, page(SortKey::Modified, true, 1, 0))
        .await
        .unwrap();
    assert_eq!(recent[0].name, "notes.md");
    // Records in a list carry their tags.
    let (rust, _) = m
        .list_files(
            &Viewer::All,
            &parse("rust").unwrap(),
            ListOptions::default(),
        )
        .await
        .unwrap();
    assert!(rust.iter().all(|f| f.tags.iter().any(|t| t.name == "rust")));
}

// Related files, the graph, co-occurrence.

/// Four contents: a and b share two tags, a and c one common tag, d none.
async fn small_graph(m: &dyn MetaStore) -> HashMap<&'static str, String> {
    let mut ids = HashMap::new();
    for (n, hash) in [("a", 1), ("b", 2), ("c", 3), ("d", 4)] {
        ids.insert(n, m.insert_file(new(&name(n), &h(hash))).await.unwrap().id);
    }
    let tags = HashMap::from([
        (h(1), vec![("rust", 0.9), ("graph", 0.8), ("common", 0.5)]),
        (h(2), vec![("rust", 0.9), ("graph", 0.7), ("common", 0.5)]),
        (h(3), vec![("common", 0.5), ("faint", 0.1)]),
        (h(4), vec![("other", 0.9)]),
    ]);
    tag_all(m, &tags).await;
    ids
}

async fn related_contract(db: Db) {
    let m = &*db.m;
    let ids = small_graph(m).await;
    let rel = m.related(&Viewer::All, &ids["a"], 10).await.unwrap();
    let got: Vec<&str> = rel.iter().map(|r| r.file.name.as_str()).collect();
    assert_eq!(got, ["b", "c"], "most shared first; d shares nothing");
    assert_eq!(rel[0].shared_tags, strings(&["common", "graph", "rust"]));
    assert_eq!(rel[1].shared_tags, strings(&["common"]));
    assert!(rel[0].score > rel[1].score && rel[1].score > 0.0);
    assert!(
        !rel[0].file.tags.is_empty(),
        "related records carry their tags"
    );
    assert_eq!(
        m.related(&Viewer::All, &ids["a"], 1).await.unwrap().len(),
        1
    );
    assert!(
        m.related(&Viewer::All, &ids["d"], 10)
            .await
            .unwrap()
            .is_empty()
    );
    // A hidden tag is not shared.
    m.remove_tags(&Viewer::All, &ids["c"], &strings(&["common"]))
        .await
        .unwrap();
    let got: Vec<String> = m
        .related(&Viewer::All, &ids["a"], 10)
        .await
        .unwrap()
        .into_iter()
        .map(|r| r.file.name)
        .collect();
    assert_eq!(got, ["b"]);
    assert!(matches!(
        m.related(&Viewer::All, "nope", 10).await,
        Err(StoreError::NotFound(_))
    ));
}

async fn graph_contract(db: Db) {
    let m = &*db.m;
    let ids = small_graph(m).await;
    m.add_user_tags(&Viewer::All, &ids["c"], &strings(&["rust"]))
        .await
        .unwrap();
    let g = m
        .graph(&Viewer::All, &parse("").unwrap(), 100)
        .await
        .unwrap();
    assert!(!g.truncated);
    let files = g
        .nodes
        .iter()
        .filter(|n| matches!(n, GraphNode::File { .. }))
        .count();
    assert_eq!(files, 4);
    let tag = |name: &str| {
        g.nodes.iter().find_map(|n| match n {
            GraphNode::Tag {
                name: t,
                kind,
                degree,
                ..
            } if t == name => Some((*kind, *degree)),
            _ => None,
        })
    };
    assert_eq!(
        tag("rust"),
        Some((TagKind::User, 3)),
        "a tag any person used is a user tag"
    );
    assert_eq!(tag("common"), Some((TagKind::Auto, 3)));
    assert_eq!(tag("faint"), None, "under the threshold");
    assert_eq!(g.edges.len(), 3 + 3 + 2 + 1);
    let node_ids: HashSet<&str> = g.nodes.iter().map(|n| n.id()).collect();
    assert!(
        g.edges
            .iter()
            .all(|e| node_ids.contains(e.source.as_str()) && node_ids.contains(e.target.as_str()))
    );

    // A query narrows it; degrees stay those of the whole store.
    let g = m
        .graph(&Viewer::All, &parse("graph").unwrap(), 100)
        .await
        .unwrap();
    assert_eq!(
        g.nodes
            .iter()
            .filter(|n| matches!(n, GraphNode::File { .. }))
            .count(),
        2
    );
    let rust = g.nodes.iter().find_map(|n| match n {
        GraphNode::Tag { name, degree, .. } if name == "rust" => Some(*degree),
        _ => None,
    });
    assert_eq!(rust, Some(3));

    // The limit: a file joins with all its tags or not at all.
    let g = m.graph(&Viewer::All, &parse("").unwrap(), 3).await.unwrap();
    assert!(g.truncated);
    assert!(g.nodes.len() <= 3);
    let g = m.graph(&Viewer::All, &parse("").unwrap(), 0).await.unwrap();
    assert!(g.truncated && g.nodes.is_empty());
    let g = m
        .graph(&Viewer::All, &parse("nosuchtag").unwrap(), 10)
        .await
        .unwrap();
    assert!(g.nodes.is_empty() && !g.truncated);
}

/// The per-tag counts the store keeps equal those counted from every edge now: no tag's count
/// differs, and none is missing.
async fn assert_counts_live(db: &Db, when: &str) {
    let live = format!(
        "SELECT tag_id, count(*) AS files, count(*) FILTER (WHERE kind = 'user' OR weight >= {MIN_CONFIDENCE:?}) AS shown
           FROM edges GROUP BY tag_id"
    );
    let stored = "SELECT tag_id, files, shown FROM tag_counts WHERE files > 0";
    for (a, b) in [(live.as_str(), stored), (stored, live.as_str())] {
        let q = format!("SELECT CAST(count(*) AS TEXT) FROM ({a} EXCEPT {b}) d");
        assert_eq!(
            raw_sql(db, &q).await.as_deref(),
            Some("0"),
            "{when}: {a} EXCEPT {b}"
        );
    }
}

/// Tag counts (autocomplete, degrees, related files' rarity, the edge total) stay right
/// through every change of edges: user tags, hiding, copies of a content, retagging with other
/// tags, moves and deletes; and are recounted when the store opens with another threshold.
async fn counts_contract(db: Db) {
    let m = &*db.m;
    let ids = small_graph(m).await;
    assert_counts_live(&db, "tagged").await;
    let count = |tags: Vec<disgrafs_core::TagCount>, t: &str| {
        tags.iter().find(|c| c.name == t).map(|c| c.files)
    };
    assert_eq!(
        count(m.tags(&Viewer::All, "", 100).await.unwrap(), "common"),
        Some(3)
    );
    assert_eq!(
        count(m.tags(&Viewer::All, "", 100).await.unwrap(), "faint"),
        None,
        "not shown"
    );

    m.add_user_tags(&Viewer::All, &ids["c"], &strings(&["rust", "mine"]))
        .await
        .unwrap();
    m.remove_tags(&Viewer::All, &ids["a"], &strings(&["common"]))
        .await
        .unwrap();
    assert_counts_live(&db, "user tags and a hidden one").await;
    let tags = m.tags(&Viewer::All, "", 100).await.unwrap();
    assert_eq!(count(tags.clone(), "common"), Some(2));
    assert_eq!(count(tags.clone(), "rust"), Some(3));
    assert_eq!(count(tags, "mine"), Some(1));

    // A second record of b's content carries its tags; a retag of that content changes both.
    let b2 = m.insert_file(new(&name("b2"), &h(2))).await.unwrap();
    assert_counts_live(&db, "a copy").await;
    assert_eq!(
        count(m.tags(&Viewer::All, "gr", 10).await.unwrap(), "graph"),
        Some(3)
    );
    assert_eq!(m.enqueue_retag(Retag::All).await.unwrap(), 4);
    let retagged = HashMap::from([
        (h(1), vec![("rust", 0.9), ("common", 0.5)]),
        (h(2), vec![("fresh", 0.9), ("faint", 0.1)]),
        (h(3), vec![("common", 0.5)]),
        (h(4), vec![("other", 0.9)]),
    ]);
    tag_all(m, &retagged).await;
    assert_counts_live(&db, "retagged").await;
    let tags = m.tags(&Viewer::All, "", 100).await.unwrap();
    assert_eq!(
        count(tags.clone(), "graph"),
        None,
        "no file carries it any more"
    );
    assert_eq!(count(tags.clone(), "fresh"), Some(2));
    assert_eq!(count(tags, "rust"), Some(2), "a's and c's");
    // Every edge, shown or not: a's rust (common hidden), b's and b2's fresh and faint, c's
    // common, rust and mine, d's other.
    assert_eq!(
        m.stats(&Viewer::All).await.unwrap().edges,
        1 + 2 + 2 + 3 + 1
    );

    m.move_file(&Viewer::All, &ids["c"], &FolderPath::default(), &name("c2"))
        .await
        .unwrap();
    m.delete_file(&Viewer::All, &b2.id).await.unwrap();
    m.delete_file(&Viewer::All, &ids["d"]).await.unwrap();
    assert_counts_live(&db, "deletes").await;
    let tags = m.tags(&Viewer::All, "", 100).await.unwrap();
    assert_eq!(count(tags.clone(), "fresh"), Some(1));
    assert_eq!(count(tags, "other"), None, "its last file is gone");
    let g = m
        .graph(&Viewer::All, &parse("").unwrap(), 100)
        .await
        .unwrap();
    let degree = g.nodes.iter().find_map(|n| match n {
        GraphNode::Tag { name, degree, .. } if name == "rust" => Some(*degree),
        _ => None,
    });
    assert_eq!(degree, Some(2));
    // A one-tag query's total, past a full page, is the tag's count.
    let one = ListOptions {
        limit: 1,
        ..ListOptions::default()
    };
    let total = |m: Arc<dyn MetaStore>| async move {
        let (page, total) = m
            .list_files(&Viewer::All, &parse("rust").unwrap(), one)
            .await
            .unwrap();
        (page.len(), total)
    };
    assert_eq!(total(db.m.clone()).await, (1, 2));

    // Another threshold: the shown counts are those of the threshold the store opened with.
    let lower = match &db.target {
        Target::Sqlite(p) => {
            Arc::new(SqliteMeta::open(p, 0.05).await.unwrap()) as Arc<dyn MetaStore>
        }
        Target::Postgres(url) => Arc::new(PgMeta::connect(url, 0.05).await.unwrap()),
    };
    assert_eq!(
        count(lower.tags(&Viewer::All, "", 100).await.unwrap(), "faint"),
        Some(1)
    );
    assert_eq!(
        total(db.m.clone()).await,
        (1, 2),
        "counted again, not read from counts of another threshold"
    );
    drop(lower);
    let back = db.reopen().await;
    assert_eq!(
        count(back.tags(&Viewer::All, "", 100).await.unwrap(), "faint"),
        None
    );
    assert_counts_live(&db, "reopened").await;
}

async fn cooccurrence_contract(db: Db) {
    let m = &*db.m;
    small_graph(m).await;
    let co = m.cooccurrence(&Viewer::All, 10).await.unwrap();
    let got: Vec<(&str, &str, u64)> = co
        .iter()
        .map(|c| (c.a.as_str(), c.b.as_str(), c.files))
        .collect();
    assert_eq!(
        got,
        [
            ("common", "graph", 2),
            ("common", "rust", 2),
            ("graph", "rust", 2),
        ],
        "pairs by count, each pair in name order; faint is not shown"
    );
    assert_eq!(m.cooccurrence(&Viewer::All, 1).await.unwrap().len(), 1);
}

/// A query over its budget is aborted by the database and refused as `TooCostly`; records and
/// contents (what downloads read) are not bounded by it, and the next query has a whole budget.
async fn budget_contract(db: Db) {
    let m = &*db.m;
    let tags: Vec<String> = (0..40).map(|i| format!("t{i}")).collect();
    let mut first = None;
    for i in 0..300u32 {
        let hash = format!("{i:064x}");
        let f = m
            .insert_file(new(&name(&format!("f{i}.md")), &hash))
            .await
            .unwrap();
        m.add_user_tags(&Viewer::All, &f.id, &tags).await.unwrap();
        first.get_or_insert(f.id);
    }
    let id = first.unwrap();
    let tiny = db
        .reopen_with(QueryBudget {
            sqlite_steps: 1_000,
            pg_timeout: std::time::Duration::from_millis(1),
        })
        .await;
    let costly = |r: Result<(), StoreError>| match r {
        Err(StoreError::TooCostly(m)) => assert!(m.contains("narrow it"), "{m}"),
        other => panic!("expected TooCostly, got {other:?}"),
    };
    costly(tiny.cooccurrence(&Viewer::All, 50).await.map(drop));
    let q = parse(
        &(0..30)
            .map(|i| format!("-x{i} t{i}"))
            .collect::<Vec<_>>()
            .join(" "),
    )
    .unwrap();
    let opts = ListOptions {
        limit: 10,
        ..ListOptions::default()
    };
    costly(tiny.list_files(&Viewer::All, &q, opts).await.map(drop));
    // Every statement gets the whole budget again, and what a download reads is not bounded.
    costly(tiny.cooccurrence(&Viewer::All, 50).await.map(drop));
    assert_eq!(
        tiny.get_file(&Viewer::All, &id).await.unwrap().tags.len(),
        40
    );
    assert_eq!(tiny.get_content(&Viewer::All, &id).await.unwrap().size, 10);
    // The default budget answers the same questions.
    let co = m.cooccurrence(&Viewer::All, 3).await.unwrap();
    assert_eq!(co[0].files, 300);
    let (page, total) = m.list_files(&Viewer::All, &q, opts).await.unwrap();
    assert_eq!((page.len(), total), (10, 300));
}

/// What fsck and the start-up sweep read and repair: rows with their counts and records.
async fn consistency_contract(db: Db) {
    let m = &*db.m;
    let a1 = m.insert_file(new(&name("a1.md"), &h(1))).await.unwrap();
    m.insert_file(new(&name("a2.md"), &h(1))).await.unwrap();
    let b = m.insert_file(new(&name("b.md"), &h(2))).await.unwrap();
    let refs = |hash: String, refs, files| BlobRefs {
        hash,
        size: 10,
        refs,
        files,
    };
    assert_eq!(
        m.blob_refs().await.unwrap(),
        [refs(h(1), 2, 2), refs(h(2), 1, 1)]
    );
    assert!(m.blob_known(&h(1)).await.unwrap());
    assert!(!m.blob_known(&h(3)).await.unwrap());
    // Drift both ways: one count too high, one too low (a record inserted behind its back).
    raw_sql(
        &db,
        &format!("UPDATE blobs SET refs = 5 WHERE hash = '{}'", h(1)),
    )
    .await;
    raw_sql(
        &db,
        &format!(
            "INSERT INTO files (id, name, name_lower, folder, hash, size, created, modified)
             VALUES ('extra', 'c.md', 'c.md', '', '{}', 10, 0, 0)",
            h(2)
        ),
    )
    .await;
    assert_eq!(
        m.blob_refs().await.unwrap(),
        [refs(h(1), 5, 2), refs(h(2), 1, 2)]
    );
    assert_eq!(m.fix_refs(&h(1)).await.unwrap(), None);
    assert_eq!(m.fix_refs(&h(2)).await.unwrap(), None);
    assert_eq!(
        m.blob_refs().await.unwrap(),
        [refs(h(1), 2, 2), refs(h(2), 2, 2)]
    );
    // The set-right count holds: deleting one of b's records keeps its content.
    assert_eq!(m.delete_file(&Viewer::All, &b.id).await.unwrap(), None);
    assert_eq!(
        m.delete_file(&Viewer::All, "extra").await.unwrap(),
        Some(h(2))
    );
    // A row no record points at goes, and its hash is handed back for its bytes.
    raw_sql(
        &db,
        &format!("UPDATE blobs SET refs = 0 WHERE hash = '{}'", h(1)),
    )
    .await;
    raw_sql(&db, "DELETE FROM files").await;
    assert_eq!(m.fix_refs(&h(1)).await.unwrap(), Some(h(1)));
    assert!(!m.blob_known(&h(1)).await.unwrap());
    assert!(m.blob_refs().await.unwrap().is_empty());
    assert!(m.get_file(&Viewer::All, &a1.id).await.is_err());
}

// The job queue.

async fn jobs_contract(db: Db) {
    let m = &*db.m;
    let a = m.insert_file(new(&name("a.md"), &h(1))).await.unwrap();
    m.insert_file(new(&name("b.md"), &h(2))).await.unwrap();
    // The same content again queues nothing new.
    m.insert_file(new(&name("a-copy.md"), &h(1))).await.unwrap();
    assert_eq!(m.job_stats().await.unwrap().queued, 2);

    let j1 = m.claim_job(60_000).await.unwrap().unwrap();
    let j2 = m.claim_job(60_000).await.unwrap().unwrap();
    assert_ne!(j1.hash, j2.hash);
    assert_eq!(
        m.job_stats().await.unwrap(),
        JobStats {
            queued: 0,
            running: 2,
            failed: 0
        }
    );
    assert!(
        m.claim_job(60_000).await.unwrap().is_none(),
        "leased jobs are not handed out twice"
    );

    // A worker that dies loses its lease; the job comes back.
    m.renew_job(&j2, -1).await.unwrap();
    let again = m.claim_job(60_000).await.unwrap().unwrap();
    assert_eq!(again.hash, j2.hash);
    assert_eq!(again.attempts, 2);
    // The worker that lost it is fenced off: it can neither renew nor complete nor fail it.
    assert!(matches!(
        m.renew_job(&j2, 60_000).await,
        Err(StoreError::LeaseLost(_))
    ));
    m.complete_job(&j2, tag_result(&[("stale", 0.9)], 1))
        .await
        .unwrap();
    m.fail_job(&j2, "stale worker", 1).await.unwrap();
    assert_eq!(
        m.job_stats().await.unwrap().running,
        2,
        "the new holder still has it"
    );
    m.renew_job(&again, 60_000).await.unwrap();

    // Completing records tags on the content: both records with that hash carry them.
    let j_a = if j1.hash == h(1) {
        j1.clone()
    } else {
        again.clone()
    };
    m.complete_job(&j_a, tag_result(&[("rust", 0.9), ("faint", 0.05)], 1))
        .await
        .unwrap();
    let rec = m.get_file(&Viewer::All, &a.id).await.unwrap();
    let names: Vec<&str> = rec.tags.iter().map(|t| t.name.as_str()).collect();
    assert_eq!(
        names,
        ["rust"],
        "low-confidence tags are kept but not shown"
    );
    assert_eq!(names_of(m, "rust").await.len(), 2);
    assert_eq!(
        names_of(m, "stale").await.len(),
        0,
        "the fenced worker's result was dropped"
    );

    // Failing: retried with a delay, then marked failed.
    let j_b = if j1.hash == h(2) { j1 } else { again };
    m.fail_job(&j_b, "boom", 3).await.unwrap();
    assert_eq!(m.job_stats().await.unwrap().queued, 1);
    assert!(
        m.claim_job(60_000).await.unwrap().is_none(),
        "not before its backoff"
    );
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
    assert_eq!(
        m.job_stats().await.unwrap().queued,
        1,
        "fenced: attempt 3 is not held"
    );
    assert_eq!(m.job_stats().await.unwrap().failed, 0);

    // Retag: outdated ones only, then all; a queued one stays queued.
    let current = BTreeMap::from([("keywords".to_string(), 1u32)]);
    assert_eq!(
        m.enqueue_retag(Retag::Outdated(current)).await.unwrap(),
        1,
        "only the never-tagged content"
    );
    let newer = BTreeMap::from([("keywords".to_string(), 2u32)]);
    assert_eq!(m.enqueue_retag(Retag::Outdated(newer)).await.unwrap(), 2);
    assert_eq!(m.enqueue_retag(Retag::All).await.unwrap(), 2);
    assert_eq!(m.job_stats().await.unwrap().queued, 2);
    assert_eq!(
        m.get_file(&Viewer::All, &a.id).await.unwrap().tagging,
        TaggingState::Pending
    );

    // Deleting the last reference drops the content's job and says the blob can go.
    let (all, _) = m
        .list_files(&Viewer::All, &parse("").unwrap(), ListOptions::default())
        .await
        .unwrap();
    let b = all.iter().find(|f| f.name == "b.md").unwrap();
    assert_eq!(
        m.delete_file(&Viewer::All, &b.id).await.unwrap(),
        Some(h(2))
    );
    assert_eq!(m.job_stats().await.unwrap().queued, 1);
    assert_eq!(
        m.delete_file(&Viewer::All, &a.id).await.unwrap(),
        None,
        "a-copy.md still uses it"
    );
    assert!(matches!(
        m.get_file(&Viewer::All, &a.id).await,
        Err(StoreError::NotFound(_))
    ));
}

/// Retries are bounded: a job failed by its worker `MAX_JOB_ATTEMPTS` times ends failed with its
/// error, and a failed content is queued again by a new upload or a retag.
async fn retries_contract(db: Db) {
    let m = &*db.m;
    m.insert_file(new(&name("bad"), &h(5))).await.unwrap();
    for attempt in 1..=MAX_JOB_ATTEMPTS {
        let j = m.claim_job(60_000).await.unwrap().expect("queued again");
        assert_eq!(j.attempts, attempt);
        m.fail_job(&j, "extractor exploded", MAX_JOB_ATTEMPTS)
            .await
            .unwrap();
        if attempt < MAX_JOB_ATTEMPTS {
            // Skip the backoff: the test is about the count, not the delay.
            let queued = m.job_stats().await.unwrap().queued;
            assert_eq!(queued, 1);
            db_skip_backoff(&db).await;
        }
    }
    assert_eq!(
        m.job_stats().await.unwrap(),
        JobStats {
            queued: 0,
            running: 0,
            failed: 1
        }
    );
    assert!(
        m.claim_job(60_000).await.unwrap().is_none(),
        "not tried forever"
    );
    let f = &m
        .list_files(&Viewer::All, &parse("").unwrap(), ListOptions::default())
        .await
        .unwrap()
        .0[0];
    assert_eq!(f.tagging, TaggingState::Failed);
    assert_eq!(
        last_error(&db, &h(5)).await.as_deref(),
        Some("extractor exploded")
    );
    assert_eq!(m.enqueue_retag(Retag::All).await.unwrap(), 1);
    let j = m
        .claim_job(60_000)
        .await
        .unwrap()
        .expect("a retag queues a failed job again");
    assert_eq!(j.attempts, 1, "with its attempts reset");
}

async fn last_error(db: &Db, hash: &str) -> Option<String> {
    raw_sql(
        db,
        &format!("SELECT last_error FROM jobs WHERE hash = '{hash}'"),
    )
    .await
}

/// Makes every queued job ready now (the backoff is the adapter's; waiting it out would make
/// the test slow, not better).
async fn db_skip_backoff(db: &Db) {
    raw_sql(db, "UPDATE jobs SET run_after = 0 WHERE state = 'queued'").await;
}

/// Runs `q` on the database behind the store, beside it: the first column of its first row.
async fn raw_sql(db: &Db, q: &str) -> Option<String> {
    let row: Option<Option<String>> = match &db.target {
        Target::Sqlite(p) => {
            let pool = sqlx::SqlitePool::connect(&format!("sqlite://{}", p.display())).await;
            sqlx::query_scalar(q).fetch_optional(&pool.unwrap()).await
        }
        Target::Postgres(url) => {
            let pool = sqlx::PgPool::connect(url).await;
            sqlx::query_scalar(q).fetch_optional(&pool.unwrap()).await
        }
    }
    .unwrap();
    row.flatten()
}

/// A worker killed mid-job (its lease runs out) makes the job run elsewhere; one that kills
/// every worker ends failed after `MAX_JOB_ATTEMPTS`, not tried forever.
async fn poison_contract(db: Db) {
    let m = &*db.m;
    m.insert_file(new(&name("poison"), &h(7))).await.unwrap();
    for attempt in 1..=MAX_JOB_ATTEMPTS {
        let j = m
            .claim_job(-1)
            .await
            .unwrap()
            .expect("its lease ran out: claimed again");
        assert_eq!(j.attempts, attempt);
    }
    assert!(
        m.claim_job(-1).await.unwrap().is_none(),
        "not tried forever"
    );
    assert_eq!(m.job_stats().await.unwrap().failed, 1);
    let (files, _) = m
        .list_files(&Viewer::All, &parse("").unwrap(), ListOptions::default())
        .await
        .unwrap();
    assert_eq!(files[0].tagging, TaggingState::Failed);
    assert!(last_error(&db, &h(7)).await.unwrap().contains("died"));
}

/// Many workers claiming at once (each through its own connection pool, as separate processes
/// would) never hold the same job, and every job is handed out exactly once.
async fn concurrent_claims_contract(db: Db) {
    const JOBS: u8 = 40;
    const WORKERS: usize = 6;
    for n in 0..JOBS {
        db.m.insert_file(new(&name(&format!("f{n}")), &h(n)))
            .await
            .unwrap();
    }
    let mut workers = Vec::new();
    for _ in 0..WORKERS {
        let m = db.reopen().await;
        workers.push(tokio::spawn(async move {
            let mut got = Vec::new();
            while let Some(j) = m.claim_job(60_000).await.unwrap() {
                got.push(j.hash.clone());
                // Hold it across other claims before finishing.
                tokio::task::yield_now().await;
                m.complete_job(&j, TagResult::default()).await.unwrap();
            }
            got
        }));
    }
    let mut all = Vec::new();
    for w in workers {
        all.extend(w.await.unwrap());
    }
    let distinct: HashSet<&String> = all.iter().collect();
    assert_eq!(all.len(), JOBS as usize, "every job claimed once");
    assert_eq!(distinct.len(), JOBS as usize, "no job claimed twice");
    assert_eq!(db.m.job_stats().await.unwrap(), JobStats::default());
}

/// A process that starts again: with one owner (SQLite) it takes back what its previous run held
/// at once; shared (PostgreSQL), a running job may be a live worker's, so it comes back only when
/// its lease runs out.
async fn recovery_contract(db: Db) {
    db.m.insert_file(new(&name("x"), &h(9))).await.unwrap();
    let j = db.m.claim_job(600_000).await.unwrap().unwrap();
    let m = db.reopen().await;
    assert!(m.claim_job(60_000).await.unwrap().is_none(), "still leased");
    if db.single_owner() {
        assert_eq!(m.recover_jobs().await.unwrap(), 1);
    } else {
        assert_eq!(
            m.recover_jobs().await.unwrap(),
            0,
            "not another worker's job"
        );
        assert!(m.claim_job(60_000).await.unwrap().is_none());
        m.renew_job(&j, -1).await.unwrap();
    }
    let again = m.claim_job(60_000).await.unwrap().unwrap();
    assert_eq!((again.hash.as_str(), again.attempts), (j.hash.as_str(), 2));
}

// Full-text search.

/// A long document: `filler` words, numbered so no two are alike, with `deep` near the end,
/// far past the first part of the text.
fn long_document(deep: &str) -> String {
    let mut s = String::new();
    for i in 0..40_000 {
        s.push_str(&format!("filler{i} "));
        if i % 12 == 11 {
            s.push_str(".\n");
        }
    }
    s.push_str(&format!("At last the {deep} appears. "));
    s
}

async fn index(m: &dyn MetaStore, texts: &HashMap<String, String>) {
    while let Some(j) = m.claim_job(60_000).await.unwrap() {
        let mut r = tag_result(&[], 1);
        r.text = disgrafs_core::fulltext::index_text(texts.get(&j.hash).map_or("", |t| t));
        m.complete_job(&j, r).await.unwrap();
    }
}

async fn ranked(m: &dyn MetaStore, q: &str) -> Vec<disgrafs_core::FileRecord> {
    let opts = ListOptions {
        sort: SortKey::Relevance,
        ..ListOptions::default()
    };
    m.list_files(&Viewer::All, &parse(q).unwrap(), opts)
        .await
        .unwrap()
        .0
}

/// `text:` finds a word anywhere in the indexed text (not only the keywords), phrases, prefixes
/// and Chinese words; combines with every other form; ranks and highlights; is re-indexed by
/// re-tagging and removed with the content; and no query word reaches the database's own
/// full-text syntax.
async fn text_contract(db: Db) {
    let m = &*db.m;
    let long = long_document("zephyrine");
    assert!(
        long.find("zephyrine").unwrap() > 256 << 10,
        "beyond the first parts"
    );
    let docs: Vec<(&str, u8, String)> = vec![
        ("long.md", 1, long),
        (
            "borrow.md",
            2,
            "The borrow checker rejects it. Borrow once, borrow twice: borrow rules.".into(),
        ),
        (
            "once.md",
            3,
            "A long note about gardens, rivers, bread, mountains and weather, which mentions \
             borrow a single time among many other words about nothing in particular at all."
                .into(),
        ),
        ("reversed.md", 4, "Checker borrow, in that order.".into()),
        ("zh.md", 5, "我们在研究机器学习和自然语言处理".into()),
    ];
    let mut texts = HashMap::new();
    for (n, i, text) in &docs {
        m.insert_file(new(&name(n), &h(*i))).await.unwrap();
        texts.insert(h(*i), text.clone());
    }
    index(m, &texts).await;

    assert_eq!(names_of(m, "text:zephyrine").await, ["long.md"]);
    assert_eq!(names_of(m, "text:filler39000").await, ["long.md"]);
    assert_eq!(
        names_of(m, "text:\"borrow checker\"").await,
        ["borrow.md"],
        "a phrase keeps its order"
    );
    assert_eq!(
        names_of(m, "text:borr*").await,
        ["borrow.md", "once.md", "reversed.md"]
    );
    assert_eq!(names_of(m, "text:机器学习").await, ["zh.md"]);
    assert_eq!(names_of(m, "text:学习").await, ["zh.md"]);
    assert_eq!(
        names_of(m, "text:习").await,
        Vec::<String>::new(),
        "words, not characters"
    );
    assert_eq!(
        names_of(m, "text:borrow AND NOT name:once").await,
        ["borrow.md", "reversed.md"]
    );
    assert_eq!(
        names_of(m, "text:zephyrine OR name:zh kind:document").await,
        ["long.md", "zh.md"]
    );
    assert_eq!(names_of(m, "NOT text:borrow").await, ["long.md", "zh.md"]);

    // Ranking: the short document about borrowing before the long one that mentions it once.
    let by_rank: Vec<String> = ranked(m, "text:borrow")
        .await
        .into_iter()
        .map(|f| f.name)
        .collect();
    assert_eq!(by_rank.len(), 3);
    let at = |n: &str| by_rank.iter().position(|x| x == n).unwrap();
    assert!(at("borrow.md") < at("once.md"), "{by_rank:?}");
    // A file matched by the other side of an OR only comes after every text match.
    let mixed: Vec<String> = ranked(m, "text:zephyrine OR name:zh")
        .await
        .into_iter()
        .map(|f| f.name)
        .collect();
    assert_eq!(mixed, ["long.md", "zh.md"]);

    // Snippets: the matched word, highlighted, from deep inside the document.
    let hits = ranked(m, "text:zephyrine").await;
    let snippet = &hits[0].snippet;
    assert!(
        snippet
            .iter()
            .any(|p| p.hit && p.text.eq_ignore_ascii_case("zephyrine")),
        "{snippet:?}"
    );
    assert!(
        snippet.iter().any(|p| !p.hit && p.text.contains("appears")),
        "{snippet:?}"
    );
    let zh = ranked(m, "text:学习").await;
    assert!(
        zh[0].snippet.iter().any(|p| p.hit && p.text == "学习"),
        "{:?}",
        zh[0].snippet
    );
    assert!(
        ranked(m, "name:long").await[0].snippet.is_empty(),
        "no text term, no snippet"
    );

    // The database's own syntax never gets through: these are words, searched for as words.
    for q in [
        "text:\"a\\\" OR x NEAR(\"",
        "text:\"NEAR( AND * ^ : -\"",
        "text:\"'); DROP TABLE blob_texts; --\"",
        "text:\"\\\\ ' \\\" \"",
    ] {
        let Ok(e) = parse(q) else { continue };
        m.list_files(&Viewer::All, &e, ListOptions::default())
            .await
            .unwrap_or_else(|err| panic!("{q}: {err}"));
    }
    assert_eq!(names_of(m, "text:zephyrine").await, ["long.md"]);

    // Re-tagging replaces the text; deleting the content removes it.
    m.enqueue_retag(Retag::All).await.unwrap();
    let mut changed = texts.clone();
    changed.insert(h(1), "now it speaks of quasar".to_string());
    index(m, &changed).await;
    assert_eq!(names_of(m, "text:zephyrine").await, Vec::<String>::new());
    assert_eq!(names_of(m, "text:quasar").await, ["long.md"]);
    let id = m
        .list_files(
            &Viewer::All,
            &parse("name:borrow").unwrap(),
            ListOptions::default(),
        )
        .await
        .unwrap()
        .0[0]
        .id
        .clone();
    m.delete_file(&Viewer::All, &id).await.unwrap();
    assert_eq!(
        raw_sql(
            &db,
            &format!(
                "SELECT CAST(count(*) AS TEXT) FROM blob_texts WHERE hash = '{}'",
                h(2)
            )
        )
        .await
        .as_deref(),
        Some("0")
    );
    assert_eq!(names_of(m, "text:borrow").await, ["once.md", "reversed.md"]);
}

// Folders.

async fn folders_contract(db: Db) {
    let m = &*db.m;
    let readme = name("README.md");
    let folder = FolderPath::new("Docs/API").unwrap();
    let a = m
        .insert_file(NewFile {
            folder: folder.clone(),
            ..new(&readme, &h(1))
        })
        .await
        .unwrap();
    let b = m.insert_file(new(&readme, &h(2))).await.unwrap();
    assert_eq!(a.folder, "Docs/API");
    assert_eq!(b.folder, "");
    let user: Vec<&str> = a
        .tags
        .iter()
        .filter(|t| t.kind == TagKind::User)
        .map(|t| t.name.as_str())
        .collect();
    assert_eq!(user, ["api", "docs"], "each folder is a user tag");

    // Re-tagging replaces the content's automatic tags and keeps the folder tags.
    tag_all(m, &HashMap::from([(h(1), vec![("rust", 0.9)])])).await;
    m.enqueue_retag(Retag::All).await.unwrap();
    tag_all(m, &HashMap::from([(h(1), vec![("python", 0.9)])])).await;
    let mut names: Vec<String> = m
        .get_file(&Viewer::All, &a.id)
        .await
        .unwrap()
        .tags
        .into_iter()
        .map(|t| t.name)
        .collect();
    names.sort();
    assert_eq!(names, strings(&["api", "docs", "python"]));

    let root = FolderPath::default();
    assert_eq!(
        m.subfolders(&Viewer::All, &root).await.unwrap(),
        strings(&["Docs"])
    );
    let docs = FolderPath::new("Docs").unwrap();
    assert_eq!(
        m.subfolders(&Viewer::All, &docs).await.unwrap(),
        strings(&["API"])
    );
    assert!(m.folder_exists(&Viewer::All, &folder).await.unwrap());
    assert!(
        !m.folder_exists(&Viewer::All, &FolderPath::new("Nope").unwrap())
            .await
            .unwrap()
    );
    let entries = m
        .entries(&Viewer::All, EntryScope::Folder(&folder), None, false, 10)
        .await
        .unwrap();
    assert_eq!(entries, vec![FileEntry::of(&a)]);
    let in_root = m
        .entries(
            &Viewer::All,
            EntryScope::Folder(&FolderPath::default()),
            None,
            false,
            10,
        )
        .await
        .unwrap();
    assert_eq!(in_root, vec![FileEntry::of(&b)]);

    let empty = FolderPath::new("Empty/Inner").unwrap();
    assert!(m.make_folder(&Viewer::All, &empty).await.unwrap());
    assert!(
        !m.make_folder(&Viewer::All, &empty).await.unwrap(),
        "made once"
    );
    assert_eq!(
        m.subfolders(&Viewer::All, &root).await.unwrap(),
        strings(&["Docs", "Empty"])
    );
    m.remove_folder(&Viewer::All, &FolderPath::new("Empty").unwrap())
        .await
        .unwrap();
    assert!(
        !m.folder_exists(&Viewer::All, &empty).await.unwrap(),
        "inner folders go too"
    );
    assert_eq!(
        m.subfolders(&Viewer::All, &root).await.unwrap(),
        strings(&["Docs"])
    );

    let moved = m
        .move_file(
            &Viewer::All,
            &b.id,
            &FolderPath::new("New").unwrap(),
            &name("b.md"),
        )
        .await
        .unwrap();
    assert_eq!(
        (moved.folder.as_str(), moved.name.as_str()),
        ("New", "b.md")
    );
    assert_eq!(
        m.subfolders(&Viewer::All, &root).await.unwrap(),
        strings(&["Docs", "New"])
    );
    assert!(matches!(
        m.move_file(&Viewer::All, "nope", &root, &readme).await,
        Err(StoreError::NotFound(_))
    ));
}

fn upload_row(id: &str, length: u64) -> UploadRow {
    UploadRow {
        id: id.to_string(),
        length,
        name: "up.bin".to_string(),
        metadata: "filename dXAuYmlu".to_string(),
        offset: 0,
        file_id: None,
        owner: None,
    }
}

fn part(start: u64, len: u64, key: &str) -> UploadPart {
    UploadPart {
        start,
        len,
        key: key.to_string(),
    }
}

async fn uploads_contract(db: Db) {
    let m = &*db.m;
    let id = "0123456789abcdef0123456789abcdef";
    m.create_upload(&upload_row(id, 10), 2, 2).await.unwrap();
    assert_eq!(m.get_upload(id).await.unwrap(), upload_row(id, 10));
    assert!(matches!(
        m.get_upload("ffffffffffffffffffffffffffffffff").await,
        Err(StoreError::NotFound(_))
    ));
    assert_eq!(m.live_uploads().await.unwrap(), 1);
    // The lease: one token at a time; the holder renews; another waits for its expiry.
    assert!(m.lock_upload(id, "a", 60_000).await.unwrap());
    assert!(m.lock_upload(id, "a", 60_000).await.unwrap(), "renewed");
    assert!(!m.lock_upload(id, "b", 60_000).await.unwrap());
    // A part is added only by the holder, only at the current offset.
    assert!(!m.add_upload_part(id, "b", &part(0, 4, "k0")).await.unwrap());
    assert!(!m.add_upload_part(id, "a", &part(3, 4, "k0")).await.unwrap());
    assert!(m.add_upload_part(id, "a", &part(0, 4, "k0")).await.unwrap());
    assert_eq!(m.get_upload(id).await.unwrap().offset, 4);
    m.unlock_upload(id, "a").await.unwrap();
    assert!(
        m.lock_upload(id, "b", -1).await.unwrap(),
        "free once let go"
    );
    // An expired lease is anyone's; its old holder is fenced off.
    assert!(m.lock_upload(id, "c", 60_000).await.unwrap());
    assert!(!m.add_upload_part(id, "b", &part(4, 6, "kb")).await.unwrap());
    assert!(m.add_upload_part(id, "c", &part(4, 6, "k1")).await.unwrap());
    assert_eq!(
        m.upload_parts(id).await.unwrap(),
        [part(0, 4, "k0"), part(4, 6, "k1")]
    );
    assert!(matches!(
        m.finish_upload(id, "b", "file-1").await,
        Err(StoreError::Locked(_))
    ));
    let mut keys = m.finish_upload(id, "c", "file-1").await.unwrap();
    keys.sort();
    assert_eq!(keys, ["k0", "k1"]);
    let done = m.get_upload(id).await.unwrap();
    assert_eq!((done.offset, done.file_id.as_deref()), (10, Some("file-1")));
    assert!(m.upload_parts(id).await.unwrap().is_empty());
    assert_eq!(
        m.live_uploads().await.unwrap(),
        0,
        "a complete upload is not live"
    );
    // The bound counts uploads in progress.
    let (x, y, z) = (
        "10000000000000000000000000000000",
        "20000000000000000000000000000000",
        "30000000000000000000000000000000",
    );
    m.create_upload(&upload_row(x, 5), 2, 2).await.unwrap();
    m.create_upload(&upload_row(y, 5), 2, 2).await.unwrap();
    assert!(matches!(
        m.create_upload(&upload_row(z, 5), 2, 2).await,
        Err(StoreError::Busy(_))
    ));
    // Removal needs the lease, and returns the parts to delete.
    assert!(m.lock_upload(x, "d", 60_000).await.unwrap());
    assert!(m.add_upload_part(x, "d", &part(0, 2, "kx")).await.unwrap());
    assert!(matches!(
        m.delete_upload(x, "e").await,
        Err(StoreError::Locked(_))
    ));
    assert_eq!(m.delete_upload(x, "d").await.unwrap(), ["kx"]);
    assert!(matches!(
        m.get_upload(x).await,
        Err(StoreError::NotFound(_))
    ));
    // Idle: unchanged for longer than asked.
    assert!(m.idle_uploads(3_600_000).await.unwrap().is_empty());
    let mut idle = m.idle_uploads(-1_000).await.unwrap();
    idle.sort();
    assert_eq!(idle, [id, y]);
    // And each owner's: at a bound of one, a user with one in progress may start no second.
    use disgrafs_core::auth::Scope;
    let u = user(m, "uploader", Scope::Write).await;
    let theirs = |id: &str| UploadRow {
        owner: Some(u),
        ..upload_row(id, 5)
    };
    let (v, w) = (
        "40000000000000000000000000000000",
        "50000000000000000000000000000000",
    );
    m.create_upload(&theirs(v), 10, 1).await.unwrap();
    assert_eq!(m.get_upload(v).await.unwrap().owner, Some(u));
    assert!(matches!(
        m.create_upload(&theirs(w), 10, 1).await,
        Err(StoreError::TooMany(_))
    ));
    m.create_upload(&upload_row(w, 5), 10, 1).await.unwrap();
}

async fn accounts_contract(db: Db) {
    use disgrafs_core::auth::Scope;
    let m = &*db.m;
    assert_eq!(m.user_count().await.unwrap(), 0);
    let alice = m
        .create_user("alice", Some("$argon2id$x"), Scope::Write)
        .await
        .unwrap()
        .expect("a new name");
    assert_eq!(
        m.create_user("alice", None, Scope::Admin).await.unwrap(),
        None,
        "a taken name"
    );
    assert!(
        m.create_user("bob", None, Scope::Read)
            .await
            .unwrap()
            .is_some()
    );
    assert_eq!(m.user_count().await.unwrap(), 2);
    let u = m.user("alice").await.unwrap().unwrap();
    assert_eq!(
        (u.id, u.password.as_deref(), u.role),
        (alice, Some("$argon2id$x"), Scope::Write)
    );
    assert!(m.user("carol").await.unwrap().is_none());
    assert!(m.set_password("bob", Some("$argon2id$y")).await.unwrap());
    assert!(!m.set_password("carol", None).await.unwrap());
    assert_eq!(
        m.user("bob").await.unwrap().unwrap().password.as_deref(),
        Some("$argon2id$y")
    );

    let cred = |hash: &'static str, kind, scope, ttl_ms| NewCredential {
        user_id: alice,
        hash,
        kind,
        scope,
        ttl_ms,
    };
    let api = m
        .add_credential(&cred("h-api", CredentialKind::Api, Scope::Read, None))
        .await
        .unwrap();
    let c = m.credential("h-api").await.unwrap().unwrap();
    assert_eq!(
        (c.id, c.user.as_str(), c.kind, c.scope, c.expires),
        (api, "alice", CredentialKind::Api, Scope::Read, None)
    );
    assert!(m.credential("h-none").await.unwrap().is_none());
    // Expired on the database's clock: as good as absent.
    m.add_credential(&cred("h-old", CredentialKind::Api, Scope::Read, Some(-1)))
        .await
        .unwrap();
    assert!(m.credential("h-old").await.unwrap().is_none());
    let session = m
        .add_credential(&cred(
            "h-session",
            CredentialKind::Session,
            Scope::Write,
            Some(3_600_000),
        ))
        .await
        .unwrap();
    let s = m.credential("h-session").await.unwrap().unwrap();
    assert!(s.expires.is_some_and(|e| e > 0));
    // A new credential swept the expired one.
    let ids: Vec<i64> = m
        .credentials("alice")
        .await
        .unwrap()
        .iter()
        .map(|c| c.id)
        .collect();
    assert_eq!(ids, [api, session]);
    assert_eq!(
        raw_sql(&db, "SELECT CAST(count(*) AS TEXT) FROM tokens")
            .await
            .as_deref(),
        Some("2")
    );

    // A link is taken once, and only as a link.
    m.add_credential(&cred(
        "h-link",
        CredentialKind::Link,
        Scope::Admin,
        Some(60_000),
    ))
    .await
    .unwrap();
    assert!(
        m.take_credential("h-api", CredentialKind::Link)
            .await
            .unwrap()
            .is_none()
    );
    let taken = m
        .take_credential("h-link", CredentialKind::Link)
        .await
        .unwrap()
        .unwrap();
    assert_eq!((taken.user.as_str(), taken.scope), ("alice", Scope::Admin));
    assert!(
        m.take_credential("h-link", CredentialKind::Link)
            .await
            .unwrap()
            .is_none()
    );
    m.add_credential(&cred(
        "h-late",
        CredentialKind::Link,
        Scope::Admin,
        Some(-1),
    ))
    .await
    .unwrap();
    assert!(
        m.take_credential("h-late", CredentialKind::Link)
            .await
            .unwrap()
            .is_none()
    );

    assert!(m.revoke_credential(api).await.unwrap());
    assert!(!m.revoke_credential(api).await.unwrap());
    assert!(m.credential("h-api").await.unwrap().is_none());
    // Another process sees the same accounts.
    let again = db.reopen().await;
    assert!(again.credential("h-session").await.unwrap().is_some());
    assert_eq!(again.user_count().await.unwrap(), 2);
}

/// Ownership: a user sees their own files and those shared with a group they are in, and
/// nothing of another's (no record, name, tag, count, text match, edge or folder); changes
/// need ownership (a group's members only read), and another's file is NotFound. `Viewer::All`
/// sees everything.
async fn ownership_contract(db: Db) {
    let m = db.m.as_ref();
    use disgrafs_core::auth::Scope;
    let alice = user(m, "alice", Scope::Write).await;
    let bob = user(m, "bob", Scope::Write).await;
    let (a, b, all) = (Viewer::User(alice), Viewer::User(bob), Viewer::All);
    let (plan, notes) = (name("secret-plan.md"), name("notes.md"));
    let secret = m
        .insert_file(NewFile {
            folder: FolderPath::new("Vault").unwrap(),
            owner: Some(alice),
            ..new(&plan, &h(1))
        })
        .await
        .unwrap();
    let mine = m
        .insert_file(NewFile {
            owner: Some(bob),
            ..new(&notes, &h(2))
        })
        .await
        .unwrap();
    index(
        m,
        &HashMap::from([
            (h(1), "the zebra launch codes".to_string()),
            (h(2), "a plain shopping list".to_string()),
        ]),
    )
    .await;
    m.add_user_tags(&a, &secret.id, &strings(&["classified", "common"]))
        .await
        .unwrap();
    m.add_user_tags(&b, &mine.id, &strings(&["common"]))
        .await
        .unwrap();

    // Listing, search, text search, totals (a full page asks the tag's count).
    let ids = |v: Vec<disgrafs_core::FileRecord>| v.into_iter().map(|f| f.id).collect::<Vec<_>>();
    let list = |who: Viewer, q: &'static str, limit: u32| async move {
        let opts = ListOptions {
            limit,
            ..ListOptions::default()
        };
        m.list_files(&who, &parse(q).unwrap(), opts).await.unwrap()
    };
    let (files, total) = list(b, "", 100).await;
    assert_eq!((ids(files), total), (vec![mine.id.clone()], 1));
    assert_eq!(list(b, "tag:classified", 100).await.1, 0);
    assert_eq!(list(b, "secret", 100).await.1, 0);
    assert_eq!(list(b, "text:zebra", 100).await.1, 0);
    assert_eq!(list(a, "text:zebra", 100).await.1, 1);
    assert_eq!(
        list(b, "tag:common", 1).await.1,
        1,
        "a full page's total counts b's files"
    );
    assert_eq!(list(all, "tag:common", 1).await.1, 2);
    assert_eq!(list(all, "", 100).await.1, 2);

    // Records and contents.
    for r in [
        m.get_file(&b, &secret.id).await.map(|_| ()),
        m.get_content(&b, &secret.id).await.map(|_| ()),
        m.related(&b, &secret.id, 10).await.map(|_| ()),
    ] {
        assert!(matches!(r, Err(StoreError::NotFound(_))), "{r:?}");
    }
    assert_eq!(
        m.get_content(&a, &secret.id).await.unwrap().name,
        "secret-plan.md"
    );

    // Graph, related files, autocomplete, co-occurrence, stats, folders.
    let g = m.graph(&b, &Expr::All, 100).await.unwrap();
    let shown: Vec<String> = g.nodes.iter().map(|n| n.id().to_string()).collect();
    assert!(!shown.contains(&format!("f:{}", secret.id)), "{shown:?}");
    assert!(
        !shown.iter().any(|n| n == "t:classified" || n == "t:vault"),
        "{shown:?}"
    );
    for n in &g.nodes {
        if let GraphNode::Tag { name, degree, .. } = n {
            assert_eq!((name.as_str(), *degree), ("common", 1), "b's count only");
        }
    }
    let related = m.related(&b, &mine.id, 10).await.unwrap();
    assert!(related.is_empty(), "{related:?}");
    assert_eq!(m.related(&all, &mine.id, 10).await.unwrap().len(), 1);
    let tags: Vec<(String, u64)> = (m.tags(&b, "", 100).await.unwrap().into_iter())
        .map(|t| (t.name, t.files))
        .collect();
    assert_eq!(tags, vec![("common".to_string(), 1)]);
    assert!(m.tags(&b, "cla", 10).await.unwrap().is_empty());
    assert!(m.cooccurrence(&b, 10).await.unwrap().is_empty());
    assert_eq!(
        m.cooccurrence(&a, 10).await.unwrap().len(),
        3,
        "classified, common, vault"
    );
    let st = m.stats(&b).await.unwrap();
    assert_eq!(
        (st.files, st.blobs, st.bytes, st.tags, st.edges),
        (1, 1, 10, 1, 1)
    );
    assert_eq!(m.stats(&all).await.unwrap().files, 2);
    let root = FolderPath::default();
    assert!(m.subfolders(&b, &root).await.unwrap().is_empty());
    assert_eq!(m.subfolders(&a, &root).await.unwrap(), vec!["Vault"]);
    let vault = FolderPath::new("Vault").unwrap();
    assert!(m.folder_exists(&a, &vault).await.unwrap());
    assert!(
        !m.folder_exists(&b, &vault).await.unwrap(),
        "another's folder is not there"
    );
    // A folder made empty (MKCOL) is its maker's to see, and no other user's.
    let made = FolderPath::new("Bobs/Empty").unwrap();
    assert!(m.make_folder(&b, &made).await.unwrap());
    assert!(m.folder_exists(&b, &made).await.unwrap());
    assert!(!m.folder_exists(&a, &made).await.unwrap());
    assert!(m.folder_exists(&all, &made).await.unwrap());
    assert_eq!(m.subfolders(&b, &root).await.unwrap(), vec!["Bobs"]);
    assert_eq!(m.subfolders(&a, &root).await.unwrap(), vec!["Vault"]);
    m.remove_folder(&b, &FolderPath::new("Bobs").unwrap())
        .await
        .unwrap();
    assert!(
        !m.folder_exists(&all, &made).await.unwrap(),
        "bob's own, removed"
    );
    // A user may make a folder another made too (which tells nothing of theirs); removing it
    // ends only the user's claim, and what was only theirs.
    let inner = FolderPath::new("Vault/Inner").unwrap();
    assert!(m.make_folder(&b, &inner).await.unwrap());
    assert!(m.folder_exists(&b, &vault).await.unwrap());
    assert!(!m.make_folder(&b, &vault).await.unwrap(), "bob's already");
    m.remove_folder(&b, &vault).await.unwrap();
    assert!(m.folder_exists(&a, &vault).await.unwrap());
    assert!(!m.folder_exists(&b, &vault).await.unwrap());
    assert!(!m.folder_exists(&all, &inner).await.unwrap(), "only bob's");
    assert!(m.make_folder(&b, &vault).await.unwrap(), "bob's again");
    m.remove_folder(&b, &vault).await.unwrap();
    let in_vault = |who: Viewer| {
        let vault = &vault;
        async move {
            let scope = EntryScope::Folder(vault);
            m.entries(&who, scope, None, false, 10).await.unwrap().len()
        }
    };
    assert_eq!(in_vault(b).await, 0);
    assert_eq!(in_vault(a).await, 1);
    let entries = |who: Viewer, scope: EntryScope<'static>| async move {
        let e = m.entries(&who, scope, None, false, 10).await.unwrap();
        e.into_iter().map(|e| e.name).collect::<Vec<_>>()
    };
    static EVERY: Expr = Expr::All;
    assert_eq!(
        entries(b, EntryScope::Query(&EVERY)).await,
        vec![mine.name.clone()]
    );
    assert_eq!(entries(all, EntryScope::Query(&EVERY)).await.len(), 2);

    // Changes of another's file: NotFound, and nothing changed.
    let writes = |who: Viewer| {
        let id = secret.id.clone();
        async move {
            let t = strings(&["mine-now"]);
            vec![
                m.add_user_tags(&who, &id, &t).await.map(|_| ()),
                m.remove_tags(&who, &id, &strings(&["classified"]))
                    .await
                    .map(|_| ()),
                m.move_file(&who, &id, &FolderPath::default(), &name("x.md"))
                    .await
                    .map(|_| ()),
                m.share_file(&who, &id, None).await.map(|_| ()),
                m.delete_file(&who, &id).await.map(|_| ()),
            ]
        }
    };
    for r in writes(b).await {
        assert!(matches!(r, Err(StoreError::NotFound(_))), "{r:?}");
    }
    let kept = m.get_file(&all, &secret.id).await.unwrap();
    assert_eq!(
        (kept.name.as_str(), kept.folder.as_str()),
        ("secret-plan.md", "Vault")
    );
    assert!(kept.tags.iter().any(|t| t.name == "classified"));

    // Shared with a group bob is in: bob reads it, and still cannot change it.
    assert!(m.create_group("team").await.unwrap().is_some());
    assert!(m.create_group("team").await.unwrap().is_none());
    assert!(m.add_group_member("team", "bob").await.unwrap());
    assert!(!m.add_group_member("nobody", "bob").await.unwrap());
    assert!(!m.add_group_member("team", "nobody").await.unwrap());
    // An unknown group is the caller's mistake, not a missing file.
    let r = m.share_file(&a, &secret.id, Some("nobody")).await;
    assert!(matches!(r, Err(StoreError::Invalid(_))), "{r:?}");
    m.share_file(&a, &secret.id, Some("team")).await.unwrap();
    assert_eq!(
        m.get_file(&b, &secret.id).await.unwrap().name,
        "secret-plan.md"
    );
    assert_eq!(list(b, "tag:classified", 100).await.1, 1);
    assert_eq!(list(b, "text:zebra", 100).await.1, 1);
    assert!(m.tags(&b, "cla", 10).await.unwrap().len() == 1);
    for r in writes(b).await {
        assert!(matches!(r, Err(StoreError::NotFound(_))), "{r:?}");
    }
    // Unshared, it is gone again; its owner may delete it.
    m.share_file(&a, &secret.id, None).await.unwrap();
    assert!(m.get_file(&b, &secret.id).await.is_err());
    assert_eq!(m.delete_file(&a, &secret.id).await.unwrap(), Some(h(1)));
}

/// Share links: recorded by their hash, a file's link only by the file's owner, listed and
/// revoked by their maker (any by [`Viewer::All`]), gone when expired, when the file is deleted
/// and when revoked; a link carries its maker's role.
async fn shares_contract(db: Db) {
    let m = db.m.as_ref();
    use disgrafs_core::auth::Scope;
    let alice = user(m, "alice", Scope::Write).await;
    let bob = user(m, "bob", Scope::Admin).await;
    let (a, b) = (Viewer::User(alice), Viewer::User(bob));
    let f = m
        .insert_file(NewFile {
            owner: Some(alice),
            ..new(&name("plan.md"), &h(1))
        })
        .await
        .unwrap();
    let file = ShareTarget::File(f.id.clone());
    let share = |user_id, maker, hash: &'static str, target: &ShareTarget, ttl_ms| {
        let target = target.clone();
        async move {
            m.add_share(&NewShare {
                user_id,
                maker,
                hash,
                target: &target,
                password: Some("$argon2id$phc"),
                ttl_ms,
            })
            .await
        }
    };
    // Not bob's file (bob's own viewer, not his admin one): NotFound, nothing recorded.
    let r = share(bob, b, "h-bob", &file, None).await;
    assert!(matches!(r, Err(StoreError::NotFound(_))), "{r:?}");
    assert!(m.share("h-bob").await.unwrap().is_none());
    let id = share(alice, a, "h-file", &file, None).await.unwrap();
    let q = ShareTarget::Query("tag:rust".into());
    let qid = share(bob, Viewer::All, "h-query", &q, Some(3_600_000))
        .await
        .unwrap();
    share(alice, a, "h-gone", &q, Some(-1)).await.unwrap();

    let got = m.share("h-file").await.unwrap().unwrap();
    assert_eq!(
        (
            got.id,
            got.user_id,
            got.user.as_str(),
            got.role,
            &got.target
        ),
        (id, alice, "alice", Scope::Write, &file)
    );
    assert_eq!(got.password.as_deref(), Some("$argon2id$phc"));
    assert_eq!(got.expires, None);
    let got = m.share("h-query").await.unwrap().unwrap();
    assert_eq!((got.role, &got.target), (Scope::Admin, &q));
    assert!(got.expires.unwrap() > got.created);
    assert!(m.share("h-gone").await.unwrap().is_none(), "expired");
    assert!(m.share("nope").await.unwrap().is_none());

    let ids = |v: Vec<ShareRow>| v.into_iter().map(|s| s.id).collect::<Vec<_>>();
    assert_eq!(ids(m.shares(&a).await.unwrap()), vec![id]);
    assert_eq!(ids(m.shares(&Viewer::All).await.unwrap()), vec![qid, id]);
    // Revocation: only by the maker or Viewer::All.
    assert!(!m.revoke_share(&a, qid).await.unwrap());
    assert!(m.revoke_share(&Viewer::All, qid).await.unwrap());
    assert!(m.share("h-query").await.unwrap().is_none());
    assert!(!m.revoke_share(&Viewer::All, qid).await.unwrap(), "once");
    // A file's links go with the file.
    m.delete_file(&a, &f.id).await.unwrap();
    assert!(m.share("h-file").await.unwrap().is_none());
    assert!(m.shares(&Viewer::All).await.unwrap().is_empty());
}

async fn quotas_contract(db: Db) {
    let m = db.m.as_ref();
    use disgrafs_core::auth::Scope;
    let alice = user(m, "alice", Scope::Write).await;
    let bob = user(m, "bob", Scope::Write).await;
    let usage = |u: i64| async move { m.usage(u).await.unwrap().unwrap() };
    assert_eq!(
        usage(alice).await,
        Usage::default(),
        "no limit, nothing used"
    );
    assert_eq!(m.usage(9_999).await.unwrap(), None);
    assert!(m.set_quota("alice", Some(100)).await.unwrap());
    assert!(!m.set_quota("nobody", Some(100)).await.unwrap());
    let (a, b) = (name("a.bin"), name("b.bin"));
    let put = |n: &'static str, hash: String, size: u64, owner: i64| async move {
        let file = name(n);
        m.insert_file(NewFile {
            owner: Some(owner),
            ..sized(&file, &hash, size, "application/octet-stream")
        })
        .await
    };
    let first = put("a.bin", h(1), 60, alice).await.unwrap();
    assert_eq!(
        usage(alice).await,
        Usage {
            used: 60,
            quota: Some(100)
        }
    );
    // Over the quota: refused, and nothing of it recorded.
    let r = put("b.bin", h(2), 41, alice).await;
    assert!(matches!(r, Err(StoreError::OverQuota(_))), "{r:?}");
    assert_eq!(usage(alice).await.used, 60);
    assert!(
        !m.blob_known(&h(2)).await.unwrap(),
        "no content row of a refusal"
    );
    // What fits exactly is taken; a copy of shared content counts again.
    put("b.bin", h(2), 40, alice).await.unwrap();
    assert_eq!(usage(alice).await.room(), Some(0));
    assert!(matches!(
        put("c.bin", h(1), 60, alice).await,
        Err(StoreError::OverQuota(_))
    ));
    // Another user's files count to them alone.
    put("a.bin", h(1), 60, bob).await.unwrap();
    assert_eq!(
        usage(bob).await,
        Usage {
            used: 60,
            quota: None
        }
    );
    assert_eq!(usage(alice).await.used, 100);
    // A deletion gives the room back; a lower quota refuses, never removes.
    m.delete_file(&Viewer::User(alice), &first.id)
        .await
        .unwrap();
    assert_eq!(usage(alice).await.used, 40);
    assert!(m.set_quota("alice", Some(10)).await.unwrap());
    assert_eq!(usage(alice).await.room(), Some(0));
    assert!(matches!(
        put("d.bin", h(3), 1, alice).await,
        Err(StoreError::OverQuota(_))
    ));
    assert!(m.set_quota("alice", None).await.unwrap());
    put("d.bin", h(3), 1 << 40, alice).await.unwrap();
    assert_eq!(
        m.user("alice").await.unwrap().unwrap().usage.used,
        40 + (1 << 40)
    );
    // Records of no one (internal callers) count to no one.
    m.insert_file(new(&a, &h(4))).await.unwrap();
    m.insert_file(new(&b, &h(5))).await.unwrap();
    assert_eq!(usage(bob).await.used, 60);
}

/// Each contract, as a test per adapter.
macro_rules! contracts {
    ($adapter:ident, $open:ident: $($contract:ident),* $(,)?) => {
        mod $adapter {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn $contract() {
                    let Some(db) = super::$open(stringify!($contract)).await else { return };
                    super::$contract(db).await;
                }
            )*
        }
    };
}

macro_rules! every_contract {
    ($($adapter:ident: $open:ident),*) => {
        $(contracts!($adapter, $open:
            files_contract, names_contract, tags_contract, listing_contract, related_contract,
            graph_contract, cooccurrence_contract, jobs_contract, retries_contract,
            poison_contract, concurrent_claims_contract, recovery_contract, text_contract,
            folders_contract, uploads_contract, budget_contract, consistency_contract,
            counts_contract, accounts_contract, ownership_contract, shares_contract,
            quotas_contract);)*
    };
}

every_contract!(sqlite: open_sqlite, postgres: open_postgres);
