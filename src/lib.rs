//! livekit-recorder: records LiveKit participants' audio and video, without transcoding, into
//! crash-tolerant, lip-synced files.
//!
//! Modules:
//! - [`media`]: the pure media core (timeline, codec parsing, container writers).
//! - [`config`]: settings from the environment, validated at start-up.
#![forbid(unsafe_code)]
#![warn(missing_docs, clippy::mod_module_files)]

pub mod config;
pub mod media;
