//! What `brink bench` reports: one run's latency table and throughput, the optional baseline run
//! (the same pipeline with `crossbeam::channel` between the stages), their ratio per hop, and the
//! JSON document `--json` writes:
//!
//! ```text
//! {"topology":"threads3","cores":2,"rate":100000.0,"accounts":100000,"duration_s":10.0,
//!  "throughput_per_s":99871.2,
//!  "hops":{"feed":{"p50_ns":…,"p90_ns":…,"p99_ns":…,"p999_ns":…,"p9999_ns":…,"max_ns":…,"count":…},…},
//!  "baseline":{"topology":"threads3","cores":2,…,"hops":{…}},
//!  "shard_runs":[{"shards":1,"shard_threads":false,"topology":…,"hops":{…}},…]}
//! ```
//!
//! Keys are in that order; hops in pipeline order (`feed`, `ingest_risk`, `risk`, `risk_emit`,
//! `emit`, `e2e`), only those the topology has and that saw samples. `baseline` has the shape of
//! the run itself and is present only when the baseline ran; `shard_runs` only when `--shards`
//! named more than one count (each entry is a run with its shard count first). The orchestration (processes,
//! accounts, the price path) is the `brink bench` command, `engine/src/cli/bench.rs`.

use std::fmt::Write as _;

use serde::Serialize;

use crate::runtime::Topology;
use crate::telemetry::{HopStats, Report};

/// The `--topology` name of a topology (`threads3`, `fuse-first2`, `fuse-last2`, `fused1`).
pub fn topology_name(topology: Topology) -> &'static str {
    match topology {
        Topology::Threads3 => "threads3",
        Topology::FuseFirst2 => "fuse-first2",
        Topology::FuseLast2 => "fuse-last2",
        Topology::Fused1 => "fused1",
    }
}

/// One run of the engine under a paced publisher.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct BenchRun {
    /// The topology it ran on ([`topology_name`]).
    pub topology: String,
    /// Cores the process could use.
    pub cores: usize,
    /// Ticks per second the publisher was paced at.
    pub rate: f64,
    /// Accounts the risk stage held.
    pub accounts: u64,
    /// Seconds of paced publishing asked for.
    pub duration_s: f64,
    /// Feed records the engine took in per second, from its first to its last (display only).
    pub throughput_per_s: f64,
    /// The per-hop latency table.
    pub hops: Report,
}

/// One run of a shard sweep (`brink bench --shards 1,2,4`).
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct ShardRun {
    /// Risk shards.
    pub shards: usize,
    /// Whether the shards had threads of their own (else they ran inline on the risk thread).
    pub shard_threads: bool,
    /// The run.
    #[serde(flatten)]
    pub run: BenchRun,
}

/// The document `brink bench --json` writes: the run, the baseline when it ran, and the shard
/// sweep when more than one shard count ran.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct BenchOutput {
    /// Brink's rings between the stages.
    #[serde(flatten)]
    pub run: BenchRun,
    /// The same pipeline with `crossbeam::channel` between the stages.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub baseline: Option<BenchRun>,
    /// Every shard count's run, in the order asked (the first is `run`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub shard_runs: Option<Vec<ShardRun>>,
}

/// The shard sweep as a table: shards, where they ran, intake and end-to-end latency, each
/// count's intake relative to the first's.
pub fn shard_table(runs: &[ShardRun]) -> String {
    let mut out = String::new();
    let first = runs.first().map_or(0.0, |r| r.run.throughput_per_s);
    let _ = writeln!(
        out,
        "{:>6}  {:<8}{:>14}{:>8}{:>12}{:>12}",
        "shards", "threads", "records/s", "ratio", "e2e p50", "e2e p99"
    );
    for r in runs {
        let e2e = r.run.hops.get("e2e");
        let ns = |f: fn(&HopStats) -> u64| {
            e2e.map_or("-".to_string(), |s| crate::telemetry::format_ns(f(s)))
        };
        let _ = writeln!(
            out,
            "{:>6}  {:<8}{:>14.0}{:>8.2}{:>12}{:>12}",
            r.shards,
            if r.shard_threads { "own" } else { "inline" },
            r.run.throughput_per_s,
            if first > 0.0 {
                r.run.throughput_per_s / first
            } else {
                0.0
            },
            ns(|s| s.p50_ns),
            ns(|s| s.p99_ns),
        );
    }
    out
}

