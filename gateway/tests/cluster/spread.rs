//! 30 activities over the 3 shards, a sale on each through the gateway: each activity's keys
//! live on the primary that serves its slot (and its replica), SPEC invariants 1-4 hold per
//! activity, `seckill audit` is clean on all, `seckill lag` shows every shard.

use crate::stack::{self, act};
use futures::StreamExt;
use reqwest::StatusCode;
use seckill_client::topology::slot_of;
use seckill_core::keys;
use seckill_gateway::auth::Role;
use std::collections::{BTreeMap, BTreeSet};
use std::time::Duration;

const ACTIVITIES: usize = 30;
const STOCK: u64 = 10;
/// Buyers per activity, each clicking twice.
const BUYERS: usize = 16;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn thirty_activities_over_three_shards_keep_every_invariant() {
    let stack = stack::start(1).await;
    let mut activities = Vec::new();
    for _ in 0..ACTIVITIES {
        activities.push(stack.create_activity(STOCK).await);
    }

    // Where the keys live: every key of an activity on the primary of its slot, none on the
    // other primaries.
    let topology = stack.topology().await;
    let mut per_shard: BTreeMap<String, usize> = BTreeMap::new();
    for (id, _) in &activities {
        let a = act(id);
        let primary = topology.primary_for(&a).expect("served").to_owned();
        *per_shard.entry(primary.clone()).or_default() += 1;
        let slot = stack.cluster().slot(id).expect("keyslot");
        assert_eq!(slot, slot_of(&a));
        for shard in &topology.shards {
            let port: u16 = shard
                .primary
                .rsplit_once(':')
                .map(|(_, p)| p)
                .unwrap_or("0")
                .parse()
                .expect("port");
            let exists = stack
                .cluster()
                .node(port)
                .expect("node")
                .cli(&["EXISTS", &keys::meta(&a)])
                .expect("EXISTS");
            let here = shard.primary == primary;
            // A node that does not serve the slot answers MOVED (no "1").
            assert_eq!(
                exists.trim() == "1",
                here,
                "activity {id} on {}: {exists}",
                shard.primary
            );
        }
    }
    assert_eq!(
        per_shard.len(),
        3,
        "the activities spread over every shard: {per_shard:?}"
    );

    // The sale: BUYERS users per activity, each clicking twice, all at once.
    let requests: Vec<(String, String, String)> = activities
        .iter()
        .flat_map(|(id, product)| {
            (0..BUYERS).flat_map(move |u| {
                let user = format!("{id}-u{u}");
                [
                    (id.clone(), product.clone(), user.clone()),
                    (id.clone(), product.clone(), user),
                ]
            })
        })
        .collect();
    let replies: Vec<(String, String, StatusCode, serde_json::Value)> =
        futures::stream::iter(requests)
            .map(|(id, product, user)| {
                let stack = &stack;
                async move {
                    let r = stack.reserve(&user, &id, &product).await;
                    (id, user, r.status, r.body)
                }
            })
            .buffer_unordered(64)
            .collect()
            .await;
    let mut won: BTreeMap<String, BTreeSet<(String, String)>> = BTreeMap::new();
    for (id, user, status, body) in &replies {
        match status.as_u16() {
            200 => {
                assert_eq!(body["data"]["status"], "queued", "{body}");
                let rid = body["data"]["reservation_id"]
                    .as_str()
                    .expect("rid")
                    .to_owned();
                won.entry(id.clone())
                    .or_default()
                    .insert((rid, user.clone()));
            }
            409 => assert!(
                matches!(body["error"].as_str(), Some("SOLD_OUT" | "LIMIT_EXCEEDED")),
                "{body}"
            ),
            other => panic!("unexpected {other} for {user} on {id}: {body}"),
        }
    }

    for (id, _) in &activities {
        let ours = won.get(id).cloned().unwrap_or_default();
        // 1. No oversell, no undersell at the sale: exactly the stock was sold.
        assert_eq!(ours.len() as u64, STOCK, "activity {id}");
        let st = stack.status(id).await;
        assert_eq!((st.total, st.remaining, st.reservations), (STOCK, 0, STOCK));
        // 2. Per-user limit: one reservation per user, whatever the clicks.
        let users: BTreeSet<&String> = ours.iter().map(|(_, u)| u).collect();
        assert_eq!(users.len(), ours.len(), "a user won twice in {id}");
        // Every 200 is in the stream on the node serving the activity, and nothing else is.
        let stream: BTreeSet<(String, String)> = stack.stream(id).await.into_iter().collect();
        assert_eq!(stream, ours, "activity {id}");
    }

    // 3. No lost order: every reservation becomes exactly one order row.
    stack
        .wait_drained(Some(ACTIVITIES * STOCK as usize), Duration::from_secs(60))
        .await;
    for (id, _) in &activities {
        let stream: BTreeSet<(String, String)> = stack.stream(id).await.into_iter().collect();
        assert_eq!(stack.orders(id).await, stream, "orders of {id}");
    }

    // 4. No undersell: a cancelled order returns its stock once, and it sells again.
    let (id, product) = &activities[0];
    let (rid, user) = stack.stream(id).await.into_iter().next().expect("an entry");
    let token = stack.token(&user, Role::User);
    let orders = stack.get("/api/v1/orders", &token).await;
    let order_id = orders.data().as_array().and_then(|o| {
        o.iter()
            .find(|o| o["reservation_id"] == rid.as_str())
            .and_then(|o| {
                o["id"]
                    .as_u64()
                    .map(|n| n.to_string())
                    .or_else(|| o["id"].as_str().map(str::to_owned))
            })
    });
    let order_id = order_id.unwrap_or_else(|| panic!("{user}'s order in {}", orders.body));
    let r = stack
        .post(
            &format!("/api/v1/orders/{order_id}/cancel"),
            &token,
            String::new(),
        )
        .await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.body);
    let r = stack
        .post(
            &format!("/api/v1/orders/{order_id}/cancel"),
            &token,
            String::new(),
        )
        .await;
    assert_eq!(
        r.status,
        StatusCode::CONFLICT,
        "a second cancel: {}",
        r.body
    );
    assert_eq!(
        stack.status(id).await.remaining,
        1,
        "the unit came back once"
    );
    let r = stack.reserve("late-buyer", id, product).await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.body);
    assert_eq!(stack.status(id).await.remaining, 0);
    stack
        .wait_drained(
            Some(ACTIVITIES * STOCK as usize + 1),
            Duration::from_secs(60),
        )
        .await;
    let live: i64 = sqlx::query_scalar(
        "SELECT CAST(COALESCE(SUM(quantity), 0) AS SIGNED) FROM orders WHERE activity_id = ? AND status IN ('pending','paid')",
    )
    .bind(id.parse::<u64>().expect("numeric"))
    .fetch_one(&stack.pool().await)
    .await
    .expect("live orders");
    let st = stack.status(id).await;
    assert_eq!(
        st.remaining + live as u64,
        st.total,
        "remaining + live == total"
    );

    // The operator's view: the audit is clean on every activity, lag shows every shard.
    for (id, _) in &activities {
        let (clean, out) = stack.audit(id).await;
        assert!(clean, "audit of {id}:\n{out}");
        assert!(out.contains("served by 127.0.0.1:"), "{out}");
    }
    let (ok, out) = stack.lag().await;
    assert!(ok, "{out}");
    for shard in &topology.shards {
        assert!(out.contains(&format!("shard {}", shard.primary)), "{out}");
    }
    assert!(out.contains("1 acknowledging"), "{out}");
}
