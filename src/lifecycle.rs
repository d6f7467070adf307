//! The lifecycle of one recording, as a pure value: its [`Status`], what the actors report
//! about it ([`Report`]), and the journal record each status change writes ([`Transition`]).
//! No I/O, no clock: the supervisor feeds it reports and performs the side effects the
//! transitions ask for (journal append, upload, callbacks).
//!
//! ```text
//!            PartOpened              StopRequested
//! pending ──────────────> active ─────────────────> finalizing
//!    │                      │                           │
//!    └──────────────────────┴──── Ended ────────────────┘
//!                                   │
//!          no frame written ever ───┼──> failed ("no media was recorded ...")
//!          Failed(reason) ──────────┼──> failed (reason)
//!          media, S3 configured ────┼──> uploading ── Uploaded ──> complete
//!          media, no S3 ────────────┘──> complete      └─ UploadFailed ──> failed
//! ```
//!
//! Invariants (unit and property tested below):
//! - no sequence of reports reaches `complete` (or `uploading`) without a report of written
//!   frames: a recording that holds nothing ends `failed`, with the reason;
//! - `Ended` from any live state leaves the live states, so a drain that ends every live
//!   recording leaves none `pending`/`active`/`finalizing` in the journal;
//! - ended states (`complete`, `failed`) never change again;
//! - every status change yields exactly one journal record ([`Event::Status`]).

use crate::ids::RecordingId;
use crate::recording::Status;
use crate::storage::journal::Event;

/// What the actors (and the supervisor's own timers) report about a recording.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Report {
    /// A part's files were opened: the recording is writing.
    PartOpened,
    /// Frames were written into the recording's files (count in the report, may be 0).
    Wrote {
        /// Frames handed to the container in the part the report is about.
        frames: u64,
    },
    /// While live: something the user should know (no media arriving, LiveKit unreachable and
    /// being retried), or `None` once it is over. Shown as the recording's `error`.
    Notice(Option<String>),
    /// A stop was asked for (REST, webhook).
    StopRequested,
    /// The recording's recorder ended (or the supervisor gave up on it).
    Ended(End),
    /// Its files went to the upload queue (the supervisor saw `uploading`).
    UploadFailed(String),
    /// Every file is uploaded.
    Uploaded,
}

/// How a recording ended.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum End {
    /// Stopped, participant left, room finished, maximum duration, drain: complete if any
    /// media was written.
    Finished,
    /// The recorder gave up waiting (participant did not return, LiveKit unreachable): complete
    /// with the media it has, else failed with this reason.
    GaveUp(String),
    /// It failed (storage, start timeout, LiveKit refused us, restart budget): failed.
    Failed(String),
}

/// One status change, and the record that makes it durable.
#[derive(Debug, Clone, PartialEq)]
pub struct Transition {
    /// Status before.
    pub from: Status,
    /// Status after.
    pub to: Status,
    /// The journal record to append (before acting on it).
    pub record: Event,
}

/// The lifecycle of one recording.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Lifecycle {
    status: Status,
    /// Frames were written (in any part).
    media: bool,
    /// Why it failed, or (while live) the current notice.
    error: Option<String>,
    /// Finished recordings are uploaded (`S3_BUCKET` set).
    uploads: bool,
}

/// The reason given when a recording ends without any media.
pub const NO_MEDIA: &str = "no media was recorded: no frame of the participant's tracks arrived";

impl Lifecycle {
    /// A new, `pending` recording.
    pub fn new(uploads: bool) -> Lifecycle {
        Lifecycle { status: Status::Pending, media: false, error: None, uploads }
    }

    /// A recording as the journal left it (at start-up); `media` when its parts hold frames.
    pub fn recovered(status: Status, media: bool, error: Option<String>, uploads: bool) -> Lifecycle {
        Lifecycle { status, media, error, uploads }
    }

    /// The current status.
    pub fn status(&self) -> Status {
        self.status
    }

    /// Why it failed, or the current notice while live.
    pub fn error(&self) -> Option<&str> {
        self.error.as_deref()
    }

    /// Whether frames were written.
    pub fn has_media(&self) -> bool {
        self.media
    }

