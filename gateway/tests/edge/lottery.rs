//! The opening window: 10,000 clicks in the first moment of a sale win in an order that has
//! nothing to do with the order they arrived in. Checked statistically on ranks, not on
//! timings: with a window of 0 (first come, first served) the same test fails, the winners
//! being the first arrivals.

use crate::helpers::spawn_with;
use crate::support::{admission, now_ms, reserve};
use reqwest::StatusCode;
use seckill_gateway::auth::Role;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::Semaphore;

const CLICKS: usize = 10_000;
const STOCK: usize = 500;
/// Long enough for a debug build on a loaded machine to admit the whole crowd inside it.
const WINDOW_MS: u64 = 8_000;

/// One click: admission (its arrival rank is the order the gateway answered in), then the
/// reservation at the turn the gateway named (`wait_ms`), retried on 425 like the
/// storefront. Returns (arrival rank, reservation id if won, whether the token was issued in
/// the opening window).
async fn click(
    app: &crate::helpers::TestApp,
    user: usize,
    arrivals: &AtomicUsize,
    lottery_ends: u64,
    in_flight: &Semaphore,
) -> (usize, Option<String>, bool) {
    let token = app.token(&format!("c{user}"), Role::User);
    let r = {
        let _slot = in_flight.acquire().await.expect("semaphore");
        admission(app, &token, "open").await
    };
    let rank = arrivals.fetch_add(1, Ordering::SeqCst);
    if r.error() == "SOLD_OUT" {
        // Admitted too late to matter (the crowd of the window bought everything).
        return (rank, None, false);
    }
    assert_eq!(r.status, StatusCode::OK, "{}", r.body);
    let wait = r.body["data"]["wait_ms"].as_u64().expect("wait_ms");
    let in_window = now_ms() + wait < lottery_ends;
    let admission = r.body["data"]["token"].as_str().expect("token").to_owned();
    tokio::time::sleep(Duration::from_millis(wait)).await;
    loop {
        let r = {
            let _slot = in_flight.acquire().await.expect("semaphore");
            reserve(app, &token, "open", Some(&admission)).await
        };
        match r.status {
            StatusCode::OK => {
                let id = r.body["data"]["reservation_id"].as_str().map(str::to_owned);
                return (rank, id, in_window);
            }
            StatusCode::TOO_EARLY => {
                let ms = r.body["data"]["retry_after_ms"]
                    .as_u64()
                    .expect("retry_after_ms");
                tokio::time::sleep(Duration::from_millis(ms)).await;
            }
            StatusCode::CONFLICT if r.error() == "SOLD_OUT" => return (rank, None, in_window),
            _ => panic!("click {user}: {} {}", r.status, r.body),
        }
    }
}

