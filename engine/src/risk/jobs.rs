//! The book of liquidation jobs, organised so that a tick touches only the jobs that need it.
//!
//! - Jobs live in a slab (`slots`), addressed by a `u32` slot that stays valid until removal.
//! - Per instrument, `ready` holds the jobs with no child order out, in the order they became
//!   ready (a deterministic FIFO); a tick of the instrument works through it.
//! - Per instrument, `timeouts` is a min-heap of `(due_ns, slot)`: when a child order's time is
//!   up, the job goes back to `ready`. Entries are checked against the job when they surface, so
//!   a child that was filled or replaced in the meantime leaves only a stale entry.
//! - `orders` maps a child order id to its job, so a fill finds its job in O(1).
//!
//! Cost per tick of an instrument: O(ready jobs + expired children · log n), independent of how
//! many jobs wait on children elsewhere.

use std::cmp::Reverse;
use std::collections::{BinaryHeap, HashMap, VecDeque};

use super::liquidation::Job;

/// See the module docs.
#[derive(Debug, Default)]
pub(crate) struct Jobs {
    pub(super) slots: Vec<Option<Job>>,
    pub(super) free: Vec<u32>,
    pub(super) ready: Vec<VecDeque<u32>>,
    pub(super) timeouts: Vec<BinaryHeap<Reverse<(u64, u32)>>>,
    pub(super) orders: HashMap<u64, u32>,
    pub(super) per_unit: HashMap<u32, u32>,
    pub(super) len: usize,
    /// Empty queues kept for reuse by [`Jobs::take_ready`] (scratch, not part of the state).
    spare: Vec<VecDeque<u32>>,
    /// Scratch of [`Jobs::expire`].
    expired: Vec<u32>,
}

impl Jobs {
    /// An empty book for `instruments` instruments.
    pub fn new(instruments: usize) -> Jobs {
        Jobs {
            ready: (0..instruments).map(|_| VecDeque::new()).collect(),
            timeouts: (0..instruments).map(|_| BinaryHeap::new()).collect(),
            ..Jobs::default()
        }
    }

    /// Open jobs.
    pub fn len(&self) -> usize {
        self.len
    }

    /// Whether no job is open.
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// Adds a job (with no child out) and queues it as ready; returns its slot.
    pub fn insert(&mut self, job: Job) -> u32 {
        let instrument = job.instrument as usize;
        *self.per_unit.entry(job.unit).or_insert(0) += 1;
        let slot = match self.free.pop() {
            Some(slot) => {
                self.slots[slot as usize] = Some(job);
                slot
            }
            None => {
                self.slots.push(Some(job));
                (self.slots.len() - 1) as u32
            }
        };
        if let Some(q) = self.ready.get_mut(instrument) {
            q.push_back(slot);
        }
        self.len += 1;
        slot
    }

    /// The job in a slot.
    pub fn get(&self, slot: u32) -> Option<&Job> {
        self.slots.get(slot as usize).and_then(Option::as_ref)
    }

    /// The job in a slot, to update it.
    pub fn get_mut(&mut self, slot: u32) -> Option<&mut Job> {
        self.slots.get_mut(slot as usize).and_then(Option::as_mut)
    }

    /// Removes a job (and forgets its child order); returns it and how many jobs its unit still
    /// has open.
    pub fn remove(&mut self, slot: u32) -> Option<(Job, u32)> {
        let job = self.slots.get_mut(slot as usize)?.take()?;
        if let Some(child) = job.child {
            self.orders.remove(&child.order_id);
        }
        self.free.push(slot);
        self.len -= 1;
        let left = match self.per_unit.get_mut(&job.unit) {
            Some(n) if *n > 1 => {
                *n -= 1;
                *n
            }
            _ => {
                self.per_unit.remove(&job.unit);
                0
            }
        };
        Some((job, left))
    }

    /// Whether an order id belongs to an open child.
    pub fn has_order(&self, order_id: u64) -> bool {
        self.orders.contains_key(&order_id)
    }

    /// The job whose child has this order id.
    pub fn by_order(&self, order_id: u64) -> Option<u32> {
        self.orders.get(&order_id).copied()
    }

    /// Records that the job in `slot` sent a child order due to time out at `due_ns`.
    pub fn child_sent(&mut self, slot: u32, order_id: u64, due_ns: u64) {
        let Some(instrument) = self.get(slot).map(|j| j.instrument as usize) else {
            return;
        };
        self.orders.insert(order_id, slot);
        if let Some(heap) = self.timeouts.get_mut(instrument) {
            heap.push(Reverse((due_ns, slot)));
        }
    }

    /// The job's child is finished (filled, or taken as cancelled): forget its order id and
    /// queue the job as ready again.
    pub fn child_done(&mut self, slot: u32) {
        let Some(job) = self.slots.get_mut(slot as usize).and_then(Option::as_mut) else {
            return;
        };
        if let Some(child) = job.child.take() {
            self.orders.remove(&child.order_id);
        }
        if let Some(q) = self.ready.get_mut(job.instrument as usize) {
            q.push_back(slot);
        }
    }

    /// Expires the children of `instrument` that have been out for `timeout_ns` by `now_ns`:
    /// their jobs go back to the ready queue.
    pub fn expire(&mut self, instrument: u32, now_ns: u64, timeout_ns: u64) {
        let Some(heap) = self.timeouts.get_mut(instrument as usize) else {
            return;
        };
        let mut expired = std::mem::take(&mut self.expired);
        while let Some(&Reverse((due, slot))) = heap.peek() {
            if due > now_ns {
                break;
            }
            heap.pop();
            expired.push(slot);
        }
        for &slot in &expired {
            let stale = self
                .get(slot)
                .and_then(|j| j.child)
                .is_none_or(|c| now_ns.saturating_sub(c.sent_ns) < timeout_ns);
            if !stale {
                self.child_done(slot);
            }
        }
        expired.clear();
        self.expired = expired;
    }

    /// Takes the ready queue of an instrument to work through it, with an empty queue for
    /// what stays ready; give both back with [`Jobs::restore_ready`]. The queues are recycled,
    /// so once warm this allocates nothing.
    pub fn take_ready(&mut self, instrument: u32) -> (VecDeque<u32>, VecDeque<u32>) {
        let kept = self.spare.pop().unwrap_or_default();
        let queue = match self.ready.get_mut(instrument as usize) {
            Some(q) => std::mem::replace(q, self.spare.pop().unwrap_or_default()),
            None => self.spare.pop().unwrap_or_default(),
        };
        (queue, kept)
    }

    /// Puts back the jobs that stay ready, ahead of any queued while they were out, and keeps
    /// the emptied queues for reuse.
    pub fn restore_ready(
        &mut self,
        instrument: u32,
        mut queue: VecDeque<u32>,
        mut kept: VecDeque<u32>,
    ) {
        if let Some(q) = self.ready.get_mut(instrument as usize) {
            kept.append(q);
            std::mem::swap(q, &mut kept);
        }
        queue.clear();
        kept.clear();
        self.spare.push(queue);
        self.spare.push(kept);
    }

    /// Every open job, in slot order.
    pub fn iter(&self) -> impl Iterator<Item = (u32, &Job)> {
        self.slots
            .iter()
            .enumerate()
            .filter_map(|(i, j)| j.as_ref().map(|j| (i as u32, j)))
    }
}
