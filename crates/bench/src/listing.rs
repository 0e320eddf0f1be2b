//! `bench listing`: a tag directory of N files (the [`query`](crate::query) suite's generated
//! corpus, every file given one more tag) listed over `disgrafs mount` (FUSE: `ls -f`, and
//! readdir + stat of every entry) and over WebDAV (PROPFIND depth 1, read and parsed by the
//! WebDAV client the mount uses), beside the same listings of a plain directory of N empty files
//! on the local disk, in the same run.
//!
//! The mount is this executable run as `disgrafs mount` over this executable run as `disgrafs
//! serve` on the corpus, both children stopped by their PIDs. "Cold" is the first listing after
//! the server announced a change (a small file uploaded, seen in `recent/`), which drops the mount's
//! cache; "cached" is a listing again before any change.

use crate::child::{self, Proc};
use crate::row::{BenchRow, Better};
use anyhow::{bail, ensure};
use sqlx::sqlite::{SqliteConnectOptions, SqlitePoolOptions};
use std::path::Path;
use std::process::Command;
use std::time::{Duration, Instant};

#[derive(Debug, clap::Args)]
pub struct Args {
    /// Files in the tag directory.
    #[arg(long, default_value_t = 100_000)]
    pub files: u64,
    /// Times each listing is measured (medians, with min and max).
    #[arg(long, default_value_t = 5)]
    pub reps: usize,
}

/// The tag every file of the corpus gets: its directory is the one listed.
const TAG: &str = "bench-listing";
/// The corpus's seed.
const SEED: u64 = 17;
/// How long the mount may take to see the server's change event.
const EVENT_WAIT: Duration = Duration::from_secs(60);

/// Gives every file of the corpus in `dir` the tag [`TAG`] (a user tag), in the generator's
/// manner: straight into the schema the store made.
async fn tag_all(dir: &Path) -> anyhow::Result<()> {
    let pool = SqlitePoolOptions::new()
        .max_connections(1)
        .connect_with(SqliteConnectOptions::new().filename(dir.join("disgrafs.db")))
        .await?;
    let mut tx = pool.begin().await?;
    sqlx::query("INSERT INTO tags (name) VALUES ($1)")
        .bind(TAG)
        .execute(&mut *tx)
        .await?;
    sqlx::query(
        "INSERT INTO file_tags (file_id, tag_id, hidden, created) \
         SELECT f.id, t.id, 0, f.modified FROM files f, tags t WHERE t.name = $1",
    )
    .bind(TAG)
    .execute(&mut *tx)
    .await?;
    sqlx::query(disgrafs_store::INVALIDATE_TAG_COUNTS)
        .execute(&mut *tx)
        .await?;
    tx.commit().await?;
    pool.close().await;
    Ok(())
}

/// Milliseconds `f` took, and what it returned.
fn timed<T>(f: impl FnOnce() -> anyhow::Result<T>) -> anyhow::Result<(f64, T)> {
    let t = Instant::now();
    let v = f()?;
    Ok((t.elapsed().as_secs_f64() * 1e3, v))
}

/// `ls -f DIR`: the entries it printed, less `.` and `..`.
fn ls_f(dir: &Path) -> anyhow::Result<u64> {
    let out = Command::new("ls").arg("-f").arg(dir).output()?;
    ensure!(out.status.success(), "ls -f {} failed", dir.display());
    let n = out.stdout.iter().filter(|&&b| b == b'\n').count() as u64;
    Ok(n.saturating_sub(2))
}

/// readdir and a stat of every entry (what `ls -l` and `find` do); the entries.
fn read_and_stat(dir: &Path) -> anyhow::Result<u64> {
    let mut n = 0;
    for e in std::fs::read_dir(dir)? {
        let e = e?;
        std::fs::symlink_metadata(e.path())?;
        n += 1;
    }
    Ok(n)
}

fn plain_dir(dir: &Path, files: u64) -> anyhow::Result<()> {
    std::fs::create_dir_all(dir)?;
    for i in 0..files {
        std::fs::File::create(dir.join(format!("f{i}.txt")))?;
    }
    Ok(())
}

/// Runs the suite.
pub async fn run(args: &Args) -> anyhow::Result<Vec<BenchRow>> {
    if args.files == 0 || args.reps == 0 {
        bail!("--files and --reps must be at least 1");
    }
    let n = args.files;
    let tmp = tempfile::tempdir()?;
    let data = tmp.path().join("data");
    let t = Instant::now();
    crate::query::generate(&data, n, SEED).await?;
    tag_all(&data).await?;
    let gen_secs = t.elapsed().as_secs_f64();
    let plain = tmp.path().join("plain");
    let files = n;
    let plain2 = plain.clone();
    tokio::task::spawn_blocking(move || plain_dir(&plain2, files)).await??;

    let exe = std::env::current_exe()?;
    let (server, url) = child::serve(Command::new(&exe), &data, "127.0.0.1:0", "0")?;
    let mnt = tmp.path().join("mnt");
    std::fs::create_dir(&mnt)?;
    let mut mount = Command::new(&exe);
    mount
        .arg("mount")
        .arg(&mnt)
        .args(["--server", &url, "--auto-unmount"]);
    if let Some(t) = child::token_for(&url) {
        mount.env("DISGRAFS_TOKEN", t);
    }
    let (mount, _) = child::spawn_until_line(mount, "disgrafs mount")?;
    let result = measure(args, &url, &mnt, &plain).await;
    drop(mount);
    drop::<Proc>(server);
    let mut rows = result?;
    for r in &mut rows {
        let note = r.note.take().unwrap_or_default();
        r.note = Some(format!(
            "{n} files (corpus made in {gen_secs:.1} s); goal under 1000 ms{note}"
        ));
    }
    Ok(rows)
}

