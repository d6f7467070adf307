//! Every Redis key and script of cluster mode, behind [`Store`] (a cheap `Clone`: one
//! multiplexed, auto-reconnecting connection shared by the cluster actor and the HTTP handlers).
//!
//! Keys (all under the hash tag `{lkr}:`, so a script's keys share one slot):
//! - `{lkr}:node:<id>`: a node's [`NodeInfo`] (heartbeat), with the lease as TTL; `{lkr}:nodes`
//!   is the set of node ids ever seen (an id whose key is gone is a dead node).
//! - `{lkr}:claim:<len(room)>:<room><identity>`: the [`Claim`] on one participant (`SET NX PX`
//!   in a script that also takes its fencing token from `INCR {lkr}:fence`), renewed by its
//!   owner. At most one live recording per participant cluster-wide.
//! - `{lkr}:rec:<id>`: a recording's [`Stored`] JSON, written by its owner only while its
//!   fencing token is not older than the stored one; `{lkr}:recs` orders all of them by start
//!   time, `{lkr}:ended` the ended ones by end time (for `HISTORY_MAX_RECORDINGS`), and
//!   `{lkr}:live` holds the live ones (where a node looks for a dead node's recordings); an
//!   ended recording's key expires after `HISTORY_MAX_AGE`.

use std::time::Duration;

use redis::aio::{ConnectionManager, ConnectionManagerConfig};
use redis::{AsyncCommands, Script};
use serde::{Deserialize, Serialize};

use crate::ids::{Identity, RecordingId, RoomName};
use crate::recording::{RecordingInfo, RecordingSpec};

/// The key prefix (a hash tag: one slot for every key).
const P: &str = "{lkr}:";
/// How long one Redis call may take before it counts as an outage.
const CALL_TIMEOUT: Duration = Duration::from_millis(1500);
/// Keys read per `MGET` when listing.
const MGET_CHUNK: usize = 500;

/// A Redis failure, in words (`Redis unreachable at redis://...: ...`).
#[derive(Debug, Clone, thiserror::Error, PartialEq, Eq)]
#[error("Redis unavailable ({url}): {why}")]
pub struct StoreError {
    /// `REDIS_URL` without its password.
    pub url: String,
    /// What went wrong.
    pub why: String,
}

/// A claim on one participant: who holds it, for which recording, with which fencing token.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Claim {
    /// The owning node.
    pub node: String,
    /// The recording.
    pub id: RecordingId,
    /// Its fencing token (grows with every claim, cluster-wide).
    pub fence: u64,
    /// The value exactly as Redis holds it (renewal and release compare it byte for byte).
    #[serde(skip)]
    pub raw: String,
}

impl Claim {
    fn parse(raw: String) -> Option<Claim> {
        let c: Claim = serde_json::from_str(&raw).ok()?;
        Some(Claim { raw, ..c })
    }
}

/// What a claim attempt found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Claimed {
    /// Ours now, with this fencing token (the recording's JSON is written with it).
    Won(Claim),
    /// Somebody holds it (maybe us, for another recording id).
    Held(Claim),
}

/// What a renewal found.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Renewed {
    /// Still ours, renewed.
    Kept,
    /// It had vanished (Redis restarted empty, or it expired unclaimed) and is ours again: the
    /// recording's JSON may be gone too and is to be written again.
    Retaken,
    /// Another node holds it.
    Lost,
}

/// A recording as Redis keeps it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Stored {
    /// The fencing token of the node that wrote it.
    pub fence: u64,
    /// The node that wrote it (its owner while it is live).
    pub node: String,
    /// When the start was requested, ms since the UNIX epoch (the list order).
    pub started_ms: u64,
    /// The recording as the API shows it.
    pub info: RecordingInfo,
    /// What was asked for (a node that takes the recording over records the same).
    #[serde(default)]
    pub spec: Option<RecordingSpec>,
}

/// A node's heartbeat: where it is and how busy.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct NodeInfo {
    /// `NODE_ID`.
    pub id: String,
    /// `NODE_ADVERTISE_URL`.
    pub url: String,
    /// Recordings it holds a claim for.
    pub live: usize,
    /// Its `MAX_CONCURRENT_RECORDINGS` (`None`: no limit).
    pub max: Option<usize>,
    /// When it wrote this, ms since the UNIX epoch.
    pub at_ms: u64,
}

