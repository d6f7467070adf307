//! STUB: replaced by the codec helper.
use super::VideoParams;
/// Whether the frame is a keyframe.
pub fn is_keyframe(_frame: &[u8]) -> bool {
    todo!()
}
/// Params from a keyframe.
pub fn params(_frame: &[u8]) -> Option<VideoParams> {
    todo!()
}
/// Drops temporal delimiter OBUs.
pub fn strip_temporal_delimiters(_frame: &[u8], _out: &mut Vec<u8>) {
    todo!()
}
