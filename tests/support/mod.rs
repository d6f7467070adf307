//! Everything the integration tests share, in one place (each test file declares `mod support;`
//! and imports the parts it uses):
//!
//! - [`common`]: ffmpeg/ffprobe as the independent judge of every file we write (frames,
//!   packets, beeps, flashes), a recording harness over the media core, Chromium's location;
//! - [`sim_support`]: the simulator: the one API key and secret of the tests ([`KEY`],
//!   [`SECRET`]), tokens, its control API, a str0m subscriber bot;
//! - [`recorder_support`]: the daemon in-process with the simulator: REST calls, waiting for
//!   a recording's state, A/V participants, the simulator's per-track `/sent` hashes;
//! - [`serve_support`]: the daemon as a process (`serve`), for kill -9, drain and cluster tests;
//! - [`s3_support`]: a real S3-compatible server (moto) on a free loopback port;
//! - [`real_support`]: the real livekit-server v1.13.5 and the Go publisher (`tests/lkpub`);
//! - [`real_judge`]: byte-for-byte judging of recordings of the Go publisher's fixture files;
//! - [`browser_support`]: headless Chromium + livekit-client as a publisher;
//! - [`lk_harness`]: our LiveKit client against the simulator, without the daemon.
//!
//! Every test binary compiles all of it; each one uses a part.
#![allow(dead_code, unused_imports)]

pub mod browser_support;
pub mod common;
pub mod lk_harness;
pub mod real_judge;
pub mod real_support;
pub mod recorder_support;
pub mod s3_support;
pub mod serve_support;
pub mod sim_support;

pub use sim_support::{KEY, SECRET};
