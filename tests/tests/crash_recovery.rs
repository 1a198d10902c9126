//! Crash recovery with real processes: `brink run` fed by a paced `brink-feed publish` is killed
//! with SIGKILL at random moments (at least 20 times, 10 with three risk shards on threads of
//! their own; seeded: the seed is printed, and
//! `BRINK_CRASH_SEED=N` repeats a run's kill points) and restarted each time, then stopped
//! cleanly. Afterwards:
//!
//! - the order ring holds exactly the outputs the journal holds, in the same order, and every
//!   liquidation order id appears once in each;
//! - an uninterrupted `brink run` over the same feed records (a copy of the feed ring, read from
//!   its start) journals the same decisions, liquidations included, in the same order;
//! - the final snapshots of the two runs (written at their clean stops) hold the same state, byte
//!   for byte.
//!
//! Alerts are left out of the comparisons: stale-producer and similar alerts depend on timing,
//! not on the input, and change no state.

use std::collections::HashSet;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use brink::journal::{FsyncPolicy, Journal};
use brink::recovery::{Entry, journaled_outputs, snapshot};
use brink::shm::{Expect, Output, RingFile, RingKind};
use rustix::process::{Pid, Signal, kill_process};

const SCENARIO: &str = r#"
[[instrument]]
symbol = "AAAUSDT"
kind = "perpetual"
price_decimals = 2
qty_decimals = 3
liquidation_fee = "0.005"
tiers = [ { max_notional = "50000", mmr = "0.004", imr = "0.008" },
          { max_notional = "250000", mmr = "0.005", imr = "0.01" },
          { max_notional = "1000000", mmr = "0.01", imr = "0.02" } ]

[[instrument]]
symbol = "BBBUSDT"
kind = "perpetual"
price_decimals = 2
qty_decimals = 3
liquidation_fee = "0.005"
tiers = [ { max_notional = "10000", mmr = "0.005", imr = "0.01" },
          { max_notional = "100000", mmr = "0.01", imr = "0.02" } ]

[[price]]
symbol = "AAAUSDT"
mark = "100"

[[price]]
symbol = "BBBUSDT"
mark = "200"
"#;

/// Feed records published (the synthetic market's ticks over two instruments).
const RECORDS: u64 = 40_000;
/// Publishing pace, records per second.
const RATE: u64 = 4_000;
/// SIGKILLs at least.
const KILLS: usize = 20;

/// SplitMix64: the seeded stream of kill points.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    fn range(&mut self, lo: u64, hi: u64) -> u64 {
        lo + self.next() % (hi - lo)
    }
}

struct Paths {
    dir: PathBuf,
    feed: PathBuf,
    orders: PathBuf,
    journal: PathBuf,
    snapshot: PathBuf,
    config: PathBuf,
}

fn paths(
    dir: &Path,
    name: &str,
    feed: &Path,
    scenario: &Path,
    accounts: &Path,
    topology: &str,
) -> Paths {
    let p = Paths {
        dir: dir.to_path_buf(),
        feed: feed.to_path_buf(),
        orders: dir.join(format!("{name}.orders")),
        journal: dir.join(format!("{name}.journal")),
        snapshot: dir.join(format!("{name}.snapshot")),
        config: dir.join(format!("{name}.toml")),
    };
    std::fs::write(
        &p.config,
        format!(
            "[feed]\npath = \"{}\"\nwait_ms = 60000\n[orders]\npath = \"{}\"\ncapacity = 131072\n\
             [journal]\npath = \"{}\"\n[snapshot]\npath = \"{}\"\ninterval_ms = 100\nevery_inputs = 3000\n\
             [accounts]\nscenario = \"{}\"\nbulk = \"{}\"\ninsurance_fund = 100000\n\
             [topology]\nmode = \"threads3\"\nwait = \"backoff\"\n{}",
            p.feed.display(),
            p.orders.display(),
            p.journal.display(),
            p.snapshot.display(),
            scenario.display(),
            accounts.display(),
            topology,
        ),
    )
    .expect("write config");
    p
}

fn start_engine(brink: &Path, p: &Paths, log: &str) -> Child {
    let out = std::fs::File::create(p.dir.join(format!("{log}.out"))).expect("log file");
    let err = std::fs::File::create(p.dir.join(format!("{log}.err"))).expect("log file");
    Command::new(brink)
        .args(["run", "--config"])
        .arg(&p.config)
        .stdout(out)
        .stderr(err)
        .spawn()
        .expect("brink run starts")
}

