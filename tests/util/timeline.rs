//! What is on its way in a simulation, by virtual delivery time: earliest first, and in the
//! order sent when two are due at the same millisecond (so a seed replays exactly).

use std::cmp::{Ordering, Reverse};
use std::collections::BinaryHeap;

/// Items due at virtual times.
pub struct Timeline<T> {
    heap: BinaryHeap<Reverse<Due<T>>>,
    seq: u64,
}

struct Due<T> {
    at: u64,
    seq: u64,
    item: T,
}

impl<T> PartialEq for Due<T> {
    fn eq(&self, other: &Self) -> bool {
        (self.at, self.seq) == (other.at, other.seq)
    }
}
impl<T> Eq for Due<T> {}
impl<T> PartialOrd for Due<T> {
    fn partial_cmp(&self, other: &Self) -> Option<Ordering> {
        Some(self.cmp(other))
    }
}
impl<T> Ord for Due<T> {
    fn cmp(&self, other: &Self) -> Ordering {
        (self.at, self.seq).cmp(&(other.at, other.seq))
    }
}

impl<T> Timeline<T> {
    pub fn new() -> Self {
        Self { heap: BinaryHeap::new(), seq: 0 }
    }

    /// `item` arrives at `at`.
    pub fn push(&mut self, at: u64, item: T) {
        self.seq += 1;
        self.heap.push(Reverse(Due { at, seq: self.seq, item }));
    }

    /// The next item due by `now`.
    pub fn pop_due(&mut self, now: u64) -> Option<T> {
        if self.heap.peek().is_some_and(|Reverse(d)| d.at <= now) {
            self.heap.pop().map(|Reverse(d)| d.item)
        } else {
            None
        }
    }
}
