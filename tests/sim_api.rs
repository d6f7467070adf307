//! Twirp RoomService through livekit-api's `RoomClient` (and raw HTTP for errors and JSON),
//! and the control API's input validation.

mod support;
use support::sim_support;

use livekit_api::services::room::RoomClient;
use sim_support::*;

async fn twirp(
    addr: std::net::SocketAddr,
    method: &str,
    token: &str,
    ctype: &str,
    body: Vec<u8>,
) -> (u16, String) {
    let client = reqwest::Client::builder().no_proxy().build().expect("client");
    let resp = client
        .post(format!("http://{addr}/twirp/livekit.RoomService/{method}"))
        .header("authorization", format!("Bearer {token}"))
        .header("content-type", ctype)
        .body(body)
        .send()
        .await
        .expect("twirp request");
    (resp.status().as_u16(), resp.text().await.expect("body"))
}

fn admin_token(room: &str) -> String {
    let grants = livekit_api::access_token::VideoGrants {
        room_admin: true,
        room_list: true,
        room: room.into(),
        ..Default::default()
    };
    livekit_api::access_token::AccessToken::with_api_key(KEY, SECRET)
        .with_grants(grants)
        .to_jwt()
        .expect("token")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn room_client_lists_rooms_and_participants() {
    let sim = start_sim(vec![]).await;
    add_participant(sim.http_addr(), "api", "alice", Some("vp9"), true).await;
    add_participant(sim.http_addr(), "api", "bob", None, true).await;
    let rc = RoomClient::with_api_key(&format!("http://{}", sim.http_addr()), KEY, SECRET);
    let rooms = rc.list_rooms(vec![]).await.expect("list rooms");
    assert_eq!(rooms.iter().map(|r| r.name.as_str()).collect::<Vec<_>>(), ["api"]);
    assert_eq!(rooms[0].num_participants, 2);
    let parts = rc.list_participants("api").await.expect("list participants");
    let mut ids: Vec<_> = parts.iter().map(|p| p.identity.clone()).collect();
    ids.sort();
    assert_eq!(ids, ["alice", "bob"]);
    let alice = rc.get_participant("api", "alice").await.expect("get participant");
    assert_eq!(alice.tracks.len(), 2);
    assert!(alice.tracks.iter().any(|t| t.mime_type == "video/VP9"));
    assert!(rc.get_participant("api", "nobody").await.is_err());
    rc.remove_participant("api", "bob").await.expect("remove participant");
    assert_eq!(rc.list_participants("api").await.expect("list").len(), 1);
    rc.delete_room("api").await.expect("delete room");
    assert!(rc.list_rooms(vec![]).await.expect("list rooms").is_empty());
    sim.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn twirp_errors_are_json_with_code_and_msg() {
    let sim = start_sim(vec![]).await;
    let addr = sim.http_addr();
    let (status, body) = twirp(addr, "ListRooms", "not-a-jwt", "application/protobuf", vec![]).await;
    assert_eq!(status, 401);
    let v: serde_json::Value = serde_json::from_str(&body).expect("JSON error");
    assert_eq!(v["code"], "unauthenticated");
    assert!(v["msg"].as_str().is_some_and(|m| !m.is_empty()));
    let (status, body) = twirp(addr, "FlyToTheMoon", &admin_token("r"), "application/protobuf", vec![]).await;
    assert_eq!(status, 404);
    assert_eq!(serde_json::from_str::<serde_json::Value>(&body).expect("JSON")["code"], "bad_route");
    let (status, body) = twirp(
        addr,
        "ListParticipants",
        &admin_token("other"),
        "application/json",
        br#"{"room":"r"}"#.to_vec(),
    )
    .await;
    assert_eq!(status, 403, "{body}");
    assert_eq!(serde_json::from_str::<serde_json::Value>(&body).expect("JSON")["code"], "permission_denied");
    add_participant(addr, "r", "alice", Some("av1"), false).await;
    let (status, body) =
        twirp(addr, "ListParticipants", &admin_token("r"), "application/json", br#"{"room":"r"}"#.to_vec())
            .await;
    assert_eq!(status, 200, "{body}");
    let v: serde_json::Value = serde_json::from_str(&body).expect("protojson");
    assert_eq!(v["participants"][0]["identity"], "alice");
    sim.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn control_api_rejects_bad_input_with_json_errors() {
    let sim = start_sim(vec![]).await;
    let addr = sim.http_addr();
    let post = |body: serde_json::Value| call(addr, reqwest::Method::POST, "/sim/participants", Some(body));
    let (status, v) = post(serde_json::json!({"room": "c", "identity": "a", "video": "theora"})).await;
    assert_eq!(status, 400);
    assert!(v["error"].as_str().is_some_and(|e| e.contains("theora")), "{v}");
    let (status, v) = post(serde_json::json!({"room": "c", "identity": "a", "audio": "aac"})).await;
    assert_eq!(status, 400, "{v}");
    let (status, _) = post(serde_json::json!({"room": "", "identity": "a", "audio": "opus"})).await;
    assert_eq!(status, 400);
    let (status, v) = call(addr, reqwest::Method::POST, "/sim/participants", None).await;
    assert_eq!(status, 400, "{v}");
    let (status, v) =
        post(serde_json::json!({"room": "c", "identity": "a", "video": "vp8", "audio": "opus"})).await;
    assert_eq!(status, 200);
    assert!(v["sid"].as_str().is_some_and(|s| s.starts_with("PA_")));
    assert_eq!(v["tracks"][0]["codec"], "vp8");
    assert_eq!(v["tracks"][1]["kind"], "audio");
    let (status, _) = post(serde_json::json!({"room": "c", "identity": "a", "audio": "opus"})).await;
    assert_eq!(status, 409);
    let (status, v) = call(
        addr,
        reqwest::Method::POST,
        "/sim/participants/c/a/faults",
        Some(serde_json::json!({"loss_pct": 150})),
    )
    .await;
    assert_eq!(status, 400, "{v}");
    let (status, _) = call(
        addr,
        reqwest::Method::POST,
        "/sim/participants/c/zed/mute",
        Some(serde_json::json!({"kind": "audio", "muted": true})),
    )
    .await;
    assert_eq!(status, 404);
    let (status, _) = call(
        addr,
        reqwest::Method::POST,
        "/sim/participants/c/a/mute",
        Some(serde_json::json!({"kind": "audio", "muted": true})),
    )
    .await;
    assert_eq!(status, 200);
    let (status, _) = call(addr, reqwest::Method::GET, "/sim/rooms/nowhere/sent", None).await;
    assert_eq!(status, 404);
    let (status, _) = call(addr, reqwest::Method::DELETE, "/sim/participants/c/zed", None).await;
    assert_eq!(status, 404);
    sim.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tracks_are_published_and_unpublished_on_existing_participants() {
    let sim = start_sim(vec![]).await;
    let addr = sim.http_addr();
    let (post, del) = (reqwest::Method::POST, reqwest::Method::DELETE);
    // a participant may join without publishing
    let (status, v) = call(
        addr,
        post.clone(),
        "/sim/participants",
        Some(serde_json::json!({"room": "t", "identity": "a", "video": null, "audio": null})),
    )
    .await;
    assert_eq!(status, 200, "{v}");
    assert_eq!(v["tracks"].as_array().map(Vec::len), Some(0), "{v}");
    let publish = |who: &'static str, body: serde_json::Value| {
        call(
            addr,
            post.clone(),
            if who == "a" { "/sim/participants/t/a/tracks" } else { "/sim/participants/t/zed/tracks" },
            Some(body),
        )
    };
    let (status, v) = publish("zed", serde_json::json!({"kind": "video", "codec": "vp8"})).await;
    assert_eq!((status, v["error"].is_string()), (404, true), "{v}");
    let (status, v) = publish("a", serde_json::json!({"kind": "video", "codec": "opus"})).await;
    assert_eq!((status, v["error"].is_string()), (400, true), "{v}");
    let (status, v) = publish("a", serde_json::json!({"kind": "audio", "codec": "aac"})).await;
    assert_eq!(status, 400, "{v}");
    let (status, v) = publish("a", serde_json::json!({"kind": "screen", "codec": "vp8"})).await;
    assert_eq!(status, 400, "{v}");
    let (status, v) = publish("a", serde_json::json!({"kind": "video", "codec": "vp9"})).await;
    assert_eq!(status, 200, "{v}");
    let video = v["sid"].as_str().expect("sid").to_owned();
    assert!(video.starts_with("TR_"), "{v}");
    let (status, v) = publish("a", serde_json::json!({"kind": "video", "codec": "vp8"})).await;
    assert_eq!((status, v["error"].is_string()), (409, true), "{v}");
    let (status, v) = publish("a", serde_json::json!({"kind": "audio", "codec": "opus"})).await;
    assert_eq!(status, 200, "{v}");
    let (_, sent) = call(addr, reqwest::Method::GET, "/sim/rooms/t/sent", None).await;
    assert_eq!(sent["tracks"].as_array().map(Vec::len), Some(2), "{sent}");
    let (status, _) = call(addr, del.clone(), "/sim/participants/t/a/tracks/TR_nope", None).await;
    assert_eq!(status, 404);
    let (status, _) = call(addr, del.clone(), &format!("/sim/participants/t/zed/tracks/{video}"), None).await;
    assert_eq!(status, 404);
    let (status, v) = call(addr, del.clone(), &format!("/sim/participants/t/a/tracks/{video}"), None).await;
    assert_eq!(status, 200, "{v}");
    let (status, _) = call(addr, del, &format!("/sim/participants/t/a/tracks/{video}"), None).await;
    assert_eq!(status, 404, "already unpublished");
    // the kind is free again
    let (status, v) = publish("a", serde_json::json!({"kind": "video", "codec": "h264"})).await;
    assert_eq!(status, 200, "{v}");
    sim.stop().await;
}
