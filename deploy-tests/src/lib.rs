//! Tests of the files that deploy and observe seckill, which are not Rust: everything lives in
//! `tests/`.
//!
//! # Layout
//! - `tests/prometheus.rs`: `promtool check config|rules`, the alert rules' unit tests
//!   (`deployments/alerts_test.yml`), alert expressions naming exported metrics, and a real
//!   Prometheus scraping a real gateway and worker.
//! - `tests/grafana.rs`: the provisioned dashboard: every panel has a datasource and queries
//!   that name metrics the crates export; provisioning matches docker-compose's mounts.
//! - `tests/compose.rs`: `docker-compose config` of `docker-compose.yml` and of the production
//!   override (no default secret survives), health checks, Dockerfile targets.
//! - `tests/local_stack.rs`: `scripts/run-local.sh` from a clean state directory: login,
//!   reservation, order in MariaDB, lag 0, a second run reusing the state, nothing left behind.
//! - `tests/support/mod.rs`: paths, required tools, a tiny HTTP client, child guards, and the
//!   metric names harvested from the crates' sources.
//!
//! A missing tool fails the test with the package to install; nothing is skipped.
