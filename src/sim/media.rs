//! The simulator's view of the encoded loops (embedded, or from `--media-dir`): every frame once as `Arc<[u8]>` (so
//! str0m's writer takes it without a copy), its keyframe flag and its ground-truth hash.
//!
//! Invariant: one `SharedLoop` per codec per process; publishers and subscriber peers only
//! clone `Arc`s of it.

use std::path::Path;
use std::sync::{Arc, OnceLock};

use sha2::{Digest, Sha256};

use crate::media::codec::{is_keyframe, to_stored, video_params};
use crate::media::{Codec, MediaKind};
use crate::synth::EncodedLoop;

/// One embedded loop prepared for sending.
#[derive(Debug)]
pub struct SharedLoop {
    /// The parsed loop (timestamps, period).
    pub source: Arc<EncodedLoop>,
    /// Frame bytes, shared with every subscriber's writer.
    pub frames: Vec<Arc<[u8]>>,
    /// Whether each frame is a keyframe.
    pub keyframes: Vec<bool>,
    /// Hex SHA-256 of each frame in its stored form (see [`hash_form`]).
    pub hashes: Vec<Arc<str>>,
    /// Picture size of the first keyframe (video only).
    pub size: Option<(u32, u32)>,
}

impl SharedLoop {
    /// The loop for `codec`, built on first use.
    pub fn get(codec: Codec) -> Result<Arc<SharedLoop>, String> {
        static CACHE: [OnceLock<Result<Arc<SharedLoop>, String>>; 5] = [const { OnceLock::new() }; 5];
        CACHE[codec.index()].get_or_init(|| Self::build(codec).map(Arc::new)).clone()
    }

    fn build(codec: Codec) -> Result<SharedLoop, String> {
        let source = EncodedLoop::embedded(codec).map_err(|e| format!("embedded {codec} loop: {e}"))?;
        Ok(Self::from_source(source))
    }

    /// The loops of a media directory (`--media-dir`): `video.ivf` (VP8) and `audio.ogg`
    /// (Opus), both required, prepared exactly like the embedded loops (keyframe table,
    /// hashes). The video loop must start with a keyframe, or PLI handling could not work.
    pub fn load_dir(dir: &Path) -> Result<Vec<Arc<SharedLoop>>, String> {
        let mut out = Vec::new();
        for (name, codec) in [("video.ivf", Codec::Vp8), ("audio.ogg", Codec::Opus)] {
            let path = dir.join(name);
            let what = || format!("media dir: {} ({codec})", path.display());
            let data = std::fs::read(&path).map_err(|e| format!("{}: {e}", what()))?;
            let source = EncodedLoop::from_bytes(codec, &data).map_err(|e| format!("{}: {e}", what()))?;
            let shared = Self::from_source(Arc::new(source));
            if codec.kind() == MediaKind::Video && shared.keyframes.first() != Some(&true) {
                return Err(format!("{}: the first frame is not a keyframe", what()));
            }
            out.push(Arc::new(shared));
        }
        Ok(out)
    }

    fn from_source(source: Arc<EncodedLoop>) -> SharedLoop {
        let codec = source.codec;
        let mut stored = Vec::new();
        let mut hashes = Vec::with_capacity(source.frames.len());
        for f in &source.frames {
            to_stored(codec, &f.data, &mut stored);
            hashes.push(Arc::from(hex(&Sha256::digest(&stored))));
        }
        let keyframes: Vec<bool> = source.frames.iter().map(|f| is_keyframe(codec, &f.data)).collect();
        let size =
            source.frames.iter().find_map(|f| video_params(codec, &f.data)).map(|p| (p.width, p.height));
        let frames = source.frames.iter().map(|f| Arc::from(f.data.as_slice())).collect();
        SharedLoop { source, frames, keyframes, hashes, size }
    }

    /// Index of the first keyframe at or after `from` (wrapping around the loop).
    pub fn next_keyframe(&self, from: usize) -> Option<usize> {
        let n = self.keyframes.len();
        (0..n).map(|i| (from + i) % n).find(|&i| self.keyframes[i])
    }
}

/// What the `/sent` hashes cover, per codec.
pub fn hash_form(codec: Codec) -> &'static str {
    match codec {
        Codec::H264 => "sha256 of the access unit as 4-byte length-prefixed NAL units, AUDs removed (crate::media::codec::to_stored)",
        Codec::Av1 => "sha256 of the temporal unit's OBUs without temporal delimiters (crate::media::codec::to_stored)",
        Codec::Vp8 | Codec::Vp9 => "sha256 of the frame as sent",
        Codec::Opus => "sha256 of the Opus packet as sent",
    }
}

/// Lower-case hex.
pub fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// The MIME type LiveKit puts in `TrackInfo.mime_type`.
pub fn mime_type(codec: Codec) -> &'static str {
    match codec {
        Codec::Vp8 => "video/VP8",
        Codec::Vp9 => "video/VP9",
        Codec::H264 => "video/H264",
        Codec::Av1 => "video/AV1",
        Codec::Opus => "audio/opus",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn loops_have_keyframes_and_hashes() {
        for codec in [Codec::Vp8, Codec::Vp9, Codec::H264, Codec::Av1, Codec::Opus] {
            let l = SharedLoop::get(codec).expect("embedded loop");
            assert_eq!(l.frames.len(), l.hashes.len());
            assert_eq!(l.next_keyframe(0), Some(0), "{codec} starts with a keyframe");
            assert_eq!(l.hashes[0].len(), 64);
        }
    }

    #[test]
    fn media_dir_errors_name_the_file() {
        let dir = std::env::temp_dir().join(format!("lkrec-media-dir-{}", std::process::id()));
        std::fs::create_dir_all(&dir).expect("dir");
        let e = SharedLoop::load_dir(&dir).expect_err("missing files");
        assert!(e.contains("video.ivf"), "{e}");
        std::fs::write(dir.join("video.ivf"), include_bytes!("../assets/vp9.ivf")).expect("write");
        let e = SharedLoop::load_dir(&dir).expect_err("VP9 is not VP8");
        assert!(e.contains("FourCC"), "{e}");
        std::fs::write(dir.join("video.ivf"), include_bytes!("../assets/vp8.ivf")).expect("write");
        std::fs::write(dir.join("audio.ogg"), b"not ogg").expect("write");
        let e = SharedLoop::load_dir(&dir).expect_err("bad Ogg");
        assert!(e.contains("audio.ogg"), "{e}");
        std::fs::write(dir.join("audio.ogg"), include_bytes!("../assets/opus.ogg")).expect("write");
        let loops = SharedLoop::load_dir(&dir).expect("valid media dir");
        assert_eq!(loops.len(), 2);
        assert_eq!(loops[0].size, Some((320, 240)));
        assert_eq!(loops[0].keyframes, SharedLoop::get(Codec::Vp8).expect("vp8").keyframes);
        let _ = std::fs::remove_dir_all(&dir);
    }
}
