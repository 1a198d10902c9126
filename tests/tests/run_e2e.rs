//! `brink run` as a long-lived process fed by `brink-feed publish` in another process: a falling
//! BTCUSDT path liquidates the example's cross long; SIGUSR1 prints a latency report; SIGTERM
//! stops it cleanly (exit 0) with the order ring and the journal holding the same decisions.

use std::io::Read;
use std::time::{Duration, Instant};

use brink::shm::{Expect, Output, RingFile, RingKind};
use brink_tests::run::RunFiles;
use brink_tests::signal;
use rustix::process::Signal;

#[test]
fn run_liquidates_reports_and_stops_cleanly() {
    let root = brink_tests::workspace_root();
    let scenario = std::fs::read_to_string(root.join("examples/scenario.toml")).expect("example");
    // From 26,000 down to 24,000 in 10-wide bars: through the margin-call level (25,125.6) and
    // the liquidation price (25,100.40) of the example's account 1.
    let klines = brink_tests::falling_klines(26_000, 24_000, 10);
    let run = RunFiles::new(&scenario, &klines, 1024, 1000, "");
    let orders = &run.orders;
    let mut engine = run.start_engine();
    run.publish(5000);

    // Wait for the liquidation to reach the order ring.
    let deadline = Instant::now() + Duration::from_secs(30);
    let expect = Expect {
        kind: Some(RingKind::Orders),
        capacity: None,
    };
    let liquidated = loop {
        let found = RingFile::open(orders, expect).ok().is_some_and(|ring| {
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

    let ring = RingFile::open(orders, expect).expect("order ring");
    let in_ring: Vec<Output> = (0..ring.header().producer_cursor)
        .map(|pos| Output::decode(&ring.read_raw(pos)).expect("decodes"))
        .collect();
    let journaled = run.journaled();
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
