//! The disgrafs HTTP service: the JSON API, tus resumable uploads, downloads with ranges,
//! server-sent events, and the pool of tagging workers.
//!
//! Architecture invariant: only this crate knows HTTP. It turns requests into calls on
//! [`disgrafs_store::Store`] and [`disgrafs_tagger`], and store errors into statuses in one place
//! ([`error`]).
#![cfg_attr(
    test,
    allow(
        unused_crate_dependencies,
        reason = "unit tests see the dev-dependencies that only the integration tests use"
    )
)]

pub mod auth;
mod dav;
mod download;
pub mod error;
mod events;
mod extract;
pub mod fastpath;
mod files;
mod graph;
pub mod host;
pub mod jobs;
pub mod limits;
pub mod metrics;
mod multipart;
mod openapi;
mod page_policy;
mod recent;
mod share;
pub mod tls;
mod tus;
mod upload;

use axum::Router;
use axum::extract::DefaultBodyLimit;
use disgrafs_store::Store;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;
use tokio::net::TcpListener;

pub use disgrafs_store::Event;

/// How the service runs. Every field has a default that suits one machine.
#[derive(Debug, Clone)]
pub struct Config {
    pub listen: SocketAddr,
    pub data_dir: PathBuf,
    /// Where metadata and the job queue live: a `postgres://` URL, or None for SQLite in
    /// `data_dir` (the embedded default).
    pub meta: Option<String>,
    /// Largest accepted upload, in bytes.
    pub max_upload: u64,
    /// Tagging workers running at once.
    pub workers: usize,
    /// Automatic tags below this confidence are kept but not shown.
    pub min_confidence: f64,
    /// Incomplete tus uploads untouched this long are removed.
    pub upload_expiry: std::time::Duration,
    /// Host names answered beside the loopback names and the listen address (see [`host`]).
    pub allowed_hosts: Vec<host::AllowedHost>,
    /// Where `/metrics` reads the system's figures (`/proc`; tests point it elsewhere).
    pub proc_root: PathBuf,
    /// Where blob contents live (the data directory by default; metadata and uploads in
    /// progress stay in the data directory).
    pub blobs: disgrafs_store::BlobLocation,
    /// HTTPS on the listener with this certificate and key (see [`tls`]); None: plain HTTP.
    pub tls: Option<tls::TlsFiles>,
    /// Requests per second per client (see [`limits::Clients`]); None: unlimited.
    pub rate: Option<limits::Rate>,
    /// Uploads one client may send at once; None: unbounded per client (the server-wide bounds
    /// of [`limits`] hold).
    pub uploads_per_client: Option<usize>,
    /// `/metrics` without a credential (for a Prometheus that cannot send one); otherwise it
    /// needs `read`, like every route.
    pub metrics_public: bool,
    /// The tagger's models directory (see [`disgrafs_tagger::labels`]); None: image labels off.
    /// One per process: the first server opened in a process sets it.
    pub models: Option<PathBuf>,
}

impl Default for Config {
    fn default() -> Self {
        Config {
            listen: SocketAddr::from(([127, 0, 0, 1], 7878)),
            data_dir: PathBuf::from("disgrafs-data"),
            meta: None,
            max_upload: 1 << 40,
            workers: std::thread::available_parallelism()
                .map_or(2, |n| n.get())
                .clamp(1, 8),
            min_confidence: disgrafs_tagger::DEFAULT_MIN_CONFIDENCE,
            upload_expiry: std::time::Duration::from_secs(24 * 3600),
            allowed_hosts: Vec::new(),
            proc_root: PathBuf::from("/proc"),
            blobs: disgrafs_store::BlobLocation::Local,
            tls: None,
            rate: None,
            uploads_per_client: None,
            metrics_public: false,
            models: None,
        }
    }
}

/// What every handler shares.
#[derive(Clone)]
pub struct AppState {
    pub store: Store,
    pub config: Arc<Config>,
    pub metrics: Arc<metrics::Metrics>,
    jobs: Arc<tokio::sync::Notify>,
    /// Uploads being staged at once: each holds a blocking writer thread, and the blocking pool
    /// must keep room for downloads, tus and commits.
    staging: Arc<tokio::sync::Semaphore>,
    /// Password tries, per share link.
    share_unlocks: Arc<governor::DefaultKeyedRateLimiter<i64>>,
}

impl AppState {
    pub async fn open(config: Config) -> Result<Self, disgrafs_store::StoreError> {
        let store = Store::open(
            &config.data_dir,
            config.meta.as_deref(),
            &config.blobs,
            config.min_confidence,
        )
        .await?;
        // Contents a crash left without a record (between a commit and its record, or a
        // deletion's commit and the unlink) are removed before anything is served.
        match store.sweep_orphans().await {
            Ok(0) => {}
            Ok(n) => tracing::info!("removed {n} stored contents no record points at"),
            Err(e) => tracing::warn!("cannot sweep orphaned contents: {e}"),
        }
        // Likewise tus parts that no upload records.
        match store.sweep_parts().await {
            Ok(0) => {}
            Ok(n) => tracing::info!("removed {n} upload parts no upload records"),
            Err(e) => tracing::warn!("cannot sweep orphaned upload parts: {e}"),
        }
        Self::with_store(store, config)
    }

