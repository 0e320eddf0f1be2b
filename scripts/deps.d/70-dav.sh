# WebDAV's client tests (crates/cli/tests/dav_clients.rs): the litmus conformance suite, rclone's
# webdav backend and cadaver, all from Debian, run against a real `disgrafs serve`.
need_debs litmus rclone cadaver
# Installed, so the tests must run: with this set, a client test that finds no client fails
# instead of skipping.
export DISGRAFS_REQUIRE_DAV="${DISGRAFS_REQUIRE_DAV:-1}"
