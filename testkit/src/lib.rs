//! Test harness shared by every crate's integration tests: private servers on free loopback
//! ports, each in its own temporary directory, killed and removed when the guard drops (also
//! when the test panics).
//!
//! # Layout
//! - [`redis`]: `redis-server` with the freshly built seckill module loaded.
//! - [`cluster`]: a Redis Cluster of such servers (primaries and replicas), nodes killed and
//!   restarted at will.
//! - [`ports`]: free loopback ports, starts retried on another port when one was taken in
//!   between, and readiness that checks the server itself listens (not another test's).
//! - [`process`]: a child-process guard that kills on drop, and [`bin_path`] of the
//!   workspace's binaries.
//! - [`mariadb`]: a private `mariadbd` (fresh database per test, stop/start for outages).
//! - [`etcd`]: a private single-member etcd.
//! - [`otlp`]: an OTLP/gRPC trace receiver recording the spans it is sent.
//! - [`tls`]: a CA made by the test, with server and client certificates (TLS to Redis,
//!   MariaDB and etcd: `RedisOptions::tls`, MariaDB's `--ssl-*` options, `Etcd::start_tls`).

pub mod cluster;
pub mod etcd;
pub mod mariadb;
pub mod otlp;
pub mod ports;
pub mod process;
pub mod redis;
pub mod tls;

pub use self::redis::{module_path, shipped_config, RedisOptions, RedisServer, RedisTls};
pub use cluster::{ClusterOptions, RedisCluster};
pub use etcd::Etcd;
pub use mariadb::MariaDb;
pub use otlp::{OtlpReceiver, SeenSpan};
pub use ports::free_port;
pub use process::{bin_path, ChildGuard};
pub use tls::TestPki;
