//! Shared by the S3 tests (`recorder_s3`, `recorder_process`): a moto S3 server on a loopback
//! port (`MOTO_SERVER`, or `.venv-moto/bin/moto_server` as `.ci/test` installs it), a test-side
//! S3 client, and result-callback receivers that check the objects exist when called.
#![allow(dead_code)]

use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use aws_sdk_s3::config::{BehaviorVersion, Credentials, Region};
use livekit_recorder::storage::s3::{S3Settings, StaticCredentials};
use serde_json::Value;

use super::sim_support::{KEY, SECRET};

pub const BUCKET: &str = "recordings";

// ---------------------------------------------------------------------------------------------
// moto

/// The moto server binary, or a failure telling how to install it.
pub fn moto_binary() -> PathBuf {
    if let Some(p) = std::env::var_os("MOTO_SERVER") {
        let p = PathBuf::from(p);
        assert!(p.exists(), "MOTO_SERVER={} does not exist: run .ci/test (it installs moto)", p.display());
        return p;
    }
    let p = Path::new(env!("CARGO_MANIFEST_DIR")).join(".venv-moto/bin/moto_server");
    assert!(
        p.exists(),
        "the S3 tests need moto: run .ci/test (it installs moto into .venv-moto) or set MOTO_SERVER \
         to a moto_server binary; {} does not exist",
        p.display()
    );
    p
}

/// A moto S3 server on a loopback port, killed on drop.
pub struct Moto {
    child: Child,
    port: u16,
}

