//! The frozen byte layout of a ring file: the header page and the 64-byte record slots.
//!
//! Nothing here touches mapped memory. The `#[repr(C)]` structs exist so that every offset can be
//! asserted at compile time; the file itself is read and written word by word through raw pointers
//! (see [`super::file`]).

use core::mem::{offset_of, size_of};

#[cfg(not(target_endian = "little"))]
compile_error!(
    "the shared-memory ring format is little-endian; big-endian targets are not supported"
);

/// `b"BRINKRNG"` read as a little-endian `u64`: the first eight bytes of every ring file.
pub const MAGIC: u64 = u64::from_le_bytes(*b"BRINKRNG");
/// Layout version; bumped on any change to this file's offsets or the record encodings.
pub const LAYOUT_VERSION: u32 = 1;
/// Size of one record slot in bytes (one cache line).
pub const RECORD_SIZE: u32 = 64;
/// Size of the header page in bytes; records start at this offset.
pub const HEADER_SIZE: usize = 4096;
/// Smallest accepted capacity (records).
pub const MIN_CAPACITY: u64 = 2;
/// Largest accepted capacity (records): 2^26 slots = 4 GiB of records.
pub const MAX_CAPACITY: u64 = 1 << 26;
/// Money fields (fee, collateral, pnl, equity, maintenance margin) are integers in units of
/// 10^-`MONEY_DECIMALS` of the settlement asset.
pub const MONEY_DECIMALS: u32 = 8;
/// Rates and ratios (funding rate, margin ratio) are integers in units of 10^-`RATE_DECIMALS`.
pub const RATE_DECIMALS: u32 = 9;

/// What a ring carries: market input for the engine, or the engine's output.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum RingKind {
    /// Input records (tick, fill, collateral, funding, status, heartbeat).
    Feed,
    /// Output records (margin call, liquidation order, ADL order, settlement, alert).
    Orders,
}

impl RingKind {
    /// The header's `kind` word.
    pub const fn code(self) -> u32 {
        match self {
            RingKind::Feed => 1,
            RingKind::Orders => 2,
        }
    }

    /// Decodes the header's `kind` word.
    pub const fn from_code(code: u32) -> Option<RingKind> {
        match code {
            1 => Some(RingKind::Feed),
            2 => Some(RingKind::Orders),
            _ => None,
        }
    }

    /// Lower-case name for reports.
    pub const fn name(self) -> &'static str {
        match self {
            RingKind::Feed => "feed",
            RingKind::Orders => "orders",
        }
    }
}

/// The header page. Written once at creation (the first 128 bytes), then only the cursor,
/// heartbeat and pid words change, each written by exactly one side.
///
/// ```text
///  offset  size  field                 written by
///  0       8     magic "BRINKRNG"      creator
///  8       4     layout version        creator
///  12      4     record size (64)      creator
///  16      8     capacity (records)    creator
///  24      4     kind (1 feed, 2 ord.) creator
///  28      4     money decimals (8)    creator
///  32      8     created (wall ns)     creator
///  40      4     producer pid          producer (on create / attach)
///  44      84    reserved (zero)
///  128     8     producer cursor       producer   ─┐ own 128-byte line
///  136     120   padding                          ─┘
///  256     8     consumer cursor       consumer   ─┐ own 128-byte line
///  264     120   padding                          ─┘
///  384     8     producer heartbeat    producer   ─┐ (CLOCK_MONOTONIC ns)
///  392     8     producer wait ns      producer    │ total back-pressure wait
///  400     8     producer closed       producer    │ 0 running, else final cursor + 1
///  408     104   padding                          ─┘
///  512     8     consumer heartbeat    consumer   ─┐ (CLOCK_MONOTONIC ns)
///  520     4     consumer pid          consumer    │
///  524     116   padding                          ─┘
///  640     3456  reserved (zero)
///  4096          record slots, capacity × 64 bytes
/// ```
#[repr(C)]
pub struct HeaderLayout {
    /// [`MAGIC`].
    pub magic: u64,
    /// [`LAYOUT_VERSION`].
    pub version: u32,
    /// [`RECORD_SIZE`].
    pub record_size: u32,
    /// Number of record slots; a power of two.
    pub capacity: u64,
    /// [`RingKind::code`].
    pub kind: u32,
    /// [`MONEY_DECIMALS`].
    pub money_decimals: u32,
    /// Creation time, `clock::wall_ns()`.
    pub created_wall_ns: u64,
    /// Pid of the process that last created or attached as producer.
    pub producer_pid: u32,
    _reserved0: [u8; 84],
    /// Next position the producer will write (= number of records published).
    pub producer_cursor: u64,
    _pad1: [u8; 120],
    /// Next position the consumer will read (= number of records consumed).
    pub consumer_cursor: u64,
    _pad2: [u8; 120],
    /// Last producer heartbeat, `clock::now_ns()`.
    pub producer_heartbeat_ns: u64,
    /// Total nanoseconds the producer waited on a full ring.
    pub producer_wait_ns: u64,
    /// 0 while the producer runs; final producer cursor + 1 once it closed the ring cleanly.
    pub producer_closed: u64,
    _pad3: [u8; 104],
    /// Last consumer heartbeat, `clock::now_ns()`.
    pub consumer_heartbeat_ns: u64,
    /// Pid of the consumer, 0 when none attached yet.
    pub consumer_pid: u32,
    _pad4: [u8; 116],
    _reserved1: [u8; 3456],
}

