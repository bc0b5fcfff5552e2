//! The `seckill` binary against real Redis (with the module) and MariaDB.

use seckill_core::auth as token;
use seckill_testkit::{mariadb, RedisServer};
use std::collections::BTreeMap;
use std::process::{Command, Output};
use std::time::Duration;

struct Env {
    redis: RedisServer,
    db_url: String,
}

fn env() -> anyhow::Result<Env> {
    let redis = RedisServer::start()?;
    let db_url = mariadb::shared()?.create_database()?;
    Ok(Env { redis, db_url })
}

impl Env {
    fn run(&self, args: &[&str]) -> anyhow::Result<Output> {
        Ok(Command::new(env!("CARGO_BIN_EXE_seckill"))
            .args([
                "--redis-url",
                &self.redis.url(),
                "--mysql-url",
                &self.db_url,
            ])
            .args(args)
            .env("SECKILL_AUTH__JWT_SECRET", "test-secret")
            .env("RUST_LOG", "warn")
            .output()?)
    }
}

fn stdout(o: &Output) -> String {
    String::from_utf8_lossy(&o.stdout).into_owned()
}

#[test]
fn activity_create_seed_lag_and_audit() -> anyhow::Result<()> {
    let env = env()?;
    let migrate = env.run(&["db", "migrate"])?;
    assert!(
        migrate.status.success(),
        "{}",
        String::from_utf8_lossy(&migrate.stderr)
    );

    // activity create prints the id alone on stdout and preheats Redis.
    let out = env.run(&[
        "activity", "create", "--stock", "5", "--price", "250", "--limit", "2",
    ])?;
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let id = stdout(&out).trim().to_owned();
    assert!(id.parse::<u64>().is_ok(), "stdout was {:?}", stdout(&out));
    // The row in MySQL and the preheated sale in Redis carry what was asked for.
    let row = mariadb::shared()?.sql(&format!(
        "SELECT stock, per_user_limit, price_cents, product_id FROM `{}`.activities WHERE id = {id}",
        env.db_name()
    ))?;
    let row: Vec<&str> = row.trim().split('\t').collect();
    assert_eq!(row[..3], ["5", "2", "250"], "activities row {row:?}");
    let status = env.status(&id)?;
    let field = |k: &str| status.get(k).map(String::as_str).unwrap_or("");
    assert_eq!(
        [
            field("total"),
            field("remaining"),
            field("limit"),
            field("price"),
            field("product"),
            field("state")
        ],
        ["5", "5", "2", "250", row[3], "open"],
        "{status:?}"
    );

    // users seed: N users, N verifiable tokens.
    let dir = tempfile::tempdir()?;
    let file = dir.path().join("tokens.txt");
    let file_s = file.to_string_lossy().into_owned();
    let started = std::time::Instant::now();
    let out = env.run(&["users", "seed", "--count", "20000", "--tokens", &file_s])?;
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(started.elapsed() < Duration::from_secs(60));
    let tokens = std::fs::read_to_string(&file)?;
    let tokens: Vec<&str> = tokens.lines().collect();
    assert_eq!(tokens.len(), 20_000);
    // Every token is valid, for a distinct seeded user with role user.
    let mut subs = Vec::with_capacity(tokens.len());
    for t in &tokens {
        let claims = token::verify(b"test-secret", t)?;
        assert_eq!(claims.role, "user");
        subs.push(claims.sub.parse::<u64>()?);
    }
    subs.sort_unstable();
    let mut users: Vec<u64> = mariadb::shared()?
        .sql(&format!(
            "SELECT id FROM `{}`.users WHERE role = 'user'",
            env.db_name()
        ))?
        .lines()
        .map(|l| l.trim().parse())
        .collect::<Result<_, _>>()?;
    users.sort_unstable();
    assert_eq!(users.len(), 20_000, "seeded users");
    assert!(
        subs == users,
        "the tokens' subjects are not the seeded users"
    );

    // A reservation not drained by any worker: lag shows it, audit counts it in flight.
    env.redis.cli(&["SECKILL.RESERVE", &id, "u1", "1"])?;
    let lag = env.run(&["lag"])?;
    assert!(lag.status.success());
    let table = stdout(&lag);
    let row = |table: &str| -> Vec<String> {
        table
            .lines()
            .find(|l| l.split_whitespace().next() == Some(id.as_str()))
            .map(|l| l.split_whitespace().map(str::to_owned).collect())
            .unwrap_or_default()
    };
    // ACTIVITY LENGTH LAG PENDING DEAD CONSUMERS: no group yet, so no lag number.
    assert_eq!(
        row(&table),
        [id.as_str(), "1", "-", "0", "0", "0"],
        "{table}"
    );
    // With the worker's group created at the start of the stream, the entry is its lag.
    env.redis.cli(&[
        "XGROUP",
        "CREATE",
        &format!("seckill:{{{id}}}:stream"),
        "seckill-orders",
        "0",
    ])?;
    let table = stdout(&env.run(&["lag"])?);
    assert_eq!(
        row(&table),
        [id.as_str(), "1", "1", "0", "0", "0"],
        "{table}"
    );
    let audit = env.run(&["audit", &id])?;
    assert_eq!(audit.status.code(), Some(0), "{}", stdout(&audit));
    assert!(stdout(&audit).contains("1 in flight"));

    // An order row without a reservation is drift: exit status 1 and a report.
    let db = env.db_name();
    mariadb::shared()?.sql(&format!(
        "INSERT INTO `{db}`.orders (reservation_id, activity_id, product_id, user_id, quantity, \
         amount_cents, reserved_at, expires_at) VALUES ('1-1', {id}, '', 'ghost', 1, 0, NOW(3), NOW(3))"
    ))?;
    let audit = env.run(&["audit", &id])?;
    assert_eq!(audit.status.code(), Some(1), "{}", stdout(&audit));
    assert!(stdout(&audit).contains("DRIFT"));
    assert!(stdout(&audit).contains("1-1"));
    Ok(())
}

