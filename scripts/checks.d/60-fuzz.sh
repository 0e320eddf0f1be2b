#!/usr/bin/env bash
# A bounded round of each fuzz target of the parsers that take what clients send (fuzz/: the
# query language, tus Upload-Metadata, Range, file and folder names), from the seeds in
# fuzz/seeds/ plus what earlier rounds found (fuzz/corpus/, ignored by git). A crash fails the
# check; its input is in fuzz/artifacts/. DISGRAFS_FUZZ_SECONDS sets each target's time.
set -euo pipefail
cd "$(dirname "$0")/../.."
secs="${DISGRAFS_FUZZ_SECONDS:-20}"
if ! cargo +nightly --version >/dev/null 2>&1; then
  echo "check fuzz: no nightly toolchain (rustup toolchain install nightly)" >&2
  exit 1
fi
tools="$PWD/target/tools"
if ! cargo fuzz --version >/dev/null 2>&1 && [ ! -x "$tools/bin/cargo-fuzz" ]; then
  echo "check fuzz: installing cargo-fuzz into $tools" >&2
  cargo install --quiet --locked --root "$tools" cargo-fuzz
fi
export PATH="$tools/bin:$PATH"
cd fuzz
for t in query tus_metadata range file_name; do
  mkdir -p "corpus/$t"
  echo "check fuzz: $t for ${secs}s" >&2
  cargo +nightly fuzz run "$t" "corpus/$t" "seeds/$t" -- \
    -max_total_time="$secs" -max_len=4096 -timeout=10 -print_final_stats=0 >/dev/null 2>"corpus/$t.log" ||
    { tail -n 40 "corpus/$t.log" >&2; exit 1; }
done
