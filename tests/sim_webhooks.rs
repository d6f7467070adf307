//! The simulator's webhooks, verified with livekit-api's `WebhookReceiver` by a raw-TCP
//! HTTP receiver on loopback.

mod support;
use support::sim_support;

use std::time::Duration;

use livekit_api::access_token::TokenVerifier;
use livekit_api::webhooks::WebhookReceiver;
use sim_support::*;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpListener;
use tokio::sync::mpsc;

/// Reads one HTTP request: (Authorization, Content-Type, body).
async fn read_request(s: &mut tokio::net::TcpStream) -> Option<(String, String, String)> {
    let mut buf = Vec::new();
    let mut chunk = [0u8; 4096];
    loop {
        let n = s.read(&mut chunk).await.ok()?;
        if n == 0 {
            return None;
        }
        buf.extend_from_slice(&chunk[..n]);
        let text = String::from_utf8_lossy(&buf).to_string();
        let Some(end) = text.find("\r\n\r\n") else { continue };
        let header = |name: &str| {
            text[..end].lines().find_map(|l| {
                l.split_once(':')
                    .filter(|(k, _)| k.eq_ignore_ascii_case(name))
                    .map(|(_, v)| v.trim().to_owned())
            })
        };
        let len: usize = header("content-length")?.parse().ok()?;
        if buf.len() >= end + 4 + len {
            let body = String::from_utf8(buf[end + 4..end + 4 + len].to_vec()).ok()?;
            return Some((header("authorization")?, header("content-type")?, body));
        }
    }
}

async fn receiver() -> (String, mpsc::UnboundedReceiver<(String, String, String)>) {
    let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let url = format!("http://{}/hook", listener.local_addr().expect("addr"));
    let (tx, rx) = mpsc::unbounded_channel();
    tokio::spawn(async move {
        while let Ok((mut s, _)) = listener.accept().await {
            let tx = tx.clone();
            tokio::spawn(async move {
                while let Some(req) = read_request(&mut s).await {
                    let _ = tx.send(req);
                    let _ = s.write_all(b"HTTP/1.1 200 OK\r\ncontent-length: 0\r\n\r\n").await;
                }
            });
        }
    });
    (url, rx)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn webhooks_are_signed_and_verifiable() {
    let (url, mut rx) = receiver().await;
    let sim = start_sim(vec![url]).await;
    add_participant(sim.http_addr(), "hooks", "alice", Some("vp8"), true).await;
    let verifier = WebhookReceiver::new(TokenVerifier::with_api_key(KEY, SECRET));
    let mut events = Vec::new();
    while events.len() < 4 {
        let (auth, ctype, body) = tokio::time::timeout(Duration::from_secs(10), rx.recv())
            .await
            .expect("webhook in time")
            .expect("open");
        assert_eq!(ctype, "application/webhook+json");
        assert!(!auth.starts_with("Bearer"), "raw JWT in Authorization");
        let ev = verifier.receive(&body, &auth).expect("valid signature and body");
        assert!(ev.id.starts_with("EV_") && ev.created_at > 0);
        assert!(verifier.receive(&format!("{body} "), &auth).is_err(), "tampered body rejected");
        events.push(ev);
    }
    let names: Vec<&str> = events.iter().map(|e| e.event.as_str()).collect();
    assert_eq!(names, ["room_started", "participant_joined", "track_published", "track_published"]);
    assert_eq!(events[1].participant.as_ref().map(|p| p.identity.as_str()), Some("alice"));
    let kinds: Vec<i32> = events[2..].iter().filter_map(|e| e.track.as_ref().map(|t| t.r#type)).collect();
    assert_eq!(kinds.len(), 2);
    assert_ne!(kinds[0], kinds[1], "one audio and one video track");

    call(sim.http_addr(), reqwest::Method::DELETE, "/sim/participants/hooks/alice", None).await;
    let mut rest = Vec::new();
    while rest.len() < 4 {
        let (auth, _, body) = tokio::time::timeout(Duration::from_secs(10), rx.recv())
            .await
            .expect("webhook in time")
            .expect("open");
        rest.push(verifier.receive(&body, &auth).expect("valid").event);
    }
    assert_eq!(rest, ["track_unpublished", "track_unpublished", "participant_left", "room_finished"]);
    sim.stop().await;
}