impl Moto {
    /// Starts moto on `port` and waits until it answers.
    pub async fn start(port: u16) -> Moto {
        let _ = rustls::crypto::ring::default_provider().install_default();
        let child = Command::new(moto_binary())
            .args(["-H", "127.0.0.1", "-p", &port.to_string()])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("start moto_server");
        let moto = Moto { child, port };
        let client = reqwest::Client::builder().no_proxy().build().expect("client");
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            let ok = client
                .get(format!("http://127.0.0.1:{port}/"))
                .timeout(Duration::from_secs(2))
                .send()
                .await
                .is_ok_and(|r| r.status().is_success());
            if ok {
                return moto;
            }
            assert!(Instant::now() < deadline, "moto_server did not answer on port {port} within 30 s");
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    pub fn endpoint(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }
}

impl Drop for Moto {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

pub fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0").expect("bind").local_addr().expect("addr").port()
}

pub fn creds() -> StaticCredentials {
    StaticCredentials { access_key_id: "testing".into(), secret_access_key: "testing".into() }
}

/// A test-side S3 client for `endpoint`.
pub fn s3_client(endpoint: &str) -> aws_sdk_s3::Client {
    let conf = aws_sdk_s3::Config::builder()
        .behavior_version(BehaviorVersion::latest())
        .region(Region::new("us-east-1"))
        .credentials_provider(Credentials::new("testing", "testing", None, None, "test"))
        .endpoint_url(endpoint)
        .force_path_style(true)
        .build();
    aws_sdk_s3::Client::from_conf(conf)
}

pub async fn create_bucket(endpoint: &str) {
    s3_client(endpoint).create_bucket().bucket(BUCKET).send().await.expect("create bucket");
}

pub async fn get_object(endpoint: &str, key: &str) -> Vec<u8> {
    let out = s3_client(endpoint).get_object().bucket(BUCKET).key(key).send().await.expect("get object");
    out.body.collect().await.expect("object body").into_bytes().to_vec()
}

pub fn key_of(url: &str) -> String {
    url.strip_prefix(&format!("s3://{BUCKET}/"))
        .unwrap_or_else(|| panic!("not in the bucket: {url}"))
        .to_owned()
}

pub fn s3_settings(endpoint: &str, keep_local: bool, give_up: Duration) -> S3Settings {
    let mut s = S3Settings::new(BUCKET);
    s.directory = "lk".into();
    s.endpoint = Some(endpoint.to_owned());
    s.force_path_style = true;
    s.keep_local = keep_local;
    s.give_up = give_up;
    s.credentials = Some(creds());
    s
}

// ---------------------------------------------------------------------------------------------
// callback receivers

/// One accepted callback.
#[derive(Debug, Clone)]
pub struct Accepted {
    pub body: String,
    pub authorization: String,
    /// Every `outputs` object existed (HeadObject) when the callback arrived.
    pub objects_existed: bool,
}

#[derive(Default)]
pub struct ReceiverState {
    accepted: Mutex<Vec<Accepted>>,
    pub attempts: AtomicUsize,
    /// Answer 500 to this many first attempts.
    fail_first: usize,
    s3_endpoint: Mutex<Option<String>>,
}

/// A callback receiver on 127.0.0.1 (actix-web), stopped on drop.
pub struct Receiver {
    pub url: String,
    pub state: Arc<ReceiverState>,
    handle: actix_web::dev::ServerHandle,
}

impl Receiver {
    pub fn start(fail_first: usize, s3_endpoint: Option<String>) -> Receiver {
        use actix_web::{web, App, HttpRequest, HttpResponse, HttpServer};
        let state = Arc::new(ReceiverState {
            fail_first,
            s3_endpoint: Mutex::new(s3_endpoint),
            ..Default::default()
        });
        let data = web::Data::from(state.clone());
        async fn receive(req: HttpRequest, body: web::Bytes, st: web::Data<ReceiverState>) -> HttpResponse {
            let n = st.attempts.fetch_add(1, Ordering::SeqCst);
            if n < st.fail_first {
                return HttpResponse::InternalServerError().finish();
            }
            let body = String::from_utf8_lossy(&body).into_owned();
            let authorization = req
                .headers()
                .get("authorization")
                .and_then(|v| v.to_str().ok())
                .unwrap_or_default()
                .to_owned();
            let json: Value = serde_json::from_str(&body).unwrap_or(Value::Null);
            let endpoint = st.s3_endpoint.lock().expect("lock").clone();
            let mut objects_existed = true;
            for url in json["outputs"].as_array().into_iter().flatten() {
                let key = key_of(url.as_str().unwrap_or_default());
                let head = match &endpoint {
                    Some(e) => s3_client(e).head_object().bucket(BUCKET).key(key).send().await.is_ok(),
                    None => false,
                };
                objects_existed &= head;
            }
            st.accepted.lock().expect("lock").push(Accepted { body, authorization, objects_existed });
            HttpResponse::Ok().finish()
        }
        let server =
            HttpServer::new(move || App::new().app_data(data.clone()).route("/cb", web::post().to(receive)))
                .workers(1)
                .disable_signals()
                .bind("127.0.0.1:0")
                .expect("bind receiver");
        let addr = server.addrs()[0];
        let running = server.run();
        let handle = running.handle();
        tokio::spawn(running);
        Receiver { url: format!("http://{addr}/cb"), state, handle }
    }

    pub fn accepted(&self) -> Vec<Accepted> {
        self.state.accepted.lock().expect("lock").clone()
    }

    /// Waits until `n` callbacks were accepted, then a little longer to catch duplicates.
    pub async fn wait_accepted(&self, n: usize, timeout: Duration) -> Vec<Accepted> {
        let deadline = Instant::now() + timeout;
        while self.accepted().len() < n {
            assert!(Instant::now() < deadline, "only {} callbacks after {timeout:?}", self.accepted().len());
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        tokio::time::sleep(Duration::from_millis(1500)).await;
        self.accepted()
    }
}

impl Drop for Receiver {
    fn drop(&mut self) {
        let h = self.handle.clone();
        tokio::spawn(async move { h.stop(false).await });
    }
}

/// Checks a callback's signature: the JWT verifies with the API secret, its `sha256` claim is
/// the body's hash.
pub fn assert_signed(a: &Accepted) {
    use base64::Engine as _;
    use sha2::Digest as _;
    let claims = livekit_api::access_token::TokenVerifier::with_api_key(KEY, SECRET)
        .verify(&a.authorization)
        .expect("callback JWT verifies with the API secret");
    assert_eq!(claims.iss, KEY);
    let want = base64::engine::general_purpose::STANDARD.encode(sha2::Sha256::digest(a.body.as_bytes()));
    assert_eq!(claims.sha256, want, "sha256 claim matches the body");
}
