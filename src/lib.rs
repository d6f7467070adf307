//! livekit-recorder: records LiveKit participants' audio and video, without transcoding, into
//! crash-tolerant, lip-synced files.
//!
//! Modules:
//! - [`media`]: the pure media core (timeline, codec parsing, container writers, session).
//! - [`synth`]: synthetic publishers replaying the embedded encoded loops.
//! - [`output`]: a recording part on local disk (append, durable flush, patch on close).
//! - [`demo`]: the offline demo.
//! - [`sim`]: the LiveKit-compatible simulator (signalling, WebRTC media, Twirp, webhooks).
//! - [`livekit`]: the subscribe-only LiveKit client (livekit-signaling + str0m).
//! - [`actors`]: the recorder's actor tree (supervisor -> room -> participant recorder).
//! - [`supervision`]: restart budgets (OTP intensity), pure.
//! - [`ids`]: room name, identity, participant sid, track sid and recording id as types.
//! - [`recording`]: the recording as the API shows it, and the daemon's errors.
//! - [`lifecycle`]: a recording's statuses and transitions, pure (the only place that decides
//!   a status).
//! - [`storage`]: file layout (names from the template, sanitized) and S3 upload of finished
//!   files ([`storage::s3`]; the pool of workers is [`actors::uploader`]).
//! - [`daemon`]: starting and stopping the actor tree and the HTTP server.
//! - [`metrics`]: counters for `GET /metrics`.
//! - [`callbacks`]: signed result callbacks (`WEBHOOK_URLS`).
//! - [`webhook`]: LiveKit webhook events as the supervisor acts on them (no HTTP).
//! - [`config`], [`telemetry`], [`http`]: the daemon's settings, logging and HTTP surface.
#![forbid(unsafe_code)]
#![warn(missing_docs, clippy::mod_module_files)]

pub mod actors;
pub mod callbacks;
pub mod client;
pub mod cluster;
pub mod config;
pub mod daemon;
pub mod demo;
pub mod http;
pub mod ids;
pub mod lifecycle;
pub mod livekit;
pub mod media;
pub mod metrics;
pub mod output;
pub mod recording;
pub mod sim;
pub mod storage;
pub mod supervision;
pub mod synth;
pub mod telemetry;
pub mod webhook;
