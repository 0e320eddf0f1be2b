//! The tagging workers: claim a job from the persistent queue, run the extractors on the
//! content, record the tags. Uploads only insert a job row; they never wait for tagging.
//!
//! Nothing here knows HTTP: the workers need a [`Store`] and the figures they count, so they run
//! inside `disgrafs serve` or, alone, in `disgrafs worker` ([`run_workers`]) on any host that
//! reaches the shared stores.

use crate::metrics::Metrics;
use disgrafs_core::query::{Expr, Predicate};
use disgrafs_store::{Job, ListOptions, NewAutoTag, Store, TagResult};
use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::Notify;

/// A claimed job is leased this long by default, renewed while it runs; a worker that dies
/// loses it (and another takes the job) once it runs out.
pub const LEASE: Duration = Duration::from_secs(60);
const MAX_ATTEMPTS: u32 = disgrafs_store::MAX_JOB_ATTEMPTS;
/// One content's tagging may take this long in all.
const TAG_TIMEOUT: Duration = Duration::from_secs(300);
/// Polling interval when idle (new work also wakes the workers at once).
const IDLE_POLL: Duration = Duration::from_secs(2);

pub(crate) fn extractor_versions() -> BTreeMap<String, u32> {
    disgrafs_tagger::extractor_versions()
        .into_iter()
        .map(|(k, v)| (k.to_string(), v))
        .collect()
}

type TagReply =
    tokio::sync::oneshot::Sender<Result<disgrafs_tagger::Tagging, disgrafs_tagger::TagError>>;

/// One worker's tagging thread. It runs at the lowest CPU priority (nice 19): on a small machine,
/// tagging must take only the CPU time that uploads and downloads leave.
struct TagThread(std::sync::mpsc::Sender<(std::path::PathBuf, String, TagReply)>);

impl TagThread {
    fn start(n: usize) -> std::io::Result<Self> {
        let (tx, rx) = std::sync::mpsc::channel::<(std::path::PathBuf, String, TagReply)>();
        std::thread::Builder::new()
            .name(format!("disgrafs-tag-{n}"))
            .spawn(move || {
                // SAFETY: plain syscalls on this thread's own id; the nice value is per thread on
                // Linux. Failure only leaves the thread at normal priority.
                unsafe {
                    let tid = libc::syscall(libc::SYS_gettid) as libc::id_t;
                    libc::setpriority(libc::PRIO_PROCESS, tid, 19);
                }
                while let Ok((path, name, reply)) = rx.recv() {
                    // The tagger stops itself at the timeout, so the next job finds the thread
                    // free; the timeout in `run` is only the backstop.
                    let deadline = disgrafs_tagger::Deadline::after(TAG_TIMEOUT);
                    // Err: the worker stopped waiting; nobody wants this result.
                    reply
                        .send(disgrafs_tagger::tag_file_with(&path, &name, &deadline))
                        .ok();
                }
            })?;
        Ok(TagThread(tx))
    }

    async fn tag(
        &self,
        path: std::path::PathBuf,
        name: String,
    ) -> Result<Result<disgrafs_tagger::Tagging, disgrafs_tagger::TagError>, String> {
        let (reply, rx) = tokio::sync::oneshot::channel();
        self.0
            .send((path, name, reply))
            .map_err(|_| "the tagging thread is gone".to_string())?;
        rx.await
            .map_err(|_| "the tagging thread crashed".to_string())
    }
}

/// What a worker uses: the store and the figures it counts.
#[derive(Clone)]
struct Ctx {
    store: Store,
    metrics: Arc<Metrics>,
    lease_ms: i64,
}

/// Runs `workers` tagging workers in this process until it ends (`disgrafs worker`): they
/// claim jobs from the store's queue, whoever queued them. On SQLite, which this process then
/// owns, jobs a previous run left running are queued again first.
pub async fn run_workers(
    store: Store,
    workers: usize,
    lease: Duration,
) -> Result<(), disgrafs_store::StoreError> {
    let recovered = store.recover_jobs().await?;
    if recovered > 0 {
        tracing::info!(
            recovered,
            "re-queued tagging jobs left running by a previous run"
        );
    }
    let metrics = Arc::new(Metrics::new(std::path::PathBuf::from("/proc")));
    spawn_workers(store, workers, lease, metrics, Arc::new(Notify::new()));
    Ok(())
}

/// Starts `workers` workers. `wake` is notified when this process queued work; work queued by
/// other processes wakes them through the store's events (a created file), or the idle poll.
pub(crate) fn spawn_workers(
    store: Store,
    workers: usize,
    lease: Duration,
    metrics: Arc<Metrics>,
    wake: Arc<Notify>,
) {
    let lease_ms = i64::try_from(lease.as_millis()).unwrap_or(i64::MAX).max(1);
    for n in 0..workers {
        let state = Ctx {
            store: store.clone(),
            metrics: metrics.clone(),
            lease_ms,
        };
        let wake = wake.clone();
        let mut events = store.watch();
        let thread = match TagThread::start(n) {
            Ok(t) => t,
            Err(e) => {
                tracing::error!("cannot start tagging thread {n}: {e}");
                continue;
            }
        };
        tokio::spawn(async move {
            loop {
                match state.store.claim_job(state.lease_ms).await {
                    Ok(Some(job)) => run(&state, &thread, job).await,
                    Ok(None) => {
                        // Woken or timed out: either way, look for work again.
                        let created = async {
                            while let Ok(e) = events.recv().await {
                                if e.kind == "file.created" {
                                    break;
                                }
                            }
                        };
                        tokio::select! {
                            () = wake.notified() => {}
                            () = created => {}
                            () = tokio::time::sleep(IDLE_POLL) => {}
                        }
                    }
                    Err(e) => {
                        tracing::warn!(worker = n, "cannot claim a job: {e}");
                        tokio::time::sleep(IDLE_POLL).await;
                    }
                }
            }
        });
    }
}

