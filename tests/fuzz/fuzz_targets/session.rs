#![no_main]
//! Untrusted bytes into `media::fuzz::session`: must never panic.
libfuzzer_sys::fuzz_target!(|data: &[u8]| livekit_recorder::media::fuzz::session(data));