    /// Applies a report for recording `id`; the status change it causes, if any.
    pub fn apply(&mut self, id: &RecordingId, report: Report) -> Option<Transition> {
        let from = self.status;
        let (to, error) = match (from, report) {
            // ended for good: late reports change nothing
            (Status::Complete | Status::Failed, _) => return None,
            (_, Report::Wrote { frames }) => {
                self.media |= frames > 0;
                return None;
            }
            (s, Report::Notice(n)) => {
                if s.is_live() {
                    self.error = n;
                }
                return None;
            }
            (Status::Pending, Report::PartOpened) => (Status::Active, self.error.clone()),
            (Status::Pending | Status::Active, Report::StopRequested) => (Status::Finalizing, None),
            (s, Report::Ended(end)) if s.is_live() => self.ended(end),
            (Status::Uploading, Report::Uploaded) => (Status::Complete, None),
            (Status::Uploading, Report::UploadFailed(why)) => (Status::Failed, Some(why)),
            // anything else (a second stop, a part opened while finalizing, an upload report for
            // a recording that is not uploading) is no change
            _ => return None,
        };
        self.error = error;
        if to == from {
            return None;
        }
        self.status = to;
        let record = Event::Status { id: id.clone(), status: to, error: self.error.clone() };
        Some(Transition { from, to, record })
    }

    fn ended(&self, end: End) -> (Status, Option<String>) {
        let done = if self.uploads { Status::Uploading } else { Status::Complete };
        match end {
            End::Failed(why) => (Status::Failed, Some(why)),
            End::Finished if self.media => (done, None),
            End::GaveUp(_) if self.media => (done, None),
            End::Finished => (Status::Failed, Some(NO_MEDIA.to_owned())),
            End::GaveUp(why) => (Status::Failed, Some(format!("{why}; {NO_MEDIA}"))),
        }
    }
}

/// The statuses and what they mean, in lifecycle order: the README's status table is checked
/// against this list (see the test below).
pub const STATUS_TABLE: &[(Status, &str)] = &[
    (Status::Pending, "waiting for the participant to join and publish, or for LiveKit (`error` says why while it is retried)"),
    (Status::Active, "writing; `error` says so when no media has arrived for a while"),
    (Status::Finalizing, "stop asked for; the files are being closed"),
    (Status::Uploading, "closed, with media, being uploaded (only with `S3_BUCKET`)"),
    (Status::Complete, "closed (and uploaded), with media; never reached without a written frame"),
    (Status::Failed, "ended with an error (`error`), including: no media was ever written"),
];

