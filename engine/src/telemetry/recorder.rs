//! The per-thread recorder: one pre-sized histogram per hop the thread times.
//!
//! Each stage thread owns one [`Recorder`]. Its hot path, [`Recorder::record`], is a slot lookup, a
//! range check and a plain `Histogram::record` into memory no other thread touches: no atomics, no
//! allocation, no lock, no resizing.
//!
//! ## Snapshot hand-off
//! A recorder owns two sets of histograms: the *live* set it records into, and a *spare* set that
//! travels between it and the collector. When the collector wants a snapshot it bumps a shared
//! epoch counter. The stage calls [`Recorder::poll`] when idle or once per batch; that is one
//! Relaxed load and a compare. When the epoch changed, the recorder takes the (reset) spare set from
//! its `spare` channel, swaps it with the live set (a pointer swap), and sends the full set on its
//! `full` channel. The collector merges it, resets it and sends it back as the next spare. Both
//! channels are bounded crossbeam channels whose slots are allocated up front, and the collector
//! never blocks on them, so `try_send`/`try_recv` are lock-free here. This happens once per interval.
//!
//! Invariant: exactly two sets exist per recorder (live + one in flight or spare), and both
//! channels have capacity 2, so a `try_send` from either side never finds its channel full.
//! Nothing recorded is lost: a set is only ever swapped, merged or sent, never dropped with
//! samples in it while the collector is alive; dropping the recorder sends the live set as the
//! final snapshot.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use crossbeam::channel::{Receiver, Sender, TrySendError};
use hdrhistogram::Histogram;

use super::error::TelemetryError;
use super::hop::{Hop, HopSet};
use crate::clock;

/// The smallest latency a histogram distinguishes, in ns.
pub const LOWEST_NS: u64 = 1;
/// The largest latency a histogram records, in ns (10 s). Larger values are clamped to it and counted.
pub const HIGHEST_NS: u64 = 10_000_000_000;
/// Significant decimal digits kept by every histogram (relative error ≤ 0.1 %).
pub const SIGNIFICANT_DIGITS: u8 = 3;

/// Marker in `Recorder::slot_of` for a hop the recorder does not own.
const NO_SLOT: u8 = u8::MAX;

/// A latency histogram with the bounds every telemetry histogram shares, auto-resize off.
///
/// Histograms built here can always be added to one another (same bounds, same precision).
pub fn new_histogram() -> Result<Histogram<u64>, TelemetryError> {
    let mut h = Histogram::<u64>::new_with_bounds(LOWEST_NS, HIGHEST_NS, SIGNIFICANT_DIGITS)?;
    h.auto(false);
    // The counters come from a zeroed allocation, which the kernel maps lazily: the first sample
    // into each untouched page would take a page fault on the hot path. Writing every counter
    // now faults them all in up front.
    h.reset();
    Ok(h)
}

/// One hop's histogram and its out-of-range counters, as recorded by one thread.
#[derive(Debug, Clone)]
pub(crate) struct HopSlot {
    /// The hop this slot records.
    pub(crate) hop: Hop,
    /// Samples, in ns. Bounds `LOWEST_NS..=HIGHEST_NS`, auto-resize off.
    pub(crate) hist: Histogram<u64>,
    /// Samples above `HIGHEST_NS`, recorded as `HIGHEST_NS`.
    pub(crate) clamped_high: u64,
    /// Spans whose end stamp came before their start stamp, recorded as 0.
    pub(crate) backwards: u64,
}

impl HopSlot {
    fn new(hop: Hop) -> Result<HopSlot, TelemetryError> {
        Ok(HopSlot {
            hop,
            hist: new_histogram()?,
            clamped_high: 0,
            backwards: 0,
        })
    }

    /// Empties the slot without freeing its memory.
    pub(crate) fn reset(&mut self) {
        self.hist.reset();
        self.clamped_high = 0;
        self.backwards = 0;
    }
}

/// A set of histograms on its way from a recorder to the collector (full) or back (reset).
#[derive(Debug)]
pub(crate) struct Snapshot {
    /// One slot per hop the recorder owns, in the recorder's slot order.
    pub(crate) slots: Box<[HopSlot]>,
    /// Recorder clock when this set became live, in ns.
    pub(crate) from_ns: u64,
    /// Recorder clock when this set was handed off, in ns.
    pub(crate) to_ns: u64,
    /// Records the recorder dropped because it does not own their hop (a wiring mistake).
    pub(crate) unowned: u64,
    /// The recorder's last snapshot: the collector keeps it instead of sending it back.
    pub(crate) last: bool,
}

