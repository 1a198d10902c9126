//! `brink run --check`: everything a start would rely on, checked without starting.
//!
//! Beyond the configuration itself (parsed and validated by [`RunConfig::load`]) and the
//! accounts (loaded by the caller), [`preflight`] checks:
//! - **cores**: every core a thread is pinned to (`topology.cores`, `topology.shard_cores`, or
//!   what `auto` chose) is one this process may use, and no core is given to two threads;
//! - **the feed ring**, when its file exists: a feed ring of this layout (else the error the
//!   engine would stop on); when it does not, that the engine will wait `feed.wait_ms` for it;
//! - **the order ring**, when its file exists: whether it is an order ring the restart may reopen,
//!   or a file it would replace;
//! - **the journal**, when it exists: a journal of this layout, its records and any torn tail a
//!   restart would cut;
//! - **the snapshot**, when it exists: that it decodes onto the configured instruments and shard
//!   count.
//!
//! A problem the engine would refuse to start on is an error naming the key (exit 2); what it
//! would handle by itself is a note.

use std::path::Path;

use crate::config::{ConfigError, RunConfig};
use crate::recovery::snapshot;
use crate::risk::RiskEngine;
use crate::risk::shard::Shards;
use crate::runtime::{Placement, ShardPlan, TopologyPlan, available_cores};
use crate::shm::{Expect, RingFile, RingKind};

/// Checks what `config` would start on (see the module docs); returns one note per file or
/// resource checked, or the first problem.
pub fn preflight(
    config: &RunConfig,
    plan: &TopologyPlan,
    shards: &ShardPlan,
    engine: RiskEngine,
) -> Result<Vec<String>, ConfigError> {
    let invalid = |key: &'static str, problem: String| ConfigError::Invalid {
        file: config.file.clone(),
        key,
        problem,
    };
    let mut notes = Vec::new();

    // Cores.
    let cores = available_cores();
    let mut pinned: Vec<(usize, &'static str)> = Vec::new();
    let placements = plan
        .threads
        .iter()
        .map(|t| (t.placement, "topology.cores"))
        .chain(
            shards
                .threads
                .iter()
                .map(|t| (t.placement, "topology.shard_cores")),
        );
    for (placement, key) in placements {
        let Placement::Core(core) = placement else {
            continue;
        };
        if !cores.contains(&core) {
            return Err(invalid(
                key,
                format!("core {core} is not one this process may use (it may use {cores:?})"),
            ));
        }
        if let Some((_, first)) = pinned.iter().find(|(c, _)| *c == core) {
            return Err(invalid(
                key,
                format!(
                    "core {core} is already given to another thread (by {first}): give every \
                     pinned thread its own core"
                ),
            ));
        }
        pinned.push((core, key));
    }
    notes.push(format!(
        "cores: {} thread(s) pinned, all among the {} this process may use",
        pinned.len(),
        cores.len()
    ));

    // The feed ring.
    let expect = |kind| Expect {
        kind: Some(kind),
        capacity: None,
    };
    if config.feed.exists() {
        let ring = RingFile::open(&config.feed, expect(RingKind::Feed))
            .map_err(|e| invalid("feed.path", e.to_string()))?;
        let h = ring.header();
        notes.push(format!(
            "feed ring {}: a feed ring of capacity {}, {} record(s) published{}",
            config.feed.display(),
            h.capacity,
            h.producer_cursor,
            if h.producer_closed != 0 {
                ", closed by its producer"
            } else {
                ""
            }
        ));
    } else {
        notes.push(format!(
            "feed ring {}: not there yet; the engine waits up to {} ms for its publisher to \
             create it",
            config.feed.display(),
            config.feed_wait.as_millis()
        ));
    }

    // The order ring.
    if config.orders.exists() {
        match RingFile::open(&config.orders, expect(RingKind::Orders)) {
            Ok(ring) => notes.push(format!(
                "order ring {}: an order ring of capacity {}, {} record(s); reopened if the \
                 journal names it, else replaced",
                config.orders.display(),
                ring.header().capacity,
                ring.header().producer_cursor
            )),
            Err(e) => notes.push(format!(
                "order ring {}: not an order ring of this layout ({e}); it will be replaced",
                config.orders.display()
            )),
        }
    } else {
        notes.push(format!(
            "order ring {}: created at start (capacity {})",
            config.orders.display(),
            config.orders_capacity
        ));
    }

    // The journal.
    notes.push(check_journal(&config.journal).map_err(|e| invalid("journal.path", e))?);

    // The snapshot.
    let path = &config.snapshot.path;
    let base = Shards::split(engine, shards.count);
    match snapshot::load(path, base) {
        Ok(Ok(loaded)) => notes.push(format!(
            "snapshot {}: {} shard(s) at journal input {}, feed seq {} next",
            path.display(),
            loaded.engine.len(),
            loaded.meta.inputs,
            loaded.meta.next_feed_seq
        )),
        Ok(Err(_)) => notes.push(format!(
            "snapshot {}: none yet; one is taken at start",
            path.display()
        )),
        Err(e) => return Err(invalid("snapshot.path", e.to_string())),
    }
    Ok(notes)
}

