//! What the ingest stage hands on (events), how it is configured, and what it counts.

use crate::shm::{Alert, Input};

/// Ingest settings.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct IngestConfig {
    /// Instruments with ids `0..instruments` are known; any other id is refused.
    pub instruments: u32,
    /// Largest accepted move of a mark (or fill price) relative to the instrument's last accepted
    /// mark, in basis points. 0 disables the band check. A tick outside the band is held (refused
    /// and counted as out of band) until it is confirmed: see `confirm_ticks` and
    /// `index_agree_bps`.
    pub band_bps: u32,
    /// An out-of-band mark is accepted after this many consecutive out-of-band ticks (the move
    /// persisted). 0 or 1 accepts the first one.
    pub confirm_ticks: u32,
    /// An out-of-band mark is accepted at once when the tick's index price is within this many
    /// basis points of it and has left the band too (the index, built from other markets,
    /// agrees). 0 disables index confirmation.
    pub index_agree_bps: u32,
    /// The producer is reported stale when its heartbeat is older than this.
    pub stale_after_ns: u64,
    /// While idle, how often to check whether the producer restarted (one `stat` call each).
    pub restart_check_ns: u64,
    /// Required ring capacity, or `None` to accept the file's.
    pub capacity: Option<u64>,
    /// Records consumed between two releases of the consumer cursor within one poll.
    pub release_every: u32,
}

impl Default for IngestConfig {
    fn default() -> Self {
        IngestConfig {
            instruments: 1,
            band_bps: 5_000,
            confirm_ticks: 3,
            index_agree_bps: 100,
            stale_after_ns: 1_000_000_000,
            restart_check_ns: 100_000_000,
            capacity: None,
            release_every: 256,
        }
    }
}

/// The body of an event: a validated input record, or an alert raised by the ingest stage.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum FeedBody {
    /// A record from the feed that passed every check.
    Input(Input),
    /// A condition detected by the ingest stage (gap, stale or restarted producer); the codes are
    /// [`crate::shm::alert_code`].
    Alert(Alert),
}

/// One validated, decoded input (or ingest alert), stamped on receipt.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct FeedEvent {
    /// Sequence number of the record in its ring file (for an alert: the position it was raised
    /// at).
    pub seq: u64,
    /// Producer's CLOCK_MONOTONIC stamp (0 for an alert).
    pub publish_ns: u64,
    /// CLOCK_MONOTONIC stamp taken when the ingest stage read the record.
    pub receive_ns: u64,
    /// Input or alert.
    pub body: FeedBody,
}

/// Why a record was refused.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Reject {
    /// Instrument id outside `0..instruments`.
    UnknownInstrument,
    /// A mark or fill price ≤ 0, or a negative index, bid, ask or settlement price.
    NonPositivePrice,
    /// A price outside the band around the instrument's last accepted mark.
    OutOfBand,
    /// Best bid at or above best ask.
    CrossedBook,
    /// A publish stamp older than the instrument's previous accepted record.
    TimeBackwards,
    /// A tag that is no input kind.
    UnknownTag,
    /// A field outside its domain (zero fill quantity, unknown status code).
    BadField,
    /// The slot's commit word does not match a record the producer says it published.
    Torn,
}

impl Reject {
    /// Every reason, in counter order.
    pub const ALL: [Reject; 8] = [
        Reject::UnknownInstrument,
        Reject::NonPositivePrice,
        Reject::OutOfBand,
        Reject::CrossedBook,
        Reject::TimeBackwards,
        Reject::UnknownTag,
        Reject::BadField,
        Reject::Torn,
    ];

    /// Snake-case name, as printed by `brink-feed consume`.
    pub const fn name(self) -> &'static str {
        match self {
            Reject::UnknownInstrument => "unknown_instrument",
            Reject::NonPositivePrice => "non_positive_price",
            Reject::OutOfBand => "out_of_band",
            Reject::CrossedBook => "crossed_book",
            Reject::TimeBackwards => "time_backwards",
            Reject::UnknownTag => "unknown_tag",
            Reject::BadField => "bad_field",
            Reject::Torn => "torn",
        }
    }

    const fn index(self) -> usize {
        match self {
            Reject::UnknownInstrument => 0,
            Reject::NonPositivePrice => 1,
            Reject::OutOfBand => 2,
            Reject::CrossedBook => 3,
            Reject::TimeBackwards => 4,
            Reject::UnknownTag => 5,
            Reject::BadField => 6,
            Reject::Torn => 7,
        }
    }
}

/// Rejections per reason.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct RejectCounts([u64; 8]);

impl RejectCounts {
    /// Count for one reason.
    pub const fn get(&self, reason: Reject) -> u64 {
        self.0[reason.index()]
    }

    /// Sum over all reasons.
    pub fn total(&self) -> u64 {
        self.0.iter().sum()
    }

    pub(crate) fn bump(&mut self, reason: Reject) {
        self.0[reason.index()] += 1;
    }
}

/// Everything the ingest stage counts; a plain copyable snapshot.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct IngestCounters {
    /// Records accepted and handed on.
    pub accepted: u64,
    /// Records refused, by reason.
    pub rejected: RejectCounts,
    /// Sequence gaps seen.
    pub gaps: u64,
    /// Records lost in those gaps.
    pub gap_records: u64,
    /// Times the producer went stale.
    pub stale: u64,
    /// Times a stale producer came back.
    pub resumed: u64,
    /// Producer restarts detected (new pid or new file).
    pub restarts: u64,
    /// Failed attempts to open a replaced ring file (retried on the next check).
    pub reopen_failures: u64,
    /// Alerts raised (gap, stale, resumed, restarted).
    pub alerts: u64,
    /// Out-of-band moves accepted after confirmation (persistence or the index).
    pub confirmed_moves: u64,
}