/// Everything `seckill` could change: every table's rows in MySQL and every key's `DUMP` in
/// Redis.
#[derive(Debug, PartialEq, Eq)]
struct Snapshot {
    tables: BTreeMap<String, Vec<String>>,
    keys: BTreeMap<String, Vec<u8>>,
}

impl Env {
    fn db_name(&self) -> &str {
        self.db_url.rsplit('/').next().unwrap_or_default()
    }

    /// `SECKILL.STATUS` as field -> value.
    fn status(&self, activity: &str) -> anyhow::Result<BTreeMap<String, String>> {
        let mut con = self.redis.connection()?;
        let flat: Vec<String> = redis::cmd("SECKILL.STATUS").arg(activity).query(&mut con)?;
        Ok(flat
            .chunks(2)
            .map(|kv| (kv[0].clone(), kv.get(1).cloned().unwrap_or_default()))
            .collect())
    }

    fn snapshot(&self) -> anyhow::Result<Snapshot> {
        let server = mariadb::shared()?;
        let db = self.db_name();
        let mut tables = BTreeMap::new();
        let names = server.sql(&format!(
            "SELECT table_name FROM information_schema.tables WHERE table_schema = '{db}'"
        ))?;
        for table in names.lines().map(str::trim).filter(|t| !t.is_empty()) {
            let dump = server.sql(&format!("SELECT * FROM `{db}`.`{table}`"))?;
            let mut rows: Vec<String> = dump.lines().map(str::to_owned).collect();
            rows.sort();
            tables.insert(table.to_owned(), rows);
        }
        anyhow::ensure!(tables.contains_key("activities"), "no tables in {db}");
        let mut con = self.redis.connection()?;
        let mut keys = BTreeMap::new();
        for key in redis::cmd("KEYS").arg("*").query::<Vec<String>>(&mut con)? {
            let dump: Vec<u8> = redis::cmd("DUMP").arg(&key).query(&mut con)?;
            keys.insert(key, dump);
        }
        Ok(Snapshot { tables, keys })
    }
}

/// `activity create` refusals, whether caught before any I/O, by MySQL (unknown product) or
/// by Redis (the new id is already a live sale there, so the preheat fails after the rows
/// were written): non-zero exit, nothing on stdout, a reason on stderr, and neither
/// database changed at all.
#[test]
fn refused_activity_creates_change_nothing() -> anyhow::Result<()> {
    let env = env()?;
    assert!(env.run(&["db", "migrate"])?.status.success());
    // Some state to keep: an activity with a product, a reservation in its stream.
    let out = env.run(&["activity", "create", "--stock", "5", "--price", "100"])?;
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let id = stdout(&out).trim().to_owned();
    env.redis.cli(&["SECKILL.RESERVE", &id, "u1", "1"])?;
    // The id the next activity will get is taken by a live sale in Redis.
    let next = mariadb::shared()?
        .sql(&format!(
            "SELECT AUTO_INCREMENT FROM information_schema.tables \
             WHERE table_schema = '{}' AND table_name = 'activities'",
            env.db_name()
        ))?
        .trim()
        .to_owned();
    assert_eq!(
        env.redis
            .cli(&["SECKILL.CREATE", &next, "STOCK", "3"])?
            .trim(),
        "OK"
    );

    let before = env.snapshot()?;
    // (case, arguments, what stderr must say)
    let cases: &[(&str, &[&str], &str)] = &[
        ("stock 0", &["--stock", "0"], "at least 1"),
        ("limit 0", &["--stock", "5", "--limit", "0"], "at least 1"),
        ("negative stock", &["--stock", "-1"], "'-1'"),
        (
            "not a time",
            &["--stock", "5", "--start", "yesterday"],
            "RFC 3339",
        ),
        (
            "end before start",
            &[
                "--stock",
                "5",
                "--start",
                "2030-01-02T00:00:00Z",
                "--end",
                "2030-01-01T00:00:00Z",
            ],
            "--end must be after --start",
        ),
        (
            "unknown product",
            &["--stock", "5", "--product", "424242"],
            "product 424242",
        ),
        (
            "id live in Redis",
            &["--stock", "5", "--price", "100"],
            &format!("activity '{next}' exists"),
        ),
    ];
    for (name, args, reason) in cases {
        let out = env.run(&[&["activity", "create"], *args].concat())?;
        assert!(
            !out.status.success(),
            "{name}: accepted, printed {}",
            stdout(&out)
        );
        assert!(stdout(&out).is_empty(), "{name}: stdout {:?}", stdout(&out));
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(
            err.contains(reason),
            "{name}: stderr {err:?} lacks {reason:?}"
        );
        assert_eq!(env.snapshot()?, before, "{name}: the databases changed");
    }
    Ok(())
}

