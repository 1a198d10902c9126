//! The ingest stage: maps the feed ring, validates its header and every record, and hands
//! validated [`FeedEvent`]s on.
//!
//! Independent of the thread runtime: the owner calls [`Ingest::poll`] in its loop and forwards the
//! events (to the risk stage's SPSC ring, or anywhere else). `poll` never allocates, locks or
//! panics on input; while the producer is idle it reads the clock and, at most every
//! [`IngestConfig::restart_check_ns`], makes one `stat` call to see whether the ring file was
//! replaced.
//!
//! Checks, in order, for each slot:
//! 1. Protocol: a slot the producer says it published whose commit word does not match is
//!    counted as [`Reject::Torn`]; a slot a whole lap ahead is a sequence gap (counted, and an
//!    alert event with the expected and found sequence numbers).
//! 2. Decoding: unknown tag or status code.
//! 3. Values: instrument id known; prices positive (mark, fill) or non-negative (index, bid, ask,
//!    settlement); bid below ask; mark and fill price within the band around the last accepted
//!    mark; publish stamps non-decreasing per instrument.
//!
//! Liveness: no producer heartbeat for [`IngestConfig::stale_after_ns`] raises a `producer_stale`
//! alert; a fresh heartbeat raises `producer_resumed`. A new producer pid in the header, or a new
//! file renamed over the path (new inode and creation time), raises `producer_restarted`; for a new
//! file the stage re-attaches from that file's consumer cursor (its start).

mod event;

use std::path::Path;

pub use event::{FeedBody, FeedEvent, IngestConfig, IngestCounters, Reject, RejectCounts};

use crate::clock;
use crate::shm::{
    Alert, Consumer, Expect, HeaderView, Input, InputDecodeError, Record, RingKind, ShmError, Slot,
    alert_code,
};

/// The ingest stage could not start.
#[derive(Debug, thiserror::Error)]
pub enum IngestError {
    /// The feed file is missing, unreadable or not a valid feed ring.
    #[error(transparent)]
    Shm(#[from] ShmError),
    /// The configuration cannot work.
    #[error("ingest configuration: {0}")]
    Config(&'static str),
}

/// What one [`Ingest::poll`] call found.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum PollStatus {
    /// This many slots were consumed (accepted, rejected or skipped); events were delivered.
    Data(usize),
    /// Nothing new; the producer is alive.
    Empty,
    /// Nothing new and the producer's heartbeat is older than the stale limit.
    Stale,
    /// The producer closed the ring and every record has been read.
    Closed,
}

/// Per-instrument state used by the value checks.
#[derive(Clone, Copy, Debug, Default)]
struct Seen {
    /// Last accepted mark, 0 before the first tick.
    last_mark_px: i64,
    /// Publish stamp of the last accepted record for this instrument.
    last_publish_ns: u64,
    /// Consecutive out-of-band ticks held since the last accepted mark.
    held: u32,
}

/// The ingest stage over one feed ring file.
///
/// Invariant: `seen.len() == config.instruments`; `stale` is true exactly between a raised
/// `producer_stale` alert and the matching `producer_resumed` or `producer_restarted`.
pub struct Ingest {
    consumer: Consumer,
    config: IngestConfig,
    seen: Vec<Seen>,
    counters: IngestCounters,
    producer_pid: u32,
    created_wall_ns: u64,
    stale: bool,
    stale_since_ns: u64,
    last_restart_check_ns: u64,
    last_heartbeat_ns: u64,
    /// An alert raised while checking a record, emitted right after it.
    pending_alert: Option<(u32, u64, u64)>,
    /// When set, slots are released only once the journal holds them (see
    /// [`Ingest::set_release_gate`]).
    gate: Option<std::sync::Arc<crate::recovery::JournalProgress>>,
    /// Sequence number after the last record handed on as an input.
    handed_next: u64,
}

const CONSUMER_HEARTBEAT_EVERY_NS: u64 = 1_000_000;

impl Ingest {
    /// Maps and validates the feed ring at `path`.
    pub fn open(path: &Path, config: IngestConfig) -> Result<Ingest, IngestError> {
        if config.instruments == 0 {
            return Err(IngestError::Config(
                "instruments is 0: no record could ever be accepted; set it to the number of [[instrument]] entries",
            ));
        }
        if config.stale_after_ns == 0 {
            return Err(IngestError::Config(
                "stale_after_ns is 0: every idle poll would report a stale producer",
            ));
        }
        let consumer = Consumer::open(path, Ingest::expect(&config))?;
        let h = consumer.ring().header();
        let now = clock::now_ns();
        Ok(Ingest {
            consumer,
            config,
            seen: vec![Seen::default(); config.instruments as usize],
            counters: IngestCounters::default(),
            producer_pid: h.producer_pid,
            created_wall_ns: h.created_wall_ns,
            stale: false,
            stale_since_ns: 0,
            last_restart_check_ns: now,
            last_heartbeat_ns: now,
            pending_alert: None,
            gate: None,
            handed_next: 0,
        })
    }

