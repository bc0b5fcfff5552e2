//! Where Redis is and how it is laid out: one standalone server, or a Redis Cluster of shards
//! (a primary, its replicas, its slots), read from `CLUSTER NODES`; and each primary's
//! replication state from `INFO replication`. The parsers are pure and tested here; the
//! gateway's confirmations, the worker's per-shard consumers and the operator views use them.

use seckill_core::ActivityId;
use std::collections::BTreeMap;

/// Where the configured Redis is: one server (`redis.url`) or a Redis Cluster reached through
/// seed nodes (`redis.cluster_nodes`); and how to log in to each node ([`Access`]).
#[derive(Clone)]
pub struct Target {
    pub nodes: Nodes,
    access: Access,
}

/// The addresses of a [`Target`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Nodes {
    Standalone { url: String },
    Cluster { seeds: Vec<String> },
}

/// How every node is logged in to, beyond its URL: the binary's ACL user and, for
/// `rediss://`, the CA and client certificate. The same for each node of a cluster, the
/// discovered ones included.
#[derive(Clone, Default)]
pub struct Access {
    pub username: Option<String>,
    pub password: Option<String>,
    pub tls: Option<redis::TlsCertificates>,
}

/// Never the password or the keys.
impl std::fmt::Debug for Access {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Access")
            .field("username", &self.username)
            .field("password", &self.password.as_ref().map(|_| "***"))
            .field("tls", &self.tls.is_some())
            .finish()
    }
}

/// Addresses only (URLs may carry a password).
impl std::fmt::Debug for Target {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let shown: Vec<&str> = match &self.nodes {
            Nodes::Standalone { url } => vec![address_of(url)],
            Nodes::Cluster { seeds } => seeds.iter().map(|u| address_of(u)).collect(),
        };
        f.debug_struct("Target")
            .field("cluster", &self.is_cluster())
            .field("nodes", &shown)
            .field("access", &self.access)
            .finish()
    }
}

impl Target {
    /// A cluster when `cluster_nodes` names any node (each `host:port` or a `redis://` URL),
    /// else the standalone server at `url`. Logs in as the URL says ([`Self::with_access`]
    /// adds a user and TLS files).
    pub fn new(url: &str, cluster_nodes: &[String]) -> Self {
        let seeds: Vec<String> = cluster_nodes
            .iter()
            .map(|s| s.trim())
            .filter(|s| !s.is_empty())
            .map(|s| {
                if s.contains("://") {
                    s.to_owned()
                } else {
                    // Scheme and credentials of `url` (TLS, password), this node's address.
                    with_address(url, s)
                }
            })
            .collect();
        let nodes = if seeds.is_empty() {
            Nodes::Standalone {
                url: url.to_owned(),
            }
        } else {
            Nodes::Cluster { seeds }
        };
        Self {
            nodes,
            access: Access::default(),
        }
    }

    /// The same nodes, logged in to with `access` (whose user and password win over the
    /// URL's).
    pub fn with_access(mut self, access: Access) -> Self {
        self.access = access;
        self
    }

    pub fn is_cluster(&self) -> bool {
        matches!(self.nodes, Nodes::Cluster { .. })
    }

    /// The URL of node `addr` (`host:port`): the configured URL (or first seed) with its
    /// scheme, credentials and options, and this address.
    pub fn node_url(&self, addr: &str) -> String {
        match &self.nodes {
            Nodes::Standalone { url } => with_address(url, addr),
            Nodes::Cluster { seeds } => {
                with_address(seeds.first().map_or("redis://", String::as_str), addr)
            }
        }
    }

    /// The `host:port` of the standalone server (its URL's address).
    pub fn standalone_addr(&self) -> Option<String> {
        match &self.nodes {
            Nodes::Standalone { url } => Some(address_of(url).to_owned()),
            Nodes::Cluster { .. } => None,
        }
    }

    /// A client of the standalone server, or of the first seed.
    pub fn client(&self) -> redis::RedisResult<redis::Client> {
        match &self.nodes {
            Nodes::Standalone { url } => self.client_for_url(url),
            Nodes::Cluster { seeds } => {
                self.client_for_url(seeds.first().map_or("redis://", String::as_str))
            }
        }
    }

    /// A client of node `addr` (`host:port`), logged in as every node is.
    pub fn node_client(&self, addr: &str) -> redis::RedisResult<redis::Client> {
        self.client_for_url(&self.node_url(addr))
    }

