//! Unit, property, stress and drop-counting tests of the ring (the loom model is in `loom_tests`).

use std::collections::VecDeque;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Barrier};

use proptest::prelude::*;

use super::*;

#[test]
fn capacity_must_be_a_power_of_two() {
    assert_eq!(channel::<u64>(0).err(), Some(RingError::Zero));
    assert_eq!(
        channel::<u64>(1000).err(),
        Some(RingError::NotPowerOfTwo {
            requested: 1000,
            suggested: 1024
        })
    );
    assert!(matches!(
        channel::<[u8; 1 << 20]>(1 << 50).err(),
        Some(RingError::TooLarge { .. })
    ));
    for cap in [1, 2, 4, 1024] {
        let (p, c) = channel::<u64>(cap).expect("power of two");
        assert_eq!(p.capacity(), cap);
        assert_eq!(c.capacity(), cap);
    }
}

#[test]
fn error_messages_say_what_to_use() {
    let msg = channel::<u64>(1000).expect_err("refused").to_string();
    assert!(msg.contains("1024"), "{msg}");
}

#[test]
fn push_until_full_hands_the_item_back() {
    let (mut p, mut c) = channel::<u32>(4).expect("capacity");
    for i in 0..4 {
        assert_eq!(p.try_push(i), Ok(()));
    }
    assert_eq!(p.try_push(99), Err(Full(99)));
    assert_eq!(p.free_slots(), 0);
    assert_eq!(c.try_pop(), Some(0));
    assert_eq!(p.try_push(4), Ok(()));
    assert_eq!(
        (1..=4).map(|_| c.try_pop()).collect::<Vec<_>>(),
        [Some(1), Some(2), Some(3), Some(4)]
    );
    assert_eq!(c.try_pop(), None);
}

#[test]
fn indices_wrap_many_times() {
    let (mut p, mut c) = channel::<usize>(2).expect("capacity");
    for i in 0..10_000 {
        p.try_push(i).expect("room");
        assert_eq!(c.try_pop(), Some(i));
    }
    assert_eq!(c.available(), 0);
}

#[test]
fn slices_wrap_around_the_end() {
    let (mut p, mut c) = channel::<u8>(8).expect("capacity");
    assert_eq!(p.push_slice(&[1, 2, 3, 4, 5, 6]), 6);
    let mut out = [0_u8; 4];
    assert_eq!(c.pop_slice(&mut out), 4);
    assert_eq!(out, [1, 2, 3, 4]);
    // 2 left, 6 free: the next slice wraps past slot 7.
    assert_eq!(p.push_slice(&[7, 8, 9, 10, 11, 12, 13]), 6);
    let mut got = Vec::new();
    assert_eq!(c.drain(usize::MAX, |x| got.push(x)), 8);
    assert_eq!(got, [5, 6, 7, 8, 9, 10, 11, 12]);
}

#[test]
fn push_iter_takes_only_what_fits() {
    let (mut p, mut c) = channel::<u32>(4).expect("capacity");
    let mut items = 0..10;
    assert_eq!(p.push_iter(&mut items), 4);
    assert_eq!(
        items.next(),
        Some(4),
        "the fifth item stays in the iterator"
    );
    assert_eq!(p.push_iter(&mut items), 0);
    assert_eq!(c.drain(2, drop), 2);
    assert_eq!(p.push_iter(&mut items), 2);
    let mut got = Vec::new();
    c.drain(10, |x| got.push(x));
    assert_eq!(got, [2, 3, 5, 6]);
}

#[test]
fn abandonment_is_seen_from_both_sides() {
    let (p, c) = channel::<u8>(2).expect("capacity");
    assert!(!p.is_abandoned() && !c.is_abandoned());
    drop(p);
    assert!(c.is_abandoned());
    let (p, c) = channel::<u8>(2).expect("capacity");
    drop(c);
    assert!(p.is_abandoned());
}

#[test]
fn zero_sized_items_are_counted() {
    let (mut p, mut c) = channel::<()>(4).expect("capacity");
    assert_eq!(p.push_iter(&mut std::iter::repeat_n((), 9)), 4);
    assert_eq!(c.drain(9, |()| ()), 4);
}

