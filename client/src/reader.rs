//! A connection of its own for the order worker's `XREADGROUP`, whose replies are decoded by
//! `redis-protocol` (nom, zero-copy ranges into the read buffer) instead of redis-rs.
//!
//! Why: a batch is one reply of thousands of values (an entry is its id and six field/value
//! pairs), and redis-rs decodes every value through `combine`'s resumable parser state.
//! Profiled in the drain benchmark, that decoding was about half of the worker's CPU per
//! order, and every microsecond the worker spends is one the database (on the same cores)
//! does not get. Here a reply is decoded once nothing more waits on the socket, and a reply
//! of the usual shape becomes entries straight from the read buffer (the entries
//! [`streams::read_new`] would make of it; a property test holds the two together).
//!
//! Any other shape goes the old way: an error reply is handed to redis-rs' own parser, so
//! its [`RedisError`] (code `NOGROUP`, `MOVED`, `NOPERM`, ...) is exactly what redis-rs
//! would return, and other types become redis-rs' [`Value`] for `streams`' parser. A connection that failed, timed out or was left with a command in flight
//! (the caller stopped waiting) is closed; the next read opens a new one (login and `SELECT`
//! as the URL says). Nodes reached over TLS or a Unix socket have no reader: their
//! consumers read through redis-rs ([`StreamReader::for_node`] says `None`).

use crate::streams::{self, RawEntry};
use crate::topology::Target;
use bytes::{Buf, BytesMut};
use redis::{ConnectionAddr, ErrorKind, RedisConnectionInfo, RedisError, Value};
use redis_protocol::resp2::decode::decode_range;
use redis_protocol::resp2::types::RangeFrame;
use seckill_core::ActivityId;
use std::time::Duration;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

/// The read buffer's growth step; a batch of 1,000 entries is a reply of ~170 KB.
const READ_CHUNK: usize = 64 * 1024;

/// `XREADGROUP` over a plain TCP connection of its own to one node.
pub struct StreamReader {
    host: String,
    port: u16,
    login: RedisConnectionInfo,
    /// Bounds connecting, each handshake reply, and a read beyond its `BLOCK` time.
    timeout: Duration,
    open: Option<Open>,
}

struct Open {
    stream: TcpStream,
    buf: BytesMut,
}

impl StreamReader {
    /// A reader of node `addr` (`host:port`), logged in as `target` logs in to every node;
    /// `None` when the node is reached over TLS or a Unix socket, or its URL does not parse.
    pub fn for_node(target: &Target, addr: &str, timeout: Duration) -> Option<Self> {
        let client = target.node_client(addr).ok()?;
        let info = client.get_connection_info();
        match &info.addr {
            ConnectionAddr::Tcp(host, port) => Some(Self {
                host: host.clone(),
                port: *port,
                login: info.redis.clone(),
                timeout,
                open: None,
            }),
            _ => None,
        }
    }

    /// The new entries of `streams` for `consumer` of `group`: [`streams::read_new`]'s
    /// command and result, read over this reader's connection.
    pub async fn read_new(
        &mut self,
        group: &str,
        consumer: &str,
        streams: &[(String, ActivityId)],
        count: usize,
        block_ms: u64,
    ) -> Result<Vec<RawEntry>, RedisError> {
        if streams.is_empty() {
            return Ok(Vec::new());
        }
        let cmd = streams::read_new_cmd(group, consumer, streams, count, block_ms);
        let bound = Duration::from_millis(block_ms) + self.timeout;
        self.query(&cmd.get_packed_command(), bound, |raw, frame| {
            read_reply_entries(raw, frame, streams)
        })
        .await
    }

