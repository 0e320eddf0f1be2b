//! `bench query`: a realistic corpus of N files built in a store, and a fixed mix of questions
//! asked through the store's API, each beside the same question written by hand as SQL and asked
//! of the same SQLite database in the same run (the physical floor).
//!
//! The corpus ([`generate`]): Zipf-distributed automatic tags (a few hubs such as `english` on
//! ~40% of files, a long tail of rare ones), 1–12 per file (6.5 on average), a share of user tags
//! and of hidden automatic tags, names built from the tag vocabulary, log-uniform sizes, dates over
//! five years. Deterministic for a seed.
//!
//! The generator writes rows straight into the product's schema (after `Store::open_local` made
//! it), rather than through a bulk API of the store: the records it makes have no content in the
//! blob store, and the store's one invariant is that a record never points at content that is not
//! stored; an API that writes such records would be an API to break it. The rows are written by
//! this suite only, on a database of its own, and [`tests`] asks every question of the mix of a
//! small corpus both ways, so a schema change that the generator misses fails there.
//!
//! The hand-written twins ([`Question::floor_sql`]) are deliberately a second spelling of each
//! question (with the visibility rule of edges spelled out again): they are the measure.

use crate::row::{BenchRow, Better};
use anyhow::{Context, bail};
use disgrafs_core::query::parse;
use disgrafs_store::{ListOptions, RELATED_SCAN_LIMIT, SortKey, Store, Viewer};
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use sqlx::sqlite::{SqliteConnectOptions, SqlitePool, SqlitePoolOptions};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

#[derive(Debug, clap::Args)]
pub struct Args {
    /// Files in the corpus.
    #[arg(long, default_value_t = 100_000)]
    pub files: u64,
    /// Times each question of the mix is asked, each time with other values (p50 and p99 over
    /// these).
    #[arg(long, default_value_t = 50)]
    pub reps: usize,
    /// Build the corpus in this directory (kept, and reused when it already holds a corpus of
    /// this size) instead of a temporary one.
    #[arg(long)]
    pub dir: Option<PathBuf>,
}

/// The threshold the server applies by default: the corpus is read as `serve` would read it.
pub const MIN_CONFIDENCE: f64 = disgrafs_tagger::DEFAULT_MIN_CONFIDENCE;
/// The corpus's "now": 2026-01-01T00:00:00Z, in unix ms; files are dated over the five years
/// before it.
const NOW_MS: i64 = 1_767_225_600_000;
const DAY_MS: i64 = 86_400_000;
const SPAN_DAYS: i64 = 5 * 365;
/// Tags that nearly every corpus has on a large share of its files, first in Zipf rank.
const HUBS: &[&str] = &[
    "english", "document", "text", "html", "code", "pdf", "image", "markdown", "report", "photo",
];
/// The user's own tags, Zipf-distributed too.
const USER_TAGS: &[&str] = &[
    "todo",
    "keep",
    "review",
    "family",
    "work",
    "invoice",
    "taxes",
    "trip-2024",
    "thesis",
    "draft",
    "shared",
    "archive-me",
    "project-orion",
    "project-vega",
    "reading",
    "music-gig",
];
/// Kinds with their share (per mille), MIME type and extensions.
const KINDS: &[(u32, &str, &str, &[&str])] = &[
    (250, "document", "application/pdf", &["pdf"]),
    (250, "text", "text/markdown", &["md", "txt"]),
    (150, "code", "text/x-rust", &["rs", "py", "ts"]),
    (200, "image", "image/jpeg", &["jpg", "png"]),
    (50, "audio", "audio/mpeg", &["mp3"]),
    (50, "video", "video/mp4", &["mp4"]),
    (50, "archive", "application/zip", &["zip"]),
];
const SYLLABLES: &[&str] = &[
    "ka", "lo", "mi", "ne", "ru", "sa", "to", "vi", "ba", "de", "fu", "go", "hi", "jo", "ku", "la",
    "ma", "no", "pe", "qi", "ro", "si", "tu", "va", "we", "xo", "ya", "zu", "an", "el", "is", "or",
];
/// Page size of list questions (the page's).
const PAGE: u32 = 100;
/// Nodes of a graph question (the page's first frame).
const GRAPH_NODES: u32 = 2_000;
/// Neighbours of a related question.
const RELATED: u32 = 20;
/// Files generated per transaction.
const CHUNK: usize = 20_000;

/// A corpus in a data directory.
#[derive(Debug, Clone)]
pub struct Corpus {
    pub dir: PathBuf,
    pub files: u64,
    pub seed: u64,
    /// Automatic tag names, by Zipf rank (most frequent first).
    pub tags: Vec<String>,
}

/// The `n`-th word of the vocabulary: distinct for distinct `n` (bijective base 32).
fn word(mut n: usize) -> String {
    let mut w = String::new();
    loop {
        w.push_str(SYLLABLES[n % SYLLABLES.len()]);
        n /= SYLLABLES.len();
        if n == 0 {
            break;
        }
        n -= 1;
    }
    w
}

/// Samples ranks `0..n` with probability ∝ 1/(rank+1)^s.
struct Zipf(Vec<f64>);

impl Zipf {
    fn new(n: usize, s: f64) -> Self {
        let mut acc = 0.0;
        let mut cdf: Vec<f64> = (0..n)
            .map(|r| {
                acc += 1.0 / ((r + 1) as f64).powf(s);
                acc
            })
            .collect();
        for c in &mut cdf {
            *c /= acc;
        }
        Zipf(cdf)
    }
    fn sample(&self, rng: &mut StdRng) -> usize {
        let u: f64 = rng.r#gen();
        self.0.partition_point(|c| *c < u).min(self.0.len() - 1)
    }
}

