//! Start-up after a stop or a crash: the last snapshot, the journal after it, the order ring.
//!
//! 1. Open the journal (a torn tail is cut, as [`Journal::open`] does) and decode its entries.
//! 2. Load the snapshot, if there is one, onto the risk shards built from the configuration
//!    (the snapshot's tiers and thresholds replace the configuration's); else start from those
//!    shards (the state before the first input).
//! 3. Replay every input entry after the snapshot's through the risk shards, and every reload
//!    entry (applying the parameters it journaled, at its place). The outputs it
//!    regenerates must equal the outputs journaled after that input, in order: those are not
//!    emitted again. Only the last input may have fewer journaled outputs than it regenerates
//!    (the crash came between two of its outputs); the missing ones are journaled now.
//! 4. Reopen the order ring when it is the one the journal's last ring epoch names, and write
//!    the journaled outputs it does not hold yet (its producer cursor says how many it holds);
//!    otherwise create a new ring and journal a new epoch.
//! 5. Hand back the engine, the journal, the ring and where the feed resumes: after the last feed
//!    record the journal holds, with the ingest stage's per-instrument memory.

use std::path::{Path, PathBuf};

use crate::journal::{FsyncPolicy, Journal, JournalError};
use crate::risk::shard::Shards;
use crate::shm::{Expect, Output, Producer, RingFile, RingKind, ShmError};

use super::entry::{Entry, EntryError};
use super::snapshot::{self, SnapshotError};
use super::taker::Position;

/// What a restart needs to know.
#[derive(Debug, Clone)]
pub struct RestartConfig {
    /// The journal file.
    pub journal: PathBuf,
    /// Its fsync policy.
    pub fsync: FsyncPolicy,
    /// The snapshot file, if snapshots are configured.
    pub snapshot: Option<PathBuf>,
    /// The order ring file.
    pub orders: PathBuf,
    /// Capacity of a new order ring.
    pub orders_capacity: u64,
}

/// Why the engine cannot start from its journal and snapshot. Each says what to do.
#[derive(Debug, thiserror::Error)]
pub enum RecoveryError {
    /// The journal could not be opened or written.
    #[error(transparent)]
    Journal(#[from] JournalError),
    /// A journal record is not an entry.
    #[error(
        "journal {path}: record {index}: {source} (the file was written by another program or \
         version; move it away to start afresh)"
    )]
    Entry {
        /// The journal file.
        path: PathBuf,
        /// Record number, from 0.
        index: usize,
        /// What was wrong.
        source: EntryError,
    },
    /// The snapshot could not be used.
    #[error(transparent)]
    Snapshot(#[from] SnapshotError),
    /// The snapshot applied inputs the journal does not hold.
    #[error(
        "snapshot {snapshot} applied {snapshot_inputs} inputs but journal {journal} holds only \
         {journal_inputs}: the journal lost records the snapshot relies on (a machine crash \
         under fsync = \"never\"?); restore the journal, or remove the snapshot to replay the \
         journal alone"
    )]
    SnapshotAhead {
        /// The snapshot file.
        snapshot: PathBuf,
        /// Inputs it applied.
        snapshot_inputs: u64,
        /// The journal file.
        journal: PathBuf,
        /// Inputs the journal holds.
        journal_inputs: u64,
    },
    /// Replaying an input did not give the outputs journaled for it.
    #[error(
        "journal {path}: replaying input entry {input} (feed seq {seq}) gave other outputs than \
         the journal holds for it (output {at}): the snapshot, the configuration or the build \
         differs from the run that wrote the journal; restore them"
    )]
    Diverged {
        /// The journal file.
        path: PathBuf,
        /// Input entry number, from 1.
        input: u64,
        /// Its feed sequence number.
        seq: u64,
        /// Index of the first output that differs, within the input's outputs.
        at: usize,
    },
    /// The order ring holds more outputs than the journal.
    #[error(
        "order ring {path} holds {in_ring} records of this epoch but the journal only {journaled}: \
         the ring belongs to another journal; remove it"
    )]
    RingAhead {
        /// The ring file.
        path: PathBuf,
        /// Records in the ring since the epoch.
        in_ring: u64,
        /// Outputs journaled since the epoch.
        journaled: u64,
    },
    /// The order ring could not be opened or created.
    #[error("order ring {path}: {source}")]
    Orders {
        /// The ring file.
        path: PathBuf,
        /// Why.
        source: ShmError,
    },
}

