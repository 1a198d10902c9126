//! Shared helpers for Brink's criterion benchmarks.
//!
//! The ring benchmark (`benches/ring.rs`) compares five bounded single-producer single-consumer
//! hand-offs through one small trait, [`Spsc`], so that each measurement runs the same harness code:
//! - [`transfer`]: throughput, producer and consumer on two threads, single items or batches;
//! - [`latency`]: one-way latency of paced, time-stamped messages into an HdrHistogram.
//!
//! Both check that every item arrives exactly once and in order; a violation panics, which fails
//! the bench run instead of timing a broken queue.

use std::sync::{Arc, Barrier};
use std::time::{Duration, Instant};

use hdrhistogram::Histogram;

/// Slots in every queue under test.
pub const CAPACITY: usize = 4096;

/// A bounded SPSC hand-off of `T`, as the harness drives it (non-blocking calls only; the harness
/// spins on full and empty).
pub trait Spsc<T: Copy + Send + 'static> {
    /// The sending handle.
    type Tx: Send + 'static;
    /// The receiving handle.
    type Rx: Send + 'static;
    /// Name in reports.
    const NAME: &'static str;
    /// Whether `push_batch`/`pop_batch` use a native batch API (otherwise a loop of single calls).
    const NATIVE_BATCH: bool;

    /// A queue of `capacity` slots.
    fn channel(capacity: usize) -> (Self::Tx, Self::Rx);
    /// Pushes one item or hands it back when full.
    fn push(tx: &mut Self::Tx, item: T) -> Result<(), T>;
    /// Pops one item, `None` when empty.
    fn pop(rx: &mut Self::Rx) -> Option<T>;

    /// Pushes a prefix of `items`; returns its length.
    fn push_batch(tx: &mut Self::Tx, items: &[T]) -> usize {
        let mut n = 0;
        for &item in items {
            if Self::push(tx, item).is_err() {
                break;
            }
            n += 1;
        }
        n
    }

    /// Pops up to `out.len()` items into the front of `out`; returns how many.
    fn pop_batch(rx: &mut Self::Rx, out: &mut [T]) -> usize {
        let mut n = 0;
        for slot in out.iter_mut() {
            match Self::pop(rx) {
                Some(item) => *slot = item,
                None => break,
            }
            n += 1;
        }
        n
    }
}

/// Brink's own ring ([`brink::ring`]).
pub enum BrinkRing {}

impl<T: Copy + Send + 'static> Spsc<T> for BrinkRing {
    type Tx = brink::ring::Producer<T>;
    type Rx = brink::ring::Consumer<T>;
    const NAME: &'static str = "brink::ring";
    const NATIVE_BATCH: bool = true;

    fn channel(capacity: usize) -> (Self::Tx, Self::Rx) {
        brink::ring::channel(capacity).expect("power-of-two capacity")
    }
    #[inline]
    fn push(tx: &mut Self::Tx, item: T) -> Result<(), T> {
        tx.try_push(item).map_err(brink::ring::Full::into_inner)
    }
    #[inline]
    fn pop(rx: &mut Self::Rx) -> Option<T> {
        rx.try_pop()
    }
    #[inline]
    fn push_batch(tx: &mut Self::Tx, items: &[T]) -> usize {
        tx.push_slice(items)
    }
    #[inline]
    fn pop_batch(rx: &mut Self::Rx, out: &mut [T]) -> usize {
        rx.pop_slice(out)
    }
}

/// `rtrb` 0.4 (lock-free SPSC ring with cached indices and slice APIs).
pub enum Rtrb {}

impl<T: Copy + Send + 'static> Spsc<T> for Rtrb {
    type Tx = rtrb::Producer<T>;
    type Rx = rtrb::Consumer<T>;
    const NAME: &'static str = "rtrb";
    const NATIVE_BATCH: bool = true;

    fn channel(capacity: usize) -> (Self::Tx, Self::Rx) {
        rtrb::RingBuffer::new(capacity)
    }
    #[inline]
    fn push(tx: &mut Self::Tx, item: T) -> Result<(), T> {
        tx.push(item).map_err(|rtrb::PushError::Full(v)| v)
    }
    #[inline]
    fn pop(rx: &mut Self::Rx) -> Option<T> {
        rx.pop().ok()
    }
    #[inline]
    fn push_batch(tx: &mut Self::Tx, items: &[T]) -> usize {
        tx.push_partial_slice(items).0.len()
    }
    #[inline]
    fn pop_batch(rx: &mut Self::Rx, out: &mut [T]) -> usize {
        rx.pop_partial_slice(out).0.len()
    }
}

