//! The bounded lock-free single-producer single-consumer ring between stages.
//!
//! ```text
//!            head (consumer's)                 tail (producer's)
//!                 │                                 │
//!   slots:  [ free | item | item | item | item | free | free ]   (indices taken mod capacity)
//!                 └──────── initialised ────────────┘
//! ```
//!
//! [`channel`] allocates `capacity` slots once and returns a [`Producer`] and a [`Consumer`]. After
//! that nothing allocates: pushing writes a slot and publishes `tail`, popping reads a slot and
//! publishes `head`.
//!
//! ## Design
//! - `head` and `tail` are free-running `usize` counters (they wrap; only differences matter), each
//!   in its own [`CachePadded`] so the two threads never write the same cache line (128 bytes on
//!   x86-64: the spatial prefetcher pulls line pairs).
//! - Each handle keeps a private copy of its own counter and a *cached* copy of the other side's.
//!   It reloads the shared counter only when the cache says the ring is full (producer) or empty
//!   (consumer), so in steady state a push or pop touches the other side's line rarely.
//! - Batch operations ([`Producer::push_slice`], [`Producer::push_iter`], [`Consumer::pop_slice`],
//!   [`Consumer::drain`]) move many items and publish the counter once.
//! - Full and empty are values, not errors: [`Producer::try_push`] hands the item back in [`Full`];
//!   [`Consumer::try_pop`] returns `None`.
//! - Each side can tell when the other handle was dropped ([`Consumer::is_abandoned`],
//!   [`Producer::is_abandoned`]), which is how the stage runtime shuts down cleanly: a consumer that
//!   sees its producer gone drains what is left and finishes.
//! - Items still in the ring when both handles are gone are dropped exactly once.
//! - Atomics come from [`crate::sync`], so the same code runs under loom (`--cfg loom`).
//!
//! ## Memory ordering
//! The only synchronisation is two Release/Acquire pairs:
//! - producer writes a slot, then stores `tail` (Release); the consumer loads `tail` (Acquire) and
//!   only then reads the slot;
//! - consumer reads a slot, then stores `head` (Release); the producer loads `head` (Acquire) and
//!   only then overwrites the slot.
//!
//! plus one pair per side for abandonment (the `*_gone` flags, below).

mod consumer;
mod producer;

#[cfg(all(test, loom))]
mod loom_tests;
#[cfg(all(test, not(loom)))]
mod tests;

pub use consumer::Consumer;
pub use producer::Producer;

use core::fmt;
use core::mem::MaybeUninit;

use crossbeam_utils::CachePadded;

use crate::sync::{Arc, AtomicBool, AtomicUsize, Ordering, UnsafeCell};

/// Largest accepted capacity: keeps `tail - head` far from wrapping ambiguity and the slot array
/// addressable.
const MAX_CAPACITY: usize = 1 << (usize::BITS - 2);

/// Why [`channel`] refused a capacity. Each message says how to fix it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum RingError {
    /// Capacity zero.
    #[error("ring capacity is 0: use a power of two of at least 1 (e.g. 1024)")]
    Zero,
    /// Capacity that is not a power of two.
    #[error("ring capacity {requested} is not a power of two: use {suggested}")]
    NotPowerOfTwo {
        /// What was asked for.
        requested: usize,
        /// The next power of two above it.
        suggested: usize,
    },
    /// Capacity whose slot array would not fit in memory.
    #[error(
        "ring capacity {requested} of {item_bytes}-byte items is too large: use at most {max} slots"
    )]
    TooLarge {
        /// What was asked for.
        requested: usize,
        /// `size_of::<T>()`.
        item_bytes: usize,
        /// The largest power of two that fits.
        max: usize,
    },
}

/// A push that found the ring full; the item is handed back unchanged.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Full<T>(pub T);

impl<T> Full<T> {
    /// The item that was not pushed.
    pub fn into_inner(self) -> T {
        self.0
    }
}

impl<T> fmt::Display for Full<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("ring is full: pop items on the consumer side, then retry")
    }
}

/// One slot of the ring: uninitialised unless its index lies in `[head, tail)`.
pub(crate) type Slot<T> = UnsafeCell<MaybeUninit<T>>;

