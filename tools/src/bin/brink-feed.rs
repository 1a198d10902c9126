//! `brink-feed`: publishes market data into a shared-memory feed ring, drains one with the
//! engine's ingest stage, and inspects rings.
//!
//! ```text
//! brink-feed publish --feed /dev/shm/brink-feed --create --synthetic 4 --limit 1000000
//! brink-feed publish --feed F --create --file trades.csv.gz --instrument-id 0 --price-decimals 2
//! brink-feed consume --feed F --instruments 4 --json
//! brink-feed dump --ring F --json
//! brink-feed stat --ring F
//! ```

use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::time::Duration;

use anyhow::{Context, Result, bail};
use brink::clock;
use brink::feed::{FileSource, Scaling, Synthetic, SyntheticConfig};
use brink::ingest::{FeedBody, Ingest, IngestConfig, IngestError, PollStatus, Reject};
use brink::shm::{
    self, DIGEST_SEED, Expect, Heartbeat, Input, Output, Producer, Record, RingFile, RingKind,
    alert_code,
};
use clap::{Args, Parser, Subcommand};
use serde_json::{Value, json};

/// Feed publisher, consumer and ring inspector.
#[derive(Debug, Parser)]
#[command(name = "brink-feed", version, about)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Publish records from a file or the synthetic generator into a feed ring.
    Publish(PublishArgs),
    /// Drain a feed ring through the engine's ingest stage and report what arrived.
    Consume(ConsumeArgs),
    /// Print the records of a feed or orders ring.
    Dump(DumpArgs),
    /// Print a ring's header, cursors, lag and heartbeat ages.
    Stat(StatArgs),
}

#[derive(Debug, Args)]
struct PublishArgs {
    /// Ring file (default: brink-feed in /dev/shm, or the temp dir without /dev/shm).
    #[arg(long)]
    feed: Option<PathBuf>,
    /// Create a fresh ring (atomically replacing any file at the path) instead of attaching to
    /// an existing one and resuming at its producer cursor.
    #[arg(long)]
    create: bool,
    /// Capacity in records when creating (a power of two).
    #[arg(long, default_value_t = 65_536)]
    capacity: u64,
    /// Market-data file to replay (Tardis trades/quotes CSV or .gz, Binance kline CSV or .zip).
    #[arg(long, conflicts_with = "synthetic")]
    file: Option<PathBuf>,
    /// Generate a synthetic market over this many instruments (ids 0..N).
    #[arg(long)]
    synthetic: Option<u32>,
    /// Seed of the synthetic generator.
    #[arg(long, default_value_t = 1)]
    seed: u64,
    /// Wire instrument id of the replayed file.
    #[arg(long, default_value_t = 0)]
    instrument_id: u32,
    /// Price decimals of the replayed file's instrument (and of synthetic instruments).
    #[arg(long, default_value_t = 2)]
    price_decimals: u8,
    /// Quantity decimals.
    #[arg(long, default_value_t = 3)]
    qty_decimals: u8,
    /// Stop after this many data records.
    #[arg(long)]
    limit: Option<u64>,
    /// Records per second (absolute-deadline pacing, each record stamped with its due time);
    /// as fast as possible (stamped when written) when absent.
    #[arg(long)]
    rate: Option<f64>,
    /// Publish a heartbeat record after this long without a record (0: never); the header
    /// heartbeat is refreshed regardless.
    #[arg(long, default_value_t = 100)]
    heartbeat_ms: u64,
    /// Leave the ring open at the end (do not mark it closed).
    #[arg(long)]
    no_close: bool,
    /// Print the summary as one JSON object.
    #[arg(long)]
    json: bool,
}

#[derive(Debug, Args)]
struct ConsumeArgs {
    /// Ring file.
    #[arg(long)]
    feed: Option<PathBuf>,
    /// Stop after this many slots (accepted + rejected); otherwise stop when the producer closes
    /// the ring.
    #[arg(long)]
    expect: Option<u64>,
    /// Known instruments (ids 0..N).
    #[arg(long, default_value_t = 1)]
    instruments: u32,
    /// Price band around the last mark, in basis points (0: off).
    #[arg(long, default_value_t = 5_000)]
    band_bps: u32,
    /// Report the producer stale after this long without a heartbeat.
    #[arg(long, default_value_t = 1_000)]
    stale_ms: u64,
    /// Give up (exit code 3) after this many seconds.
    #[arg(long, default_value_t = 120)]
    timeout_s: u64,
    /// Wait this long for the ring file to appear.
    #[arg(long, default_value_t = 10_000)]
    wait_ms: u64,
    /// Print each ingest alert as a JSON line as it happens.
    #[arg(long)]
    events: bool,
    /// Print the summary as one JSON object.
    #[arg(long)]
    json: bool,
}

