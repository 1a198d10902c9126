//! A `brink-feed publish` process and a `brink-feed consume` process (the engine's ingest stage)
//! over one ring file: a million records, a ring a thousand times smaller.

mod feed_support;

use std::process::{Command, Stdio};

use feed_support::{brink_feed, last_json, ring_dir, run_json, s, u};

#[test]
fn a_million_records_arrive_in_order_through_a_small_ring() -> anyhow::Result<()> {
    let dir = ring_dir();
    let feed = dir.path().join("feed");
    const N: u64 = 1_000_000;
    // The publisher starts first and fills the 1024-slot ring before the consumer exists, so it
    // must wait (back-pressure) rather than overwrite.
    let publisher = Command::new(brink_feed())
        .args([
            "publish",
            "--feed",
            s(&feed),
            "--create",
            "--capacity",
            "1024",
        ])
        .args([
            "--synthetic",
            "4",
            "--seed",
            "7",
            "--limit",
            &N.to_string(),
            "--json",
        ])
        .stdout(Stdio::piped())
        .spawn()?;
    let consumed = run_json(&[
        "consume",
        "--feed",
        s(&feed),
        "--instruments",
        "4",
        "--json",
    ])?;
    let out = publisher.wait_with_output()?;
    assert!(out.status.success(), "publisher failed: {}", out.status);
    let published = last_json(&out.stdout)?;
    println!("publisher: {published}\nconsumer: {consumed}");

    assert_eq!(u(&published, "data"), N);
    let sent = u(&published, "sent");
    assert_eq!(u(&consumed, "accepted"), sent, "records lost or refused");
    assert_eq!(u(&consumed, "rejected_total"), 0);
    assert_eq!(u(&consumed, "duplicates"), 0);
    assert_eq!(u(&consumed, "seq_jumps"), 0);
    assert_eq!(u(&consumed, "gaps"), 0);
    assert_eq!(u(&consumed, "first_seq"), 0);
    assert_eq!(u(&consumed, "last_seq"), sent - 1);
    assert_eq!(
        consumed["digest"], published["digest"],
        "content or order differs"
    );
    assert_eq!(consumed["closed"], true);
    assert!(
        u(&published, "wait_ns") > 0,
        "the ring never filled: back-pressure untested"
    );

    let stat = run_json(&["stat", "--ring", s(&feed), "--json"])?;
    assert_eq!(u(&stat, "producer_cursor"), sent);
    assert_eq!(u(&stat, "consumer_cursor"), sent);
    assert_eq!(u(&stat, "lag"), 0);
    assert_eq!(u(&stat, "capacity"), 1024);
    assert_eq!(u(&stat, "producer_wait_ns"), u(&published, "wait_ns"));
    Ok(())
}

#[test]
fn paced_publisher_sends_heartbeats_and_dump_reads_them() -> anyhow::Result<()> {
    let dir = ring_dir();
    let feed = dir.path().join("feed");
    // 20 records at 100/s (10 ms apart) with a heartbeat record after 5 ms of silence.
    let published = run_json(&[
        "publish",
        "--feed",
        s(&feed),
        "--create",
        "--capacity",
        "64",
        "--synthetic",
        "2",
        "--limit",
        "20",
        "--rate",
        "100",
        "--heartbeat-ms",
        "5",
        "--json",
    ])?;
    assert_eq!(u(&published, "data"), 20);
    assert!(u(&published, "heartbeats") > 0, "{published}");
    assert_eq!(u(&published, "sent"), 20 + u(&published, "heartbeats"));
    let consumed = run_json(&[
        "consume",
        "--feed",
        s(&feed),
        "--instruments",
        "2",
        "--json",
    ])?;
    assert_eq!(u(&consumed, "accepted"), u(&published, "sent"));
    assert_eq!(u(&consumed, "heartbeats"), u(&published, "heartbeats"));
    assert_eq!(consumed["digest"], published["digest"]);

    let out = feed_support::run(&["dump", "--ring", s(&feed), "--json"])?;
    assert!(out.status.success());
    let lines: Vec<serde_json::Value> = String::from_utf8(out.stdout)?
        .lines()
        .map(serde_json::from_str)
        .collect::<Result<_, _>>()?;
    assert_eq!(lines.len() as u64, u(&published, "sent"));
    let ticks = lines.iter().filter(|l| l["kind"] == "tick").count();
    assert_eq!(ticks, 20);
    for (i, l) in lines.iter().enumerate() {
        assert_eq!(u(l, "seq"), i as u64);
    }
    Ok(())
}