/// Distinct automatic tags in a corpus of `files` files.
fn tag_count(files: u64) -> usize {
    (files as usize / 5).clamp(200, 200_000)
}

/// The corpus's SQLite database in `dir`, opened read-only (what [`mix`] draws its values from,
/// and what [`Answerer::Sql`] asks).
pub async fn read_only_pool(dir: &Path) -> anyhow::Result<SqlitePool> {
    Ok(SqlitePoolOptions::new()
        .max_connections(8)
        .connect_with(open_pool(dir, true))
        .await?)
}

fn open_pool(dir: &Path, read_only: bool) -> SqliteConnectOptions {
    SqliteConnectOptions::new()
        .filename(dir.join("disgrafs.db"))
        .read_only(read_only)
        // The generator's journal-mode change and checkpoint wait for the last of the store's
        // connections to go, which on a loaded machine may take longer than sqlx's 5 s.
        .busy_timeout(Duration::from_secs(60))
}

/// The vocabulary of a corpus (the same for the same size, so a kept corpus is read back).
fn vocabulary(files: u64) -> Vec<String> {
    let n = tag_count(files);
    HUBS.iter()
        .map(|h| h.to_string())
        .chain((0..n - HUBS.len()).map(|i| word(i + SYLLABLES.len())))
        .collect()
}

/// Builds a corpus of `files` files in `dir` (a fresh data directory).
pub async fn generate(dir: &Path, files: u64, seed: u64) -> anyhow::Result<Corpus> {
    // The product makes its schema; dropped again so the directory is free.
    Store::open_local(dir, MIN_CONFIDENCE).await?.close().await;
    let pool = SqlitePoolOptions::new()
        .max_connections(1)
        .connect_with(
            open_pool(dir, false)
                // The store's WAL is kept: leaving it would need the database to itself (an
                // exclusive lock, SQLITE_BUSY without waiting while anything else has it open).
                .synchronous(sqlx::sqlite::SqliteSynchronous::Off)
                .pragma("cache_size", "-1000000"),
        )
        .await?;
    // The product's secondary indexes are built once over the rows written (a sort each)
    // rather than kept in step with each random insert; the store's next open goes back to WAL.
    let indexes: Vec<(String, String)> = sqlx::query_as(
        "SELECT name, sql FROM sqlite_master WHERE type = 'index' AND sql IS NOT NULL \
         AND tbl_name IN ('blobs', 'files', 'blob_tags', 'file_tags')",
    )
    .fetch_all(&pool)
    .await?;
    for (name, _) in &indexes {
        sqlx::query(&format!("DROP INDEX \"{name}\""))
            .execute(&pool)
            .await?;
    }
    let tags = fill(&pool, files, seed).await?;
    for (_, sql) in &indexes {
        sqlx::query(sql).execute(&pool).await?;
    }
    sqlx::query("ANALYZE").execute(&pool).await?;
    sqlx::query("PRAGMA wal_checkpoint(TRUNCATE)")
        .execute(&pool)
        .await?;
    pool.close().await;
    // The product counts the tags' files of the rows written.
    Store::open_local(dir, MIN_CONFIDENCE).await?.close().await;
    Ok(Corpus {
        dir: dir.to_path_buf(),
        files,
        seed,
        tags,
    })
}

/// Builds the same corpus as [`generate`] (the same records, ids and tags for the same `files`
/// and `seed`) in the PostgreSQL database at `url` (an empty one): its schema is made by the
/// product (`Store::open` with `--meta`, `dir` being that store's data directory), then the
/// rows are written by the one generator, and the planner's statistics are gathered.
pub async fn generate_postgres(
    url: &str,
    dir: &Path,
    files: u64,
    seed: u64,
) -> anyhow::Result<Corpus> {
    let blobs = disgrafs_store::BlobLocation::Local;
    Store::open(dir, Some(url), &blobs, MIN_CONFIDENCE)
        .await?
        .close()
        .await;
    let pool = sqlx::postgres::PgPoolOptions::new()
        .max_connections(1)
        .connect(url)
        .await?;
    let tags = fill(&pool, files, seed).await?;
    // The ids were given explicitly: the next tag the product makes must not collide.
    sqlx::query("SELECT setval(pg_get_serial_sequence('tags', 'id'), (SELECT max(id) FROM tags))")
        .execute(&pool)
        .await?;
    sqlx::query("VACUUM ANALYZE").execute(&pool).await?;
    pool.close().await;
    Store::open(dir, Some(url), &blobs, MIN_CONFIDENCE)
        .await?
        .close()
        .await;
    Ok(Corpus {
        dir: dir.to_path_buf(),
        files,
        seed,
        tags,
    })
}

/// `INSERT INTO {table} VALUES ($1, …), …` for `rows` rows of `cols` values: numbered
/// placeholders, which both SQLite and PostgreSQL read.
fn insert_sql(table: &str, rows: usize, cols: usize) -> String {
    let mut sql = format!("INSERT INTO {table} VALUES ");
    for r in 0..rows {
        let values: Vec<String> = (1..=cols).map(|c| format!("${}", r * cols + c)).collect();
        if r > 0 {
            sql.push_str(", ");
        }
        sql.push('(');
        sql.push_str(&values.join(", "));
        sql.push(')');
    }
    sql
}

