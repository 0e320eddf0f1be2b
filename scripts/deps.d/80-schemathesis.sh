# The API is fuzzed against its own OpenAPI document (crates/cli/tests/schemathesis.rs) with
# Schemathesis from PyPI, installed into a venv under target/ and found by the test through
# DISGRAFS_SCHEMATHESIS; its configuration and hooks are in scripts/schemathesis/. With it
# installed, the test must run rather than skip.
st_venv="${DISGRAFS_SCHEMATHESIS_VENV:-target/schemathesis-venv}"
if [ ! -x "$st_venv/bin/st" ]; then
  if ! /usr/bin/python3 -m venv "$st_venv" >/dev/null 2>&1; then
    need_debs python3 python3-venv python3-pip
    /usr/bin/python3 -m venv "$st_venv"
  fi
  echo "scripts: installing schemathesis into $st_venv" >&2
  "$st_venv/bin/pip" install -q 'schemathesis>=4.32,<5' >&2
fi
export DISGRAFS_SCHEMATHESIS="${DISGRAFS_SCHEMATHESIS:-$PWD/$st_venv/bin/st}"
export DISGRAFS_REQUIRE_SCHEMATHESIS=1
unset st_venv
