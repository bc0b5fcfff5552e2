//! The MariaDB and etcd harnesses start, serve, survive a stop/start and clean up.

use seckill_testkit::{Etcd, MariaDb};

#[test]
fn mariadb_starts_stops_and_starts_again() -> anyhow::Result<()> {
    let mut db = MariaDb::start()?;
    let url = db.create_database()?;
    let name = url.rsplit('/').next().unwrap_or_default().to_owned();
    db.sql(&format!(
        "CREATE TABLE `{name}`.t (x INT); INSERT INTO `{name}`.t VALUES (7)"
    ))?;
    db.stop();
    assert!(db.sql("SELECT 1").is_err(), "stopped server still answers");
    db.start_again()?;
    assert_eq!(db.sql(&format!("SELECT x FROM `{name}`.t"))?.trim(), "7");
    let dir = db.dir().to_owned();
    drop(db);
    assert!(!dir.exists(), "data directory left behind");
    Ok(())
}

#[test]
fn etcd_starts() -> anyhow::Result<()> {
    let etcd = Etcd::start()?;
    let out = std::process::Command::new("etcdctl")
        .env("ETCDCTL_API", "3")
        .args(["--endpoints", &etcd.endpoint(), "put", "k", "v"])
        .output()?;
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    Ok(())
}