/// What the restart did, for the start-up report.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct RestartReport {
    /// Journal records found.
    pub journal_records: usize,
    /// Bytes of a torn tail cut from the journal.
    pub torn_bytes: u64,
    /// Input entries the snapshot had applied (`None`: no snapshot).
    pub snapshot_inputs: Option<u64>,
    /// Input entries replayed after the snapshot.
    pub replayed: u64,
    /// Outputs regenerated by the replay and journaled now (the crash came mid-input).
    pub completed: u64,
    /// Journaled outputs written to the order ring now (the crash came between the two).
    pub republished: u64,
    /// Whether the order ring was reopened (false: created).
    pub ring_reopened: bool,
    /// Journaled outputs of an earlier ring that a new ring will not carry (the old ring file
    /// was gone or replaced).
    pub orphaned: u64,
}

/// The state a restarted engine resumes from.
pub struct Restart {
    /// The risk shards after every journaled input.
    pub engine: Shards,
    /// The journal, positioned after its last entry.
    pub journal: Journal,
    /// The order ring's producer.
    pub producer: Producer,
    /// Where the engine stands: inputs applied, the next feed record, ingest's memory.
    pub position: Position,
    /// What was done.
    pub report: RestartReport,
}

impl std::fmt::Debug for Restart {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Restart")
            .field("position", &self.position)
            .field("report", &self.report)
            .finish()
    }
}

