//! Requests for a recording another node owns go to that node over HTTP, to the URL it
//! advertises in its heartbeat, with the caller's `Authorization` and the [`FORWARDED`] header
//! (the owner answers itself and never forwards again). The caller gets the owner's answer as is:
//! a stop returns the final recording exactly as on one node.
//!
//! Why HTTP and not a Redis stream or pub/sub request-reply: the owner already has the one code
//! path that stops a recording and answers with its final JSON; a forwarded call reuses it,
//! with its status codes and timeouts, and needs no correlation ids, reply channels or
//! consumers of our own. Redis stays the place of state and leases only.

use std::time::Duration;

use super::store::{NodeInfo, Store};
use super::FORWARDED;

/// How long a forwarded stop may take (the owner finalizes within its own 15 s).
const FORWARD_TIMEOUT: Duration = Duration::from_secs(20);

/// Why a request could not be forwarded (the handler answers 503 with it).
#[derive(Debug, Clone, thiserror::Error, PartialEq, Eq)]
#[error("{0}")]
pub struct ForwardError(pub String);

/// The owner's answer: status and body, passed on unchanged.
#[derive(Debug, Clone)]
pub struct Forwarded {
    /// HTTP status.
    pub status: u16,
    /// Body (JSON).
    pub body: Vec<u8>,
}

/// Forwards to other nodes.
#[derive(Clone)]
pub struct Forwarder {
    store: Store,
    client: reqwest::Client,
    /// This node's id (a request is never forwarded to itself).
    me: String,
}

impl Forwarder {
    /// A forwarder for node `me`.
    pub fn new(store: Store, me: &str) -> Forwarder {
        let client =
            reqwest::Client::builder().timeout(FORWARD_TIMEOUT).no_proxy().build().unwrap_or_default();
        Forwarder { store, client, me: me.to_owned() }
    }

    /// This node's id.
    pub fn node_id(&self) -> &str {
        &self.me
    }

    /// The store.
    pub fn store(&self) -> &Store {
        &self.store
    }

    /// The live node `id` (its heartbeat is within the lease).
    pub async fn node(&self, id: &str) -> Result<NodeInfo, ForwardError> {
        match self.store.node(id).await {
            Ok(Some(n)) => Ok(n),
            Ok(None) => Err(ForwardError(format!(
                "the recording's node {id:?} has no heartbeat (down or partitioned); try again once its lease has expired"
            ))),
            Err(e) => Err(ForwardError(e.to_string())),
        }
    }

    /// POSTs `body` to `path` on node `id`.
    pub async fn post(
        &self,
        id: &str,
        path: &str,
        body: Vec<u8>,
        auth: Option<&str>,
    ) -> Result<Forwarded, ForwardError> {
        if id == self.me {
            return Err(ForwardError(format!("node {id:?} is this node: not forwarded")));
        }
        let node = self.node(id).await?;
        let mut req = self
            .client
            .post(format!("{}{path}", node.url))
            .header(FORWARDED, self.me.as_str())
            .header("content-type", "application/json")
            .body(body);
        if let Some(a) = auth {
            req = req.header("authorization", a);
        }
        let resp = req
            .send()
            .await
            .map_err(|e| ForwardError(format!("node {id:?} at {} did not answer: {e}", node.url)))?;
        let status = resp.status().as_u16();
        let body = resp
            .bytes()
            .await
            .map_err(|e| ForwardError(format!("node {id:?} answered in part: {e}")))?
            .to_vec();
        Ok(Forwarded { status, body })
    }
}
