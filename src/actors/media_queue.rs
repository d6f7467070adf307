//! The bound on media queued for one recording between the room and its file.
//!
//! Frames travel room -> track writer -> participant recorder through actor mailboxes, which
//! are unbounded. What bounds them is a [`MediaQueue`] per participant recorder: the room takes
//! a share of it ([`Reserved`], the frame's size in bytes) for every frame it forwards, and the
//! share comes back when the participant recorder has handled the frame (or when the frame is
//! dropped with a mailbox, so a crash never leaks it). When the queue is full, the room drops
//! the newest frame of that recording (tail drop: the frames already queued form an unbroken
//! chain up to the drop, and the first frame after the drop is marked as not contiguous, so the
//! media session waits for the next keyframe and asks for one), counts it in the recording's
//! `frames_dropped` and in `recorder_frames_dropped_total`. A recording whose disk stalls
//! therefore costs its own frames, counted, and never the process's memory or other rooms'
//! time.

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;

use tokio::sync::{OwnedSemaphorePermit, Semaphore};

use crate::livekit::ReceivedFrame;

/// Default bound of media queued per recorded participant (`MEDIA_QUEUE_SIZE`): about 8 s of
/// a 1080p camera at 8 Mbit/s, far more than a healthy recorder ever holds (a few frames) and
/// enough to ride out a disk that pauses for a few seconds.
pub const DEFAULT_MEDIA_QUEUE_BYTES: usize = 8 << 20;

/// The smallest bound accepted: one large keyframe.
pub const MIN_MEDIA_QUEUE_BYTES: usize = 64 << 10;

/// The queue of one participant recorder: how many bytes of media are on their way to it.
#[derive(Debug)]
pub struct MediaQueue {
    room: Arc<Semaphore>,
    limit: usize,
    dropped: AtomicU64,
    /// Dropping since the queue was full, until it is half empty again.
    dropping: AtomicBool,
}

/// A frame's share of its recording's [`MediaQueue`], given back when it is dropped.
#[derive(Debug)]
pub struct Reserved {
    _permit: OwnedSemaphorePermit,
}

/// A frame on its way to its participant recorder, holding its share of the queue.
#[derive(Debug)]
pub struct QueuedFrame {
    /// The frame.
    pub frame: ReceivedFrame,
    /// Frames of the same track the room dropped right before this one (queue full): the gap
    /// they leave is counted as dropped, not as lost on the network.
    pub dropped_before: u64,
    /// Its share of the queue (`None` only in tests that bypass the room).
    pub reserved: Option<Reserved>,
}

impl MediaQueue {
    /// A queue that holds at most `limit_bytes` (at least [`MIN_MEDIA_QUEUE_BYTES`]).
    pub fn new(limit_bytes: usize) -> Arc<MediaQueue> {
        let limit = limit_bytes.clamp(MIN_MEDIA_QUEUE_BYTES, u32::MAX as usize);
        Arc::new(MediaQueue {
            room: Arc::new(Semaphore::new(limit)),
            limit,
            dropped: AtomicU64::new(0),
            dropping: AtomicBool::new(false),
        })
    }

    /// Takes room for a frame of `bytes`, or `None` when the queue is full (the caller drops the
    /// frame and calls [`MediaQueue::note_dropped`]). Once full, it refuses every frame until
    /// it is half empty again, so a stall leaves one gap in each track rather than small audio
    /// frames slipping through between dropped video frames. A frame larger than the whole
    /// queue takes all of it, so it passes only when nothing else is queued.
    pub fn try_reserve(&self, bytes: usize) -> Option<Reserved> {
        if self.dropping.load(Ordering::Relaxed) {
            if self.queued() > self.limit / 2 {
                return None;
            }
            self.dropping.store(false, Ordering::Relaxed);
        }
        let n = bytes.clamp(1, self.limit) as u32; // limit <= u32::MAX (see `new`)
        match self.room.clone().try_acquire_many_owned(n) {
            Ok(p) => Some(Reserved { _permit: p }),
            Err(_) => {
                self.dropping.store(true, Ordering::Relaxed);
                None
            }
        }
    }

    /// Counts a frame dropped because the queue was full.
    pub fn note_dropped(&self) {
        self.dropped.fetch_add(1, Ordering::Relaxed);
    }

    /// Frames dropped so far.
    pub fn dropped(&self) -> u64 {
        self.dropped.load(Ordering::Relaxed)
    }

    /// Bytes queued now.
    pub fn queued(&self) -> usize {
        self.limit - self.room.available_permits()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_full_queue_refuses_until_frames_are_handled() {
        let q = MediaQueue::new(MIN_MEDIA_QUEUE_BYTES);
        let a = q.try_reserve(40 << 10).expect("room");
        let b = q.try_reserve(20 << 10).expect("room");
        assert_eq!(q.queued(), 60 << 10);
        assert!(q.try_reserve(8 << 10).is_none(), "full");
        assert!(q.try_reserve(100).is_none(), "a small frame does not slip through after a drop");
        drop(b);
        assert!(q.try_reserve(100).is_none(), "still more than half full");
        drop(a);
        assert!(q.try_reserve(8 << 10).is_some(), "room again once half empty");
        assert_eq!(q.queued(), 0, "every share comes back");
    }

    #[test]
    fn a_frame_larger_than_the_queue_passes_alone() {
        let q = MediaQueue::new(MIN_MEDIA_QUEUE_BYTES);
        let big = q.try_reserve(10 << 20).expect("an empty queue takes it");
        assert!(q.try_reserve(1).is_none());
        drop(big);
        let small = q.try_reserve(1).expect("room");
        assert!(q.try_reserve(10 << 20).is_none(), "not beside another frame");
        drop(small);
        q.note_dropped();
        assert_eq!(q.dropped(), 1);
    }
}
