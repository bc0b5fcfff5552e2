//! A private Redis Cluster: N primaries and their replicas, each a [`RedisServer`] with the
//! seckill module (cluster mode, its own temp dir and `nodes.conf`), joined with
//! `redis-cli --cluster create`. Nodes can be SIGKILLed and restarted (a restarted node
//! rejoins as it left: a dead primary comes back as a replica of the one that replaced it).
//!
//! Settings suited to failover tests: a short `cluster-node-timeout`, and
//! `cluster-require-full-coverage no` so the shards that did not fail keep serving while one
//! is failing over (with `yes`, every node refuses every command until the failover is done).

use crate::redis::{RedisOptions, RedisServer};
use anyhow::{bail, Context};
use std::collections::BTreeMap;
use std::process::Command;
use std::time::{Duration, Instant};

#[derive(Debug, Clone)]
pub struct ClusterOptions {
    pub primaries: usize,
    pub replicas_per_primary: usize,
    /// `cluster-node-timeout`: how long a node may be silent before it is suspected.
    pub node_timeout_ms: u64,
    /// Append-only file with this fsync policy on every node.
    pub appendfsync: Option<&'static str>,
    /// More redis-server arguments for every node (e.g. `--include <ACL users file>`; the
    /// harness logs in as `default`, which must stay open).
    pub args: Vec<String>,
}

impl Default for ClusterOptions {
    fn default() -> Self {
        Self {
            primaries: 3,
            replicas_per_primary: 1,
            node_timeout_ms: 1_000,
            appendfsync: None,
            args: Vec::new(),
        }
    }
}

/// One line of `CLUSTER NODES`, as the harness needs it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NodeLine {
    pub id: String,
    pub port: u16,
    pub primary: bool,
    pub failed: bool,
    /// The id of its primary (replicas).
    pub primary_id: Option<String>,
    pub slots: Vec<(u16, u16)>,
}

/// Parses `CLUSTER NODES` (migration markers in brackets are skipped).
pub fn parse_nodes(text: &str) -> Vec<NodeLine> {
    text.lines()
        .filter_map(|l| {
            let f: Vec<&str> = l.split_whitespace().collect();
            if f.len() < 8 {
                return None;
            }
            let port = f[1]
                .split(['@', ','])
                .next()?
                .rsplit_once(':')?
                .1
                .parse()
                .ok()?;
            let flags: Vec<&str> = f[2].split(',').collect();
            Some(NodeLine {
                id: f[0].to_owned(),
                port,
                primary: flags.contains(&"master"),
                failed: flags.contains(&"fail"),
                primary_id: (f[3] != "-").then(|| f[3].to_owned()),
                slots: f[8..]
                    .iter()
                    .filter(|s| !s.starts_with('['))
                    .filter_map(|s| match s.split_once('-') {
                        Some((a, b)) => Some((a.parse().ok()?, b.parse().ok()?)),
                        None => s.parse().ok().map(|n| (n, n)),
                    })
                    .collect(),
            })
        })
        .collect()
}

pub struct RedisCluster {
    pub nodes: Vec<RedisServer>,
    pub options: ClusterOptions,
}

impl RedisCluster {
    /// 3 primaries, 1 replica each, node timeout 1 s.
    pub fn start() -> anyhow::Result<Self> {
        Self::start_with(ClusterOptions::default())
    }

    pub fn start_with(options: ClusterOptions) -> anyhow::Result<Self> {
        let count = options.primaries * (1 + options.replicas_per_primary);
        let mut nodes = Vec::with_capacity(count);
        for _ in 0..count {
            nodes.push(RedisServer::start_with(RedisOptions {
                cluster: true,
                appendfsync: options.appendfsync,
                args: vec![
                    "--cluster-node-timeout".into(),
                    options.node_timeout_ms.to_string(),
                    "--cluster-require-full-coverage".into(),
                    "no".into(),
                    "--loglevel".into(),
                    "notice".into(),
                ]
                .into_iter()
                .chain(options.args.iter().cloned())
                .collect(),
                ..RedisOptions::default()
            })?);
        }
        let mut create = Command::new("redis-cli");
        create.arg("--cluster").arg("create");
        for n in &nodes {
            create.arg(format!("127.0.0.1:{}", n.port));
        }
        let out = create
            .args([
                "--cluster-replicas",
                &options.replicas_per_primary.to_string(),
                "--cluster-yes",
            ])
            .output()
            .context("Failed to run redis-cli --cluster create (install redis-tools)")?;
        if !out.status.success() {
            bail!(
                "redis-cli --cluster create failed: {}{}",
                String::from_utf8_lossy(&out.stdout),
                String::from_utf8_lossy(&out.stderr)
            );
        }
        let cluster = Self { nodes, options };
        cluster.wait_ok(Duration::from_secs(60))?;
        cluster.wait_replicas_online(Duration::from_secs(60))?;
        Ok(cluster)
    }

