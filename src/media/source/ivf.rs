//! STUB
use super::{SourceError, SourceFrame};
/// An IVF file.
#[derive(Debug, Clone)]
pub struct IvfStream {
    /// FourCC, e.g. `VP80`, `VP90`, `AV01`.
    pub fourcc: [u8; 4],
    /// Width.
    pub width: u16,
    /// Height.
    pub height: u16,
    /// Frames with rtp_ts on a 90 kHz clock.
    pub frames: Vec<SourceFrame>,
}
/// Parses a whole IVF file.
pub fn read(_data: &[u8]) -> Result<IvfStream, SourceError> {
    todo!()
}
