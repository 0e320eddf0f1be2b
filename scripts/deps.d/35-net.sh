# The connection layer's tests: strace shows that a tus part and its directory are fsynced
# (crates/cli/tests/tus.rs); cargo-fuzz and a nightly toolchain run the fuzz targets' bounded
# rounds (scripts/checks.d/60-fuzz.sh, which installs cargo-fuzz when it is missing).
need_debs strace
