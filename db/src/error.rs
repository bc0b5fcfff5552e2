//! What a statement can end in, classified once for every caller: a unique-key clash (the
//! gateway's 409), the statement's own data refused, or — everything else — the database
//! being unreachable, busy or unwell (retry later, 503).
//!
//! The classification is deliberately one-sided: only errors that are provably about the
//! data a statement carries are [`DbError::Rejected`] ([`is_row_data_code`] lists them). A
//! table that is missing or renamed, privileges revoked, a full disk or tablespace, a
//! read-only server, a refused login after a password rotation, and any error this code does
//! not know are [`DbError::Transient`]: the same work may succeed once the database is
//! fixed. The order worker relies on this to never dead-letter a reservation because the
//! database is unwell (SPEC invariant 8).

use std::time::Duration;

#[derive(Debug, thiserror::Error)]
pub enum DbError {
    /// A unique key refused the row (a taken username, ...).
    #[error("duplicate key: {0}")]
    Duplicate(#[source] sqlx::Error),
    /// The statement's deadline passed (pool wait included).
    #[error("mysql did not answer within {0:?}")]
    Timeout(Duration),
    /// Not known to be about the statement's data: the database is unreachable, busy or
    /// unwell (connection, pool, deadlock, read-only, table missing, privileges, disk or
    /// tablespace full, unknown errors). Retry the same work later.
    #[error("database unavailable: {0}")]
    Transient(#[source] sqlx::Error),
    /// The database refused the statement for the data it carries (one of
    /// [`is_row_data_code`]): retrying the same data cannot help.
    #[error("database refused the statement: {0}")]
    Rejected(#[source] sqlx::Error),
    /// The statement did less than it should have with no error and no cause the data can
    /// explain (rows skipped by `INSERT IGNORE` without a clash): the database, not the
    /// data. Retry later.
    #[error("database misbehaved: {0}")]
    Unexplained(String),
}

impl DbError {
    /// Whether running the same statement again later may succeed.
    pub fn is_transient(&self) -> bool {
        matches!(
            self,
            DbError::Transient(_) | DbError::Timeout(_) | DbError::Unexplained(_)
        )
    }

    /// Whether the error is provably about the data of the row(s) written, so that another
    /// row could have succeeded where this one failed.
    pub fn is_about_the_data(&self) -> bool {
        matches!(self, DbError::Rejected(_) | DbError::Duplicate(_))
    }

    /// A low-cardinality label for metrics: the server's error number (`1146`), or the kind
    /// of client-side failure (`timeout`, `io`, `pool`, `tls`, `protocol`, `decode`, ...).
    pub fn code(&self) -> String {
        let e = match self {
            DbError::Timeout(_) => return "timeout".into(),
            DbError::Unexplained(_) => return "unexplained".into(),
            DbError::Duplicate(e) | DbError::Transient(e) | DbError::Rejected(e) => e,
        };
        if let Some(n) = error_number(e) {
            return n.to_string();
        }
        match e {
            sqlx::Error::Io(_) => "io",
            sqlx::Error::Tls(_) => "tls",
            sqlx::Error::Protocol(_) => "protocol",
            sqlx::Error::PoolTimedOut | sqlx::Error::PoolClosed => "pool",
            sqlx::Error::WorkerCrashed => "worker",
            sqlx::Error::ColumnDecode { .. }
            | sqlx::Error::Decode(_)
            | sqlx::Error::TypeNotFound { .. }
            | sqlx::Error::ColumnNotFound(_)
            | sqlx::Error::ColumnIndexOutOfBounds { .. } => "decode",
            sqlx::Error::Database(_) => "database",
            _ => "other",
        }
        .into()
    }
}

/// MySQL/MariaDB error numbers that are provably about the data of the row a statement
/// writes, not about the database: another row could succeed where this one fails.
///
/// - 1048 column cannot be NULL; 1264 out of range; 1265 data truncated; 1292 incorrect
///   datetime/truncated value; 1366 incorrect string/number for the column; 1406 data too
///   long;
/// - 1452 no referenced row (foreign key); 3819 (MySQL) / 4025 (MariaDB) CHECK failed;
/// - unique-key clashes (1022, 1062, 1169, 1586, 1859) are [`DbError::Duplicate`].
///
/// Under `INSERT IGNORE` (the worker's insert) these are mostly downgraded to warnings:
/// values are clipped, and rows that clash with a key, a foreign key or a CHECK are skipped
/// (MariaDB still raises 4025 for a single-row insert). The worker checks every field of a
/// row against the schema before inserting it, so none of these can be a planned row's
/// fault: if the database raises one, or skips a row for one, its schema is not the one
/// the worker was written for, and the worker retries instead of dead-lettering. It
/// dead-letters only a row skipped because the user holds another live order, a cause it
/// shows (`seckill_db::orders::insert_batch`).
pub fn is_row_data_code(number: u16) -> bool {
    matches!(
        number,
        1048 | 1264 | 1265 | 1292 | 1366 | 1406 | 1452 | 3819 | 4025
    )
}

/// The server's error number, when the error came from the server.
pub fn error_number(e: &sqlx::Error) -> Option<u16> {
    e.as_database_error()
        .and_then(|d| d.try_downcast_ref::<sqlx::mysql::MySqlDatabaseError>())
        .map(|m| m.number())
}

impl From<sqlx::Error> for DbError {
    fn from(e: sqlx::Error) -> Self {
        match &e {
            sqlx::Error::Database(d) if d.is_unique_violation() => DbError::Duplicate(e),
            sqlx::Error::Database(_) => match error_number(&e) {
                Some(n) if is_row_data_code(n) => DbError::Rejected(e),
                // 1146 table missing, 1142/1044/1045 privileges, 1021/1114 full, 1290/1836
                // read-only, and every number not listed: the database, not the data.
                _ => DbError::Transient(e),
            },
            // Connection, pool, TLS, protocol failures; and a result that does not decode,
            // which means the schema is not what this code expects (a migration missing or
            // a table swapped): the database, not the data.
            _ => DbError::Transient(e),
        }
    }
}

/// Runs `fut` under `deadline`: a slow or dead MySQL becomes [`DbError::Timeout`].
pub async fn timed<T, E: Into<DbError>>(
    deadline: Duration,
    fut: impl std::future::Future<Output = Result<T, E>>,
) -> Result<T, DbError> {
    match tokio::time::timeout(deadline, fut).await {
        Ok(r) => r.map_err(Into::into),
        Err(_) => Err(DbError::Timeout(deadline)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn transport_failures_are_transient() {
        assert!(DbError::from(sqlx::Error::PoolTimedOut).is_transient());
        assert!(DbError::Timeout(Duration::from_secs(1)).is_transient());
        assert!(DbError::from(sqlx::Error::Io(std::io::Error::from(
            std::io::ErrorKind::ConnectionRefused
        )))
        .is_transient());
        // A result that does not decode is a schema problem, not the row's.
        assert!(DbError::from(sqlx::Error::ColumnNotFound("x".into())).is_transient());
        assert_eq!(DbError::from(sqlx::Error::PoolTimedOut).code(), "pool");
        assert_eq!(DbError::Timeout(Duration::from_secs(1)).code(), "timeout");
    }

    #[test]
    fn only_data_codes_are_about_the_row() {
        for n in [1048, 1264, 1265, 1292, 1366, 1406, 1452, 3819, 4025] {
            assert!(is_row_data_code(n), "{n}");
        }
        // Table missing, privileges, login refused, disk/table full, read-only, lock
        // conflicts, gone away, and numbers nobody listed.
        for n in [
            1146, 1142, 1044, 1045, 1021, 1114, 1290, 1836, 1205, 1213, 2006, 2013, 1064, 9999,
        ] {
            assert!(!is_row_data_code(n), "{n}");
        }
    }
}
