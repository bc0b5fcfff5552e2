//! Invariants 1 and 2 under real concurrency: 64 clients race 10,000 reservations for a
//! stock of 100.

mod support;

use seckill_testkit::RedisServer;
use std::collections::HashSet;
use std::sync::{Arc, Mutex};
use support::*;

#[test]
fn sixty_four_clients_never_oversell_nor_let_a_user_buy_twice() -> anyhow::Result<()> {
    const CLIENTS: usize = 64;
    const ATTEMPTS: usize = 10_000;
    const STOCK: usize = 100;
    let server = Arc::new(RedisServer::start()?);
    let mut con = server.connection()?;
    create(&mut con, "race", &["STOCK", &STOCK.to_string()])?;

    // 5,000 users each click twice, spread over different clients, so the per-user limit is
    // raced too.
    let wins = Arc::new(Mutex::new(Vec::new()));
    let refusals = Arc::new(Mutex::new(Vec::new()));
    let handles: Vec<_> = (0..CLIENTS)
        .map(|c| {
            let (server, wins, refusals) = (server.clone(), wins.clone(), refusals.clone());
            std::thread::spawn(move || -> anyhow::Result<()> {
                let mut con = server.connection()?;
                for i in (c..ATTEMPTS).step_by(CLIENTS) {
                    let user = format!("u{}", i % (ATTEMPTS / 2));
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
                            .push(e.code().unwrap_or("?").to_owned()),
                    }
                }
                Ok(())
            })
        })
        .collect();
    for h in handles {
        h.join().map_err(|_| anyhow::anyhow!("client panicked"))??;
    }
    let wins = wins
        .lock()
        .map_err(|_| anyhow::anyhow!("poisoned"))?
        .clone();
    let refusals = refusals
        .lock()
        .map_err(|_| anyhow::anyhow!("poisoned"))?
        .clone();

    assert_eq!(wins.len(), STOCK, "exactly the stock is sold");
    assert_eq!(refusals.len(), ATTEMPTS - STOCK);
    assert!(
        refusals.iter().all(|c| c == "SOLDOUT" || c == "LIMIT"),
        "{refusals:?}"
    );
    let users: HashSet<_> = wins.iter().map(|(_, u)| u.clone()).collect();
    assert_eq!(users.len(), STOCK, "no user bought twice");

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
    assert_eq!(stream_users, users);
    Ok(())
}
