//! What the journal holds: one ordered log of the inputs the risk stage consumed, the outputs it
//! emitted, and the order rings they were written to.
//!
//! Every entry is one 64-byte record in the ring layout ([`Record::to_le_bytes`]), told apart by
//! its tag (a reload entry is followed by its parameters in the same journal record):
//!
//! | tag | entry | commit word | publish_ns | rest |
//! |---:|---|---|---|---|
//! | 1..=6 | input consumed (a feed record as the risk stage received it) | feed seq + 1 | the record's | the feed record |
//! | 15 | ingest alert handed to risk (gap, stale or restarted producer, held price) | position + 1 | 0 | p0 code, p1 arg0, p2 arg1 |
//! | 16..=20 | output emitted (margin call, liquidation, ADL, settlement, alert) | 0 | 0 | the output record |
//! | 32 | order ring epoch: outputs from here on go to the ring created at p0 | 0 | 0 | p0 ring creation wall ns, p1 outputs journaled before it |
//! | 33 | input done: every output of the input before it is journaled | feed seq + 1 | 0 | |
//! | 34 | reload: the risk stage applied new tiers and thresholds after an input; the record goes on with the parameters ([`crate::risk::reload::RiskParams::encode`]) | seq of that input + 1 | 0 | p0 generation, p1 parameter bytes |
//!
//! Order: each input entry comes first, then the outputs the risk stage produced for it, then
//! (when there was at least one output) an input-done entry; the outputs between two input
//! entries belong to the first. Input entries are written with the next output (or when the emit
//! stage is idle): an output is never journaled before the input that caused it, and never
//! published before it is journaled. An input is *complete* in the journal once its entry is
//! written and, if it had outputs, its input-done entry too. A reload entry is placed like an
//! input (its outputs and input-done entry follow it) and counts as one wherever inputs are
//! counted: a replay applies it at the same place.

use super::codec::Reader;
use crate::ingest::{FeedBody, FeedEvent};
use crate::risk::reload::RiskParams;
use crate::shm::{Alert, Input, Output, Record};

/// Journal tag of an ingest alert handed to risk (not a feed record kind).
pub const TAG_INGEST_ALERT: u8 = 15;
/// Journal tag of an order-ring epoch.
pub const TAG_RING_EPOCH: u8 = 32;
/// Journal tag of an input-done entry.
pub const TAG_INPUT_DONE: u8 = 33;
/// Journal tag of a reload entry.
pub const TAG_RELOAD: u8 = 34;

/// Bytes of an entry's record (a reload entry's parameters follow them).
pub const ENTRY_LEN: usize = 64;

/// One journal entry.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Entry {
    /// An input the risk stage consumed (a validated feed record or an ingest alert).
    Input(FeedEvent),
    /// An output the emit stage journaled (and then wrote to the order ring).
    Output(Output),
    /// The outputs after this entry go to the order ring created at `ring_created_wall_ns`;
    /// `outputs_before` outputs were journaled before it.
    RingEpoch {
        /// The ring header's creation time (wall ns).
        ring_created_wall_ns: u64,
        /// Output entries before this one.
        outputs_before: u64,
    },
    /// Every output of the input with this feed sequence number is journaled.
    InputDone {
        /// The input's sequence number.
        seq: u64,
    },
    /// New tiers and thresholds applied after the input of sequence `after_seq`; the
    /// parameters follow in the journal record ([`reload_record`], [`reload_params`]).
    Reload {
        /// Seq of the last input applied before it.
        after_seq: u64,
        /// The reload's number (the ops thread's).
        generation: u64,
    },
}

/// Why a journal record is not an entry.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum EntryError {
    /// Not 64 bytes long.
    #[error("a {0}-byte record where every entry is 64 bytes")]
    Length(usize),
    /// A tag no entry has.
    #[error("unknown entry tag {0}")]
    Tag(u8),
    /// A known tag with a body that does not decode.
    #[error("entry with tag {0} does not decode")]
    Body(u8),
}

impl Entry {
    /// The entry as a 64-byte record.
    pub fn encode(&self) -> Record {
        match *self {
            Entry::Input(event) => {
                let mut r = match event.body {
                    FeedBody::Input(input) => {
                        let mut r = input.encode();
                        r.publish_ns = event.publish_ns;
                        r
                    }
                    FeedBody::Alert(a) => Record {
                        tag: TAG_INGEST_ALERT,
                        payload: [u64::from(a.code), a.arg0, a.arg1, 0, 0],
                        ..Record::default()
                    },
                };
                r.commit = event.seq.wrapping_add(1);
                r
            }
            Entry::Output(o) => o.encode(),
            Entry::RingEpoch {
                ring_created_wall_ns,
                outputs_before,
            } => Record {
                tag: TAG_RING_EPOCH,
                payload: [ring_created_wall_ns, outputs_before, 0, 0, 0],
                ..Record::default()
            },
            Entry::InputDone { seq } => Record {
                commit: seq.wrapping_add(1),
                tag: TAG_INPUT_DONE,
                ..Record::default()
            },
            Entry::Reload {
                after_seq,
                generation,
            } => Record {
                commit: after_seq.wrapping_add(1),
                tag: TAG_RELOAD,
                payload: [generation, 0, 0, 0, 0],
                ..Record::default()
            },
        }
    }

    /// The entry as journal payload bytes.
    pub fn to_bytes(&self) -> [u8; 64] {
        self.encode().to_le_bytes()
    }