const _: () = assert!(offset_of!(HeaderLayout, magic) == 0);
const _: () = assert!(offset_of!(HeaderLayout, version) == 8);
const _: () = assert!(offset_of!(HeaderLayout, record_size) == 12);
const _: () = assert!(offset_of!(HeaderLayout, capacity) == 16);
const _: () = assert!(offset_of!(HeaderLayout, kind) == 24);
const _: () = assert!(offset_of!(HeaderLayout, money_decimals) == 28);
const _: () = assert!(offset_of!(HeaderLayout, created_wall_ns) == 32);
const _: () = assert!(offset_of!(HeaderLayout, producer_pid) == 40);
const _: () = assert!(offset_of!(HeaderLayout, producer_cursor) == 128);
const _: () = assert!(offset_of!(HeaderLayout, consumer_cursor) == 256);
const _: () = assert!(offset_of!(HeaderLayout, producer_heartbeat_ns) == 384);
const _: () = assert!(offset_of!(HeaderLayout, producer_wait_ns) == 392);
const _: () = assert!(offset_of!(HeaderLayout, producer_closed) == 400);
const _: () = assert!(offset_of!(HeaderLayout, consumer_heartbeat_ns) == 512);
const _: () = assert!(offset_of!(HeaderLayout, consumer_pid) == 520);
const _: () = assert!(size_of::<HeaderLayout>() == HEADER_SIZE);

/// Byte offsets of the header fields, for raw-pointer access.
pub mod off {
    use super::HeaderLayout;
    use core::mem::offset_of;

    /// See [`HeaderLayout::magic`].
    pub const MAGIC: usize = offset_of!(HeaderLayout, magic);
    /// See [`HeaderLayout::version`].
    pub const VERSION: usize = offset_of!(HeaderLayout, version);
    /// See [`HeaderLayout::record_size`].
    pub const RECORD_SIZE: usize = offset_of!(HeaderLayout, record_size);
    /// See [`HeaderLayout::capacity`].
    pub const CAPACITY: usize = offset_of!(HeaderLayout, capacity);
    /// See [`HeaderLayout::kind`].
    pub const KIND: usize = offset_of!(HeaderLayout, kind);
    /// See [`HeaderLayout::money_decimals`].
    pub const MONEY_DECIMALS: usize = offset_of!(HeaderLayout, money_decimals);
    /// See [`HeaderLayout::created_wall_ns`].
    pub const CREATED_WALL_NS: usize = offset_of!(HeaderLayout, created_wall_ns);
    /// See [`HeaderLayout::producer_pid`].
    pub const PRODUCER_PID: usize = offset_of!(HeaderLayout, producer_pid);
    /// See [`HeaderLayout::producer_cursor`].
    pub const PRODUCER_CURSOR: usize = offset_of!(HeaderLayout, producer_cursor);
    /// See [`HeaderLayout::consumer_cursor`].
    pub const CONSUMER_CURSOR: usize = offset_of!(HeaderLayout, consumer_cursor);
    /// See [`HeaderLayout::producer_heartbeat_ns`].
    pub const PRODUCER_HEARTBEAT_NS: usize = offset_of!(HeaderLayout, producer_heartbeat_ns);
    /// See [`HeaderLayout::producer_wait_ns`].
    pub const PRODUCER_WAIT_NS: usize = offset_of!(HeaderLayout, producer_wait_ns);
    /// See [`HeaderLayout::producer_closed`].
    pub const PRODUCER_CLOSED: usize = offset_of!(HeaderLayout, producer_closed);
    /// See [`HeaderLayout::consumer_heartbeat_ns`].
    pub const CONSUMER_HEARTBEAT_NS: usize = offset_of!(HeaderLayout, consumer_heartbeat_ns);
    /// See [`HeaderLayout::consumer_pid`].
    pub const CONSUMER_PID: usize = offset_of!(HeaderLayout, consumer_pid);
}

/// One 64-byte record slot as it lies in the file.
///
/// ```text
///  offset  size  field
///  0       8     commit      seq + 1; written last (Release), read first (Acquire); 0 = never written
///  8       8     publish_ns  CLOCK_MONOTONIC ns when the producer wrote the record
///  16      1     tag         record kind (inputs 1..=15, outputs 16..=31)
///  17      1     aux         kind-specific small field (side, status)
///  18      2     reserved    zero
///  20      4     instrument  index of the instrument in the scenario's [[instrument]] list
///  24      40    payload     five little-endian 8-byte words, meaning set by the tag
/// ```
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Record {
    /// Sequence number + 1 (the record's position in the ring file + 1).
    pub commit: u64,
    /// CLOCK_MONOTONIC ns stamped by the producer.
    pub publish_ns: u64,
    /// Record kind.
    pub tag: u8,
    /// Kind-specific small field.
    pub aux: u8,
    /// Zero.
    pub reserved: u16,
    /// Instrument id (0 when the kind has none).
    pub instrument: u32,
    /// Kind-specific payload words.
    pub payload: [u64; 5],
}