    /// `127.0.0.1:<port>` of every node, for the client's seed list.
    pub fn seeds(&self) -> Vec<String> {
        self.nodes
            .iter()
            .map(|n| format!("127.0.0.1:{}", n.port))
            .collect()
    }

    pub fn node(&self, port: u16) -> anyhow::Result<&RedisServer> {
        self.nodes
            .iter()
            .find(|n| n.port == port)
            .with_context(|| format!("no node on port {port}"))
    }

    fn node_mut(&mut self, port: u16) -> anyhow::Result<&mut RedisServer> {
        self.nodes
            .iter_mut()
            .find(|n| n.port == port)
            .with_context(|| format!("no node on port {port}"))
    }

    /// Ports of the nodes whose process runs.
    pub fn live_ports(&mut self) -> Vec<u16> {
        self.nodes
            .iter_mut()
            .filter_map(|n| n.is_running().then_some(n.port))
            .collect()
    }

    /// `CLUSTER NODES` as node `port` sees it.
    pub fn nodes_seen_by(&self, port: u16) -> anyhow::Result<Vec<NodeLine>> {
        let text = self.node(port)?.cli(&["CLUSTER", "NODES"])?;
        let lines = parse_nodes(&text);
        if lines.is_empty() {
            bail!("node {port} answered no CLUSTER NODES: {text}");
        }
        Ok(lines)
    }

    /// The slot of `key` (or of an activity id: its keys' hash tag).
    pub fn slot(&self, key: &str) -> anyhow::Result<u16> {
        let n = self
            .nodes
            .first()
            .context("no node")?
            .cli(&["CLUSTER", "KEYSLOT", key])?;
        n.trim()
            .parse()
            .with_context(|| format!("CLUSTER KEYSLOT answered '{n}'"))
    }

    /// The port of the primary serving `slot`, as live node `via` sees it.
    pub fn primary_of_slot(&self, via: u16, slot: u16) -> anyhow::Result<u16> {
        self.nodes_seen_by(via)?
            .into_iter()
            .find(|l| {
                l.primary && !l.failed && l.slots.iter().any(|(a, b)| (*a..=*b).contains(&slot))
            })
            .map(|l| l.port)
            .with_context(|| format!("node {via} knows no primary for slot {slot}"))
    }

    /// Ports of the primaries serving slots, as live node `via` sees them.
    pub fn primaries(&self, via: u16) -> anyhow::Result<Vec<u16>> {
        Ok(self
            .nodes_seen_by(via)?
            .into_iter()
            .filter(|l| l.primary && !l.failed && !l.slots.is_empty())
            .map(|l| l.port)
            .collect())
    }

    /// The port of a replica of primary `primary`, as live node `via` sees it.
    pub fn replica_of(&self, via: u16, primary: u16) -> anyhow::Result<u16> {
        let lines = self.nodes_seen_by(via)?;
        let id = lines
            .iter()
            .find(|l| l.port == primary)
            .map(|l| l.id.clone())
            .with_context(|| format!("no node {primary}"))?;
        lines
            .iter()
            .find(|l| !l.primary && l.primary_id.as_deref() == Some(id.as_str()) && !l.failed)
            .map(|l| l.port)
            .with_context(|| format!("primary {primary} has no replica"))
    }

    /// Sends `signal` (`STOP`, `CONT`, ...) to node `port`'s process: `STOP` freezes it as a
    /// stalled machine would (its sockets stay open, nothing is read), `CONT` thaws it.
    pub fn signal(&self, port: u16, signal: &str) -> anyhow::Result<()> {
        let pid = self.node(port)?.pid();
        anyhow::ensure!(pid != 0, "node {port} is not running");
        let ok = Command::new("kill")
            .args([&format!("-{signal}"), &pid.to_string()])
            .status()?
            .success();
        anyhow::ensure!(ok, "kill -{signal} {pid} failed");
        Ok(())
    }

    /// SIGKILL of one node, as a crash would end it.
    pub fn kill(&mut self, port: u16) -> anyhow::Result<()> {
        self.node_mut(port)?.kill();
        Ok(())
    }