#[derive(Debug, Args)]
struct DumpArgs {
    /// Ring file.
    #[arg(long)]
    ring: PathBuf,
    /// One JSON object per line.
    #[arg(long)]
    json: bool,
    /// First sequence number (default: the oldest still in the ring).
    #[arg(long)]
    from: Option<u64>,
    /// At most this many records.
    #[arg(long)]
    count: Option<u64>,
}

#[derive(Debug, Args)]
struct StatArgs {
    /// Ring file.
    #[arg(long)]
    ring: PathBuf,
    /// Print as one JSON object.
    #[arg(long)]
    json: bool,
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let outcome = match cli.command {
        Command::Publish(a) => publish(a),
        Command::Consume(a) => consume(a),
        Command::Dump(a) => dump(a),
        Command::Stat(a) => stat(a),
    };
    match outcome {
        Ok(code) => code,
        Err(e) => {
            eprintln!("brink-feed: {e:#}");
            ExitCode::from(2)
        }
    }
}

fn default_feed(path: Option<PathBuf>) -> PathBuf {
    path.unwrap_or_else(|| shm::default_dir().join("brink-feed"))
}

// ---------------------------------------------------------------------------------------------
// publish

/// Where records come from.
enum Source {
    File(FileSource),
    Synthetic(Synthetic),
}

impl Source {
    fn next(&mut self, errors: &mut u64) -> Option<Input> {
        match self {
            Source::Synthetic(s) => s.next(),
            Source::File(f) => loop {
                match f.next()? {
                    Ok(input) => return Some(input),
                    Err(e) => {
                        *errors += 1;
                        if *errors <= 5 {
                            eprintln!("brink-feed: row refused: {e}");
                        }
                    }
                }
            },
        }
    }
}

fn publish(a: PublishArgs) -> Result<ExitCode> {
    let path = default_feed(a.feed);
    if a.price_decimals > 18 || a.qty_decimals > 18 {
        bail!(
            "--price-decimals and --qty-decimals must be at most 18 (an i64 holds 18 decimal digits)"
        );
    }
    let mut source = match (&a.file, a.synthetic) {
        (Some(file), _) => {
            let scaling = Scaling {
                instrument: a.instrument_id,
                price_decimals: a.price_decimals,
                qty_decimals: a.qty_decimals,
            };
            Source::File(FileSource::open(file, scaling)?)
        }
        (None, Some(n)) => Source::Synthetic(Synthetic::new(SyntheticConfig {
            instruments: n,
            seed: a.seed,
            price_decimals: a.price_decimals,
            qty_decimals: a.qty_decimals,
            ..SyntheticConfig::default()
        })),
        (None, None) => bail!("nothing to publish: pass --file PATH or --synthetic N"),
    };
    if let Some(rate) = a.rate
        && !(rate.is_finite() && rate > 0.0)
    {
        bail!("--rate must be a positive number of records per second, got {rate}");
    }
    let mut producer = if a.create {
        Producer::create(&path, RingKind::Feed, a.capacity)?
    } else {
        Producer::attach(&path, RingKind::Feed)
            .with_context(|| format!("cannot attach to {}", path.display()))?
    };
    let first_seq = producer.published();
    let heartbeat_ns = a.heartbeat_ms.saturating_mul(1_000_000);
    let period_ns = a.rate.map(|r| 1e9 / r);
    let limit = a.limit.unwrap_or(u64::MAX);
    let mut digest = DIGEST_SEED;
    let (mut data, mut heartbeats, mut source_errors) = (0u64, 0u64, 0u64);
    let start = clock::now_ns();
    let mut last_push = start;
    while data < limit {
        // Paced: the record is stamped with the time it was due, so lateness shows downstream.
        let mut due = None;
        if let Some(period) = period_ns {
            let deadline = start + (data as f64 * period) as u64;
            due = Some(deadline);
            let mut now = clock::now_ns();
            while now < deadline {
                if heartbeat_ns > 0 && now - last_push >= heartbeat_ns {
                    let hb = Input::Heartbeat(Heartbeat {
                        sent: producer.published(),
                        wait_ns: producer.wait_ns(),
                    });
                    digest = push(&mut producer, &hb, None, digest);
                    heartbeats += 1;
                    last_push = now;
                }
                let left = deadline - now;
                if left > 200_000 {
                    producer.heartbeat();
                    std::thread::sleep(Duration::from_nanos(
                        (left - 100_000).min(heartbeat_ns.max(1_000_000)),
                    ));
                } else {
                    std::hint::spin_loop();
                }
                now = clock::now_ns();
            }
        }
        let Some(input) = source.next(&mut source_errors) else {
            break;
        };
        digest = push(&mut producer, &input, due, digest);
        data += 1;
        last_push = clock::now_ns();
    }
    let elapsed_ns = clock::now_ns() - start;
    let sent = producer.published() - first_seq;
    let wait_ns = producer.wait_ns();
    let rounded = match &source {
        Source::File(f) => f.rounded(),
        Source::Synthetic(_) => 0,
    };
    if !a.no_close {
        producer.close();
    }
    let summary = json!({
        "feed": path.display().to_string(),
        "sent": sent,
        "data": data,
        "heartbeats": heartbeats,
        "first_seq": first_seq,
        "digest": format!("{digest:#018x}"),
        "source_errors": source_errors,
        "rounded": rounded,
        "wait_ns": wait_ns,
        "elapsed_ns": elapsed_ns,
        "rate_per_s": rate(sent, elapsed_ns),
    });
    print_summary(&summary, a.json)?;
    Ok(ExitCode::SUCCESS)
}

