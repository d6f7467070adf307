//! STUB
use super::{MuxError, MuxFrame, Patch, TrackConfig};
/// Writer.
#[derive(Debug)]
pub struct OggOpusWriter {}
impl OggOpusWriter {
    /// New writer; appends the header.
    pub fn new(_tracks: &[TrackConfig], _out: &mut Vec<u8>) -> Result<OggOpusWriter, MuxError> {
        todo!()
    }
    /// Appends a frame.
    pub fn write(&mut self, _frame: &MuxFrame<'_>, _out: &mut Vec<u8>) -> Result<(), MuxError> {
        todo!()
    }
    /// Flush point.
    pub fn flush(&mut self, _out: &mut Vec<u8>) {
        todo!()
    }
    /// Clean close.
    pub fn finish(&mut self, _out: &mut Vec<u8>) -> Vec<Patch> {
        todo!()
    }
}
