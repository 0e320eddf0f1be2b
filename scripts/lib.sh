# Shared helpers for scripts/*. Source it; do not run it.

# need_debs PKG...: installs the Debian packages that are missing (apt-get update once per run).
need_debs() {
  local missing=()
  for p in "$@"; do
    dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
  done
  [ ${#missing[@]} -eq 0 ] && return 0
  if [ "$(id -u)" != 0 ]; then
    echo "scripts: missing Debian packages ${missing[*]}; install them as root (apt-get install ${missing[*]})" >&2
    return 1
  fi
  if [ -z "${DISGRAFS_APT_UPDATED:-}" ]; then
    apt-get update -qq >/dev/null
    export DISGRAFS_APT_UPDATED=1
  fi
  echo "scripts: installing ${missing[*]}" >&2
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
}

# pip_tool VENV PIP_SPEC BIN: makes the venv VENV (under target/) when BIN is not in it yet and
# installs PIP_SPEC there; prints nothing when it is already installed. Callers export the path
# of VENV/bin/BIN for the tests.
pip_tool() {
  local venv="$1" spec="$2" bin="$3"
  [ -x "$venv/bin/$bin" ] && return 0
  if ! /usr/bin/python3 -m venv "$venv" >/dev/null 2>&1; then
    need_debs python3 python3-venv python3-pip
    /usr/bin/python3 -m venv "$venv"
  fi
  echo "scripts: installing $spec into $venv" >&2
  "$venv/bin/pip" install -q "$spec" >&2
}
