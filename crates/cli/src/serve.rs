//! `disgrafs serve`: flags over environment over the config file over defaults.

use anyhow::Context;
use disgrafs_server::host::AllowedHost;
use disgrafs_server::limits::Rate;
use disgrafs_server::tls::{CertResolver, TlsFiles};
use disgrafs_server::{AppState, Config};
use serde::Deserialize;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};

#[derive(clap::Args)]
pub struct ServeArgs {
    /// Address to listen on (port 0 picks a free port; the address is printed).
    #[arg(long, env = "DISGRAFS_LISTEN")]
    listen: Option<SocketAddr>,
    /// Where blobs, metadata and uploads in progress live [default: ./disgrafs-data].
    #[arg(long, env = "DISGRAFS_DATA_DIR")]
    data_dir: Option<PathBuf>,
    /// Where file contents live: `local` (under the data directory) or an S3-compatible bucket,
    /// `s3://BUCKET[/PREFIX]?endpoint=URL&region=REGION`, with credentials from
    /// AWS_ACCESS_KEY_ID / AWS_SECRET_ACCESS_KEY [default: local]. A data directory remembers
    /// its location and refuses another.
    #[arg(long, env = "DISGRAFS_BLOBS")]
    blobs: Option<disgrafs_store::BlobLocation>,
    /// Metadata and the job queue on PostgreSQL (postgres://user:password@host/db), shared by
    /// any number of processes [default: SQLite in the data directory].
    #[arg(long, env = "DISGRAFS_META", value_name = "URL")]
    meta: Option<String>,
    /// A TOML file with any of: listen, data_dir, meta, blobs, max_upload, workers, min_confidence,
    /// allowed_hosts, tls_cert, tls_key, insecure, rate_limit, uploads_per_client, metrics_public,
    /// models.
    #[arg(long, env = "DISGRAFS_CONFIG")]
    config: Option<PathBuf>,
    /// Largest accepted upload, in bytes (units allowed: 10GiB, 500MB).
    #[arg(long, value_parser = parse_size)]
    max_upload: Option<u64>,
    /// Tagging workers running at once (0: this process only serves; another one tags).
    #[arg(long)]
    workers: Option<usize>,
    /// Automatic tags below this confidence (0 to 1) are kept but not shown.
    #[arg(long)]
    min_confidence: Option<f64>,
    /// A host name (or name:port) to answer to beside localhost and the listen address, e.g.
    /// behind a reverse proxy; repeatable. Other Hosts get 421 (DNS-rebinding defence).
    #[arg(
        long = "allowed-host",
        env = "DISGRAFS_ALLOWED_HOSTS",
        value_name = "NAME",
        value_delimiter = ','
    )]
    allowed_hosts: Option<Vec<AllowedHost>>,
    /// Serve HTTPS with this PEM certificate chain (with --tls-key); reloaded on SIGHUP.
    #[arg(
        long,
        env = "DISGRAFS_TLS_CERT",
        value_name = "FILE",
        requires = "tls_key"
    )]
    tls_cert: Option<PathBuf>,
    /// The PEM private key of --tls-cert.
    #[arg(
        long,
        env = "DISGRAFS_TLS_KEY",
        value_name = "FILE",
        requires = "tls_cert"
    )]
    tls_key: Option<PathBuf>,
    /// Allow plain HTTP on an address beyond loopback (say, behind a TLS-terminating proxy on
    /// a private network).
    #[arg(long, env = "DISGRAFS_INSECURE")]
    insecure: bool,
    /// Requests per second per client (a token, or else an address): N or N/BURST, or `off`
    /// [default: off on loopback, 100/200 on any other address].
    #[arg(long, env = "DISGRAFS_RATE_LIMIT", value_name = "N[/BURST]|off")]
    rate_limit: Option<String>,
    /// Seconds after which an untouched tus upload is removed (a test hook) [default: a day].
    #[arg(long, hide = true)]
    upload_expiry_secs: Option<u64>,
    /// Uploads one client may send at once, 0 for no bound [default: no bound on loopback, 8 on
    /// any other address].
    #[arg(long, env = "DISGRAFS_UPLOADS_PER_CLIENT", value_name = "N")]
    uploads_per_client: Option<usize>,
    /// Serve /metrics without a credential (for a Prometheus that cannot send a token; its
    /// figures carry no file names, only route patterns and counts). Otherwise it needs read.
    #[arg(long, env = "DISGRAFS_METRICS_PUBLIC")]
    metrics_public: bool,
    /// The models directory (image labels: efficientnet_lite0.onnx, labels.txt, 9k.tree,
    /// 9k.names, as scripts/deps.d/77-labels.sh installs them) [default: none, labels off].
    #[arg(long, env = "DISGRAFS_MODELS", value_name = "DIR")]
    models: Option<PathBuf>,
    /// Where /metrics reads system figures (a test hook for an unreadable /proc).
    #[arg(long, hide = true, default_value = "/proc")]
    proc_root: PathBuf,
    /// eBPF accelerators to run with the server, comma-separated (root); detached on shutdown,
    /// their counters in /metrics. http-trace and cpu-balance attach to --iface; sockmap (the
    /// same-host TCP bypass) puts the server in a cgroup of its own (a child of its current one).
    #[arg(long, value_enum, value_delimiter = ',')]
    accel: Vec<Accel>,
    /// The interface the accelerators attach to (nothing is attached implicitly).
    #[arg(long)]
    iface: Option<String>,
    /// cpu-balance weights, CPU:WEIGHT pairs such as 0:1,1:3 [default: every CPU alike].
    #[arg(long)]
    weights: Option<String>,
}