/// Writes the corpus's rows into a database whose schema the product made (SQLite or
/// PostgreSQL: the same statements, the driver's own placeholders); returns the vocabulary.
async fn fill<DB>(pool: &sqlx::Pool<DB>, files: u64, seed: u64) -> anyhow::Result<Vec<String>>
where
    DB: sqlx::Database,
    for<'c> &'c mut DB::Connection: sqlx::Executor<'c, Database = DB>,
    for<'a> DB::Arguments<'a>: sqlx::IntoArguments<'a, DB>,
    for<'a> i64: sqlx::Encode<'a, DB> + sqlx::Type<DB>,
    for<'a> f64: sqlx::Encode<'a, DB> + sqlx::Type<DB>,
    for<'a> &'a str: sqlx::Encode<'a, DB> + sqlx::Type<DB>,
    for<'a> String: sqlx::Encode<'a, DB> + sqlx::Type<DB>,
{
    let tags = vocabulary(files);
    let mut rng = StdRng::seed_from_u64(seed);
    let zipf = Zipf::new(tags.len(), 1.0);
    let user_zipf = Zipf::new(USER_TAGS.len(), 1.0);
    // Tag ids: automatic tags 1..=n by rank, user tags after them.
    let names: Vec<&str> = tags
        .iter()
        .map(String::as_str)
        .chain(USER_TAGS.iter().copied())
        .collect();
    let mut tx = pool.begin().await?;
    for (i, part) in names.chunks(1_000).enumerate() {
        let sql = insert_sql("tags (id, name)", part.len(), 2);
        let mut q = sqlx::query::<DB>(&sql);
        for (j, name) in part.iter().enumerate() {
            q = q.bind((i * 1_000 + j) as i64 + 1).bind(*name);
        }
        q.execute(&mut *tx).await?;
    }
    tx.commit().await?;
    let user_id = |u: usize| (tags.len() + u + 1) as i64;
    let mut done = 0u64;
    while done < files {
        let n = (files - done).min(CHUNK as u64);
        let batch: Vec<GenFile> = (0..n)
            .map(|k| GenFile::new(&mut rng, seed, done + k, &tags, &zipf, &user_zipf))
            .collect();
        let mut tx = pool.begin().await?;
        for rows in batch.chunks(500) {
            let sql = insert_sql(
                "blobs (hash, size, mime, kind, refs, tagging, extractor_versions, created)",
                rows.len(),
                8,
            );
            let mut q = sqlx::query::<DB>(&sql);
            for f in rows {
                q = q
                    .bind(f.hash.as_str())
                    .bind(f.size)
                    .bind(f.mime)
                    .bind(f.kind)
                    .bind(1i64)
                    .bind("done")
                    .bind(r#"{"keywords":1}"#)
                    .bind(f.created);
            }
            q.execute(&mut *tx).await?;
            let sql = insert_sql(
                "files (id, name, name_lower, hash, size, created, modified)",
                rows.len(),
                7,
            );
            let mut q = sqlx::query::<DB>(&sql);
            for f in rows {
                q = q
                    .bind(f.id.as_str())
                    .bind(f.name.as_str())
                    .bind(f.name.to_lowercase())
                    .bind(f.hash.as_str())
                    .bind(f.size)
                    .bind(f.created)
                    .bind(f.modified);
            }
            q.execute(&mut *tx).await?;
            let auto: Vec<(&GenFile, usize, f64)> = rows
                .iter()
                .flat_map(|f| f.auto.iter().map(move |(t, w)| (f, *t, *w)))
                .collect();
            for part in auto.chunks(2_000) {
                let sql = insert_sql(
                    "blob_tags (hash, tag_id, extractor, version, weight)",
                    part.len(),
                    5,
                );
                let mut q = sqlx::query::<DB>(&sql);
                for (f, t, w) in part {
                    q = q
                        .bind(f.hash.as_str())
                        .bind(*t as i64 + 1)
                        .bind("keywords")
                        .bind(1i64)
                        .bind(*w);
                }
                q.execute(&mut *tx).await?;
            }
            let user: Vec<(&GenFile, i64, bool)> = rows
                .iter()
                .flat_map(|f| {
                    let users = f.user.iter().map(move |u| (f, user_id(*u), false));
                    let hidden = f.hidden.map(|t| (f, t as i64 + 1, true));
                    users.chain(hidden)
                })
                .collect();
            if !user.is_empty() {
                let sql = insert_sql(
                    "file_tags (file_id, tag_id, hidden, created)",
                    user.len(),
                    4,
                );
                let mut q = sqlx::query::<DB>(&sql);
                for (f, t, hidden) in &user {
                    q = q
                        .bind(f.id.as_str())
                        .bind(*t)
                        .bind(*hidden as i64)
                        .bind(f.modified);
                }
                q.execute(&mut *tx).await?;
            }
        }
        tx.commit().await?;
        done += n;
    }
    sqlx::query(disgrafs_store::INVALIDATE_TAG_COUNTS)
        .execute(pool)
        .await?;
    Ok(tags)
}

/// One generated file record and its content's row.
struct GenFile {
    id: String,
    name: String,
    hash: String,
    size: i64,
    mime: &'static str,
    kind: &'static str,
    created: i64,
    modified: i64,
    /// (tag rank, weight).
    auto: Vec<(usize, f64)>,
    /// Indexes into [`USER_TAGS`].
    user: Vec<usize>,
    /// One automatic tag (rank) the person hid on this file.
    hidden: Option<usize>,
}

impl GenFile {
    fn new(
        rng: &mut StdRng,
        seed: u64,
        i: u64,
        tags: &[String],
        zipf: &Zipf,
        user_zipf: &Zipf,
    ) -> Self {
        let hash = blake3::hash(format!("{seed}:{i}").as_bytes())
            .to_hex()
            .to_string();
        let created = NOW_MS - SPAN_DAYS * DAY_MS + rng.gen_range(0..SPAN_DAYS * DAY_MS);
        let modified = created + rng.gen_range(0..=(NOW_MS - created).min(365 * DAY_MS));
        // Time-ordered like the product's UUIDv7 ids, unique by the file's index.
        let id = format!(
            "{:08x}-{:04x}-7{:03x}-8{:03x}-{:012x}",
            created >> 16,
            created & 0xffff,
            (i >> 48) & 0xfff,
            (i >> 36) & 0xfff,
            i & 0xfff_ffff_ffff
        );
        let size = (rng.gen_range(100f64.ln()..100e6f64.ln())).exp() as i64;
        let mut pick = rng.gen_range(0..1000u32);
        let &(_, kind, mime, exts) = KINDS
            .iter()
            .find(|(share, ..)| {
                let hit = pick < *share;
                pick = pick.saturating_sub(*share);
                hit
            })
            .unwrap_or(&KINDS[0]);
        let ext = exts[rng.gen_range(0..exts.len())];
        let name = format!(
            "{}-{}-{i}.{ext}",
            tags[zipf.sample(rng)],
            tags[zipf.sample(rng)]
        );
        let want = rng.gen_range(1..=12usize);
        let mut auto: Vec<(usize, f64)> = Vec::with_capacity(want);
        let mut tries = 0;
        while auto.len() < want && tries < 4 * want {
            tries += 1;
            let t = zipf.sample(rng);
            if auto.iter().all(|(a, _)| *a != t) {
                auto.push((t, (rng.gen_range(20..=100) as f64) / 100.0));
            }
        }
        let mut user = Vec::new();
        if rng.gen_bool(0.1) {
            for _ in 0..rng.gen_range(1..=3) {
                let u = user_zipf.sample(rng);
                if !user.contains(&u) {
                    user.push(u);
                }
            }
        }
        let hidden = rng
            .gen_bool(0.01)
            .then(|| auto[rng.gen_range(0..auto.len())].0);
        GenFile {
            id,
            name,
            hash,
            size,
            mime,
            kind,
            created,
            modified,
            auto,
            user,
            hidden,
        }
    }
}

/// A value bound to a twin's SQL.
#[derive(Debug, Clone)]
pub enum Bind {
    Text(String),
    Int(i64),
}

/// One question of the mix, with its values.
#[derive(Debug, Clone)]
pub enum Question {
    /// A page of a query's files, newest first, and the total count.
    List {
        label: &'static str,
        query: String,
        offset: u64,
        /// The twin's condition on `files f` (and `blobs b`), and its values.
        cond: String,
        binds: Vec<Bind>,
    },
    Related {
        id: String,
    },
    /// The bounded subgraph of a query's files.
    Graph {
        label: &'static str,
        query: String,
        cond: String,
        binds: Vec<Bind>,
    },
    Autocomplete {
        prefix: String,
    },
    Cooccurrence,
}

/// The files carrying tag `$n` as the twins spell it: its visible automatic edges (at or above
/// the threshold, not overridden by a row of the file's own) and its visible user edges.
fn tagged(n: usize) -> String {
    format!(
        "(SELECT f2.id FROM blob_tags bt JOIN files f2 ON f2.hash = bt.hash \
          WHERE bt.tag_id = (SELECT id FROM tags WHERE name = ${n}) AND bt.weight >= {MIN_CONFIDENCE:?} \
            AND NOT EXISTS (SELECT 1 FROM file_tags o WHERE o.file_id = f2.id AND o.tag_id = bt.tag_id) \
         UNION ALL SELECT ft.file_id FROM file_tags ft \
          WHERE ft.tag_id = (SELECT id FROM tags WHERE name = ${n}) AND ft.hidden = 0)"
    )
}

/// The visible edges as the twins spell them (file_id, tag_id, kind, weight): automatic tags at or
/// above the threshold not overridden by a row of the file's own, and visible user tags.
fn visible() -> String {
    format!(
        "(SELECT f2.id AS file_id, bt.tag_id, 'auto' AS kind, bt.weight FROM blob_tags bt \
         JOIN files f2 ON f2.hash = bt.hash WHERE bt.weight >= {MIN_CONFIDENCE:?} \
         AND NOT EXISTS (SELECT 1 FROM file_tags o WHERE o.file_id = f2.id AND o.tag_id = bt.tag_id) \
         UNION ALL SELECT file_id, tag_id, 'user', 1.0 FROM file_tags WHERE hidden = 0)"
    )
}

impl Question {
    /// The row's name.
    pub fn label(&self) -> String {
        match self {
            Question::List { label, .. } | Question::Graph { label, .. } => label.to_string(),
            Question::Related { .. } => "related files of a file".into(),
            Question::Autocomplete { .. } => "tag autocomplete".into(),
            Question::Cooccurrence => "tag co-occurrence (top 50)".into(),
        }
    }

    /// Asks the store; returns the answer's keys (ids in order, or `name=count`).
    pub async fn ask_store(&self, store: &Store) -> anyhow::Result<Vec<String>> {
        Ok(match self {
            Question::List { query, offset, .. } => {
                let opts = ListOptions {
                    sort: SortKey::Modified,
                    descending: true,
                    limit: PAGE,
                    offset: *offset,
                };
                let (page, total) = store.list(&Viewer::All, &parse(query)?, opts).await?;
                std::iter::once(format!("total={total}"))
                    .chain(page.into_iter().map(|r| r.id))
                    .collect()
            }
            Question::Related { id } => store
                .related(&Viewer::All, id, RELATED)
                .await?
                .into_iter()
                .map(|r| format!("{}={:.9}", r.file.id, r.score))
                .collect(),
            Question::Graph { query, .. } => {
                let g = store
                    .graph(&Viewer::All, &parse(query)?, GRAPH_NODES)
                    .await?;
                g.nodes
                    .iter()
                    .filter_map(|n| match n {
                        disgrafs_core::GraphNode::File { id, .. } => {
                            Some(id.trim_start_matches("f:").to_string())
                        }
                        _ => None,
                    })
                    .collect()
            }
            Question::Autocomplete { prefix } => store
                .tags(&Viewer::All, prefix, 10)
                .await?
                .into_iter()
                .map(|t| format!("{}={}", t.name, t.files))
                .collect(),
            Question::Cooccurrence => store
                .cooccurrence(&Viewer::All, 50)
                .await?
                .into_iter()
                .map(|c| format!("{}+{}={}", c.a, c.b, c.files))
                .collect(),
        })
    }

    /// The hand-written SQL of the same question, and its values.
    fn floor_sql(&self) -> Vec<(String, Vec<Bind>)> {
        let visible = visible();
        match self {
            Question::List {
                offset,
                cond,
                binds,
                ..
            } => vec![
                (
                    format!(
                        "SELECT 'total=' || count(*) FROM files f JOIN blobs b ON b.hash = f.hash WHERE {cond}"
                    ),
                    binds.clone(),
                ),
                (
                    format!(
                        "SELECT f.id FROM files f JOIN blobs b ON b.hash = f.hash WHERE {cond} \
                         ORDER BY f.modified DESC, f.id DESC LIMIT {PAGE} OFFSET {offset}"
                    ),
                    binds.clone(),
                ),
            ],
            // Rows of (neighbour, the smaller weight of a shared tag, the tag's files), over the
            // file's rarest tags while the files of those taken are fewer than the store's
            // bound: this SQLite has no ln(), so `ask_sql` sums the IDF-weighted overlap.
            Question::Related { id } => vec![(
                format!(
                    "WITH v AS {visible}, \
                     mine AS (SELECT v.tag_id, v.weight, c.files AS n FROM v JOIN tag_counts c USING (tag_id) WHERE v.file_id = $1), \
                     picked AS (SELECT * FROM (SELECT tag_id, weight, n, sum(n) OVER (ORDER BY n, tag_id) - n AS before FROM mine) \
                       WHERE before < {RELATED_SCAN_LIMIT}) \
                     SELECT v.file_id || '|' || min(p.weight, v.weight) || '|' || p.n \
                       FROM picked p JOIN v ON v.tag_id = p.tag_id AND v.file_id <> $1"
                ),
                vec![Bind::Text(id.clone())],
            )],
            Question::Graph { cond, binds, .. } => vec![(
                format!(
                    "WITH page AS (SELECT f.id, f.modified FROM files f JOIN blobs b ON b.hash = f.hash WHERE {cond} \
                       ORDER BY f.modified DESC, f.id DESC LIMIT {GRAPH_NODES}), \
                     e AS (SELECT v.file_id, v.tag_id FROM {visible} v JOIN page p ON p.id = v.file_id), \
                     deg AS (SELECT c.tag_id, c.shown AS n FROM tag_counts c \
                       WHERE c.tag_id IN (SELECT tag_id FROM e)) \
                     SELECT p.id FROM page p \
                      WHERE (SELECT count(*) FROM deg) >= 0 ORDER BY p.modified DESC, p.id DESC"
                ),
                binds.clone(),
            )],
            Question::Autocomplete { prefix } => vec![(
                "SELECT t.name || '=' || c.shown FROM tags t JOIN tag_counts c ON c.tag_id = t.id \
                  WHERE c.shown > 0 AND t.name >= $1 AND t.name < $1 || char(1114111) \
                  ORDER BY c.shown DESC, t.name LIMIT 10"
                    .into(),
                vec![Bind::Text(prefix.clone())],
            )],
            Question::Cooccurrence => vec![(
                format!(
                    "WITH v AS (SELECT file_id, tag_id FROM {visible}) \
                     SELECT min(ta.name, tb.name) || '+' || max(ta.name, tb.name) || '=' || count(*) FROM v x \
                       JOIN v y ON x.file_id = y.file_id AND x.tag_id < y.tag_id \
                       JOIN tags ta ON ta.id = x.tag_id JOIN tags tb ON tb.id = y.tag_id \
                      GROUP BY x.tag_id, y.tag_id ORDER BY count(*) DESC, ta.name, tb.name LIMIT 50"
                ),
                vec![],
            )],
        }
    }

    /// Asks the database directly, by the hand-written SQL.
    pub async fn ask_sql(&self, db: &SqlitePool) -> anyhow::Result<Vec<String>> {
        let mut out = Vec::new();
        for (sql, binds) in self.floor_sql() {
            let mut q = sqlx::query_scalar::<_, String>(&sql);
            for b in binds {
                q = match b {
                    Bind::Text(s) => q.bind(s),
                    Bind::Int(i) => q.bind(i),
                };
            }
            out.extend(q.fetch_all(db).await.with_context(|| sql.clone())?);
        }
        if let Question::Related { .. } = self {
            let total: i64 = sqlx::query_scalar("SELECT count(*) FROM files")
                .fetch_one(db)
                .await?;
            let mut score: std::collections::HashMap<String, f64> = Default::default();
            for row in &out {
                let mut it = row.split('|');
                let (Some(f), Some(w), Some(n)) = (it.next(), it.next(), it.next()) else {
                    bail!("a related row {row:?} is not file|weight|files");
                };
                *score.entry(f.to_string()).or_default() +=
                    w.parse::<f64>()? * disgrafs_core::rank::idf(total as u64, n.parse()?);
            }
            let mut ranked: Vec<(String, f64)> = score.into_iter().collect();
            ranked.sort_by(|a, b| b.1.total_cmp(&a.1).then(a.0.cmp(&b.0)));
            ranked.truncate(RELATED as usize);
            out = ranked
                .into_iter()
                .map(|(f, s)| format!("{f}={s:.9}"))
                .collect();
        }
        Ok(out)
    }
}

/// The day `days` after 1970-01-01 as `YYYY-MM-DD` (Howard Hinnant's civil-from-days).
fn date(days: i64) -> String {
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    let y = yoe + era * 400 + i64::from(m <= 2);
    format!("{y:04}-{m:02}-{d:02}")
}

/// The mix, with values drawn for repetition `rep` (the same for the same corpus and `rep`);
/// `db` finds the record of a drawn content.
pub async fn mix(corpus: &Corpus, db: &SqlitePool, rep: usize) -> anyhow::Result<Vec<Question>> {
    let mut rng = StdRng::seed_from_u64(corpus.seed ^ (rep as u64).wrapping_mul(0x9e37_79b9));
    let tags = &corpus.tags;
    let tag = |lo: usize, hi: usize, rng: &mut StdRng| {
        tags[rng.gen_range(lo..hi.min(tags.len()))].clone()
    };
    let t = |s: &str| Bind::Text(s.to_string());
    let one = tag(5, 50, &mut rng);
    let (a, b) = (tag(0, 20, &mut rng), tag(5, 100, &mut rng));
    let (c, hub) = (tag(5, 50, &mut rng), tag(0, 5, &mut rng));
    let five: Vec<String> = (0..5).map(|_| tag(20, 500, &mut rng)).collect();
    let word = tag(50, 500, &mut rng);
    let day0 = NOW_MS / DAY_MS - SPAN_DAYS + rng.gen_range(0..SPAN_DAYS - 30);
    let (d0, d1) = (date(day0), date(day0 + 30));
    let year0 = day0.min(NOW_MS / DAY_MS - 366);
    let (y0, y1) = (date(year0), date(year0 + 365));
    let combo = tag(0, 50, &mut rng);
    let deep = tag(0, 5, &mut rng);
    let deep_offset = (corpus.files / 20).min(10_000);
    let file = rng.gen_range(0..corpus.files);
    let graph_tag = tag(5, 50, &mut rng);
    let prefix: String = tag(0, 1000, &mut rng).chars().take(2).collect();
    let hash = blake3::hash(format!("{}:{file}", corpus.seed).as_bytes())
        .to_hex()
        .to_string();
    let id: String = sqlx::query_scalar("SELECT id FROM files WHERE hash = $1")
        .bind(&hash)
        .fetch_one(db)
        .await?;
    let ms = |d: i64| Bind::Int(d * DAY_MS);
    let or_cond = (1..=5)
        .map(|n| format!("f.id IN {}", tagged(n)))
        .collect::<Vec<_>>()
        .join(" OR ");
    Ok(vec![
        Question::List {
            label: "one tag, first page",
            query: one.clone(),
            offset: 0,
            cond: format!("f.id IN {}", tagged(1)),
            binds: vec![t(&one)],
        },
        Question::List {
            label: "two-tag AND",
            query: format!("{a} AND {b}"),
            offset: 0,
            cond: format!("f.id IN {} AND f.id IN {}", tagged(1), tagged(2)),
            binds: vec![t(&a), t(&b)],
        },
        Question::List {
            label: "AND NOT a hub",
            query: format!("{c} AND NOT {hub}"),
            offset: 0,
            cond: format!("f.id IN {} AND f.id NOT IN {}", tagged(1), tagged(2)),
            binds: vec![t(&c), t(&hub)],
        },
        Question::List {
            label: "OR of five tags",
            query: five.join(" OR "),
            offset: 0,
            cond: format!("({or_cond})"),
            binds: five.iter().map(|s| t(s)).collect(),
        },
        Question::List {
            label: "name: substring",
            query: format!("name:{word}"),
            offset: 0,
            cond: "instr(f.name_lower, $1) > 0".into(),
            binds: vec![t(&word)],
        },
        Question::List {
            label: "size range",
            query: "size>=1MiB size<=2MiB".into(),
            offset: 0,
            cond: "f.size BETWEEN $1 AND $2".into(),
            binds: vec![Bind::Int(1 << 20), Bind::Int(2 << 20)],
        },
        Question::List {
            label: "date range (30 days)",
            query: format!("created>={d0} created<{d1}"),
            offset: 0,
            cond: "f.created >= $1 AND f.created < $2".into(),
            binds: vec![ms(day0), ms(day0 + 30)],
        },
        Question::List {
            label: "tag + size + date",
            query: format!("{combo} size>=100KiB created>={y0} created<{y1}"),
            offset: 0,
            cond: format!(
                "f.id IN {} AND f.size >= $2 AND f.created >= $3 AND f.created < $4",
                tagged(1)
            ),
            binds: vec![t(&combo), Bind::Int(100 << 10), ms(year0), ms(year0 + 365)],
        },
        Question::List {
            label: "hub tag, deep page",
            query: deep.clone(),
            offset: deep_offset,
            cond: format!("f.id IN {}", tagged(1)),
            binds: vec![t(&deep)],
        },
        Question::Related { id },
        Question::Graph {
            label: "graph of a tag",
            query: graph_tag.clone(),
            cond: format!("f.id IN {}", tagged(1)),
            binds: vec![t(&graph_tag)],
        },
        Question::Graph {
            label: "graph of a file",
            query: format!("hash:{hash}"),
            cond: "f.hash = $1".into(),
            binds: vec![t(&hash)],
        },
        Question::Autocomplete { prefix },
        Question::Cooccurrence,
    ])
}

/// The seed of the corpus `run` builds.
const SEED: u64 = 16;
/// A question is asked at least this many times, and no more once its time ran out.
const MIN_REPS: usize = 3;
/// Time one question (both sides) may take in a run.
const QUESTION_BUDGET_S: f64 = 60.0;
/// What a kept corpus directory records: its size and seed.
const MARKER: &str = "bench-query-corpus";

/// Whether an answer was a store's refusal of a query over its budget.
fn over_budget(e: &anyhow::Error) -> bool {
    matches!(
        e.downcast_ref::<disgrafs_store::StoreError>(),
        Some(disgrafs_store::StoreError::TooCostly(_))
    )
}

/// The `p`-quantile (nearest rank) of `v`, in milliseconds.
fn quantile(v: &[f64], p: f64) -> f64 {
    let mut v = v.to_vec();
    v.sort_by(|a, b| a.total_cmp(b));
    let rank = ((p * v.len() as f64).ceil() as usize).clamp(1, v.len().max(1));
    v.get(rank - 1).copied().unwrap_or(0.0)
}

/// A corpus of `files` files in `dir`: the one kept there, or a new one (with the seconds its
/// generation took).
pub async fn corpus_in(dir: &Path, files: u64) -> anyhow::Result<(Corpus, Option<f64>)> {
    let marker = dir.join(MARKER);
    let want = format!("{files} {SEED}");
    if std::fs::read_to_string(&marker).is_ok_and(|m| m.trim() == want) {
        let corpus = Corpus {
            dir: dir.to_path_buf(),
            files,
            seed: SEED,
            tags: vocabulary(files),
        };
        return Ok((corpus, None));
    }
    if dir.join("disgrafs.db").exists() {
        bail!(
            "{} holds a data directory that is not a corpus of {files} files: give an empty directory",
            dir.display()
        );
    }
    let t = Instant::now();
    let corpus = generate(dir, files, SEED).await?;
    let secs = t.elapsed().as_secs_f64();
    std::fs::write(&marker, want)?;
    Ok((corpus, Some(secs)))
}

/// Runs the suite.
pub async fn run(args: &Args) -> anyhow::Result<Vec<BenchRow>> {
    if args.files == 0 || args.reps == 0 {
        bail!("--files and --reps must be at least 1");
    }
    let tmp = tempfile::tempdir()?;
    let dir = args.dir.clone().unwrap_or_else(|| tmp.path().to_path_buf());
    std::fs::create_dir_all(&dir)?;
    let (corpus, gen_secs) = corpus_in(&dir, args.files).await?;
    let mut rows = Vec::new();
    if let Some(secs) = gen_secs {
        rows.push(
            BenchRow::new(
                "corpus generation",
                "files/s",
                Better::Higher,
                ("none", None),
                ("generator", args.files as f64 / secs),
            )
            .with_note(format!("{} files in {secs:.1} s", args.files)),
        );
    }
    // Start-up: what `serve` does with its store before it listens, beside opening the same
    // database with sqlx and asking it one question.
    let t = Instant::now();
    let store = Store::open_local(&dir, MIN_CONFIDENCE).await?;
    store.stats(&Viewer::All).await?;
    let startup = t.elapsed().as_secs_f64() * 1e3;
    let t = Instant::now();
    let db = read_only_pool(&dir).await?;
    sqlx::query("SELECT count(*) FROM files")
        .execute(&db)
        .await?;
    let floor_startup = t.elapsed().as_secs_f64() * 1e3;
    rows.push(BenchRow::new(
        format!("start-up on {} files", args.files),
        "ms",
        Better::Lower,
        ("sqlite open + count", Some(floor_startup)),
        ("Store::open_local + stats", startup),
    ));
    let mut mixes = Vec::with_capacity(args.reps);
    for rep in 0..args.reps {
        mixes.push(mix(&corpus, &db, rep).await?);
    }
    let note = format!("{} files", args.files);
    rows.extend(
        compare(
            &mixes,
            ("hand-written SQL", Answerer::Sql(&db)),
            ("disgrafs store", Answerer::Store(&store)),
            &note,
        )
        .await?,
    );
    Ok(rows)
}

/// Who answers a question of the mix: a store through its API, or a SQLite database by the
/// hand-written SQL.
#[derive(Clone, Copy)]
pub enum Answerer<'a> {
    Store(&'a Store),
    Sql(&'a SqlitePool),
}

impl Answerer<'_> {
    pub async fn ask(&self, q: &Question) -> anyhow::Result<Vec<String>> {
        match self {
            Answerer::Store(store) => q.ask_store(store).await,
            Answerer::Sql(db) => q.ask_sql(db).await,
        }
    }
}

/// Asks every question of `mixes` of both sides, alternately (so neither side always finds the
/// cache warmed by the other), each at least [`MIN_REPS`] times and then until its
/// [`QUESTION_BUDGET_S`] ran out; two rows per question, p50 and p99 in ms, `note` and the
/// number of asks in their notes.
pub async fn compare(
    mixes: &[Vec<Question>],
    (base_name, base): (&str, Answerer<'_>),
    (cand_name, cand): (&str, Answerer<'_>),
    note: &str,
) -> anyhow::Result<Vec<BenchRow>> {
    let mut rows = Vec::new();
    let Some(first) = mixes.first() else {
        return Ok(rows);
    };
    for (qi, question) in first.iter().enumerate() {
        let (mut ours, mut floor) = (Vec::new(), Vec::new());
        // Asks a store refused over its query budget, per side: the question is then asked no
        // more, and its row says so instead of a latency.
        let mut refused = [0u32; 2];
        let started = Instant::now();
        for (rep, m) in mixes.iter().enumerate() {
            if rep >= MIN_REPS && started.elapsed().as_secs_f64() > QUESTION_BUDGET_S {
                break;
            }
            let q = &m[qi];
            for side in [rep % 2, 1 - rep % 2] {
                let t = Instant::now();
                let (answerer, times) = if side == 0 {
                    (&cand, &mut ours)
                } else {
                    (&base, &mut floor)
                };
                match answerer.ask(q).await {
                    Ok(_) => times.push(t.elapsed().as_secs_f64() * 1e3),
                    Err(e) if over_budget(&e) => refused[side] += 1,
                    Err(e) => return Err(e),
                }
            }
            if refused != [0, 0] {
                break;
            }
        }
        let label = question.label();
        if refused != [0, 0] {
            rows.push(
                BenchRow::new(
                    format!("{label}: refused over the query budget"),
                    "asks",
                    Better::Lower,
                    (base_name, Some(f64::from(refused[1]))),
                    (cand_name, f64::from(refused[0])),
                )
                .with_note(format!(
                    "{note}; the stores' default budget (SQLite: {} virtual-machine steps, \
                     PostgreSQL: statement_timeout {} s)",
                    disgrafs_store::QueryBudget::default().sqlite_steps,
                    disgrafs_store::QueryBudget::default().pg_timeout.as_secs()
                )),
            );
            continue;
        }
        for (p, name) in [(0.5, "p50"), (0.99, "p99")] {
            rows.push(
                BenchRow::new(
                    format!("{label} {name}"),
                    "ms",
                    Better::Lower,
                    (base_name, Some(quantile(&floor, p))),
                    (cand_name, quantile(&ours, p)),
                )
                .with_note(format!("{note}, {} asks", ours.len())),
            );
        }
    }
    Ok(rows)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn words_are_distinct() {
        let v = vocabulary(10_000);
        let set: std::collections::HashSet<&String> = v.iter().collect();
        assert_eq!(set.len(), v.len());
        assert_eq!(date(0), "1970-01-01");
        assert_eq!(date(NOW_MS / DAY_MS), "2026-01-01");
        assert_eq!(quantile(&[3.0, 1.0, 2.0], 0.5), 2.0);
        assert_eq!(quantile(&[3.0, 1.0, 2.0], 0.99), 3.0);
    }

    /// Every question of the mix, over a small corpus, gets the same answer from the store as
    /// from its hand-written SQL twin.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn the_mix_matches_its_sql_twins() {
        let dir = tempfile::tempdir().unwrap();
        let corpus = generate(dir.path(), 2_000, 7).await.unwrap();
        let store = Store::open_local(dir.path(), MIN_CONFIDENCE).await.unwrap();
        let stats = store.stats(&Viewer::All).await.unwrap();
        assert_eq!(stats.files, 2_000);
        let per_file = stats.edges as f64 / 2_000.0;
        assert!((5.0..8.0).contains(&per_file), "{per_file} edges per file");
        let db = SqlitePoolOptions::new()
            .connect_with(open_pool(dir.path(), true))
            .await
            .unwrap();
        for rep in 0..4 {
            for q in mix(&corpus, &db, rep).await.unwrap() {
                let ours = q.ask_store(&store).await.unwrap();
                let floor = q.ask_sql(&db).await.unwrap();
                // A file whose tags are all below the threshold has no neighbours.
                let may_be_empty = matches!(q, Question::Related { .. });
                assert!(
                    may_be_empty || !floor.is_empty(),
                    "{} has an answer",
                    q.label()
                );
                match q {
                    // The store draws files until their tags fill the nodes: a prefix.
                    Question::Graph { .. } => {
                        assert!(!ours.is_empty() && floor.starts_with(&ours), "{q:?}")
                    }
                    _ => assert_eq!(ours, floor, "{q:?}"),
                }
            }
        }
    }
}
