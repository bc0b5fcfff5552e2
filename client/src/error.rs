//! What a Redis call can end in, classified once: a refusal of the module (machine-readable
//! code), an argument error, an activity that exists, Redis being full (`OOM` at
//! `maxmemory`), or Redis being unreachable, slow or answering something unexpected. Callers
//! map these to their own world (HTTP statuses, retries).
//!
//! In Redis Cluster a command can also be refused because the cluster is moving: `MOVED` /
//! `ASK` (the slot is elsewhere or migrating), `TRYAGAIN` (a migration is half done for the
//! command's keys), `CLUSTERDOWN` (slots uncovered while a failover runs), `MASTERDOWN`,
//! `LOADING`, `READONLY` (a demoted primary). The cluster connection follows or retries these
//! itself; one that still comes back (the deadline or the retries ran out) changed nothing
//! and is [`ClientError::Unavailable`]: try again, never an internal error.

use redis::RedisError;
use seckill_core::Refusal;
use std::time::Duration;

#[derive(Debug, Clone, thiserror::Error)]
pub enum ClientError {
    /// `SOLDOUT ...`, `LIMIT ...`, `NOTSTARTED ...`, `ENDED ...`, `NOACTIVITY ...`.
    #[error("{message}")]
    Refused { refusal: Refusal, message: String },
    /// `ERR ...` from the module: an argument the caller should have refused.
    #[error("{0}")]
    Argument(String),
    /// `EXISTS ...` from `SECKILL.CREATE`.
    #[error("{0}")]
    Exists(String),
    /// `OOM ...`: Redis reached `maxmemory` (with `noeviction`) and refused a write before
    /// changing anything. Retry after memory is freed (streams trimmed) or raised.
    #[error("redis is out of memory: {0}")]
    OutOfMemory(String),
    #[error("redis is unavailable: {0}")]
    Unavailable(String),
    #[error("redis did not answer within {0:?}")]
    Timeout(Duration),
    #[error("unexpected redis reply: {0}")]
    Protocol(String),
}

/// Classifies an error reply or a transport failure.
pub fn classify(e: &RedisError) -> ClientError {
    if let Some(code) = e.code() {
        let detail = e.detail().unwrap_or("").to_owned();
        if let Some(refusal) = Refusal::from_error_message(code) {
            return ClientError::Refused {
                refusal,
                message: detail,
            };
        }
        if is_cluster_transient(code) {
            return ClientError::Unavailable(format!("{code} {detail}"));
        }
        match code {
            "ERR" => return ClientError::Argument(detail),
            "EXISTS" => return ClientError::Exists(detail),
            "OOM" => return ClientError::OutOfMemory(detail),
            _ => {}
        }
    }
    if e.is_io_error() || e.is_connection_dropped() || e.is_timeout() {
        return ClientError::Unavailable(e.to_string());
    }
    match e.kind() {
        redis::ErrorKind::ResponseError | redis::ErrorKind::ExtensionError => {
            ClientError::Protocol(e.to_string())
        }
        _ => ClientError::Unavailable(e.to_string()),
    }
}

/// Refusals of a cluster (or a server) in transition: nothing ran, try again later.
fn is_cluster_transient(code: &str) -> bool {
    matches!(
        code,
        "MOVED"
            | "ASK"
            | "TRYAGAIN"
            | "CLUSTERDOWN"
            | "MASTERDOWN"
            | "LOADING"
            | "READONLY"
            | "NOREPLICAS"
            | "BUSY"
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn module_error_replies_become_refusals() {
        for (code, want) in [
            ("SOLDOUT", Refusal::SoldOut),
            ("LIMIT", Refusal::Limit),
            ("NOTSTARTED", Refusal::NotStarted),
            ("ENDED", Refusal::Ended),
            ("NOACTIVITY", Refusal::NoActivity),
        ] {
            let e = RedisError::from((
                redis::ErrorKind::ExtensionError,
                "ext",
                format!("{code} detail here"),
            ));
            // Errors parsed off the wire carry the code; build one the same way.
            let parsed = redis::parse_redis_value(format!("-{code} detail here\r\n").as_bytes())
                .and_then(|v| v.extract_error());
            let e = parsed.err().unwrap_or(e);
            match classify(&e) {
                ClientError::Refused { refusal, message } => {
                    assert_eq!(refusal, want);
                    assert_eq!(message, "detail here");
                }
                other => panic!("{code}: {other:?}"),
            }
        }
    }

    #[test]
    fn argument_and_exists_errors_are_kept_apart() {
        let err = |s: &str| {
            redis::parse_redis_value(format!("-{s}\r\n").as_bytes())
                .and_then(|v| v.extract_error())
                .err()
                .map(|e| classify(&e))
        };
        assert!(matches!(
            err("ERR quantity must be ..."),
            Some(ClientError::Argument(_))
        ));
        assert!(matches!(
            err("EXISTS activity '1' exists"),
            Some(ClientError::Exists(_))
        ));
        assert!(matches!(
            err("OOM command not allowed when used memory > 'maxmemory'."),
            Some(ClientError::OutOfMemory(m)) if m.contains("maxmemory")
        ));
        let io = RedisError::from(std::io::Error::from(std::io::ErrorKind::ConnectionRefused));
        assert!(matches!(classify(&io), ClientError::Unavailable(_)));
    }

    #[test]
    fn a_cluster_in_transition_is_unavailable_not_internal() {
        for reply in [
            "MOVED 3999 127.0.0.1:6381",
            "ASK 3999 127.0.0.1:6381",
            "TRYAGAIN Multiple keys request during rehashing of slot",
            "CLUSTERDOWN The cluster is down",
            "MASTERDOWN Link with MASTER is down",
            "LOADING Redis is loading the dataset in memory",
            "READONLY You can't write against a read only replica.",
            "NOREPLICAS Not enough good replicas to write.",
        ] {
            let e = redis::parse_redis_value(format!("-{reply}\r\n").as_bytes())
                .and_then(|v| v.extract_error())
                .err();
            assert!(
                matches!(e.as_ref().map(classify), Some(ClientError::Unavailable(_))),
                "{reply}: {e:?}"
            );
        }
    }
}