    /// Decodes a journal record's payload (of a reload entry, the 64-byte head; see
    /// [`reload_params`] for the rest).
    pub fn decode(bytes: &[u8]) -> Result<Entry, EntryError> {
        let head = match bytes.get(..ENTRY_LEN) {
            Some(head) if bytes.len() > ENTRY_LEN && head[16] == TAG_RELOAD => head,
            _ => bytes,
        };
        let r = Record::from_le_bytes(head).ok_or(EntryError::Length(bytes.len()))?;
        let seq = r.commit.wrapping_sub(1);
        match r.tag {
            1..=14 => {
                let input = Input::decode(&r).map_err(|_| EntryError::Body(r.tag))?;
                Ok(Entry::Input(FeedEvent {
                    seq,
                    publish_ns: r.publish_ns,
                    receive_ns: 0,
                    body: FeedBody::Input(input),
                }))
            }
            TAG_INGEST_ALERT => Ok(Entry::Input(FeedEvent {
                seq,
                publish_ns: 0,
                receive_ns: 0,
                body: FeedBody::Alert(Alert {
                    code: u32::try_from(r.payload[0]).map_err(|_| EntryError::Body(r.tag))?,
                    arg0: r.payload[1],
                    arg1: r.payload[2],
                }),
            })),
            16..=31 => Output::decode(&r)
                .map(Entry::Output)
                .map_err(|_| EntryError::Body(r.tag)),
            TAG_RING_EPOCH => Ok(Entry::RingEpoch {
                ring_created_wall_ns: r.payload[0],
                outputs_before: r.payload[1],
            }),
            TAG_INPUT_DONE => Ok(Entry::InputDone { seq }),
            // A reload entry without its parameters is damaged.
            TAG_RELOAD if bytes.len() > ENTRY_LEN => Ok(Entry::Reload {
                after_seq: seq,
                generation: r.payload[0],
            }),
            TAG_RELOAD => Err(EntryError::Body(TAG_RELOAD)),
            other => Err(EntryError::Tag(other)),
        }
    }

    /// The output, when this is an output entry.
    pub fn output(&self) -> Option<Output> {
        match self {
            Entry::Output(o) => Some(*o),
            _ => None,
        }
    }
}

/// A reload entry's journal record: its head, then the parameters' bytes.
pub fn reload_record(after_seq: u64, generation: u64, params: &[u8]) -> Vec<u8> {
    let mut bytes = Vec::with_capacity(ENTRY_LEN + params.len());
    bytes.extend_from_slice(
        &Entry::Reload {
            after_seq,
            generation,
        }
        .to_bytes(),
    );
    bytes.extend_from_slice(params);
    bytes
}

/// The parameters of a reload entry's journal record.
pub fn reload_params(bytes: &[u8]) -> Result<RiskParams, EntryError> {
    if !matches!(Entry::decode(bytes), Ok(Entry::Reload { .. })) {
        return Err(EntryError::Body(TAG_RELOAD));
    }
    let mut r = Reader::new(&bytes[ENTRY_LEN..]);
    RiskParams::decode(&mut r).map_err(|_| EntryError::Body(TAG_RELOAD))
}

/// The outputs among journal payloads, in order (entries that are not outputs, or do not decode,
/// are skipped): what the order ring should hold.
pub fn journaled_outputs(records: &[Vec<u8>]) -> Vec<Output> {
    records
        .iter()
        .filter_map(|b| Entry::decode(b).ok())
        .filter_map(|e| e.output())
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::shm::{Liquidation, Side, Tick, alert_code};

    #[test]
    fn every_entry_kind_round_trips() {
        let entries = [
            Entry::Input(FeedEvent {
                seq: 41,
                publish_ns: 99,
                receive_ns: 0,
                body: FeedBody::Input(Input::Tick(Tick {
                    instrument: 2,
                    mark_px: 5,
                    index_px: 6,
                    bid_px: 4,
                    ask_px: 7,
                    bid_qty: 1,
                    ask_qty: 2,
                })),
            }),
            Entry::Input(FeedEvent {
                seq: 7,
                publish_ns: 0,
                receive_ns: 0,
                body: FeedBody::Alert(Alert {
                    code: alert_code::SEQUENCE_GAP,
                    arg0: 3,
                    arg1: 9,
                }),
            }),
            Entry::Output(Output::Liquidation(Liquidation {
                order_id: 11,
                account: 12,
                instrument: 1,
                side: Side::Sell,
                qty: 3,
                limit_px: 4,
                input_seq: 41,
            })),
            Entry::RingEpoch {
                ring_created_wall_ns: 123,
                outputs_before: 4,
            },
            Entry::InputDone { seq: 41 },
        ];
        for e in entries {
            assert_eq!(Entry::decode(&e.to_bytes()), Ok(e));
        }
        // A reload entry carries its parameters; without them it is damaged.
        let reload = Entry::Reload {
            after_seq: 41,
            generation: 3,
        };
        let (table, _) = crate::bulk::synth::instruments(2, 1);
        let params = RiskParams {
            instruments: table.iter().map(|(_, i)| i.clone()).collect(),
            config: crate::risk::RiskConfig::default(),
        };
        let mut w = super::super::codec::Writer::new();
        params.encode(&mut w);
        let record = reload_record(41, 3, &w.into_bytes());
        assert_eq!(Entry::decode(&record), Ok(reload));
        let back = reload_params(&record).expect("the parameters decode");
        assert_eq!(back.config, params.config);
        assert_eq!(back.instruments.len(), 2);
        assert_eq!(
            Entry::decode(&reload.to_bytes()),
            Err(EntryError::Body(TAG_RELOAD))
        );
        assert!(reload_params(&record[..record.len() - 1]).is_err());
        assert!(reload_params(&entries[0].to_bytes()).is_err());
        assert_eq!(Entry::decode(&[0u8; 10]), Err(EntryError::Length(10)));
        let mut bad = entries[4].to_bytes();
        bad[16] = 99;
        assert_eq!(Entry::decode(&bad), Err(EntryError::Tag(99)));
    }
}
