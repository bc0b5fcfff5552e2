//! Resharding the slot of a live activity during its sale (`CLUSTER SETSLOT ... IMPORTING /
//! MIGRATING`, `MIGRATE` key by key, `SETSLOT ... NODE`): the commands' `KEYS` clause makes
//! the cluster answer TRYAGAIN/ASK until the whole activity has moved, which the client
//! retries within the request's deadline. No 5xx, every key lands on the new node (no
//! `BUSYKEY`: nothing was created there behind the migration's back), the invariants hold and
//! the worker follows the stream to its new node.

use crate::stack::{self, act};
use seckill_core::keys;
use std::collections::{BTreeMap, BTreeSet};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

const CONCURRENCY: usize = 32;

/// One answer: activity, HTTP status, reservation id, body.
type Answer = (String, u16, Option<String>, String);

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn moving_a_live_activitys_slot_splits_nothing_and_fails_no_request() {
    let stack = Arc::new(stack::start(1).await);
    let mut activities = Vec::new();
    for _ in 0..4 {
        activities.push(stack.create_activity(1_000_000).await);
    }
    let moving = activities[0].0.clone();
    let slot = stack.cluster().slot(&moving).expect("slot");
    let from = stack.primary_port(&moving).await;
    let to = {
        let c = stack.cluster();
        c.primaries(from)
            .expect("primaries")
            .into_iter()
            .find(|p| *p != from)
            .expect("another primary")
    };

    let replies: Arc<Mutex<Vec<Answer>>> = Arc::new(Mutex::new(Vec::new()));
    let stop = Arc::new(AtomicBool::new(false));
    let counter = Arc::new(AtomicUsize::new(0));
    let mut load = tokio::task::JoinSet::new();
    for _ in 0..CONCURRENCY {
        let (stack, replies, stop, counter, activities) = (
            stack.clone(),
            replies.clone(),
            stop.clone(),
            counter.clone(),
            activities.clone(),
        );
        load.spawn(async move {
            while !stop.load(Ordering::Relaxed) {
                let n = counter.fetch_add(1, Ordering::Relaxed);
                // Half of the load on the moving activity.
                let (id, product) = if n % 2 == 0 {
                    &activities[0]
                } else {
                    &activities[n % activities.len()]
                };
                let r = stack.reserve(&format!("m{n}"), id, product).await;
                let rid = r.data()["reservation_id"].as_str().map(str::to_owned);
                replies.lock().expect("lock").push((
                    id.clone(),
                    r.status.as_u16(),
                    rid,
                    r.body.to_string(),
                ));
            }
        });
    }
    tokio::time::sleep(Duration::from_millis(1500)).await;

    let before = replies.lock().expect("lock").len();
    let stack2 = stack.clone();
    let migrated = tokio::task::spawn_blocking(move || -> anyhow::Result<Vec<String>> {
        let c = stack2.cluster();
        let nodes = c.nodes_seen_by(from)?;
        let id_of = |port: u16| {
            nodes
                .iter()
                .find(|n| n.port == port)
                .map(|n| n.id.clone())
                .ok_or_else(|| anyhow::anyhow!("no node {port}"))
        };
        let (from_id, to_id) = (id_of(from)?, id_of(to)?);
        let s = slot.to_string();
        let ok = |out: String| -> anyhow::Result<()> {
            anyhow::ensure!(out.trim() == "OK", "{out}");
            Ok(())
        };
        ok(c.node(to)?
            .cli(&["CLUSTER", "SETSLOT", &s, "IMPORTING", &from_id])?)?;
        ok(c.node(from)?
            .cli(&["CLUSTER", "SETSLOT", &s, "MIGRATING", &to_id])?)?;
        let mut moved = Vec::new();
        loop {
            let keys = c
                .node(from)?
                .cli(&["CLUSTER", "GETKEYSINSLOT", &s, "100"])?;
            let keys: Vec<String> = keys
                .lines()
                .map(str::trim)
                .filter(|k| !k.is_empty())
                .map(str::to_owned)
                .collect();
            if keys.is_empty() {
                break;
            }
            // One key at a time, with a pause: requests meet the half-moved activity.
            for key in keys {
                let out = c.node(from)?.cli(&[
                    "MIGRATE",
                    "127.0.0.1",
                    &to.to_string(),
                    &key,
                    "0",
                    "5000",
                ])?;
                anyhow::ensure!(
                    matches!(out.trim(), "OK" | "NOKEY"),
                    "MIGRATE {key}: {out} (BUSYKEY means the activity was split)"
                );
                moved.push(key);
                std::thread::sleep(Duration::from_millis(40));
            }
        }
        for n in &c.nodes {
            // Every node learns the new owner (replicas follow their primary).
            let _ = n.cli(&["CLUSTER", "SETSLOT", &s, "NODE", &to_id]);
        }
        c.wait_ok(Duration::from_secs(30))?;
        Ok(moved)
    })
    .await
    .expect("join")
    .expect("the slot migrates");
    let during = replies.lock().expect("lock").len() - before;
    tokio::time::sleep(Duration::from_millis(1500)).await;
    stop.store(true, Ordering::Relaxed);
    while load.join_next().await.is_some() {}
    let replies = replies.lock().expect("lock").clone();

    // The whole activity moved.
    let a = act(&moving);
    for key in [keys::meta(&a), keys::buyers(&a), keys::stream(&a)] {
        assert!(
            migrated.contains(&key),
            "{key} was not migrated: {migrated:?}"
        );
    }
    assert_eq!(stack.primary_port(&moving).await, to);
    {
        let c = stack.cluster();
        let on_to = c
            .node(to)
            .expect("node")
            .cli(&["EXISTS", &keys::meta(&a)])
            .expect("EXISTS");
        assert_eq!(on_to.trim(), "1");
    }

    // No 5xx while it moved: 200, or 202 when a confirmation could not finish before its
    // timeout (the reservation is held; checked below).
    let mut statuses: BTreeMap<u16, usize> = BTreeMap::new();
    for (_, status, _, body) in &replies {
        *statuses.entry(*status).or_default() += 1;
        assert!(matches!(*status, 200 | 202), "{body}");
    }
    eprintln!(
        "resharding slot {slot} ({moving}) {from} -> {to}: {} requests, {during} during the \
         migration, statuses {statuses:?}, keys moved {migrated:?}",
        replies.len()
    );
    assert!(during > 0, "no request was served during the migration");

    stack.wait_drained(None, Duration::from_secs(90)).await;
    for (id, _) in &activities {
        let stream = stack.stream(id).await;
        let rids: BTreeSet<&String> = stream.iter().map(|(r, _)| r).collect();
        for (aid, _, rid, body) in replies.iter().filter(|r| &r.0 == id) {
            let rid = rid.as_ref().unwrap_or_else(|| panic!("{aid}: {body}"));
            assert!(
                rids.contains(rid),
                "{aid}: 200 for {rid} but not in the stream"
            );
        }
        let st = stack.status(id).await;
        assert_eq!(st.reservations as usize, stream.len(), "{id}: {st:?}");
        assert_eq!(st.total - st.remaining, stream.len() as u64, "{id}: {st:?}");
        let reservations: BTreeSet<(String, String)> = stream.into_iter().collect();
        assert_eq!(stack.orders(id).await, reservations, "orders of {id}");
        let (clean, out) = stack.audit(id).await;
        assert!(clean, "audit of {id}:\n{out}");
    }
}
