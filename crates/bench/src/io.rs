//! `disgrafs bench io`: upload and download of a large file over loopback and small GETs per
//! second, each beside the same workload against nginx (sendfile on) in the same run.
//!
//! Both servers run as child processes on loopback over one temporary directory; the same Rust
//! client drives both, so client costs cancel in the ratio. Peak RSS is the kernel's high-water
//! mark (VmHWM) of the server processes.
//!
//! The disgrafs server is this very executable run as `serve`: only the `disgrafs` binary can run
//! this suite.

use crate::child::Proc;
use crate::row::{BenchRow, Better};
use crate::{child, wrk};
use anyhow::{Context, bail};
use disgrafs_core::query::human_size as human;
use futures::StreamExt;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

/// The flags of `disgrafs bench io`.
#[derive(Debug, clap::Args)]
pub struct Args {
    /// Size of the large file (units allowed: 1GiB, 4GiB).
    #[arg(long, default_value = "1GiB", value_parser = |s: &str| disgrafs_core::query::parse_size(s))]
    size: u64,
    /// Seconds of small-GET load per server.
    #[arg(long, default_value_t = 5)]
    seconds: u64,
    /// Working directory (default: a new temporary one, removed afterwards).
    #[arg(long)]
    dir: Option<PathBuf>,
}

fn vm_hwm_kib(pid: u32) -> Option<u64> {
    let s = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    s.lines()
        .find(|l| l.starts_with("VmHWM:"))?
        .split_whitespace()
        .nth(1)?
        .parse()
        .ok()
}

fn free_port() -> anyhow::Result<u16> {
    Ok(std::net::TcpListener::bind("127.0.0.1:0")?
        .local_addr()?
        .port())
}

