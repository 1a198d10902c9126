//! Faults across processes: a publisher killed mid-stream, a restarted publisher (new file or
//! same file), and files that are not valid rings. The consumer is a real `brink-feed consume`
//! process running the engine's ingest stage.

mod feed_support;

use std::io::{BufRead, BufReader, Seek, SeekFrom, Write};
use std::process::{Child, Command, Stdio};
use std::sync::mpsc::{Receiver, channel};
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};
use feed_support::{brink_feed, ring_dir, run, run_json, s, u};
use serde_json::Value;

/// A consumer process whose stdout lines arrive on a channel.
struct Consumer {
    child: Child,
    lines: Receiver<String>,
    seen: Vec<Value>,
}

impl Consumer {
    fn spawn(feed: &std::path::Path, instruments: &str) -> Result<Consumer> {
        let mut child = Command::new(brink_feed())
            .args(["consume", "--feed", s(feed), "--instruments", instruments])
            .args([
                "--stale-ms",
                "200",
                "--events",
                "--json",
                "--timeout-s",
                "60",
            ])
            .stdout(Stdio::piped())
            .spawn()?;
        let stdout = child.stdout.take().context("stdout")?;
        let (tx, rx) = channel();
        std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines().map_while(Result::ok) {
                if tx.send(line).is_err() {
                    break;
                }
            }
        });
        Ok(Consumer {
            child,
            lines: rx,
            seen: Vec::new(),
        })
    }

    /// Waits for an alert line with `code`.
    fn wait_alert(&mut self, code: &str) -> Result<Value> {
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            if let Some(v) = self.seen.iter().find(|v| v["code"] == code) {
                return Ok(v.clone());
            }
            let left = deadline.saturating_duration_since(Instant::now());
            let line = self
                .lines
                .recv_timeout(left)
                .with_context(|| format!("no {code} alert; saw {:?}", self.seen))?;
            self.seen
                .push(serde_json::from_str(&line).with_context(|| line.clone())?);
        }
    }

    /// Waits for exit; returns the summary (last line) and every alert seen.
    fn finish(mut self) -> Result<(Value, Vec<Value>)> {
        let status = self.child.wait()?;
        self.seen.extend(
            self.lines
                .iter()
                .map(|l| serde_json::from_str(&l).expect("json line")),
        );
        if !status.success() {
            bail!("consumer exited with {status}: {:?}", self.seen);
        }
        let summary = self.seen.pop().context("no summary")?;
        Ok((summary, self.seen))
    }
}

