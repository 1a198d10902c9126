//! The one place Brink imports atomics, `Arc`, interior-mutable cells and spin hints from.
//!
//! Normal builds re-export `std`. Under `RUSTFLAGS="--cfg loom"` the same names come from
//! [loom](https://docs.rs/loom), which explores every interleaving (within its bounds) of a small
//! concurrent model, so the SPSC ring (and later the shared-memory protocol) can be model-checked
//! with capacity 2–4. Code that must be checkable therefore never names `std::sync::atomic`
//! directly: it uses `crate::sync::*`.
//!
//! [`UnsafeCell`] is a thin wrapper with loom's closure API (`with`, `with_mut`) in both builds,
//! because loom's cell tracks every access and cannot hand out a plain `*mut T` for free. In a
//! normal build the wrapper is `#[repr(transparent)]` over `core::cell::UnsafeCell` and the closures
//! inline away.
//!
//! Loom types only work inside `loom::model`; everything outside a model (the stage runtime's
//! threads, the benches) is compiled under `--cfg loom` but not run there.

#[cfg(not(loom))]
pub use std::sync::Arc;
#[cfg(not(loom))]
pub use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering, fence};

#[cfg(loom)]
pub use loom::sync::Arc;
#[cfg(loom)]
pub use loom::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering, fence};

/// A hint that the caller is spinning on a value another thread will change.
///
/// `core::hint::spin_loop` normally; under loom a yield, so that the model scheduler runs the other
/// thread instead of exploring an unbounded spin.
#[inline(always)]
pub fn spin_loop() {
    #[cfg(not(loom))]
    core::hint::spin_loop();
    #[cfg(loom)]
    loom::thread::yield_now();
}

/// An interior-mutable cell with loom's access API, in both builds.
///
/// Invariant: callers uphold the usual `UnsafeCell` aliasing rules; the closures only scope the
/// raw pointer so that loom can see when each access starts and ends.
#[cfg(not(loom))]
#[derive(Debug)]
#[repr(transparent)]
pub struct UnsafeCell<T>(core::cell::UnsafeCell<T>);

#[cfg(not(loom))]
impl<T> UnsafeCell<T> {
    /// Wraps `value`.
    #[inline(always)]
    pub const fn new(value: T) -> Self {
        Self(core::cell::UnsafeCell::new(value))
    }

    /// Runs `f` with a shared raw pointer to the contents.
    #[inline(always)]
    pub fn with<R>(&self, f: impl FnOnce(*const T) -> R) -> R {
        f(self.0.get())
    }

    /// Runs `f` with an exclusive raw pointer to the contents.
    #[inline(always)]
    pub fn with_mut<R>(&self, f: impl FnOnce(*mut T) -> R) -> R {
        f(self.0.get())
    }
}

#[cfg(loom)]
pub use loom::cell::UnsafeCell;

#[cfg(all(test, not(loom)))]
mod tests {
    use super::*;

    #[test]
    fn cell_reads_back_what_was_written() {
        let cell = UnsafeCell::new(1_u64);
        // SAFETY: the cell is local to this test; no other reference to its contents exists.
        cell.with_mut(|p| unsafe { *p = 7 });
        // SAFETY: as above; the write finished before this read.
        let v = cell.with(|p| unsafe { *p });
        assert_eq!(v, 7);
    }

    #[test]
    fn std_atomics_are_reexported() {
        let a = Arc::new(AtomicUsize::new(3));
        a.fetch_add(2, Ordering::Relaxed);
        assert_eq!(a.load(Ordering::Relaxed), 5);
    }
}