fn signal(child: &Child, sig: Signal) {
    let pid = Pid::from_raw(child.id() as i32).expect("a child pid is positive");
    kill_process(pid, sig).expect("signal delivered");
}

fn read_log(p: &Paths, log: &str) -> String {
    let out = std::fs::read_to_string(p.dir.join(format!("{log}.out"))).unwrap_or_default();
    let err = std::fs::read_to_string(p.dir.join(format!("{log}.err"))).unwrap_or_default();
    format!("{out}\n{err}")
}

/// Waits until the engine has consumed (and journaled) every record of the closed feed, then
/// stops it with SIGTERM; returns its output.
fn drain_and_stop(mut engine: Child, p: &Paths, log: &str) -> String {
    let _kill = brink_tests::KillOnDrop(engine.id());
    let ring = RingFile::open(
        &p.feed,
        Expect {
            kind: Some(RingKind::Feed),
            capacity: None,
        },
    )
    .expect("feed ring");
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let h = ring.header();
        if h.producer_closed != 0 && h.consumer_cursor >= h.producer_cursor {
            break;
        }
        if let Ok(Some(status)) = engine.try_wait() {
            panic!(
                "{log}: the engine exited early ({status}): {}",
                read_log(p, log)
            );
        }
        assert!(Instant::now() < deadline, "{log}: the feed was not drained");
        std::thread::sleep(Duration::from_millis(20));
    }
    std::thread::sleep(Duration::from_millis(300));
    signal(&engine, Signal::TERM);
    let status = engine.wait().expect("brink run exits");
    let out = read_log(p, log);
    assert_eq!(status.code(), Some(0), "{log}: {out}");
    out
}

/// The journal's outputs, every entry checked to decode.
fn journal_outputs(path: &Path) -> Vec<Output> {
    let (_, recovery) = Journal::open(path, FsyncPolicy::Never).expect("journal opens");
    for (i, b) in recovery.records.iter().enumerate() {
        Entry::decode(b).unwrap_or_else(|e| panic!("journal record {i}: {e}"));
    }
    journaled_outputs(&recovery.records)
}

fn ring_outputs(path: &Path) -> Vec<Output> {
    let ring = RingFile::open(
        path,
        Expect {
            kind: Some(RingKind::Orders),
            capacity: None,
        },
    )
    .expect("order ring");
    let n = ring.header().producer_cursor;
    assert!(
        n <= ring.capacity(),
        "the order ring wrapped: raise its capacity"
    );
    (0..n)
        .map(|pos| Output::decode(&ring.read_raw(pos)).expect("an output record"))
        .collect()
}

fn decisions(outputs: &[Output]) -> Vec<Output> {
    outputs
        .iter()
        .filter(|o| !matches!(o, Output::Alert(_)))
        .copied()
        .collect()
}

fn liquidation_ids(outputs: &[Output]) -> Vec<u64> {
    outputs
        .iter()
        .filter_map(|o| match o {
            Output::Liquidation(l) => Some(l.order_id),
            _ => None,
        })
        .collect()
}

fn assert_unique(ids: &[u64], what: &str) {
    let mut seen = HashSet::new();
    for id in ids {
        assert!(
            seen.insert(id),
            "{what}: liquidation order {id} appears twice"
        );
    }
}

/// The snapshot's state (its payload) without the header: the header counts input entries, and
/// ingest alerts (timing-dependent) are input entries.
fn snapshot_state(path: &Path) -> Vec<u8> {
    let bytes = std::fs::read(path).expect("final snapshot");
    assert!(bytes.len() > snapshot::HEADER_LEN, "snapshot too short");
    bytes[snapshot::HEADER_LEN..].to_vec()
}

#[test]
fn sigkill_at_random_points_loses_and_repeats_nothing() {
    crash_and_compare("", KILLS);
}

/// The same with the accounts in three risk shards on threads of their own: the merge is
/// deterministic, so the replays after each crash regenerate exactly what was journaled.
#[test]
fn sigkill_of_a_sharded_engine_loses_and_repeats_nothing() {
    crash_and_compare("shards = 3\nshard_threads = \"threads\"\n", KILLS / 2);
}