fn wait_consumed(feed: &std::path::Path, at_least: u64) -> Result<()> {
    let deadline = Instant::now() + Duration::from_secs(30);
    while Instant::now() < deadline {
        if let Ok(v) = run_json(&["stat", "--ring", s(feed), "--json"])
            && u(&v, "consumer_cursor") >= at_least
        {
            return Ok(());
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    bail!("consumer never reached {at_least} records")
}

fn endless_publisher(feed: &std::path::Path, create: bool) -> Result<Child> {
    let mut cmd = Command::new(brink_feed());
    cmd.args([
        "publish",
        "--feed",
        s(feed),
        "--synthetic",
        "2",
        "--rate",
        "5000",
    ]);
    if create {
        cmd.args(["--create", "--capacity", "1024"]);
    }
    Ok(cmd.stdout(Stdio::null()).spawn()?)
}

#[test]
fn killed_publisher_is_reported_stale_and_a_new_file_is_followed() -> Result<()> {
    let dir = ring_dir();
    let feed = dir.path().join("feed");
    let mut consumer = Consumer::spawn(&feed, "2")?;
    let mut a = endless_publisher(&feed, true)?;
    wait_consumed(&feed, 200)?;
    a.kill()?;
    a.wait()?;
    let stale = consumer.wait_alert("producer_stale")?;
    assert!(u(&stale, "arg0") > 200_000_000, "stale age {stale}");
    std::thread::sleep(Duration::from_millis(300));
    assert!(
        consumer.child.try_wait()?.is_none(),
        "consumer stopped after a stale producer"
    );

    let b = run_json(&[
        "publish",
        "--feed",
        s(&feed),
        "--create",
        "--capacity",
        "1024",
        "--synthetic",
        "2",
        "--seed",
        "9",
        "--limit",
        "5000",
        "--json",
    ])?;
    let (summary, alerts) = consumer.finish()?;
    println!("B: {b}\nconsumer: {summary}\nalerts: {alerts:?}");
    assert!(alerts.iter().any(|a| a["code"] == "producer_restarted"));
    assert!(u(&summary, "stale") >= 1);
    assert!(u(&summary, "restarts") >= 1);
    assert_eq!(summary["closed"], true);
    assert_eq!(
        summary["epoch_digest"], b["digest"],
        "B's records differ after the restart"
    );
    assert!(u(&summary, "accepted") >= 200 + u(&b, "sent"));
    assert_eq!(u(&summary, "duplicates"), 0);
    assert_eq!(u(&summary, "rejected_total"), 0);
    Ok(())
}

#[test]
fn a_publisher_attaching_to_the_same_file_resumes_without_loss() -> Result<()> {
    let dir = ring_dir();
    let feed = dir.path().join("feed");
    let mut consumer = Consumer::spawn(&feed, "2")?;
    let mut a = endless_publisher(&feed, true)?;
    wait_consumed(&feed, 100)?;
    // A second producer beside a live one is refused.
    let second = run(&[
        "publish",
        "--feed",
        s(&feed),
        "--synthetic",
        "1",
        "--limit",
        "1",
    ])?;
    let err = String::from_utf8_lossy(&second.stderr);
    assert_eq!(second.status.code(), Some(2), "{err}");
    assert!(
        err.contains(&format!("live producer (pid {}", a.id())),
        "{err}"
    );
    a.kill()?;
    a.wait()?;
    consumer.wait_alert("producer_stale")?;
    let c = run_json(&[
        "publish",
        "--feed",
        s(&feed),
        "--synthetic",
        "2",
        "--seed",
        "3",
        "--limit",
        "3000",
        "--json",
    ])?;
    let (summary, alerts) = consumer.finish()?;
    println!("C: {c}\nconsumer: {summary}\nalerts: {alerts:?}");
    let restart = alerts
        .iter()
        .find(|a| a["code"] == "producer_restarted")
        .context("restart not reported")?;
    assert_eq!(u(restart, "arg1"), u64::from(c_pid(&feed)?));
    assert!(alerts.iter().any(|a| a["code"] == "producer_resumed"));
    // Every record A published before dying, then all of C's: nothing lost, nothing twice.
    assert_eq!(u(&summary, "accepted"), u(&c, "first_seq") + u(&c, "sent"));
    assert_eq!(u(&summary, "first_seq"), 0);
    assert_eq!(
        u(&summary, "last_seq"),
        u(&c, "first_seq") + u(&c, "sent") - 1
    );
    assert_eq!(u(&summary, "duplicates"), 0);
    assert_eq!(u(&summary, "seq_jumps"), 0);
    assert_eq!(u(&summary, "gaps"), 0);
    assert_eq!(summary["epoch_digest"], c["digest"], "C's records differ");
    Ok(())
}

fn c_pid(feed: &std::path::Path) -> Result<u32> {
    let v = run_json(&["stat", "--ring", s(feed), "--json"])?;
    Ok(u(&v, "producer_pid") as u32)
}

#[test]
fn a_file_with_a_wrong_magic_is_refused_with_a_clear_error() -> Result<()> {
    let dir = ring_dir();
    let feed = dir.path().join("feed");
    std::fs::write(&feed, vec![0x5a; 4096 + 64 * 16])?;
    let out = run(&["consume", "--feed", s(&feed), "--wait-ms", "0"])?;
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{err}");
    assert!(
        err.contains("not a Brink ring file") && err.contains(s(&feed)),
        "{err}"
    );
    let out = run(&["stat", "--ring", s(&feed)])?;
    assert_eq!(out.status.code(), Some(2));
    Ok(())
}

#[test]
fn a_truncated_file_is_refused_naming_found_and_expected_sizes() -> Result<()> {
    let dir = ring_dir();
    let feed = dir.path().join("feed");
    run_json(&[
        "publish",
        "--feed",
        s(&feed),
        "--create",
        "--capacity",
        "1024",
        "--synthetic",
        "1",
        "--limit",
        "10",
        "--json",
    ])?;
    let full = std::fs::metadata(&feed)?.len();
    std::fs::OpenOptions::new()
        .write(true)
        .open(&feed)?
        .set_len(full / 2)?;
    let out = run(&["consume", "--feed", s(&feed), "--wait-ms", "0"])?;
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{err}");
    assert!(
        err.contains(&format!("is {} bytes, expected {full}", full / 2)),
        "{err}"
    );
    Ok(())
}

/// xorshift64*: deterministic bytes without a dependency.
fn random_words(seed: u64, n: usize) -> Vec<u64> {
    let mut x = seed;
    (0..n)
        .map(|_| {
            x ^= x >> 12;
            x ^= x << 25;
            x ^= x >> 27;
            x.wrapping_mul(0x2545_f491_4f6c_dd1d)
        })
        .collect()
}

/// A ring whose `slots` records are random; `valid_commit` keeps commit words correct so that the
/// payload reaches the value checks. The header says all were published and the ring is closed.
fn random_ring(path: &std::path::Path, slots: u64, valid_commit: bool, seed: u64) -> Result<()> {
    drop(brink::shm::Producer::create(
        path,
        brink::shm::RingKind::Feed,
        slots,
    )?);
    let mut f = std::fs::OpenOptions::new().write(true).open(path)?;
    let words = random_words(seed, slots as usize * 8);
    let mut bytes = Vec::with_capacity(words.len() * 8);
    for (i, w) in words.iter().enumerate() {
        let (slot, word) = (i / 8, i % 8);
        let mut w = *w;
        if valid_commit && word == 0 {
            w = slot as u64 + 1;
        }
        if valid_commit && word == 2 {
            // Mostly known tags, some unknown; random instruments and payload.
            w = (w & !0xff) | (w % 9);
        }
        bytes.extend_from_slice(&w.to_le_bytes());
    }
    f.seek(SeekFrom::Start(4096))?;
    f.write_all(&bytes)?;
    f.seek(SeekFrom::Start(128))?;
    f.write_all(&slots.to_le_bytes())?;
    f.seek(SeekFrom::Start(400))?;
    f.write_all(&(slots + 1).to_le_bytes())?;
    Ok(())
}

#[test]
fn random_records_are_counted_rejections_never_a_crash() -> Result<()> {
    let dir = ring_dir();
    let feed = dir.path().join("feed");
    random_ring(&feed, 4096, true, 0x9e37_79b9_7f4a_7c15)?;
    let v = run_json(&[
        "consume",
        "--feed",
        s(&feed),
        "--instruments",
        "4",
        "--json",
    ])?;
    println!("{v}");
    assert_eq!(u(&v, "accepted") + u(&v, "rejected_total"), 4096);
    assert!(u(&v, "rejected_total") > 0);
    let r = &v["rejected"];
    assert!(
        u(r, "unknown_tag") > 0 && u(r, "unknown_instrument") > 0,
        "{r}"
    );
    assert_eq!(u(r, "torn"), 0);
    assert_eq!(v["closed"], true);
    let dump = run(&["dump", "--ring", s(&feed), "--json"])?;
    assert!(dump.status.success());
    assert_eq!(String::from_utf8_lossy(&dump.stdout).lines().count(), 4096);

    let garbage = dir.path().join("garbage");
    random_ring(&garbage, 4096, false, 42)?;
    let v = run_json(&[
        "consume",
        "--feed",
        s(&garbage),
        "--instruments",
        "4",
        "--json",
    ])?;
    println!("{v}");
    assert!(u(&v["rejected"], "torn") > 4000, "{v}");
    assert_eq!(v["closed"], true);
    assert!(run(&["dump", "--ring", s(&garbage)])?.status.success());
    Ok(())
}
