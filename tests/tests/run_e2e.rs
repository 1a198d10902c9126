//! `brink run` as a long-lived process fed by `brink-feed publish` in another process: a falling
//! BTCUSDT path liquidates the example's cross long; SIGUSR1 prints a latency report; SIGTERM
//! stops it cleanly (exit 0) with the order ring and the journal holding the same decisions.

use std::io::Read;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use brink::journal::{FsyncPolicy, Journal};
use brink::shm::{Expect, Output, RingFile, RingKind};
use rustix::process::{Pid, Signal, kill_process};

/// A Binance kline CSV from 26,000 down to 24,000 in 10-wide bars: through the margin-call
/// level (25,125.6) and the liquidation price (25,100.40) of the example's account 1.
fn crash_klines() -> String {
    let mut csv = String::from(
        "open_time,open,high,low,close,volume,close_time,quote_volume,count,taker_buy_volume,taker_buy_quote_volume,ignore\n",
    );
    let mut t = 1_700_000_000_000u64;
    let mut p = 26_000u64;
    while p > 24_000 {
        let next = p - 10;
        csv.push_str(&format!(
            "{t},{p},{p},{next},{next},0,{},0,60,0,0,0\n",
            t + 59_999
        ));
        t += 60_000;
        p = next;
    }
    csv
}

fn signal(pid: u32, sig: Signal) {
    let pid = Pid::from_raw(pid as i32).expect("a child pid is positive");
    kill_process(pid, sig).expect("signal delivered");
}

#[test]
fn run_liquidates_reports_and_stops_cleanly() {
    let dir = tempfile::tempdir().expect("temp dir");
    let root = brink_tests::workspace_root();
    let klines = dir.path().join("crash.csv");
    std::fs::write(&klines, crash_klines()).expect("write klines");
    let (feed, orders, journal) = (
        dir.path().join("feed.ring"),
        dir.path().join("orders.ring"),
        dir.path().join("orders.journal"),
    );
    let config = dir.path().join("brink.toml");
    std::fs::write(
        &config,
        format!(
            "[feed]\npath = \"{}\"\nwait_ms = 60000\n[orders]\npath = \"{}\"\ncapacity = 1024\n[journal]\npath = \"{}\"\n\
             [accounts]\nscenario = \"{}\"\ninsurance_fund = 1000\n[topology]\nmode = \"fuse-last2\"\nwait = \"backoff\"\n",
            feed.display(),
            orders.display(),
            journal.display(),
            root.join("examples/scenario.toml").display()
        ),
    )
    .expect("write config");

    // Build both binaries before starting either process.
    let (brink, brink_feed) = (brink_tests::bin("brink"), brink_tests::bin("brink-feed"));
    let mut engine = Command::new(brink)
        .args(["run", "--config"])
        .arg(&config)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("brink run starts");
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

    // Wait for the liquidation to reach the order ring.
    let deadline = Instant::now() + Duration::from_secs(30);
    let expect = Expect {
        kind: Some(RingKind::Orders),
        capacity: None,
    };
    let liquidated = loop {
        let found = RingFile::open(&orders, expect).ok().is_some_and(|ring| {
            (0..ring.header().producer_cursor).any(|pos| {
                matches!(
                    Output::decode(&ring.read_raw(pos)),
                    Ok(Output::Liquidation(l)) if l.account == 1
                )
            })
        });
        if found || Instant::now() > deadline {
            break found;
        }
        std::thread::sleep(Duration::from_millis(20));
    };
    signal(engine.id(), Signal::USR1);
    std::thread::sleep(Duration::from_millis(1_500));
    signal(engine.id(), Signal::TERM);
    let status = engine.wait().expect("brink run exits");
    let mut stdout = String::new();
    let mut stderr = String::new();
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
    assert!(
        liquidated,
        "no liquidation of account 1 appeared:\n{stdout}\n{stderr}"
    );
    assert_eq!(status.code(), Some(0), "{stdout}\n{stderr}");
    assert!(stdout.contains("latency report (Requested)"), "{stdout}");
    assert!(stdout.contains("stopped:"), "{stdout}");

    let ring = RingFile::open(&orders, expect).expect("order ring");
    let in_ring: Vec<Output> = (0..ring.header().producer_cursor)
        .map(|pos| Output::decode(&ring.read_raw(pos)).expect("decodes"))
        .collect();
    let (_, recovery) = Journal::open(&journal, FsyncPolicy::Never).expect("journal");
    for bytes in &recovery.records {
        brink::recovery::Entry::decode(bytes).expect("journal record decodes");
    }
    let journaled: Vec<Output> = brink::recovery::journaled_outputs(&recovery.records);
    assert_eq!(in_ring, journaled);
    // The long of account 1 (0.02 BTC from 50,000 on 500) is called before it is liquidated.
    let first_call = in_ring
        .iter()
        .position(|o| matches!(o, Output::MarginCall(c) if c.account == 1));
    let first_order = in_ring
        .iter()
        .position(|o| matches!(o, Output::Liquidation(l) if l.account == 1));
    assert!(first_call.is_some() && first_order.is_some(), "{in_ring:?}");
    assert!(first_call < first_order, "{in_ring:?}");
}