#[test]
fn handles_are_send() {
    fn is_send<T: Send>() {}
    is_send::<Producer<String>>();
    is_send::<Consumer<String>>();
}

/// Counts drops of each of its values in a shared table.
struct Tracked {
    id: usize,
    drops: Arc<Vec<AtomicUsize>>,
}

impl Drop for Tracked {
    fn drop(&mut self) {
        self.drops[self.id].fetch_add(1, Ordering::Relaxed);
    }
}

fn drop_table(n: usize) -> Arc<Vec<AtomicUsize>> {
    Arc::new((0..n).map(|_| AtomicUsize::new(0)).collect())
}

#[test]
fn every_item_is_dropped_exactly_once() {
    for (pushed, popped) in [(0, 0), (3, 0), (8, 3), (8, 8), (20, 17)] {
        let drops = drop_table(pushed);
        let (mut p, mut c) = channel::<Tracked>(8).expect("capacity");
        let mut next = 0;
        let mut taken = 0;
        while next < pushed || taken < popped {
            while next < pushed {
                let item = Tracked {
                    id: next,
                    drops: Arc::clone(&drops),
                };
                match p.try_push(item) {
                    Ok(()) => next += 1,
                    // The handed-back item is dropped here: undo its count, it will be retried.
                    Err(Full(back)) => {
                        drops[back.id].fetch_sub(1, Ordering::Relaxed);
                        break;
                    }
                }
            }
            if taken < popped {
                let item = c.try_pop().expect("pushed before");
                assert_eq!(item.id, taken);
                taken += 1;
            } else {
                break;
            }
        }
        // Half the runs drop the producer first, half the consumer.
        if pushed % 2 == 0 {
            drop(p);
            drop(c);
        } else {
            drop(c);
            drop(p);
        }
        for (id, d) in drops.iter().enumerate() {
            let expected = usize::from(id < next);
            assert_eq!(
                d.load(Ordering::Relaxed),
                expected,
                "item {id} of {pushed}/{popped}"
            );
        }
    }
}

#[test]
fn a_panicking_drain_closure_loses_and_duplicates_nothing() {
    let drops = drop_table(6);
    let (mut p, mut c) = channel::<Tracked>(8).expect("capacity");
    let mut items = (0..6).map(|id| Tracked {
        id,
        drops: Arc::clone(&drops),
    });
    assert_eq!(p.push_iter(&mut items), 6);
    let result = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
        c.drain(6, |item| {
            if item.id == 2 {
                panic!("closure fails on item 2");
            }
        });
    }));
    assert!(result.is_err());
    // Items 0..=2 were handed over (and dropped by the closure); 3..6 remain.
    assert_eq!(c.try_pop().map(|t| t.id), Some(3));
    drop(p);
    drop(c);
    for d in drops.iter() {
        assert_eq!(d.load(Ordering::Relaxed), 1);
    }
}

#[derive(Debug, Clone)]
enum Op {
    Push(u32),
    Pop,
    PushSlice(Vec<u32>),
    PopSlice(usize),
    Drain(usize),
    PushIter(Vec<u32>),
}

fn op() -> impl Strategy<Value = Op> {
    prop_oneof![
        any::<u32>().prop_map(Op::Push),
        Just(Op::Pop),
        prop::collection::vec(any::<u32>(), 0..12).prop_map(Op::PushSlice),
        (0_usize..12).prop_map(Op::PopSlice),
        (0_usize..12).prop_map(Op::Drain),
        prop::collection::vec(any::<u32>(), 0..12).prop_map(Op::PushIter),
    ]
}

