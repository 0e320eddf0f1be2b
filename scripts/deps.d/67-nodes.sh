# The multi-node tests (crates/cli/tests/nodes.rs) put nginx in front of two `serve` nodes, with
# PostgreSQL (60-postgres.sh) and SeaweedFS (65-seaweedfs.sh) behind them; they start and stop
# every server themselves. nginx-light is also the peer of `bench io` (10-core.sh); with it
# installed, those tests must run rather than skip.
need_debs nginx-light
export DISGRAFS_REQUIRE_NGINX=1
