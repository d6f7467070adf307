//! STUB
use super::{SourceError, SourceFrame};
/// An Ogg Opus file.
#[derive(Debug, Clone)]
pub struct OggOpusStream {
    /// Channels from OpusHead.
    pub channels: u8,
    /// Pre-skip from OpusHead.
    pub pre_skip: u16,
    /// Packets, rtp_ts on the 48 kHz clock.
    pub frames: Vec<SourceFrame>,
}
/// Parses a whole Ogg Opus file.
pub fn read(_data: &[u8]) -> Result<OggOpusStream, SourceError> {
    todo!()
}