    /// One command, its reply handed to `take` (raw bytes and their frame), within `bound`.
    /// The connection is out of `self` while the command is in flight and comes back only
    /// after a whole reply was taken: a failure, a timeout or a caller that stops waiting
    /// (the future dropped) closes it, so no later command can read this one's reply.
    async fn query<T>(
        &mut self,
        packed: &[u8],
        bound: Duration,
        take: impl FnOnce(&[u8], &RangeFrame) -> Result<T, RedisError>,
    ) -> Result<T, RedisError> {
        let round_trip = async {
            let mut open = match self.open.take() {
                Some(open) => open,
                None => self.connect().await?,
            };
            let reply = open.round_trip(packed, take).await?;
            Ok((open, reply))
        };
        match tokio::time::timeout(bound, round_trip).await {
            Ok(Ok((open, reply))) => {
                self.open = Some(open);
                reply
            }
            Ok(Err(e)) => Err(e),
            Err(_) => Err(timed_out(bound)),
        }
    }

    async fn connect(&self) -> Result<Open, RedisError> {
        let stream = tokio::time::timeout(
            self.timeout,
            TcpStream::connect((self.host.as_str(), self.port)),
        )
        .await
        .map_err(|_| timed_out(self.timeout))??;
        stream.set_nodelay(true)?;
        let mut open = Open {
            stream,
            buf: BytesMut::with_capacity(READ_CHUNK),
        };
        for cmd in handshake(&self.login) {
            let packed = cmd.get_packed_command();
            tokio::time::timeout(self.timeout, open.round_trip(&packed, reply_value))
                .await
                .map_err(|_| timed_out(self.timeout))???;
        }
        Ok(open)
    }
}

/// The commands that log a new connection in as `login` says (what redis-rs sends for a
/// RESP2 connection: `AUTH`, then `SELECT` of a database other than 0).
fn handshake(login: &RedisConnectionInfo) -> Vec<redis::Cmd> {
    let mut out = Vec::new();
    if let Some(password) = &login.password {
        let mut auth = redis::cmd("AUTH");
        if let Some(user) = &login.username {
            auth.arg(user);
        }
        auth.arg(password);
        out.push(auth);
    }
    if login.db != 0 {
        let mut select = redis::cmd("SELECT");
        select.arg(login.db);
        out.push(select);
    }
    out
}

fn timed_out(bound: Duration) -> RedisError {
    std::io::Error::new(
        std::io::ErrorKind::TimedOut,
        format!("redis did not answer within {bound:?}"),
    )
    .into()
}

impl Open {
    /// Sends `packed` and hands its reply to `take`. The reply is decoded once nothing more
    /// is waiting on the socket: redis writes a large reply 64 KB per event loop turn, and
    /// every decode of an incomplete reply is work thrown away.
    /// `Err` when the connection failed; `Ok(Err)` for an error reply (the connection is
    /// fine).
    async fn round_trip<T>(
        &mut self,
        packed: &[u8],
        take: impl FnOnce(&[u8], &RangeFrame) -> Result<T, RedisError>,
    ) -> Result<Result<T, RedisError>, RedisError> {
        self.stream.write_all(packed).await?;
        loop {
            if let Some((frame, used)) = decode(&self.buf)? {
                let result = take(&self.buf[..used], &frame);
                self.buf.advance(used);
                return Ok(result);
            }
            self.buf.reserve(READ_CHUNK);
            if self.stream.read_buf(&mut self.buf).await? == 0 {
                return Err(std::io::Error::from(std::io::ErrorKind::UnexpectedEof).into());
            }
            loop {
                self.buf.reserve(READ_CHUNK);
                match self.stream.try_read_buf(&mut self.buf) {
                    Ok(0) => break,
                    Ok(_) => {}
                    Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => break,
                    Err(e) => return Err(e.into()),
                }
            }
        }
    }
}

/// The first complete reply in `buf` and the bytes it used; `None` while incomplete. A
/// malformed reply fails the read (and closes the connection).
fn decode(buf: &[u8]) -> Result<Option<(RangeFrame, usize)>, RedisError> {
    decode_range(buf).map_err(|e| {
        RedisError::from((
            ErrorKind::ResponseError,
            "malformed reply from redis",
            e.to_string(),
        ))
    })
}