fn wait_port(port: u16) -> anyhow::Result<()> {
    let until = Instant::now() + Duration::from_secs(10);
    while Instant::now() < until {
        if std::net::TcpStream::connect(("127.0.0.1", port)).is_ok() {
            return Ok(());
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    bail!("nothing listens on port {port} after 10 s")
}

/// Writes `size` bytes of incompressible data.
pub(crate) fn make_file(path: &Path, size: u64) -> anyhow::Result<()> {
    let mut f = std::io::BufWriter::with_capacity(1 << 20, std::fs::File::create(path)?);
    let mut xof = blake3::Hasher::new()
        .update(path.as_os_str().as_encoded_bytes())
        .finalize_xof();
    let mut buf = vec![0u8; 1 << 20];
    let mut left = size;
    while left > 0 {
        xof.fill(&mut buf);
        let n = left.min(buf.len() as u64) as usize;
        f.write_all(&buf[..n])?;
        left -= n as u64;
    }
    f.flush()?;
    Ok(())
}

/// Reads a file once so the timed runs start from a warm page cache (this VM drops idle cache).
fn warm(path: &Path) -> anyhow::Result<()> {
    std::io::copy(&mut std::fs::File::open(path)?, &mut std::io::sink())?;
    Ok(())
}

pub(crate) fn start_disgrafs(data: &Path, workers: &str) -> anyhow::Result<(Proc, String)> {
    child::serve(
        Command::new(std::env::current_exe()?),
        data,
        "127.0.0.1:0",
        workers,
    )
}

fn start_nginx(dir: &Path) -> anyhow::Result<(Proc, u16)> {
    let nginx = ["/usr/sbin/nginx", "/usr/bin/nginx"]
        .into_iter()
        .find(|p| Path::new(p).exists())
        .context(
            "nginx is not installed (apt-get install nginx-light); scripts/test installs it",
        )?;
    let port = free_port()?;
    let root = dir.join("nginx");
    for d in ["www", "tmp", "logs"] {
        std::fs::create_dir_all(root.join(d))?;
    }
    // As root, nginx's workers would drop to www-data, which cannot enter our private temp dir.
    let user = if is_root() { "user root root;" } else { "" };
    let conf = format!(
        "{user} daemon off; master_process on; worker_processes 2; pid {r}/nginx.pid; error_log {r}/logs/error.log warn;
events {{ worker_connections 1024; }}
http {{
  access_log off; sendfile on; tcp_nopush on; tcp_nodelay on; keepalive_requests 1000000;
  client_body_temp_path {r}/tmp; proxy_temp_path {r}/tmp; fastcgi_temp_path {r}/tmp; uwsgi_temp_path {r}/tmp; scgi_temp_path {r}/tmp;
  server {{ listen 127.0.0.1:{port}; root {r}/www;
    location /up/ {{ dav_methods PUT; create_full_put_path on; client_max_body_size 0; client_body_buffer_size 1m; }} }}
}}\n",
        r = root.display()
    );
    std::fs::write(root.join("nginx.conf"), conf)?;
    let child = Command::new(nginx)
        .arg("-c")
        .arg(root.join("nginx.conf"))
        .arg("-p")
        .arg(&root)
        .stdout(Stdio::null())
        .stderr(Stdio::inherit())
        .spawn()
        .context("cannot start nginx")?;
    let p = Proc(child);
    wait_port(port)?;
    Ok((p, port))
}

fn is_root() -> bool {
    // SAFETY: geteuid has no preconditions and cannot fail.
    unsafe { libc::geteuid() == 0 }
}

/// Half English-like text, half random bytes: what tagging has real work to do on.
fn make_mixed(dir: &Path, total: u64) -> anyhow::Result<Vec<PathBuf>> {
    const WORDS: [&str; 32] = [
        "graph", "file", "system", "tag", "upload", "server", "kernel", "network", "packet",
        "socket", "rust", "memory", "disk", "query", "index", "content", "hash", "stream",
        "buffer", "thread", "latency", "cache", "storage", "object", "metadata", "search",
        "browse", "download", "extract", "keyword", "language", "image",
    ];
    std::fs::create_dir_all(dir)?;
    let per = 8u64 << 20;
    let mut out = Vec::new();
    for i in 0..total.div_ceil(per) {
        if i % 2 == 0 {
            let path = dir.join(format!("doc{i}.txt"));
            let mut w = std::io::BufWriter::new(std::fs::File::create(&path)?);
            let mut xof = blake3::Hasher::new()
                .update(&i.to_le_bytes())
                .finalize_xof();
            let mut pick = [0u8; 4096];
            let mut written = 0u64;
            while written < per {
                xof.fill(&mut pick);
                for (j, b) in pick.iter().enumerate() {
                    let word = WORDS[(*b as usize) % WORDS.len()];
                    let sep = if j % 12 == 11 { ".\n" } else { " " };
                    w.write_all(word.as_bytes())?;
                    w.write_all(sep.as_bytes())?;
                    written += (word.len() + sep.len()) as u64;
                }
            }
            w.flush()?;
            out.push(path);
        } else {
            let path = dir.join(format!("data{i}.bin"));
            make_file(&path, per)?;
            out.push(path);
        }
    }
    Ok(out)
}

/// MB/s of uploading `files` one after another.
async fn upload_all(http: &reqwest::Client, base: &str, files: &[PathBuf]) -> anyhow::Result<f64> {
    let mut bytes = 0u64;
    for f in files {
        warm(f)?;
    }
    let t = Instant::now();
    for f in files {
        let name = f
            .file_name()
            .and_then(|n| n.to_str())
            .context("file name")?;
        let len = std::fs::metadata(f)?.len();
        upload(http, &format!("{base}/api/files?name={name}"), f).await?;
        bytes += len;
    }
    Ok(bytes as f64 / t.elapsed().as_secs_f64() / 1e6)
}

/// MB/s of copying `from` to `to` and fsyncing it: the disk's ceiling for a durable upload.
fn disk_write(from: &Path, to: &Path) -> anyhow::Result<f64> {
    warm(from)?;
    let t = Instant::now();
    let mut src = std::fs::File::open(from)?;
    let mut dst = std::fs::File::create(to)?;
    let n = std::io::copy(&mut src, &mut dst)?;
    dst.sync_all()?;
    let secs = t.elapsed().as_secs_f64();
    drop(dst);
    std::fs::remove_file(to)?;
    Ok(n as f64 / secs / 1e6)
}

fn rss_mib(pids: &[u32]) -> f64 {
    pids.iter()
        .filter_map(|p| vm_hwm_kib(*p))
        .max()
        .unwrap_or(0) as f64
        / 1024.0
}

pub(crate) async fn upload(http: &reqwest::Client, url: &str, path: &Path) -> anyhow::Result<f64> {
    warm(path)?;
    let file = tokio::fs::File::open(path).await?;
    let len = file.metadata().await?.len();
    let body =
        reqwest::Body::wrap_stream(tokio_util::io::ReaderStream::with_capacity(file, 1 << 20));
    let t = Instant::now();
    let resp = http
        .put(url)
        .headers(crate::child::auth_headers(url))
        .header("content-length", len)
        .body(body)
        .send()
        .await?;
    let secs = t.elapsed().as_secs_f64();
    if !resp.status().is_success() {
        bail!("PUT {url}: {}", resp.status());
    }
    Ok(len as f64 / secs / 1e6)
}

pub(crate) async fn download(
    http: &reqwest::Client,
    url: &str,
    expect: u64,
) -> anyhow::Result<f64> {
    let t = Instant::now();
    let resp = http
        .get(url)
        .headers(crate::child::auth_headers(url))
        .send()
        .await?;
    if !resp.status().is_success() {
        bail!("GET {url}: {}", resp.status());
    }
    let mut n = 0u64;
    let mut s = resp.bytes_stream();
    while let Some(c) = s.next().await {
        n += c?.len() as u64;
    }
    let secs = t.elapsed().as_secs_f64();
    if n != expect {
        bail!("GET {url}: {n} bytes, expected {expect}");
    }
    Ok(n as f64 / secs / 1e6)
}

/// Median of three runs, to damp the noise of a shared 2-core machine.
pub(crate) async fn median3<F, Fut>(mut f: F) -> anyhow::Result<f64>
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = anyhow::Result<f64>>,
{
    let mut v = [f().await?, f().await?, f().await?];
    v.sort_by(f64::total_cmp);
    Ok(v[1])
}

/// A suite's working directory: `dir` (made if missing), or a new temporary one named with
/// `prefix`, removed when the returned guard is dropped.
pub(crate) fn work_dir(
    dir: Option<&Path>,
    prefix: &str,
) -> anyhow::Result<(Option<tempfile::TempDir>, PathBuf)> {
    Ok(match dir {
        Some(d) => {
            std::fs::create_dir_all(d)?;
            (None, d.to_path_buf())
        }
        None => {
            let tmp = tempfile::Builder::new()
                .prefix(prefix)
                .tempdir_in(std::env::temp_dir())?;
            let path = tmp.path().to_path_buf();
            (Some(tmp), path)
        }
    })
}

/// Runs the suite; progress goes to stderr unless `json`.
pub async fn run(args: &Args, json: bool) -> anyhow::Result<Vec<BenchRow>> {
    let (_tmp, dir) = work_dir(args.dir.as_deref(), "disgrafs-bench-")?;
    let log = |m: &str| {
        if !json {
            eprintln!("bench io: {m}");
        }
    };
    let big = dir.join("big.bin");
    let warmup = dir.join("warmup.bin");
    let small = dir.join("small.bin");
    log(&format!("writing a {} test file", human(args.size)));
    make_file(&big, args.size)?;
    make_file(&warmup, 64 << 20)?;
    make_file(&small, 4096)?;

    let (ours, base) = start_disgrafs(&dir.join("disgrafs-data"), "1")?;
    let (nginx, port) = start_nginx(&dir)?;
    let ng = format!("http://127.0.0.1:{port}");
    let http = reqwest::Client::builder()
        .tcp_nodelay(true)
        .default_headers(crate::child::auth_headers(&base))
        .build()?;
    let our_pid = ours.0.id();
    let nginx_pids = || {
        let mut v = child::children(nginx.0.id());
        v.push(nginx.0.id());
        v
    };

    // 64 MiB first, uploaded and downloaded: its peak RSS is the baseline for "flat in file size".
    let put = |name: &str| format!("{base}/api/files?name={name}");
    let rec: serde_json::Value = {
        upload(&http, &put("warmup.bin"), &warmup).await?;
        http.get(format!("{base}/api/files?q=name:warmup.bin&limit=1"))
            .send()
            .await?
            .json()
            .await?
    };
    let warm_id = rec["files"][0]["id"]
        .as_str()
        .context("warm-up file not listed")?
        .to_owned();
    download(
        &http,
        &format!("{base}/api/files/{warm_id}/content"),
        64 << 20,
    )
    .await?;
    let rss_small = rss_mib(&[our_pid]);

    // What the disk itself takes: the same bytes written and fsynced by this process.
    log("measuring the disk");
    let disk = median3(|| {
        let (from, to) = (big.clone(), dir.join("disk-ceiling.bin"));
        async move { tokio::task::spawn_blocking(move || disk_write(&from, &to)).await? }
    })
    .await?;

    log("uploading");
    let mut ids = Vec::new();
    let up_ours = median3(|| {
        let (http, url, big) = (http.clone(), put("big.bin"), big.clone());
        async move { upload(&http, &url, &big).await }
    })
    .await?;
    let list: serde_json::Value = http
        .get(format!("{base}/api/files?q=name:big.bin&limit=1"))
        .send()
        .await?
        .json()
        .await?;
    ids.push(
        list["files"][0]["id"]
            .as_str()
            .context("uploaded file not listed")?
            .to_owned(),
    );
    let up_nginx = median3(|| {
        let (http, url, big) = (http.clone(), format!("{ng}/up/big.bin"), big.clone());
        async move { upload(&http, &url, &big).await }
    })
    .await?;

    log("downloading");
    std::fs::copy(&big, dir.join("nginx/www/big.bin"))?;
    std::fs::copy(&small, dir.join("nginx/www/small.bin"))?;
    warm(&dir.join("nginx/www/big.bin"))?;
    // Warm our copy too: the same page-cache state for both servers.
    let our_url = format!("{base}/api/files/{}/content", ids[0]);
    download(&http, &our_url, args.size).await?;
    let down_ours = median3(|| download(&http, &our_url, args.size)).await?;
    let ng_url = format!("{ng}/big.bin");
    let down_nginx = median3(|| download(&http, &ng_url, args.size)).await?;
    let rss_big = rss_mib(&[our_pid]);
    let rss_nginx = rss_mib(&nginx_pids());

    log("small GETs");
    let resp: serde_json::Value = http
        .put(put("small.bin"))
        .body(std::fs::read(&small)?)
        .send()
        .await?
        .json()
        .await?;
    let small_id = resp["id"]
        .as_str()
        .context("small upload returned no id")?
        .to_owned();
    let load = wrk::Load::standard(args.seconds);
    let rps_ours = load
        .run(&format!("{base}/api/files/{small_id}/content"))?
        .requests_per_sec;
    let rps_nginx = load.run(&format!("{ng}/small.bin"))?.requests_per_sec;

    // A scrape must not slow the request path (it takes none of its locks): the same small GETs
    // again, while a scraper reads /metrics every 100 ms, against a run beside no scraper.
    log("small GETs while /metrics is scraped");
    let get = format!("{base}/api/files/{small_id}/content");
    let quiet = load.run(&get)?;
    let scraping = Arc::new(AtomicBool::new(true));
    let scraper = {
        let (http, url, scraping) = (http.clone(), format!("{base}/metrics"), scraping.clone());
        tokio::spawn(async move {
            let mut took = Vec::new();
            // Bounded: the wrk run's length, and at most 10 minutes of scrapes.
            while scraping.load(Ordering::Relaxed) && took.len() < 6000 {
                let t = Instant::now();
                let ok = match http
                    .get(&url)
                    .headers(crate::child::auth_headers(&url))
                    .send()
                    .await
                {
                    Ok(r) => r.status().is_success() && r.bytes().await.is_ok(),
                    Err(_) => false,
                };
                anyhow::ensure!(ok, "a scrape of {url} failed");
                took.push(t.elapsed().as_secs_f64() * 1000.0);
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
            Ok::<_, anyhow::Error>(took)
        })
    };
    let scraped = tokio::task::block_in_place(|| load.run(&get));
    scraping.store(false, Ordering::Relaxed);
    let scrape_ms = scraper.await??;
    let scraped = scraped?;

    drop(ours);
    drop(nginx);

    // Tagging must not slow uploads: the same mixed upload with the tagging workers off, then on.
    log("mixed upload with tagging off and on");
    let mixed = make_mixed(&dir.join("mixed"), 1 << 30)?;
    let (off_server, off_url) = start_disgrafs(&dir.join("data-tagging-off"), "0")?;
    let tagging_off = upload_all(&http, &off_url, &mixed).await?;
    drop(off_server);
    let (on_server, on_url) = start_disgrafs(&dir.join("data-tagging-on"), "2")?;
    let tagging_on = upload_all(&http, &on_url, &mixed).await?;
    let health: serde_json::Value = http
        .get(format!("{on_url}/api/health"))
        .send()
        .await?
        .json()
        .await?;
    drop(on_server);

    let size = human(args.size);
    let rows = vec![
        BenchRow::new(format!("upload {size} (PUT, BLAKE3 + fsync)"), "MB/s", Better::Higher, ("nginx dav PUT", Some(up_nginx)), ("disgrafs", up_ours))
            .with_note("nginx does not fsync; disgrafs makes every upload durable before answering"),
        BenchRow::new(format!("upload {size} vs the disk"), "MB/s", Better::Higher, ("copy + fsync", Some(disk)), ("disgrafs", up_ours)),
        BenchRow::new(format!("download {size}"), "MB/s", Better::Higher, ("nginx sendfile", Some(down_nginx)), ("disgrafs", down_ours)),
        BenchRow::new(format!("4 KiB GET, {}", load.describe()), "req/s", Better::Higher, ("nginx", Some(rps_nginx)), ("disgrafs", rps_ours)),
        BenchRow::new(format!("4 KiB GET while /metrics is scraped every 100 ms, {}", load.describe()), "req/s", Better::Higher, ("no scraper", Some(quiet.requests_per_sec)), ("scraped", scraped.requests_per_sec)),
        BenchRow::new("4 KiB GET p99 while /metrics is scraped", "ms", Better::Lower, ("no scraper", Some(quiet.p99_ms)), ("scraped", scraped.p99_ms)),
        BenchRow::new("/metrics scrape under that load, median", "ms", Better::Lower, ("4 KiB GET p50", Some(scraped.p50_ms)), ("scrape", crate::row::median(&scrape_ms)))
            .with_note(format!("{} scrapes; the baseline is a small GET's median latency in the same run", scrape_ms.len())),
        BenchRow::new(format!("peak RSS after {size}"), "MiB", Better::Lower, ("nginx", Some(rss_nginx)), ("disgrafs", rss_big)),
        BenchRow::new(format!("peak RSS: {size} vs 64 MiB"), "MiB", Better::Lower, ("disgrafs after 64 MiB", Some(rss_small)), ("disgrafs", rss_big))
            .with_note("peak RSS after uploading and downloading 64 MiB, then the large file"),
        BenchRow::new("upload 1 GiB mixed files (128 x 8 MiB)", "MB/s", Better::Higher, ("tagging off", Some(tagging_off)), ("tagging on", tagging_on))
            .with_note(format!(
                "half text, half binary, one PUT after another; with tagging on, {} of 128 contents were tagged by the end of the upload",
                128 - health["jobs_queued"].as_u64().unwrap_or(0) - health["jobs_running"].as_u64().unwrap_or(0)
            )),
    ];
    Ok(rows)
}
