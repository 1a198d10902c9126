//! Periodic snapshots: the risk stage encodes its state between two inputs, a background thread
//! installs the file once the journal holds every input the state applied.
//!
//! The encoding runs on the risk thread (it must see the state at an input boundary): a pause of
//! the order of the state's size in bytes (tens of milliseconds at 10^6 positions), taken every
//! `interval` or every `every_inputs` inputs. Writing, fsync and rename run on the writer thread.
//! When the writer is still busy with the previous snapshot, a due snapshot is skipped (counted)
//! rather than queued: the risk thread never waits for the disk. The final snapshot of a clean
//! stop replaces whatever is still waiting.

use std::path::{Path, PathBuf};
use std::sync::Mutex;
use std::thread::JoinHandle;
use std::time::Duration;

use crate::clock;
use crate::ingest::{FeedBody, FeedEvent};
use crate::shm::Input;
// Straight from std: see `progress`.
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use super::progress::JournalProgress;
use super::snapshot::{self, SeenPrice, SnapshotMeta};

/// When snapshots are taken.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SnapshotSettings {
    /// The snapshot file.
    pub path: PathBuf,
    /// Take one when this long has passed since the last (wall time); `None`: not by time.
    pub interval: Option<Duration>,
    /// Take one every this many inputs; 0: not by count.
    pub every_inputs: u64,
}

/// Suffix of the default snapshot file: beside the journal it belongs to, named after it.
pub const DEFAULT_SUFFIX: &str = ".snapshot";
/// Default time between two snapshots.
pub const DEFAULT_INTERVAL_MS: u64 = 10_000;
/// The shortest accepted interval: below it the risk thread would spend its time encoding.
pub const MIN_INTERVAL_MS: u64 = 100;

/// Validates the `[snapshot]` keys of `brink run`'s configuration (`path` already resolved;
/// by default the journal's path with [`DEFAULT_SUFFIX`] appended, so that a snapshot is never
/// paired with another run's journal); an error names the key and what was expected.
pub fn settings_from_config(
    path: Option<PathBuf>,
    journal: &Path,
    interval_ms: Option<u64>,
    every_inputs: Option<u64>,
) -> Result<SnapshotSettings, (&'static str, String)> {
    let path = path.unwrap_or_else(|| {
        let mut p = journal.as_os_str().to_owned();
        p.push(DEFAULT_SUFFIX);
        PathBuf::from(p)
    });
    if path.file_name().is_none() {
        return Err((
            "snapshot.path",
            format!("expected a file path, got {:?}", path.display().to_string()),
        ));
    }
    let interval_ms = interval_ms.unwrap_or(DEFAULT_INTERVAL_MS);
    if interval_ms != 0 && interval_ms < MIN_INTERVAL_MS {
        return Err((
            "snapshot.interval_ms",
            format!("expected 0 (off) or at least {MIN_INTERVAL_MS}, got {interval_ms}"),
        ));
    }
    Ok(SnapshotSettings {
        path,
        interval: (interval_ms > 0).then(|| Duration::from_millis(interval_ms)),
        every_inputs: every_inputs.unwrap_or(0),
    })
}

/// One line describing the settings, for start-up reports.
pub fn describe(s: &SnapshotSettings) -> String {
    let mut when = Vec::new();
    if let Some(iv) = s.interval {
        when.push(format!("every {} ms", iv.as_millis()));
    }
    if s.every_inputs > 0 {
        when.push(format!("every {} inputs", s.every_inputs));
    }
    when.push("at a clean stop".to_string());
    format!("{} ({})", s.path.display(), when.join(", "))
}

/// Where the risk state stands relative to the journal and the feed (after a restart: what it
/// has applied; then kept up to date by [`SnapshotTaker::after`]).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Position {
    /// Input entries applied (reload entries included).
    pub inputs: u64,
    /// Feed seq after the last feed record applied.
    pub next_feed_seq: u64,
    /// The ingest stage's per-instrument memory, as of the last input applied.
    pub seen: Vec<SeenPrice>,
}

