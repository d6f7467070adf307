//! IVF reader (the container libvpx and ffmpeg write VP8, VP9 and AV1 into): a 32-byte file
//! header, then frames of `[u32 size][u64 pts][data]`, all little-endian. Pure, and total on
//! untrusted bytes: every size is checked against the data left, so a lying length field ends
//! the read with an error instead of a panic or a huge allocation.

use super::{SourceError, SourceFrame};

/// Length of the IVF file header.
const HEADER_LEN: usize = 32;
/// Length of a frame header (size + pts).
const FRAME_HEADER_LEN: usize = 12;

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

/// `N` bytes at `at`, if present.
fn bytes<const N: usize>(data: &[u8], at: usize) -> Option<[u8; N]> {
    data.get(at..at.checked_add(N)?)?.try_into().ok()
}

/// Little-endian `u16` at `at`.
fn u16_at(data: &[u8], at: usize) -> Option<u16> {
    bytes(data, at).map(u16::from_le_bytes)
}

/// Little-endian `u32` at `at`.
fn u32_at(data: &[u8], at: usize) -> Option<u32> {
    bytes(data, at).map(u32::from_le_bytes)
}

/// Parses a whole IVF file. The header's time base is `rate` (bytes 16..20, the denominator)
/// and `scale` (bytes 20..24): a pts counts `scale / rate` seconds (ffmpeg writes 30 and 1).
pub fn read(data: &[u8]) -> Result<IvfStream, SourceError> {
    const T: SourceError = SourceError::Truncated("IVF header");
    if data.get(..4) != Some(b"DKIF".as_slice()) {
        return Err(SourceError::BadSignature("IVF"));
    }
    let header_len = usize::from(u16_at(data, 6).ok_or(T)?);
    let fourcc = bytes::<4>(data, 8).ok_or(T)?;
    let width = u16_at(data, 12).ok_or(T)?;
    let height = u16_at(data, 14).ok_or(T)?;
    let rate = u32_at(data, 16).ok_or(T)?;
    let scale = u32_at(data, 20).ok_or(T)?;
    if header_len < HEADER_LEN || rate == 0 || scale == 0 {
        return Err(SourceError::Malformed("IVF header"));
    }
    let body = data.get(header_len..).ok_or(T)?;
    Ok(IvfStream { fourcc, width, height, frames: read_frames(body, rate, scale)? })
}

/// The frames after the file header.
fn read_frames(mut rest: &[u8], rate: u32, scale: u32) -> Result<Vec<SourceFrame>, SourceError> {
    const T: SourceError = SourceError::Truncated("IVF frame");
    let mut frames = Vec::new();
    while !rest.is_empty() {
        let size = u32_at(rest, 0).ok_or(T)?;
        let pts = bytes::<8>(rest, 4).map(u64::from_le_bytes).ok_or(T)?;
        let size = usize::try_from(size).map_err(|_| T)?;
        let end = FRAME_HEADER_LEN.checked_add(size).ok_or(T)?;
        let data = rest.get(FRAME_HEADER_LEN..end).ok_or(T)?;
        frames.push(SourceFrame { rtp_ts: to_90khz(pts, rate, scale)?, data: data.to_vec() });
        rest = rest.get(end..).unwrap_or(&[]);
    }
    Ok(frames)
}

/// `pts * scale / rate` seconds on the 90 kHz clock.
fn to_90khz(pts: u64, rate: u32, scale: u32) -> Result<u64, SourceError> {
    let ts = u128::from(pts) * u128::from(scale) * 90_000 / u128::from(rate);
    u64::try_from(ts).map_err(|_| SourceError::Malformed("IVF pts"))
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn header(rate: u32, scale: u32) -> Vec<u8> {
        let mut h = b"DKIF\0\0\x20\0VP80\x40\x01\xf0\x00".to_vec();
        h.extend_from_slice(&rate.to_le_bytes());
        h.extend_from_slice(&scale.to_le_bytes());
        h.extend_from_slice(&[0; 8]);
        h
    }

    fn frame(pts: u64, data: &[u8]) -> Vec<u8> {
        let mut f = (data.len() as u32).to_le_bytes().to_vec();
        f.extend_from_slice(&pts.to_le_bytes());
        f.extend_from_slice(data);
        f
    }

    #[test]
    fn reads_frames_and_time_base() {
        let mut file = header(30, 1);
        file.extend(frame(0, b"abc"));
        file.extend(frame(2, b""));
        let s = read(&file).unwrap();
        assert_eq!((&s.fourcc, s.width, s.height), (b"VP80", 320, 240));
        let got: Vec<(u64, &[u8])> = s.frames.iter().map(|f| (f.rtp_ts, &f.data[..])).collect();
        assert_eq!(got, [(0, &b"abc"[..]), (6000, &b""[..])]);
        let mut ms = header(1000, 1);
        ms.extend(frame(40, b"x"));
        assert_eq!(read(&ms).unwrap().frames[0].rtp_ts, 3600);
    }

    #[test]
    fn errors_table() {
        let mut lying = header(30, 1);
        lying.extend_from_slice(&u32::MAX.to_le_bytes());
        lying.extend_from_slice(&[0; 8]);
        let mut short_frame_header = header(30, 1);
        short_frame_header.extend_from_slice(&[1, 0, 0]);
        let cases: Vec<(Vec<u8>, SourceError)> = vec![
            (b"RIFF".to_vec(), SourceError::BadSignature("IVF")),
            (b"DKIF\0\0".to_vec(), SourceError::Truncated("IVF header")),
            (header(0, 1), SourceError::Malformed("IVF header")),
            (lying, SourceError::Truncated("IVF frame")),
            (short_frame_header, SourceError::Truncated("IVF frame")),
        ];
        for (file, want) in cases {
            assert_eq!(read(&file).unwrap_err(), want, "{file:02x?}");
        }
    }

    #[test]
    fn fixtures() {
        for (bytes, fourcc) in [
            (&include_bytes!("../../assets/vp8.ivf")[..], b"VP80"),
            (&include_bytes!("../../assets/vp9.ivf")[..], b"VP90"),
            (&include_bytes!("../../assets/av1.ivf")[..], b"AV01"),
        ] {
            let s = read(bytes).unwrap();
            assert_eq!((&s.fourcc, s.width, s.height), (fourcc, 320, 240));
            assert_eq!(s.frames.len(), 120);
            let ts: Vec<u64> = s.frames.iter().map(|f| f.rtp_ts).collect();
            let want: Vec<u64> = (0..120).map(|i| i * 3000).collect();
            assert_eq!(ts, want);
        }
    }

    #[test]
    fn frames_cover_the_whole_file() {
        let s = read(include_bytes!("../../assets/vp8.ivf")).unwrap();
        let total: usize = s.frames.iter().map(|f| f.data.len() + FRAME_HEADER_LEN).sum();
        assert_eq!(total + HEADER_LEN, include_bytes!("../../assets/vp8.ivf").len());
    }

    proptest! {
        #[test]
        fn never_panics(data in proptest::collection::vec(any::<u8>(), 0..128)) {
            let _ = read(&data);
            let mut file = header(30, 1);
            file.extend_from_slice(&data);
            let _ = read(&file);
        }
    }
}