/// Takes a participant's claim, its fencing token and writes the pending recording, in one step:
/// `{1, claim}` when won, `{0, holder's claim}` when held.
const CLAIM: &str = r#"
local cur = redis.call('GET', KEYS[1])
if cur then return {0, cur} end
local fence = redis.call('INCR', KEYS[2])
local claim = '{"node":' .. cjson.encode(ARGV[1]) .. ',"id":' .. cjson.encode(ARGV[2]) .. ',"fence":' .. fence .. '}'
redis.call('SET', KEYS[1], claim, 'PX', ARGV[3])
redis.call('SET', KEYS[3], '{"fence":' .. fence .. ',"node":' .. cjson.encode(ARGV[1]) .. ',"started_ms":' .. ARGV[5] .. ',"info":' .. ARGV[4] .. ',"spec":' .. ARGV[6] .. '}')
redis.call('ZADD', KEYS[4], ARGV[5], ARGV[2])
redis.call('SADD', KEYS[5], ARGV[2])
return {1, claim}
"#;

/// Renews a claim that is ours (1), takes it again when it is gone (2: Redis restarted empty,
/// or it expired and nobody took it), or reports it lost (0).
const RENEW: &str = r#"
local cur = redis.call('GET', KEYS[1])
if cur == ARGV[1] then redis.call('PEXPIRE', KEYS[1], ARGV[2]) return 1 end
if not cur then redis.call('SET', KEYS[1], ARGV[1], 'PX', ARGV[2]) return 2 end
return 0
"#;

/// Deletes a claim if it is still ours.
const RELEASE: &str = r#"
if redis.call('GET', KEYS[1]) == ARGV[1] then return redis.call('DEL', KEYS[1]) end
return 0
"#;

/// Writes a recording unless a newer owner (a larger fencing token) wrote it: 1 written, 0 not.
const PUBLISH: &str = r#"
local cur = redis.call('GET', KEYS[1])
if cur then
  local ok, old = pcall(cjson.decode, cur)
  if ok and type(old) == 'table' and tonumber(old['fence']) and tonumber(old['fence']) > tonumber(ARGV[2]) then return 0 end
end
if tonumber(ARGV[5]) > 0 then redis.call('SET', KEYS[1], ARGV[1], 'PX', ARGV[5]) else redis.call('SET', KEYS[1], ARGV[1]) end
redis.call('ZADD', KEYS[2], ARGV[3], ARGV[4])
if tonumber(ARGV[6]) > 0 then
  redis.call('ZADD', KEYS[3], ARGV[6], ARGV[4])
  redis.call('SREM', KEYS[4], ARGV[4])
else
  redis.call('SADD', KEYS[4], ARGV[4])
  redis.call('ZREM', KEYS[3], ARGV[4])
end
return 1
"#;

/// Takes over the live recording of a node whose heartbeat is gone, once its claim has expired:
/// a new claim (fencing token from `INCR`) for this node; returns `{claim, recording}`, or
/// nil when the claim is held or the recording changed hands since it was looked at.
const TAKE: &str = r#"
if redis.call('GET', KEYS[1]) then return false end
local rec = redis.call('GET', KEYS[3])
if not rec then redis.call('SREM', KEYS[4], ARGV[2]) return false end
local ok, old = pcall(cjson.decode, rec)
if not ok or old['node'] ~= ARGV[4] then return false end
local fence = redis.call('INCR', KEYS[2])
local claim = '{"node":' .. cjson.encode(ARGV[1]) .. ',"id":' .. cjson.encode(ARGV[2]) .. ',"fence":' .. fence .. '}'
redis.call('SET', KEYS[1], claim, 'PX', ARGV[3])
return {claim, rec}
"#;

/// The cluster's Redis.
#[derive(Clone)]
pub struct Store {
    conn: ConnectionManager,
    url: String,
    lease: Duration,
}

impl Store {
    /// A lazily connecting store (the daemon starts even while Redis is down; every call then
    /// fails with a [`StoreError`] until it is back). Errors only on a URL it cannot use.
    pub fn new(url: &str, lease: Duration) -> Result<Store, String> {
        let client =
            redis::Client::open(url).map_err(|e| format!("REDIS_URL={}: {e}", super::redact(url)))?;
        let config = ConnectionManagerConfig::new()
            .set_connection_timeout(Some(CALL_TIMEOUT))
            .set_response_timeout(Some(CALL_TIMEOUT))
            .set_number_of_retries(1)
            .set_max_delay(Duration::from_millis(500));
        let conn = ConnectionManager::new_lazy_with_config(client, config)
            .map_err(|e| format!("REDIS_URL={}: {e}", super::redact(url)))?;
        Ok(Store { conn, url: super::redact(url), lease })
    }

    /// The lease of claims and heartbeats.
    pub fn lease(&self) -> Duration {
        self.lease
    }

