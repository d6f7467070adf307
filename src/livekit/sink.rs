//! The bounded event channel towards the consumer, with its drop policy.
//!
//! Invariants: the connection task never waits on the consumer. Media frames are offered with
//! `try_send` and dropped (and counted) when the channel is full or when control events are
//! still waiting; the next frame of a track that lost one here is marked as not contiguous, so
//! the file waits for a keyframe instead of writing frames whose references are missing. Control events are never dropped: when the channel is full they wait in a
//! backlog, in order, that the task drains as the consumer makes room. A consumer that lets
//! the backlog reach [`MAX_BACKLOG`] has stalled; the connection then ends.

use std::collections::{HashSet, VecDeque};
use std::sync::atomic::Ordering;
use std::sync::Arc;

use tokio::sync::mpsc::{self, error::TrySendError};

use super::{Counters, RoomEvent};
use crate::ids::TrackSid;

/// Control events that may wait for a slow consumer before the connection gives up.
pub(crate) const MAX_BACKLOG: usize = 4096;

/// The consumer is not reading control events (or dropped the receiver).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Stalled;

/// Sender side of the event channel.
pub(crate) struct EventSink {
    pub(crate) tx: mpsc::Sender<RoomEvent>,
    pub(crate) backlog: VecDeque<RoomEvent>,
    counters: Arc<Counters>,
    /// Tracks whose last frame was dropped here.
    gaps: HashSet<TrackSid>,
}

impl EventSink {
    /// Wraps the channel's sender.
    pub(crate) fn new(tx: mpsc::Sender<RoomEvent>, counters: Arc<Counters>) -> Self {
        EventSink { tx, backlog: VecDeque::new(), counters, gaps: HashSet::new() }
    }

    /// Delivers a control event now or after the ones already waiting.
    pub(crate) fn control(&mut self, event: RoomEvent) -> Result<(), Stalled> {
        if self.backlog.is_empty() {
            match self.tx.try_send(event) {
                Ok(()) => return Ok(()),
                Err(TrySendError::Closed(_)) => return Err(Stalled),
                Err(TrySendError::Full(event)) => self.backlog.push_back(event),
            }
        } else {
            self.backlog.push_back(event);
        }
        if self.backlog.len() > MAX_BACKLOG {
            return Err(Stalled);
        }
        Ok(())
    }

    /// Offers a media frame; drops and counts it if it cannot go out right away.
    pub(crate) fn frame(&mut self, mut event: RoomEvent) {
        if let RoomEvent::Frame { track_sid, frame } = &mut event {
            if self.gaps.remove(track_sid.as_str()) {
                frame.contiguous = false;
            }
        }
        let unsent = if self.backlog.is_empty() {
            self.tx.try_send(event).err().map(TrySendError::into_inner)
        } else {
            Some(event)
        };
        let counter =
            if unsent.is_none() { &self.counters.frames_received } else { &self.counters.frames_dropped };
        counter.fetch_add(1, Ordering::Relaxed);
        if let Some(RoomEvent::Frame { track_sid, .. }) = unsent {
            self.gaps.insert(track_sid);
        }
    }

    /// Whether control events are waiting for room in the channel.
    pub(crate) fn has_backlog(&self) -> bool {
        !self.backlog.is_empty()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn frame() -> RoomEvent {
        RoomEvent::TrackUnsubscribed { track_sid: "frame".into() }
    }

    #[tokio::test]
    async fn frames_are_dropped_and_control_events_kept_in_order() {
        let counters = Arc::new(Counters::default());
        let (tx, mut rx) = mpsc::channel(1);
        let mut sink = EventSink::new(tx, counters.clone());
        sink.frame(frame());
        sink.frame(frame());
        assert_eq!(counters.frames_received.load(Ordering::Relaxed), 1);
        assert_eq!(counters.frames_dropped.load(Ordering::Relaxed), 1);
        sink.control(RoomEvent::Reconnecting).unwrap();
        sink.control(RoomEvent::Reconnected).unwrap();
        sink.frame(frame()); // backlog waiting: dropped even after the consumer reads
        assert_eq!(counters.frames_dropped.load(Ordering::Relaxed), 2);
        assert!(matches!(rx.recv().await, Some(RoomEvent::TrackUnsubscribed { .. })));
        let next = sink.backlog.pop_front().unwrap();
        sink.tx.try_send(next).unwrap();
        assert!(matches!(rx.recv().await, Some(RoomEvent::Reconnecting)));
        assert_eq!(sink.backlog.len(), 1);
    }

    #[tokio::test]
    async fn the_frame_after_a_dropped_one_starts_a_gap() {
        let media = |n: u32| RoomEvent::Frame {
            track_sid: "TR_v".into(),
            frame: crate::livekit::ReceivedFrame {
                payload: vec![1].into(),
                rtp_time: n,
                arrival: std::time::Instant::now(),
                contiguous: true,
                keyframe: Some(false),
                sender_report: None,
            },
        };
        let (tx, mut rx) = mpsc::channel(1);
        let mut sink = EventSink::new(tx, Arc::new(Counters::default()));
        sink.frame(media(1));
        sink.frame(media(2)); // full: dropped
        sink.frame(media(3)); // still full: dropped
        let contiguous = |e: Option<RoomEvent>| match e {
            Some(RoomEvent::Frame { frame, .. }) => (frame.rtp_time, frame.contiguous),
            other => panic!("{other:?}"),
        };
        assert_eq!(contiguous(rx.recv().await), (1, true));
        sink.frame(media(4));
        assert_eq!(contiguous(rx.recv().await), (4, false), "after the drops");
        sink.frame(media(5));
        assert_eq!(contiguous(rx.recv().await), (5, true));
    }

    #[test]
    fn closed_receiver_is_reported() {
        let (tx, rx) = mpsc::channel(1);
        drop(rx);
        let mut sink = EventSink::new(tx, Arc::new(Counters::default()));
        assert_eq!(sink.control(RoomEvent::Reconnected), Err(Stalled));
    }
}
