//! File names from the `FILENAME_TEMPLATE`. Pure: no I/O, no clock (times are passed in).
//!
//! Invariant: [`relative_path`] returns a relative path of plain components (no `..`, no `.`,
//! no root, no control characters, bounded length), so `recordings_dir.join(it)` always stays
//! under the recordings directory, whatever the template or the room and identity names hold.

use std::path::PathBuf;

/// The default template (the seed's).
pub const DEFAULT_TEMPLATE: &str = "{room_name}/{publisher_identity}-{time}";

/// At most this many bytes per path component.
const MAX_COMPONENT: usize = 96;
/// At most this many directory levels.
const MAX_COMPONENTS: usize = 6;

/// The values a template can use.
#[derive(Debug, Clone)]
pub struct NameVars<'a> {
    /// `{room_name}`.
    pub room: &'a str,
    /// `{publisher_identity}`.
    pub identity: &'a str,
    /// `{recording_id}`.
    pub recording_id: &'a str,
    /// `{track_type}`: `av`, `audio` or `video`.
    pub track_type: &'a str,
    /// Start time, ms since the UNIX epoch: `{time}` is this number, `{utc}` is
    /// `YYYYMMDDTHHMMSSZ`.
    pub unix_ms: u64,
}

/// The file's path relative to the recordings directory: the rendered template, sanitized,
/// plus `-part{n}` for parts after the first, plus `.{ext}`.
pub fn relative_path(template: &str, vars: &NameVars<'_>, part: u32, ext: &str) -> PathBuf {
    let rendered = render(template, vars);
    let mut parts: Vec<String> =
        rendered.split(['/', '\\']).filter_map(sanitize_component).take(MAX_COMPONENTS).collect();
    if parts.is_empty() {
        parts.push(format!("recording-{}", sanitize_component(vars.recording_id).unwrap_or_default()));
    }
    let last = parts.last_mut().expect("not empty: pushed above");
    if part > 1 {
        last.push_str(&format!("-part{part}"));
    }
    last.push('.');
    last.push_str(&sanitize_component(ext).unwrap_or_else(|| "bin".into()));
    parts.iter().collect()
}

/// Substitutes the placeholders; unknown `{...}` stay as they are (and get sanitized).
pub fn render(template: &str, v: &NameVars<'_>) -> String {
    template
        .replace("{room_name}", v.room)
        .replace("{publisher_identity}", v.identity)
        .replace("{recording_id}", v.recording_id)
        .replace("{track_type}", v.track_type)
        .replace("{time}", &v.unix_ms.to_string())
        .replace("{utc}", &utc_stamp(v.unix_ms / 1000))
}

/// One path component made safe: letters, digits, `-`, `_`, `.` kept, anything else `_`;
/// `.` and `..` and empty components dropped; leading dots removed; length bounded.
fn sanitize_component(s: &str) -> Option<String> {
    let mut out: String = s
        .chars()
        .filter(|c| !c.is_control())
        .map(|c| if c.is_alphanumeric() || matches!(c, '-' | '_' | '.') { c } else { '_' })
        .collect();
    out = out.trim_start_matches('.').to_owned();
    while out.len() > MAX_COMPONENT {
        out.pop();
    }
    (!out.is_empty()).then_some(out)
}

/// `YYYYMMDDTHHMMSSZ` for seconds since the UNIX epoch (proleptic Gregorian, UTC).
pub fn utc_stamp(secs: u64) -> String {
    let (days, rem) = (secs / 86_400, secs % 86_400);
    let (y, m, d) = civil_from_days(days as i64);
    format!("{y:04}{m:02}{d:02}T{:02}{:02}{:02}Z", rem / 3600, rem % 3600 / 60, rem % 60)
}

/// Howard Hinnant's days-to-civil algorithm.
fn civil_from_days(z: i64) -> (i64, u32, u32) {
    let z = z + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = (doy - (153 * mp + 2) / 5 + 1) as u32;
    let m = if mp < 10 { mp + 3 } else { mp - 9 } as u32;
    (yoe + era * 400 + i64::from(m <= 2), m, d)
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;
    use std::path::{Component, Path};

    fn vars<'a>(room: &'a str, identity: &'a str) -> NameVars<'a> {
        NameVars { room, identity, recording_id: "RC_1", track_type: "av", unix_ms: 1_764_000_000_123 }
    }

    #[test]
    fn default_template() {
        let p = relative_path(DEFAULT_TEMPLATE, &vars("room1", "alice"), 1, "webm");
        assert_eq!(p, Path::new("room1/alice-1764000000123.webm"));
        let p2 = relative_path(DEFAULT_TEMPLATE, &vars("room1", "alice"), 2, "webm");
        assert_eq!(p2, Path::new("room1/alice-1764000000123-part2.webm"));
    }

    #[test]
    fn all_placeholders() {
        let t = "{utc}/{recording_id}_{track_type}_{publisher_identity}";
        let p = relative_path(t, &vars("r", "bob"), 1, "ogg");
        assert_eq!(p, Path::new("20251124T160000Z/RC_1_av_bob.ogg"));
    }

    #[test]
    fn traversal_and_absolute_paths_are_neutralised() {
        let p = relative_path(
            "/../{room_name}/../../{publisher_identity}",
            &vars("..", "../etc/passwd"),
            1,
            "mkv",
        );
        assert_eq!(p, Path::new("etc/passwd.mkv"));
        let p = relative_path("{room_name}", &vars("a\u{0}b\nc", "x"), 1, "webm");
        assert_eq!(p, Path::new("abc.webm"));
        let p = relative_path("", &vars("r", "x"), 1, "webm");
        assert_eq!(p, Path::new("recording-RC_1.webm"));
    }

    proptest! {
        #[test]
        fn always_under_the_recordings_dir(t in ".{0,80}", room in ".{0,40}", who in ".{0,40}", part in 1u32..5) {
            let p = relative_path(&t, &vars(&room, &who), part, "webm");
            prop_assert!(p.is_relative());
            prop_assert!(p.components().all(|c| matches!(c, Component::Normal(_))), "{p:?}");
            prop_assert!(p.to_string_lossy().chars().all(|c| !c.is_control()));
            prop_assert!(p.as_os_str().len() <= (MAX_COMPONENT + 16) * MAX_COMPONENTS);
            let base = Path::new("/rec");
            prop_assert!(base.join(&p).starts_with(base));
        }
    }
}
