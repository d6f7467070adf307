//! Result callbacks (`WEBHOOK_URLS`): when a recording ends (`complete` or `failed`, after its
//! upload), its JSON — exactly what `GET /recordings/{id}` returns — is POSTed to every URL with
//! `Content-Type: application/json` and `Authorization: <JWT>`, signed like LiveKit's own
//! webhooks: HS256 with the API secret, `iss` = the API key, and a `sha256` claim holding the
//! base64 SHA-256 of the body (verify with livekit-api's `TokenVerifier`, then compare the
//! hash). Each URL gets its own task: up to [`ATTEMPTS`] attempts with [`DELAYS`] between them
//! on connection errors and non-2xx answers, and nothing more once a 2xx came back. The tasks
//! run off the supervisor's message loop.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use base64::Engine as _;
use sha2::Digest as _;

use crate::metrics::Metrics;
use crate::recording::RecordingInfo;

/// Attempts per URL.
pub const ATTEMPTS: usize = 6;
/// Waits between attempts (about 30 s in all).
pub const DELAYS: [Duration; ATTEMPTS - 1] = [
    Duration::from_millis(500),
    Duration::from_secs(1),
    Duration::from_secs(3),
    Duration::from_secs(8),
    Duration::from_secs(16),
];
/// Timeout of one attempt.
pub const ATTEMPT_TIMEOUT: Duration = Duration::from_secs(10);
/// How long a callback's token stays valid.
const TOKEN_TTL: Duration = Duration::from_secs(600);

/// Why callbacks cannot be set up.
#[derive(Debug, Clone, thiserror::Error, PartialEq, Eq)]
pub enum CallbackError {
    /// A URL that is not `http(s)://`.
    #[error("callback URL {0:?} is not an http:// or https:// URL")]
    BadUrl(String),
    /// The HTTP client could not be built.
    #[error("cannot build the callback HTTP client: {0}")]
    Client(String),
}

/// Called as each delivery ends: `(url, delivered)`.
pub type OnDone = Arc<dyn Fn(&str, bool) + Send + Sync>;

/// Sends result callbacks.
pub struct Callbacks {
    urls: Vec<String>,
    api_key: String,
    api_secret: String,
    client: reqwest::Client,
    metrics: Arc<Metrics>,
    /// Deliveries not finished yet (a shutdown waits for them).
    in_flight: AtomicUsize,
}

impl std::fmt::Debug for Callbacks {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let urls: Vec<String> = self.urls.iter().map(|u| redact(u)).collect();
        f.debug_struct("Callbacks").field("urls", &urls).finish_non_exhaustive()
    }
}

impl Callbacks {
    /// Callbacks to `urls`, signed with the LiveKit API key and secret.
    pub fn new(
        urls: Vec<String>,
        api_key: &str,
        api_secret: &str,
        metrics: Arc<Metrics>,
    ) -> Result<Callbacks, CallbackError> {
        if let Some(u) = urls.iter().find(|u| !(u.starts_with("http://") || u.starts_with("https://"))) {
            return Err(CallbackError::BadUrl(redact(u)));
        }
        let client = reqwest::Client::builder()
            .timeout(ATTEMPT_TIMEOUT)
            .build()
            .map_err(|e| CallbackError::Client(e.to_string()))?;
        let (api_key, api_secret) = (api_key.to_owned(), api_secret.to_owned());
        Ok(Callbacks { urls, api_key, api_secret, client, metrics, in_flight: AtomicUsize::new(0) })
    }

    /// Whether there is any URL.
    pub fn is_empty(&self) -> bool {
        self.urls.is_empty()
    }

    /// Starts delivering `info` to every URL not in `skip` (one task per URL; `skip` holds
    /// the URLs that accepted it before a restart) and returns at once with the number of
    /// deliveries started. `done(url, delivered)` is called as each one ends.
    pub fn send(
        self: &Arc<Self>,
        info: &RecordingInfo,
        skip: &std::collections::BTreeSet<String>,
        done: OnDone,
    ) -> usize {
        let body = match serde_json::to_vec(info) {
            Ok(b) => Arc::new(b),
            Err(e) => {
                tracing::error!(recording = %info.id, "cannot serialize the callback body: {e}");
                return 0;
            }
        };
        let mut started = 0;
        for url in self.urls.iter().filter(|u| !skip.contains(*u)) {
            let me = self.clone();
            let (url, body, id, done) = (url.clone(), body.clone(), info.id.clone(), done.clone());
            self.in_flight.fetch_add(1, Ordering::SeqCst);
            started += 1;
            tokio::spawn(async move {
                let delivered = me.deliver(&url, &body, &id).await;
                done(&url, delivered);
                me.in_flight.fetch_sub(1, Ordering::SeqCst);
            });
        }
        started
    }