/// `crossbeam::queue::ArrayQueue` (bounded MPMC, shared through an `Arc`).
pub enum ArrayQueue {}

impl<T: Copy + Send + 'static> Spsc<T> for ArrayQueue {
    type Tx = Arc<crossbeam::queue::ArrayQueue<T>>;
    type Rx = Arc<crossbeam::queue::ArrayQueue<T>>;
    const NAME: &'static str = "crossbeam ArrayQueue";
    const NATIVE_BATCH: bool = false;

    fn channel(capacity: usize) -> (Self::Tx, Self::Rx) {
        let q = Arc::new(crossbeam::queue::ArrayQueue::new(capacity));
        (Arc::clone(&q), q)
    }
    #[inline]
    fn push(tx: &mut Self::Tx, item: T) -> Result<(), T> {
        tx.push(item)
    }
    #[inline]
    fn pop(rx: &mut Self::Rx) -> Option<T> {
        rx.pop()
    }
}

/// `crossbeam::channel::bounded` (MPMC channel), driven with `try_send`/`try_recv`.
pub enum CrossbeamChannel {}

impl<T: Copy + Send + 'static> Spsc<T> for CrossbeamChannel {
    type Tx = crossbeam::channel::Sender<T>;
    type Rx = crossbeam::channel::Receiver<T>;
    const NAME: &'static str = "crossbeam channel";
    const NATIVE_BATCH: bool = false;

    fn channel(capacity: usize) -> (Self::Tx, Self::Rx) {
        crossbeam::channel::bounded(capacity)
    }
    #[inline]
    fn push(tx: &mut Self::Tx, item: T) -> Result<(), T> {
        tx.try_send(item).map_err(|e| match e {
            crossbeam::channel::TrySendError::Full(v) => v,
            crossbeam::channel::TrySendError::Disconnected(_) => panic!("receiver gone"),
        })
    }
    #[inline]
    fn pop(rx: &mut Self::Rx) -> Option<T> {
        rx.try_recv().ok()
    }
}

/// `std::sync::mpsc::sync_channel` (bounded MPSC), driven with `try_send`/`try_recv`.
pub enum StdSyncChannel {}

impl<T: Copy + Send + 'static> Spsc<T> for StdSyncChannel {
    type Tx = std::sync::mpsc::SyncSender<T>;
    type Rx = std::sync::mpsc::Receiver<T>;
    const NAME: &'static str = "std sync_channel";
    const NATIVE_BATCH: bool = false;

    fn channel(capacity: usize) -> (Self::Tx, Self::Rx) {
        std::sync::mpsc::sync_channel(capacity)
    }
    #[inline]
    fn push(tx: &mut Self::Tx, item: T) -> Result<(), T> {
        tx.try_send(item).map_err(|e| match e {
            std::sync::mpsc::TrySendError::Full(v) => v,
            std::sync::mpsc::TrySendError::Disconnected(_) => panic!("receiver gone"),
        })
    }
    #[inline]
    fn pop(rx: &mut Self::Rx) -> Option<T> {
        rx.try_recv().ok()
    }
}

/// Where the two benchmark threads run.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Cores {
    /// Producer's core, if pinned.
    pub producer: Option<usize>,
    /// Consumer's core, if pinned.
    pub consumer: Option<usize>,
}

impl Cores {
    /// Pins producer and consumer to the first two cores of `available` (read once, before any
    /// pinning); leaves both unpinned with fewer than two.
    pub fn from_available(available: &[usize]) -> Self {
        match available {
            [a, b, ..] => Self {
                producer: Some(*a),
                consumer: Some(*b),
            },
            _ => Self {
                producer: None,
                consumer: None,
            },
        }
    }
}

fn pin(core: Option<usize>) {
    if let Some(id) = core {
        // A failed pin only makes the numbers noisier; the table says which cores were asked for.
        let _ = core_affinity::set_for_current(core_affinity::CoreId { id });
    }
}