    fn expect(config: &IngestConfig) -> Expect {
        Expect {
            kind: Some(RingKind::Feed),
            capacity: config.capacity,
        }
    }

    /// Counters so far.
    pub fn counters(&self) -> IngestCounters {
        self.counters
    }

    /// Sequence number of the next record to read in the current file.
    pub fn position(&self) -> u64 {
        self.consumer.position()
    }

    /// The feed file's header, read now.
    pub fn header(&self) -> HeaderView {
        self.consumer.ring().header()
    }

    /// Pid of the producer currently attached.
    pub fn producer_pid(&self) -> u32 {
        self.producer_pid
    }

    /// True while the producer is considered stale.
    pub fn is_stale(&self) -> bool {
        self.stale
    }

    /// Reads up to `max` slots in order, handing each accepted record (and each alert) to `out`.
    pub fn poll(&mut self, max: usize, mut out: impl FnMut(FeedEvent)) -> PollStatus {
        let mut consumed = 0usize;
        let mut since_release = 0u32;
        while consumed < max {
            let pos = self.consumer.position();
            let slot = self.consumer.peek();
            if self.stale && slot != Slot::Empty {
                // Alerts (resumed, and restarted for a new pid) precede the new records.
                self.resume(clock::now_ns(), &mut out);
            }
            match slot {
                Slot::Ready(record) => {
                    let receive_ns = clock::now_ns();
                    self.consumer.advance();
                    let input = self.validate(&record);
                    if let Some((code, arg0, arg1)) = self.pending_alert.take() {
                        self.alert(pos, code, arg0, arg1, &mut out);
                    }
                    if let Some(input) = input {
                        self.counters.accepted += 1;
                        self.handed_next = pos + 1;
                        out(FeedEvent {
                            seq: pos,
                            publish_ns: record.publish_ns,
                            receive_ns,
                            body: FeedBody::Input(input),
                        });
                    }
                }
                Slot::Torn { .. } => {
                    self.counters.rejected.bump(Reject::Torn);
                    self.consumer.advance();
                }
                Slot::Overrun { seq } => {
                    self.counters.gaps += 1;
                    self.counters.gap_records = self.counters.gap_records.saturating_add(seq - pos);
                    self.consumer.skip_to(seq);
                    self.alert(pos, alert_code::SEQUENCE_GAP, pos, seq, &mut out);
                }
                Slot::Empty => break,
            }
            consumed += 1;
            since_release += 1;
            if since_release >= self.config.release_every {
                self.release();
                since_release = 0;
            }
        }
        self.release();
        let now = clock::now_ns();
        if now.wrapping_sub(self.last_heartbeat_ns) >= CONSUMER_HEARTBEAT_EVERY_NS {
            self.last_heartbeat_ns = now;
            self.consumer.heartbeat(now);
        }
        if consumed > 0 {
            return PollStatus::Data(consumed);
        }
        self.idle(now, &mut out)
    }

    /// Releases read slots to the producer; with a release gate, only those the journal holds
    /// (every slot below the gate's feed sequence number, or every slot read once the journal
    /// holds the last record handed on: the others were refused).
    fn release(&mut self) {
        match &self.gate {
            None => self.consumer.release(),
            Some(progress) => {
                let journaled = progress.next_feed_seq();
                let limit = if journaled >= self.handed_next {
                    self.consumer.position()
                } else {
                    journaled
                };
                self.consumer.release_to(limit);
            }
        }
    }

    /// Releases feed slots only once `progress` says the journal holds them, so that a crash
    /// leaves every record the journal lacks in the ring (see [`crate::recovery`]).
    pub fn set_release_gate(&mut self, progress: std::sync::Arc<crate::recovery::JournalProgress>) {
        self.gate = Some(progress);
    }