    fn err(&self, e: impl std::fmt::Display) -> StoreError {
        StoreError { url: self.url.clone(), why: e.to_string() }
    }

    /// Runs `f` on the connection, bounded by [`CALL_TIMEOUT`] (twice: one reconnect).
    async fn run<T, F, Fut>(&self, f: F) -> Result<T, StoreError>
    where
        F: FnOnce(ConnectionManager) -> Fut,
        Fut: std::future::Future<Output = redis::RedisResult<T>>,
    {
        match tokio::time::timeout(CALL_TIMEOUT * 2, f(self.conn.clone())).await {
            Ok(Ok(v)) => Ok(v),
            Ok(Err(e)) => Err(self.err(e)),
            Err(_) => Err(self.err(format!("no answer within {:?}", CALL_TIMEOUT * 2))),
        }
    }

    /// `PING`.
    pub async fn ping(&self) -> Result<(), StoreError> {
        self.run(|mut c| async move { redis::cmd("PING").query_async::<String>(&mut c).await })
            .await
            .map(|_| ())
    }

    /// Claims `(room, identity)` for the pending recording `info` (and writes it), or finds who
    /// holds the claim.
    pub async fn claim(
        &self,
        node: &str,
        info: &RecordingInfo,
        spec: &RecordingSpec,
    ) -> Result<Claimed, StoreError> {
        let json = serde_json::to_string(info).map_err(|e| self.err(e))?;
        let spec_json = serde_json::to_string(spec).map_err(|e| self.err(e))?;
        let started_ms = spec.started_unix_ms;
        let key = claim_key(&info.room, &info.participant);
        let lease_ms = self.lease.as_millis() as u64;
        let (won, claim): (u8, String) = self
            .run(|mut c| async move {
                Script::new(CLAIM)
                    .key(key)
                    .key(format!("{P}fence"))
                    .key(rec_key(&info.id))
                    .key(format!("{P}recs"))
                    .key(format!("{P}live"))
                    .arg(node)
                    .arg(info.id.as_str())
                    .arg(lease_ms)
                    .arg(json)
                    .arg(started_ms)
                    .arg(spec_json)
                    .invoke_async(&mut c)
                    .await
            })
            .await?;
        let claim =
            Claim::parse(claim).ok_or_else(|| self.err("a claim in a format this version does not read"))?;
        Ok(if won == 1 { Claimed::Won(claim) } else { Claimed::Held(claim) })
    }

    /// Who holds the claim on `(room, identity)`.
    pub async fn holder(&self, room: &RoomName, identity: &Identity) -> Result<Option<Claim>, StoreError> {
        let key = claim_key(room, identity);
        let v: Option<String> = self.run(|mut c| async move { c.get(key).await }).await?;
        Ok(v.and_then(Claim::parse))
    }

    /// Renews our claim.
    pub async fn renew(
        &self,
        room: &RoomName,
        identity: &Identity,
        claim: &Claim,
    ) -> Result<Renewed, StoreError> {
        let key = claim_key(room, identity);
        let value = claim.raw.clone();
        let lease_ms = self.lease.as_millis() as u64;
        let r: u8 = self
            .run(|mut c| async move {
                Script::new(RENEW).key(key).arg(value).arg(lease_ms).invoke_async(&mut c).await
            })
            .await?;
        Ok(match r {
            1 => Renewed::Kept,
            2 => Renewed::Retaken,
            _ => Renewed::Lost,
        })
    }

    /// Gives our claim up (the recording ended).
    pub async fn release(
        &self,
        room: &RoomName,
        identity: &Identity,
        claim: &Claim,
    ) -> Result<(), StoreError> {
        let key = claim_key(room, identity);
        let value = claim.raw.clone();
        self.run(
            |mut c| async move { Script::new(RELEASE).key(key).arg(value).invoke_async::<u8>(&mut c).await },
        )
        .await
        .map(|_| ())
    }

    /// Writes a recording (fenced: `Ok(false)` when a newer owner wrote it). An ended one
    /// (`ended_ms`) expires after `keep`.
    pub async fn publish(
        &self,
        s: &Stored,
        ended_ms: Option<u64>,
        keep: Duration,
    ) -> Result<bool, StoreError> {
        let json = serde_json::to_string(s).map_err(|e| self.err(e))?;
        let ttl_ms = if ended_ms.is_some() { keep.as_millis().max(1) as u64 } else { 0 };
        let r: u8 = self
            .run(|mut c| async move {
                Script::new(PUBLISH)
                    .key(rec_key(&s.info.id))
                    .key(format!("{P}recs"))
                    .key(format!("{P}ended"))
                    .key(format!("{P}live"))
                    .arg(json)
                    .arg(s.fence)
                    .arg(s.started_ms)
                    .arg(s.info.id.as_str())
                    .arg(ttl_ms)
                    .arg(ended_ms.unwrap_or(0))
                    .invoke_async(&mut c)
                    .await
            })
            .await?;
        Ok(r == 1)
    }