impl Position {
    /// A fresh position for `instruments` instruments.
    pub fn new(instruments: usize) -> Position {
        Position {
            inputs: 0,
            next_feed_seq: 0,
            seen: vec![SeenPrice::default(); instruments],
        }
    }

    /// Accounts for one more input applied.
    pub fn apply(&mut self, event: &FeedEvent) {
        self.inputs += 1;
        let FeedBody::Input(input) = event.body else {
            return;
        };
        self.next_feed_seq = event.seq.wrapping_add(1);
        if let Some(s) = input
            .instrument()
            .and_then(|i| self.seen.get_mut(i as usize))
        {
            s.last_publish_ns = event.publish_ns;
            if let Input::Tick(t) = input {
                s.last_mark_px = t.mark_px;
            }
        }
    }

    /// Accounts for a reload applied (it counts as an input entry).
    pub fn reloaded(&mut self) {
        self.inputs += 1;
    }

    fn meta(&self) -> SnapshotMeta {
        SnapshotMeta {
            inputs: self.inputs,
            next_feed_seq: self.next_feed_seq,
        }
    }
}

struct Pending {
    inputs: u64,
    bytes: Vec<u8>,
}

/// The risk stage's side: decides when a snapshot is due and encodes it.
pub struct SnapshotTaker {
    settings: SnapshotSettings,
    position: Position,
    since: u64,
    last_ns: u64,
    slot: Option<Arc<Mutex<Option<Pending>>>>,
    /// Size of the last snapshot encoded (the next one reserves as much).
    last_len: usize,
    /// Due snapshots skipped because the writer was busy.
    pub skipped: u64,
}

impl std::fmt::Debug for SnapshotTaker {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SnapshotTaker")
            .field("settings", &self.settings)
            .field("inputs", &self.position.inputs)
            .finish()
    }
}

impl SnapshotTaker {
    /// Records one input applied by the risk stage; true when a snapshot is due now and the
    /// writer can take it (then encode the state at this boundary and [`store`](Self::store)
    /// it). A due snapshot the busy writer cannot take is skipped and counted.
    pub fn after(&mut self, event: &FeedEvent) -> bool {
        self.position.apply(event);
        self.since += 1;
        let by_count = self.settings.every_inputs > 0 && self.since >= self.settings.every_inputs;
        let by_time = self.settings.interval.is_some_and(|iv| {
            self.since.is_multiple_of(64)
                && clock::now_ns().saturating_sub(self.last_ns) >= iv.as_nanos() as u64
        });
        if !(by_count || by_time) {
            return false;
        }
        self.since = 0;
        self.last_ns = clock::now_ns();
        let Some(slot) = &self.slot else {
            return false;
        };
        if slot.lock().map_or(true, |s| s.is_some()) {
            self.skipped += 1;
            return false;
        }
        true
    }

    /// Records a reload applied (or handed to the shards) after the inputs so far.
    pub fn reloaded(&mut self) {
        self.position.reloaded();
    }

    /// Where the risk state stands now (what a snapshot taken now would say).
    pub fn position(&self) -> &Position {
        &self.position
    }

    /// Hands the writer a snapshot of the state at `position`, written by `state` (see
    /// [`snapshot::encode_with`]); replaces one still waiting.
    pub fn store(&mut self, position: &Position, state: impl FnOnce(&mut super::codec::Writer)) {
        let Some(slot) = &self.slot else {
            return;
        };
        let bytes = snapshot::encode_with(
            position.meta(),
            &position.seen,
            self.last_len + self.last_len / 8,
            state,
        );
        self.last_len = bytes.len();
        if let Ok(mut s) = slot.lock() {
            *s = Some(Pending {
                inputs: position.inputs,
                bytes,
            });
        }
    }

    /// Takes the snapshot [`after`](Self::after) found due, of the state `state` writes as it
    /// stands at the current position.
    pub fn store_now(&mut self, state: impl FnOnce(&mut super::codec::Writer)) {
        let position = std::mem::take(&mut self.position);
        self.store(&position, state);
        self.position = position;
    }

    /// The final snapshot of a clean stop, as [`store_now`](Self::store_now) (it replaces one
    /// still waiting for the writer); no snapshot is taken after it.
    pub fn finish(&mut self, state: impl FnOnce(&mut super::codec::Writer)) {
        self.store_now(state);
        self.slot = None;
    }
}