/// The per-thread latency recorder. Create it with
/// [`Collector::recorder`](super::Collector::recorder) and move it into its stage thread.
#[derive(Debug)]
pub struct Recorder {
    /// Name of the owning stage, for diagnostics.
    stage: &'static str,
    /// The live set. Invariant: `live[slot_of[h]].hop == h` for each owned hop `h`; the length
    /// never changes.
    live: Box<[HopSlot]>,
    /// Slot index per hop (`Hop::index`), or `NO_SLOT` for hops this recorder does not own.
    slot_of: [u8; Hop::COUNT],
    /// Records for hops this recorder does not own since the last hand-off.
    unowned: u64,
    /// Recorder clock when the live set became live.
    live_since_ns: u64,
    /// Snapshot requests, bumped by the collector.
    epoch: Arc<AtomicU64>,
    /// The last epoch this recorder answered.
    seen_epoch: u64,
    /// Full sets to the collector.
    full_tx: Sender<Snapshot>,
    /// Reset sets from the collector.
    spare_rx: Receiver<Snapshot>,
    /// Hand-offs that failed because the collector was gone.
    lost_handoffs: u64,
}

impl Recorder {
    /// Builds the recorder half of a link: live slots for `hops`, and one spare set.
    pub(crate) fn new(
        stage: &'static str,
        hops: HopSet,
        epoch: Arc<AtomicU64>,
        full_tx: Sender<Snapshot>,
        spare_rx: Receiver<Snapshot>,
    ) -> Result<(Recorder, Snapshot), TelemetryError> {
        let mut slot_of = [NO_SLOT; Hop::COUNT];
        let mut live = Vec::with_capacity(hops.len());
        let mut spare = Vec::with_capacity(hops.len());
        for (i, hop) in hops.iter().enumerate() {
            // At most Hop::COUNT (6) slots, so `i` fits in u8 and never equals NO_SLOT.
            slot_of[hop.index()] = i as u8;
            live.push(HopSlot::new(hop)?);
            spare.push(HopSlot::new(hop)?);
        }
        let seen_epoch = epoch.load(Ordering::Relaxed);
        let now = clock::now_ns();
        let recorder = Recorder {
            stage,
            live: live.into_boxed_slice(),
            slot_of,
            unowned: 0,
            live_since_ns: now,
            epoch,
            seen_epoch,
            full_tx,
            spare_rx,
            lost_handoffs: 0,
        };
        let spare = Snapshot {
            slots: spare.into_boxed_slice(),
            from_ns: now,
            to_ns: now,
            unowned: 0,
            last: false,
        };
        Ok((recorder, spare))
    }

    /// The owning stage's name.
    pub fn stage(&self) -> &'static str {
        self.stage
    }

    /// The hops this recorder owns.
    pub fn hops(&self) -> HopSet {
        self.live.iter().map(|s| s.hop).collect()
    }

    /// Records one latency sample of `ns` nanoseconds for `hop`.
    ///
    /// Values above [`HIGHEST_NS`] are recorded as `HIGHEST_NS` and counted; a hop this recorder
    /// does not own is counted and dropped. Never fails, never allocates.
    #[inline]
    pub fn record(&mut self, hop: Hop, ns: u64) {
        let slot = self.slot_of[hop.index()] as usize;
        match self.live.get_mut(slot) {
            Some(s) => {
                let ns = if ns > HIGHEST_NS {
                    s.clamped_high += 1;
                    HIGHEST_NS
                } else {
                    ns
                };
                s.hist.saturating_record(ns);
            }
            None => self.unowned += 1,
        }
    }

    /// Records the span `from_ns → to_ns` (two [`clock::now_ns`] stamps) for `hop`. A span that
    /// runs backwards is recorded as 0 and counted.
    #[inline]
    pub fn record_span(&mut self, hop: Hop, from_ns: u64, to_ns: u64) {
        match to_ns.checked_sub(from_ns) {
            Some(ns) => self.record(hop, ns),
            None => {
                self.record(hop, 0);
                let slot = self.slot_of[hop.index()] as usize;
                if let Some(s) = self.live.get_mut(slot) {
                    s.backwards += 1;
                }
            }
        }
    }

    /// Stamps now, records `from_ns → now` for `hop` and returns the stamp, so a stage can
    /// chain hops without a second clock read.
    #[inline]
    pub fn stamp_since(&mut self, hop: Hop, from_ns: u64) -> u64 {
        let now = clock::now_ns();
        self.record_span(hop, from_ns, now);
        now
    }

    /// Answers a pending snapshot request, if any. Call it when the stage is idle and once per
    /// batch; without a request it costs one Relaxed load and a compare. Returns whether a
    /// snapshot was handed off.
    #[inline]
    pub fn poll(&mut self) -> bool {
        // Relaxed: the epoch carries no data; the snapshot itself is published by the channel,
        // whose send/receive pair orders the histogram writes before the collector's reads.
        let epoch = self.epoch.load(Ordering::Relaxed);
        if epoch == self.seen_epoch {
            return false;
        }
        self.hand_off(epoch)
    }

    /// Hands off the live set now, whether or not a snapshot was requested (e.g. before the stage
    /// goes quiet for a long time). Returns whether a snapshot was handed off.
    pub fn flush(&mut self) -> bool {
        // Relaxed: see `poll`.
        let epoch = self.epoch.load(Ordering::Relaxed);
        self.hand_off(epoch)
    }

    /// Hand-offs lost because the collector had gone away.
    pub fn lost_handoffs(&self) -> u64 {
        self.lost_handoffs
    }

    #[cold]
    #[inline(never)]
    fn hand_off(&mut self, epoch: u64) -> bool {
        // No spare yet: the collector has not returned the previous set. Keep recording into the
        // live set and retry on the next poll; nothing is lost.
        let Ok(mut spare) = self.spare_rx.try_recv() else {
            return false;
        };
        let now = clock::now_ns();
        std::mem::swap(&mut self.live, &mut spare.slots);
        spare.from_ns = self.live_since_ns;
        spare.to_ns = now;
        spare.unowned = std::mem::take(&mut self.unowned);
        spare.last = false;
        self.live_since_ns = now;
        self.seen_epoch = epoch;
        match self.full_tx.try_send(spare) {
            Ok(()) => true,
            Err(TrySendError::Full(mut back) | TrySendError::Disconnected(mut back)) => {
                // Full cannot happen (two sets, capacity two); Disconnected means the collector
                // is gone. Keep the samples live rather than drop them.
                std::mem::swap(&mut self.live, &mut back.slots);
                self.unowned += back.unowned;
                self.live_since_ns = back.from_ns;
                self.lost_handoffs += 1;
                false
            }
        }
    }
}