    /// Resumes reading at `seq` (a restart: the record after the last one journaled) when it
    /// lies between the released slots and the producer's cursor; returns the position reading
    /// resumes at.
    pub fn resume_at(&mut self, seq: u64) -> u64 {
        if seq <= self.header().producer_cursor {
            self.consumer.skip_to(seq);
        }
        self.handed_next = self.consumer.position();
        self.consumer.position()
    }

    /// Restores the per-instrument memory of the value checks (last accepted mark and publish
    /// stamp) that a restarted engine had before its crash.
    pub fn restore_seen(&mut self, seen: &[crate::recovery::SeenPrice]) {
        for (s, r) in self.seen.iter_mut().zip(seen) {
            s.last_mark_px = r.last_mark_px;
            s.last_publish_ns = r.last_publish_ns;
        }
    }

    /// Liveness and restart checks while no record is available.
    fn idle(&mut self, now: u64, out: &mut impl FnMut(FeedEvent)) -> PollStatus {
        let h = self.consumer.ring().header();
        // A new pid in this file: one load, checked on every idle poll.
        self.check_new_pid(&h, out);
        if now.wrapping_sub(self.last_restart_check_ns) >= self.config.restart_check_ns {
            self.last_restart_check_ns = now;
            if self.check_replaced(out) {
                return PollStatus::Empty;
            }
        }
        if h.producer_closed != 0 && self.consumer.position().saturating_add(1) >= h.producer_closed
        {
            return PollStatus::Closed;
        }
        let age = now.saturating_sub(h.producer_heartbeat_ns);
        if age > self.config.stale_after_ns {
            if !self.stale {
                self.stale = true;
                self.stale_since_ns = now;
                self.counters.stale += 1;
                let pos = self.consumer.position();
                self.alert(
                    pos,
                    alert_code::PRODUCER_STALE,
                    age,
                    u64::from(h.producer_pid),
                    out,
                );
            }
            PollStatus::Stale
        } else {
            if self.stale {
                self.resume(now, out);
            }
            PollStatus::Empty
        }
    }

    fn resume(&mut self, now: u64, out: &mut impl FnMut(FeedEvent)) {
        let h = self.consumer.ring().header();
        self.check_new_pid(&h, out);
        self.stale = false;
        self.counters.resumed += 1;
        let pos = self.consumer.position();
        let stale_for = now.saturating_sub(self.stale_since_ns);
        self.alert(pos, alert_code::PRODUCER_RESUMED, stale_for, 0, out);
    }

    /// A new producer attached to the same file (its pid or creation time changed).
    fn check_new_pid(&mut self, h: &HeaderView, out: &mut impl FnMut(FeedEvent)) {
        if h.producer_pid != self.producer_pid || h.created_wall_ns != self.created_wall_ns {
            let old_pid = self.producer_pid;
            self.producer_pid = h.producer_pid;
            self.created_wall_ns = h.created_wall_ns;
            self.counters.restarts += 1;
            let pos = self.consumer.position();
            let new_pid = u64::from(h.producer_pid);
            self.alert(
                pos,
                alert_code::PRODUCER_RESTARTED,
                u64::from(old_pid),
                new_pid,
                out,
            );
        }
    }

    /// A new producer renamed a fresh file over the path: re-attach to it from its start.
    /// Returns true when the stage re-attached.
    fn check_replaced(&mut self, out: &mut impl FnMut(FeedEvent)) -> bool {
        if !self.consumer.ring().replaced_on_disk() {
            return false;
        }
        let path = self.consumer.ring().path().to_path_buf();
        match Consumer::open(&path, Ingest::expect(&self.config)) {
            Ok(fresh) => {
                let nh = fresh.ring().header();
                let old_pid = self.producer_pid;
                self.consumer = fresh;
                self.producer_pid = nh.producer_pid;
                self.created_wall_ns = nh.created_wall_ns;
                self.stale = false;
                self.counters.restarts += 1;
                let pos = self.consumer.position();
                let new_pid = u64::from(nh.producer_pid);
                self.alert(
                    pos,
                    alert_code::PRODUCER_RESTARTED,
                    u64::from(old_pid),
                    new_pid,
                    out,
                );
                true
            }
            Err(_) => {
                // Gone or not valid yet: keep the old mapping and retry on the next check.
                self.counters.reopen_failures += 1;
                false
            }
        }
    }

