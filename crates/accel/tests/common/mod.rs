//! Helpers shared by the accel integration tests.
#![allow(dead_code, reason = "each test file uses a different subset")]

use std::os::fd::{AsFd, AsRawFd};

/// Runs a loaded program once over `data` with BPF_PROG_TEST_RUN; returns its return value.
pub fn test_run(prog: impl AsFd, data: &[u8]) -> std::io::Result<u32> {
    // struct bpf_attr's test field, as laid out in linux/bpf.h.
    #[repr(C)]
    #[derive(Default)]
    struct TestRun {
        prog_fd: u32,
        retval: u32,
        data_size_in: u32,
        data_size_out: u32,
        data_in: u64,
        data_out: u64,
        repeat: u32,
        duration: u32,
        ctx_size_in: u32,
        ctx_size_out: u32,
        ctx_in: u64,
        ctx_out: u64,
        flags: u32,
        cpu: u32,
        batch_size: u32,
        _pad: u32,
    }
    const BPF_PROG_TEST_RUN: libc::c_long = 10;
    let mut attr = TestRun {
        prog_fd: prog.as_fd().as_raw_fd() as u32,
        data_size_in: data.len() as u32,
        data_in: data.as_ptr() as u64,
        repeat: 1,
        ..Default::default()
    };
    // SAFETY: attr is a valid, live bpf_attr prefix; data outlives the call.
    let rc = unsafe {
        libc::syscall(
            libc::SYS_bpf,
            BPF_PROG_TEST_RUN,
            &mut attr as *mut TestRun,
            size_of::<TestRun>(),
        )
    };
    if rc < 0 {
        Err(std::io::Error::last_os_error())
    } else {
        Ok(attr.retval)
    }
}