impl Drop for Recorder {
    /// Sends the live set as the final snapshot, so samples recorded since the last hand-off
    /// reach the collector.
    fn drop(&mut self) {
        let empty: Box<[HopSlot]> = Box::new([]);
        let slots = std::mem::replace(&mut self.live, empty);
        let last = Snapshot {
            slots,
            from_ns: self.live_since_ns,
            to_ns: clock::now_ns(),
            unowned: self.unowned,
            last: true,
        };
        // Ignored error: the collector is gone, so nobody is left to read these samples.
        let _ = self.full_tx.try_send(last);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crossbeam::channel::bounded;

    fn recorder(hops: HopSet) -> (Recorder, Receiver<Snapshot>, Sender<Snapshot>) {
        let (full_tx, full_rx) = bounded(2);
        let (spare_tx, spare_rx) = bounded(2);
        let epoch = Arc::new(AtomicU64::new(0));
        let (r, spare) = Recorder::new("test", hops, epoch, full_tx, spare_rx).unwrap();
        spare_tx.send(spare).unwrap();
        (r, full_rx, spare_tx)
    }

    #[test]
    fn histogram_is_pre_sized_and_fixed() {
        let h = new_histogram().unwrap();
        assert!(!h.is_auto_resize());
        assert!(h.high() >= HIGHEST_NS);
        assert_eq!(h.low(), LOWEST_NS);
        assert_eq!(h.sigfig(), SIGNIFICANT_DIGITS);
    }

    /// Minor page faults of the calling thread so far, from /proc/thread-self/stat.
    fn minor_faults(buf: &mut Vec<u8>) -> Option<u64> {
        use std::io::Read;
        buf.clear();
        std::fs::File::open("/proc/thread-self/stat")
            .ok()?
            .read_to_end(buf)
            .ok()?;
        let text = std::str::from_utf8(buf).ok()?;
        // Fields after the command name: state ppid pgrp session tty_nr tpgid flags minflt ...
        let after = &text[text.rfind(')')? + 1..];
        after.split_whitespace().nth(7)?.parse().ok()
    }

    fn record_every_bucket(r: &mut Recorder) {
        let mut v = 1u64;
        while v <= HIGHEST_NS {
            r.record(Hop::Feed, v);
            v += v / 512 + 1;
        }
    }

    /// Recording into a fresh recorder, across every bucket, takes no page fault. (Whether a
    /// histogram without the up-front reset would fault depends on where the allocator found its
    /// memory: fresh mappings fault, reused heap memory does not. This guards the property.)
    #[test]
    fn recording_takes_no_page_faults() {
        let mut buf = Vec::with_capacity(4096);
        if minor_faults(&mut buf).is_none() {
            println!("skipped: /proc/thread-self/stat not readable");
            return;
        }
        // Warm up this code path (stack depth, code pages) on one recorder, measure another.
        let (mut warm, _f1, _s1) = recorder(HopSet::of(&[Hop::Feed]));
        record_every_bucket(&mut warm);
        let (mut r, _f2, _s2) = recorder(HopSet::of(&[Hop::Feed]));
        let before = minor_faults(&mut buf).unwrap();
        record_every_bucket(&mut r);
        let after = minor_faults(&mut buf).unwrap();
        assert_eq!(after - before, 0, "page faults while recording");
        assert!(r.live[0].hist.len() > 5_000);
    }

    #[test]
    fn records_into_the_owned_hop_only() {
        let (mut r, full_rx, _spare_tx) = recorder(HopSet::of(&[Hop::Risk, Hop::E2e]));
        assert_eq!(r.hops(), HopSet::of(&[Hop::Risk, Hop::E2e]));
        for ns in 1..=1000 {
            r.record(Hop::Risk, ns);
        }
        r.record(Hop::E2e, 42);
        r.record(Hop::Feed, 7); // not owned
        assert!(r.flush());
        let snap = full_rx.try_recv().unwrap();
        let risk = snap.slots.iter().find(|s| s.hop == Hop::Risk).unwrap();
        let e2e = snap.slots.iter().find(|s| s.hop == Hop::E2e).unwrap();
        assert_eq!(risk.hist.len(), 1000);
        assert_eq!(risk.hist.min(), 1);
        assert!(risk.hist.equivalent(risk.hist.max(), 1000));
        assert_eq!(e2e.hist.len(), 1);
        assert!(e2e.hist.equivalent(e2e.hist.max(), 42));
        assert_eq!(snap.unowned, 1);
        assert!(snap.to_ns >= snap.from_ns);
    }

    #[test]
    fn out_of_range_values_are_clamped_and_counted() {
        let (mut r, full_rx, _spare_tx) = recorder(HopSet::of(&[Hop::Emit]));
        r.record(Hop::Emit, u64::MAX);
        r.record(Hop::Emit, HIGHEST_NS + 1);
        r.record(Hop::Emit, HIGHEST_NS);
        r.record(Hop::Emit, 0);
        r.record_span(Hop::Emit, 100, 40); // backwards
        r.record_span(Hop::Emit, 40, 100);
        assert!(r.flush());
        let snap = full_rx.try_recv().unwrap();
        let s = &snap.slots[0];
        assert_eq!(s.hist.len(), 6);
        assert_eq!(s.clamped_high, 2);
        assert_eq!(s.backwards, 1);
        assert!(s.hist.equivalent(s.hist.max(), HIGHEST_NS));
        assert_eq!(s.hist.min(), 0);
        assert_eq!(s.hist.count_at(HIGHEST_NS), 3);
        assert_eq!(s.hist.count_at(0), 2);
    }

    #[test]
    fn poll_hands_off_only_on_a_new_epoch_and_keeps_samples_without_a_spare() {
        let (mut r, full_rx, spare_tx) = recorder(HopSet::of(&[Hop::Feed]));
        r.record(Hop::Feed, 10);
        assert!(!r.poll(), "no request yet");
        r.epoch.fetch_add(1, Ordering::Relaxed);
        assert!(r.poll());
        assert!(!r.poll(), "request already answered");
        let first = full_rx.try_recv().unwrap();
        assert_eq!(first.slots[0].hist.len(), 1);
        // The spare has not come back: a new request cannot be answered yet, samples stay live.
        r.record(Hop::Feed, 20);
        r.epoch.fetch_add(1, Ordering::Relaxed);
        assert!(!r.poll());
        let mut back = first;
        back.slots.iter_mut().for_each(HopSlot::reset);
        spare_tx.send(back).unwrap();
        assert!(r.poll());
        let second = full_rx.try_recv().unwrap();
        assert_eq!(second.slots[0].hist.len(), 1);
        assert!(
            second.slots[0]
                .hist
                .equivalent(second.slots[0].hist.max(), 20)
        );
    }

    #[test]
    fn drop_sends_the_last_snapshot() {
        let (mut r, full_rx, _spare_tx) = recorder(HopSet::of(&[Hop::Feed]));
        r.record(Hop::Feed, 5);
        r.record(Hop::Feed, 6);
        drop(r);
        let last = full_rx.try_recv().unwrap();
        assert!(last.last);
        assert_eq!(last.slots[0].hist.len(), 2);
    }

    #[test]
    fn a_gone_collector_loses_nothing_live() {
        let (mut r, full_rx, _spare_tx) = recorder(HopSet::of(&[Hop::Feed]));
        drop(full_rx);
        r.record(Hop::Feed, 5);
        assert!(!r.flush());
        assert_eq!(r.lost_handoffs(), 1);
        assert_eq!(r.live[0].hist.len(), 1);
    }
}