    fn alert(
        &mut self,
        seq: u64,
        code: u32,
        arg0: u64,
        arg1: u64,
        out: &mut impl FnMut(FeedEvent),
    ) {
        self.counters.alerts += 1;
        out(FeedEvent {
            seq,
            publish_ns: 0,
            receive_ns: clock::now_ns(),
            body: FeedBody::Alert(Alert { code, arg0, arg1 }),
        });
    }

    /// Decodes and checks one record; counts and returns `None` when refused.
    fn validate(&mut self, record: &Record) -> Option<Input> {
        match self.check(record) {
            Ok(input) => Some(input),
            Err(reason) => {
                self.counters.rejected.bump(reason);
                None
            }
        }
    }

    fn check(&mut self, record: &Record) -> Result<Input, Reject> {
        let input = Input::decode(record).map_err(|e| match e {
            InputDecodeError::UnknownTag(_) => Reject::UnknownTag,
            InputDecodeError::UnknownState(_) => Reject::BadField,
        })?;
        let Some(instrument) = input.instrument() else {
            return Ok(input);
        };
        let Some(seen) = self.seen.get(instrument as usize).copied() else {
            return Err(Reject::UnknownInstrument);
        };
        if record.publish_ns < seen.last_publish_ns {
            return Err(Reject::TimeBackwards);
        }
        let mut mark = seen.last_mark_px;
        match input {
            Input::Tick(t) => {
                if t.mark_px <= 0 || t.index_px < 0 || t.bid_px < 0 || t.ask_px < 0 {
                    return Err(Reject::NonPositivePrice);
                }
                // Crossed: bid above ask. A locked book (bid = ask) is accepted: feeds built from
                // trades publish the trade price as both.
                if t.bid_px > 0 && t.ask_px > 0 && t.bid_px > t.ask_px {
                    return Err(Reject::CrossedBook);
                }
                if self.band(seen.last_mark_px, t.mark_px).is_err() {
                    // Price sanity: hold the move until it persists or the index agrees.
                    let agree = self.config.index_agree_bps;
                    let index_agrees = agree > 0
                        && t.index_px > 0
                        && self.band(seen.last_mark_px, t.index_px).is_err()
                        && (i128::from(t.index_px) - i128::from(t.mark_px)).abs() * 10_000
                            <= i128::from(t.mark_px) * i128::from(agree);
                    let held = seen.held + 1;
                    if !index_agrees && held < self.config.confirm_ticks {
                        self.seen[instrument as usize].held = held;
                        if held == 1 {
                            self.pending_alert = Some((
                                alert_code::PRICE_HELD,
                                u64::from(instrument),
                                t.mark_px as u64,
                            ));
                        }
                        return Err(Reject::OutOfBand);
                    }
                    self.counters.confirmed_moves += 1;
                    self.pending_alert = Some((
                        alert_code::PRICE_CONFIRMED,
                        u64::from(instrument),
                        t.mark_px as u64,
                    ));
                }
                mark = t.mark_px;
            }
            Input::Fill(f) => {
                if f.price_px <= 0 {
                    return Err(Reject::NonPositivePrice);
                }
                if f.qty == 0 {
                    return Err(Reject::BadField);
                }
                self.band(seen.last_mark_px, f.price_px)?;
            }
            Input::Status(s) => {
                if s.settle_px < 0 {
                    return Err(Reject::NonPositivePrice);
                }
            }
            Input::Funding(_) | Input::Collateral(_) | Input::Heartbeat(_) => {}
        }
        self.seen[instrument as usize] = Seen {
            last_mark_px: mark,
            last_publish_ns: record.publish_ns,
            held: if matches!(input, Input::Tick(_)) {
                0
            } else {
                seen.held
            },
        };
        Ok(input)
    }

    /// `Err(OutOfBand)` when `px` is further than `band_bps` from a known `last` mark.
    fn band(&self, last: i64, px: i64) -> Result<(), Reject> {
        if self.config.band_bps == 0 || last <= 0 {
            return Ok(());
        }
        let diff = (i128::from(px) - i128::from(last)).abs() * 10_000;
        if diff > i128::from(last) * i128::from(self.config.band_bps) {
            Err(Reject::OutOfBand)
        } else {
            Ok(())
        }
    }
}

#[cfg(test)]
mod tests;
