//! The public reads are cached: a crowd reading the activity list costs one load per
//! `gateway.cache_refresh_ms`, not one SQL query and a `SECKILL.STATUS` per activity per
//! request. Counted on the Redis side (`INFO commandstats`).

use crate::helpers::spawn_with;
use futures::StreamExt;
use reqwest::StatusCode;

/// `SECKILL.STATUS` calls Redis has served so far.
async fn status_calls(app: &crate::helpers::TestApp) -> u64 {
    let info = match app.redis(&["INFO", "commandstats"]).await {
        Ok(redis::Value::BulkString(b)) => String::from_utf8_lossy(&b).into_owned(),
        Ok(redis::Value::VerbatimString { text, .. }) => text,
        other => panic!("INFO: {other:?}"),
    };
    info.lines()
        .find(|l| {
            l.to_ascii_lowercase()
                .starts_with("cmdstat_seckill.status:")
        })
        .and_then(|l| l.split("calls=").nth(1))
        .and_then(|v| v.split(',').next())
        .and_then(|n| n.parse().ok())
        .unwrap_or(0)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_crowd_reading_the_activities_costs_one_load_per_interval() {
    // An interval longer than the test: every read after the first is served from memory.
    let app = spawn_with(true, |s| {
        s.gateway.cache_refresh_ms = 60_000;
        s.rate_limit.enabled = false;
    })
    .await;
    let ids = [
        app.create_activity(10, "").await,
        app.create_activity(10, "").await,
        app.create_activity(10, "").await,
    ];
    let before = status_calls(&app).await;
    let replies: Vec<StatusCode> = futures::stream::iter(0..600)
        .map(|i| {
            let path = match i % 3 {
                0 => "/api/v1/activities".to_owned(),
                n => format!("/api/v1/activities/{}", ids[n]),
            };
            let app = &app;
            async move { app.get(&path, None).await.status }
        })
        .buffer_unordered(100)
        .collect()
        .await;
    assert!(replies.iter().all(|s| *s == StatusCode::OK), "{replies:?}");
    let calls = status_calls(&app).await - before;
    // One STATUS per activity for the interval (the list and the single reads share them).
    assert!(
        calls <= 3,
        "{calls} SECKILL.STATUS calls for 600 reads of 3 activities"
    );
}
