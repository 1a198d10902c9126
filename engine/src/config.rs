//! The `brink run` configuration file (TOML).
//!
//! Every key has a default (see `examples/brink.toml`, which documents each one); unknown keys
//! and bad values are errors that name the file, the line and the key, and say what was
//! expected. Decimal thresholds are written as strings or numbers (`"0.8"` or `0.8`) and parsed
//! exactly.

use std::path::{Path, PathBuf};
use std::time::Duration;

use serde::Deserialize;

use crate::journal::FsyncPolicy;
use crate::num::Rate;
use crate::risk::RiskConfig;
use crate::runtime::{ShardPlan, Topology, TopologyPlan, WaitStrategy, available_cores};

/// Why a configuration was refused.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    /// The file could not be read.
    #[error("{file}: cannot read: {source}")]
    Read {
        /// The file.
        file: PathBuf,
        /// The operating system's error.
        source: std::io::Error,
    },
    /// The TOML is malformed, a key is unknown, or a value has the wrong type.
    #[error("{file}:{line}: {message}")]
    Syntax {
        /// The file.
        file: PathBuf,
        /// 1-based line (0 when unknown).
        line: usize,
        /// What the parser said, naming the key.
        message: String,
    },
    /// A value is well-formed but not acceptable.
    #[error("{file}: {key}: {problem}")]
    Invalid {
        /// The file.
        file: PathBuf,
        /// The key, as `section.key`.
        key: &'static str,
        /// What was expected.
        problem: String,
    },
}

/// A decimal written as a string or a number.
#[derive(Debug, Clone, Deserialize)]
#[serde(untagged)]
enum Dec {
    Text(String),
    Int(i64),
    Float(f64),
}