/// What `--accel` can attach.
#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
enum Accel {
    HttpTrace,
    CpuBalance,
    Sockmap,
}

impl Accel {
    /// Attaches to the interface named by --iface.
    fn needs_iface(self) -> bool {
        matches!(self, Accel::HttpTrace | Accel::CpuBalance)
    }
}

/// A balancer this server attached: detached when dropped (shutdown, or a later start-up error).
/// One that was attached before (by `disgrafs accel`) is left as it was.
struct OwnedBalancer(String);

impl Drop for OwnedBalancer {
    fn drop(&mut self) {
        match disgrafs_accel::cpu_balance::detach(&self.0, None) {
            Ok(_) => tracing::info!(iface = %self.0, "cpu-balance detached"),
            Err(e) => eprintln!("disgrafs: cannot detach cpu-balance from {}: {e}", self.0),
        }
    }
}

/// Attaches the `--accel` list and registers each with /metrics.
fn attach_accels(
    list: &[Accel],
    iface: Option<&str>,
    weights: Option<&str>,
    state: &AppState,
) -> anyhow::Result<Option<OwnedBalancer>> {
    use disgrafs_accel::{cpu_balance, http, sys};
    let on_iface = list.iter().any(|a| a.needs_iface());
    let Some(iface) = iface else {
        anyhow::ensure!(
            !on_iface && weights.is_none(),
            "--accel http-trace and cpu-balance need --iface: they attach only to an interface you name"
        );
        return Ok(None);
    };
    anyhow::ensure!(
        on_iface,
        "--iface is only for --accel http-trace or cpu-balance"
    );
    anyhow::ensure!(
        weights.is_none() || list.contains(&Accel::CpuBalance),
        "--weights is only for --accel cpu-balance"
    );
    let mut owned = None;
    if list.contains(&Accel::CpuBalance) {
        let cpus = sys::possible_cpus()?;
        let w = match weights {
            Some(w) => cpu_balance::Weights::parse(w, cpus)?,
            None => cpu_balance::Weights::new((0..cpus as u32).map(|c| (c, 1)).collect(), cpus)?,
        };
        if let Some(r) = cpu_balance::apply(&cpu_balance::BalanceConfig::new(iface, None, w))? {
            for warning in &r.warnings {
                eprintln!("warning: {warning}");
            }
            owned = Some(OwnedBalancer(iface.to_string()));
        }
    }
    if list.contains(&Accel::HttpTrace) {
        let obs = http::HttpObserver::start(&http::ObserverConfig::new(iface, None), None)?;
        state
            .metrics
            .add_accel(Box::new(disgrafs_server::metrics::HttpTraceSource::new(
                iface, obs,
            )));
    }
    Ok(owned)
}

