#![no_main]
//! Untrusted bytes into `media::fuzz::source_readers`: must never panic.
libfuzzer_sys::fuzz_target!(|data: &[u8]| livekit_recorder::media::fuzz::source_readers(data));