    pub(crate) fn with_store(
        store: Store,
        config: Config,
    ) -> Result<Self, disgrafs_store::StoreError> {
        if let Some(dir) = &config.models {
            disgrafs_tagger::labels::configure(dir);
        }
        let metrics = Arc::new(metrics::Metrics::new(config.proc_root.clone()));
        // Found through their pins, so one attached by `disgrafs accel` shows too.
        metrics.add_accel(Box::new(metrics::PinnedSource));
        Ok(AppState {
            store,
            metrics,
            config: Arc::new(config),
            jobs: Arc::new(tokio::sync::Notify::new()),
            staging: Arc::new(tokio::sync::Semaphore::new(limits::MAX_STAGING)),
            share_unlocks: Arc::new(governor::RateLimiter::keyed(
                governor::Quota::with_period(share::UNLOCK_PERIOD)
                    .expect("a period above zero")
                    .allow_burst(
                        std::num::NonZeroU32::new(share::UNLOCK_BURST).expect("above zero"),
                    ),
            )),
        })
    }

    /// Wakes the tagging workers: a job was queued.
    pub(crate) fn wake_workers(&self) {
        self.jobs.notify_waiters();
    }
}

/// The API's routes (without the web page).
pub fn api(state: AppState) -> Router {
    Router::new()
        .merge(files::routes())
        .merge(graph::routes())
        .merge(events::routes())
        .merge(tus::routes())
        .merge(openapi::routes())
        .merge(metrics::routes())
        .merge(recent::routes())
        .merge(dav::routes(state.clone()))
        .merge(auth::routes())
        .merge(share::routes())
        .fallback(error::no_route)
        .method_not_allowed_fallback(error::method_not_allowed)
        // Bodies read into memory (JSON) are bounded; uploads take the raw body and stream it to
        // disk, bounded by `max_upload` alone.
        .layer(DefaultBodyLimit::max(limits::JSON_BODY))
        // Every route, the fallbacks too, is behind the credential check.
        .layer(axum::middleware::from_fn_with_state(
            state.clone(),
            auth::require,
        ))
        .layer(axum::middleware::from_fn(same_origin_writes))
        .with_state(state)
}

/// Refuses requests that change something when a browser says they come from another site's
/// page (beside the session cookie's CSRF proof, see [`auth`]).
/// Comparing with Host is sound only because [`host::check`], layered outside, vouched for it.
async fn same_origin_writes(
    req: axum::extract::Request,
    next: axum::middleware::Next,
) -> axum::response::Response {
    use axum::http::{Method, header};
    use axum::response::IntoResponse;
    let safe = matches!(*req.method(), Method::GET | Method::HEAD | Method::OPTIONS);
    if !safe
        && let Some(origin) = req
            .headers()
            .get(header::ORIGIN)
            .and_then(|v| v.to_str().ok())
    {
        let host = req
            .headers()
            .get(header::HOST)
            .and_then(|v| v.to_str().ok())
            .unwrap_or("");
        let origin_host = origin.split_once("://").map_or(origin, |(_, h)| h);
        if origin != "null" && origin_host != host {
            return error::ApiError::new(
                error::Cause::CrossOrigin,
                format!("requests from {origin} may not change this store"),
            )
            .into_response();
        }
        if origin == "null" {
            return error::ApiError::new(
                error::Cause::CrossOrigin,
                "requests from an opaque origin may not change this store",
            )
            .into_response();
        }
    }
    next.run(req).await
}

/// Starts the tagging workers and the housekeeping tasks. They stop when the runtime does.
pub async fn start_background(state: &AppState) -> Result<(), disgrafs_store::StoreError> {
    let recovered = state.store.recover_jobs().await?;
    if recovered > 0 {
        tracing::info!(
            recovered,
            "re-queued tagging jobs left running by a previous run"
        );
    }
    jobs::spawn_workers(
        state.store.clone(),
        state.config.workers,
        jobs::LEASE,
        state.metrics.clone(),
        state.jobs.clone(),
    );
    tus::spawn_expiry(state.clone());
    recent::spawn_sampler(state.clone());
    Ok(())
}

