//! The durable record of recording jobs: an append-only journal of JSON lines under the
//! recordings directory, written (and fsynced) BEFORE the daemon acts, so that a daemon
//! restarted after `kill -9` knows every recording that was live, finalizing or waiting for
//! its upload or callbacks.
//!
//! Why a JSON-lines journal and not redb or SQLite: the records are few and small (a handful
//! per recording), only ever appended and replayed whole at start-up; a text journal needs no
//! new dependency or C build, is readable with `cat` when something goes wrong, and its only
//! crash failure mode, a torn last line, is detected and ignored on replay (the event it held
//! was not acted on: it is written first). [`Journal::compact`] rewrites the file with only the
//! unfinished recordings and the kept history (write to a temporary file, fsync, rename), so it
//! stays bounded in a daemon that runs for months.
//!
//! The journal is also the store of the ended recordings' history: [`Event::Ended`] holds a
//! recording's final JSON (what `GET /recordings/{id}` answered when it ended), so it answers
//! the same after a restart. That history is bounded by the supervisor's
//! [`Retention`](super::history::Retention): an expired entry ([`JobLog::expire`], an
//! [`Event::Expired`] record) is gone at once, and from the file at the next compaction. An embedded database would add nothing here: the
//! history is at most `HISTORY_MAX_RECORDINGS` small records, read whole at start-up and
//! served from memory.
//!
//! Invariant: replaying the journal gives, per recording id, the latest spec, parts, status,
//! upload outputs and delivered callbacks, and a recording that was [`Event::Forget`]-ed is
//! gone from the jobs; separately, the last [`Event::Ended`] of every recording not expired.

use std::collections::{BTreeMap, BTreeSet};
use std::fs::{File, OpenOptions};
use std::io::{BufRead, BufReader, Write};
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use crate::ids::RecordingId;
use crate::recording::{RecordingInfo, RecordingSpec, Status};

/// The journal's file name inside the recordings directory.
pub const FILE_NAME: &str = ".recorder-journal.jsonl";

/// One journal record.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "ev", rename_all = "snake_case")]
pub enum Event {
    /// A recording was accepted.
    Started {
        /// What to record.
        spec: RecordingSpec,
    },
    /// A part's files were opened.
    Part {
        /// Recording id.
        id: RecordingId,
        /// Part number.
        part: u32,
        /// The part's files.
        files: Vec<PathBuf>,
        /// When, ms since the UNIX epoch (0: unknown).
        #[serde(default)]
        at_ms: u64,
    },
    /// A part was closed cleanly: its media time, size and frames (so a restart reports them).
    PartEnded {
        /// Recording id.
        id: RecordingId,
        /// Part number.
        part: u32,
        /// Media time in it, seconds.
        duration_s: f64,
        /// Bytes in it.
        bytes: u64,
        /// Frames written into it.
        frames: u64,
        /// When, ms since the UNIX epoch.
        at_ms: u64,
    },
    /// The recording's status changed.
    Status {
        /// Recording id.
        id: RecordingId,
        /// New status.
        status: Status,
        /// Why it failed.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        error: Option<String>,
    },
    /// The files are uploaded.
    Uploaded {
        /// Recording id.
        id: RecordingId,
        /// Object locations.
        outputs: Vec<String>,
    },
    /// The result callback to this URL was accepted.
    Delivered {
        /// Recording id.
        id: RecordingId,
        /// Callback URL.
        url: String,
    },
    /// Nothing is left to do for this recording (its history, [`Event::Ended`], stays).
    Forget {
        /// Recording id.
        id: RecordingId,
    },
    /// The recording ended (`complete` or `failed`): its final JSON, kept as history.
    Ended(Box<EndedRecording>),
    /// The history no longer keeps this recording (retention).
    Expired {
        /// Recording id.
        id: RecordingId,
    },
}