    fn client_for_url(&self, url: &str) -> redis::RedisResult<redis::Client> {
        use redis::IntoConnectionInfo;
        let mut info = url.into_connection_info()?;
        if let Some(u) = &self.access.username {
            info.redis.username = Some(u.clone());
        }
        if let Some(p) = &self.access.password {
            info.redis.password = Some(p.clone());
        }
        match (&info.addr, &self.access.tls) {
            (redis::ConnectionAddr::TcpTls { .. }, Some(certs)) => {
                redis::Client::build_with_tls(info, certs.clone())
            }
            _ => redis::Client::open(info),
        }
    }
}

/// The `host:port` part of a `scheme://[user:pass@]host:port[/db][?opts]` URL.
pub fn address_of(url: &str) -> &str {
    let rest = url.split_once("://").map_or(url, |(_, r)| r);
    let rest = rest.rsplit_once('@').map_or(rest, |(_, r)| r);
    rest.split(['/', '?']).next().unwrap_or(rest)
}

/// `url` with its `host:port` replaced by `addr`.
fn with_address(url: &str, addr: &str) -> String {
    let (scheme, rest) = url.split_once("://").unwrap_or(("redis", url));
    let (auth, rest) = match rest.rsplit_once('@') {
        Some((a, r)) => (format!("{a}@"), r),
        None => (String::new(), rest),
    };
    let tail = rest.find(['/', '?']).map_or("/", |i| &rest[i..]);
    format!("{scheme}://{auth}{addr}{tail}")
}

/// The cluster slot of an activity: the slot of its id, which is its keys' hash tag.
pub fn slot_of(activity: &ActivityId) -> u16 {
    redis::cluster_routing::get_slot(activity.as_str().as_bytes())
}

/// One shard: a primary, its replicas, the slot ranges it serves.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Shard {
    /// `host:port` of the primary.
    pub primary: String,
    /// The primary's cluster node id (empty for a standalone server).
    pub id: String,
    /// `host:port` of each replica the cluster knows for it (failed ones excluded).
    pub replicas: Vec<String>,
    /// Inclusive slot ranges; a standalone server serves all of them.
    pub slots: Vec<(u16, u16)>,
    /// The cluster suspects or declared the primary down (`fail?` / `fail`).
    pub failing: bool,
}

/// The layout of the configured Redis.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Topology {
    pub cluster: bool,
    /// Primaries that serve slots (a standalone server is one shard with every slot).
    pub shards: Vec<Shard>,
}

impl Topology {
    /// One server holding everything.
    pub fn standalone(addr: &str) -> Self {
        Self {
            cluster: false,
            shards: vec![Shard {
                primary: addr.to_owned(),
                slots: vec![(0, 16383)],
                ..Shard::default()
            }],
        }
    }

    /// Parses `CLUSTER NODES`: primaries with their slots, and their replicas. Nodes marked
    /// `fail`, `handshake` or `noaddr` are left out (a `fail` primary is no shard's primary);
    /// a `fail?` primary stays (it still owns its slots until the cluster fails it over), with
    /// `failing` set. Migration markers (`[slot->-id]`, `[slot-<-id]`) are not ranges.
    pub fn parse_cluster_nodes(text: &str) -> Self {
        struct Line<'a> {
            id: &'a str,
            addr: &'a str,
            flags: Vec<&'a str>,
            primary_of: &'a str,
            slots: Vec<(u16, u16)>,
        }
        let lines: Vec<Line> = text
            .lines()
            .filter_map(|l| {
                let f: Vec<&str> = l.split_whitespace().collect();
                if f.len() < 8 {
                    return None;
                }
                // ip:port@cport[,hostname]
                let addr = f[1].split(['@', ',']).next().unwrap_or("");
                let slots = f[8..]
                    .iter()
                    .filter(|s| !s.starts_with('['))
                    .filter_map(|s| match s.split_once('-') {
                        Some((a, b)) => Some((a.parse().ok()?, b.parse().ok()?)),
                        None => s.parse().ok().map(|n| (n, n)),
                    })
                    .collect();
                Some(Line {
                    id: f[0],
                    addr,
                    flags: f[2].split(',').collect(),
                    primary_of: f[3],
                    slots,
                })
            })
            .collect();
        let gone = |l: &Line| {
            l.addr.is_empty()
                || l.addr.starts_with(':')
                || l.flags
                    .iter()
                    .any(|f| matches!(*f, "fail" | "handshake" | "noaddr"))
        };
        let mut shards: BTreeMap<&str, Shard> = BTreeMap::new();
        for l in &lines {
            if l.flags.contains(&"master") && !gone(l) && !l.slots.is_empty() {
                let mut slots = l.slots.clone();
                slots.sort_unstable();
                shards.insert(
                    l.id,
                    Shard {
                        primary: l.addr.to_owned(),
                        id: l.id.to_owned(),
                        replicas: Vec::new(),
                        slots,
                        failing: l.flags.contains(&"fail?"),
                    },
                );
            }
        }
        for l in &lines {
            if l.flags.contains(&"slave") && !gone(l) {
                if let Some(s) = shards.get_mut(l.primary_of) {
                    s.replicas.push(l.addr.to_owned());
                }
            }
        }
        let mut shards: Vec<Shard> = shards.into_values().collect();
        for s in &mut shards {
            s.replicas.sort();
        }
        shards.sort_by_key(|s| s.slots.first().copied());
        Self {
            cluster: true,
            shards,
        }
    }

    /// The shard serving `slot`.
    pub fn shard_for_slot(&self, slot: u16) -> Option<&Shard> {
        self.shards
            .iter()
            .find(|s| s.slots.iter().any(|(a, b)| (*a..=*b).contains(&slot)))
    }

    /// The primary holding `activity` (`host:port`).
    pub fn primary_for(&self, activity: &ActivityId) -> Option<&str> {
        if !self.cluster {
            return self.shards.first().map(|s| s.primary.as_str());
        }
        self.shard_for_slot(slot_of(activity))
            .map(|s| s.primary.as_str())
    }

    /// Every primary's `host:port`.
    pub fn primaries(&self) -> Vec<String> {
        self.shards.iter().map(|s| s.primary.clone()).collect()
    }
}