    /// Starts a killed node again on its port and directory: it rejoins with its
    /// `nodes.conf` (a replaced primary comes back as a replica).
    pub fn restart(&mut self, port: u16) -> anyhow::Result<()> {
        self.node_mut(port)?.restart()
    }

    /// Waits until every live node says `cluster_state:ok` with all 16384 slots served, and
    /// they all agree which primary serves which slots.
    pub fn wait_ok(&self, timeout: Duration) -> anyhow::Result<()> {
        let deadline = Instant::now() + timeout;
        loop {
            let err = match self.agreed() {
                Ok(()) => return Ok(()),
                Err(e) => e,
            };
            if Instant::now() > deadline {
                bail!("the cluster did not settle within {timeout:?}: {err:#}");
            }
            std::thread::sleep(Duration::from_millis(100));
        }
    }

    fn agreed(&self) -> anyhow::Result<()> {
        let mut views: Vec<BTreeMap<(u16, u16), u16>> = Vec::new();
        for n in &self.nodes {
            // A killed node does not answer; a node that answers is live.
            let Ok(info) = n.cli(&["CLUSTER", "INFO"]) else {
                continue;
            };
            if info.trim().is_empty() {
                continue;
            }
            if !info.contains("cluster_state:ok") || !info.contains("cluster_slots_ok:16384") {
                bail!("node {} is not ok yet", n.port);
            }
            let lines = parse_nodes(&n.cli(&["CLUSTER", "NODES"])?);
            let mut view = BTreeMap::new();
            for l in lines.iter().filter(|l| l.primary && !l.failed) {
                for r in &l.slots {
                    view.insert(*r, l.port);
                }
            }
            views.push(view);
        }
        if views.is_empty() {
            bail!("no node answers");
        }
        if views.windows(2).any(|w| w[0] != w[1]) {
            bail!("the nodes do not agree yet on which primary serves which slots");
        }
        Ok(())
    }

    /// Waits until every primary serving slots has `replicas_per_primary` replicas online
    /// (or `at_least` when given: after a failover the new primary may have fewer).
    pub fn wait_replicas_online(&self, timeout: Duration) -> anyhow::Result<()> {
        self.wait_replicas(self.options.replicas_per_primary, timeout)
    }

    pub fn wait_replicas(&self, at_least: usize, timeout: Duration) -> anyhow::Result<()> {
        let deadline = Instant::now() + timeout;
        loop {
            let mut missing = Vec::new();
            let via = self
                .nodes
                .iter()
                .find(|n| !n.cli(&["PING"]).unwrap_or_default().trim().is_empty())
                .map(|n| n.port)
                .context("no node answers")?;
            for p in self.primaries(via)? {
                let info = self.node(p)?.cli(&["INFO", "replication"])?;
                let online = info
                    .lines()
                    .filter(|l| l.starts_with("slave") && l.contains("state=online"))
                    .count();
                if online < at_least {
                    missing.push(format!("{p}: {online} online"));
                }
            }
            if missing.is_empty() {
                return Ok(());
            }
            if Instant::now() > deadline {
                bail!("replicas not online within {timeout:?}: {missing:?}");
            }
            std::thread::sleep(Duration::from_millis(100));
        }
    }

    /// The slot ranges primary `port` serves, as live node `via` sees it.
    pub fn slots_of(&self, via: u16, port: u16) -> anyhow::Result<Vec<(u16, u16)>> {
        Ok(self
            .nodes_seen_by(via)?
            .into_iter()
            .find(|l| l.port == port && l.primary)
            .map(|l| l.slots)
            .unwrap_or_default())
    }

    /// After the primary serving `slot` (`dead`) was killed: waits until a live node serves
    /// that slot and the cluster settled; returns the new primary's port.
    pub fn wait_failover(
        &mut self,
        dead: u16,
        slot: u16,
        timeout: Duration,
    ) -> anyhow::Result<u16> {
        let deadline = Instant::now() + timeout;
        let live = self.live_ports();
        let mut last = String::new();
        loop {
            for via in &live {
                match self.primary_of_slot(*via, slot) {
                    Ok(p) if p != dead && live.contains(&p) => {
                        self.wait_ok(deadline.saturating_duration_since(Instant::now()))?;
                        return Ok(p);
                    }
                    Ok(p) => last = format!("node {via} still names {p}"),
                    Err(e) => last = format!("{e:#}"),
                }
            }
            if Instant::now() > deadline {
                bail!("no replica replaced primary {dead} within {timeout:?}: {last}");
            }
            std::thread::sleep(Duration::from_millis(50));
        }
    }
}