fn parse_size(s: &str) -> Result<u64, String> {
    disgrafs_core::query::parse_size(s)
}

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
struct FileConfig {
    listen: Option<SocketAddr>,
    data_dir: Option<PathBuf>,
    meta: Option<String>,
    blobs: Option<String>,
    max_upload: Option<toml::Value>,
    workers: Option<usize>,
    min_confidence: Option<f64>,
    allowed_hosts: Option<Vec<AllowedHost>>,
    tls_cert: Option<PathBuf>,
    tls_key: Option<PathBuf>,
    insecure: Option<bool>,
    rate_limit: Option<String>,
    uploads_per_client: Option<usize>,
    metrics_public: Option<bool>,
    models: Option<PathBuf>,
}

fn load(path: &Path) -> anyhow::Result<FileConfig> {
    let text = std::fs::read_to_string(path)
        .with_context(|| format!("cannot read config {}", path.display()))?;
    toml::from_str(&text).map_err(|e| anyhow::anyhow!("config {}: {}", path.display(), e.message()))
}

fn resolve(args: ServeArgs) -> anyhow::Result<Config> {
    let file = match &args.config {
        Some(p) => load(p)?,
        None => FileConfig::default(),
    };
    let d = Config::default();
    let max_upload = match (args.max_upload, file.max_upload) {
        (Some(n), _) => n,
        (None, Some(toml::Value::Integer(n))) if n >= 0 => n as u64,
        (None, Some(toml::Value::String(s))) => {
            parse_size(&s).map_err(|e| anyhow::anyhow!("config max_upload: {e}"))?
        }
        (None, Some(v)) => anyhow::bail!("config max_upload: expected a size, found {v}"),
        (None, None) => d.max_upload,
    };
    let min_confidence = args
        .min_confidence
        .or(file.min_confidence)
        .unwrap_or(d.min_confidence);
    // Its range is the store's rule (checked when it opens).
    let workers = args.workers.or(file.workers).unwrap_or(d.workers);
    let blobs = match (args.blobs, file.blobs) {
        (Some(b), _) => b,
        (None, Some(s)) => s
            .parse()
            .map_err(|e| anyhow::anyhow!("config blobs: {e}"))?,
        (None, None) => d.blobs.clone(),
    };
    let listen = args.listen.or(file.listen).unwrap_or(d.listen);
    // Beyond loopback, plain HTTP must be asked for and the per-client limits are on unless
    // configured otherwise.
    let networked = !listen.ip().is_loopback();
    let tls = match (
        args.tls_cert.or(file.tls_cert),
        args.tls_key.or(file.tls_key),
    ) {
        (Some(cert), Some(key)) => Some(TlsFiles { cert, key }),
        (None, None) => None,
        _ => anyhow::bail!("TLS needs both a certificate and a key (tls_cert and tls_key)"),
    };
    let insecure = args.insecure || file.insecure.unwrap_or(false);
    anyhow::ensure!(
        tls.is_some() || insecure || !networked,
        "refusing to serve plain HTTP on {listen}, beyond loopback: give --tls-cert and --tls-key, or --insecure (behind a TLS-terminating proxy)"
    );
    let rate = match args.rate_limit.or(file.rate_limit).as_deref() {
        Some("off") => None,
        Some(r) => Some(r.parse::<Rate>().map_err(anyhow::Error::msg)?),
        None => networked.then_some(Rate::NETWORK_DEFAULT),
    };
    let uploads_per_client = match args.uploads_per_client.or(file.uploads_per_client) {
        Some(0) => None,
        Some(n) => Some(n),
        None => networked.then_some(disgrafs_server::limits::UPLOADS_PER_CLIENT),
    };
    Ok(Config {
        listen,
        tls,
        rate,
        uploads_per_client,
        blobs,
        data_dir: args.data_dir.or(file.data_dir).unwrap_or(d.data_dir),
        meta: args.meta.or(file.meta),
        max_upload,
        workers,
        min_confidence,
        allowed_hosts: args
            .allowed_hosts
            .or(file.allowed_hosts)
            .unwrap_or(d.allowed_hosts),
        proc_root: args.proc_root,
        upload_expiry: args
            .upload_expiry_secs
            .map_or(d.upload_expiry, std::time::Duration::from_secs),
        metrics_public: args.metrics_public || file.metrics_public.unwrap_or(d.metrics_public),
        models: args.models.or(file.models),
    })
}

/// Logs to stderr, filtered by `DISGRAFS_LOG`.
pub(crate) fn init_logging() {
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_env("DISGRAFS_LOG")
                .unwrap_or_else(|_| "info,tower_http=warn,sqlx=warn".into()),
        )
        .with_writer(std::io::stderr)
        .init();
}