/// The status's name as the API spells it.
pub fn status_name(s: Status) -> String {
    serde_json::to_value(s).ok().and_then(|v| v.as_str().map(str::to_owned)).unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn run(uploads: bool, reports: &[Report]) -> Lifecycle {
        let mut l = Lifecycle::new(uploads);
        for r in reports {
            l.apply(&"RC_1".into(), r.clone());
        }
        l
    }

    #[test]
    fn every_transition() {
        use Report::*;
        let wrote = Wrote { frames: 10 };
        let cases: Vec<(bool, Vec<Report>, Status, Option<&str>)> = vec![
            (false, vec![], Status::Pending, None),
            (false, vec![PartOpened], Status::Active, None),
            (false, vec![StopRequested], Status::Finalizing, None),
            (false, vec![PartOpened, StopRequested], Status::Finalizing, None),
            (false, vec![PartOpened, wrote.clone(), Ended(End::Finished)], Status::Complete, None),
            (true, vec![PartOpened, wrote.clone(), Ended(End::Finished)], Status::Uploading, None),
            (true, vec![PartOpened, wrote.clone(), Ended(End::Finished), Uploaded], Status::Complete, None),
            (
                true,
                vec![PartOpened, wrote.clone(), Ended(End::Finished), UploadFailed("403".into())],
                Status::Failed,
                Some("403"),
            ),
            (false, vec![PartOpened, Ended(End::Finished)], Status::Failed, Some(NO_MEDIA)),
            (false, vec![StopRequested, Ended(End::Finished)], Status::Failed, Some(NO_MEDIA)),
            (
                false,
                vec![PartOpened, wrote.clone(), Ended(End::GaveUp("gone".into()))],
                Status::Complete,
                None,
            ),
            (false, vec![Ended(End::GaveUp("gone".into()))], Status::Failed, Some("gone; no media")),
            (
                false,
                vec![PartOpened, wrote.clone(), Ended(End::Failed("disk".into()))],
                Status::Failed,
                Some("disk"),
            ),
            // late reports after the end change nothing
            (
                false,
                vec![Ended(End::Failed("x".into())), PartOpened, wrote.clone(), Ended(End::Finished)],
                Status::Failed,
                Some("x"),
            ),
            // a late `part opened` does not undo a stop
            (false, vec![StopRequested, PartOpened], Status::Finalizing, None),
            // notices show while live and are cleared
            (
                false,
                vec![PartOpened, Notice(Some("no media for 10 s".into()))],
                Status::Active,
                Some("no media for 10 s"),
            ),
            (false, vec![Notice(Some("x".into())), Notice(None)], Status::Pending, None),
            (
                false,
                vec![Notice(Some("LiveKit: 503".into())), PartOpened],
                Status::Active,
                Some("LiveKit: 503"),
            ),
        ];
        for (uploads, reports, status, error) in cases {
            let l = run(uploads, &reports);
            assert_eq!(l.status(), status, "{reports:?}");
            match error {
                None => assert_eq!(l.error(), None, "{reports:?}"),
                Some(e) => assert!(
                    l.error().is_some_and(|got| got.contains(e.trim_end_matches("; no media"))),
                    "{reports:?}: {:?}",
                    l.error()
                ),
            }
        }
    }

    #[test]
    fn each_change_writes_one_status_record() {
        let mut l = Lifecycle::new(false);
        let t = l.apply(&"RC_1".into(), Report::PartOpened).expect("change");
        assert_eq!((t.from, t.to), (Status::Pending, Status::Active));
        assert_eq!(t.record, Event::Status { id: "RC_1".into(), status: Status::Active, error: None });
        assert_eq!(l.apply(&"RC_1".into(), Report::PartOpened), None);
        assert_eq!(l.apply(&"RC_1".into(), Report::Wrote { frames: 3 }), None);
        let t = l.apply(&"RC_1".into(), Report::Ended(End::Finished)).expect("change");
        assert_eq!(t.record, Event::Status { id: "RC_1".into(), status: Status::Complete, error: None });
    }

    fn report() -> impl Strategy<Value = Report> {
        prop_oneof![
            Just(Report::PartOpened),
            (0u64..3).prop_map(|frames| Report::Wrote { frames }),
            Just(Report::Notice(Some("n".into()))),
            Just(Report::Notice(None)),
            Just(Report::StopRequested),
            Just(Report::Ended(End::Finished)),
            Just(Report::Ended(End::GaveUp("g".into()))),
            Just(Report::Ended(End::Failed("f".into()))),
            Just(Report::Uploaded),
            Just(Report::UploadFailed("u".into())),
        ]
    }

    proptest! {
        #[test]
        fn no_path_reaches_complete_without_media(uploads: bool, reports in prop::collection::vec(report(), 0..24)) {
            let l = run(uploads, &reports);
            let wrote = reports.iter().any(|r| matches!(r, Report::Wrote { frames } if *frames > 0));
            if matches!(l.status(), Status::Complete | Status::Uploading) {
                prop_assert!(wrote, "{:?}", reports);
            }
            if l.status() == Status::Failed {
                prop_assert!(l.error().is_some());
            }
        }

        #[test]
        fn a_drain_ends_every_live_recording(uploads: bool, reports in prop::collection::vec(report(), 0..24)) {
            let mut l = run(uploads, &reports);
            let before = l.status();
            let t = l.apply(&"RC_1".into(), Report::Ended(End::Finished));
            prop_assert!(!l.status().is_live());
            // the end is journaled whenever the recording was live
            if before.is_live() {
                let t = t.expect("a transition");
                let ended = matches!(t.record, Event::Status { status, .. } if !status.is_live());
                prop_assert!(ended, "{:?}", t);
            }
        }

        #[test]
        fn ended_states_never_change(uploads: bool, reports in prop::collection::vec(report(), 0..24), more in prop::collection::vec(report(), 0..8)) {
            let mut l = run(uploads, &reports);
            if l.status().is_terminal() {
                let before = l.clone();
                for r in more {
                    prop_assert_eq!(l.apply(&"RC_1".into(), r), None);
                }
                prop_assert_eq!(l, before);
            }
        }
    }

    #[test]
    fn readme_status_table_matches() {
        let readme = include_str!("../README.md");
        let mut rows = Vec::new();
        for (s, meaning) in STATUS_TABLE {
            rows.push(format!("| `{}` | {} |", status_name(*s), meaning));
        }
        let table = rows.join("\n");
        assert!(
            readme.contains(&table),
            "README.md must hold the status table generated from lifecycle::STATUS_TABLE:\n{table}"
        );
    }
}