/// Publishes `input`, stamped with `due` when given (else with the time of writing), and folds
/// it into `digest`.
fn push(producer: &mut Producer, input: &Input, due: Option<u64>, digest: u64) -> u64 {
    let mut record = input.encode();
    let seq = match due {
        Some(ns) => producer.push_at(record, ns),
        None => producer.push(record),
    };
    record.commit = seq + 1;
    record.fold_digest(digest)
}

fn rate(n: u64, elapsed_ns: u64) -> f64 {
    if elapsed_ns == 0 {
        0.0
    } else {
        n as f64 * 1e9 / elapsed_ns as f64
    }
}

fn print_summary(v: &Value, as_json: bool) -> Result<()> {
    let mut out = std::io::stdout().lock();
    if as_json {
        writeln!(out, "{v}")?;
    } else if let Value::Object(map) = v {
        for (k, val) in map {
            writeln!(out, "{k:>16}: {val}")?;
        }
    }
    out.flush()?;
    Ok(())
}

// ---------------------------------------------------------------------------------------------
// consume

fn open_ingest(path: &Path, config: IngestConfig, wait_ms: u64) -> Result<Ingest> {
    let deadline = clock::now_ns() + wait_ms * 1_000_000;
    loop {
        match Ingest::open(path, config) {
            Ok(i) => return Ok(i),
            Err(IngestError::Shm(shm::ShmError::Io { .. })) if clock::now_ns() < deadline => {
                std::thread::sleep(Duration::from_millis(5));
            }
            Err(e) => return Err(e.into()),
        }
    }
}