/// What the journal at `path` holds, or why it is not a journal.
fn check_journal(path: &Path) -> Result<String, String> {
    let bytes = match std::fs::read(path) {
        Ok(b) => b,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            return Ok(format!("journal {}: created at start", path.display()));
        }
        Err(e) => return Err(format!("{}: cannot read: {e}", path.display())),
    };
    let (recovery, _) = crate::journal::scan(&bytes)
        .map_err(|found| format!("{}: not a Brink journal: {found}", path.display()))?;
    Ok(format!(
        "journal {}: {} record(s){}",
        path.display(),
        recovery.records.len(),
        match recovery.torn_reason {
            Some(reason) => format!(
                "; a restart cuts a torn tail of {} byte(s) ({reason})",
                recovery.torn_bytes
            ),
            None => String::new(),
        }
    ))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::runtime::{ThreadPlan, Topology, WaitStrategy};

    fn setup(dir: &Path, extra: &str) -> (RunConfig, RiskEngine) {
        let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("..");
        let text = format!(
            "[accounts]\nscenario = \"{}\"\n[feed]\npath = \"feed\"\n[orders]\npath = \"orders\"\n\
             [journal]\npath = \"journal\"\n{extra}",
            root.join("examples/scenario.toml").display()
        );
        let config = RunConfig::parse(&text, &dir.join("brink.toml")).expect("valid");
        let scenario = crate::scenario::Scenario::load(&config.scenario).expect("scenario");
        let engine = RiskEngine::new(
            scenario.instruments,
            scenario.marks,
            scenario.accounts,
            config.risk,
            crate::risk::Scan::Index,
        );
        (config, engine)
    }

    #[test]
    fn a_fresh_folder_passes_with_notes() {
        let dir = tempfile::tempdir().unwrap();
        let (config, engine) = setup(dir.path(), "");
        let plan = TopologyPlan::unpinned(Topology::Fused1, WaitStrategy::BackoffPark);
        let notes = preflight(&config, &plan, &ShardPlan::single(), engine).expect("passes");
        let text = notes.join("\n");
        assert!(text.contains("not there yet"), "{text}");
        assert!(text.contains("created at start"), "{text}");
        assert!(text.contains("none yet"), "{text}");
    }

    #[test]
    fn missing_or_shared_cores_and_foreign_files_name_their_key() {
        let dir = tempfile::tempdir().unwrap();
        let (config, _) = setup(dir.path(), "");
        let engine = || setup(dir.path(), "").1;
        let pinned = |core| ThreadPlan {
            placement: Placement::Core(core),
            wait: WaitStrategy::BackoffPark,
        };
        let key_of = |r: Result<Vec<String>, ConfigError>| match r {
            Err(ConfigError::Invalid { key, problem, .. }) => (key, problem),
            other => panic!("expected an invalid key, got {other:?}"),
        };
        let fused = |core| TopologyPlan::manual(Topology::Fused1, vec![pinned(core)]);
        let (key, problem) = key_of(preflight(
            &config,
            &fused(usize::MAX / 2),
            &ShardPlan::single(),
            engine(),
        ));
        assert_eq!(key, "topology.cores");
        assert!(problem.contains("may use"), "{problem}");
        if let Some(&core) = available_cores().first() {
            let shards = ShardPlan::threads(2, WaitStrategy::BackoffPark, &[core, core]);
            let unpinned = TopologyPlan::unpinned(Topology::Fused1, WaitStrategy::BackoffPark);
            let (key, problem) = key_of(preflight(&config, &unpinned, &shards, engine()));
            assert_eq!(key, "topology.shard_cores");
            assert!(problem.contains("already given"), "{problem}");
        }
        let unpinned = TopologyPlan::unpinned(Topology::Fused1, WaitStrategy::BackoffPark);
        std::fs::write(dir.path().join("feed"), b"not a ring").unwrap();
        let (key, _) = key_of(preflight(
            &config,
            &unpinned,
            &ShardPlan::single(),
            engine(),
        ));
        assert_eq!(key, "feed.path");
        std::fs::remove_file(dir.path().join("feed")).unwrap();
        std::fs::write(dir.path().join("journal"), b"not a journal either").unwrap();
        let (key, problem) = key_of(preflight(
            &config,
            &unpinned,
            &ShardPlan::single(),
            engine(),
        ));
        assert_eq!(key, "journal.path");
        assert!(problem.contains("not a Brink journal"), "{problem}");
        std::fs::remove_file(dir.path().join("journal")).unwrap();
        std::fs::write(&config.snapshot.path, b"garbage").unwrap();
        let (key, _) = key_of(preflight(
            &config,
            &unpinned,
            &ShardPlan::single(),
            engine(),
        ));
        assert_eq!(key, "snapshot.path");
    }
}