/// Moves `0..items` from a producer thread to a consumer thread, `batch` items per call (1 = the
/// single-item API), and returns the consumer's time from the start barrier to the last item.
///
/// # Panics
/// If an item is lost, duplicated or out of order.
pub fn transfer<Q: Spsc<u64>>(items: u64, batch: usize, cores: Cores) -> Duration {
    let (mut tx, mut rx) = Q::channel(CAPACITY);
    let start = Arc::new(Barrier::new(2));
    let producer = {
        let start = Arc::clone(&start);
        std::thread::spawn(move || {
            pin(cores.producer);
            start.wait();
            if batch <= 1 {
                for i in 0..items {
                    let mut item = i;
                    while let Err(back) = Q::push(&mut tx, item) {
                        item = back;
                        std::hint::spin_loop();
                    }
                }
            } else {
                let mut buf = vec![0_u64; batch];
                let mut next = 0_u64;
                while next < items {
                    let k = (items - next).min(batch as u64) as usize;
                    for (j, b) in buf[..k].iter_mut().enumerate() {
                        *b = next + j as u64;
                    }
                    let mut sent = 0;
                    while sent < k {
                        let n = Q::push_batch(&mut tx, &buf[sent..k]);
                        if n == 0 {
                            std::hint::spin_loop();
                        }
                        sent += n;
                    }
                    next += k as u64;
                }
            }
        })
    };
    let consumer = std::thread::spawn(move || {
        pin(cores.consumer);
        start.wait();
        let t0 = Instant::now();
        let mut expected = 0_u64;
        let mut in_order = true;
        if batch <= 1 {
            while expected < items {
                if let Some(x) = Q::pop(&mut rx) {
                    in_order &= x == expected;
                    expected += 1;
                } else {
                    std::hint::spin_loop();
                }
            }
        } else {
            let mut buf = vec![0_u64; batch];
            while expected < items {
                let n = Q::pop_batch(&mut rx, &mut buf);
                for &x in &buf[..n] {
                    in_order &= x == expected;
                    expected += 1;
                }
                if n == 0 {
                    std::hint::spin_loop();
                }
            }
        }
        let elapsed = t0.elapsed();
        let extra = Q::pop(&mut rx).is_some();
        (elapsed, in_order, extra)
    });
    producer.join().expect("producer thread");
    let (elapsed, in_order, extra) = consumer.join().expect("consumer thread");
    assert!(in_order, "{}: items arrived out of order", Q::NAME);
    assert!(!extra, "{}: more items arrived than were sent", Q::NAME);
    elapsed
}

/// A latency probe: its sequence number and its send time (CLOCK_MONOTONIC ns).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Stamped {
    /// 0, 1, 2, … in send order.
    pub seq: u64,
    /// `brink::clock::now_ns()` just before the push.
    pub sent_ns: u64,
}

/// A histogram for one-way latencies: 1 ns to 10 s at 3 significant digits.
pub fn latency_histogram() -> Histogram<u64> {
    Histogram::new_with_bounds(1, 10_000_000_000, 3).expect("valid histogram bounds")
}

/// Sends `messages` stamped probes, one every `gap_ns` (paced on the producer's clock, so a slow
/// hand-off shows as queueing delay instead of slowing the sender), and records each probe's
/// one-way latency (receive stamp − send stamp) into `hist`.
///
/// # Panics
/// If a probe is lost, duplicated or out of order.
pub fn latency<Q: Spsc<Stamped>>(
    messages: u64,
    gap_ns: u64,
    cores: Cores,
    hist: Histogram<u64>,
) -> Histogram<u64> {
    let (mut tx, mut rx) = Q::channel(CAPACITY);
    let start = Arc::new(Barrier::new(2));
    let producer = {
        let start = Arc::clone(&start);
        std::thread::spawn(move || {
            pin(cores.producer);
            start.wait();
            let mut next_ns = brink::clock::now_ns();
            for seq in 0..messages {
                while brink::clock::now_ns() < next_ns {
                    std::hint::spin_loop();
                }
                let mut item = Stamped {
                    seq,
                    sent_ns: brink::clock::now_ns(),
                };
                while let Err(back) = Q::push(&mut tx, item) {
                    item = back;
                    std::hint::spin_loop();
                }
                next_ns += gap_ns;
            }
        })
    };
    let consumer = std::thread::spawn(move || {
        let mut hist = hist;
        pin(cores.consumer);
        start.wait();
        let mut expected = 0_u64;
        while expected < messages {
            if let Some(m) = Q::pop(&mut rx) {
                let now = brink::clock::now_ns();
                assert_eq!(m.seq, expected, "{}: probe out of order", Q::NAME);
                hist.saturating_record(now.saturating_sub(m.sent_ns).max(1));
                expected += 1;
            } else {
                std::hint::spin_loop();
            }
        }
        hist
    });
    producer.join().expect("producer thread");
    consumer.join().expect("consumer thread")
}