/// An ended recording as the history keeps it ([`Event::Ended`]).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct EndedRecording {
    /// What was recorded.
    pub spec: RecordingSpec,
    /// The recording as the API showed it when it ended.
    pub info: RecordingInfo,
    /// When it ended, ms since the UNIX epoch (what the retention counts from).
    pub at_ms: u64,
}

/// What replaying the journal gives.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Replayed {
    /// The jobs (recordings with something left to do), by recording id.
    pub jobs: BTreeMap<RecordingId, Job>,
    /// The ended recordings' history, by recording id.
    pub history: BTreeMap<RecordingId, EndedRecording>,
}

impl Replayed {
    /// The records that recreate this state (what a compaction writes).
    fn events(&self) -> impl Iterator<Item = Event> + '_ {
        let jobs = self.jobs.values().flat_map(job_events);
        jobs.chain(self.history.values().map(|h| Event::Ended(Box::new(h.clone()))))
    }
}

/// What the journal knows about one recording.
#[derive(Debug, Clone, PartialEq)]
pub struct Job {
    /// What to record.
    pub spec: RecordingSpec,
    /// Part number -> (files, opened at ms since the UNIX epoch).
    pub parts: BTreeMap<u32, (Vec<PathBuf>, u64)>,
    /// Latest status.
    pub status: Status,
    /// Why it failed.
    pub error: Option<String>,
    /// Object locations, once uploaded.
    pub outputs: Option<Vec<String>>,
    /// Callback URLs that accepted the result.
    pub delivered: BTreeSet<String>,
    /// Parts closed cleanly: part number -> what they hold.
    pub ended: BTreeMap<u32, PartEnd>,
}

/// What a cleanly closed part holds ([`Event::PartEnded`]).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct PartEnd {
    /// Media time, seconds.
    pub duration_s: f64,
    /// Bytes.
    pub bytes: u64,
    /// Frames written.
    pub frames: u64,
    /// Closed at, ms since the UNIX epoch.
    pub at_ms: u64,
}

/// Why the journal could not be used.
#[derive(Debug, thiserror::Error)]
pub enum JournalError {
    /// Reading, writing or syncing the file failed.
    #[error("recording journal {path}: {source}")]
    Io {
        /// The journal file.
        path: PathBuf,
        /// The error.
        source: std::io::Error,
    },
    /// A record in the middle of the file is not valid (a torn LAST line is expected after a
    /// crash and skipped; anything else means the file was damaged).
    #[error("recording journal {path} line {line}: {reason}")]
    Corrupt {
        /// The journal file.
        path: PathBuf,
        /// 1-based line number.
        line: usize,
        /// What is wrong.
        reason: String,
    },
}

/// The open journal (appends go to the end of the file).
#[derive(Debug)]
pub struct Journal {
    path: PathBuf,
    file: File,
    /// Records in the file beyond what a compaction would write (appended, replaced, expired).
    appended: usize,
}

impl Journal {
    /// Opens (creating if needed) the journal in `dir` and replays it: the jobs it knows of
    /// and the history of ended recordings, by recording id.
    pub fn open(dir: &Path) -> Result<(Journal, Replayed), JournalError> {
        let path = dir.join(FILE_NAME);
        let io = |source| JournalError::Io { path: path.clone(), source };
        std::fs::create_dir_all(dir).map_err(io)?;
        let (state, valid_len, records) = match File::open(&path) {
            Ok(f) => replay(&path, f)?,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => (Replayed::default(), 0, 0),
            Err(e) => return Err(io(e)),
        };
        let file = OpenOptions::new().create(true).append(true).open(&path).map_err(io)?;
        // drop a torn last line so the next record starts on a line of its own
        if file.metadata().map_err(io)?.len() != valid_len {
            file.set_len(valid_len).map_err(io)?;
        }
        // what a compaction would drop counts toward the next one, so restarts cannot grow it
        let appended = records.saturating_sub(state.events().count());
        Ok((Journal { path, file, appended }, state))
    }

