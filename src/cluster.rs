//! Cluster mode (`REDIS_URL` set): any number of recorder instances share one Redis, which is
//! the only coordinator (no membership or election of our own).
//!
//! - [`store`]: every Redis key and script (node heartbeats, recording state, claims).
//! - [`node`]: the `ClusterActor`, a child of the supervisor: it claims participants, renews
//!   the claims and the node's heartbeat, and writes each recording's JSON to Redis (fenced).
//!   It talks to the supervisor only by messages ([`SupervisorMsg::LeaseLost`](crate::actors::supervisor::SupervisorMsg::LeaseLost)).
//! - [`forward`]: what a node that does not own a recording does with a stop or a webhook for
//!   it: an HTTP call to the owner's advertised URL.
//!
//! Without `REDIS_URL` none of this runs and the daemon is the single node it always was.

pub mod forward;
pub mod node;
pub mod store;

use std::time::Duration;

/// Default `CLUSTER_LEASE`: how long a node's claim on a participant (and its heartbeat) lives
/// without renewal. Renewed every third of it, so a Redis outage of up to a third of it (10 s)
/// never stops a recording.
pub const DEFAULT_LEASE: Duration = Duration::from_secs(30);

/// The header a forwarded request carries, so that the node it reaches never forwards it again.
pub const FORWARDED: &str = "x-recorder-forwarded";

/// Cluster settings, as configured (`REDIS_URL`, `NODE_ID`, `NODE_ADVERTISE_URL`,
/// `CLUSTER_LEASE`).
#[derive(Clone, PartialEq, Eq)]
pub struct ClusterConfig {
    /// `REDIS_URL` (`redis://`, `rediss://`, with password and db); may hold a password, so
    /// `Debug` redacts it.
    pub redis_url: String,
    /// `NODE_ID` (default: the host name and a random suffix).
    pub node_id: Option<String>,
    /// `NODE_ADVERTISE_URL` (default: `http://<bind address or host name>:<APP_PORT>`).
    pub advertise_url: Option<String>,
    /// `CLUSTER_LEASE`.
    pub lease: Duration,
}

impl std::fmt::Debug for ClusterConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ClusterConfig")
            .field("redis_url", &redact(&self.redis_url))
            .field("node_id", &self.node_id)
            .field("advertise_url", &self.advertise_url)
            .field("lease", &self.lease)
            .finish()
    }
}

/// `redis://user:***@host:6379/0` for `redis://user:secret@host:6379/0`.
pub fn redact(url: &str) -> String {
    match (url.split_once("://"), url.rfind('@')) {
        (Some((scheme, rest)), Some(at)) => {
            let userinfo = &rest[..at - scheme.len() - 3];
            let user = userinfo.split(':').next().unwrap_or("");
            format!("{scheme}://{user}:***{}", &url[at..])
        }
        _ => url.to_owned(),
    }
}

/// What the actors need of cluster mode: the store and who this node is.
#[derive(Clone)]
pub struct ClusterSettings {
    /// The cluster's Redis.
    pub store: store::Store,
    /// This node.
    pub node: NodeIdentity,
}

/// This node as the cluster sees it: its id and where the other nodes reach it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NodeIdentity {
    /// `NODE_ID`.
    pub id: String,
    /// `NODE_ADVERTISE_URL` (no trailing slash).
    pub url: String,
}

impl NodeIdentity {
    /// The configured id and URL, or their defaults: `<host name>-<6 hex digits>` and
    /// `http://<bind>:<port>` (the host name when bound to every interface). Port 0 cannot be
    /// advertised: an error names `NODE_ADVERTISE_URL`.
    pub fn resolve(cfg: &ClusterConfig, bind: std::net::SocketAddr) -> Result<NodeIdentity, String> {
        let host = hostname();
        let id = match &cfg.node_id {
            Some(id) => id.clone(),
            None => format!(
                "{host}-{:06x}",
                (crate::recording::unix_ms_now() ^ u64::from(std::process::id())) & 0xff_ffff
            ),
        };
        let url = match &cfg.advertise_url {
            Some(u) => u.trim_end_matches('/').to_owned(),
            None if bind.port() == 0 => {
                return Err(
                    "NODE_ADVERTISE_URL must be set when the HTTP port is chosen at random (APP_PORT=0)"
                        .into(),
                )
            }
            None if bind.ip().is_unspecified() => format!("http://{host}:{}", bind.port()),
            None => format!("http://{bind}"),
        };
        Ok(NodeIdentity { id, url })
    }
}

fn hostname() -> String {
    std::fs::read_to_string("/proc/sys/kernel/hostname")
        .ok()
        .or_else(|| std::env::var("HOSTNAME").ok())
        .map(|h| h.trim().to_owned())
        .filter(|h| !h.is_empty())
        .unwrap_or_else(|| "recorder".into())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn passwords_never_show() {
        assert_eq!(redact("redis://:s3cret@redis:6379/2"), "redis://:***@redis:6379/2");
        assert_eq!(redact("rediss://app:s3cret@redis.example/0"), "rediss://app:***@redis.example/0");
        assert_eq!(redact("redis://127.0.0.1:6379"), "redis://127.0.0.1:6379");
    }

    #[test]
    fn the_advertised_url_comes_from_the_bind_address() {
        let cfg = ClusterConfig {
            redis_url: "redis://x".into(),
            node_id: Some("a".into()),
            advertise_url: None,
            lease: DEFAULT_LEASE,
        };
        let n = NodeIdentity::resolve(&cfg, "127.0.0.1:8080".parse().unwrap()).unwrap();
        assert_eq!(n, NodeIdentity { id: "a".into(), url: "http://127.0.0.1:8080".into() });
        assert!(NodeIdentity::resolve(&cfg, "127.0.0.1:0".parse().unwrap()).is_err());
        let wild = NodeIdentity::resolve(&cfg, "0.0.0.0:8080".parse().unwrap()).unwrap();
        assert!(
            wild.url.starts_with("http://") && wild.url.ends_with(":8080") && !wild.url.contains("0.0.0.0")
        );
        let given =
            ClusterConfig { advertise_url: Some("http://rec-1.svc:8080/".into()), node_id: None, ..cfg };
        let n = NodeIdentity::resolve(&given, "0.0.0.0:0".parse().unwrap()).unwrap();
        assert_eq!(n.url, "http://rec-1.svc:8080");
        assert!(!n.id.is_empty());
    }
}
