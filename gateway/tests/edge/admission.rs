//! Admission: without a valid token a reservation is refused and changes nothing; proof of
//! work cannot be skipped; the difficulty follows etcd live.

use crate::helpers::{spawn_with, TestApp};
use crate::support::{admission, keys, now_ms, post_json, reserve};
use reqwest::StatusCode;
use seckill_core::admission::{solve, Challenge, Ticket};
use seckill_core::{ActivityId, UserId};
use seckill_gateway::auth::Role;
use serde_json::json;
use std::time::Duration;

fn ticket(user: &str, activity: &str, not_before_ms: u64, expires_ms: u64) -> String {
    keys().issue_ticket(&Ticket {
        user: UserId::parse(user).expect("user"),
        activity: ActivityId::parse(activity).expect("activity"),
        not_before_ms,
        expires_ms,
        nonce: rand::random(),
    })
}

/// (remaining, stream length) of `activity`.
async fn state(app: &TestApp, activity: &str) -> (String, i64) {
    (
        app.status(activity).await["remaining"].clone(),
        app.xlen(activity).await,
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_reservation_without_a_valid_token_is_refused_and_changes_nothing() {
    let app = spawn_with(false, |s| s.admission.required = true).await;
    app.preheat("adm", &["STOCK", "10"]).await;
    app.preheat("other", &["STOCK", "10"]).await;
    let (u1, u2) = (app.token("u1", Role::User), app.token("u2", Role::User));
    let before = state(&app, "adm").await;

    let theirs = admission(&app, &u2, "adm").await;
    assert_eq!(theirs.status, StatusCode::OK, "{}", theirs.body);
    let for_other = admission(&app, &u1, "other").await;
    assert_eq!(for_other.status, StatusCode::OK, "{}", for_other.body);
    let now = now_ms();
    let refused: Vec<(&str, Option<String>, StatusCode, &str)> = vec![
        (
            "no token",
            None,
            StatusCode::FORBIDDEN,
            "ADMISSION_REQUIRED",
        ),
        (
            "another user's",
            theirs.body["data"]["token"].as_str().map(str::to_owned),
            StatusCode::FORBIDDEN,
            "ADMISSION_INVALID",
        ),
        (
            "another activity's",
            for_other.body["data"]["token"].as_str().map(str::to_owned),
            StatusCode::FORBIDDEN,
            "ADMISSION_INVALID",
        ),
        (
            "expired",
            Some(ticket("u1", "adm", now - 120_000, now - 60_000)),
            StatusCode::FORBIDDEN,
            "ADMISSION_EXPIRED",
        ),
        (
            "signed with another key",
            Some(
                seckill_core::admission::AdmissionKeys::derive(b"not-the-gateways-key-not-its-key")
                    .issue_ticket(&Ticket {
                        user: UserId::parse("u1").expect("user"),
                        activity: ActivityId::parse("adm").expect("activity"),
                        not_before_ms: 0,
                        expires_ms: now + 60_000,
                        nonce: 1,
                    }),
            ),
            StatusCode::FORBIDDEN,
            "ADMISSION_INVALID",
        ),
        (
            "garbage",
            Some("a1.bm9wZQ.AAAAAAAAAAAAAAAAAAAAAA".into()),
            StatusCode::FORBIDDEN,
            "ADMISSION_INVALID",
        ),
        (
            "not its turn yet",
            Some(ticket("u1", "adm", now + 30_000, now + 90_000)),
            StatusCode::TOO_EARLY,
            "TOO_EARLY",
        ),
    ];
    for (name, token, status, code) in refused {
        let r = reserve(&app, &u1, "adm", token.as_deref()).await;
        assert_eq!((r.status, r.error()), (status, code), "{name}: {}", r.body);
        if status == StatusCode::TOO_EARLY {
            let wait: u64 = r
                .header("retry-after")
                .and_then(|v| v.parse().ok())
                .unwrap_or(0);
            assert!((29..=30).contains(&wait), "Retry-After {wait}");
            assert!(
                r.body["data"]["retry_after_ms"].as_u64().unwrap_or(0) > 29_000,
                "{}",
                r.body
            );
        }
        assert_eq!(state(&app, "adm").await, before, "{name} changed the sale");
    }

    // A valid token buys once; the same token again is refused, and changes nothing.
    let mine = admission(&app, &u1, "adm").await;
    let token = mine.body["data"]["token"]
        .as_str()
        .expect("token")
        .to_owned();
    assert_eq!(
        mine.body["data"]["wait_ms"], 0,
        "open since ever: no lottery"
    );
    let r = reserve(&app, &u1, "adm", Some(&token)).await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.body);
    let rid = r.body["data"]["reservation_id"]
        .as_str()
        .expect("rid")
        .to_owned();
    let after = state(&app, "adm").await;
    assert_eq!(after, ("9".to_owned(), before.1 + 1));
    let r = reserve(&app, &u1, "adm", Some(&token)).await;
    assert_eq!(
        (r.status, r.error()),
        (StatusCode::CONFLICT, "ADMISSION_USED"),
        "{}",
        r.body
    );

    // The winner's reservation is released (a cancel, an expired payment): the per-user limit
    // no longer stands in the way, and the old token still must not buy again.
    app.redis(&["SECKILL.RELEASE", "adm", &rid])
        .await
        .expect("release");
    let released = state(&app, "adm").await;
    let r = reserve(&app, &u1, "adm", Some(&token)).await;
    assert_eq!(
        (r.status, r.error()),
        (StatusCode::CONFLICT, "ADMISSION_USED"),
        "{}",
        r.body
    );
    assert_eq!(
        state(&app, "adm").await,
        released,
        "a reused token changed the sale"
    );
    // A new admission does.
    let fresh = admission(&app, &u1, "adm").await;
    let token = fresh.body["data"]["token"]
        .as_str()
        .expect("token")
        .to_owned();
    assert_eq!(
        reserve(&app, &u1, "adm", Some(&token)).await.status,
        StatusCode::OK
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn admission_is_issued_only_once_the_sale_has_opened() {
    let app = spawn_with(false, |s| s.admission.required = true).await;
    let start = (now_ms() + 3_600_000).to_string();
    app.preheat("later", &["STOCK", "10", "START", &start])
        .await;
    app.preheat("gone", &["STOCK", "10", "START", "1", "END", "2"])
        .await;
    let u = app.token("u1", Role::User);
    let table = [
        ("later", StatusCode::FORBIDDEN, "NOT_STARTED"),
        ("gone", StatusCode::GONE, "ENDED"),
        ("missing", StatusCode::NOT_FOUND, "NO_ACTIVITY"),
    ];
    for (activity, status, code) in table {
        let r = admission(&app, &u, activity).await;
        assert_eq!(
            (r.status, r.error()),
            (status, code),
            "{activity}: {}",
            r.body
        );
    }
    // The work can be done during the countdown: challenges are issued before the opening.
    let r = post_json(
        &app,
        "/api/v1/seckill/challenge",
        &u,
        json!({"activity_id": "later"}),
    )
    .await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.body);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn proof_of_work_cannot_be_skipped() {
    let app = spawn_with(false, |s| {
        s.admission.required = true;
        s.admission.difficulty = 12;
    })
    .await;
    app.preheat("pow", &["STOCK", "10"]).await;
    let u = app.token("u1", Role::User);
    let before = (
        app.status("pow").await["remaining"].clone(),
        app.xlen("pow").await,
    );

    // A script that skips the work.
    let r = admission(&app, &u, "pow").await;
    assert_eq!(
        (r.status, r.error()),
        (StatusCode::FORBIDDEN, "POW_REQUIRED"),
        "{}",
        r.body
    );
    let r = reserve(&app, &u, "pow", None).await;
    assert_eq!(r.error(), "ADMISSION_REQUIRED");

    let c = post_json(
        &app,
        "/api/v1/seckill/challenge",
        &u,
        json!({"activity_id": "pow"}),
    )
    .await;
    assert_eq!(c.status, StatusCode::OK, "{}", c.body);
    assert_eq!(c.body["data"]["difficulty"], 12);
    let challenge = c.body["data"]["challenge"]
        .as_str()
        .expect("challenge")
        .to_owned();
    let nonce = solve(&challenge, 12);
    let wrong = (0..1000u32)
        .map(|n| format!("x{n}"))
        .find(|n| !seckill_core::admission::solves(&challenge, n, 12))
        .expect("a wrong nonce");
    let someone_elses = {
        let other = app.token("u2", Role::User);
        let c = post_json(
            &app,
            "/api/v1/seckill/challenge",
            &other,
            json!({"activity_id": "pow"}),
        )
        .await;
        let ch = c.body["data"]["challenge"]
            .as_str()
            .expect("challenge")
            .to_owned();
        let n = solve(&ch, 12);
        (ch, n)
    };
    let too_easy = keys().issue_challenge(&Challenge {
        user: UserId::parse("u1").expect("user"),
        activity: ActivityId::parse("pow").expect("activity"),
        difficulty: 2,
        expires_ms: now_ms() + 60_000,
        salt: 7,
    });
    let easy_nonce = solve(&too_easy, 2);
    for (name, ch, n) in [
        ("a nonce that does not solve it", challenge.clone(), wrong),
        (
            "another user's solved challenge",
            someone_elses.0,
            someone_elses.1,
        ),
        ("an easier challenge", too_easy, easy_nonce),
        (
            "a forged challenge",
            "c1.Zm9v.AAAAAAAAAAAAAAAAAAAAAA".to_owned(),
            "1".to_owned(),
        ),
    ] {
        let r = post_json(
            &app,
            "/api/v1/seckill/admission",
            &u,
            json!({"activity_id": "pow", "challenge": ch, "nonce": n}),
        )
        .await;
        assert_eq!(
            (r.status, r.error()),
            (StatusCode::FORBIDDEN, "POW_INVALID"),
            "{name}: {}",
            r.body
        );
    }
    assert_eq!(
        (
            app.status("pow").await["remaining"].clone(),
            app.xlen("pow").await
        ),
        before,
        "refused work changed the sale"
    );

    // The work done: admitted, and the token buys.
    let r = post_json(
        &app,
        "/api/v1/seckill/admission",
        &u,
        json!({"activity_id": "pow", "challenge": challenge, "nonce": nonce}),
    )
    .await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.body);
    let token = r.body["data"]["token"].as_str().expect("token");
    assert_eq!(
        reserve(&app, &u, "pow", Some(token)).await.status,
        StatusCode::OK
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn admission_and_difficulty_follow_etcd_live() {
    let etcd = tokio::task::spawn_blocking(seckill_testkit::Etcd::start)
        .await
        .expect("join")
        .expect("etcd");
    let endpoint = etcd.endpoint();
    let app = spawn_with(false, move |s| s.etcd.endpoints = vec![endpoint]).await;
    app.preheat("live", &["STOCK", "100"]).await;
    let u = app.token("u1", Role::User);
    // Off by default: the plain call works.
    assert_eq!(reserve(&app, &u, "live", None).await.status, StatusCode::OK);

    let client = etcd_client::Client::connect([etcd.endpoint()], None).await;
    let mut client = client.expect("etcd client");
    client
        .put("/seckill/config/admission.required.live", "true", None)
        .await
        .expect("put");
    client
        .put("/seckill/config/admission.difficulty.live", "8", None)
        .await
        .expect("put");
    let u2 = app.token("u2", Role::User);
    let applied = app
        .eventually(Duration::from_secs(15), || async {
            reserve(&app, &u2, "live", None).await.error() == "ADMISSION_REQUIRED"
                && admission(&app, &u2, "live").await.error() == "POW_REQUIRED"
        })
        .await;
    assert!(applied, "the etcd keys never reached the gateway");
    // Another activity keeps the file's settings.
    app.preheat("plain", &["STOCK", "10"]).await;
    assert_eq!(
        reserve(&app, &u2, "plain", None).await.status,
        StatusCode::OK
    );

    client
        .delete(
            "/seckill/config/",
            Some(etcd_client::DeleteOptions::new().with_prefix()),
        )
        .await
        .expect("delete");
    let u3 = app.token("u3", Role::User);
    let restored = app
        .eventually(Duration::from_secs(15), || async {
            reserve(&app, &u3, "live", None).await.status == StatusCode::OK
        })
        .await;
    assert!(
        restored,
        "deleting the keys did not restore the file's settings"
    );
}
