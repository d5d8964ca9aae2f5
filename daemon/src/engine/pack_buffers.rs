//! The buffers a backup fills its packs in: reused from pack to pack, and bounded in number.
//!
//! A fresh 17 MiB buffer per pack cost a page fault per 4 KiB as it filled (6 % of a backup's
//! CPU), and every worker that closed a pack could hold one more while verifying and writing
//! it. Here a pack that is full waits, before the next one starts, until fewer than
//! `in_flight` packs are being written, and a written pack's buffer is filled again. Locally one
//! pack in flight is enough: writing one takes a fraction of the time filling the next does. A
//! remote store gets one per worker, as its uploads wait on the network.

use std::sync::{Condvar, Mutex};

#[derive(Debug)]
pub struct PackBuffers {
    state: Mutex<State>,
    freed: Condvar,
    in_flight: usize,
}

#[derive(Debug, Default)]
struct State {
    writing: usize,
    spare: Vec<Vec<u8>>,
}

impl PackBuffers {
    pub fn new(in_flight: usize) -> Self {
        Self {
            state: Mutex::new(State::default()),
            freed: Condvar::new(),
            in_flight: in_flight.max(1),
        }
    }

    /// Waits until a full pack may be written, counts it as being written, and returns an
    /// empty buffer (a reused one when there is one) for the pack that follows it.
    pub fn start_writing(&self) -> Vec<u8> {
        let mut state = self.state.lock().unwrap_or_else(|p| p.into_inner());
        while state.writing >= self.in_flight {
            state = self.freed.wait(state).unwrap_or_else(|p| p.into_inner());
        }
        state.writing += 1;
        state.spare.pop().unwrap_or_default()
    }

    /// A pack was written (or failed): its buffer, when given back, is kept for reuse.
    pub fn done_writing(&self, buffer: Option<Vec<u8>>) {
        let mut state = self.state.lock().unwrap_or_else(|p| p.into_inner());
        state.writing = state.writing.saturating_sub(1);
        if let Some(mut b) = buffer {
            if state.spare.len() < self.in_flight {
                b.clear();
                state.spare.push(b);
            }
        }
        self.freed.notify_one();
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::{AtomicUsize, Ordering};

    #[test]
    fn buffers_are_reused_and_writes_bounded() {
        let buffers = PackBuffers::new(1);
        let first = buffers.start_writing();
        assert_eq!(first.capacity(), 0);
        buffers.done_writing(Some(Vec::with_capacity(1 << 20)));
        let reused = buffers.start_writing();
        assert!(
            reused.capacity() >= 1 << 20,
            "the written pack's buffer comes back"
        );

        // A second writer waits until the first is done.
        let started = AtomicUsize::new(0);
        std::thread::scope(|s| {
            s.spawn(|| {
                let _b = buffers.start_writing();
                started.fetch_add(1, Ordering::SeqCst);
                buffers.done_writing(None);
            });
            std::thread::sleep(std::time::Duration::from_millis(100));
            assert_eq!(
                started.load(Ordering::SeqCst),
                0,
                "bounded at one in flight"
            );
            buffers.done_writing(Some(reused));
        });
        assert_eq!(started.load(Ordering::SeqCst), 1);
    }
}
