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