const _: () = assert!(offset_of!(Record, commit) == 0);
const _: () = assert!(offset_of!(Record, publish_ns) == 8);
const _: () = assert!(offset_of!(Record, tag) == 16);
const _: () = assert!(offset_of!(Record, aux) == 17);
const _: () = assert!(offset_of!(Record, reserved) == 18);
const _: () = assert!(offset_of!(Record, instrument) == 20);
const _: () = assert!(offset_of!(Record, payload) == 24);
const _: () = assert!(size_of::<Record>() == RECORD_SIZE as usize);

impl Record {
    /// The record as its eight little-endian words, in file order.
    pub const fn to_words(&self) -> [u64; 8] {
        let w2 = (self.tag as u64)
            | ((self.aux as u64) << 8)
            | ((self.reserved as u64) << 16)
            | ((self.instrument as u64) << 32);
        let p = self.payload;
        [
            self.commit,
            self.publish_ns,
            w2,
            p[0],
            p[1],
            p[2],
            p[3],
            p[4],
        ]
    }

    /// The record's 64 bytes as they lie in the file (little-endian words), e.g. for the journal.
    pub fn to_le_bytes(&self) -> [u8; 64] {
        let mut bytes = [0u8; 64];
        for (chunk, word) in bytes.chunks_exact_mut(8).zip(self.to_words()) {
            chunk.copy_from_slice(&word.to_le_bytes());
        }
        bytes
    }

    /// Rebuilds a record from 64 little-endian bytes; `None` when `bytes` is not 64 long.
    pub fn from_le_bytes(bytes: &[u8]) -> Option<Record> {
        if bytes.len() != 64 {
            return None;
        }
        let mut words = [0u64; 8];
        for (w, chunk) in words.iter_mut().zip(bytes.chunks_exact(8)) {
            let mut b = [0u8; 8];
            b.copy_from_slice(chunk);
            *w = u64::from_le_bytes(b);
        }
        Some(Record::from_words(words))
    }

    /// Rebuilds a record from its eight words in file order.
    pub const fn from_words(w: [u64; 8]) -> Record {
        Record {
            commit: w[0],
            publish_ns: w[1],
            tag: w[2] as u8,
            aux: (w[2] >> 8) as u8,
            reserved: (w[2] >> 16) as u16,
            instrument: (w[2] >> 32) as u32,
            payload: [w[3], w[4], w[5], w[6], w[7]],
        }
    }

    /// The sequence number this record claims (`commit - 1`), or `None` for a never-written slot.
    pub const fn seq(&self) -> Option<u64> {
        self.commit.checked_sub(1)
    }

    /// A 64-bit digest of the record's content (sequence, tag, aux, instrument, payload; not the
    /// publish stamp), folded into `acc`. Publisher and consumer fold the same records in the same
    /// order and compare the results to prove nothing was lost, duplicated or reordered.
    pub const fn fold_digest(&self, acc: u64) -> u64 {
        const PRIME: u64 = 0x0000_0100_0000_01b3;
        let w = self.to_words();
        let mut h = acc;
        let mut i = 0;
        while i < 8 {
            if i != 1 {
                h = (h ^ w[i]).wrapping_mul(PRIME);
                h ^= h >> 29;
            }
            i += 1;
        }
        h
    }
}

/// Starting value for [`Record::fold_digest`].
pub const DIGEST_SEED: u64 = 0xcbf2_9ce4_8422_2325;

/// File length for a ring of `capacity` records.
pub const fn file_len(capacity: u64) -> u64 {
    HEADER_SIZE as u64 + capacity * RECORD_SIZE as u64
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn record_words_round_trip() {
        let r = Record {
            commit: 7,
            publish_ns: 99,
            tag: 3,
            aux: 250,
            reserved: 0,
            instrument: 0xdead_beef,
            payload: [1, u64::MAX, 3, 4, 5],
        };
        assert_eq!(Record::from_words(r.to_words()), r);
        assert_eq!(r.seq(), Some(6));
        assert_eq!(Record::default().seq(), None);
    }

    #[test]
    fn digest_depends_on_order_and_content() {
        let a = Record {
            commit: 1,
            tag: 1,
            ..Record::default()
        };
        let b = Record {
            commit: 2,
            tag: 1,
            ..Record::default()
        };
        let ab = b.fold_digest(a.fold_digest(DIGEST_SEED));
        let ba = a.fold_digest(b.fold_digest(DIGEST_SEED));
        assert_ne!(ab, ba);
        let a2 = Record { publish_ns: 5, ..a };
        assert_eq!(a.fold_digest(DIGEST_SEED), a2.fold_digest(DIGEST_SEED));
    }

    #[test]
    fn magic_spells_the_name() {
        assert_eq!(&MAGIC.to_le_bytes(), b"BRINKRNG");
        assert_eq!(file_len(4), 4096 + 256);
    }
}