    /// Waits until every delivery ended, at most `timeout`; true when none is left.
    pub async fn wait_idle(&self, timeout: Duration) -> bool {
        let deadline = Instant::now() + timeout;
        while self.in_flight.load(Ordering::SeqCst) > 0 {
            if Instant::now() >= deadline {
                return false;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        true
    }

    async fn deliver(&self, url: &str, body: &[u8], id: &str) -> bool {
        let shown = redact(url);
        for attempt in 1..=ATTEMPTS {
            let error = match self.post(url, body).await {
                Ok(()) => {
                    tracing::info!(recording = %id, url = %shown, attempt, "callback delivered");
                    self.metrics.record_callback(true);
                    return true;
                }
                Err(e) => e,
            };
            match DELAYS.get(attempt - 1) {
                Some(wait) => {
                    tracing::warn!(recording = %id, url = %shown, attempt, retry_in = ?wait, "callback failed: {error}");
                    tokio::time::sleep(*wait).await;
                }
                None => {
                    tracing::error!(recording = %id, url = %shown, attempt, "callback given up: {error}");
                }
            }
        }
        self.metrics.record_callback(false);
        false
    }

    async fn post(&self, url: &str, body: &[u8]) -> Result<(), String> {
        let token = sign(&self.api_key, &self.api_secret, body).map_err(|e| format!("signing: {e}"))?;
        let resp = self
            .client
            .post(url)
            .header("content-type", "application/json")
            .header("authorization", token)
            .body(body.to_vec())
            .send()
            .await
            .map_err(|e| format!("request: {e}"))?;
        match resp.status() {
            s if s.is_success() => Ok(()),
            s => Err(format!("HTTP {s}")),
        }
    }
}

/// The `Authorization` value for `body`: a LiveKit-style JWT (HS256, `iss` = API key, `sha256`
/// = base64 SHA-256 of the body).
pub fn sign(api_key: &str, api_secret: &str, body: &[u8]) -> Result<String, String> {
    let sha = base64::engine::general_purpose::STANDARD.encode(sha2::Sha256::digest(body));
    livekit_api::access_token::AccessToken::with_api_key(api_key, api_secret)
        .with_sha256(&sha)
        .with_ttl(TOKEN_TTL)
        .to_jwt()
        .map_err(|e| e.to_string())
}

/// `url` without user info (`https://***@host/...`), for logs.
pub fn redact(url: &str) -> String {
    let Some((scheme, rest)) = url.split_once("://") else { return url.to_owned() };
    let end = rest.find('/').unwrap_or(rest.len());
    match rest[..end].rfind('@') {
        Some(at) => format!("{scheme}://***@{}", &rest[at + 1..]),
        None => url.to_owned(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn signature_verifies_with_livekit_api() {
        let secret = "a-long-enough-secret-for-hs256-0123";
        let body = br#"{"id":"RC_1"}"#;
        let jwt = sign("key", secret, body).expect("jwt");
        let claims = livekit_api::access_token::TokenVerifier::with_api_key("key", secret)
            .verify(&jwt)
            .expect("verifies");
        let want = base64::engine::general_purpose::STANDARD.encode(sha2::Sha256::digest(body));
        assert_eq!(claims.sha256, want);
        assert_eq!(claims.iss, "key");
    }

    #[test]
    fn urls_are_checked_and_redacted() {
        let _ = rustls::crypto::ring::default_provider().install_default();
        let m = Arc::new(Metrics::default());
        assert!(Callbacks::new(vec!["ftp://x".into()], "k", "s", m.clone()).is_err());
        assert!(Callbacks::new(vec!["http://127.0.0.1:1/x".into()], "k", "s", m).is_ok());
        assert_eq!(redact("https://u:p@host/a@b"), "https://***@host/a@b");
        assert_eq!(redact("https://host/a"), "https://host/a");
    }

    #[tokio::test]
    async fn deliveries_are_tracked_until_they_end() {
        let _ = rustls::crypto::ring::default_provider().install_default();
        let m = Arc::new(Metrics::default());
        let cb = Arc::new(Callbacks::new(vec!["http://127.0.0.1:1/x".into()], "k", "s", m).expect("cb"));
        assert!(cb.wait_idle(Duration::ZERO).await);
        let spec = crate::recording::RecordingSpec {
            id: "RC_1".into(),
            room: "r".into(),
            identity: "a".into(),
            profile: crate::recording::Profile::Av,
            layout: crate::recording::Layout::Participant,
            template: String::new(),
            started_unix_ms: 0,
            h264_container: Default::default(),
        };
        let ended = Arc::new(AtomicUsize::new(0));
        let counter = ended.clone();
        let done = Arc::new(move |_: &str, ok: bool| {
            assert!(!ok);
            counter.fetch_add(1, Ordering::SeqCst);
        });
        assert_eq!(cb.send(&RecordingInfo::pending(&spec), &Default::default(), done), 1);
        let skip = ["http://127.0.0.1:1/x".to_owned()].into_iter().collect();
        assert_eq!(cb.send(&RecordingInfo::pending(&spec), &skip, Arc::new(|_: &str, _| {})), 0);
        // nothing listens on port 1: the delivery is still retrying
        assert!(!cb.wait_idle(Duration::from_millis(200)).await);
        assert_eq!(ended.load(Ordering::SeqCst), 0);
    }
}