/// Spearman's rank correlation of two equally long rankings.
fn spearman(a: &[f64], b: &[f64]) -> f64 {
    let rank = |v: &[f64]| {
        let mut idx: Vec<usize> = (0..v.len()).collect();
        idx.sort_by(|&i, &j| v[i].total_cmp(&v[j]));
        let mut r = vec![0.0; v.len()];
        for (pos, &i) in idx.iter().enumerate() {
            r[i] = pos as f64;
        }
        r
    };
    let (ra, rb) = (rank(a), rank(b));
    let n = a.len() as f64;
    let d2: f64 = ra.iter().zip(&rb).map(|(x, y)| (x - y).powi(2)).sum();
    1.0 - 6.0 * d2 / (n * (n * n - 1.0))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ten_thousand_clicks_in_the_opening_window_win_in_random_order() {
    let app = Arc::new(
        spawn_with(false, |s| {
            s.admission.required = true;
            s.admission.window_ms = WINDOW_MS;
            s.admission.token_ttl_secs = 120;
            s.rate_limit.per_user_burst = 1_000;
        })
        .await,
    );
    // The sale opens a moment from now; the crowd starts clicking at the opening.
    let start = now_ms() + 1_500;
    app.preheat(
        "open",
        &["STOCK", &STOCK.to_string(), "START", &start.to_string()],
    )
    .await;
    let lottery_ends = start + 2 * WINDOW_MS;
    let probe = app.token("probe", Role::User);
    let opened = app
        .eventually(Duration::from_secs(10), || async {
            admission(&app, &probe, "open").await.status == StatusCode::OK
        })
        .await;
    assert!(opened, "the sale never opened");

    let arrivals = Arc::new(AtomicUsize::new(0));
    let crowd_started = std::time::Instant::now();
    // Every click is its own task (a waiting buyer holds no connection); at most 128 requests
    // are in flight at once.
    let in_flight = Arc::new(Semaphore::new(128));
    let clicks: Vec<_> = (0..CLICKS)
        .map(|u| {
            let (app, arrivals, in_flight) = (app.clone(), arrivals.clone(), in_flight.clone());
            tokio::spawn(async move { click(&app, u, &arrivals, lottery_ends, &in_flight).await })
        })
        .collect();
    let mut results: Vec<(usize, Option<String>, bool)> = Vec::with_capacity(CLICKS);
    for c in clicks {
        results.push(c.await.expect("click"));
    }

    eprintln!("{CLICKS} clicks done in {:?}", crowd_started.elapsed());
    let winners: Vec<(usize, String)> = results
        .iter()
        .filter_map(|(rank, id, _)| id.clone().map(|id| (*rank, id)))
        .collect();
    assert_eq!(winners.len(), STOCK, "exactly the stock is sold");
    let cohort = results.iter().filter(|r| r.2).count();
    assert!(
        cohort >= 5 * STOCK,
        "only {cohort} clicks were admitted inside the opening window: the test needs a crowd"
    );
    assert!(
        winners
            .iter()
            .all(|(rank, _)| results.iter().any(|r| r.0 == *rank && r.2)),
        "every winner came from the opening window's crowd"
    );

    // 1. Who wins: under a lottery the winners' arrival ranks are a uniform sample of the
    //    crowd's (mean (n-1)/2, standard error sd/sqrt(k) with the finite-population factor);
    //    first come, first served would put them all at the front (mean ~k/2).
    let n = cohort as f64;
    let k = STOCK as f64;
    let mean = winners.iter().map(|(r, _)| *r as f64).sum::<f64>() / k;
    let sd = ((n * n - 1.0) / 12.0).sqrt() / k.sqrt() * ((n - k) / (n - 1.0)).sqrt();
    let z = (mean - (n - 1.0) / 2.0) / sd;
    eprintln!(
        "cohort {cohort}, winners' mean arrival rank {mean:.0} (uniform: {:.0}), z = {z:.2}",
        (n - 1.0) / 2.0
    );
    assert!(
        z.abs() < 5.0,
        "winners are not a random sample of the crowd: z = {z:.2}"
    );
    let early = winners
        .iter()
        .filter(|(r, _)| (*r as f64) < n / 10.0)
        .count();
    assert!(
        early < STOCK / 4,
        "{early} of {STOCK} winners were among the first 10% to arrive"
    );

    // 2. In what order they win: reservation ids are the order Redis took them.
    let by_arrival: Vec<f64> = winners.iter().map(|(r, _)| *r as f64).collect();
    let by_win: Vec<f64> = winners
        .iter()
        .map(|(_, id)| {
            let (ms, seq) = id.split_once('-').expect("stream id");
            ms.parse::<f64>().expect("ms") * 1e6 + seq.parse::<f64>().expect("seq")
        })
        .collect();
    let rho = spearman(&by_arrival, &by_win);
    eprintln!("Spearman(arrival, winning order) over the winners = {rho:.3}");
    assert!(
        rho.abs() < 0.25,
        "winning order follows arrival order: rho = {rho:.3}"
    );
    assert_eq!(app.xlen("open").await, STOCK as i64);
}

#[test]
fn spearman_of_known_rankings() {
    let a = [1.0, 2.0, 3.0, 4.0];
    assert!((spearman(&a, &a) - 1.0).abs() < 1e-9);
    assert!((spearman(&a, &[4.0, 3.0, 2.0, 1.0]) + 1.0).abs() < 1e-9);
}