proptest! {
    #[test]
    fn behaves_like_a_bounded_vecdeque(cap_log in 0_u32..4, ops in prop::collection::vec(op(), 0..200)) {
        let cap = 1_usize << cap_log;
        let (mut p, mut c) = channel::<u32>(cap).expect("capacity");
        let mut model = VecDeque::new();
        for op in ops {
            match op {
                Op::Push(x) => {
                    let got = p.try_push(x);
                    if model.len() < cap {
                        prop_assert_eq!(got, Ok(()));
                        model.push_back(x);
                    } else {
                        prop_assert_eq!(got, Err(Full(x)));
                    }
                }
                Op::Pop => prop_assert_eq!(c.try_pop(), model.pop_front()),
                Op::PushSlice(xs) => {
                    let n = p.push_slice(&xs);
                    prop_assert_eq!(n, xs.len().min(cap - model.len()));
                    model.extend(&xs[..n]);
                }
                Op::PushIter(xs) => {
                    let mut it = xs.iter().copied();
                    let n = p.push_iter(&mut it);
                    prop_assert_eq!(n, xs.len().min(cap - model.len()));
                    prop_assert_eq!(it.len(), xs.len() - n);
                    model.extend(&xs[..n]);
                }
                Op::PopSlice(k) => {
                    let mut out = vec![0; k];
                    let n = c.pop_slice(&mut out);
                    let want: Vec<u32> = model.drain(..k.min(model.len())).collect();
                    prop_assert_eq!(&out[..n], &want[..]);
                }
                Op::Drain(k) => {
                    let mut got = Vec::new();
                    let n = c.drain(k, |x| got.push(x));
                    let want: Vec<u32> = model.drain(..k.min(model.len())).collect();
                    prop_assert_eq!(n, want.len());
                    prop_assert_eq!(got, want);
                }
            }
            prop_assert_eq!(c.available(), model.len());
            prop_assert_eq!(p.free_slots(), cap - model.len());
        }
    }
}

/// Items in the two-thread stress test: 10^7 in release builds, fewer in unoptimised ones so that
/// `cargo test` without `--release` still finishes quickly.
#[cfg(not(debug_assertions))]
const STRESS_ITEMS: u64 = 10_000_000;
#[cfg(debug_assertions)]
const STRESS_ITEMS: u64 = 200_000;

/// Runs producer and consumer on two threads, mixing single and batch calls on both sides, and
/// checks that the consumer sees `0..STRESS_ITEMS` exactly, in order.
#[test]
fn two_threads_move_every_item_in_order() {
    let (mut p, mut c) = channel::<u64>(1024).expect("capacity");
    let start = Arc::new(Barrier::new(2));
    let producer = {
        let start = Arc::clone(&start);
        std::thread::spawn(move || {
            start.wait();
            let mut next = 0_u64;
            let mut buf = [0_u64; 37];
            while next < STRESS_ITEMS {
                let pushed = match next % 3 {
                    0 => usize::from(p.try_push(next).is_ok()),
                    1 => {
                        let k = (STRESS_ITEMS - next).min(buf.len() as u64) as usize;
                        for (i, b) in buf[..k].iter_mut().enumerate() {
                            *b = next + i as u64;
                        }
                        p.push_slice(&buf[..k])
                    }
                    _ => p.push_iter(&mut (next..STRESS_ITEMS).take(53)),
                };
                if pushed == 0 {
                    std::hint::spin_loop();
                }
                next += pushed as u64;
            }
        })
    };
    start.wait();
    let mut expected = 0_u64;
    let mut buf = [0_u64; 29];
    let mut round = 0_u32;
    while expected < STRESS_ITEMS {
        round = round.wrapping_add(1);
        let got = match round % 3 {
            0 => match c.try_pop() {
                Some(x) => {
                    assert_eq!(x, expected);
                    1
                }
                None => 0,
            },
            1 => {
                let n = c.pop_slice(&mut buf);
                for (i, &x) in buf[..n].iter().enumerate() {
                    assert_eq!(x, expected + i as u64);
                }
                n
            }
            _ => {
                let mut want = expected;
                c.drain(41, |x| {
                    assert_eq!(x, want);
                    want += 1;
                })
            }
        };
        if got == 0 {
            std::hint::spin_loop();
        }
        expected += got as u64;
    }
    producer.join().expect("producer thread");
    assert_eq!(c.try_pop(), None, "nothing beyond the last item");
    assert!(c.is_abandoned());
}