/// A whole reply (`raw`, decoded as `frame`) as redis-rs' [`Value`]; an error reply (at any
/// depth) as the [`RedisError`] redis-rs' own parser makes of it.
fn reply_value(raw: &[u8], frame: &RangeFrame) -> Result<Value, RedisError> {
    match to_value(raw, frame) {
        Some(v) => Ok(v),
        None => redis::parse_redis_value(raw).and_then(Value::extract_error),
    }
}

/// The entries of an `XREADGROUP` reply (`raw`, decoded as `frame`) of `streams`.
fn read_reply_entries(
    raw: &[u8],
    frame: &RangeFrame,
    streams: &[(String, ActivityId)],
) -> Result<Vec<RawEntry>, RedisError> {
    let mut out = Vec::new();
    if !entries_of(raw, frame, streams, &mut out) {
        // Not the reply's usual shape (an error, or other types): as redis-rs' replies are.
        out.clear();
        streams::parse_read_reply(reply_value(raw, frame)?, streams, &mut out);
    }
    Ok(out)
}

/// The entries of an `XREADGROUP` reply of the usual shape (nil, or an array of `[key,
/// [[id, [field, value, ...]], ...]]` of bulk strings), straight from the read buffer into
/// `out`, as [`streams::parse_read_reply`] would make them; `false` for any other shape.
fn entries_of(
    raw: &[u8],
    frame: &RangeFrame,
    streams: &[(String, ActivityId)],
    out: &mut Vec<RawEntry>,
) -> bool {
    let bulk = |f: &RangeFrame| match f {
        RangeFrame::BulkString((start, end)) => raw.get(*start..*end),
        _ => None,
    };
    let per_stream = match frame {
        RangeFrame::Null => return true,
        RangeFrame::Array(items) => items,
        _ => return false,
    };
    for pair in per_stream {
        let RangeFrame::Array(pair) = pair else {
            return false;
        };
        let [key, RangeFrame::Array(entries)] = pair.as_slice() else {
            return false;
        };
        let Some(key) = bulk(key) else {
            return false;
        };
        let key = String::from_utf8_lossy(key);
        let Some((_, activity)) = streams.iter().find(|(k, _)| *k == key) else {
            continue;
        };
        out.reserve(entries.len());
        for entry in entries {
            let RangeFrame::Array(entry) = entry else {
                return false;
            };
            let [id, RangeFrame::Array(flat)] = entry.as_slice() else {
                return false;
            };
            let Some(id) = bulk(id) else {
                return false;
            };
            let mut fields = Vec::with_capacity(flat.len() / 2);
            for kv in flat.chunks_exact(2) {
                let (Some(k), Some(v)) = (bulk(&kv[0]), bulk(&kv[1])) else {
                    return false;
                };
                fields.push((k.to_vec(), v.to_vec()));
            }
            out.push(RawEntry {
                activity: activity.clone(),
                id: String::from_utf8_lossy(id).into_owned(),
                fields,
                deliveries: 1,
            });
        }
    }
    true
}

