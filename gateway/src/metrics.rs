//! Prometheus metrics of the gateway, in a registry of its own (so several gateways in one
//! test process do not collide), rendered as text at `/metrics`.

use prometheus::{
    HistogramOpts, HistogramVec, IntCounter, IntCounterVec, IntGauge, Opts, Registry,
};

pub(crate) struct Metrics {
    registry: Registry,
    /// CPU, memory, file descriptors of this process (unprefixed `process_*`).
    process: Registry,
    /// Requests by route (template, not raw path) and status code.
    pub requests: IntCounterVec,
    /// Request latency by route.
    pub latency: HistogramVec,
    /// `POST /api/v1/seckill` outcomes: reserved, sold_out (redis or local flag), limit, ...
    pub reservations: IntCounterVec,
    /// Latency of Redis commands by command and result (ok, refused, error, timeout).
    pub redis: HistogramVec,
    /// Challenges and admission tokens by route and outcome (issued, or the refusal code).
    pub admissions: IntCounterVec,
    /// Open client connections.
    pub connections: IntGauge,
    /// Connections closed at once because `gateway.max_connections` were open.
    pub connections_refused: IntCounter,
}

const LATENCY_BUCKETS: &[f64] = &[
    0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0,
];

impl Metrics {
    pub(crate) fn new() -> anyhow::Result<Self> {
        let registry = Registry::new_custom(Some("seckill_gateway".into()), None)?;
        let requests = IntCounterVec::new(
            Opts::new("http_requests_total", "HTTP requests by route and status"),
            &["route", "status"],
        )?;
        let latency = HistogramVec::new(
            HistogramOpts::new("http_request_duration_seconds", "HTTP request latency")
                .buckets(LATENCY_BUCKETS.to_vec()),
            &["route"],
        )?;
        let reservations = IntCounterVec::new(
            Opts::new("reservations_total", "Reservation attempts by outcome"),
            &["outcome"],
        )?;
        let redis = HistogramVec::new(
            HistogramOpts::new("redis_command_duration_seconds", "Redis command latency")
                .buckets(LATENCY_BUCKETS.to_vec()),
            &["command", "result"],
        )?;
        let admissions = IntCounterVec::new(
            Opts::new(
                "admissions_total",
                "Challenges and admission tokens by route and outcome",
            ),
            &["route", "outcome"],
        )?;
        let connections = IntGauge::new("connections", "Open client connections")?;
        let connections_refused = IntCounter::new(
            "connections_refused_total",
            "Connections closed at once because gateway.max_connections were open",
        )?;
        registry.register(Box::new(admissions.clone()))?;
        registry.register(Box::new(connections.clone()))?;
        registry.register(Box::new(connections_refused.clone()))?;
        registry.register(Box::new(requests.clone()))?;
        registry.register(Box::new(latency.clone()))?;
        registry.register(Box::new(reservations.clone()))?;
        registry.register(Box::new(redis.clone()))?;
        Ok(Self {
            process: seckill_runtime::metrics::process_registry()?,
            registry,
            requests,
            latency,
            reservations,
            redis,
            admissions,
            connections,
            connections_refused,
        })
    }

    /// The Prometheus text exposition of every metric.
    pub(crate) fn render(&self) -> String {
        seckill_runtime::metrics::render(&self.registry, &self.process)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn renders_every_family() {
        let m = Metrics::new().unwrap();
        m.requests.with_label_values(&["seckill", "200"]).inc();
        m.latency.with_label_values(&["seckill"]).observe(0.001);
        m.reservations.with_label_values(&["reserved"]).inc();
        m.redis
            .with_label_values(&["SECKILL.RESERVE", "ok"])
            .observe(0.0002);
        let text = m.render();
        for name in [
            "seckill_gateway_http_requests_total{route=\"seckill\",status=\"200\"} 1",
            "seckill_gateway_http_request_duration_seconds_bucket",
            "seckill_gateway_reservations_total{outcome=\"reserved\"} 1",
            "seckill_gateway_redis_command_duration_seconds_count",
        ] {
            assert!(text.contains(name), "{name} missing in\n{text}");
        }
    }
}
