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
/// Annex-B → 4-byte length prefixed, AUDs dropped.
pub fn annexb_to_avcc(_frame: &[u8], _out: &mut Vec<u8>) {
    todo!()
}
/// avcC with no parameter sets.
pub fn avcc_without_parameter_sets(_profile: u8, _compat: u8, _level: u8) -> Vec<u8> {
    todo!()
}