async fn files_of(
    state: &Ctx,
    hash: &str,
) -> Result<Vec<disgrafs_core::FileRecord>, disgrafs_store::StoreError> {
    let q = Expr::Pred(Predicate::HashPrefix(hash.to_owned()));
    let opts = ListOptions {
        limit: 1000,
        ..Default::default()
    };
    Ok(state
        .store
        .list(&disgrafs_store::Viewer::All, &q, opts)
        .await?
        .0)
}

/// Records a failed try; a job whose failure cannot be recorded keeps its lease until it expires,
/// and is then tried again.
async fn fail(state: &Ctx, job: &Job, error: &str, max_attempts: u32) {
    if let Err(e) = state.store.fail_job(job, error, max_attempts).await {
        tracing::warn!(hash = %job.hash, "cannot record a failed tagging try ({error}): {e}");
    }
}

async fn run(state: &Ctx, thread: &TagThread, job: Job) {
    let files = match files_of(state, &job.hash).await {
        Ok(f) => f,
        Err(e) => {
            fail(
                state,
                &job,
                &format!("cannot read the content's files: {e}"),
                MAX_ATTEMPTS,
            )
            .await;
            return;
        }
    };
    // Deleting a content's last file removes its job, so a job always has a file; if a race
    // says otherwise, try again later rather than record empty tags.
    let Some(name) = files.first().map(|f| f.name.clone()) else {
        fail(state, &job, "no file uses this content", MAX_ATTEMPTS).await;
        return;
    };
    let renew = {
        let (store, job, lease_ms) = (state.store.clone(), job.clone(), state.lease_ms);
        tokio::spawn(async move {
            loop {
                tokio::time::sleep(Duration::from_millis(lease_ms as u64 / 3)).await;
                if let Err(e) = store.renew_job(&job, lease_ms).await {
                    tracing::warn!(hash = %job.hash, "cannot renew the job's lease: {e}");
                }
            }
        })
    };
    // Remote blobs are copied here first (under the lease, which the copy may take a while).
    let blob = match state.store.local_copy(&job.hash).await {
        Ok(b) => b,
        Err(e) => {
            renew.abort();
            fail(
                state,
                &job,
                &format!("cannot read the content: {e}"),
                MAX_ATTEMPTS,
            )
            .await;
            return;
        }
    };
    // The tagger bounds each extractor; this bounds the whole, so a worker is never stuck.
    let started = std::time::Instant::now();
    let outcome =
        tokio::time::timeout(TAG_TIMEOUT, thread.tag(blob.path().to_path_buf(), name)).await;
    renew.abort();
    drop(blob);
    let Ok(outcome) = outcome else {
        state.metrics.job_failed("timeout");
        tracing::warn!(hash = %job.hash, "tagging took longer than {TAG_TIMEOUT:?}; giving up on this try");
        fail(state, &job, "tagging timed out", MAX_ATTEMPTS).await;
        return;
    };
    let result = match outcome {
        Ok(Ok(t)) => {
            state.metrics.job_done(
                t.kind.as_str(),
                started.elapsed().as_secs_f64(),
                t.warnings.len(),
            );
            for w in &t.warnings {
                tracing::warn!(hash = %job.hash, "tagging: {w}");
            }
            Ok(TagResult {
                mime: t.mime,
                kind: t.kind,
                tags: t
                    .tags
                    .into_iter()
                    .map(|a| NewAutoTag {
                        name: a.name,
                        extractor: a.extractor,
                        version: a.version,
                        confidence: a.confidence,
                    })
                    .collect(),
                fields: t.fields,
                versions: t.versions,
                text: t.text,
            })
        }
        Ok(Err(e)) => {
            state.metrics.job_failed("error");
            Err(e.to_string())
        }
        Err(e) => {
            state.metrics.job_failed("crash");
            Err(format!("tagger crashed: {e}"))
        }
    };
    match result {
        Ok(r) => match state.store.complete_job(&job, r).await {
            Ok(()) => {
                for f in files_of(state, &job.hash).await.unwrap_or_default() {
                    state.store.announce("file.tagged", &f).await;
                }
            }
            Err(e) => {
                tracing::warn!(hash = %job.hash, "cannot record tags: {e}");
                state.metrics.job_failed("record");
                fail(
                    state,
                    &job,
                    &format!("cannot record tags: {e}"),
                    MAX_ATTEMPTS,
                )
                .await;
            }
        },
        Err(e) => {
            tracing::warn!(hash = %job.hash, attempt = job.attempts, "tagging failed: {e}");
            fail(state, &job, &e, MAX_ATTEMPTS).await;
        }
    }
}