fn consume(a: ConsumeArgs) -> Result<ExitCode> {
    let path = default_feed(a.feed);
    let config = IngestConfig {
        instruments: a.instruments,
        band_bps: a.band_bps,
        stale_after_ns: a.stale_ms.max(1) * 1_000_000,
        restart_check_ns: 50_000_000,
        ..IngestConfig::default()
    };
    let mut ingest = open_ingest(&path, config, a.wait_ms)?;
    let mut latency = hdrhistogram::Histogram::<u64>::new_with_bounds(1, 60_000_000_000, 3)?;
    let mut digest = DIGEST_SEED;
    let mut epoch_digest = DIGEST_SEED;
    let (mut heartbeats, mut duplicates, mut seq_jumps) = (0u64, 0u64, 0u64);
    let mut last_seq: Option<u64> = None;
    let mut first_seq: Option<u64> = None;
    let mut alert_lines: Vec<Value> = Vec::new();
    let start = clock::now_ns();
    let timeout_ns = a.timeout_s.saturating_mul(1_000_000_000);
    let mut idle_rounds = 0u32;
    let mut last_data_ns = start;
    const QUIET_NS: u64 = 20_000_000;
    let (closed, timed_out) = loop {
        let status = ingest.poll(1024, |event| match event.body {
            FeedBody::Input(input) => {
                let mut record = input.encode();
                record.commit = event.seq + 1;
                digest = record.fold_digest(digest);
                epoch_digest = record.fold_digest(epoch_digest);
                match last_seq {
                    Some(last) if event.seq <= last => duplicates += 1,
                    Some(last) if event.seq != last + 1 => seq_jumps += 1,
                    _ => {}
                }
                first_seq.get_or_insert(event.seq);
                last_seq = Some(event.seq);
                if matches!(input, Input::Heartbeat(_)) {
                    heartbeats += 1;
                }
                let _ = latency.record(event.receive_ns.saturating_sub(event.publish_ns).max(1));
            }
            FeedBody::Alert(alert) => {
                if alert.code == alert_code::PRODUCER_RESTARTED {
                    epoch_digest = DIGEST_SEED;
                    // A new file starts over at its own position; the same file continues.
                    if last_seq.is_some_and(|last| event.seq <= last) {
                        last_seq = None;
                    }
                }
                alert_lines.push(json!({
                    "event": "alert",
                    "code": alert_code::name(alert.code),
                    "arg0": alert.arg0,
                    "arg1": alert.arg1,
                    "seq": event.seq,
                }));
            }
        });
        if a.events && !alert_lines.is_empty() {
            let mut out = std::io::stdout().lock();
            for line in alert_lines.drain(..) {
                writeln!(out, "{line}")?;
            }
            out.flush()?;
        }
        alert_lines.clear();
        let c = ingest.counters();
        if let Some(n) = a.expect
            && c.accepted + c.rejected.total() >= n
        {
            break (false, false);
        }
        match status {
            PollStatus::Closed => break (true, false),
            PollStatus::Data(_) => {
                idle_rounds = 0;
                last_data_ns = clock::now_ns();
            }
            PollStatus::Empty | PollStatus::Stale => {
                idle_rounds = idle_rounds.saturating_add(1);
                if clock::now_ns() - start > timeout_ns {
                    break (false, true);
                }
                // Spin, then yield while the stream is recent, then nap once it has been quiet
                // for a while (keeps latency low while data flows, the CPU free when it does not).
                if idle_rounds <= 1_000 {
                    std::hint::spin_loop();
                } else if clock::now_ns() - last_data_ns < QUIET_NS {
                    std::thread::yield_now();
                } else {
                    std::thread::sleep(Duration::from_micros(100));
                }
            }
        }
    };
    let elapsed_ns = clock::now_ns() - start;
    let c = ingest.counters();
    let rejected: serde_json::Map<String, Value> = Reject::ALL
        .iter()
        .map(|r| (r.name().to_string(), json!(c.rejected.get(*r))))
        .collect();
    let summary = json!({
        "feed": path.display().to_string(),
        "accepted": c.accepted,
        "heartbeats": heartbeats,
        "rejected_total": c.rejected.total(),
        "rejected": rejected,
        "gaps": c.gaps,
        "gap_records": c.gap_records,
        "stale": c.stale,
        "resumed": c.resumed,
        "restarts": c.restarts,
        "alerts": c.alerts,
        "duplicates": duplicates,
        "seq_jumps": seq_jumps,
        "first_seq": first_seq,
        "last_seq": last_seq,
        "digest": format!("{digest:#018x}"),
        "epoch_digest": format!("{epoch_digest:#018x}"),
        "closed": closed,
        "timed_out": timed_out,
        "elapsed_ns": elapsed_ns,
        "rate_per_s": rate(c.accepted + c.rejected.total(), elapsed_ns),
        "latency_ns": {
            "p50": latency.value_at_quantile(0.5),
            "p99": latency.value_at_quantile(0.99),
            "p999": latency.value_at_quantile(0.999),
            "max": latency.max(),
        },
    });
    print_summary(&summary, a.json)?;
    Ok(if timed_out {
        ExitCode::from(3)
    } else {
        ExitCode::SUCCESS
    })
}

// ---------------------------------------------------------------------------------------------
// dump and stat

fn record_json(seq: u64, kind: RingKind, r: &Record) -> Value {
    let base = json!({ "seq": seq, "commit": r.commit, "publish_ns": r.publish_ns, "tag": r.tag });
    let body = match kind {
        RingKind::Feed => match Input::decode(r) {
            Ok(input) => input_json(&input),
            Err(e) => json!({ "kind": "invalid", "error": e.to_string() }),
        },
        RingKind::Orders => match Output::decode(r) {
            Ok(out) => output_json(&out),
            Err(e) => json!({ "kind": "invalid", "error": e.to_string() }),
        },
    };
    let mut merged = base;
    if let (Value::Object(m), Value::Object(b)) = (&mut merged, body) {
        m.extend(b);
    }
    merged
}

