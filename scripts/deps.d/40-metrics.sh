# The metrics test (crates/cli/tests/prometheus.rs) starts a real Prometheus that scrapes
# `disgrafs serve` and evaluates every panel of docs/grafana/disgrafs.json.
need_debs prometheus
