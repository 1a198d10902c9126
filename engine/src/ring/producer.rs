//! The writing end of the ring.

use core::cell::Cell;
use core::fmt;
use core::marker::PhantomData;
use core::mem::MaybeUninit;

use super::{Full, Shared, Slot};
use crate::sync::{Arc, Ordering};

/// The writing end of an SPSC ring: `Send`, not `Clone`, not `Sync`.
///
/// ```compile_fail
/// fn needs_clone<T: Clone>() {}
/// needs_clone::<brink::ring::Producer<u64>>();
/// ```
/// ```compile_fail
/// fn needs_sync<T: Sync>() {}
/// needs_sync::<brink::ring::Producer<u64>>();
/// ```
pub struct Producer<T> {
    shared: Arc<Shared<T>>,
    /// Our own count of pushed items; equals the shared `tail` after every public method returns.
    tail: usize,
    /// Last value of the shared `head` we loaded. Invariant: `head_cache <= head` (the consumer only
    /// moves `head` forward), so free space computed from it is never overstated.
    head_cache: usize,
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
unsafe impl<T: Send> Send for Producer<T> {}

impl<T> Producer<T> {
    pub(super) fn new(shared: Arc<Shared<T>>) -> Self {
        let mask = shared.capacity() - 1;
        let slots = shared.slots.as_ptr();
        Self {
            slots,
            shared,
            tail: 0,
            head_cache: 0,
            mask,
            _not_sync: PhantomData,
        }
    }

    /// Number of slots.
    #[inline]
    pub fn capacity(&self) -> usize {
        self.mask + 1
    }

    /// Free slots according to the cached `head` (a lower bound on the true count).
    #[inline]
    fn cached_free(&self) -> usize {
        let used = self.tail.wrapping_sub(self.head_cache);
        debug_assert!(used <= self.capacity(), "head <= tail <= head + capacity");
        self.capacity() - used
    }

    /// Reloads `head` from the consumer and returns the free slots.
    #[inline]
    fn refresh_free(&mut self) -> usize {
        // Acquire: pairs with the Release store of `head` in `Consumer::publish_head`; the
        // consumer's reads of every slot below the loaded `head` happen before we overwrite them.
        self.head_cache = self.shared.head.load(Ordering::Acquire);
        self.cached_free()
    }

    /// Free slots now (reloads the consumer's `head`).
    pub fn free_slots(&mut self) -> usize {
        self.refresh_free()
    }

    /// True when the [`Consumer`](super::Consumer) has been dropped: nothing pushed from now on
    /// will be read.
    pub fn is_abandoned(&self) -> bool {
        // Acquire: pairs with the Release store in `Consumer::drop`.
        self.shared.consumer_gone.load(Ordering::Acquire)
    }

    #[inline(always)]
    fn slot(&self, index: usize) -> &Slot<T> {
        let i = index & self.mask;
        debug_assert!(i < self.shared.slots.len());
        // SAFETY: `mask == slots.len() - 1` with `slots.len()` a power of two, so `i < len`; the
        // array behind `self.slots` lives as long as `self.shared`.
        unsafe { &*self.slots.add(i) }
    }

    /// Writes `item` into slot `index` without publishing it.
    ///
    /// # Safety
    /// `index` must lie in `[tail, head + capacity)` for the current shared `head`: the slot is
    /// uninitialised and the consumer will not read it until `tail` is published past `index`.
    #[inline(always)]
    unsafe fn write(&self, index: usize, item: T) {
        // SAFETY: the caller guarantees the slot is free and owned by the producer.
        self.slot(index)
            .with_mut(|p| unsafe { (*p) = MaybeUninit::new(item) });
    }

    /// Publishes every slot written below `new_tail`.
    #[inline(always)]
    fn publish_tail(&mut self, new_tail: usize) {
        self.tail = new_tail;
        // Release: publishes the slot writes before `new_tail`; pairs with the Acquire load of
        // `tail` in `Consumer::refresh_available`.
        self.shared.tail.store(new_tail, Ordering::Release);
    }

    /// Pushes one item, or hands it back in [`Full`] when the ring is full.
    #[inline]
    pub fn try_push(&mut self, item: T) -> Result<(), Full<T>> {
        if self.cached_free() == 0 && self.refresh_free() == 0 {
            return Err(Full(item));
        }
        // SAFETY: at least one slot is free, so `tail < head + capacity`.
        unsafe { self.write(self.tail, item) };
        self.publish_tail(self.tail.wrapping_add(1));
        Ok(())
    }

    /// Pushes as many leading items of `items` as fit and publishes them once. Returns how many
    /// were pushed (0 when full).
    #[inline]
    pub fn push_slice(&mut self, items: &[T]) -> usize
    where
        T: Copy,
    {
        let mut free = self.cached_free();
        if free < items.len() {
            free = self.refresh_free();
        }
        let n = free.min(items.len());
        let mut index = self.tail;
        for &item in &items[..n] {
            // SAFETY: `index` runs over `[tail, tail + n)` with `n <= free`, all free slots.
            unsafe { self.write(index, item) };
            index = index.wrapping_add(1);
        }
        if n > 0 {
            self.publish_tail(index);
        }
        n
    }

    /// Pulls items from `items` while the ring has room, then publishes them once. Never takes an
    /// item it cannot store, so nothing is lost when the ring fills. Returns how many were pushed.
    ///
    /// If the iterator panics, the items already written are still published.
    pub fn push_iter<I: Iterator<Item = T>>(&mut self, items: &mut I) -> usize {
        let mut free = self.cached_free();
        if free == 0 {
            free = self.refresh_free();
        }
        let start = self.tail;
        let mut batch = TailGuard {
            producer: self,
            next: start,
        };
        for _ in 0..free {
            let Some(item) = items.next() else { break };
            // SAFETY: at most `free` items are written from `tail` on, all into free slots.
            unsafe { batch.producer.write(batch.next, item) };
            batch.next = batch.next.wrapping_add(1);
        }
        let n = batch.next.wrapping_sub(start);
        drop(batch);
        n
    }
}

/// Publishes `next` as the new `tail` when dropped, including on unwind, so that every written
/// slot becomes visible (and is later dropped exactly once).
struct TailGuard<'a, T> {
    producer: &'a mut Producer<T>,
    /// One past the last written slot.
    next: usize,
}

impl<T> Drop for TailGuard<'_, T> {
    fn drop(&mut self) {
        if self.next != self.producer.tail {
            self.producer.publish_tail(self.next);
        }
    }
}

impl<T> Drop for Producer<T> {
    fn drop(&mut self) {
        // Release: our last `tail` store happens before this flag; pairs with the Acquire load in
        // `Consumer::is_abandoned`, so a consumer that sees the flag then sees every item.
        self.shared.producer_gone.store(true, Ordering::Release);
    }
}

impl<T> fmt::Debug for Producer<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Producer")
            .field("capacity", &self.capacity())
            .field("tail", &self.tail)
            .field("head_cache", &self.head_cache)
            .finish()
    }
}
