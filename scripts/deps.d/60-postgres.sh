# The PostgreSQL adapter's tests (crates/store/tests/meta_suite.rs, crates/cli/tests/meta_postgres.rs)
# start a private cluster of their own (initdb in a temporary directory, as the postgres user when
# run as root), so only the server's binaries are needed, not a running service.
# pgbench (`disgrafs bench sockmap`) ships in the server package too.
need_debs postgresql
# Installed, so the tests must run: with this set, a test that cannot start PostgreSQL fails
# instead of skipping.
export DISGRAFS_REQUIRE_POSTGRES="${DISGRAFS_REQUIRE_POSTGRES:-1}"