/// Outside dev mode nobody is seeded: `users create-admin` makes an administrator whose
/// password the gateway's argon2 check accepts, and `users promote` upgrades an existing user.
#[test]
fn create_admin_and_promote() -> anyhow::Result<()> {
    use argon2::password_hash::{PasswordHash, PasswordVerifier};
    use std::io::Write;
    use std::process::Stdio;
    let env = env()?;
    assert!(env.run(&["db", "migrate"])?.status.success());
    let db = env.db_url.rsplit('/').next().unwrap_or_default().to_owned();
    let sql = |q: &str| mariadb::shared()?.sql(&q.replace("{db}", &db));

    // Password from the environment.
    let out = Command::new(env!("CARGO_BIN_EXE_seckill"))
        .args(["--redis-url", &env.redis.url(), "--mysql-url", &env.db_url])
        .args(["users", "create-admin", "--username", "ops"])
        .env("SECKILL_ADMIN_PASSWORD", "correct horse battery")
        .output()?;
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let row = sql("SELECT role, password_hash FROM `{db}`.users WHERE username = 'ops'")?;
    let (role, hash) = row.trim().split_once('\t').unwrap_or_default();
    assert_eq!(role, "admin");
    let parsed = PasswordHash::new(hash).map_err(|e| anyhow::anyhow!("{e}"))?;
    assert!(argon2::Argon2::default()
        .verify_password(b"correct horse battery", &parsed)
        .is_ok());

    // Password from stdin; an existing name is refused and changes nothing.
    let stdin_admin = |name: &str, password: &str| -> anyhow::Result<Output> {
        let mut child = Command::new(env!("CARGO_BIN_EXE_seckill"))
            .args(["--redis-url", &env.redis.url(), "--mysql-url", &env.db_url])
            .args([
                "users",
                "create-admin",
                "--password-stdin",
                "--username",
                name,
            ])
            .env_remove("SECKILL_ADMIN_PASSWORD")
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()?;
        if let Some(mut input) = child.stdin.take() {
            writeln!(input, "{password}")?;
        }
        Ok(child.wait_with_output()?)
    };
    assert!(stdin_admin("ops2", "another-long-one")?.status.success());
    let before = env.snapshot()?;
    let again = stdin_admin("ops", "a-different-password")?;
    assert!(!again.status.success());
    assert!(String::from_utf8_lossy(&again.stderr).contains("users promote ops"));
    assert_eq!(
        sql("SELECT password_hash FROM `{db}`.users WHERE username = 'ops'")?.trim(),
        hash
    );
    // Bad input: short password, bad name, no password at all.
    assert!(!stdin_admin("ops3", "short")?.status.success());
    assert!(!stdin_admin("bad name", "long-enough-pw")?.status.success());
    let no_password = env.run(&["users", "create-admin", "--username", "ops4"])?;
    assert!(!no_password.status.success());
    assert!(String::from_utf8_lossy(&no_password.stderr).contains("SECKILL_ADMIN_PASSWORD"));
    assert_eq!(
        sql("SELECT COUNT(*) FROM `{db}`.users WHERE username IN ('ops3', 'bad name', 'ops4')")?
            .trim(),
        "0"
    );
    assert_eq!(
        env.snapshot()?,
        before,
        "a refused create-admin changed the databases"
    );

    // Promote an ordinary user; unknown users are an error.
    sql("INSERT INTO `{db}`.users (username, password_hash) VALUES ('alice', 'x')")?;
    let promoted = env.run(&["users", "promote", "alice"])?;
    assert!(
        promoted.status.success(),
        "{}",
        String::from_utf8_lossy(&promoted.stderr)
    );
    assert_eq!(
        sql("SELECT role FROM `{db}`.users WHERE username = 'alice'")?.trim(),
        "admin"
    );
    let before = env.snapshot()?;
    assert!(!env.run(&["users", "promote", "nobody"])?.status.success());
    assert_eq!(
        env.snapshot()?,
        before,
        "promoting nobody changed the databases"
    );
    Ok(())
}