/// One row of the comparison table.
#[derive(Debug, Clone, Default)]
pub struct Row {
    /// Queue name.
    pub name: &'static str,
    /// Median throughput with single-item calls, items per second.
    pub single_per_s: f64,
    /// Median throughput with 64-item batches, items per second.
    pub batch_per_s: f64,
    /// Whether the batch numbers use a native batch API.
    pub native_batch: bool,
    /// One-way latency percentiles, ns.
    pub p50_ns: u64,
    /// 99th percentile, ns.
    pub p99_ns: u64,
    /// 99.9th percentile, ns.
    pub p999_ns: u64,
    /// Probes recorded.
    pub probes: u64,
}

impl Row {
    /// Fills the latency columns from a histogram.
    pub fn set_latency(&mut self, hist: &Histogram<u64>) {
        self.p50_ns = hist.value_at_quantile(0.50);
        self.p99_ns = hist.value_at_quantile(0.99);
        self.p999_ns = hist.value_at_quantile(0.999);
        self.probes = hist.len();
    }
}

/// Median of items-per-second over timed runs of `(items, elapsed)`.
pub fn median_rate(runs: &[(u64, Duration)]) -> f64 {
    let mut rates: Vec<f64> = runs
        .iter()
        .filter(|(_, d)| !d.is_zero())
        .map(|&(n, d)| n as f64 / d.as_secs_f64())
        .collect();
    if rates.is_empty() {
        return 0.0;
    }
    rates.sort_by(f64::total_cmp);
    rates[rates.len() / 2]
}

/// The comparison table as Markdown; ratios are relative to the first row (ours).
/// Throughput ratios above 1 mean faster than ours; latency ratios above 1 mean slower.
pub fn table(rows: &[Row]) -> String {
    use std::fmt::Write as _;
    let Some(ours) = rows.first() else {
        return String::new();
    };
    let ratio = |a: f64, b: f64| if b > 0.0 { a / b } else { f64::NAN };
    let mut s = String::new();
    let _ = writeln!(
        s,
        "| queue | single Mitems/s | vs ours | batch-64 Mitems/s | vs ours | p50 ns | vs ours | p99 ns | p99.9 ns |"
    );
    let _ = writeln!(s, "|---|---:|---:|---:|---:|---:|---:|---:|---:|");
    for r in rows {
        let _ = writeln!(
            s,
            "| {}{} | {:.1} | {:.2}× | {:.1} | {:.2}× | {} | {:.2}× | {} | {} |",
            r.name,
            if r.native_batch { "" } else { " ¹" },
            r.single_per_s / 1e6,
            ratio(r.single_per_s, ours.single_per_s),
            r.batch_per_s / 1e6,
            ratio(r.batch_per_s, ours.batch_per_s),
            r.p50_ns,
            ratio(r.p50_ns as f64, ours.p50_ns as f64),
            r.p99_ns,
            r.p999_ns,
        );
    }
    let _ = writeln!(
        s,
        "\n¹ no batch API: the batch-64 column is 64 single calls per batch.\n\
         Throughput \"vs ours\" > 1 is faster than ours; p50 \"vs ours\" > 1 is slower than ours."
    );
    s
}

#[cfg(test)]
mod tests {
    use super::*;

    fn moves_in_order<Q: Spsc<u64> + Spsc<Stamped>>() {
        for batch in [1, 64] {
            transfer::<Q>(50_000, batch, Cores::from_available(&[]));
        }
        let hist = latency::<Q>(1_000, 0, Cores::from_available(&[]), latency_histogram());
        assert_eq!(hist.len(), 1_000);
    }

    #[test]
    fn every_queue_moves_items_in_order() {
        moves_in_order::<BrinkRing>();
        moves_in_order::<Rtrb>();
        moves_in_order::<ArrayQueue>();
        moves_in_order::<CrossbeamChannel>();
        moves_in_order::<StdSyncChannel>();
    }

    #[test]
    fn median_ignores_outliers() {
        let s = Duration::from_secs(1);
        let runs = [(10, s), (1_000, s), (20, s)];
        assert_eq!(median_rate(&runs), 20.0);
        assert_eq!(median_rate(&[]), 0.0);
    }

    #[test]
    fn table_has_a_row_per_queue() {
        let rows = vec![
            Row {
                name: "a",
                single_per_s: 2e6,
                batch_per_s: 4e6,
                native_batch: true,
                p50_ns: 100,
                ..Row::default()
            },
            Row {
                name: "b",
                single_per_s: 1e6,
                batch_per_s: 1e6,
                p50_ns: 200,
                ..Row::default()
            },
        ];
        let t = table(&rows);
        assert!(
            t.contains("| b ¹ | 1.0 | 0.50× | 1.0 | 0.25× | 200 | 2.00×"),
            "{t}"
        );
    }
}