fn crash_and_compare(topology: &str, kills: usize) {
    let seed: u64 = std::env::var("BRINK_CRASH_SEED")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or_else(|| {
            std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map_or(1, |d| d.as_nanos() as u64)
        });
    println!("crash_recovery seed {seed} (BRINK_CRASH_SEED={seed} repeats these kill points)");
    let mut rng = Rng(seed);

    let dir = tempfile::tempdir().expect("temp dir");
    let scenario = dir.path().join("scenario.toml");
    std::fs::write(&scenario, SCENARIO).expect("scenario");
    let accounts = dir.path().join("accounts.bin");
    let (brink, brink_feed, brink_accounts) = (
        brink_tests::bin("brink"),
        brink_tests::bin("brink-feed"),
        brink_tests::bin("brink-accounts"),
    );
    let generated = Command::new(&brink_accounts)
        .args(["gen", "--count", "4000", "--seed", "5", "--positions", "2"])
        .arg("--instruments")
        .arg(&scenario)
        .arg("--out")
        .arg(&accounts)
        .output()
        .expect("brink-accounts runs");
    assert!(
        generated.status.success(),
        "{}",
        String::from_utf8_lossy(&generated.stderr)
    );

    let feed = dir.path().join("feed.ring");
    let crash = paths(dir.path(), "crash", &feed, &scenario, &accounts, topology);
    let mut publisher = Command::new(&brink_feed)
        .args([
            "publish",
            "--create",
            "--capacity",
            "65536",
            "--synthetic",
            "2",
        ])
        .args(["--seed", "9", "--rate", &RATE.to_string()])
        .args(["--limit", &RECORDS.to_string(), "--feed"])
        .arg(&feed)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("brink-feed publishes");

    // Kill and restart; the first start waits for the feed file.
    let started = Instant::now();
    for run in 0..kills {
        let log = format!("run{run}");
        let mut engine = start_engine(&brink, &crash, &log);
        let _kill = brink_tests::KillOnDrop(engine.id());
        std::thread::sleep(Duration::from_millis(rng.range(50, 900)));
        if let Ok(Some(status)) = engine.try_wait() {
            panic!(
                "{log} exited by itself ({status}): {}",
                read_log(&crash, &log)
            );
        }
        signal(&engine, Signal::KILL);
        engine.wait().expect("reaped");
    }
    println!(
        "{kills} SIGKILLs in {:.1} s",
        started.elapsed().as_secs_f64()
    );
    let published = publisher.wait().expect("publisher exits");
    assert!(published.success(), "publisher failed");
    let engine = start_engine(&brink, &crash, "final");
    let final_out = drain_and_stop(engine, &crash, "final");
    assert!(
        final_out.contains("restart: snapshot at input"),
        "{final_out}"
    );

    // The uninterrupted run, over a copy of the feed read from its start (consumer cursor 0).
    let copy = dir.path().join("feed-copy.ring");
    let mut bytes = std::fs::read(&feed).expect("feed file");
    bytes[256..264].copy_from_slice(&0u64.to_le_bytes());
    std::fs::write(&copy, bytes).expect("feed copy");
    let reference = paths(
        dir.path(),
        "reference",
        &copy,
        &scenario,
        &accounts,
        topology,
    );
    let engine = start_engine(&brink, &reference, "reference");
    drain_and_stop(engine, &reference, "reference");

    // Nothing lost, nothing repeated.
    let journaled = journal_outputs(&crash.journal);
    let in_ring = ring_outputs(&crash.orders);
    assert_eq!(
        in_ring.len(),
        journaled.len(),
        "the order ring and the journal hold different numbers of outputs"
    );
    assert!(
        in_ring == journaled,
        "the order ring differs from the journal"
    );
    assert_unique(&liquidation_ids(&journaled), "journal");
    assert_unique(&liquidation_ids(&in_ring), "order ring");

    let expected = journal_outputs(&reference.journal);
    let liquidations = liquidation_ids(&expected);
    assert!(
        !liquidations.is_empty(),
        "the run liquidated nothing: the test would prove little"
    );
    assert_eq!(
        liquidation_ids(&journaled),
        liquidations,
        "liquidation orders differ from the uninterrupted run"
    );
    assert!(
        decisions(&journaled) == decisions(&expected),
        "decisions differ from the uninterrupted run ({} against {})",
        decisions(&journaled).len(),
        decisions(&expected).len()
    );
    assert!(
        snapshot_state(&crash.snapshot) == snapshot_state(&reference.snapshot),
        "the final state differs from the uninterrupted run's"
    );
    println!(
        "{} liquidation orders, {} decisions, each once; final states equal",
        liquidations.len(),
        decisions(&expected).len()
    );
}
