//! Manifests: beside every part file `F`, a file `F.json` holding the recording's JSON exactly as
//! `GET /recordings/{id}` returned it when the part closed, rewritten when the recording ends
//! (and at each later status change while the file is still on disk). An archive of files, or a
//! bucket of objects (the uploader puts `F.json` next to `F`'s object, same key + `.json`),
//! explains itself: room, participant, tracks and codecs, time range, the other parts.
//!
//! Written atomically: a dot-file beside it (`.F.json.tmp`, ignored like the journal), synced,
//! then renamed over `F.json`, so a reader or a crash never sees half a manifest. A manifest is a
//! description, not the record of truth (that is the journal): failing to write one is logged
//! and the recording goes on.

use std::io::Write;
use std::path::{Path, PathBuf};

use crate::recording::RecordingInfo;

/// The manifest's path for a part file: the file's path + `.json`.
pub fn path_for(file: &Path) -> PathBuf {
    let mut p = file.as_os_str().to_owned();
    p.push(".json");
    PathBuf::from(p)
}

/// The temporary file a manifest is written to before the rename (a dot-file in the same
/// directory, so the rename stays on one filesystem).
fn temp_for(manifest: &Path) -> PathBuf {
    let name = manifest.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_default();
    manifest.with_file_name(format!(".{name}.tmp"))
}

/// Writes `info` as the manifest of the part file `file` (temp file, `fsync`, rename). Does
/// nothing when `file` is not on disk (a part removed after its upload keeps no manifest here).
pub fn write(file: &Path, info: &RecordingInfo) -> std::io::Result<()> {
    if !file.exists() {
        return Ok(());
    }
    let manifest = path_for(file);
    let tmp = temp_for(&manifest);
    let body = serde_json::to_vec_pretty(info).map_err(std::io::Error::other)?;
    let result = (|| {
        let mut f = std::fs::File::create(&tmp)?;
        f.write_all(&body)?;
        f.write_all(b"\n")?;
        f.sync_data()?;
        std::fs::rename(&tmp, &manifest)
    })();
    if result.is_err() {
        let _ = std::fs::remove_file(&tmp);
    }
    result
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::recording::{RecordingSpec, Status};

    fn info() -> RecordingInfo {
        let spec = RecordingSpec {
            id: "RC_1".into(),
            room: "r".into(),
            identity: "alice".into(),
            profile: Default::default(),
            layout: Default::default(),
            template: "t".into(),
            started_unix_ms: 0,
            h264_container: Default::default(),
        };
        RecordingInfo::pending(&spec)
    }

    #[test]
    fn manifest_sits_beside_the_file_and_is_replaced_whole() {
        let dir = tempfile::tempdir().expect("tempdir");
        let file = dir.path().join("alice-1.webm");
        assert_eq!(path_for(&file), dir.path().join("alice-1.webm.json"));
        write(&file, &info()).expect("no file: nothing to do");
        assert!(!path_for(&file).exists(), "no manifest without its part file");
        std::fs::write(&file, b"media").expect("part file");
        write(&file, &info()).expect("write");
        let mut done = info();
        done.status = Status::Complete;
        write(&file, &done).expect("rewrite");
        let v: serde_json::Value =
            serde_json::from_slice(&std::fs::read(path_for(&file)).expect("read")).expect("json");
        assert_eq!((v["id"].as_str(), v["status"].as_str()), (Some("RC_1"), Some("complete")));
        let names: Vec<String> = std::fs::read_dir(dir.path())
            .expect("dir")
            .flatten()
            .map(|e| e.file_name().to_string_lossy().into_owned())
            .collect();
        assert_eq!(names.len(), 2, "no temporary file left behind: {names:?}");
    }
}