fn input_json(input: &Input) -> Value {
    match *input {
        Input::Tick(t) => json!({"kind": "tick", "instrument": t.instrument, "mark_px": t.mark_px,
            "index_px": t.index_px, "bid_px": t.bid_px, "bid_qty": t.bid_qty, "ask_px": t.ask_px,
            "ask_qty": t.ask_qty}),
        Input::Fill(f) => json!({"kind": "fill", "account": f.account, "instrument": f.instrument,
            "qty": f.qty, "price_px": f.price_px, "fee_money": f.fee_money,
            "liquidation_order_id": f.liquidation_order_id}),
        Input::Collateral(c) => json!({"kind": "collateral", "account": c.account,
            "amount_money": c.amount_money}),
        Input::Funding(f) => json!({"kind": "funding", "instrument": f.instrument,
            "rate_e9": f.rate_e9}),
        Input::Status(s) => json!({"kind": "status", "instrument": s.instrument,
            "state": s.state.name(), "settle_px": s.settle_px}),
        Input::Heartbeat(h) => json!({"kind": "heartbeat", "sent": h.sent, "wait_ns": h.wait_ns}),
    }
}

fn output_json(out: &Output) -> Value {
    match *out {
        Output::MarginCall(m) => json!({"kind": "margin_call", "account": m.account,
            "ratio_e9": m.ratio_e9, "equity_money": m.equity_money, "mm_money": m.mm_money,
            "input_seq": m.input_seq}),
        Output::Liquidation(l) => json!({"kind": "liquidation", "order_id": l.order_id,
            "account": l.account, "instrument": l.instrument, "side": l.side.name(), "qty": l.qty,
            "limit_px": l.limit_px, "input_seq": l.input_seq}),
        Output::Adl(d) => json!({"kind": "adl", "order_id": d.order_id, "account": d.account,
            "instrument": d.instrument, "side": d.side.name(), "qty": d.qty,
            "price_px": d.price_px, "bankrupt_account": d.bankrupt_account}),
        Output::Settlement(s) => json!({"kind": "settlement", "account": s.account,
            "instrument": s.instrument, "qty": s.qty, "price_px": s.price_px,
            "pnl_money": s.pnl_money, "input_seq": s.input_seq}),
        Output::Alert(al) => json!({"kind": "alert", "code": al.code,
            "name": alert_code::name(al.code), "arg0": al.arg0, "arg1": al.arg1}),
    }
}

fn dump(a: DumpArgs) -> Result<ExitCode> {
    let ring = RingFile::open(&a.ring, Expect::default())?;
    let h = ring.header();
    let oldest = h.producer_cursor.saturating_sub(h.capacity);
    let from = a.from.unwrap_or(oldest).max(oldest);
    let to = a.count.map_or(h.producer_cursor, |n| {
        from.saturating_add(n).min(h.producer_cursor)
    });
    let mut out = std::io::stdout().lock();
    for seq in from..to {
        let r = ring.read_raw(seq);
        let v = record_json(seq, h.kind, &r);
        if a.json {
            writeln!(out, "{v}")?;
        } else {
            writeln!(out, "{}", human(&v))?;
        }
    }
    out.flush()?;
    Ok(ExitCode::SUCCESS)
}

fn human(v: &Value) -> String {
    let Value::Object(m) = v else {
        return v.to_string();
    };
    let mut s = String::new();
    for (k, val) in m {
        if !s.is_empty() {
            s.push(' ');
        }
        match val {
            Value::String(t) => s.push_str(&format!("{k}={t}")),
            other => s.push_str(&format!("{k}={other}")),
        }
    }
    s
}

fn stat(a: StatArgs) -> Result<ExitCode> {
    let ring = RingFile::open(&a.ring, Expect::default())?;
    let h = ring.header();
    let now = clock::now_ns();
    let age = |t: u64| {
        if t == 0 {
            Value::Null
        } else {
            json!(now.saturating_sub(t))
        }
    };
    let v = json!({
        "ring": a.ring.display().to_string(),
        "kind": h.kind.name(),
        "layout_version": shm::LAYOUT_VERSION,
        "record_size": shm::RECORD_SIZE,
        "capacity": h.capacity,
        "created_wall_ns": h.created_wall_ns,
        "producer_pid": h.producer_pid,
        "consumer_pid": h.consumer_pid,
        "producer_cursor": h.producer_cursor,
        "consumer_cursor": h.consumer_cursor,
        "lag": h.producer_cursor.saturating_sub(h.consumer_cursor),
        "producer_heartbeat_age_ns": age(h.producer_heartbeat_ns),
        "consumer_heartbeat_age_ns": age(h.consumer_heartbeat_ns),
        "producer_wait_ns": h.producer_wait_ns,
        "closed": h.producer_closed != 0,
    });
    print_summary(&v, a.json)?;
    Ok(ExitCode::SUCCESS)
}