    /// Appends one record and makes it durable (fdatasync) before returning.
    pub fn append(&mut self, ev: &Event) -> Result<(), JournalError> {
        let mut line = serde_json::to_vec(ev)
            .map_err(|e| JournalError::Io { path: self.path.clone(), source: std::io::Error::other(e) })?;
        line.push(b'\n');
        let io = |source| JournalError::Io { path: self.path.clone(), source };
        self.file.write_all(&line).map_err(io)?;
        self.file.sync_data().map_err(io)?;
        self.appended += 1;
        Ok(())
    }

    /// Records in the file that the next compaction drops (appended since open or the last
    /// compaction, and what open found superseded).
    pub fn appended(&self) -> usize {
        self.appended
    }

    /// Rewrites the journal with only `state` (the unfinished jobs and the kept history):
    /// temporary file, fsync, rename, fsync of the directory.
    pub fn compact(&mut self, state: &Replayed) -> Result<(), JournalError> {
        let io = |source| JournalError::Io { path: self.path.clone(), source };
        let tmp = self.path.with_extension("jsonl.tmp");
        let mut out = Vec::new();
        for ev in state.events() {
            let line = serde_json::to_vec(&ev).map_err(|e| io(std::io::Error::other(e)))?;
            out.extend_from_slice(&line);
            out.push(b'\n');
        }
        let mut f = File::create(&tmp).map_err(io)?;
        f.write_all(&out).map_err(io)?;
        f.sync_all().map_err(io)?;
        std::fs::rename(&tmp, &self.path).map_err(io)?;
        if let Some(dir) = self.path.parent() {
            File::open(dir).and_then(|d| d.sync_all()).map_err(io)?;
        }
        self.file = OpenOptions::new().append(true).open(&self.path).map_err(io)?;
        self.appended = 0;
        Ok(())
    }
}

/// The journal and the jobs and history it describes, kept in step: [`JobLog::record`] appends
/// (durably) and applies; the file is compacted to the unfinished jobs and the kept history
/// once [`COMPACT_EVERY`] records are superseded.
#[derive(Debug)]
pub struct JobLog {
    journal: Journal,
    state: Replayed,
}

/// Records between compactions.
pub const COMPACT_EVERY: usize = 4096;

impl JobLog {
    /// Opens the journal in `dir`. A journal damaged in the middle is moved aside (to
    /// `<name>.damaged-<unix ms>`, with an error logged) and a new one started: the daemon must
    /// come up; the files themselves are untouched.
    pub fn open(dir: &Path) -> Result<JobLog, JournalError> {
        match Journal::open(dir) {
            Ok((journal, state)) => Ok(JobLog { journal, state }),
            Err(JournalError::Corrupt { path, line, reason }) => {
                let aside = path.with_extension(format!("damaged-{}", crate::recording::unix_ms_now()));
                tracing::error!(path = %path.display(), line, %reason, aside = %aside.display(), "recording journal damaged; moved aside, starting a new one");
                std::fs::rename(&path, &aside)
                    .map_err(|source| JournalError::Io { path: path.clone(), source })?;
                let (journal, state) = Journal::open(dir)?;
                Ok(JobLog { journal, state })
            }
            Err(e) => Err(e),
        }
    }

    /// The jobs as replayed and recorded since.
    pub fn jobs(&self) -> &BTreeMap<RecordingId, Job> {
        &self.state.jobs
    }

    /// The ended recordings' history as replayed and recorded since (not expired).
    pub fn history(&self) -> &BTreeMap<RecordingId, EndedRecording> {
        &self.state.history
    }

    /// Appends `ev` durably, then applies it.
    pub fn record(&mut self, ev: Event) -> Result<(), JournalError> {
        self.journal.append(&ev)?;
        apply(&mut self.state, ev);
        self.compact_if_due()
    }