async fn measure(
    args: &Args,
    url: &str,
    mnt: &Path,
    plain: &Path,
) -> anyhow::Result<Vec<BenchRow>> {
    let n = args.files;
    let client = disgrafs_client::Client::new(url, child::token_for(url).as_deref())?;
    let dir_path = format!("tags/{TAG}");
    let tag_dir = mnt.join(&dir_path);
    // A small file uploaded (an event) before each cold listing, without the tag: the mount
    // shows it in `recent/` once it has seen the event, and the tag directory keeps its files.
    let poke_dir = tempfile::tempdir()?;
    let poke_file = poke_dir.path().join("poke.txt");
    std::fs::write(&poke_file, b"a change\n")?;

    let blocking = |f: fn(&Path) -> anyhow::Result<u64>, dir: &Path| {
        let dir = dir.to_path_buf();
        tokio::task::spawn_blocking(move || timed(|| f(&dir)))
    };
    let (mut plain_ls, mut plain_stat) = (Vec::new(), Vec::new());
    let (mut cold_ls, mut warm_ls, mut cold_stat, mut dav) =
        (Vec::new(), Vec::new(), Vec::new(), Vec::new());
    for rep in 0..args.reps {
        let (ms, got) = blocking(ls_f, plain).await??;
        ensure!(got == n, "ls -f of the plain directory saw {got} of {n}");
        plain_ls.push(ms);
        plain_stat.push(blocking(read_and_stat, plain).await??.0);

        for (kind, samples) in [
            (ls_f as fn(&Path) -> anyhow::Result<u64>, &mut cold_ls),
            (read_and_stat, &mut cold_stat),
        ] {
            // A change the server announces: the mount drops its cache.
            let name = format!("bench-poke-{rep}-{}.txt", samples.len());
            client.put_raw(&poke_file, &name, None).await?;
            wait_for_event(mnt, &name).await?;
            let (ms, got) = blocking(kind, &tag_dir).await??;
            ensure!(got == n, "the mount's tag directory listed {got} of {n}");
            samples.push(ms);
        }
        let (ms, got) = blocking(ls_f, &tag_dir).await??;
        ensure!(got == n, "the mount's tag directory listed {got} of {n}");
        warm_ls.push(ms);

        let t = Instant::now();
        let entries = client.dav_propfind(&dir_path).await?;
        dav.push(t.elapsed().as_secs_f64() * 1e3);
        ensure!(
            entries.len() as u64 == n,
            "PROPFIND listed {} of {n}",
            entries.len()
        );
    }
    let plain_name = "plain directory (local disk)";
    Ok(vec![
        BenchRow::medians(
            "ls -f of a tag directory",
            "ms",
            Better::Lower,
            (plain_name, &plain_ls),
            ("disgrafs mount, cold cache", &cold_ls),
        ),
        BenchRow::medians(
            "ls -f of a tag directory, again",
            "ms",
            Better::Lower,
            (plain_name, &plain_ls),
            ("disgrafs mount, cached", &warm_ls),
        ),
        BenchRow::medians(
            "readdir + stat of every entry",
            "ms",
            Better::Lower,
            (plain_name, &plain_stat),
            ("disgrafs mount, cold cache", &cold_stat),
        ),
        BenchRow::medians(
            "PROPFIND depth 1 of a tag directory",
            "ms",
            Better::Lower,
            ("ls -f, plain directory", &plain_ls),
            ("WebDAV (reqwest + XML parse)", &dav),
        ),
    ])
}

/// Waits until the mount shows the directory of the tag just added (the event reached it and
/// its cache is dropped), bounded.
/// Waits until the mount lists `name` in `recent/` (100 entries: cheap, and another directory
/// than the one measured), so it has seen the event of its upload and dropped its cache.
async fn wait_for_event(mnt: &Path, name: &str) -> anyhow::Result<()> {
    let dir = mnt.join("recent");
    let until = Instant::now() + EVENT_WAIT;
    loop {
        let d = dir.clone();
        let name2 = name.to_owned();
        let seen = tokio::task::spawn_blocking(move || {
            std::fs::read_dir(&d).is_ok_and(|rd| {
                rd.flatten()
                    .any(|e| e.file_name().to_str() == Some(name2.as_str()))
            })
        })
        .await?;
        if seen {
            return Ok(());
        }
        ensure!(
            Instant::now() < until,
            "the mount never showed {name} in recent/"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}