/// Restarts from the journal and snapshot named by `config`, onto `base` (the engine built from
/// the configuration). See the module docs.
pub fn restart(config: &RestartConfig, base: Shards) -> Result<Restart, RecoveryError> {
    let (mut journal, recovery) = Journal::open(&config.journal, config.fsync)?;
    if let Some(reason) = recovery.torn_reason {
        tracing::warn!(
            journal = %config.journal.display(),
            bytes = recovery.torn_bytes,
            reason,
            "journal tail discarded"
        );
    }
    let mut report = RestartReport {
        journal_records: recovery.records.len(),
        torn_bytes: recovery.torn_bytes,
        ..RestartReport::default()
    };
    let entries = recovery
        .records
        .iter()
        .enumerate()
        .map(|(index, b)| {
            Entry::decode(b).map_err(|source| RecoveryError::Entry {
                path: config.journal.clone(),
                index,
                source,
            })
        })
        .collect::<Result<Vec<_>, _>>()?;
    // The parameters of every reload entry, by entry index.
    let mut reloads = std::collections::HashMap::new();
    for (index, e) in entries.iter().enumerate() {
        if matches!(e, Entry::Reload { .. }) {
            let params =
                super::entry::reload_params(&recovery.records[index]).map_err(|source| {
                    RecoveryError::Entry {
                        path: config.journal.clone(),
                        index,
                        source,
                    }
                })?;
            reloads.insert(index, params);
        }
    }
    drop(recovery);

    let instruments = base.first().instruments().len();
    let (mut engine, mut position) = match &config.snapshot {
        None => (base, Position::new(instruments)),
        Some(path) => match snapshot::load(path, base)? {
            Err(base) => (base, Position::new(instruments)),
            Ok(loaded) => {
                report.snapshot_inputs = Some(loaded.meta.inputs);
                let mut seen = loaded.seen;
                seen.resize(instruments, Default::default());
                (
                    loaded.engine,
                    Position {
                        inputs: loaded.meta.inputs,
                        next_feed_seq: loaded.meta.next_feed_seq,
                        seen,
                    },
                )
            }
        },
    };

    // Skip the entries the snapshot covers: every entry up to the one after its last input's
    // outputs, that is, up to the next input entry. Reload entries count as inputs.
    let is_input = |e: &Entry| matches!(e, Entry::Input(_) | Entry::Reload { .. });
    let journal_inputs = entries.iter().filter(|e| is_input(e)).count() as u64;
    if position.inputs > journal_inputs {
        return Err(RecoveryError::SnapshotAhead {
            snapshot: config.snapshot.clone().unwrap_or_default(),
            snapshot_inputs: position.inputs,
            journal: config.journal.clone(),
            journal_inputs,
        });
    }
    let mut seen_inputs = 0u64;
    let mut start = entries.len();
    for (i, e) in entries.iter().enumerate() {
        if is_input(e) {
            if seen_inputs == position.inputs {
                start = i;
                break;
            }
            seen_inputs += 1;
        }
    }

    // Replay.
    let mut regenerated: Vec<Output> = Vec::new();
    let mut missing: Vec<Output> = Vec::new();
    let mut last_seq = 0u64;
    let mut i = start;
    while i < entries.len() {
        regenerated.clear();
        let seq = match entries[i] {
            Entry::Input(event) => {
                engine.apply(&event, &mut |o| regenerated.push(o));
                position.apply(&event);
                event.seq
            }
            Entry::Reload { after_seq, .. } => {
                // Present: every reload entry's parameters were decoded above. A reload the
                // engine refused then is refused again, with the same (no) outputs.
                if let Some(params) = reloads.get(&i) {
                    let _ = engine.reload(params, after_seq, &mut |o| regenerated.push(o));
                }
                position.reloaded();
                after_seq
            }
            _ => {
                i += 1;
                continue;
            }
        };
        last_seq = seq;
        report.replayed += 1;
        i += 1;
        let mut k = 0usize;
        while i < entries.len() {
            match entries[i] {
                Entry::Input(_) | Entry::Reload { .. } => break,
                Entry::RingEpoch { .. } | Entry::InputDone { .. } => {}
                Entry::Output(o) => {
                    if regenerated.get(k) != Some(&o) {
                        return Err(RecoveryError::Diverged {
                            path: config.journal.clone(),
                            input: position.inputs,
                            seq,
                            at: k,
                        });
                    }
                    k += 1;
                }
            }
            i += 1;
        }
        if k < regenerated.len() {
            if i < entries.len() {
                // Only the last input can have been cut short by a crash.
                return Err(RecoveryError::Diverged {
                    path: config.journal.clone(),
                    input: position.inputs,
                    seq,
                    at: k,
                });
            }
            missing.extend_from_slice(&regenerated[k..]);
        }
    }

    // The order ring.
    let outputs: Vec<Output> = entries.iter().filter_map(Entry::output).collect();
    let epoch = entries.iter().rev().find_map(|e| match *e {
        Entry::RingEpoch {
            ring_created_wall_ns,
            outputs_before,
        } => Some((ring_created_wall_ns, outputs_before)),
        _ => None,
    });
    let orders_err = |source| RecoveryError::Orders {
        path: config.orders.clone(),
        source,
    };
    let existing = epoch.filter(|&(created, _)| ring_created_at(&config.orders) == Some(created));
    let mut producer = match existing {
        Some((_, before)) => {
            let producer =
                Producer::attach(&config.orders, RingKind::Orders).map_err(orders_err)?;
            let in_ring = producer.published();
            let since = (outputs.len() as u64).saturating_sub(before);
            if in_ring > since {
                return Err(RecoveryError::RingAhead {
                    path: config.orders.clone(),
                    in_ring,
                    journaled: since,
                });
            }
            report.ring_reopened = true;
            let mut producer = producer;
            for o in &outputs[(before + in_ring) as usize..] {
                producer.push(o.encode());
                report.republished += 1;
            }
            producer
        }
        None => {
            let producer =
                Producer::create(&config.orders, RingKind::Orders, config.orders_capacity)
                    .map_err(orders_err)?;
            report.orphaned = match epoch {
                Some((_, before)) => (outputs.len() as u64).saturating_sub(before),
                None => 0,
            };
            journal.append(
                &Entry::RingEpoch {
                    ring_created_wall_ns: producer.ring().created_wall_ns(),
                    outputs_before: outputs.len() as u64,
                }
                .to_bytes(),
            )?;
            producer
        }
    };
    // Outputs of the last input that the crash kept from the journal: journaled, then written.
    for o in &missing {
        journal.append(&Entry::Output(*o).to_bytes())?;
        producer.push(o.encode());
        report.completed += 1;
    }
    if !missing.is_empty() {
        journal.append(&Entry::InputDone { seq: last_seq }.to_bytes())?;
    }
    journal.sync()?;
    Ok(Restart {
        engine,
        journal,
        producer,
        position,
        report,
    })
}

/// One line describing a restart, for reports.
pub fn describe(r: &RestartReport) -> String {
    let from = match r.snapshot_inputs {
        Some(n) => format!("snapshot at input {n}"),
        None => "no snapshot".to_string(),
    };
    format!(
        "restart: {from}, {} journal records ({} torn bytes cut), {} inputs replayed, \
         {} outputs completed, {} re-published, order ring {}{}",
        r.journal_records,
        r.torn_bytes,
        r.replayed,
        r.completed,
        r.republished,
        if r.ring_reopened {
            "reopened"
        } else {
            "created"
        },
        if r.orphaned > 0 {
            format!(
                " ({} outputs of the previous ring not carried over)",
                r.orphaned
            )
        } else {
            String::new()
        }
    )
}

/// The creation stamp of the order ring at `path`, when it is a valid order ring.
fn ring_created_at(path: &Path) -> Option<u64> {
    RingFile::open(
        path,
        Expect {
            kind: Some(RingKind::Orders),
            capacity: None,
        },
    )
    .ok()
    .map(|r| r.created_wall_ns())
}
