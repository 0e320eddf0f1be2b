# The web page: Node.js and npm build it (crates/web/build.rs runs `npm ci` and vite); Debian's
# Chromium runs its browser tests and benchmark (scripts/checks.d/50-web-e2e.sh, web/bench), with
# DejaVu fonts so that labels and screenshots render the same everywhere.
command -v node >/dev/null && command -v npm >/dev/null || need_debs nodejs npm
need_debs chromium fonts-dejavu-core
