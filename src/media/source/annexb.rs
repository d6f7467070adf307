//! STUB
use super::{SourceError, SourceFrame};
/// Splits an H.264 Annex-B elementary stream into access units at `fps` frames per second.
pub fn read(_data: &[u8], _fps: u32) -> Result<Vec<SourceFrame>, SourceError> {
    todo!()
}