    /// Drops `id` from the history (retention): journaled, so a restart with a longer
    /// retention does not bring it back; the file loses it at the next compaction.
    pub fn expire(&mut self, id: &RecordingId) -> Result<(), JournalError> {
        if !self.state.history.contains_key(id) {
            return Ok(());
        }
        // the Ended record it supersedes goes too at the next compaction
        self.journal.appended += 1;
        self.record(Event::Expired { id: id.clone() })
    }

    fn compact_if_due(&mut self) -> Result<(), JournalError> {
        if self.journal.appended() >= COMPACT_EVERY {
            self.journal.compact(&self.state)?;
        }
        Ok(())
    }
}

/// The records that recreate `job`.
fn job_events(job: &Job) -> Vec<Event> {
    let id = job.spec.id.clone();
    let mut evs = vec![Event::Started { spec: job.spec.clone() }];
    for (part, (files, at_ms)) in &job.parts {
        evs.push(Event::Part { id: id.clone(), part: *part, files: files.clone(), at_ms: *at_ms });
    }
    for (part, e) in &job.ended {
        evs.push(Event::PartEnded {
            id: id.clone(),
            part: *part,
            duration_s: e.duration_s,
            bytes: e.bytes,
            frames: e.frames,
            at_ms: e.at_ms,
        });
    }
    evs.push(Event::Status { id: id.clone(), status: job.status, error: job.error.clone() });
    if let Some(outputs) = &job.outputs {
        evs.push(Event::Uploaded { id: id.clone(), outputs: outputs.clone() });
    }
    for url in &job.delivered {
        evs.push(Event::Delivered { id: id.clone(), url: url.clone() });
    }
    evs
}

/// Applies one record to the jobs and history.
pub fn apply(state: &mut Replayed, ev: Event) {
    let jobs = &mut state.jobs;
    match ev {
        Event::Started { spec } => {
            let job = Job {
                spec: spec.clone(),
                parts: BTreeMap::new(),
                status: Status::Pending,
                error: None,
                outputs: None,
                delivered: BTreeSet::new(),
                ended: BTreeMap::new(),
            };
            jobs.insert(spec.id, job);
        }
        Event::Part { id, part, files, at_ms } => {
            if let Some(j) = jobs.get_mut(&id) {
                j.parts.insert(part, (files, at_ms));
            }
        }
        Event::PartEnded { id, part, duration_s, bytes, frames, at_ms } => {
            if let Some(j) = jobs.get_mut(&id) {
                j.ended.insert(part, PartEnd { duration_s, bytes, frames, at_ms });
            }
        }
        Event::Status { id, status, error } => {
            if let Some(j) = jobs.get_mut(&id) {
                j.status = status;
                j.error = error;
            }
        }
        Event::Uploaded { id, outputs } => {
            if let Some(j) = jobs.get_mut(&id) {
                j.outputs = Some(outputs);
            }
        }
        Event::Delivered { id, url } => {
            if let Some(j) = jobs.get_mut(&id) {
                j.delivered.insert(url);
            }
        }
        Event::Forget { id } => {
            jobs.remove(&id);
        }
        Event::Ended(ended) => {
            state.history.insert(ended.info.id.clone(), *ended);
        }
        Event::Expired { id } => {
            state.history.remove(&id);
        }
    }
}

