"""Schemathesis hooks for disgrafs' API (loaded through SCHEMATHESIS_HOOKS by
crates/cli/tests/schemathesis.rs).

A tus PATCH body is raw bytes under the media type the tus protocol names."""

import schemathesis

schemathesis.serializer.alias("application/offset+octet-stream", "application/octet-stream")
