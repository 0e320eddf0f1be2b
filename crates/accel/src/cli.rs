//! The `disgrafs accel ...` subcommands: clap definitions and their execution. The binary only
//! nests [`AccelCommand`] and calls [`run`].

use std::{
    io::Write,
    time::{Duration, Instant},
};

use clap::Subcommand;

use crate::{
    AccelError,
    cpu_balance::{self, AttachMode, BalanceConfig, DEFAULT_QUEUE_SIZE, Weights},
    http::{HttpObserver, Observed, ObserverConfig},
    sockmap::{self, SmallWritePolicy, SockmapConfig},
    status, sys,
};

#[derive(Debug, Clone, Subcommand)]
pub enum AccelCommand {
    /// What disgrafs has attached where, with counters.
    Status {
        /// Print JSON instead of text.
        #[arg(long)]
        json: bool,
    },
    /// Remove everything disgrafs attached (idempotent).
    Detach,
    /// Print the HTTP/1.x requests seen on an interface, one line each.
    HttpTrace {
        /// Interface to observe (nothing is observed implicitly).
        #[arg(long)]
        iface: String,
        /// Network namespace (`ip netns` name) holding the interface.
        #[arg(long)]
        netns: Option<String>,
        /// One JSON object per line.
        #[arg(long)]
        json: bool,
        /// Stop after this many seconds and print the aggregates (default: run until killed).
        #[arg(long)]
        duration: Option<u64>,
    },
    /// Spread an interface's receive work over CPUs by weight (XDP + CPUMAP). On an interface
    /// that already has the balancer, changes the weights in place.
    CpuBalance {
        /// Interface to balance (nothing is attached implicitly).
        #[arg(long)]
        iface: String,
        /// Network namespace (`ip netns` name) holding the interface.
        #[arg(long)]
        netns: Option<String>,
        /// CPU:WEIGHT pairs, e.g. 0:1,1:3.
        #[arg(long)]
        weights: String,
        /// XDP mode for a new attachment.
        #[arg(long, value_enum, default_value_t = AttachMode::Auto)]
        mode: AttachMode,
        /// CPUMAP queue size per CPU for a new attachment.
        #[arg(long, default_value_t = DEFAULT_QUEUE_SIZE)]
        queue_size: u32,
    },
    /// Same-host TCP bypass (sock_ops + sk_msg) for the processes of a cgroup v2: data between
    /// two local TCP sockets of that cgroup skips the TCP/IP stack.
    Sockmap {
        /// The cgroup v2 directory (never the root; nothing is attached implicitly).
        #[arg(long)]
        cgroup: std::path::PathBuf,
        /// Messages below this size are small (0, the default: redirect every message). Opt-in:
        /// a receiver behind a direction moved to TCP misreads FIONREAD (nginx can stall).
        #[arg(long, default_value_t = SmallWritePolicy::DEFAULT.small_bytes)]
        small_bytes: u32,
        /// After this many small messages in a row with no reply, a direction takes TCP.
        #[arg(long, default_value_t = SmallWritePolicy::STREAMS.run)]
        small_run: u32,
    },
}

fn out(line: &str) {
    let mut o = std::io::stdout().lock();
    writeln!(o, "{line}").ok();
    o.flush().ok();
}

fn to_json<T: serde::Serialize>(v: &T) -> Result<String, AccelError> {
    serde_json::to_string(v).map_err(|e| AccelError::InvalidArgument(format!("serialising: {e}")))
}

pub fn run(cmd: AccelCommand) -> Result<(), AccelError> {
    match cmd {
        AccelCommand::Status { json } => {
            let st = status::status()?;
            if json {
                out(&serde_json::to_string_pretty(&st)
                    .map_err(|e| AccelError::InvalidArgument(e.to_string()))?);
            } else {
                print!("{}", status::render(&st));
            }
            Ok(())
        }
        AccelCommand::Detach => {
            let r = status::detach_all()?;
            if r.removed.is_empty() {
                out("nothing attached by disgrafs");
            }
            for line in &r.removed {
                out(&format!("detached {line}"));
            }
            if r.unmounted_bpffs {
                out("unmounted /sys/fs/bpf (disgrafs had mounted it)");
            }
            Ok(())
        }
        AccelCommand::HttpTrace {
            iface,
            netns,
            json,
            duration,
        } => {
            let cfg = ObserverConfig::new(&iface, netns.as_deref());
            let cb = move |ev: &Observed| {
                if json {
                    if let Ok(s) = to_json(ev) {
                        out(&s);
                    }
                } else {
                    out(&ev.to_string());
                }
            };
            let obs = HttpObserver::start(&cfg, Some(Box::new(cb)))?;
            eprintln!(
                "observing HTTP/1.x requests on {iface}{}",
                netns.map(|n| format!(" (netns {n})")).unwrap_or_default()
            );
            let deadline = duration.map(|s| Instant::now() + Duration::from_secs(s));
            loop {
                std::thread::sleep(Duration::from_millis(200));
                if deadline.is_some_and(|d| Instant::now() >= d) {
                    break;
                }
            }
            let agg = obs.stop();
            if json {
                out(&to_json(&agg)?);
            } else {
                out(&format!(
                    "{} requests, {} bytes, {} split request lines, {} rejected",
                    agg.requests, agg.bytes, agg.split_request_lines, agg.rejected
                ));
                for r in &agg.routes {
                    out(&format!(
                        "  {} {} requests={} bytes={}",
                        r.method, r.path, r.requests, r.bytes
                    ));
                }
            }
            Ok(())
        }
        AccelCommand::CpuBalance {
            iface,
            netns,
            weights,
            mode,
            queue_size,
        } => {
            let w = Weights::parse(&weights, sys::possible_cpus()?)?;
            let mut cfg = BalanceConfig::new(&iface, netns.as_deref(), w.clone());
            cfg.mode = mode;
            cfg.queue_size = queue_size;
            match cpu_balance::apply(&cfg)? {
                Some(report) => {
                    for warning in &report.warnings {
                        eprintln!("warning: {warning}");
                    }
                    out(&format!(
                        "cpu-balance attached to {iface} (XDP {} mode), weights {w}",
                        report.mode
                    ));
                }
                None => out(&format!("cpu-balance on {iface}: weights now {w}")),
            }
            Ok(())
        }
        AccelCommand::Sockmap {
            cgroup,
            small_bytes,
            small_run,
        } => {
            let policy = SmallWritePolicy {
                small_bytes,
                run: small_run,
            };
            sockmap::attach(&SockmapConfig {
                cgroup: cgroup.clone(),
                policy,
            })?;
            out(&format!(
                "sockmap attached to cgroup {} (small writes: < {small_bytes} B x {small_run})",
                cgroup.display()
            ));
            Ok(())
        }
    }
}
