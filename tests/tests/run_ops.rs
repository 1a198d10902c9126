//! `brink run` operated as in production: started on a config, fed by `brink-feed publish` in
//! another process at a flat price (nothing to do), then
//! - SIGUSR1 prints a latency report;
//! - `brink status` shows sequences, lag, heartbeats, counters, the fund and latency;
//! - the scenario's BTC tiers are raised and SIGHUP reloads them: with no price change, account
//!   1 (a cross long) gets a margin call and account 2 (a larger short) is liquidated, after a
//!   `config_reloaded` alert that names the input it was applied after;
//! - a bad config on SIGHUP is refused with a logged error and the engine keeps running;
//! - SIGTERM stops it with exit 0, the order ring and the journal holding the same records,
//!   and `brink status` then says it stopped.

use std::io::Read;
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use brink::journal::{FsyncPolicy, Journal};
use brink::shm::{Expect, Output, RingFile, RingKind, alert_code};
use rustix::process::{Pid, Signal, kill_process};

/// Binance klines flat at 50,000 (the example scenario's opening mark).
fn flat_klines(bars: u64) -> String {
    let mut csv = String::from(
        "open_time,open,high,low,close,volume,close_time,quote_volume,count,taker_buy_volume,taker_buy_quote_volume,ignore\n",
    );
    let mut t = 1_700_000_000_000u64;
    for _ in 0..bars {
        csv.push_str(&format!(
            "{t},50000,50000,50000,50000,0,{},0,60,0,0,0\n",
            t + 59_999
        ));
        t += 60_000;
    }
    csv
}

fn signal(pid: u32, sig: Signal) {
    let pid = Pid::from_raw(pid as i32).expect("a child pid is positive");
    kill_process(pid, sig).expect("signal delivered");
}

fn orders_in(path: &Path) -> Vec<Output> {
    let expect = Expect {
        kind: Some(RingKind::Orders),
        capacity: None,
    };
    match RingFile::open(path, expect) {
        Ok(ring) => (0..ring.header().producer_cursor)
            .filter_map(|pos| Output::decode(&ring.read_raw(pos)).ok())
            .collect(),
        Err(_) => Vec::new(),
    }
}

