//! STUB
/// Samples at 48 kHz in this packet (RFC 6716 §3.1), `None` if malformed.
pub fn packet_samples(_packet: &[u8]) -> Option<u32> {
    todo!()
}