    /// Drops the oldest ended recordings beyond `max` (`HISTORY_MAX_RECORDINGS`).
    pub async fn trim_history(&self, max: usize) -> Result<(), StoreError> {
        let n: usize = self.run(|mut c| async move { c.zcard(format!("{P}ended")).await }).await?;
        if n <= max {
            return Ok(());
        }
        let old: Vec<String> = self
            .run(|mut c| async move { c.zrange(format!("{P}ended"), 0, (n - max - 1) as isize).await })
            .await?;
        self.forget(&old).await
    }

    /// Deletes these recordings.
    pub async fn forget(&self, ids: &[String]) -> Result<(), StoreError> {
        if ids.is_empty() {
            return Ok(());
        }
        let keys: Vec<String> = ids.iter().map(|i| rec_key(i)).collect();
        self.run(|mut c| async move {
            redis::pipe()
                .del(keys)
                .ignore()
                .zrem(format!("{P}recs"), ids)
                .ignore()
                .zrem(format!("{P}ended"), ids)
                .ignore()
                .srem(format!("{P}live"), ids)
                .ignore()
                .query_async::<()>(&mut c)
                .await
        })
        .await
    }

    /// One recording.
    pub async fn get(&self, id: &RecordingId) -> Result<Option<Stored>, StoreError> {
        let key = rec_key(id);
        let v: Option<String> = self.run(|mut c| async move { c.get(key).await }).await?;
        Ok(v.and_then(|v| serde_json::from_str(&v).ok()))
    }

    /// Every recording Redis holds (those whose key expired are dropped from the index).
    pub async fn all(&self) -> Result<Vec<Stored>, StoreError> {
        let ids: Vec<String> =
            self.run(|mut c| async move { c.zrange(format!("{P}recs"), 0, -1).await }).await?;
        let mut out = Vec::with_capacity(ids.len());
        let mut gone = Vec::new();
        for chunk in ids.chunks(MGET_CHUNK) {
            let keys: Vec<String> = chunk.iter().map(|i| rec_key(i)).collect();
            let vals: Vec<Option<String>> = self
                .run(|mut c| async move { redis::cmd("MGET").arg(keys).query_async(&mut c).await })
                .await?;
            for (id, v) in chunk.iter().zip(vals) {
                match v.map(|v| serde_json::from_str::<Stored>(&v)) {
                    Some(Ok(s)) => out.push(s),
                    // written by a node that knows more (a rolling upgrade): left alone
                    Some(Err(e)) => tracing::warn!(recording = %id, "recording in Redis not understood: {e}"),
                    None => gone.push(id.clone()),
                }
            }
        }
        if !gone.is_empty() {
            self.forget(&gone).await?;
        }
        Ok(out)
    }

    /// The live recordings whose node has no heartbeat any more (its lease expired): the ones
    /// another node may take over once their claims have expired too.
    pub async fn orphans(&self, me: &str) -> Result<Vec<Stored>, StoreError> {
        let ids: Vec<String> = self.run(|mut c| async move { c.smembers(format!("{P}live")).await }).await?;
        if ids.is_empty() {
            return Ok(Vec::new());
        }
        let keys: Vec<String> = ids.iter().map(|i| rec_key(i)).collect();
        let vals: Vec<Option<String>> =
            self.run(|mut c| async move { redis::cmd("MGET").arg(keys).query_async(&mut c).await }).await?;
        let mut alive: std::collections::HashMap<String, bool> = std::collections::HashMap::new();
        let mut out = Vec::new();
        for v in vals.into_iter().flatten() {
            let Ok(s) = serde_json::from_str::<Stored>(&v) else { continue };
            if s.node == me || !s.info.status.is_live() || s.spec.is_none() {
                continue;
            }
            let up = match alive.get(&s.node) {
                Some(up) => *up,
                None => {
                    let up = self.node(&s.node).await?.is_some();
                    alive.insert(s.node.clone(), up);
                    up
                }
            };
            if !up {
                out.push(s);
            }
        }
        Ok(out)
    }