/// The reply as redis-rs' [`Value`]; `None` when it holds an error reply.
fn to_value(buf: &[u8], frame: &RangeFrame) -> Option<Value> {
    Some(match frame {
        RangeFrame::BulkString((start, end)) => Value::BulkString(buf.get(*start..*end)?.to_vec()),
        RangeFrame::Array(items) => Value::Array(
            items
                .iter()
                .map(|f| to_value(buf, f))
                .collect::<Option<Vec<_>>>()?,
        ),
        RangeFrame::Integer(i) => Value::Int(*i),
        RangeFrame::SimpleString((start, end)) => {
            let s = buf.get(*start..*end)?;
            if s == b"OK" {
                Value::Okay
            } else {
                Value::SimpleString(String::from_utf8_lossy(s).into_owned())
            }
        }
        RangeFrame::Null => Value::Nil,
        RangeFrame::Error(_) => return None,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    /// RESP2 encoding of a reply tree, as a server writes it.
    fn encode(v: &Value, out: &mut Vec<u8>) {
        match v {
            Value::Nil => out.extend_from_slice(b"$-1\r\n"),
            Value::Int(i) => out.extend_from_slice(format!(":{i}\r\n").as_bytes()),
            Value::BulkString(b) => {
                out.extend_from_slice(format!("${}\r\n", b.len()).as_bytes());
                out.extend_from_slice(b);
                out.extend_from_slice(b"\r\n");
            }
            Value::Array(items) => {
                out.extend_from_slice(format!("*{}\r\n", items.len()).as_bytes());
                for i in items {
                    encode(i, out);
                }
            }
            Value::SimpleString(s) => out.extend_from_slice(format!("+{s}\r\n").as_bytes()),
            Value::Okay => out.extend_from_slice(b"+OK\r\n"),
            other => unreachable!("not generated: {other:?}"),
        }
    }

    fn reply() -> impl Strategy<Value = Value> {
        let leaf = prop_oneof![
            Just(Value::Nil),
            any::<i64>().prop_map(Value::Int),
            proptest::collection::vec(any::<u8>(), 0..40).prop_map(Value::BulkString),
            "[a-zA-Z0-9 ]{0,20}".prop_map(|s| if s == "OK" {
                Value::Okay
            } else {
                Value::SimpleString(s)
            }),
        ];
        leaf.prop_recursive(4, 64, 8, |inner| {
            proptest::collection::vec(inner, 0..8).prop_map(Value::Array)
        })
    }

    /// A whole reply through [`decode`] and [`reply_value`].
    fn value_of(raw: &[u8]) -> Result<(Value, usize), RedisError> {
        let (frame, used) = decode(raw)?.expect("complete");
        Ok((reply_value(&raw[..used], &frame)?, used))
    }

    fn streams() -> Vec<(String, ActivityId)> {
        ["1", "2"]
            .iter()
            .map(|a| {
                let id = ActivityId::parse(*a).expect("valid");
                (seckill_core::keys::stream(&id), id)
            })
            .collect()
    }

    /// XREADGROUP-like replies: mostly the usual shape, sometimes not (a nil or integer
    /// where a bulk string or array belongs, a stream nobody asked for).
    fn read_reply() -> impl Strategy<Value = Value> {
        let bulk = || proptest::collection::vec(any::<u8>(), 0..12).prop_map(Value::BulkString);
        let odd = prop_oneof![Just(Value::Nil), any::<i64>().prop_map(Value::Int)];
        let item = prop_oneof![8 => bulk(), 1 => odd.clone()];
        let fields = prop_oneof![
            8 => proptest::collection::vec(item.clone(), 0..13).prop_map(Value::Array),
            1 => odd.clone(),
        ];
        let entry = prop_oneof![
            8 => (item, fields).prop_map(|(id, f)| Value::Array(vec![id, f])),
            1 => odd.clone(),
        ];
        let key = prop_oneof![
            3 => Just(Value::BulkString(b"seckill:{1}:stream".to_vec())),
            3 => Just(Value::BulkString(b"seckill:{2}:stream".to_vec())),
            1 => Just(Value::BulkString(b"seckill:{9}:stream".to_vec())),
            1 => odd,
        ];
        let pair = (key, proptest::collection::vec(entry, 0..6))
            .prop_map(|(k, e)| Value::Array(vec![k, Value::Array(e)]));
        prop_oneof![
            1 => Just(Value::Nil),
            8 => proptest::collection::vec(pair, 0..3).prop_map(Value::Array),
        ]
    }

    proptest! {
        /// Any reply decodes to what redis-rs' parser makes of it, whole or cut anywhere
        /// (then: not yet).
        #[test]
        fn decodes_as_redis_rs_does(v in reply(), cut in any::<prop::sample::Index>()) {
            let mut raw = Vec::new();
            encode(&v, &mut raw);
            let (ours, used) = value_of(&raw).expect("no error");
            prop_assert_eq!(used, raw.len());
            prop_assert_eq!(ours, redis::parse_redis_value(&raw).expect("parses"));
            let short = cut.index(raw.len());
            prop_assert!(decode(&raw[..short]).expect("a prefix is not malformed").is_none());
        }

        /// The entries of any read reply are those `streams::read_new` finds in it.
        #[test]
        fn entries_as_read_new_finds_them(v in read_reply()) {
            let mut raw = Vec::new();
            encode(&v, &mut raw);
            let (frame, _) = decode(&raw).expect("well-formed").expect("complete");
            let ours = read_reply_entries(&raw, &frame, &streams()).expect("no error");
            let mut theirs = Vec::new();
            streams::parse_read_reply(redis::parse_redis_value(&raw).expect("parses"), &streams(), &mut theirs);
            prop_assert_eq!(ours, theirs);
        }
    }

    #[test]
    fn the_usual_reply_takes_the_direct_path() {
        let b = |s: &str| Value::BulkString(s.as_bytes().to_vec());
        let reply = Value::Array(vec![Value::Array(vec![
            b("seckill:{2}:stream"),
            Value::Array(vec![Value::Array(vec![
                b("1700000000000-0"),
                Value::Array(vec![b("user"), b("u1"), b("qty"), b("1")]),
            ])]),
        ])]);
        let mut raw = Vec::new();
        encode(&reply, &mut raw);
        let (frame, _) = decode(&raw).expect("well-formed").expect("complete");
        let mut out = Vec::new();
        assert!(entries_of(&raw, &frame, &streams(), &mut out));
        assert_eq!(out.len(), 1);
        assert_eq!(out[0].activity.as_str(), "2");
        assert_eq!(out[0].id, "1700000000000-0");
        assert_eq!(out[0].fields[1], (b"qty".to_vec(), b"1".to_vec()));
    }

    #[test]
    fn an_error_reply_is_redis_rs_error_with_its_code() {
        let raw = b"-NOGROUP No such key 'k' or consumer group 'g'\r\n+OK\r\n";
        let (frame, used) = decode(raw).expect("well-formed").expect("complete");
        assert_eq!(used, raw.len() - 5, "the next reply is left in the buffer");
        let e = read_reply_entries(&raw[..used], &frame, &streams()).expect_err("an error");
        assert_eq!(e.code(), Some("NOGROUP"));
    }

    #[test]
    fn an_error_inside_an_array_fails_the_reply() {
        let raw = b"*2\r\n:1\r\n-MOVED 3999 127.0.0.1:6381\r\n";
        let e = value_of(raw).expect_err("an error inside");
        assert_eq!(e.code(), Some("MOVED"));
    }

    #[test]
    fn garbage_is_a_response_error() {
        let e = decode(b"?what\r\n").expect_err("malformed");
        assert_eq!(e.kind(), ErrorKind::ResponseError);
    }

    #[test]
    fn handshake_logs_in_as_the_url_says() {
        let packed = |login: &RedisConnectionInfo| {
            handshake(login)
                .iter()
                .map(|c| String::from_utf8_lossy(&c.get_packed_command()).into_owned())
                .collect::<Vec<_>>()
        };
        assert!(packed(&RedisConnectionInfo::default()).is_empty());
        let login = RedisConnectionInfo {
            db: 2,
            username: Some("worker".into()),
            password: Some("s3cret".into()),
            ..Default::default()
        };
        assert_eq!(
            packed(&login),
            [
                "*3\r\n$4\r\nAUTH\r\n$6\r\nworker\r\n$6\r\ns3cret\r\n",
                "*2\r\n$6\r\nSELECT\r\n$1\r\n2\r\n"
            ]
        );
    }
}
