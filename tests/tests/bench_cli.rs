//! `brink bench` end to end: the real binary, its venue process, real shared-memory rings. Checks
//! the JSON document's shape and that its numbers are consistent; never how fast anything was.

use std::path::Path;
use std::process::Command;

use serde_json::Value;

const KEYS: [&str; 7] = [
    "topology",
    "cores",
    "rate",
    "accounts",
    "duration_s",
    "throughput_per_s",
    "hops",
];
const STATS: [&str; 7] = [
    "p50_ns", "p90_ns", "p99_ns", "p999_ns", "p9999_ns", "max_ns", "count",
];

/// Runs the bench; returns the parsed JSON, the JSON text and what it printed.
fn bench(dir: &Path, topology: &str, baseline: bool) -> (Value, String, String) {
    bench_with(dir, topology, if baseline { &["--baseline"] } else { &[] })
}

/// As [`bench`], with `extra` options.
fn bench_with(dir: &Path, topology: &str, extra: &[&str]) -> (Value, String, String) {
    let json = dir.join(format!("{topology}.json"));
    let mut cmd = Command::new(brink_tests::bin("brink"));
    cmd.args([
        "bench",
        "--accounts",
        "3000",
        "--rate",
        "20000",
        "--duration",
        "1",
        "--topology",
        topology,
        "--wait",
        "backoff",
    ])
    .arg("--json")
    .arg(&json)
    .arg("--dir")
    .arg(dir.join(topology))
    .args(extra);
    let out = cmd.output().expect("brink bench runs");
    let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "bench failed:\n{stdout}\n{stderr}");
    let text = std::fs::read_to_string(&json).expect("the JSON file was written");
    let value: Value = serde_json::from_str(&text).expect("valid JSON");
    (value, text, stdout)
}

/// Checks one run object; returns its hop names (sorted: `serde_json` maps sort their keys).
fn check_run(run: &Value, topology: &str) -> Vec<String> {
    let obj = run.as_object().expect("an object");
    for key in KEYS {
        assert!(obj.contains_key(key), "missing {key} in {run}");
    }
    assert_eq!(run["topology"], topology);
    assert!(run["cores"].as_u64().expect("cores") >= 1);
    assert_eq!(run["rate"].as_f64(), Some(20000.0));
    assert_eq!(run["duration_s"].as_f64(), Some(1.0));
    let accounts = run["accounts"].as_u64().expect("accounts");
    assert!(accounts > 0 && accounts <= 3000, "{accounts}");
    assert!(run["throughput_per_s"].as_f64().expect("throughput") > 0.0);
    let hops = run["hops"].as_object().expect("hops is an object");
    for (name, stats) in hops {
        for key in STATS {
            assert!(stats.get(key).is_some(), "{name}: missing {key}");
        }
        let v: Vec<u64> = STATS
            .iter()
            .map(|k| stats[k].as_u64().expect("an integer"))
            .collect();
        assert!(v[6] > 0, "{name}: count is 0");
        assert!(
            v[..6].windows(2).all(|w| w[0] <= w[1]),
            "{name}: percentiles not monotonic: {v:?}"
        );
    }
    // Every tick passes the feed hop; the crash path must have produced orders end to end.
    let feed = hops["feed"]["count"].as_u64().expect("feed count");
    assert!(feed >= 20_000, "feed saw {feed} records for 20,000 ticks");
    assert!(hops["e2e"]["count"].as_u64().expect("e2e count") > 0);
    hops.keys().cloned().collect()
}

#[test]
fn bench_writes_the_documented_json_with_the_baseline() {
    let dir = tempfile::tempdir().expect("temp dir");
    let (v, text, stdout) = bench(dir.path(), "threads3", true);
    let hops = check_run(&v, "threads3");
    let order = ["feed", "ingest_risk", "risk", "risk_emit", "emit", "e2e"];
    let mut sorted = order.map(String::from).to_vec();
    sorted.sort();
    assert_eq!(hops, sorted, "threads3 has every hop");
    // In the file, keys come in the documented order, hops in pipeline order.
    let at = |key: &str| text.find(&format!("\"{key}\":")).expect(key);
    let top: Vec<usize> = KEYS.iter().map(|k| at(k)).collect();
    assert!(top.windows(2).all(|w| w[0] < w[1]), "{text}");
    let hop_at: Vec<usize> = order.iter().map(|k| at(k)).collect();
    assert!(hop_at.windows(2).all(|w| w[0] < w[1]), "{text}");
    assert!(at("baseline") > at("hops"), "{text}");
    let base = v.get("baseline").expect("baseline present with --baseline");
    assert_eq!(check_run(base, "threads3"), hops);
    assert!(stdout.contains("ours/base"), "{stdout}");
    assert!(stdout.contains("margin calls"), "{stdout}");
}

#[test]
fn a_fused_run_reports_only_the_hops_it_has_and_no_baseline() {
    let dir = tempfile::tempdir().expect("temp dir");
    let (v, _, _) = bench(dir.path(), "fused1", false);
    let hops = check_run(&v, "fused1");
    assert!(
        v.get("baseline").is_none(),
        "no baseline without --baseline"
    );
    assert!(
        !hops.iter().any(|h| h == "ingest_risk" || h == "risk_emit"),
        "fused1 has no queue between stages: {hops:?}"
    );
}

#[test]
fn bad_options_exit_2_and_say_what_to_use() {
    for args in [
        &["--rate", "0"][..],
        &["--duration=-1"],
        &["--topology", "threads4"],
        &["--wait", "sleepy"],
        &["--accounts", "0"],
        &["--shards", "0"],
        &["--shards", "1,65"],
        &["--shard-threads", "some"],
    ] {
        let out = Command::new(brink_tests::bin("brink"))
            .arg("bench")
            .args(args)
            .output()
            .expect("brink bench runs");
        assert_eq!(out.status.code(), Some(2), "{args:?}");
        let stderr = String::from_utf8_lossy(&out.stderr);
        let option = args[0].split('=').next().unwrap_or_default();
        assert!(stderr.contains(option), "{args:?}: {stderr}");
    }
}

#[test]
fn a_shard_sweep_reports_every_count() {
    let dir = tempfile::tempdir().expect("temp dir");
    let (v, _, stdout) = bench_with(
        dir.path(),
        "fuse-last2",
        &["--shards", "1,2", "--shard-threads", "threads"],
    );
    assert!(
        stdout.contains("risk shards: 2, one thread each"),
        "{stdout}"
    );
    assert!(stdout.contains("by risk shard count"), "{stdout}");
    let runs = v["shard_runs"].as_array().expect("shard_runs");
    assert_eq!(runs.len(), 2);
    assert_eq!(
        (runs[0]["shards"].as_u64(), runs[1]["shards"].as_u64()),
        (Some(1), Some(2))
    );
    assert_eq!(runs[0]["shard_threads"], false);
    assert_eq!(runs[1]["shard_threads"], true);
    for run in runs {
        check_run(run, "fuse-last2");
    }
    // The top-level run is the first count's.
    assert_eq!(v["throughput_per_s"], runs[0]["throughput_per_s"]);
}
