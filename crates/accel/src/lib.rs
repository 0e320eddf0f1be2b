//! eBPF accelerators for disgrafs' network IO (see ARCHITECTURE.md). Only this crate knows BPF.