impl Dec {
    fn text(&self) -> String {
        match self {
            Dec::Text(s) => s.clone(),
            Dec::Int(i) => i.to_string(),
            Dec::Float(f) => f.to_string(),
        }
    }
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawConfig {
    #[serde(default)]
    feed: RawFeed,
    #[serde(default)]
    orders: RawOrders,
    #[serde(default)]
    journal: RawJournal,
    accounts: Option<RawAccounts>,
    #[serde(default)]
    topology: RawTopology,
    #[serde(default)]
    thresholds: RawThresholds,
    #[serde(default)]
    telemetry: RawTelemetry,
    #[serde(default)]
    snapshot: RawSnapshot,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawSnapshot {
    path: Option<PathBuf>,
    interval_ms: Option<u64>,
    every_inputs: Option<u64>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawFeed {
    path: Option<PathBuf>,
    stale_after_ms: Option<u64>,
    wait_ms: Option<u64>,
    price_band_bps: Option<u32>,
    confirm_ticks: Option<u32>,
    index_agree_bps: Option<u32>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawOrders {
    path: Option<PathBuf>,
    capacity: Option<u64>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawJournal {
    path: Option<PathBuf>,
    fsync: Option<String>,
    fsync_every: Option<u32>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawAccounts {
    scenario: PathBuf,
    bulk: Option<PathBuf>,
    insurance_fund: Option<Dec>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawTopology {
    mode: Option<String>,
    wait: Option<String>,
    cores: Option<Vec<usize>>,
    ring_capacity: Option<usize>,
    shards: Option<usize>,
    shard_threads: Option<String>,
    shard_cores: Option<Vec<usize>>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawThresholds {
    margin_call: Option<Dec>,
    rearm: Option<Dec>,
    liquidation_target: Option<Dec>,
    full_liquidation_ratio: Option<Dec>,
    slice_share: Option<Dec>,
    max_spread: Option<Dec>,
    child_timeout_ms: Option<u64>,
    fill_deadline_ms: Option<u64>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawTelemetry {
    interval_ms: Option<u64>,
    report_every_s: Option<u64>,
    histogram_log: Option<PathBuf>,
}

/// How the engine's threads are laid out.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum TopologyChoice {
    /// Chosen from the cores available (see [`TopologyPlan::auto`]).
    Auto,
    /// As given: a topology, a wait strategy, and optionally one core per thread.
    Manual {
        /// Which stages share threads.
        topology: Topology,
        /// How every thread waits.
        wait: WaitStrategy,
        /// One core per thread, or none for unpinned threads.
        cores: Vec<usize>,
    },
}

/// Where the risk shards run.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ShardChoice {
    /// On cores of their own when enough are free, else inline (see [`ShardPlan::auto`]).
    Auto,
    /// Inline on the risk thread, one after another.
    Inline,
    /// One thread per shard, pinned to these cores (one per shard) or unpinned when empty.
    Threads {
        /// Cores, one per shard, or none.
        cores: Vec<usize>,
    },
}

/// A validated `brink run` configuration with every default filled in.
#[derive(Debug, Clone)]
pub struct RunConfig {
    /// The file it came from.
    pub file: PathBuf,
    /// Feed ring path.
    pub feed: PathBuf,
    /// A producer silent this long is reported stale.
    pub stale_after: Duration,
    /// How long to wait for the feed file at start.
    pub feed_wait: Duration,
    /// Largest accepted mark move relative to the last one, basis points (0: off).
    pub price_band_bps: u32,
    /// Consecutive out-of-band ticks that confirm a move.
    pub confirm_ticks: u32,
    /// An out-of-band mark is confirmed at once when the index is this close to it (bps).
    pub index_agree_bps: u32,
    /// Order ring path.
    pub orders: PathBuf,
    /// Order ring capacity (power of two).
    pub orders_capacity: u64,
    /// Journal path.
    pub journal: PathBuf,
    /// Journal sync policy.
    pub fsync: FsyncPolicy,
    /// Scenario file (instruments, marks, and accounts unless `bulk` is given).
    pub scenario: PathBuf,
    /// Bulk accounts file.
    pub bulk: Option<PathBuf>,
    /// Insurance fund at start, in whole currency units.
    pub insurance_fund: i64,
    /// Thread layout.
    pub topology: TopologyChoice,
    /// SPSC ring capacity between stages.
    pub ring_capacity: usize,
    /// Risk shards (accounts partitioned by id; 1: unsharded).
    pub shards: usize,
    /// Where the shards run.
    pub shard_threads: ShardChoice,
    /// Risk thresholds.
    pub risk: RiskConfig,
    /// Latency snapshot interval.
    pub telemetry_interval: Duration,
    /// Periodic latency report, if any.
    pub report_every: Option<Duration>,
    /// HdrHistogram interval log, if any.
    pub histogram_log: Option<PathBuf>,
    /// Snapshots of the risk state.
    pub snapshot: crate::recovery::SnapshotSettings,
}

impl RunConfig {
    /// Reads and validates a configuration file.
    pub fn load(file: &Path) -> Result<RunConfig, ConfigError> {
        let text = std::fs::read_to_string(file).map_err(|source| ConfigError::Read {
            file: file.to_path_buf(),
            source,
        })?;
        RunConfig::parse(&text, file)
    }

    /// Parses and validates configuration text; `file` names it in errors and anchors relative
    /// paths (resolved against the file's folder).
    pub fn parse(text: &str, file: &Path) -> Result<RunConfig, ConfigError> {
        let raw: RawConfig = toml::from_str(text).map_err(|e| {
            let line = e
                .span()
                .map(|s| text[..s.start.min(text.len())].matches('\n').count() + 1)
                .unwrap_or(0);
            ConfigError::Syntax {
                file: file.to_path_buf(),
                line,
                message: e.message().to_string(),
            }
        })?;
        let base = file.parent().unwrap_or(Path::new("."));
        let rel = |p: PathBuf| if p.is_absolute() { p } else { base.join(p) };
        let invalid = |key: &'static str, problem: String| ConfigError::Invalid {
            file: file.to_path_buf(),
            key,
            problem,
        };
        let rate =
            |key: &'static str, v: &Option<Dec>, default: Rate| -> Result<Rate, ConfigError> {
                match v {
                    None => Ok(default),
                    Some(d) => Rate::parse(&d.text()).map_err(|e| {
                        invalid(
                            key,
                            format!("expected a non-negative decimal, got {:?}: {e}", d.text()),
                        )
                    }),
                }
            };
        let shm_dir = crate::shm::default_dir();
        let accounts = raw.accounts.ok_or_else(|| {
            invalid(
                "accounts.scenario",
                "missing: the [accounts] section must name a scenario file".to_string(),
            )
        })?;
        let fsync = match (raw.journal.fsync.as_deref(), raw.journal.fsync_every) {
            (None | Some("never"), None) => FsyncPolicy::Never,
            (Some("always"), None) => FsyncPolicy::Always,
            (Some("every"), Some(n)) if n > 0 => FsyncPolicy::EveryN(n),
            (Some(other), _) => {
                return Err(invalid(
                    "journal.fsync",
                    format!(
                        "expected \"never\", \"always\" or \"every\" (with fsync_every = N), got {other:?}"
                    ),
                ));
            }
            (None, Some(_)) => {
                return Err(invalid(
                    "journal.fsync_every",
                    "only with fsync = \"every\"".to_string(),
                ));
            }
        };
        let orders_capacity = raw.orders.capacity.unwrap_or(1 << 16);
        if !orders_capacity.is_power_of_two() || orders_capacity < 2 {
            return Err(invalid(
                "orders.capacity",
                format!("expected a power of two ≥ 2, got {orders_capacity}"),
            ));
        }
        let ring_capacity = raw.topology.ring_capacity.unwrap_or(1 << 14);
        if !ring_capacity.is_power_of_two() || ring_capacity < 2 {
            return Err(invalid(
                "topology.ring_capacity",
                format!("expected a power of two ≥ 2, got {ring_capacity}"),
            ));
        }
        let wait = match raw.topology.wait.as_deref() {
            None | Some("spin-yield") => WaitStrategy::SpinYield,
            Some("busy-spin") => WaitStrategy::BusySpin,
            Some("backoff") => WaitStrategy::BackoffPark,
            Some(other) => {
                return Err(invalid(
                    "topology.wait",
                    format!("expected \"busy-spin\", \"spin-yield\" or \"backoff\", got {other:?}"),
                ));
            }
        };
        let topology = match raw.topology.mode.as_deref() {
            None | Some("auto") => {
                if raw.topology.cores.is_some() || raw.topology.wait.is_some() {
                    return Err(invalid(
                        "topology.mode",
                        "\"auto\" chooses cores and wait strategy itself: drop `cores` and `wait`, or choose a mode".to_string(),
                    ));
                }
                TopologyChoice::Auto
            }
            Some(name) => {
                let topology = match name {
                    "threads3" => Topology::Threads3,
                    "fuse-first2" => Topology::FuseFirst2,
                    "fuse-last2" => Topology::FuseLast2,
                    "fused1" => Topology::Fused1,
                    other => {
                        return Err(invalid(
                            "topology.mode",
                            format!(
                                "expected \"auto\", \"threads3\", \"fuse-first2\", \"fuse-last2\" or \"fused1\", got {other:?}"
                            ),
                        ));
                    }
                };
                let cores = raw.topology.cores.unwrap_or_default();
                if !cores.is_empty() && cores.len() != topology.threads() {
                    return Err(invalid(
                        "topology.cores",
                        format!(
                            "{name} runs {} thread(s): give that many cores, or none for unpinned threads",
                            topology.threads()
                        ),
                    ));
                }
                TopologyChoice::Manual {
                    topology,
                    wait,
                    cores,
                }
            }
        };
        let shards = raw.topology.shards.unwrap_or(1);
        if !(1..=crate::risk::shard::MAX_SHARDS).contains(&shards) {
            return Err(invalid(
                "topology.shards",
                format!(
                    "expected a shard count from 1 to {}, got {shards}",
                    crate::risk::shard::MAX_SHARDS
                ),
            ));
        }
        let shard_threads = match raw.topology.shard_threads.as_deref() {
            None | Some("auto") => ShardChoice::Auto,
            Some("inline") => ShardChoice::Inline,
            Some("threads") => ShardChoice::Threads {
                cores: raw.topology.shard_cores.clone().unwrap_or_default(),
            },
            Some(other) => {
                return Err(invalid(
                    "topology.shard_threads",
                    format!("expected \"auto\", \"threads\" or \"inline\", got {other:?}"),
                ));
            }
        };
        if let Some(cores) = &raw.topology.shard_cores {
            if !matches!(shard_threads, ShardChoice::Threads { .. }) {
                return Err(invalid(
                    "topology.shard_cores",
                    "only with shard_threads = \"threads\"".to_string(),
                ));
            }
            if cores.len() != shards {
                return Err(invalid(
                    "topology.shard_cores",
                    format!(
                        "{shards} shard(s): give one core per shard, or none for unpinned threads"
                    ),
                ));
            }
        }
        let defaults = RiskConfig::default();
        let mut risk = defaults;
        risk.call_level = rate(
            "thresholds.margin_call",
            &raw.thresholds.margin_call,
            defaults.call_level,
        )?;
        risk.rearm_level = rate(
            "thresholds.rearm",
            &raw.thresholds.rearm,
            defaults.rearm_level,
        )?;
        if risk.rearm_level >= risk.call_level || risk.call_level.0 == 0 {
            return Err(invalid(
                "thresholds.rearm",
                "expected 0 < rearm < margin_call".to_string(),
            ));
        }
        let liq = &mut risk.liquidation;
        liq.target_ratio = rate(
            "thresholds.liquidation_target",
            &raw.thresholds.liquidation_target,
            liq.target_ratio,
        )?;
        liq.full_ratio = rate(
            "thresholds.full_liquidation_ratio",
            &raw.thresholds.full_liquidation_ratio,
            liq.full_ratio,
        )?;
        liq.slice_share = rate(
            "thresholds.slice_share",
            &raw.thresholds.slice_share,
            liq.slice_share,
        )?;
        liq.max_spread = rate(
            "thresholds.max_spread",
            &raw.thresholds.max_spread,
            liq.max_spread,
        )?;
        if let Some(ms) = raw.thresholds.child_timeout_ms {
            liq.child_timeout_ns = ms.saturating_mul(1_000_000);
        }
        if let Some(ms) = raw.thresholds.fill_deadline_ms {
            liq.fill_deadline_ns = ms.saturating_mul(1_000_000);
        }
        if liq.target_ratio >= Rate::ONE || liq.target_ratio.0 == 0 {
            return Err(invalid(
                "thresholds.liquidation_target",
                "expected a ratio strictly between 0 and 1".to_string(),
            ));
        }
        if liq.slice_share.0 == 0 || liq.slice_share > Rate::ONE {
            return Err(invalid(
                "thresholds.slice_share",
                "expected a share in (0, 1]".to_string(),
            ));
        }
        let insurance_fund = match &accounts.insurance_fund {
            None => 0,
            Some(d) => d
                .text()
                .parse::<i64>()
                .ok()
                .filter(|v| *v >= 0)
                .ok_or_else(|| {
                    invalid(
                        "accounts.insurance_fund",
                        format!("expected a whole non-negative amount, got {:?}", d.text()),
                    )
                })?,
        };
        let journal = raw
            .journal
            .path
            .map(rel)
            .unwrap_or_else(|| PathBuf::from("brink.journal"));
        let snapshot = crate::recovery::taker::settings_from_config(
            raw.snapshot.path.map(rel),
            &journal,
            raw.snapshot.interval_ms,
            raw.snapshot.every_inputs,
        )
        .map_err(|(key, problem)| invalid(key, problem))?;
        Ok(RunConfig {
            file: file.to_path_buf(),
            snapshot,
            feed: raw
                .feed
                .path
                .map(rel)
                .unwrap_or_else(|| shm_dir.join("brink-feed")),
            stale_after: Duration::from_millis(raw.feed.stale_after_ms.unwrap_or(1_000)),
            feed_wait: Duration::from_millis(raw.feed.wait_ms.unwrap_or(10_000)),
            price_band_bps: raw.feed.price_band_bps.unwrap_or(5_000),
            confirm_ticks: raw.feed.confirm_ticks.unwrap_or(3),
            index_agree_bps: raw.feed.index_agree_bps.unwrap_or(100),
            orders: raw
                .orders
                .path
                .map(rel)
                .unwrap_or_else(|| shm_dir.join("brink-orders")),
            orders_capacity,
            journal,
            fsync,
            scenario: rel(accounts.scenario),
            bulk: accounts.bulk.map(rel),
            insurance_fund,
            topology,
            ring_capacity,
            shards,
            shard_threads,
            risk,
            telemetry_interval: Duration::from_millis(
                raw.telemetry.interval_ms.unwrap_or(1_000).max(1),
            ),
            report_every: raw.telemetry.report_every_s.map(Duration::from_secs),
            histogram_log: raw.telemetry.histogram_log.map(rel),
        })
    }

    /// Where the risk shards run beside `pipeline` (this configuration's [`plan`](Self::plan)),
    /// on the cores available now.
    pub fn shard_plan(&self, pipeline: &TopologyPlan) -> ShardPlan {
        if self.shards <= 1 {
            return ShardPlan::single();
        }
        match &self.shard_threads {
            ShardChoice::Auto => ShardPlan::auto(self.shards, &available_cores(), pipeline),
            ShardChoice::Inline => ShardPlan::inline(self.shards),
            ShardChoice::Threads { cores } => {
                ShardPlan::threads(self.shards, pipeline.stage_wait(), cores)
            }
        }
    }

    /// The thread plan this configuration asks for, on the cores available now.
    pub fn plan(&self) -> TopologyPlan {
        match &self.topology {
            TopologyChoice::Auto => TopologyPlan::auto(&available_cores()),
            TopologyChoice::Manual {
                topology,
                wait,
                cores,
            } if cores.is_empty() => TopologyPlan::unpinned(*topology, *wait),
            TopologyChoice::Manual {
                topology,
                wait,
                cores,
            } => TopologyPlan::manual(
                *topology,
                cores
                    .iter()
                    .map(|&c| crate::runtime::ThreadPlan {
                        placement: crate::runtime::Placement::Core(c),
                        wait: *wait,
                    })
                    .collect(),
            ),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(text: &str) -> Result<RunConfig, ConfigError> {
        RunConfig::parse(text, Path::new("/etc/brink/test.toml"))
    }

    #[test]
    fn defaults_fill_everything_but_the_scenario() {
        let c = parse("[accounts]\nscenario = \"s.toml\"\n").expect("valid");
        assert_eq!(c.scenario, PathBuf::from("/etc/brink/s.toml"));
        assert_eq!(c.topology, TopologyChoice::Auto);
        assert_eq!(c.fsync, FsyncPolicy::Never);
        assert_eq!(c.risk, RiskConfig::default());
        assert_eq!(c.orders_capacity, 1 << 16);
    }

    #[test]
    fn snapshot_keys_have_documented_defaults() {
        let c = parse("[accounts]\nscenario = \"s.toml\"\n").expect("valid");
        assert_eq!(c.snapshot.path, PathBuf::from("brink.journal.snapshot"));
        assert_eq!(c.snapshot.interval, Some(Duration::from_secs(10)));
        assert_eq!(c.snapshot.every_inputs, 0);
        let c = parse(
            "[accounts]\nscenario = \"s.toml\"\n[snapshot]\npath = \"state.snap\"\ninterval_ms = 0\nevery_inputs = 5000\n",
        )
        .expect("valid");
        assert_eq!(c.snapshot.path, PathBuf::from("/etc/brink/state.snap"));
        assert_eq!(c.snapshot.interval, None);
        assert_eq!(c.snapshot.every_inputs, 5000);
        let err = parse("[accounts]\nscenario = \"s.toml\"\n[snapshot]\nevery = 3\n").unwrap_err();
        assert!(err.to_string().contains("every"), "{err}");
    }

    #[test]
    fn shards_default_to_one_and_plan_as_asked() {
        let c = parse("[accounts]\nscenario = \"s.toml\"\n").expect("valid");
        assert_eq!((c.shards, &c.shard_threads), (1, &ShardChoice::Auto));
        assert_eq!(c.shard_plan(&c.plan()), ShardPlan::single());
        let pipeline = TopologyPlan::unpinned(Topology::Fused1, WaitStrategy::BackoffPark);
        let c = parse(
            "[accounts]\nscenario = \"s.toml\"\n[topology]\nshards = 3\nshard_threads = \"inline\"\n",
        )
        .expect("valid");
        let plan = c.shard_plan(&pipeline);
        assert_eq!((plan.count, plan.threaded()), (3, false));
        let c = parse(
            "[accounts]\nscenario = \"s.toml\"\n[topology]\nshards = 2\nshard_threads = \"threads\"\n",
        )
        .expect("valid");
        let plan = c.shard_plan(&pipeline);
        assert_eq!((plan.count, plan.threads.len()), (2, 2));
        assert!(
            plan.threads
                .iter()
                .all(|t| t.placement == crate::runtime::Placement::Unpinned
                    && t.wait == WaitStrategy::BackoffPark)
        );
        let c = parse(
            "[accounts]\nscenario = \"s.toml\"\n[topology]\nshards = 2\nshard_threads = \"threads\"\nshard_cores = [4, 5]\n",
        )
        .expect("valid");
        let plan = c.shard_plan(&pipeline);
        assert_eq!(
            plan.threads[1].placement,
            crate::runtime::Placement::Core(5)
        );
    }

    #[test]
    fn thresholds_accept_strings_and_numbers() {
        let c = parse(
            "[accounts]\nscenario = \"s.toml\"\n[thresholds]\nmargin_call = \"0.85\"\nrearm = 0.75\nfill_deadline_ms = 2500\n",
        )
        .expect("valid");
        assert_eq!(c.risk.call_level, Rate(850_000_000));
        assert_eq!(c.risk.rearm_level, Rate(750_000_000));
        assert_eq!(c.risk.liquidation.fill_deadline_ns, 2_500_000_000);
    }

    #[test]
    fn an_unknown_key_names_its_line() {
        let err = parse("[accounts]\nscenario = \"s.toml\"\n[thresholds]\nmargin_cal = 0.8\n")
            .unwrap_err();
        let msg = err.to_string();
        assert!(msg.starts_with("/etc/brink/test.toml:4:"), "{msg}");
        assert!(msg.contains("margin_cal"), "{msg}");
    }

    #[test]
    fn bad_values_name_the_key_and_what_was_expected() {
        for (text, key) in [
            (
                "[thresholds]\nmargin_call = \"eighty\"",
                "thresholds.margin_call",
            ),
            ("[thresholds]\nrearm = 0.9", "thresholds.rearm"),
            ("[orders]\ncapacity = 1000", "orders.capacity"),
            ("[journal]\nfsync = \"sometimes\"", "journal.fsync"),
            (
                "[topology]\nmode = \"threads3\"\ncores = [0]",
                "topology.cores",
            ),
            ("[topology]\nwait = \"busy-spin\"", "topology.mode"),
            ("[snapshot]\ninterval_ms = 5", "snapshot.interval_ms"),
            ("[topology]\nshards = 0", "topology.shards"),
            ("[topology]\nshards = 65", "topology.shards"),
            (
                "[topology]\nshards = 2\nshard_threads = \"many\"",
                "topology.shard_threads",
            ),
            (
                "[topology]\nshards = 2\nshard_cores = [1, 2]",
                "topology.shard_cores",
            ),
            (
                "[topology]\nshards = 2\nshard_threads = \"threads\"\nshard_cores = [1]",
                "topology.shard_cores",
            ),
            ("[snapshot]\npath = \"/\"", "snapshot.path"),
        ] {
            let err = parse(&format!("[accounts]\nscenario = \"s.toml\"\n{text}\n")).unwrap_err();
            assert!(
                matches!(&err, ConfigError::Invalid { key: k, .. } if *k == key),
                "{text}: {err}"
            );
        }
        let err = parse("[feed]\npath = \"f\"\n").unwrap_err();
        assert!(err.to_string().contains("accounts.scenario"), "{err}");
    }
}
