//! The bounded event channel towards the consumer, with its drop policy.
//!
//! Invariants: the connection task never waits on the consumer. Media frames are offered with
//! `try_send` and dropped (and counted) when the channel is full or when control events are
//! still waiting. Control events are never dropped: when the channel is full they wait in a
//! backlog, in order, that the task drains as the consumer makes room. A consumer that lets
//! the backlog reach [`MAX_BACKLOG`] has stalled; the connection then ends.

use std::collections::VecDeque;
use std::sync::atomic::Ordering;
use std::sync::Arc;

use tokio::sync::mpsc::{self, error::TrySendError};

use super::{Counters, RoomEvent};

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
}

impl EventSink {
    /// Wraps the channel's sender.
    pub(crate) fn new(tx: mpsc::Sender<RoomEvent>, counters: Arc<Counters>) -> Self {
        EventSink { tx, backlog: VecDeque::new(), counters }
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
    pub(crate) fn frame(&mut self, event: RoomEvent) {
        let sent = self.backlog.is_empty() && self.tx.try_send(event).is_ok();
        let counter = if sent { &self.counters.frames_received } else { &self.counters.frames_dropped };
        counter.fetch_add(1, Ordering::Relaxed);
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

    #[test]
    fn closed_receiver_is_reported() {
        let (tx, rx) = mpsc::channel(1);
        drop(rx);
        let mut sink = EventSink::new(tx, Arc::new(Counters::default()));
        assert_eq!(sink.control(RoomEvent::Reconnected), Err(Stalled));
    }
}