/// What the writer thread did.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct WriterReport {
    /// Snapshots installed.
    pub written: u64,
    /// Input entries applied by the last one installed.
    pub last_inputs: Option<u64>,
    /// Snapshots dropped because the journal failed or never caught up.
    pub dropped: u64,
    /// The last write error, if any.
    pub error: Option<String>,
}

/// The writer thread's handle.
pub struct SnapshotWriter {
    stop: Arc<AtomicBool>,
    handle: JoinHandle<WriterReport>,
}

impl SnapshotWriter {
    /// Starts the writer thread for `settings.path` and returns it with the taker that feeds it,
    /// starting at `position`.
    pub fn spawn(
        settings: SnapshotSettings,
        journal: &Path,
        progress: Arc<JournalProgress>,
        position: Position,
    ) -> std::io::Result<(SnapshotWriter, SnapshotTaker)> {
        let slot = Arc::new(Mutex::new(None));
        let stop = Arc::new(AtomicBool::new(false));
        let path = settings.path.clone();
        let journal = journal.to_path_buf();
        let thread_stop = stop.clone();
        let thread_slot = slot.clone();
        let handle = std::thread::Builder::new()
            .name("snapshot".to_string())
            .spawn(move || write_loop(&path, &journal, &progress, &thread_slot, &thread_stop))?;
        let taker = SnapshotTaker {
            settings,
            position,
            since: 0,
            last_ns: clock::now_ns(),
            slot: Some(slot),
            last_len: 0,
            skipped: 0,
        };
        Ok((SnapshotWriter { stop, handle }, taker))
    }

    /// Waits for the last snapshot to be installed (call once the pipeline has stopped, so the
    /// journal will not grow any more) and returns what the thread did.
    pub fn join(self) -> WriterReport {
        // Release: pairs with the Acquire load in write_loop; every journal write happened
        // before the pipeline stopped.
        self.stop.store(true, Ordering::Release);
        self.handle.join().unwrap_or_else(|_| WriterReport {
            error: Some("the snapshot thread panicked".to_string()),
            ..WriterReport::default()
        })
    }
}

fn write_loop(
    path: &Path,
    journal: &Path,
    progress: &JournalProgress,
    slot: &Mutex<Option<Pending>>,
    stop: &AtomicBool,
) -> WriterReport {
    let mut report = WriterReport::default();
    loop {
        // Acquire: pairs with the Release store in SnapshotWriter::join; read before the slot,
        // so a final snapshot stored before the stop is seen.
        let stopping = stop.load(Ordering::Acquire);
        let Some(pending) = slot.lock().ok().and_then(|mut s| s.take()) else {
            if stopping {
                return report;
            }
            std::thread::sleep(Duration::from_millis(5));
            continue;
        };
        // A snapshot is installed only once the journal holds every input it applied.
        let ready = loop {
            if progress.inputs() >= pending.inputs {
                break true;
            }
            // Acquire: pairs with the Release store in SnapshotWriter::join.
            if progress.failed() || stop.load(Ordering::Acquire) {
                break progress.inputs() >= pending.inputs;
            }
            std::thread::sleep(Duration::from_millis(1));
        };
        if !ready {
            report.dropped += 1;
            tracing::warn!(
                inputs = pending.inputs,
                journaled = progress.inputs(),
                "snapshot dropped: the journal does not hold every input it applied"
            );
            continue;
        }
        // The journal's records reach the disk before the snapshot that relies on them.
        let synced = std::fs::File::open(journal).and_then(|f| f.sync_data());
        let result = synced
            .map_err(|e| format!("journal {}: {e}", journal.display()))
            .and_then(|()| snapshot::write_atomic(path, &pending.bytes).map_err(|e| e.to_string()));
        match result {
            Ok(()) => {
                report.written += 1;
                report.last_inputs = Some(pending.inputs);
            }
            Err(e) => {
                tracing::error!(error = %e, "snapshot not written");
                report.error = Some(e);
            }
        }
    }
}
