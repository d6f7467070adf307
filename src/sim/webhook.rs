//! Signed webhooks (LIVEKIT-PROTOCOL.md §8): protojson `WebhookEvent` bodies, an
//! `Authorization` header with the raw JWT carrying the body's `sha256`, delivered to every
//! configured URL by one background task.
//!
//! Invariants: emitting never blocks (a bounded queue; events beyond it are dropped and
//! logged); delivery is in order per simulator; each URL gets [`ATTEMPTS`] tries with backoff.

use std::time::Duration;

use base64::Engine as _;
use livekit_api::access_token::AccessToken;
use livekit_protocol as proto;
use sha2::{Digest, Sha256};
use tokio::sync::mpsc;

use super::ids::{new_id, unix_secs};

/// Delivery attempts per URL and event.
pub const ATTEMPTS: u32 = 3;

/// The webhook emitter.
#[derive(Debug, Clone)]
pub struct Webhooks {
    tx: Option<mpsc::Sender<proto::WebhookEvent>>,
}

impl Webhooks {
    /// Starts the delivery task on `rt` (none when there are no URLs).
    pub fn start(rt: &tokio::runtime::Handle, urls: Vec<String>, key: String, secret: String) -> Webhooks {
        if urls.is_empty() {
            return Webhooks { tx: None };
        }
        let (tx, rx) = mpsc::channel(4096);
        rt.spawn(deliver_all(rx, urls, key, secret));
        Webhooks { tx: Some(tx) }
    }

    /// Queues event `name` about `room` / `participant` / `track`.
    pub fn emit(
        &self,
        name: &str,
        room: Option<proto::Room>,
        participant: Option<proto::ParticipantInfo>,
        track: Option<proto::TrackInfo>,
    ) {
        let Some(tx) = &self.tx else { return };
        let ev = proto::WebhookEvent {
            event: name.into(),
            room,
            participant,
            track,
            id: new_id("EV_"),
            created_at: unix_secs(),
            ..Default::default()
        };
        if tx.try_send(ev).is_err() {
            tracing::warn!(event = name, "webhook queue full: event dropped");
        }
    }
}

/// `participant` reduced to sid and identity, as LiveKit sends it with track events.
pub fn short(p: &proto::ParticipantInfo) -> proto::ParticipantInfo {
    proto::ParticipantInfo { sid: p.sid.clone(), identity: p.identity.clone(), ..Default::default() }
}

async fn deliver_all(
    mut rx: mpsc::Receiver<proto::WebhookEvent>,
    urls: Vec<String>,
    key: String,
    secret: String,
) {
    let client = reqwest::Client::new();
    while let Some(ev) = rx.recv().await {
        let body = match serde_json::to_string(&ev) {
            Ok(b) => b,
            Err(e) => {
                tracing::warn!(event = %ev.event, "failed to encode a webhook: {e}");
                continue;
            }
        };
        let Some(auth) = sign(&body, &key, &secret) else { continue };
        for url in &urls {
            deliver(&client, url, &body, &auth, &ev.event).await;
        }
    }
}

/// The `Authorization` value for `body`: a JWT with the base64 SHA-256 of the body.
pub fn sign(body: &str, key: &str, secret: &str) -> Option<String> {
    let sha = base64::engine::general_purpose::STANDARD.encode(Sha256::digest(body.as_bytes()));
    let token =
        AccessToken::with_api_key(key, secret).with_sha256(&sha).with_ttl(Duration::from_secs(300)).to_jwt();
    token.map_err(|e| tracing::warn!("failed to sign a webhook: {e}")).ok()
}

async fn deliver(client: &reqwest::Client, url: &str, body: &str, auth: &str, event: &str) {
    for attempt in 1..=ATTEMPTS {
        let req = client
            .post(url)
            .header("Authorization", auth)
            .header("Content-Type", "application/webhook+json")
            .header("User-Agent", "LiveKit")
            .timeout(Duration::from_secs(5))
            .body(body.to_owned());
        let err = match req.send().await {
            Ok(r) if r.status().is_success() => return,
            Ok(r) => format!("status {}", r.status()),
            Err(e) => e.to_string(),
        };
        if attempt == ATTEMPTS {
            tracing::warn!(url, event, attempt, "webhook delivery failed, giving up: {err}");
        } else {
            tracing::info!(url, event, attempt, "webhook delivery failed, will retry: {err}");
            tokio::time::sleep(Duration::from_millis(200 << attempt)).await;
        }
    }
}