pub async fn run(args: ServeArgs) -> anyhow::Result<()> {
    init_logging();
    // Before any socket is opened: a socket belongs to the cgroup it was created in. Dropped
    // (detached, cgroup removed) when run returns.
    let _bypass = if args.accel.contains(&Accel::Sockmap) {
        let g = disgrafs_accel::sockmap::OwnCgroup::enter(Default::default())?;
        tracing::info!(cgroup = %g.path().display(), "same-host TCP bypass attached");
        Some(g)
    } else {
        None
    };
    let (accel, iface, weights) = (args.accel.clone(), args.iface.clone(), args.weights.clone());
    let config = resolve(args)?;
    // A certificate that does not load stops the start-up, in one line naming the file.
    let tls = match &config.tls {
        Some(files) => Some(CertResolver::open(files.clone()).context("TLS")?),
        None => None,
    };
    let scheme = if tls.is_some() { "https" } else { "http" };
    let listener = tokio::net::TcpListener::bind(config.listen)
        .await
        .with_context(|| format!("cannot listen on {}", config.listen))?;
    let addr = listener.local_addr()?;
    let data_dir = config.data_dir.clone();
    let on_postgres = config.meta.is_some();
    // Every refusal of the stores (a bad or unreachable --meta, credentials, a newer schema)
    // happens here, before the address line: never a half-started server.
    let state = AppState::open(config).await.with_context(|| {
        if on_postgres {
            "cannot open the metadata store".to_string()
        } else {
            format!("cannot open the data directory {}", data_dir.display())
        }
    })?;
    let _balancer = attach_accels(&accel, iface.as_deref(), weights.as_deref(), &state)?;
    // Installed before the address is printed: a SIGTERM right after it must still shut down
    // cleanly (and detach the accelerators).
    let shutdown = shutdown_signal();
    // The first line of stdout is the address, for scripts and tests that asked for port 0.
    println!(
        "disgrafs listening on {scheme}://{addr} (data: {})",
        data_dir.display()
    );
    first_start_link(&state, scheme, addr).await?;
    // One line on OCR, on or off, so a missing Tesseract is no mystery.
    match disgrafs_tagger::ocr::status() {
        Ok(langs) => eprintln!("disgrafs: OCR on (tesseract, {langs})"),
        Err(why) => eprintln!("disgrafs: {why}"),
    }
    labels_status_line();
    // Ctrl-C or SIGTERM: stop accepting, let requests in flight finish.
    disgrafs_server::serve(state, listener, tls, disgrafs_web::router(), shutdown)
        .await
        .context("server failed")
}

/// One line on image labels, on or off (loading the model on the way, before any tagging).
pub(crate) fn labels_status_line() {
    match disgrafs_tagger::labels::status() {
        Ok(l) => eprintln!("disgrafs: image labels on ({})", l.summary()),
        Err(why) => eprintln!("disgrafs: {why}"),
    }
}

/// On a store without users: makes the `admin` user and prints one line (on stderr, beside the
/// address line on stdout) with a one-time login link for it. Its code is after `#`, which a
/// browser never sends, so it appears in no request line or log.
async fn first_start_link(state: &AppState, scheme: &str, addr: SocketAddr) -> anyhow::Result<()> {
    let Some(link) = state
        .store
        .accounts()
        .first_start()
        .await
        .context("cannot create the first user")?
    else {
        return Ok(());
    };
    let host = if addr.ip().is_unspecified() {
        SocketAddr::from(([127, 0, 0, 1], addr.port()))
    } else {
        addr
    };
    eprintln!(
        "disgrafs: first start: log in as {} once, within {} minutes, at {scheme}://{host}/login#{}",
        disgrafs_store::accounts::FIRST_ADMIN,
        disgrafs_store::accounts::LINK_TTL.as_secs() / 60,
        link.secret
    );
    Ok(())
}

/// A future that resolves on Ctrl-C or SIGTERM. The SIGTERM handler is installed at the call,
/// not when the future is first polled, so a SIGTERM that comes right after is not lost.
pub(crate) fn shutdown_signal() -> impl std::future::Future<Output = ()> {
    let mut term = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()).ok();
    async move {
        tokio::select! {
            _ = tokio::signal::ctrl_c() => {}
            _ = async { match term.as_mut() { Some(t) => { t.recv().await; } None => std::future::pending().await } } => {}
        }
    }
}
