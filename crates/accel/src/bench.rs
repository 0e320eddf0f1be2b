//! `disgrafs bench cpu-balance`.