impl BenchOutput {
    /// The JSON text (keys in the documented order).
    pub fn to_json_string(&self) -> String {
        // Plain numbers, strings and maps: serialising cannot fail.
        serde_json::to_string(self).unwrap_or_default()
    }
}

/// The quantiles the ratio table compares, with their labels.
pub const RATIO_QUANTILES: [&str; 3] = ["p50", "p99", "p99.9"];

/// One hop's latency relative to the baseline: ours / baseline at p50, p99 and p99.9.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct HopRatio {
    /// p50 ratio.
    pub p50: f64,
    /// p99 ratio.
    pub p99: f64,
    /// p99.9 ratio.
    pub p999: f64,
}

impl HopRatio {
    /// `ours / base` at each quantile (display only); `None` when the baseline has no samples.
    pub fn of(ours: &HopStats, base: &HopStats) -> Option<HopRatio> {
        if base.count == 0 {
            return None;
        }
        let r = |a: u64, b: u64| a as f64 / (b.max(1)) as f64;
        Some(HopRatio {
            p50: r(ours.p50_ns, base.p50_ns),
            p99: r(ours.p99_ns, base.p99_ns),
            p999: r(ours.p999_ns, base.p999_ns),
        })
    }
}

/// Ratios for every hop both reports have, in the order of `ours`.
pub fn ratios(ours: &Report, base: &Report) -> Vec<(String, HopRatio)> {
    ours.rows
        .iter()
        .filter_map(|row| {
            let b = base.get(&row.name)?;
            Some((row.name.clone(), HopRatio::of(&row.stats, b)?))
        })
        .collect()
}

