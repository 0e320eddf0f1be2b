# `disgrafs mount` and its tests (crates/cli/tests/mount.rs): fusermount3 mounts and unmounts
# without libfuse (fuser speaks the kernel protocol itself); the tests run rsync, find and grep
# inside the mount. The kernel's /dev/fuse must exist (the tests say so when it does not).
need_debs fuse3 rsync findutils grep