    /// Takes over `s` (from the dead node `s.node`) for node `me`: the new claim and the
    /// recording as it was, or `None` when its claim is still held or it changed hands.
    pub async fn take(&self, me: &str, s: &Stored) -> Result<Option<(Claim, Stored)>, StoreError> {
        let key = claim_key(&s.info.room, &s.info.participant);
        let lease_ms = self.lease.as_millis() as u64;
        let r: Option<(String, String)> = self
            .run(|mut c| async move {
                Script::new(TAKE)
                    .key(key)
                    .key(format!("{P}fence"))
                    .key(rec_key(&s.info.id))
                    .key(format!("{P}live"))
                    .arg(me)
                    .arg(s.info.id.as_str())
                    .arg(lease_ms)
                    .arg(&s.node)
                    .invoke_async(&mut c)
                    .await
            })
            .await?;
        let Some((claim, rec)) = r else { return Ok(None) };
        let claim =
            Claim::parse(claim).ok_or_else(|| self.err("a claim in a format this version does not read"))?;
        let rec: Stored =
            serde_json::from_str(&rec).map_err(|e| self.err(format!("a recording it cannot read: {e}")))?;
        Ok(Some((claim, rec)))
    }

    /// Writes this node's heartbeat (with the lease as TTL).
    pub async fn heartbeat(&self, n: &NodeInfo) -> Result<(), StoreError> {
        let json = serde_json::to_string(n).map_err(|e| self.err(e))?;
        let key = format!("{P}node:{}", n.id);
        let id = n.id.clone();
        let lease_ms = self.lease.as_millis() as u64;
        self.run(|mut c| async move {
            redis::pipe()
                .cmd("SET")
                .arg(key)
                .arg(json)
                .arg("PX")
                .arg(lease_ms)
                .ignore()
                .sadd(format!("{P}nodes"), id)
                .ignore()
                .query_async::<()>(&mut c)
                .await
        })
        .await
    }

    /// A node's last heartbeat (`None`: no heartbeat within the lease).
    pub async fn node(&self, id: &str) -> Result<Option<NodeInfo>, StoreError> {
        let key = format!("{P}node:{id}");
        let v: Option<String> = self.run(|mut c| async move { c.get(key).await }).await?;
        Ok(v.and_then(|v| serde_json::from_str(&v).ok()))
    }

    /// This node leaves the cluster (a drain that hands its recordings over): its heartbeat
    /// goes at once, so the recordings it releases are taken over as a dead node's are.
    pub async fn leave(&self, id: &str) -> Result<(), StoreError> {
        let key = format!("{P}node:{id}");
        let id = id.to_owned();
        self.run(|mut c| async move {
            redis::pipe()
                .del(key)
                .ignore()
                .srem(format!("{P}nodes"), id)
                .ignore()
                .query_async::<()>(&mut c)
                .await
        })
        .await
    }

    /// Tells the other nodes that recordings were released for them to take over now (they
    /// watch [`Store::handoffs`]).
    pub async fn signal_handoff(&self) -> Result<u64, StoreError> {
        self.run(|mut c| async move { c.incr(format!("{P}handoff"), 1u64).await }).await
    }

    /// How many handoffs were signalled (0 before the first).
    pub async fn handoffs(&self) -> Result<u64, StoreError> {
        let v: Option<u64> = self.run(|mut c| async move { c.get(format!("{P}handoff")).await }).await?;
        Ok(v.unwrap_or(0))
    }

    /// The nodes with a heartbeat within the lease.
    pub async fn nodes(&self) -> Result<Vec<NodeInfo>, StoreError> {
        let ids: Vec<String> = self.run(|mut c| async move { c.smembers(format!("{P}nodes")).await }).await?;
        let mut out = Vec::new();
        for id in ids {
            if let Some(n) = self.node(&id).await? {
                out.push(n);
            }
        }
        Ok(out)
    }
}

fn rec_key(id: &str) -> String {
    format!("{P}rec:{id}")
}

/// Unambiguous for any room and identity (the room's length comes first).
fn claim_key(room: &str, identity: &str) -> String {
    format!("{P}claim:{}:{room}{identity}", room.len())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn claim_keys_cannot_collide() {
        assert_ne!(claim_key("ab", "c"), claim_key("a", "bc"));
        assert_eq!(claim_key("r", "p"), "{lkr}:claim:1:rp");
    }

    #[test]
    fn a_claim_keeps_its_raw_value() {
        let raw = r#"{"node":"n\/1","id":"RC_1","fence":7}"#.to_owned();
        let c = Claim::parse(raw.clone()).unwrap();
        assert_eq!((c.node.as_str(), c.id.as_str(), c.fence, c.raw), ("n/1", "RC_1", 7, raw));
        assert!(Claim::parse("nope".into()).is_none());
    }
}
