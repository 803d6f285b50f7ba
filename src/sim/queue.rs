//! The event queue of virtual time: events pop in time order, and those due at the same
//! nanosecond in the order they were scheduled, so that a run is the same on every machine.

use std::cmp::{Ordering, Reverse};
use std::collections::BinaryHeap;

pub(crate) const NANOS_PER_MS: u64 = 1_000_000;

pub(crate) struct Queue<E> {
    heap: BinaryHeap<Reverse<Due<E>>>,
    scheduled: u64,
}

struct Due<E> {
    at_nanos: u64,
    /// How many events were scheduled before this one: the tie-break.
    order: u64,
    event: E,
}

impl<E> PartialEq for Due<E> {
    fn eq(&self, other: &Self) -> bool {
        self.cmp(other) == Ordering::Equal
    }
}

impl<E> Eq for Due<E> {}

impl<E> PartialOrd for Due<E> {
    fn partial_cmp(&self, other: &Self) -> Option<Ordering> {
        Some(self.cmp(other))
    }
}

impl<E> Ord for Due<E> {
    fn cmp(&self, other: &Self) -> Ordering {
        (self.at_nanos, self.order).cmp(&(other.at_nanos, other.order))
    }
}

impl<E> Queue<E> {
    pub(crate) fn new() -> Self {
        Queue {
            heap: BinaryHeap::new(),
            scheduled: 0,
        }
    }

    pub(crate) fn schedule_ms(&mut self, at_ms: u64, event: E) {
        self.schedule_nanos(at_ms.saturating_mul(NANOS_PER_MS), event);
    }

    pub(crate) fn schedule_nanos(&mut self, at_nanos: u64, event: E) {
        self.heap.push(Reverse(Due {
            at_nanos,
            order: self.scheduled,
            event,
        }));
        self.scheduled += 1;
    }

    /// The next event and when it is due, in nanoseconds.
    pub(crate) fn pop(&mut self) -> Option<(u64, E)> {
        self.heap
            .pop()
            .map(|Reverse(due)| (due.at_nanos, due.event))
    }
}

#[cfg(test)]
mod tests {
    use super::Queue;

    #[test]
    fn events_pop_by_time_then_by_the_order_they_were_scheduled() {
        let mut queue = Queue::new();
        queue.schedule_ms(5, "late");
        queue.schedule_ms(1, "first at 1");
        queue.schedule_nanos(1_000_000, "second at 1");
        queue.schedule_ms(0, "start");
        let order: Vec<_> = std::iter::from_fn(|| queue.pop()).map(|(_, e)| e).collect();
        assert_eq!(order, ["start", "first at 1", "second at 1", "late"]);
    }
}
