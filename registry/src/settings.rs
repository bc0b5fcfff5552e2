//! The `etcd` and `telemetry` sections of `configs/config.yaml`, read by the gateway, the
//! worker and the CLI (each through its own settings type).

use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, Deserialize, Serialize, PartialEq, Eq)]
#[serde(default)]
pub struct EtcdSettings {
    /// Client endpoints (`http://127.0.0.1:2379`). Empty: no etcd; no registration, no
    /// runtime settings, and the sweeper elects its leader with a MySQL advisory lock.
    pub endpoints: Vec<String>,
    /// Lease of a member's key: a crashed process disappears from `seckill members` within
    /// this many seconds.
    pub member_ttl_secs: i64,
}

impl Default for EtcdSettings {
    fn default() -> Self {
        Self {
            endpoints: Vec::new(),
            member_ttl_secs: 10,
        }
    }
}

impl EtcdSettings {
    pub fn enabled(&self) -> bool {
        !self.endpoints.is_empty()
    }

    /// The member lease, never below 2 s (keep-alives go out every third of it).
    pub fn member_ttl(&self) -> i64 {
        self.member_ttl_secs.max(2)
    }
}

#[derive(Debug, Clone, Deserialize, Serialize, PartialEq)]
#[serde(default)]
pub struct TelemetrySettings {
    /// OTLP/gRPC collector, e.g. `http://127.0.0.1:4317` (Jaeger, an OpenTelemetry
    /// collector). Empty (the default): spans are not exported and no exporter exists.
    pub otlp_endpoint: String,
    /// Share of new traces kept (0.0..=1.0); a request's spans are all kept or all dropped.
    pub sample_ratio: f64,
}

impl Default for TelemetrySettings {
    fn default() -> Self {
        Self {
            otlp_endpoint: String::new(),
            sample_ratio: 1.0,
        }
    }
}
