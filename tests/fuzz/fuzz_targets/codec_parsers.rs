#![no_main]
//! Untrusted bytes into `media::fuzz::codec_parsers`: must never panic.
libfuzzer_sys::fuzz_target!(|data: &[u8]| livekit_recorder::media::fuzz::codec_parsers(data));