/// Serves `listener` until `shutdown` resolves, over TLS when `tls` is given (its certificate
/// reloaded on SIGHUP). `extra` routes (the web page) are merged in.
pub async fn serve(
    state: AppState,
    listener: TcpListener,
    tls: Option<Arc<tls::CertResolver>>,
    extra: Router,
    shutdown: impl std::future::Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    start_background(&state)
        .await
        .map_err(std::io::Error::other)?;
    let hosts = host::AllowedHosts::new(&state.config.allowed_hosts, listener.local_addr()?);
    let clients = limits::Clients::new(state.config.rate, state.config.uploads_per_client);
    clients.spawn_forget();
    let track = axum::middleware::from_fn_with_state(state.metrics.clone(), metrics::track);
    // Tracking outermost, so refused Hosts are counted too; the per-client bounds before
    // anything else is looked at.
    let app = api(state)
        .merge(extra)
        .layer(axum::middleware::from_fn(page_policy::html_policy))
        .layer(axum::middleware::from_fn_with_state(hosts, host::check))
        .layer(axum::middleware::from_fn_with_state(
            clients,
            limits::per_client,
        ))
        .layer(track)
        .layer(tower_http::trace::TraceLayer::new_for_http());
    let app = app.layer(tower_http::timeout::RequestBodyTimeoutLayer::new(
        limits::BODY_IDLE,
    ));
    let tls = match tls {
        Some(resolver) => {
            tls::reload_on_sighup(resolver.clone())?;
            let config = resolver.server_config().map_err(std::io::Error::other)?;
            Some(tokio_rustls::TlsAcceptor::from(Arc::new(config)))
        }
        None => None,
    };
    accept_loop(listener, tls, app, shutdown).await
}

/// Serves connections with hyper's HTTP/1 server, whose timer closes a connection that does not
/// send a request's headers within [`limits::HEADER_READ`] (slow-loris, idle keep-alive); a TLS
/// handshake has as long, on the connection's own task.
async fn accept_loop(
    listener: TcpListener,
    tls: Option<tokio_rustls::TlsAcceptor>,
    app: Router,
    shutdown: impl std::future::Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    use hyper_util::rt::{TokioIo, TokioTimer};
    use tower::ServiceExt;
    raise_fd_limit();
    let mut http = hyper::server::conn::http1::Builder::new();
    http.timer(TokioTimer::new())
        .header_read_timeout(limits::HEADER_READ);
    let http = Arc::new(http);
    let graceful = hyper_util::server::graceful::GracefulShutdown::new();
    let mut shutdown = std::pin::pin!(shutdown);
    loop {
        let (tcp, peer) = tokio::select! {
            conn = listener.accept() => match conn {
                Ok(conn) => conn,
                Err(e) => {
                    // Out of file descriptors, mostly: wait for connections to close.
                    tracing::warn!("accept: {e}");
                    tokio::time::sleep(std::time::Duration::from_millis(100)).await;
                    continue;
                }
            },
            () = &mut shutdown => break,
        };
        // Without TCP_NODELAY a small response waits for the client's delayed ACK (~40 ms).
        tcp.set_nodelay(true).ok();
        // Every request knows its peer (the per-client limits).
        let app = app.clone().map_request(
            move |mut req: axum::extract::Request<hyper::body::Incoming>| {
                req.extensions_mut().insert(limits::Peer(peer));
                req
            },
        );
        let service = hyper_util::service::TowerToHyperService::new(app);
        match &tls {
            None => {
                let conn = graceful.watch(http.serve_connection(TokioIo::new(tcp), service));
                tokio::spawn(async move {
                    if let Err(e) = conn.await {
                        tracing::debug!("connection: {e}");
                    }
                });
            }
            Some(acceptor) => {
                let (acceptor, http) = (acceptor.clone(), http.clone());
                // Watched from the start: shutdown waits for the handshake too.
                let watcher = graceful.watcher();
                tokio::spawn(async move {
                    let stream =
                        match tokio::time::timeout(limits::HEADER_READ, acceptor.accept(tcp)).await
                        {
                            Ok(Ok(s)) => s,
                            Ok(Err(e)) => return tracing::debug!("TLS handshake: {e}"),
                            Err(_) => return tracing::debug!("TLS handshake timed out"),
                        };
                    let conn = watcher.watch(http.serve_connection(TokioIo::new(stream), service));
                    if let Err(e) = conn.await {
                        tracing::debug!("connection: {e}");
                    }
                });
            }
        }
    }
    graceful.shutdown().await;
    Ok(())
}

/// Raises the soft limit of open files to the hard one: every connection is a descriptor, and
/// the usual soft limit (1024) would let a thousand idle sockets refuse everyone else until the
/// header timeout closes them.
fn raise_fd_limit() {
    let mut lim = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    // SAFETY: getrlimit and setrlimit read and write the struct we own.
    unsafe {
        if libc::getrlimit(libc::RLIMIT_NOFILE, &mut lim) == 0 && lim.rlim_cur < lim.rlim_max {
            lim.rlim_cur = lim.rlim_max;
            if libc::setrlimit(libc::RLIMIT_NOFILE, &lim) != 0 {
                tracing::warn!(
                    "cannot raise the open-file limit: {}",
                    std::io::Error::last_os_error()
                );
            }
        }
    }
}
