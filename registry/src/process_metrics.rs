//! The process' own CPU, memory and file-descriptor metrics (`process_cpu_seconds_total`,
//! `process_resident_memory_bytes`, ...), in a registry without the `seckill_<kind>_` prefix
//! so dashboards can query every process the same way.

use prometheus::{process_collector::ProcessCollector, Encoder, Registry, TextEncoder};

/// A registry holding only the collector of this process (read from /proc at scrape time).
pub fn registry() -> Result<Registry, prometheus::Error> {
    let registry = Registry::new();
    registry.register(Box::new(ProcessCollector::for_self()))?;
    Ok(registry)
}

/// A process's `/metrics` page: its own registry followed by the process registry, in the
/// Prometheus text format.
pub fn render(own: &Registry, process: &Registry) -> String {
    let mut families = own.gather();
    families.extend(process.gather());
    let mut buf = Vec::new();
    if let Err(e) = TextEncoder::new().encode(&families, &mut buf) {
        tracing::warn!(error = %e, "failed to encode metrics");
    }
    String::from_utf8_lossy(&buf).into_owned()
}

#[cfg(test)]
mod tests {
    #[test]
    fn exposes_cpu_and_memory() {
        let names: Vec<String> = super::registry()
            .expect("registry")
            .gather()
            .iter()
            .map(|f| f.get_name().to_owned())
            .collect();
        assert!(
            names.contains(&"process_cpu_seconds_total".to_owned()),
            "{names:?}"
        );
        assert!(
            names.contains(&"process_resident_memory_bytes".to_owned()),
            "{names:?}"
        );
    }
}
