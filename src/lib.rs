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
//! - [`config`], [`telemetry`], [`http`]: the daemon's settings, logging and HTTP surface.
#![forbid(unsafe_code)]
#![warn(missing_docs, clippy::mod_module_files)]

pub mod config;
pub mod demo;
pub mod http;
pub mod livekit;
pub mod media;
pub mod output;
pub mod sim;
pub mod synth;
pub mod telemetry;