/// One replica as its primary reports it (`INFO replication`'s `slaveN:` lines).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ReplicaState {
    /// `host:port`.
    pub addr: String,
    /// `online` once the initial sync is done (`wait_bgsave`, `send_bulk` before).
    pub state: String,
    /// The replication offset the replica last acknowledged.
    pub offset: u64,
    /// Seconds since its last acknowledgement (replicas acknowledge every second).
    pub lag_secs: u64,
}

impl ReplicaState {
    /// Online and acknowledging (last ack at most 2 s ago): a replica `WAIT` can count.
    pub fn acking(&self) -> bool {
        self.state == "online" && self.lag_secs <= 2
    }
}

/// A primary's replication state (`INFO replication`).
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Replication {
    /// `master` or `slave` (what the node says it is).
    pub role: String,
    /// The primary's replication offset (`master_repl_offset`).
    pub offset: u64,
    pub replicas: Vec<ReplicaState>,
}

impl Replication {
    /// Replicas online and acknowledging.
    pub fn acking(&self) -> usize {
        self.replicas.iter().filter(|r| r.acking()).count()
    }

    /// Bytes of the primary's replication stream a replica has not acknowledged yet.
    pub fn lag_bytes(&self, replica: &ReplicaState) -> u64 {
        self.offset.saturating_sub(replica.offset)
    }

