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
