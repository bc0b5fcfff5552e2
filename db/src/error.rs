//! What a statement can end in, classified once for every caller: a unique-key clash (the
//! gateway's 409), the database being unreachable or busy (retry later, 503), or the
//! statement refused for what it contains.

use std::time::Duration;

#[derive(Debug, thiserror::Error)]
pub enum DbError {
    /// A unique key refused the row (a taken username, ...).
    #[error("duplicate key: {0}")]
    Duplicate(#[source] sqlx::Error),
    /// The statement's deadline passed (pool wait included).
    #[error("mysql did not answer within {0:?}")]
    Timeout(Duration),
    /// The database is unreachable or busy (connection, pool, deadlock, lock wait, read-only
    /// during a failover): retry the same work later.
    #[error("database unavailable: {0}")]
    Transient(#[source] sqlx::Error),
    /// The database refused the statement for what it contains: retrying cannot help.
    #[error("database refused the statement: {0}")]
    Rejected(#[source] sqlx::Error),
}

impl DbError {
    /// Whether running the same statement again later may succeed.
    pub fn is_transient(&self) -> bool {
        matches!(self, DbError::Transient(_) | DbError::Timeout(_))
    }
}

/// MySQL/MariaDB error numbers that mean "try again", not "this data is wrong".
pub fn is_transient_code(number: u16) -> bool {
    matches!(
        number,
        1040 // too many connections
            | 1053 // server shutdown in progress
            | 1205 // lock wait timeout
            | 1213 // deadlock
            | 1290 // read-only (failover in progress)
            | 1836 // read-only mode
            | 1927 // connection killed
            | 2002 | 2003 | 2006 | 2013 // client: cannot connect, gone away, lost
            | 4031 // disconnected by the server for inactivity
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
                Some(n) if !is_transient_code(n) => DbError::Rejected(e),
                _ => DbError::Transient(e),
            },
            sqlx::Error::ColumnDecode { .. }
            | sqlx::Error::Decode(_)
            | sqlx::Error::TypeNotFound { .. }
            | sqlx::Error::ColumnNotFound(_)
            | sqlx::Error::ColumnIndexOutOfBounds { .. } => DbError::Rejected(e),
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
        assert!(!DbError::from(sqlx::Error::ColumnNotFound("x".into())).is_transient());
        assert!(is_transient_code(1213) && is_transient_code(2013));
        assert!(!is_transient_code(1062));
    }
}