/// Polls `check` every 20 ms for up to 30 s.
fn wait_for(what: &str, mut check: impl FnMut() -> bool) -> bool {
    let deadline = Instant::now() + Duration::from_secs(30);
    while Instant::now() < deadline {
        if check() {
            return true;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    eprintln!("timed out waiting for {what}");
    false
}

fn status_json(config: &Path) -> (Option<i32>, serde_json::Value) {
    let out = Command::new(brink_tests::bin("brink"))
        .args(["status", "--json", "--config"])
        .arg(config)
        .output()
        .expect("brink status runs");
    let value = serde_json::from_slice(&out.stdout).unwrap_or_else(|e| {
        panic!(
            "brink status --json printed no JSON ({e}):\n{}\n{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        )
    });
    (out.status.code(), value)
}

fn stop_and_collect(mut engine: Child) -> (Option<i32>, String, String) {
    signal(engine.id(), Signal::TERM);
    let status = engine.wait().expect("brink run exits");
    let (mut stdout, mut stderr) = (String::new(), String::new());
    engine
        .stdout
        .take()
        .expect("piped")
        .read_to_string(&mut stdout)
        .expect("stdout");
    engine
        .stderr
        .take()
        .expect("piped")
        .read_to_string(&mut stderr)
        .expect("stderr");
    (status.code(), stdout, stderr)
}

/// A run's folder: a flat feed file, a copy of the example scenario, the ring and journal paths.
struct Setup {
    dir: tempfile::TempDir,
    klines: std::path::PathBuf,
    example: String,
    scenario: std::path::PathBuf,
    feed: std::path::PathBuf,
    orders: std::path::PathBuf,
    journal: std::path::PathBuf,
}

impl Setup {
    fn new() -> Setup {
        let dir = tempfile::tempdir().expect("temp dir");
        let root = brink_tests::workspace_root();
        let klines = dir.path().join("flat.csv");
        std::fs::write(&klines, flat_klines(40)).expect("write klines");
        let example =
            std::fs::read_to_string(root.join("examples/scenario.toml")).expect("scenario");
        let scenario = dir.path().join("scenario.toml");
        std::fs::write(&scenario, &example).expect("write scenario");
        Setup {
            klines,
            example,
            scenario,
            feed: dir.path().join("feed.ring"),
            orders: dir.path().join("orders.ring"),
            journal: dir.path().join("orders.journal"),
            dir,
        }
    }
}

/// A `brink run` configuration over these rings and journal, the scenario beside it, threads3
/// waiting with back-off, `topology` appended to its section, then `extra` sections.
fn config_text(feed: &Path, orders: &Path, journal: &Path, topology: &str, extra: &str) -> String {
    format!(
        "[feed]\npath = \"{}\"\nwait_ms = 60000\n[orders]\npath = \"{}\"\ncapacity = 1024\n[journal]\npath = \"{}\"\n\
         [accounts]\nscenario = \"scenario.toml\"\ninsurance_fund = 1000\n[topology]\nmode = \"threads3\"\nwait = \"backoff\"\n{topology}\
         [telemetry]\ninterval_ms = 200\n{extra}",
        feed.display(),
        orders.display(),
        journal.display(),
    )
}

/// The example scenario with every BTC tier at 45 % maintenance (three tiers raised).
fn raised_tiers(example: &str) -> String {
    let raised = example
        .replace("mmr = \"0.004\", imr = \"0.008\"", "mmr = \"0.45\", imr = \"0.5\"")
        .replace("mmr = \"0.005\", imr = \"0.01\" },\n          { max_notional = \"1000000\", mmr = \"0.01\", imr = \"0.02\"",
                 "mmr = \"0.45\", imr = \"0.5\" },\n          { max_notional = \"1000000\", mmr = \"0.45\", imr = \"0.5\"");
    assert_eq!(raised.matches("\"0.45\"").count(), 3, "{raised}");
    raised
}

#[test]
fn run_reloads_tiers_on_sighup_reports_status_and_stops_cleanly() {
    run_ops("", 1);
}

/// The same with the accounts in two risk shards on threads of their own: the reload reaches
/// both, the fund is the sum of its slices, and the final snapshot holds both shards.
#[test]
fn sharded_run_reloads_tiers_on_sighup_reports_status_and_stops_cleanly() {
    run_ops("shards = 2\nshard_threads = \"threads\"\n", 2);
}

fn run_ops(topology: &str, shards: usize) {
    let Setup {
        dir,
        klines,
        example,
        scenario,
        feed,
        orders,
        journal,
    } = Setup::new();
    let config = dir.path().join("brink.toml");
    let config_text = |extra: &str| config_text(&feed, &orders, &journal, topology, extra);
    std::fs::write(&config, config_text("")).expect("write config");

    let (brink, brink_feed) = (brink_tests::bin("brink"), brink_tests::bin("brink-feed"));
    let engine = Command::new(brink)
        .args(["run", "--config"])
        .arg(&config)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("brink run starts");
    let pid = engine.id();
    let _kill = brink_tests::KillOnDrop(pid);
    let publisher = Command::new(brink_feed)
        .args(["publish", "--create", "--rate", "5000", "--feed"])
        .arg(&feed)
        .arg("--file")
        .arg(&klines)
        .output()
        .expect("brink-feed publishes");
    assert!(
        publisher.status.success(),
        "{}",
        String::from_utf8_lossy(&publisher.stderr)
    );

    // Everything published is read and applied; the status file says so.
    let mut published = 0;
    let read_all = wait_for("the engine to apply the whole feed", || {
        let (code, s) = status_json(&config);
        published = s["rings"]["feed"]["produced"].as_u64().unwrap_or(0);
        code == Some(0)
            && published > 0
            && s["rings"]["feed"]["consumed"].as_u64() == Some(published)
            && s["status"]["risk"]["last_input_seq"].as_u64() == Some(published - 1)
            && s["status"]["latency"]["cumulative"]
                .as_array()
                .is_some_and(|rows| rows.iter().any(|r| r["hop"] == "risk"))
    });
    let flat = orders_in(&orders);
    signal(pid, Signal::USR1);

    let (code, s) = status_json(&config);
    assert_eq!(code, Some(0), "{s:#}");
    assert_eq!(s["running"], true, "{s:#}");
    assert_eq!(s["status"]["state"], "running", "{s:#}");
    assert_eq!(s["status"]["pid"].as_u64(), Some(u64::from(pid)), "{s:#}");
    assert_eq!(s["status"]["ingest"]["accepted"].as_u64(), Some(published));
    assert_eq!(s["status"]["ingest"]["rejected"].as_u64(), Some(0), "{s:#}");
    // Every record is a tick but for heartbeat records the publisher adds if it stalls.
    assert!(
        s["status"]["risk"]["ticks"]
            .as_u64()
            .is_some_and(|t| t > 0 && t <= published),
        "{s:#}"
    );
    assert_eq!(s["status"]["risk"]["margin_calls"].as_u64(), Some(0));
    assert_eq!(s["status"]["risk"]["insurance_fund"], "1000", "{s:#}");
    assert_eq!(s["rings"]["feed"]["lag"].as_u64(), Some(0), "{s:#}");
    assert!(
        s["rings"]["orders"]["producer_heartbeat_age_ms"].is_u64(),
        "{s:#}"
    );
    let hops: Vec<&str> = s["status"]["latency"]["cumulative"]
        .as_array()
        .map(|rows| rows.iter().filter_map(|r| r["hop"].as_str()).collect())
        .unwrap_or_default();
    assert!(hops.contains(&"feed") && hops.contains(&"risk"), "{s:#}");
    let text = Command::new(brink_tests::bin("brink"))
        .args(["status", "--config"])
        .arg(&config)
        .output()
        .expect("brink status runs");
    let text = String::from_utf8_lossy(&text.stdout).to_string();
    assert!(text.contains("engine   running"), "{text}");
    assert!(text.contains("fund     1000"), "{text}");

    // New BTC tiers (every tier at 45 %), same prices: account 1 (0.02 BTC long on 500:
    // MM 450, ratio 0.9) is called; account 2 (0.5 BTC short on 2,000: MM 11,250) liquidated.
    let raised = raised_tiers(&example);
    std::fs::write(&scenario, raised).expect("rewrite scenario");
    // A key that only a restart changes is reported, not applied.
    std::fs::write(
        &config,
        config_text("[thresholds]\nmargin_call = \"0.8\"\n")
            .replace("capacity = 1024", "capacity = 2048"),
    )
    .expect("rewrite config");
    signal(pid, Signal::HUP);
    let mut after = Vec::new();
    let reloaded = wait_for("the reload's decisions", || {
        after = orders_in(&orders);
        after
            .iter()
            .any(|o| matches!(o, Output::Liquidation(l) if l.account == 2))
    });

    // A bad config is refused; the engine keeps running on the applied one. (`brink status`
    // needs a valid file to find the journal: it is pointed at a good copy.)
    let good = dir.path().join("good.toml");
    std::fs::write(&good, config_text("")).expect("write");
    std::fs::write(
        &config,
        config_text("[thresholds]\nmargin_call = \"0.5\"\n"),
    )
    .expect("write");
    signal(pid, Signal::HUP);
    let refused = wait_for("the refused reload in the status", || {
        let (_, s) = status_json(&good);
        s["status"]["reloads"]["refused"].as_u64() == Some(1)
    });
    let (code, s) = status_json(&good);
    assert_eq!(code, Some(0), "still running after a refused reload: {s:#}");
    assert_eq!(s["status"]["reloads"]["applied"].as_u64(), Some(1), "{s:#}");
    assert_eq!(
        s["status"]["risk"]["margin_calls"].as_u64(),
        Some(1),
        "{s:#}"
    );
    assert!(
        s["status"]["risk"]["liquidations"].as_u64() >= Some(1),
        "{s:#}"
    );

    let (code, stdout, stderr) = stop_and_collect(engine);
    assert!(read_all, "{stdout}\n{stderr}");
    assert!(
        reloaded,
        "no liquidation after the reload: {after:?}\n{stdout}\n{stderr}"
    );
    assert!(refused, "{stdout}\n{stderr}");
    assert_eq!(code, Some(0), "{stdout}\n{stderr}");
    assert!(
        !flat
            .iter()
            .any(|o| matches!(o, Output::MarginCall(_) | Output::Liquidation(_))),
        "decisions before the reload: {flat:?}"
    );
    assert!(stdout.contains("latency report (Requested)"), "{stdout}");
    assert!(
        stdout.contains(&format!("counters:\ninput    {published} accepted")),
        "{stdout}"
    );
    assert!(stdout.contains("stopped:"), "{stdout}");
    assert!(
        stderr.contains("orders.capacity changed: ignored until restart"),
        "{stderr}"
    );
    assert!(
        stderr.contains("reload 1 applied after input seq"),
        "{stderr}"
    );
    assert!(stderr.contains("reload refused"), "{stderr}");
    assert!(stderr.contains("thresholds.rearm"), "{stderr}");

    // The reload is on the order ring, with the input it followed, before what it caused.
    let ring = orders_in(&orders);
    let reload_at = ring
        .iter()
        .position(|o| matches!(o, Output::Alert(a) if a.code == alert_code::CONFIG_RELOADED));
    let Some(reload_at) = reload_at else {
        panic!("no reload alert: {ring:?}")
    };
    let Output::Alert(alert) = ring[reload_at] else {
        unreachable!()
    };
    assert_eq!(alert.arg0, published - 1, "applied after the last input");
    assert_eq!(
        alert.arg1, 1,
        "one instrument's tiers changed, thresholds unchanged"
    );
    let call = ring.iter().position(
        |o| matches!(o, Output::MarginCall(c) if c.account == 1 && c.input_seq == published - 1),
    );
    let order = ring.iter().position(
        |o| matches!(o, Output::Liquidation(l) if l.account == 2 && l.input_seq == published - 1),
    );
    assert!(
        call > Some(reload_at) && order > Some(reload_at),
        "{ring:?}"
    );
    assert!(
        !ring
            .iter()
            .any(|o| matches!(o, Output::Liquidation(l) if l.account == 1)),
        "account 1 is called, not liquidated: {ring:?}"
    );

    // The journal holds exactly what the ring holds.
    let (_, recovery) = Journal::open(&journal, FsyncPolicy::Never).expect("journal");
    let journaled: Vec<Output> = brink::recovery::journaled_outputs(&recovery.records);
    assert_eq!(ring, journaled);

    // The final snapshot holds every shard's state after the last input: the call and the
    // liquidation are in it.
    let loaded = {
        let scenario = brink::scenario::Scenario::load(&scenario).expect("scenario");
        let engine = brink::risk::RiskEngine::new(
            scenario.instruments,
            scenario.marks,
            scenario.accounts,
            brink::risk::RiskConfig::default(),
            brink::risk::Scan::Index,
        )
        .with_fund(brink::margin::Money::from_int(1000));
        let base = brink::risk::shard::Shards::split(engine, shards);
        let path = dir.path().join("orders.journal.snapshot");
        brink::recovery::snapshot::load(&path, base)
            .expect("the final snapshot loads")
            .expect("a final snapshot was written")
    };
    assert_eq!(loaded.engine.len(), shards);
    assert_eq!(loaded.meta.next_feed_seq, published);
    let c = loaded.engine.counters();
    assert_eq!(c.margin_calls, 1, "{c:?}");
    assert!(c.liquidations >= 1, "{c:?}");
    if shards > 1 {
        assert!(
            stdout.contains(&format!("risk shards: {shards}, one thread each")),
            "{stdout}"
        );
    }

    // After the stop, status says so (exit 1) and still shows the last counters.
    let (code, s) = status_json(&good);
    assert_eq!(code, Some(1), "{s:#}");
    assert_eq!(s["liveness"], "stopped", "{s:#}");
    assert_eq!(
        s["status"]["risk"]["margin_calls"].as_u64(),
        Some(1),
        "{s:#}"
    );
}

#[test]
fn status_says_when_no_engine_runs() {
    let dir = tempfile::tempdir().expect("temp dir");
    let root = brink_tests::workspace_root();
    let config = dir.path().join("brink.toml");
    std::fs::write(
        &config,
        format!(
            "[feed]\npath = \"feed.ring\"\n[orders]\npath = \"orders.ring\"\n[journal]\npath = \"j\"\n[accounts]\nscenario = \"{}\"\n",
            root.join("examples/scenario.toml").display()
        ),
    )
    .expect("write config");
    let out = Command::new(brink_tests::bin("brink"))
        .args(["status", "--config"])
        .arg(&config)
        .output()
        .expect("brink status runs");
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert_eq!(out.status.code(), Some(1), "{stdout}");
    assert!(stdout.contains("NOT RUNNING"), "{stdout}");
    assert!(stdout.contains("j.status"), "{stdout}");
}

/// A reload, then a crash: the restart starts from the snapshot taken at start (before the
/// reload, under the old tiers, although the scenario file now has the new ones), applies the
/// journaled reload at its place, and neither diverges nor emits anything twice.
#[test]
fn a_restart_after_a_sigkill_applies_the_journaled_reload() {
    for (topology, shards) in [("", 1), ("shards = 2\nshard_threads = \"threads\"\n", 2)] {
        kill_after_reload(topology, shards);
    }
}

fn kill_after_reload(topology: &str, shards: usize) {
    let Setup {
        dir,
        klines,
        example,
        scenario,
        feed,
        orders,
        journal,
    } = Setup::new();
    let config = dir.path().join("brink.toml");
    std::fs::write(
        &config,
        config_text(
            &feed,
            &orders,
            &journal,
            topology,
            "[snapshot]\ninterval_ms = 0\n",
        ),
    )
    .expect("write config");
    let start = || {
        Command::new(brink_tests::bin("brink"))
            .args(["run", "--config"])
            .arg(&config)
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("brink run starts")
    };
    let mut engine = start();
    let _kill = brink_tests::KillOnDrop(engine.id());
    let publisher = Command::new(brink_tests::bin("brink-feed"))
        .args(["publish", "--create", "--rate", "5000", "--feed"])
        .arg(&feed)
        .arg("--file")
        .arg(&klines)
        .output()
        .expect("brink-feed publishes");
    assert!(publisher.status.success());
    let mut published = 0;
    let read_all = wait_for("the engine to apply the whole feed", || {
        let (code, s) = status_json(&config);
        published = s["rings"]["feed"]["produced"].as_u64().unwrap_or(0);
        code == Some(0)
            && published > 0
            && s["status"]["risk"]["last_input_seq"].as_u64() == Some(published - 1)
    });
    assert!(read_all, "{shards} shard(s)");
    let raised = raised_tiers(&example);
    std::fs::write(&scenario, raised).expect("rewrite scenario");
    signal(engine.id(), Signal::HUP);
    let reloaded = wait_for("the reload's decisions", || {
        orders_in(&orders)
            .iter()
            .any(|o| matches!(o, Output::Liquidation(l) if l.account == 2))
    });
    assert!(reloaded, "{shards} shard(s)");
    // Let the journal catch up with the ring, then crash.
    std::thread::sleep(Duration::from_millis(300));
    signal(engine.id(), Signal::KILL);
    engine.wait().expect("reaped");
    let before = orders_in(&orders);

    let engine = start();
    let _kill_restarted = brink_tests::KillOnDrop(engine.id());
    let running = wait_for("the restarted engine", || {
        let (code, s) = status_json(&config);
        code == Some(0) && s["status"]["state"] == "running"
    });
    let (code, stdout, stderr) = stop_and_collect(engine);
    assert!(running, "{stdout}\n{stderr}");
    assert_eq!(code, Some(0), "{shards} shard(s): {stdout}\n{stderr}");
    assert!(
        stdout.contains("restart: snapshot at input 0"),
        "{shards} shard(s): the snapshot taken at start: {stdout}"
    );
    let after = orders_in(&orders);
    assert_eq!(
        after, before,
        "{shards} shard(s): nothing emitted twice or lost"
    );
    let reloads = after
        .iter()
        .filter(|o| matches!(o, Output::Alert(a) if a.code == alert_code::CONFIG_RELOADED))
        .count();
    assert_eq!(reloads, 1, "{after:?}");
    let (_, recovery) = Journal::open(&journal, FsyncPolicy::Never).expect("journal");
    assert_eq!(brink::recovery::journaled_outputs(&recovery.records), after);
}
