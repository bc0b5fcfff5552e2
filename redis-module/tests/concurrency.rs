//! Invariants 1 and 2 under real concurrency, each in a race that can only pass when the
//! promise holds: many clients racing for less stock than users (no oversell), and every
//! user clicking twice at the same moment from two connections while stock is plentiful
//! (per-user limit: the second click must be refused as `LIMIT`, never sold).

mod support;

use seckill_testkit::RedisServer;
use std::collections::{BTreeMap, HashSet};
use std::sync::{Arc, Barrier, Mutex};
use support::*;

/// user -> the replies to its clicks (`Ok(reservation id)` or `Err(refusal code)`).
type Clicks = BTreeMap<String, Vec<Result<String, String>>>;

fn take<T: Clone>(m: &Mutex<T>) -> anyhow::Result<T> {
    Ok(m.lock().map_err(|_| anyhow::anyhow!("poisoned"))?.clone())
}

#[test]
fn sixty_four_clients_never_oversell() -> anyhow::Result<()> {
    const CLIENTS: usize = 64;
    const USERS: usize = 10_000;
    const STOCK: usize = 100;
    let server = Arc::new(RedisServer::start()?);
    let mut con = server.connection()?;
    create(&mut con, "race", &["STOCK", &STOCK.to_string()])?;

    let wins = Arc::new(Mutex::new(Vec::new()));
    let refusals = Arc::new(Mutex::new(Vec::new()));
    let handles: Vec<_> = (0..CLIENTS)
        .map(|c| {
            let (server, wins, refusals) = (server.clone(), wins.clone(), refusals.clone());
            std::thread::spawn(move || -> anyhow::Result<()> {
                let mut con = server.connection()?;
                for u in (c..USERS).step_by(CLIENTS) {
                    let user = format!("u{u}");
                    match reserve(&mut con, "race", &user, "1") {
                        Ok((rid, remaining)) => {
                            assert!(remaining >= 0);
                            wins.lock()
                                .map_err(|_| anyhow::anyhow!("poisoned"))?
                                .push((rid, user));
                        }
                        Err(e) => refusals
                            .lock()
                            .map_err(|_| anyhow::anyhow!("poisoned"))?
                            .push(code(&e)),
                    }
                }
                Ok(())
            })
        })
        .collect();
    for h in handles {
        h.join().map_err(|_| anyhow::anyhow!("client panicked"))??;
    }
    let wins = take(&wins)?;
    let refusals = take(&refusals)?;

    assert_eq!(wins.len(), STOCK, "exactly the stock is sold");
    assert_eq!(refusals.len(), USERS - STOCK);
    // Every user clicked once, so the only possible refusal is SOLDOUT.
    assert!(refusals.iter().all(|c| c == "SOLDOUT"), "{refusals:?}");

    let st = status(&mut con, "race")?;
    assert_eq!(st["remaining"], "0");
    assert_eq!(st["buyers"], STOCK.to_string());
    let snap = snapshot(&mut con, "race");
    assert_eq!(snap.stream.len(), STOCK, "one stream entry per success");
    let stream_ids: HashSet<_> = snap.stream.iter().map(|(id, _)| id.clone()).collect();
    let win_ids: HashSet<_> = wins.iter().map(|(id, _)| id.clone()).collect();
    assert_eq!(stream_ids, win_ids);
    let stream_users: HashSet<_> = snap
        .stream
        .iter()
        .filter_map(|(_, f)| f.iter().find(|(k, _)| k == "user").map(|(_, v)| v.clone()))
        .collect();
    let users: HashSet<_> = wins.iter().map(|(_, u)| u.clone()).collect();
    assert_eq!(stream_users, users);
    Ok(())
}

#[test]
fn a_double_click_from_two_connections_at_once_is_refused_as_limit() -> anyhow::Result<()> {
    const PAIRS: usize = 16;
    const USERS: usize = 2_000;
    // Twice the users: stock can never run out, so a broken limit check shows up as a
    // second sale instead of hiding behind SOLDOUT.
    const STOCK: usize = 2 * USERS;
    let server = Arc::new(RedisServer::start()?);
    let mut con = server.connection()?;
    create(&mut con, "dbl", &["STOCK", &STOCK.to_string()])?;

    let outcomes: Arc<Mutex<Clicks>> = Arc::new(Mutex::new(BTreeMap::new()));
    let mut handles = Vec::new();
    for p in 0..PAIRS {
        // The two connections of a pair click for the same user in the same round: both
        // wait at the barrier, then send at once.
        let barrier = Arc::new(Barrier::new(2));
        for _side in 0..2 {
            let (server, barrier, outcomes) = (server.clone(), barrier.clone(), outcomes.clone());
            handles.push(std::thread::spawn(move || -> anyhow::Result<()> {
                let mut con = server.connection()?;
                for u in (p..USERS).step_by(PAIRS) {
                    let user = format!("u{u}");
                    barrier.wait();
                    let out = reserve(&mut con, "dbl", &user, "1")
                        .map(|(rid, _)| rid)
                        .map_err(|e| code(&e));
                    outcomes
                        .lock()
                        .map_err(|_| anyhow::anyhow!("poisoned"))?
                        .entry(user)
                        .or_default()
                        .push(out);
                }
                Ok(())
            }));
        }
    }
    for h in handles {
        h.join().map_err(|_| anyhow::anyhow!("client panicked"))??;
    }
    let outcomes = take(&outcomes)?;
    assert_eq!(outcomes.len(), USERS);
    let mut rids = HashSet::new();
    for (user, clicks) in &outcomes {
        let wins: Vec<_> = clicks.iter().filter_map(|c| c.as_ref().ok()).collect();
        let refused: Vec<_> = clicks.iter().filter_map(|c| c.as_ref().err()).collect();
        assert_eq!(wins.len(), 1, "{user} must win exactly once: {clicks:?}");
        assert_eq!(refused, vec!["LIMIT"], "{user}'s other click: {clicks:?}");
        rids.insert(wins[0].clone());
    }

    let st = status(&mut con, "dbl")?;
    assert_eq!(st["remaining"], (STOCK - USERS).to_string());
    assert_eq!(st["buyers"], USERS.to_string());
    let snap = snapshot(&mut con, "dbl");
    assert_eq!(snap.stream.len(), USERS, "one entry per user");
    let stream_ids: HashSet<_> = snap.stream.iter().map(|(id, _)| id.clone()).collect();
    assert_eq!(stream_ids, rids);
    assert!(snap.buyers.values().all(|q| q == "1"));
    Ok(())
}
