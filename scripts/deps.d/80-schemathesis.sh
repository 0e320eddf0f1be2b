# The API is fuzzed against its own OpenAPI document (crates/cli/tests/schemathesis.rs) with
# Schemathesis from PyPI, installed into a venv under target/ and found by the test through
# DISGRAFS_SCHEMATHESIS; its configuration and hooks are in scripts/schemathesis/. With it
# installed, the test must run rather than skip.
st_venv="${DISGRAFS_SCHEMATHESIS_VENV:-target/schemathesis-venv}"
pip_tool "$st_venv" 'schemathesis>=4.32,<5' st
export DISGRAFS_SCHEMATHESIS="${DISGRAFS_SCHEMATHESIS:-$PWD/$st_venv/bin/st}"
export DISGRAFS_REQUIRE_SCHEMATHESIS=1
unset st_venv
