//! The seckill admin CLI (`seckill`) as a library; `main.rs` parses arguments and dispatches.
//!
//! # Layout
//! - [`admin`]: `users create-admin` / `users promote` (administrators outside dev mode).
//! - [`commands`]: one function per subcommand; results on stdout, everything else on stderr
//!   (`members` reads etcd through `seckill-registry`).
//! - [`token`]: the JWT claims `{sub, role, exp, iat}` and HS256 sign/verify that the gateway
//!   accepts.
//! - [`settings`]: the sections of `configs/config.yaml` the CLI reads.

pub mod admin;
pub mod commands;
pub mod settings;
pub mod token;