    /// Parses the text of `INFO replication`.
    pub fn parse(text: &str) -> Self {
        let mut out = Replication::default();
        for line in text.lines().map(str::trim) {
            let Some((k, v)) = line.split_once(':') else {
                continue;
            };
            match k {
                "role" => out.role = v.to_owned(),
                "master_repl_offset" => out.offset = v.parse().unwrap_or(0),
                k if k.starts_with("slave") && k[5..].chars().all(|c| c.is_ascii_digit()) => {
                    // ip=127.0.0.1,port=7004,state=online,offset=123,lag=0
                    let fields: BTreeMap<&str, &str> =
                        v.split(',').filter_map(|kv| kv.split_once('=')).collect();
                    let (Some(ip), Some(port)) = (fields.get("ip"), fields.get("port")) else {
                        continue;
                    };
                    out.replicas.push(ReplicaState {
                        addr: format!("{ip}:{port}"),
                        state: fields.get("state").copied().unwrap_or("").to_owned(),
                        offset: fields
                            .get("offset")
                            .and_then(|o| o.parse().ok())
                            .unwrap_or(0),
                        lag_secs: fields.get("lag").and_then(|o| o.parse().ok()).unwrap_or(0),
                    });
                }
                _ => {}
            }
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const NODES: &str = "\
07c37dfeb235213a872192d90877d0cd55635b91 127.0.0.1:30004@31004,host4 slave e7d1eecce10fd6bb5eb35b9f99a514335d9ba9ca 0 1426238317239 4 connected
67ed2db8d677e59ec4a4cefb06858cf2a1a89fa1 127.0.0.1:30002@31002 master - 0 1426238316232 2 connected 5461-10922
292f8b365bb7edb5e285caf0b7e6ddc7265d2f4f 127.0.0.1:30003@31003 master - 0 1426238318243 3 connected 10923-16383 [10922-<-67ed2db8d677e59ec4a4cefb06858cf2a1a89fa1]
6ec23923021cf3ffec47632106199cb7f496ce01 127.0.0.1:30005@31005 slave 67ed2db8d677e59ec4a4cefb06858cf2a1a89fa1 0 1426238316232 5 connected
824fe116063bc5fcf9f4ffd895bc17aee7731ac3 127.0.0.1:30006@31006 slave,fail 292f8b365bb7edb5e285caf0b7e6ddc7265d2f4f 0 1426238317741 6 disconnected
e7d1eecce10fd6bb5eb35b9f99a514335d9ba9ca 127.0.0.1:30001@31001 myself,master - 0 0 1 connected 0-5460
aaaaeecce10fd6bb5eb35b9f99a514335d9ba9ca 127.0.0.1:30007@31007 master,fail - 0 0 1 disconnected
";

    #[test]
    fn cluster_nodes_parse_into_shards() {
        let t = Topology::parse_cluster_nodes(NODES);
        assert!(t.cluster);
        assert_eq!(
            t.primaries(),
            vec!["127.0.0.1:30001", "127.0.0.1:30002", "127.0.0.1:30003"]
        );
        assert_eq!(t.shards[0].replicas, vec!["127.0.0.1:30004"]);
        assert_eq!(t.shards[1].replicas, vec!["127.0.0.1:30005"]);
        assert!(
            t.shards[2].replicas.is_empty(),
            "a failed replica is not counted"
        );
        assert_eq!(
            t.shards[2].slots,
            vec![(10923, 16383)],
            "markers are no ranges"
        );
        assert_eq!(
            t.shard_for_slot(5461).map(|s| s.primary.as_str()),
            Some("127.0.0.1:30002")
        );
        assert_eq!(t.shard_for_slot(16383).map(|s| s.id.len()), Some(40));
        let a = ActivityId::parse("42").unwrap();
        // CLUSTER KEYSLOT 42 = 8000
        assert_eq!(slot_of(&a), 8000);
        assert_eq!(t.primary_for(&a), Some("127.0.0.1:30002"));
    }

    #[test]
    fn standalone_is_one_shard_with_every_slot() {
        let t = Topology::standalone("127.0.0.1:6379");
        let a = ActivityId::parse("anything").unwrap();
        assert_eq!(t.primary_for(&a), Some("127.0.0.1:6379"));
        assert_eq!(t.shard_for_slot(16383).map(|s| s.slots.len()), Some(1));
    }

    #[test]
    fn targets_and_node_urls() {
        assert_eq!(
            Target::new("redis://127.0.0.1:6379/", &[]).nodes,
            Nodes::Standalone {
                url: "redis://127.0.0.1:6379/".into()
            }
        );
        let t = Target::new(
            "rediss://gw:secret@redis.example:6380/0",
            &[
                "10.0.0.1:7000".into(),
                " ".into(),
                "redis://10.0.0.2:7001/".into(),
            ],
        );
        assert_eq!(
            t.nodes,
            Nodes::Cluster {
                seeds: vec![
                    "rediss://gw:secret@10.0.0.1:7000/0".into(),
                    "redis://10.0.0.2:7001/".into()
                ]
            }
        );
        assert_eq!(
            t.node_url("10.0.0.9:7005"),
            "rediss://gw:secret@10.0.0.9:7005/0"
        );
        let s = Target::new("redis://127.0.0.1:6379", &[]);
        assert_eq!(s.node_url("127.0.0.1:7000"), "redis://127.0.0.1:7000/");
        assert_eq!(s.standalone_addr().as_deref(), Some("127.0.0.1:6379"));
        assert_eq!(
            address_of("redis://u:p@h:1/2?protocol=resp3"),
            "h:1",
            "credentials and options are not the address"
        );
    }

    #[test]
    fn replication_info_parses() {
        let r = Replication::parse(
            "# Replication\r\nrole:master\r\nconnected_slaves:2\r\n\
             slave0:ip=127.0.0.1,port=7004,state=online,offset=1200,lag=0\r\n\
             slave1:ip=127.0.0.1,port=7005,state=wait_bgsave,offset=0,lag=9\r\n\
             master_failover_state:no-failover\r\nmaster_repl_offset:1500\r\n",
        );
        assert_eq!(r.role, "master");
        assert_eq!(r.offset, 1500);
        assert_eq!(r.replicas.len(), 2);
        assert_eq!(r.acking(), 1);
        assert_eq!(r.lag_bytes(&r.replicas[0]), 300);
        assert_eq!(r.replicas[1].addr, "127.0.0.1:7005");
    }
}