/// The ratio table as text: one line per hop, ours / baseline (below 1: ours is faster).
pub fn ratio_table(ours: &Report, base: &Report) -> String {
    let mut out = String::new();
    // Writing into a String cannot fail.
    let _ = write!(out, "{:<12}", "ours/base");
    for label in RATIO_QUANTILES {
        let _ = write!(out, "{label:>10}");
    }
    out.push('\n');
    let rows = ratios(ours, base);
    for (name, r) in &rows {
        let _ = writeln!(
            out,
            "{name:<12}{:>10.2}{:>10.2}{:>10.2}",
            r.p50, r.p99, r.p999
        );
    }
    if rows.is_empty() {
        out.push_str("(no hop in common)\n");
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::telemetry::ReportRow;

    fn stats(base: u64, count: u64) -> HopStats {
        HopStats {
            p50_ns: base,
            p90_ns: base * 2,
            p99_ns: base * 4,
            p999_ns: base * 8,
            p9999_ns: base * 16,
            max_ns: base * 32,
            count,
        }
    }

    fn report(rows: &[(&str, HopStats)]) -> Report {
        Report {
            elapsed_ns: 1_000_000_000,
            rows: rows
                .iter()
                .map(|(name, s)| ReportRow {
                    name: (*name).to_owned(),
                    stats: *s,
                    clamped_high: 0,
                    backwards: 0,
                })
                .collect(),
        }
    }

    fn run(hops: Report) -> BenchRun {
        BenchRun {
            topology: "threads3".to_owned(),
            cores: 2,
            rate: 1000.0,
            accounts: 10,
            duration_s: 1.5,
            throughput_per_s: 999.5,
            hops,
        }
    }

    #[test]
    fn the_json_has_every_key_in_order_and_the_baseline_only_when_it_ran() {
        let hops = report(&[("feed", stats(100, 7)), ("e2e", stats(300, 3))]);
        let alone = BenchOutput {
            run: run(hops.clone()),
            baseline: None,
            shard_runs: None,
        };
        let text = alone.to_json_string();
        assert!(
            text.starts_with(
                "{\"topology\":\"threads3\",\"cores\":2,\"rate\":1000.0,\"accounts\":10,\
                 \"duration_s\":1.5,\"throughput_per_s\":999.5,\"hops\":{\"feed\":{\"p50_ns\":100,"
            ),
            "{text}"
        );
        assert!(!text.contains("baseline"), "{text}");
        let v: serde_json::Value = serde_json::from_str(&text).expect("valid JSON");
        assert_eq!(v["hops"]["e2e"]["p9999_ns"], 4800);
        assert_eq!(v["hops"]["e2e"]["count"], 3);

        assert!(!text.contains("shard_runs"), "{text}");

        let both = BenchOutput {
            run: run(hops.clone()),
            baseline: Some(run(report(&[("feed", stats(200, 7))]))),
            shard_runs: None,
        };
        let v: serde_json::Value =
            serde_json::from_str(&both.to_json_string()).expect("valid JSON");
        assert_eq!(v["baseline"]["hops"]["feed"]["p50_ns"], 200);
        assert_eq!(v["baseline"]["topology"], "threads3");
        assert!(v["baseline"]["hops"].get("e2e").is_none());
    }

    #[test]
    fn a_shard_sweep_lists_every_count_with_its_run_and_ratio() {
        let hops = report(&[("feed", stats(100, 7)), ("e2e", stats(300, 3))]);
        let sweep: Vec<ShardRun> = [(1, false, 1000.0), (2, true, 1500.0), (4, false, 500.0)]
            .into_iter()
            .map(|(shards, threads, tput)| ShardRun {
                shards,
                shard_threads: threads,
                run: BenchRun {
                    throughput_per_s: tput,
                    ..run(hops.clone())
                },
            })
            .collect();
        let doc = BenchOutput {
            run: sweep[0].run.clone(),
            baseline: None,
            shard_runs: Some(sweep.clone()),
        };
        let text = doc.to_json_string();
        assert!(
            text.contains("\"shard_runs\":[{\"shards\":1,\"shard_threads\":false,\"topology\""),
            "{text}"
        );
        let v: serde_json::Value = serde_json::from_str(&text).expect("valid JSON");
        assert_eq!(v["shard_runs"][2]["shards"], 4);
        assert_eq!(v["shard_runs"][1]["throughput_per_s"], 1500.0);
        let table = shard_table(&sweep);
        let lines: Vec<&str> = table.lines().collect();
        assert_eq!(lines.len(), 4, "{table}");
        assert!(
            lines[2].contains("own") && lines[2].contains("1.50"),
            "{table}"
        );
        assert!(
            lines[3].contains("inline") && lines[3].contains("0.50"),
            "{table}"
        );
    }

    #[test]
    fn ratios_cover_the_hops_both_runs_have() {
        let ours = report(&[("feed", stats(100, 5)), ("e2e", stats(300, 5))]);
        let base = report(&[("feed", stats(400, 5)), ("risk", stats(1, 5))]);
        let r = ratios(&ours, &base);
        assert_eq!(r.len(), 1);
        assert_eq!(r[0].0, "feed");
        assert_eq!(r[0].1.p50, 0.25);
        assert_eq!(r[0].1.p99, 0.25);
        let text = ratio_table(&ours, &base);
        assert!(text.contains("feed") && text.contains("0.25"), "{text}");
        assert!(!text.contains("e2e"), "{text}");
        assert!(ratio_table(&ours, &report(&[])).contains("no hop in common"));
    }

    #[test]
    fn a_zero_baseline_percentile_does_not_divide_by_zero() {
        let r = HopRatio::of(&stats(5, 1), &stats(0, 1)).expect("baseline has samples");
        assert_eq!(r.p50, 5.0);
        assert_eq!(HopRatio::of(&stats(5, 1), &HopStats::default()), None);
    }

    #[test]
    fn topology_names_are_the_command_line_names() {
        let names: Vec<&str> = Topology::ALL.into_iter().map(topology_name).collect();
        assert_eq!(names, ["threads3", "fuse-first2", "fuse-last2", "fused1"]);
    }
}
