//! The reading end of the ring.

use core::cell::Cell;
use core::fmt;
use core::marker::PhantomData;

use super::{Shared, Slot};
use crate::sync::{Arc, Ordering};

/// The reading end of an SPSC ring: `Send`, not `Clone`, not `Sync`.
///
/// ```compile_fail
/// fn needs_clone<T: Clone>() {}
/// needs_clone::<brink::ring::Consumer<u64>>();
/// ```
/// ```compile_fail
/// fn needs_sync<T: Sync>() {}
/// needs_sync::<brink::ring::Consumer<u64>>();
/// ```
pub struct Consumer<T> {
    shared: Arc<Shared<T>>,
    /// Our own count of popped items; equals the shared `head` after every public method returns.
    head: usize,
    /// Last value of the shared `tail` we loaded. Invariant: `head <= tail_cache <= tail` (the
    /// producer only moves `tail` forward), so items counted from it are really there.
    tail_cache: usize,
    /// `capacity - 1`.
    mask: usize,
    /// `shared.slots.as_ptr()`, cached to save a dependent load per operation. Valid for as long
    /// as `shared` is alive: the slot array is allocated once and never moves.
    slots: *const Slot<T>,
    /// Makes the handle `!Sync` (the raw pointer would too; this states it).
    _not_sync: PhantomData<Cell<()>>,
}

// SAFETY: the handle owns one side of the ring; moving it to another thread moves that side with
// it (the raw `slots` pointer only aliases memory owned by `shared`, which is `Send + Sync` for
// `T: Send`). It is not `Sync`: two threads must not drive the same side.
unsafe impl<T: Send> Send for Consumer<T> {}

impl<T> Consumer<T> {
    pub(super) fn new(shared: Arc<Shared<T>>) -> Self {
        let mask = shared.capacity() - 1;
        let slots = shared.slots.as_ptr();
        Self {
            slots,
            shared,
            head: 0,
            tail_cache: 0,
            mask,
            _not_sync: PhantomData,
        }
    }

    /// Number of slots.
    #[inline]
    pub fn capacity(&self) -> usize {
        self.mask + 1
    }

    /// Items available according to the cached `tail` (a lower bound on the true count).
    #[inline]
    fn cached_available(&self) -> usize {
        let n = self.tail_cache.wrapping_sub(self.head);
        debug_assert!(n <= self.capacity(), "head <= tail <= head + capacity");
        n
    }

    /// Reloads `tail` from the producer and returns the items available.
    #[inline]
    fn refresh_available(&mut self) -> usize {
        // Acquire: pairs with the Release store of `tail` in `Producer::publish_tail`; the
        // producer's writes of every slot below the loaded `tail` are visible to our reads.
        self.tail_cache = self.shared.tail.load(Ordering::Acquire);
        self.cached_available()
    }

    /// Items waiting now (reloads the producer's `tail`).
    pub fn available(&mut self) -> usize {
        self.refresh_available()
    }

    /// True when the [`Producer`](super::Producer) has been dropped: no item will arrive after
    /// those already in the ring. Items pushed before the drop are all visible once this returns
    /// true, so "abandoned and then empty" means finished.
    pub fn is_abandoned(&self) -> bool {
        // Acquire: pairs with the Release store in `Producer::drop`.
        self.shared.producer_gone.load(Ordering::Acquire)
    }

    #[inline(always)]
    fn slot(&self, index: usize) -> &Slot<T> {
        let i = index & self.mask;
        debug_assert!(i < self.shared.slots.len());
        // SAFETY: `mask == slots.len() - 1` with `slots.len()` a power of two, so `i < len`; the
        // array behind `self.slots` lives as long as `self.shared`.
        unsafe { &*self.slots.add(i) }
    }

    /// Moves the item out of slot `index` without publishing.
    ///
    /// # Safety
    /// `index` must lie in `[head, tail)` for a `tail` loaded with Acquire, and must not have been
    /// read before: the slot holds an initialised item that the producer will not overwrite until
    /// `head` is published past `index`.
    #[inline(always)]
    unsafe fn read(&self, index: usize) -> T {
        // SAFETY: the caller guarantees the slot is initialised and owned by the consumer; after
        // this read the caller advances `head` past it, so it is never read or dropped again.
        self.slot(index)
            .with(|p| unsafe { (*p).assume_init_read() })
    }

    /// Hands every slot below `new_head` back to the producer.
    #[inline(always)]
    fn publish_head(&mut self, new_head: usize) {
        self.head = new_head;
        // Release: our reads of the slots below `new_head` happen before the producer reuses them;
        // pairs with the Acquire load of `head` in `Producer::refresh_free`.
        self.shared.head.store(new_head, Ordering::Release);
    }

    /// Pops one item, or `None` when the ring is empty.
    #[inline]
    pub fn try_pop(&mut self) -> Option<T> {
        if self.cached_available() == 0 && self.refresh_available() == 0 {
            return None;
        }
        // SAFETY: one item is available at `head`, and it has not been read.
        let item = unsafe { self.read(self.head) };
        self.publish_head(self.head.wrapping_add(1));
        Some(item)
    }

    /// Copies up to `out.len()` items into the front of `out`, publishing `head` once. Returns how
    /// many were copied (0 when empty).
    #[inline]
    pub fn pop_slice(&mut self, out: &mut [T]) -> usize
    where
        T: Copy,
    {
        let mut available = self.cached_available();
        if available < out.len() {
            available = self.refresh_available();
        }
        let n = available.min(out.len());
        let mut index = self.head;
        for dst in &mut out[..n] {
            // SAFETY: `index` runs over `[head, head + n)` with `n <= available`, each read once.
            *dst = unsafe { self.read(index) };
            index = index.wrapping_add(1);
        }
        if n > 0 {
            self.publish_head(index);
        }
        n
    }

    /// Moves up to `max` items, in order, into `f`, then publishes `head` once. Returns how many
    /// were handed over (0 when empty).
    ///
    /// If `f` panics, the items already handed over are still released (they are never dropped
    /// twice) and the rest stay in the ring.
    #[inline]
    pub fn drain(&mut self, max: usize, mut f: impl FnMut(T)) -> usize {
        let mut available = self.cached_available();
        if available < max {
            available = self.refresh_available();
        }
        let n = available.min(max);
        let start = self.head;
        let mut batch = HeadGuard {
            consumer: self,
            next: start,
        };
        for _ in 0..n {
            // SAFETY: `batch.next` runs over `[head, head + n)`, each index read once.
            let item = unsafe { batch.consumer.read(batch.next) };
            batch.next = batch.next.wrapping_add(1);
            f(item);
        }
        drop(batch);
        n
    }
}

/// Publishes `next` as the new `head` when dropped, including on unwind, so that items already
/// moved out are never dropped again by the ring.
struct HeadGuard<'a, T> {
    consumer: &'a mut Consumer<T>,
    /// One past the last slot read.
    next: usize,
}

impl<T> Drop for HeadGuard<'_, T> {
    #[inline(always)]
    fn drop(&mut self) {
        if self.next != self.consumer.head {
            self.consumer.publish_head(self.next);
        }
    }
}

impl<T> Drop for Consumer<T> {
    fn drop(&mut self) {
        // Release: our last `head` store happens before this flag; pairs with the Acquire load in
        // `Producer::is_abandoned`.
        self.shared.consumer_gone.store(true, Ordering::Release);
    }
}

impl<T> fmt::Debug for Consumer<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Consumer")
            .field("capacity", &self.capacity())
            .field("head", &self.head)
            .field("tail_cache", &self.tail_cache)
            .finish()
    }
}
