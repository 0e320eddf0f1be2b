//! eBPF accelerators for disgrafs' network IO. Only this crate knows BPF.
//!
//! * [`http`]: the HTTP observer (socket filter on a raw packet socket) and its aggregates.
//! * [`afxdp`]: XDP steering of one TCP/UDP port to AF_XDP sockets, and those sockets as a
//!   `smoltcp` device (the user-space fast path in `crates/fastpath` runs on them).
//! * [`cpu_balance`]: XDP + CPUMAP spreading an interface's receive work over CPUs by weight.
//! * [`sockmap`]: the same-host TCP bypass (sock_ops + sk_msg on a SOCKHASH) for a named cgroup.
//! * [`status`]: what is attached where, with counters; `detach` of everything.
//! * [`pin`]: the bpffs layout under `/sys/fs/bpf/disgrafs/` shared by all accelerators.
//! * [`harness`]: real test hosts (network namespaces, veth pairs, a child cgroup v2) for tests
//!   and for the benchmarks in `disgrafs-bench`.
//! * [`cli`]: what the `disgrafs` binary exposes.
//!
//! BPF sources are in `crates/accel/bpf/`; the objects built from them are committed and embedded
//! ([`objects`]).
//!
//! Architecture invariant: nothing here attaches to an interface or cgroup that the caller did not
//! name. Architecture invariant: an XDP program disgrafs did not attach is never replaced.

pub mod afxdp;
pub mod cli;
pub mod cpu_balance;
mod error;
pub mod harness;
pub mod http;
pub mod netlink;
pub mod objects;
pub mod pin;
pub mod sockmap;
pub mod status;
pub mod sys;

pub use error::AccelError;
