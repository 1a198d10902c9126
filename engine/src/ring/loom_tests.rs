//! Loom models of the ring (capacity 2–4): every interleaving of a producer and a consumer thread,
//! within loom's bounds, must deliver the items in order, none lost or duplicated, and drop each
//! leftover exactly once. Run with
//! `RUSTFLAGS="--cfg loom" CARGO_TARGET_DIR=target/loom cargo test -p brink --release --lib -- loom`.

use loom::sync::atomic::AtomicUsize;
use loom::thread;

use super::*;
use crate::sync::{Arc, Ordering};

/// Explores every interleaving: these models are small enough to finish in seconds without a
/// preemption bound. `LOOM_MAX_PREEMPTIONS=N` bounds the search if a model grows.
fn model(f: impl Fn() + Sync + Send + 'static) {
    loom::model::Builder::new().check(f);
}

#[test]
fn loom_push_pop_in_order() {
    model(|| {
        let (mut p, mut c) = channel::<u32>(2).expect("capacity");
        let producer = thread::spawn(move || {
            for i in 0..3 {
                let mut item = i;
                loop {
                    match p.try_push(item) {
                        Ok(()) => break,
                        Err(Full(back)) => {
                            item = back;
                            thread::yield_now();
                        }
                    }
                }
            }
        });
        let mut expected = 0;
        while expected < 3 {
            match c.try_pop() {
                Some(x) => {
                    assert_eq!(x, expected);
                    expected += 1;
                }
                None => thread::yield_now(),
            }
        }
        producer.join().expect("producer");
        assert_eq!(c.try_pop(), None);
    });
}

#[test]
fn loom_batches_in_order() {
    model(|| {
        let (mut p, mut c) = channel::<u32>(4).expect("capacity");
        let producer = thread::spawn(move || {
            let items = [0, 1, 2, 3, 4];
            let mut sent = 0;
            let mut round = 0;
            while sent < items.len() {
                round += 1;
                let n = if round % 2 == 1 {
                    p.push_slice(&items[sent..])
                } else {
                    p.push_iter(&mut items[sent..].iter().copied())
                };
                if n == 0 {
                    thread::yield_now();
                }
                sent += n;
            }
        });
        let mut expected = 0;
        let mut buf = [0; 3];
        let mut round = 0;
        while expected < 5 {
            round += 1;
            let n = if round % 2 == 1 {
                let n = c.pop_slice(&mut buf);
                for (i, &x) in buf[..n].iter().enumerate() {
                    assert_eq!(x, expected + i as u32);
                }
                n
            } else {
                let mut want = expected;
                c.drain(2, |x| {
                    assert_eq!(x, want);
                    want += 1;
                })
            };
            if n == 0 {
                thread::yield_now();
            }
            expected += n as u32;
        }
        producer.join().expect("producer");
    });
}

/// Adds one to its counter when dropped.
struct Counted(Arc<AtomicUsize>);

impl Drop for Counted {
    fn drop(&mut self) {
        self.0.fetch_add(1, Ordering::Relaxed);
    }
}

#[test]
fn loom_leftovers_dropped_exactly_once() {
    model(|| {
        let drops = Arc::new(AtomicUsize::new(0));
        let (mut p, mut c) = channel::<Counted>(2).expect("capacity");
        let pushed_drops = Arc::clone(&drops);
        // The producer pushes what fits of three items, then drops its handle; the consumer pops
        // at most one and drops its handle concurrently. Whoever drops last frees the ring.
        let producer = thread::spawn(move || {
            let mut pushed = 0;
            for _ in 0..3 {
                if p.try_push(Counted(Arc::clone(&pushed_drops))).is_ok() {
                    pushed += 1;
                }
            }
            pushed
        });
        let popped = usize::from(c.try_pop().is_some());
        drop(c);
        let pushed = producer.join().expect("producer");
        assert!(popped <= pushed);
        // Every constructed item is dropped once: those refused by `try_push` at once, the popped
        // one by the consumer, the rest by the ring.
        assert_eq!(drops.load(Ordering::Relaxed), 3);
    });
}

#[test]
fn loom_abandoned_then_empty_means_finished() {
    model(|| {
        let (mut p, mut c) = channel::<u32>(2).expect("capacity");
        let producer = thread::spawn(move || {
            let mut sent = 0;
            while sent < 3 {
                if p.try_push(sent).is_ok() {
                    sent += 1;
                } else {
                    thread::yield_now();
                }
            }
        });
        let mut got = Vec::new();
        loop {
            // Check abandonment first, then drain: after seeing the flag, every item is visible.
            let abandoned = c.is_abandoned();
            let n = c.drain(4, |x| got.push(x));
            if n == 0 {
                if abandoned {
                    break;
                }
                thread::yield_now();
            }
        }
        producer.join().expect("producer");
        assert_eq!(got, [0, 1, 2]);
    });
}