/// State shared by the two handles.
pub(crate) struct Shared<T> {
    /// Count of items ever popped; slot `head & mask` is the next to read.
    /// Written only by the consumer (Release), read by the producer (Acquire).
    /// Invariant: `head <= tail <= head + capacity` in wrapping arithmetic, i.e.
    /// `tail.wrapping_sub(head) <= capacity`.
    head: CachePadded<AtomicUsize>,
    /// Count of items ever pushed; slot `tail & mask` is the next to write.
    /// Written only by the producer (Release), read by the consumer (Acquire).
    tail: CachePadded<AtomicUsize>,
    /// Set once when the producer handle is dropped, after its last `tail` store.
    producer_gone: AtomicBool,
    /// Set once when the consumer handle is dropped, after its last `head` store.
    consumer_gone: AtomicBool,
    /// `capacity` slots, `capacity` a power of two. Slots with index in `[head, tail)` (mod
    /// capacity) hold initialised items; the rest are uninitialised.
    slots: Box<[Slot<T>]>,
}

// SAFETY: `Shared` moves `T` values between exactly two threads (one producer, one consumer) and
// never hands out `&T` to both; every slot is accessed by one side at a time, as decided by the
// head/tail protocol. So sending or sharing it is sound whenever `T` may be sent.
unsafe impl<T: Send> Send for Shared<T> {}
// SAFETY: as above: shared access from the two handles only ever moves `T` across, it never shares
// a `&T`, so `T: Send` is the bound needed.
unsafe impl<T: Send> Sync for Shared<T> {}

impl<T> Shared<T> {
    fn capacity(&self) -> usize {
        self.slots.len()
    }
}

impl<T> Drop for Shared<T> {
    fn drop(&mut self) {
        // Relaxed: both handles are gone; the `Arc` drop that got us here synchronised with their
        // last stores, and no other thread can touch these counters any more.
        let head = self.head.load(Ordering::Relaxed);
        let tail = self.tail.load(Ordering::Relaxed);
        let mask = self.capacity() - 1;
        debug_assert!(tail.wrapping_sub(head) <= self.capacity());
        let mut i = head;
        while i != tail {
            // SAFETY: `i` is in `[head, tail)`, so the slot holds an initialised item that nobody
            // has moved out (pops advance `head` past every item they read). We have exclusive
            // access, and each index is visited once, so each item is dropped exactly once.
            self.slots[i & mask].with_mut(|p| unsafe { (*p).assume_init_drop() });
            i = i.wrapping_add(1);
        }
    }
}

/// Creates a ring of `capacity` slots (a power of two) and returns its two handles.
///
/// This is the only allocation the ring ever makes. Zero-sized `T` allocates nothing.
///
/// # Errors
/// [`RingError`] if `capacity` is zero, not a power of two, or too large for memory.
pub fn channel<T: Send>(capacity: usize) -> Result<(Producer<T>, Consumer<T>), RingError> {
    check_capacity::<T>(capacity)?;
    let slots: Box<[Slot<T>]> = (0..capacity)
        .map(|_| UnsafeCell::new(MaybeUninit::uninit()))
        .collect();
    let shared = Arc::new(Shared {
        head: CachePadded::new(AtomicUsize::new(0)),
        tail: CachePadded::new(AtomicUsize::new(0)),
        producer_gone: AtomicBool::new(false),
        consumer_gone: AtomicBool::new(false),
        slots,
    });
    Ok((Producer::new(Arc::clone(&shared)), Consumer::new(shared)))
}

/// Validates a capacity for items of type `T` without allocating.
///
/// # Errors
/// As [`channel`].
pub fn check_capacity<T>(capacity: usize) -> Result<(), RingError> {
    if capacity == 0 {
        return Err(RingError::Zero);
    }
    let item_bytes = core::mem::size_of::<T>();
    let max_by_memory = (isize::MAX as usize)
        .checked_div(item_bytes)
        .unwrap_or(usize::MAX);
    let max = MAX_CAPACITY.min(prev_power_of_two(max_by_memory));
    if capacity > max {
        return Err(RingError::TooLarge {
            requested: capacity,
            item_bytes,
            max,
        });
    }
    if !capacity.is_power_of_two() {
        return Err(RingError::NotPowerOfTwo {
            requested: capacity,
            suggested: capacity.next_power_of_two(),
        });
    }
    Ok(())
}

/// The largest power of two `<= n` (1 for `n == 0`).
fn prev_power_of_two(n: usize) -> usize {
    if n == 0 {
        1
    } else {
        1 << (usize::BITS - 1 - n.leading_zeros())
    }
}
