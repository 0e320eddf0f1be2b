//! The crate's one error type. Every variant renders as one line a person can act on: the CLI
//! prints it as is.

use std::io;

use thiserror::Error;

#[derive(Debug, Error)]
pub enum AccelError {
    #[error("permission denied: {what} needs root or CAP_BPF + CAP_NET_ADMIN")]
    NotPrivileged { what: String },

    #[error(
        "the kernel exposes no BTF (/sys/kernel/btf/vmlinux is missing): build it with CONFIG_DEBUG_INFO_BTF=y"
    )]
    NoBtf,

    #[error("the kernel refused to load {program} ({kind}): {detail}")]
    ProgramUnsupported {
        program: String,
        kind: String,
        detail: String,
    },

    #[error("interface {iface} not found{}", netns_suffix(.netns))]
    InterfaceNotFound {
        iface: String,
        netns: Option<String>,
    },

    #[error(
        "network namespace {name} not found (no /run/netns/{name}): create it with `ip netns add {name}`"
    )]
    NetnsNotFound { name: String },

    #[error(
        "{iface} already has an XDP program that disgrafs did not attach: refusing to replace it (remove it with its owner's tool first)"
    )]
    ForeignProgramAttached { iface: String },

    #[error(
        "{what} is already attached to {iface} by disgrafs: change it in place (e.g. --weights) or run `disgrafs accel detach` first"
    )]
    AlreadyAttached { what: String, iface: String },

    #[error("{what} is not attached to {iface}: attach it first")]
    NotAttached { what: String, iface: String },

    #[error("invalid weights {input:?}: {reason} (expected CPU:WEIGHT pairs, e.g. 0:1,1:3)")]
    InvalidWeights { input: String, reason: String },

    #[error("invalid argument: {0}")]
    InvalidArgument(String),

    #[error("bpffs: {0}")]
    Bpffs(String),

    #[error("{context}: {source}")]
    Io {
        context: String,
        #[source]
        source: io::Error,
    },

    #[error("{context}: {detail}")]
    Bpf { context: String, detail: String },

    #[error("test host: {0}")]
    Harness(String),
}

fn netns_suffix(netns: &Option<String>) -> String {
    netns
        .as_ref()
        .map(|n| format!(" in network namespace {n}"))
        .unwrap_or_default()
}

impl AccelError {
    pub fn io(context: impl Into<String>, source: io::Error) -> Self {
        AccelError::Io {
            context: context.into(),
            source,
        }
    }

    /// Wraps an aya error with what we were doing; aya's Display omits the nested cause (the
    /// verifier log or the errno), so the whole source chain is flattened onto the one line.
    pub(crate) fn bpf(context: impl Into<String>, err: impl std::error::Error) -> Self {
        AccelError::Bpf {
            context: context.into(),
            detail: chain(&err),
        }
    }
}

/// "outer: inner: innermost" for an error and its sources.
pub(crate) fn chain(err: &dyn std::error::Error) -> String {
    let mut out = err.to_string();
    let mut cur = err.source();
    while let Some(e) = cur {
        let s = e.to_string();
        if !out.contains(&s) {
            out.push_str(": ");
            out.push_str(&s);
        }
        cur = e.source();
    }
    // Verifier logs are many lines; one line per failure is the contract, and the reason is at
    // the end of the log: keep the head (what failed) and the tail (why).
    let line = out
        .split('\n')
        .map(str::trim)
        .filter(|l| !l.is_empty())
        .collect::<Vec<_>>()
        .join(" | ");
    let chars: Vec<char> = line.chars().collect();
    if chars.len() <= 700 {
        return line;
    }
    let head: String = chars[..200].iter().collect();
    let tail: String = chars[chars.len() - 450..].iter().collect();
    format!("{head} [...] {tail}")
}

/// Finds the errno at the bottom of an error chain, if any.
pub(crate) fn errno_of(err: &(dyn std::error::Error + 'static)) -> Option<i32> {
    let mut cur: Option<&(dyn std::error::Error + 'static)> = Some(err);
    while let Some(e) = cur {
        if let Some(io) = e.downcast_ref::<io::Error>()
            && let Some(code) = io.raw_os_error()
        {
            return Some(code);
        }
        cur = e.source();
    }
    None
}
