//! `POST /api/v1/auth/register` and `POST /api/v1/auth/login`: the unauthenticated routes
//! that cost the most (an argon2 hash each). In front of the hash: the per-client limit (in
//! the route), the per-username limit (here, once the name is known) and the bounded hashing
//! pool (`crate::hashing`).

use super::{respond, sql};
use crate::auth::Role;
use crate::envelope;
use crate::error::ApiError;
use crate::models::{Credentials, LoginView, RegisteredView};
use crate::state::State;
use bytes::Bytes;
use chrono::{SecondsFormat, Utc};
use seckill_core::auth;
use seckill_db::{users, DbError};
use std::convert::Infallible;
use warp::http::StatusCode;
use warp::reply::Response;

pub(crate) async fn register(body: Bytes, s: State) -> Result<Response, Infallible> {
    respond(&s, async {
        let creds = Credentials::parse_new(&body)?;
        if !s.limits.allow_auth_name(&creds.username) {
            return Err(ApiError::RateLimited);
        }
        let password = creds.password.clone();
        let hash = s
            .passwords
            .slot()
            .await?
            .run(move || auth::hash_password(&password))
            .await?
            .map_err(|e| ApiError::internal(anyhow::anyhow!("Failed to hash a password: {e}")))?;
        let inserted = seckill_db::error::timed(
            s.settings.mysql_timeout(),
            users::insert(&s.db, &creds.username, &hash, Role::User.as_str()),
        )
        .await;
        let id = match inserted {
            Ok(id) => id,
            Err(DbError::Duplicate(_)) => return Err(ApiError::UsernameTaken),
            Err(e) => return Err(e.into()),
        };
        Ok(envelope::ok(
            StatusCode::CREATED,
            RegisteredView {
                user_id: id.to_string(),
                username: creds.username,
            },
        ))
    })
    .await
}

pub(crate) async fn login(body: Bytes, s: State) -> Result<Response, Infallible> {
    respond(&s, async {
        let creds = Credentials::parse_login(&body)?;
        if !s.limits.allow_auth_name(&creds.username) {
            return Err(ApiError::RateLimited);
        }
        // The slot first: a flood is refused before it queues on the database pool.
        let slot = s.passwords.slot().await?;
        let user = sql(&s, users::by_name(&s.db, &creds.username)).await?;
        let password = creds.password;
        let checked = slot
            .run(move || match user {
                Some(u) if auth::verify_password(&password, &u.password_hash) => Some(u),
                Some(_) => None,
                None => {
                    auth::burn_password_check(&password);
                    None
                }
            })
            .await?;
        let user = checked.ok_or(ApiError::InvalidCredentials)?;
        let role = Role::parse(&user.role).unwrap_or(Role::User);
        let now = u64::try_from(Utc::now().timestamp()).unwrap_or(0);
        let (token, exp) = s
            .jwt
            .issue(&user.id.to_string(), role, now)
            .map_err(ApiError::internal)?;
        let expires_at = chrono::DateTime::from_timestamp(i64::try_from(exp).unwrap_or(0), 0)
            .map(|t| t.to_rfc3339_opts(SecondsFormat::Secs, true))
            .unwrap_or_default();
        Ok(envelope::ok(
            StatusCode::OK,
            LoginView {
                token,
                expires_at,
                user_id: user.id.to_string(),
                role: role.as_str(),
            },
        ))
    })
    .await
}