/// Replays the file: the jobs and history, the length of the valid prefix (a torn last line is
/// cut) and the number of records in it.
fn replay(path: &Path, f: File) -> Result<(Replayed, u64, usize), JournalError> {
    let mut state = Replayed::default();
    let mut reader = BufReader::new(f);
    let mut valid = 0u64;
    let mut line = Vec::new();
    let mut n = 0;
    let mut torn: Option<(usize, String)> = None;
    loop {
        line.clear();
        let read = reader
            .read_until(b'\n', &mut line)
            .map_err(|source| JournalError::Io { path: path.to_owned(), source })?;
        if read == 0 {
            break;
        }
        n += 1;
        if let Some((at, reason)) = torn.take() {
            // a bad line followed by more lines is damage, not a crash mid-append
            return Err(JournalError::Corrupt { path: path.to_owned(), line: at, reason });
        }
        let complete = line.last() == Some(&b'\n');
        match serde_json::from_slice::<Event>(&line) {
            Ok(ev) if complete => {
                apply(&mut state, ev);
                valid += read as u64;
            }
            Ok(_) => torn = Some((n, "no line end".into())),
            Err(e) => torn = Some((n, e.to_string())),
        }
    }
    let records = if torn.is_some() { n - 1 } else { n };
    if let Some((at, reason)) = torn {
        tracing::warn!(path = %path.display(), line = at, %reason, "ignoring a torn last journal record");
    }
    Ok((state, valid, records))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::recording::{Layout, Profile};

    fn spec(id: &str) -> RecordingSpec {
        RecordingSpec {
            id: id.into(),
            room: "r".into(),
            identity: "alice".into(),
            profile: Profile::Av,
            layout: Layout::Participant,
            template: "{room_name}/{publisher_identity}".into(),
            started_unix_ms: 1,
            h264_container: Default::default(),
        }
    }

    #[test]
    fn specs_journaled_before_the_h264_container_option_read_as_mkv() {
        let old = r#"{"id":"RC_1","room":"r","identity":"a","profile":"av","layout":"participant","template":"t","started_unix_ms":1}"#;
        let spec: RecordingSpec = serde_json::from_str(old).expect("old spec");
        assert_eq!(spec.h264_container, crate::recording::H264Container::Mkv);
        let mp4 = old.replace(r#""started_unix_ms":1"#, r#""started_unix_ms":1,"h264_container":"mp4""#);
        let spec: RecordingSpec = serde_json::from_str(&mp4).expect("new spec");
        assert_eq!(spec.h264_container, crate::recording::H264Container::Mp4);
    }

    /// Lines as the journal wrote them when the ids were plain `String`s (ids are now types,
    /// serialized as the same strings): each still parses, into the same ids, and writes back
    /// byte for byte; replayed, they give jobs and history keyed by those ids.
    #[test]
    fn journal_lines_from_before_the_typed_ids_read_and_write_the_same() {
        let spec = r#"{"id":"RC_00000000000a","room":"r é","identity":"alice","profile":"av","layout":"participant","template":"t","started_unix_ms":1,"h264_container":"mkv"}"#;
        let info = r#"{"id":"RC_00000000000b","room":"r","participant":"bob","status":"complete","tracks":[{"sid":"TR_v","kind":"video","codec":"vp8"}],"skipped_tracks":[{"sid":"TR_e","kind":"audio","mime":"audio/opus","reason":"e2ee"}],"started_at":"1970-01-01T00:00:00.001Z","ended_at":null,"duration_s":1.5,"bytes":10,"files":["r/b.webm"],"parts":[{"part":1,"files":["r/b.webm"],"started_at":null,"ended_at":null,"duration_s":1.5,"bytes":10}],"outputs":[],"error":null,"frames_lost":0,"frames_dropped":0}"#;
        let spec_b = spec.replace("RC_00000000000a", "RC_00000000000b");
        let lines = [
            format!(r#"{{"ev":"started","spec":{spec}}}"#),
            r#"{"ev":"part","id":"RC_00000000000a","part":1,"files":["r/a.webm"],"at_ms":7}"#.to_owned(),
            r#"{"ev":"part_ended","id":"RC_00000000000a","part":1,"duration_s":1.0,"bytes":3,"frames":2,"at_ms":8}"#.to_owned(),
            r#"{"ev":"status","id":"RC_00000000000a","status":"active"}"#.to_owned(),
            r#"{"ev":"uploaded","id":"RC_00000000000a","outputs":["s3://b/a"]}"#.to_owned(),
            r#"{"ev":"delivered","id":"RC_00000000000a","url":"http://x"}"#.to_owned(),
            format!(r#"{{"ev":"ended","spec":{spec_b},"info":{info},"at_ms":9}}"#),
        ];
        for line in &lines {
            let ev: Event = serde_json::from_str(line).unwrap_or_else(|e| panic!("{line}: {e}"));
            assert_eq!(&serde_json::to_string(&ev).unwrap(), line);
        }
        let Event::Started { spec: parsed } = serde_json::from_str(&lines[0]).unwrap() else {
            unreachable!()
        };
        assert_eq!(
            (parsed.id.as_str(), parsed.room.as_str(), parsed.identity.as_str()),
            ("RC_00000000000a", "r é", "alice")
        );
        let Event::Ended(ended) = serde_json::from_str(&lines[6]).unwrap() else { unreachable!() };
        assert_eq!(ended.info.tracks[0].sid, "TR_v");
        assert_eq!(ended.info.participant, "bob");
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join(FILE_NAME), lines.join("\n") + "\n").unwrap();
        let (_, state) = Journal::open(dir.path()).unwrap();
        let job = &state.jobs["RC_00000000000a"];
        assert_eq!((job.status, job.parts.len(), job.delivered.len()), (Status::Active, 1, 1));
        assert_eq!(state.history["RC_00000000000b"].info.bytes, 10);
    }

    fn fill(j: &mut Journal) {
        j.append(&Event::Started { spec: spec("RC_1") }).unwrap();
        j.append(&Event::Started { spec: spec("RC_2") }).unwrap();
        j.append(&Event::Part { id: "RC_1".into(), part: 1, files: vec!["r/a.webm".into()], at_ms: 7 })
            .unwrap();
        j.append(&Event::Status { id: "RC_1".into(), status: Status::Active, error: None }).unwrap();
        j.append(&Event::Status { id: "RC_2".into(), status: Status::Complete, error: None }).unwrap();
        j.append(&Event::Forget { id: "RC_2".into() }).unwrap();
    }

    #[test]
    fn replay_gives_the_latest_state() {
        let dir = tempfile::tempdir().unwrap();
        let (mut j, state) = Journal::open(dir.path()).unwrap();
        assert!(state.jobs.is_empty());
        fill(&mut j);
        drop(j);
        let (_, Replayed { jobs, .. }) = Journal::open(dir.path()).unwrap();
        assert_eq!(jobs.len(), 1, "RC_2 was forgotten");
        let job = &jobs["RC_1"];
        assert_eq!(job.status, Status::Active);
        assert_eq!(job.parts[&1], (vec![PathBuf::from("r/a.webm")], 7));
    }

    #[test]
    fn a_torn_last_line_is_cut_and_appends_continue() {
        let dir = tempfile::tempdir().unwrap();
        let (mut j, _) = Journal::open(dir.path()).unwrap();
        fill(&mut j);
        drop(j);
        let path = dir.path().join(FILE_NAME);
        let mut f = OpenOptions::new().append(true).open(&path).unwrap();
        f.write_all(br#"{"ev":"status","id":"RC_1","sta"#).unwrap();
        drop(f);
        let (mut j, state) = Journal::open(dir.path()).unwrap();
        assert_eq!(state.jobs["RC_1"].status, Status::Active);
        j.append(&Event::Status { id: "RC_1".into(), status: Status::Complete, error: None }).unwrap();
        drop(j);
        let (_, state) = Journal::open(dir.path()).unwrap();
        assert_eq!(state.jobs["RC_1"].status, Status::Complete, "the record after the cut is read");
    }

    #[test]
    fn damage_in_the_middle_is_an_error_that_names_the_line() {
        let dir = tempfile::tempdir().unwrap();
        let (mut j, _) = Journal::open(dir.path()).unwrap();
        fill(&mut j);
        drop(j);
        let path = dir.path().join(FILE_NAME);
        let text = std::fs::read_to_string(&path).unwrap();
        let damaged = text.replacen("\"ev\":\"part\"", "\"ev\":\"bogus\"", 1);
        std::fs::write(&path, damaged).unwrap();
        let err = Journal::open(dir.path()).unwrap_err();
        assert!(matches!(err, JournalError::Corrupt { line: 3, .. }), "{err}");
    }

    #[test]
    fn compaction_keeps_only_the_given_jobs() {
        let dir = tempfile::tempdir().unwrap();
        let (mut j, _) = Journal::open(dir.path()).unwrap();
        fill(&mut j);
        j.append(&Event::Delivered { id: "RC_1".into(), url: "http://127.0.0.1:9/cb".into() }).unwrap();
        drop(j);
        let (mut j, state) = Journal::open(dir.path()).unwrap();
        let before = std::fs::metadata(dir.path().join(FILE_NAME)).unwrap().len();
        j.compact(&state).unwrap();
        j.append(&Event::Uploaded { id: "RC_1".into(), outputs: vec!["s3://b/k".into()] }).unwrap();
        drop(j);
        let after = std::fs::metadata(dir.path().join(FILE_NAME)).unwrap().len();
        let (_, replayed) = Journal::open(dir.path()).unwrap();
        let job = &replayed.jobs["RC_1"];
        assert_eq!(job.outputs.as_deref(), Some(&["s3://b/k".to_owned()][..]));
        assert!(job.delivered.contains("http://127.0.0.1:9/cb"));
        assert_eq!((job.status, job.parts.len()), (Status::Active, 1));
        assert!(after < before + 80, "compacted: {before} -> {after}");
    }

    fn ended(id: &str, at_ms: u64) -> Event {
        let spec = spec(id);
        let mut info = RecordingInfo::pending(&spec);
        info.status = Status::Complete;
        info.bytes = 1234;
        info.files = vec![format!("r/{id}.webm").into()];
        info.outputs = vec![format!("s3://b/{id}")];
        Event::Ended(Box::new(EndedRecording { spec, info, at_ms }))
    }

    #[test]
    fn the_history_outlives_forget_and_compaction_and_expires() {
        let dir = tempfile::tempdir().unwrap();
        let (mut j, _) = Journal::open(dir.path()).unwrap();
        fill(&mut j);
        j.append(&ended("RC_2", 10)).unwrap();
        j.append(&ended("RC_3", 20)).unwrap();
        j.append(&Event::Forget { id: "RC_3".into() }).unwrap();
        drop(j);
        let mut log = JobLog::open(dir.path()).unwrap();
        assert_eq!(log.jobs().len(), 1, "forgotten jobs stay forgotten");
        let ids: Vec<&RecordingId> = log.history().keys().collect();
        assert_eq!(ids, ["RC_2", "RC_3"], "their history stays");
        let Event::Ended(want) = ended("RC_2", 10) else { unreachable!() };
        assert_eq!(log.history()["RC_2"], *want, "the whole JSON comes back");
        log.expire(&"RC_2".into()).unwrap();
        drop(log);
        let (mut j, state) = Journal::open(dir.path()).unwrap();
        assert_eq!(state.history.keys().collect::<Vec<_>>(), ["RC_3"], "the expiry is durable");
        // 10 records; kept: RC_1's Started, Part and Status, and RC_3's Ended
        assert_eq!(j.appended(), 10 - 4, "what the next compaction drops");
        j.compact(&state).unwrap();
        drop(j);
        let (j, state) = Journal::open(dir.path()).unwrap();
        assert_eq!(state.history.keys().collect::<Vec<_>>(), ["RC_3"], "compacted away");
        assert_eq!(j.appended(), 0, "a freshly compacted file has nothing to drop");
    }

    #[test]
    fn superseded_records_found_at_open_count_toward_compaction() {
        let dir = tempfile::tempdir().unwrap();
        let (mut j, _) = Journal::open(dir.path()).unwrap();
        fill(&mut j);
        drop(j);
        let (j, state) = Journal::open(dir.path()).unwrap();
        // 6 records; RC_1 alone is written back as Started, Part, Status
        assert_eq!(state.events().count(), 3);
        assert_eq!(j.appended(), 3, "restarts do not reset what the next compaction drops");
    }
}
