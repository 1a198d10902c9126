//! The collector: the telemetry thread's side of every recorder link.
//!
//! It hands out [`Recorder`]s, requests snapshots by bumping the shared epoch, merges what the
//! recorders send into per-interval and cumulative histograms per hop, returns the emptied sets,
//! writes the interval log and produces [`Report`]s. It runs on its own unpinned thread
//! ([`Collector::run`] / [`Collector::spawn`]) and never blocks on a recorder's channel, so the
//! recorders' `try_send`/`try_recv` never touch a waker lock.
//!
//! Shutdown order: stop the stage threads (dropping a recorder sends its last snapshot), then set
//! the collector's stop flag. A recorder still alive at shutdown is asked for a snapshot and waited
//! for up to [`TelemetryConfig::shutdown_grace`].

use std::fs::File;
use std::io::{BufWriter, Write};
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, SystemTime};

use crossbeam::channel::{Receiver, Sender, TryRecvError, bounded};
use hdrhistogram::Histogram;

use super::error::TelemetryError;
use super::hop::{Hop, HopSet};
use super::log::IntervalLog;
use super::recorder::{Recorder, Snapshot, new_histogram};
use super::report::{Report, ReportRequest, ReportRow};
use crate::clock;

/// How the telemetry thread paces itself and where it writes.
#[derive(Clone, Debug)]
pub struct TelemetryConfig {
    /// Snapshot and interval-log period.
    pub interval: Duration,
    /// Period of the cumulative report passed to the callback with [`ReportCause::Interval`];
    /// `None` for no periodic report.
    pub report_every: Option<Duration>,
    /// Where to write the HdrHistogram interval log; `None` for no log.
    pub log_path: Option<PathBuf>,
    /// How long to wait at shutdown for recorders still alive to answer the last snapshot
    /// request. (When an interval closes, late snapshots are waited for a tenth of `interval`.)
    pub shutdown_grace: Duration,
}

impl Default for TelemetryConfig {
    fn default() -> Self {
        TelemetryConfig {
            interval: Duration::from_secs(1),
            report_every: None,
            log_path: None,
            shutdown_grace: Duration::from_secs(1),
        }
    }
}

/// Why a report was produced.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ReportCause {
    /// The configured report period elapsed.
    Interval,
    /// A [`ReportRequest`] was set (e.g. by SIGUSR1).
    Requested,
    /// The run ended.
    Shutdown,
}

/// Where the telemetry thread leaves, at every interval close, the report of the interval just
/// closed and the cumulative report (for an operator view such as `brink status`).
pub type LatestReports = Arc<Mutex<Option<(Report, Report)>>>;

/// The collector's end of one recorder link.
#[derive(Debug)]
struct Link {
    /// Stage name, for diagnostics.
    stage: &'static str,
    /// Full sets from the recorder.
    full_rx: Receiver<Snapshot>,
    /// Reset sets back to the recorder.
    spare_tx: Sender<Snapshot>,
    /// The last epoch for which a snapshot arrived.
    delivered_epoch: u64,
    /// False once the recorder's last snapshot arrived or its channel disconnected.
    open: bool,
}

/// Per-hop merged histograms and out-of-range counters.
#[derive(Debug)]
struct HopTotals {
    /// Invariant: `hists[h.index()]` holds hop `h`; all built by `new_histogram`.
    hists: Vec<Histogram<u64>>,
    clamped_high: [u64; Hop::COUNT],
    backwards: [u64; Hop::COUNT],
}

impl HopTotals {
    fn new() -> Result<HopTotals, TelemetryError> {
        Ok(HopTotals {
            hists: (0..Hop::COUNT)
                .map(|_| new_histogram())
                .collect::<Result<_, _>>()?,
            clamped_high: [0; Hop::COUNT],
            backwards: [0; Hop::COUNT],
        })
    }

    fn add(&mut self, other: &HopTotals) -> Result<(), TelemetryError> {
        for (mine, theirs) in self.hists.iter_mut().zip(&other.hists) {
            mine.add(theirs)?;
        }
        for i in 0..Hop::COUNT {
            self.clamped_high[i] += other.clamped_high[i];
            self.backwards[i] += other.backwards[i];
        }
        Ok(())
    }

    fn reset(&mut self) {
        self.hists.iter_mut().for_each(Histogram::reset);
        self.clamped_high = [0; Hop::COUNT];
        self.backwards = [0; Hop::COUNT];
    }

    fn report(&self, hops: HopSet, elapsed_ns: u64) -> Report {
        let rows = hops
            .iter()
            .filter(|h| !self.hists[h.index()].is_empty())
            .map(|h| ReportRow {
                name: h.name().to_owned(),
                stats: super::report::HopStats::from_histogram(&self.hists[h.index()]),
                clamped_high: self.clamped_high[h.index()],
                backwards: self.backwards[h.index()],
            })
            .collect();
        Report { elapsed_ns, rows }
    }
}

/// Merges recorder snapshots into interval and cumulative per-hop histograms.
#[derive(Debug)]
pub struct Collector {
    /// Snapshot requests; bumped here, read by every recorder.
    epoch: Arc<AtomicU64>,
    links: Vec<Link>,
    /// Union of the hops of every recorder handed out: the topology's hops.
    hops: HopSet,
    /// Samples merged since the last `close_interval`.
    interval: HopTotals,
    /// Samples of every closed interval.
    cumulative: HopTotals,
    /// Records dropped by recorders because they did not own the hop (wiring mistakes).
    unowned: u64,
    /// Clock at the start of the run (throughput denominator).
    run_start_ns: u64,
    /// Clock at the start of the open interval.
    interval_start_ns: u64,
    /// Where the latest reports are left, if anyone reads them.
    latest: Option<LatestReports>,
}

impl Collector {
    /// A collector with no recorders yet.
    pub fn new() -> Result<Collector, TelemetryError> {
        let now = clock::now_ns();
        Ok(Collector {
            epoch: Arc::new(AtomicU64::new(0)),
            links: Vec::new(),
            hops: HopSet::EMPTY,
            interval: HopTotals::new()?,
            cumulative: HopTotals::new()?,
            unowned: 0,
            run_start_ns: now,
            interval_start_ns: now,
            latest: None,
        })
    }

    /// A recorder for a stage that times `hops`; move it into the stage's thread. Allocates its
    /// two histogram sets now, so the stage never allocates for telemetry.
    pub fn recorder(
        &mut self,
        stage: &'static str,
        hops: HopSet,
    ) -> Result<Recorder, TelemetryError> {
        // Capacity 2 each: two sets exist per link, so neither side's try_send finds a full
        // channel (see the recorder module's invariant).
        let (full_tx, full_rx) = bounded(2);
        let (spare_tx, spare_rx) = bounded(2);
        let (recorder, spare) =
            Recorder::new(stage, hops, Arc::clone(&self.epoch), full_tx, spare_rx)?;
        // Cannot fail: the channel is empty and its receiver is alive inside `recorder`.
        let _ = spare_tx.try_send(spare);
        self.links.push(Link {
            stage,
            full_rx,
            spare_tx,
            delivered_epoch: self.epoch.load(Ordering::Relaxed),
            open: true,
        });
        self.hops = self.hops.union(hops);
        Ok(recorder)
    }

    /// Leaves the interval and cumulative reports in `slot` at every interval close.
    pub fn share_latest(&mut self, slot: LatestReports) {
        self.latest = Some(slot);
    }

    /// The hops of every recorder handed out: the rows a report can have.
    pub fn hops(&self) -> HopSet {
        self.hops
    }

    /// Stages whose recorder is still alive.
    pub fn open_stages(&self) -> impl Iterator<Item = &'static str> + '_ {
        self.links.iter().filter(|l| l.open).map(|l| l.stage)
    }

    /// Records dropped because a recorder was asked to record a hop it does not own.
    pub fn unowned_records(&self) -> u64 {
        self.unowned
    }

    /// Asks every recorder for a snapshot at its next [`Recorder::poll`].
    pub fn request_snapshots(&mut self) {
        // Relaxed: see Recorder::poll; the snapshot data travels through the channels.
        self.epoch.fetch_add(1, Ordering::Relaxed);
    }

    /// Whether every live recorder has answered the latest request.
    pub fn answered(&self) -> bool {
        let epoch = self.epoch.load(Ordering::Relaxed);
        self.links
            .iter()
            .all(|l| !l.open || l.delivered_epoch >= epoch)
    }

    /// Merges every snapshot waiting in the links into the open interval and returns the emptied
    /// sets. Never blocks. Returns the number of snapshots merged.
    pub fn collect(&mut self) -> Result<usize, TelemetryError> {
        let epoch = self.epoch.load(Ordering::Relaxed);
        let mut merged = 0;
        for link in &mut self.links {
            if !link.open {
                continue;
            }
            loop {
                let mut snap = match link.full_rx.try_recv() {
                    Ok(s) => s,
                    Err(TryRecvError::Empty) => break,
                    Err(TryRecvError::Disconnected) => {
                        link.open = false;
                        break;
                    }
                };
                for slot in snap.slots.iter_mut() {
                    let i = slot.hop.index();
                    self.interval.hists[i].add(&slot.hist)?;
                    self.interval.clamped_high[i] += slot.clamped_high;
                    self.interval.backwards[i] += slot.backwards;
                    slot.reset();
                }
                self.unowned += snap.unowned;
                link.delivered_epoch = epoch;
                merged += 1;
                if snap.last {
                    link.open = false;
                    break;
                }
                // Ignored error: the recorder is gone; its last snapshot is still queued (or it
                // was dropped with the collector's end closed) and the next loop turn reads it.
                let _ = link.spare_tx.try_send(snap);
            }
        }
        Ok(merged)
    }

    /// Closes the open interval at `now_ns`: folds it into the cumulative totals and returns the
    /// interval's report.
    pub fn close_interval(&mut self, now_ns: u64) -> Result<Report, TelemetryError> {
        let length_ns = now_ns.saturating_sub(self.interval_start_ns);
        let report = self.interval.report(self.hops, length_ns);
        self.cumulative.add(&self.interval)?;
        self.interval.reset();
        self.interval_start_ns = now_ns;
        Ok(report)
    }

    /// [`Collector::close_interval`], first writing one log line per hop of the topology (empty
    /// ones included, so the log's timeline stays regular).
    pub fn close_interval_logged<W: Write>(
        &mut self,
        now_ns: u64,
        log: &mut IntervalLog<W>,
    ) -> Result<Report, TelemetryError> {
        let start_ns = self.interval_start_ns;
        let offset = Duration::from_nanos(start_ns.saturating_sub(self.run_start_ns));
        let length = Duration::from_nanos(now_ns.saturating_sub(start_ns));
        for hop in self.hops.iter() {
            log.write(
                hop.name(),
                &self.interval.hists[hop.index()],
                offset,
                length,
            )?;
        }
        self.close_interval(now_ns)
    }

    /// The report over every closed interval: from the start of the run to the last
    /// [`Collector::close_interval`]. Samples of the open interval are not in it yet.
    pub fn cumulative(&self) -> Report {
        self.cumulative.report(
            self.hops,
            self.interval_start_ns.saturating_sub(self.run_start_ns),
        )
    }

    /// The cumulative histogram of `hop` (closed intervals only).
    pub fn cumulative_histogram(&self, hop: Hop) -> &Histogram<u64> {
        &self.cumulative.hists[hop.index()]
    }

    /// The telemetry loop: collects every few ms, closes an interval (and writes the log) every
    /// `config.interval`, and returns the final cumulative report once `stop` is set and the
    /// recorders have delivered their last snapshots. `on_report` gets the cumulative report at
    /// the first interval close after each `config.report_every`, and whenever `request` is set
    /// (the interval is then closed early, so the report includes samples up to the request).
    pub fn run(
        mut self,
        config: &TelemetryConfig,
        stop: &AtomicBool,
        request: &ReportRequest,
        mut on_report: impl FnMut(ReportCause, &Report),
    ) -> Result<Report, TelemetryError> {
        let start_ns = clock::now_ns();
        self.run_start_ns = start_ns;
        self.interval_start_ns = start_ns;
        let mut log = match &config.log_path {
            Some(path) => {
                let file = File::create(path).map_err(TelemetryError::LogWrite)?;
                Some(IntervalLog::new(
                    BufWriter::new(file),
                    SystemTime::now(),
                    "brink latency telemetry",
                )?)
            }
            None => None,
        };
        let interval_ns = duration_ns(config.interval).max(1_000_000);
        let grace_ns = interval_ns / 10;
        let tick = Duration::from_nanos((interval_ns / 20).clamp(1_000_000, 50_000_000));
        let report_ns = config.report_every.map(|d| duration_ns(d).max(1_000_000));
        let mut next_close = start_ns + interval_ns;
        let mut next_report = report_ns.map(|r| start_ns + r);
        let mut pending_close: Option<u64> = None;
        let (mut want_periodic, mut want_requested) = (false, false);
        loop {
            // Relaxed: the flag carries no data; the recorders' data comes through the channels.
            let stopping = stop.load(Ordering::Relaxed);
            self.collect()?;
            let now = clock::now_ns();
            if let (Some(r), Some(next)) = (report_ns, next_report.as_mut())
                && now >= *next
            {
                want_periodic = true;
                while *next <= now {
                    *next += r;
                }
            }
            if request.take() {
                // Close the interval early so the report includes what was recorded until now.
                want_requested = true;
                if pending_close.is_none() {
                    self.request_snapshots();
                    pending_close = Some(now);
                }
            }
            if pending_close.is_none() && now >= next_close {
                self.request_snapshots();
                pending_close = Some(now);
                while next_close <= now {
                    next_close += interval_ns;
                }
            }
            if let Some(at) = pending_close
                && (self.answered() || now.saturating_sub(at) >= grace_ns)
            {
                self.close_with(at, log.as_mut())?;
                pending_close = None;
                if std::mem::take(&mut want_periodic) {
                    on_report(ReportCause::Interval, &self.cumulative());
                }
                if std::mem::take(&mut want_requested) {
                    on_report(ReportCause::Requested, &self.cumulative());
                }
            }
            if stopping {
                break;
            }
            std::thread::sleep(tick);
        }
        // Shutdown: recorders that are still alive are asked for a snapshot; dropped ones have
        // queued their last one already.
        self.request_snapshots();
        let deadline = clock::now_ns() + duration_ns(config.shutdown_grace);
        loop {
            self.collect()?;
            if self.answered() || clock::now_ns() >= deadline {
                break;
            }
            std::thread::sleep(Duration::from_millis(1));
        }
        let end = clock::now_ns();
        self.close_with(end, log.as_mut())?;
        let report = self.cumulative();
        on_report(ReportCause::Shutdown, &report);
        Ok(report)
    }

    fn close_with<W: Write>(
        &mut self,
        now_ns: u64,
        log: Option<&mut IntervalLog<W>>,
    ) -> Result<Report, TelemetryError> {
        let report = match log {
            Some(log) => {
                let report = self.close_interval_logged(now_ns, log)?;
                log.flush()?;
                report
            }
            None => self.close_interval(now_ns)?,
        };
        if let Some(slot) = &self.latest
            && let Ok(mut latest) = slot.lock()
        {
            *latest = Some((report.clone(), self.cumulative()));
        }
        Ok(report)
    }

    /// Runs [`Collector::run`] on a new unpinned thread named `brink-telemetry`.
    pub fn spawn(
        self,
        config: TelemetryConfig,
        stop: Arc<AtomicBool>,
        request: ReportRequest,
        on_report: impl FnMut(ReportCause, &Report) + Send + 'static,
    ) -> Result<JoinHandle<Result<Report, TelemetryError>>, TelemetryError> {
        std::thread::Builder::new()
            .name("brink-telemetry".into())
            .spawn(move || self.run(&config, &stop, &request, on_report))
            .map_err(TelemetryError::Spawn)
    }
}

// Recorders move into stage threads; the collector moves into the telemetry thread.
const _: () = {
    const fn assert_send<T: Send>() {}
    assert_send::<Recorder>();
    assert_send::<Collector>();
};

fn duration_ns(d: Duration) -> u64 {
    u64::try_from(d.as_nanos()).unwrap_or(u64::MAX)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::telemetry::log::read_interval_log;
    use std::sync::Barrier;

    #[test]
    fn hand_off_across_threads_loses_nothing() {
        let mut collector = Collector::new().unwrap();
        let hops = HopSet::of(&[Hop::Risk, Hop::E2e]);
        let mut recorder = collector.recorder("risk", hops).unwrap();
        let n: u64 = 300_000;
        let barrier = Arc::new(Barrier::new(2));
        let b = Arc::clone(&barrier);
        let stage = std::thread::spawn(move || {
            b.wait();
            let mut handed = 0u64;
            for i in 0..n {
                recorder.record(Hop::Risk, 1 + i % 5_000);
                if i.is_multiple_of(3) {
                    recorder.record(Hop::E2e, 10 + i % 50_000);
                }
                if i.is_multiple_of(256) && recorder.poll() {
                    handed += 1;
                }
                if i == n / 2 {
                    // Half way, wait for one hand-off so the swap path is exercised for sure.
                    while !recorder.poll() {
                        std::thread::yield_now();
                    }
                    handed += 1;
                }
            }
            handed
        });
        barrier.wait();
        let mut requests = 0u64;
        while !stage.is_finished() {
            collector.collect().unwrap();
            collector.request_snapshots();
            requests += 1;
            let now = clock::now_ns();
            collector.close_interval(now).unwrap();
            std::thread::yield_now();
        }
        let handed = stage.join().unwrap();
        collector.collect().unwrap();
        assert_eq!(collector.open_stages().count(), 0, "last snapshot seen");
        collector.close_interval(clock::now_ns()).unwrap();
        let report = collector.cumulative();
        assert_eq!(report.get("risk").unwrap().count, n);
        assert_eq!(report.get("e2e").unwrap().count, n.div_ceil(3));
        assert!(report.get("feed").is_none());
        let mut exact = new_histogram().unwrap();
        for i in 0..n {
            exact.record(1 + i % 5_000).unwrap();
        }
        assert_eq!(*collector.cumulative_histogram(Hop::Risk), exact);
        assert!(
            handed >= 1 && requests >= 1,
            "{handed} hand-offs, {requests} requests"
        );
    }

    #[test]
    fn run_writes_a_log_and_reports_on_request_and_shutdown() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("run.hlog");
        let mut collector = Collector::new().unwrap();
        let mut ingest = collector
            .recorder("ingest", HopSet::of(&[Hop::Feed]))
            .unwrap();
        let mut fused = collector
            .recorder("risk+emit", HopSet::of(&[Hop::Risk, Hop::E2e]))
            .unwrap();
        assert_eq!(collector.hops().len(), 3);
        let config = TelemetryConfig {
            interval: Duration::from_millis(20),
            report_every: None,
            log_path: Some(path.clone()),
            shutdown_grace: Duration::from_secs(5),
        };
        let stop = Arc::new(AtomicBool::new(false));
        let request = ReportRequest::new();
        let (tx, rx) = crossbeam::channel::unbounded();
        let handle = collector
            .spawn(
                config,
                Arc::clone(&stop),
                request.clone(),
                move |cause, r| {
                    let _ = tx.send((cause, r.clone()));
                },
            )
            .unwrap();
        let mut recorded = 0u64;
        let t0 = clock::now_ns();
        while clock::now_ns() - t0 < 100_000_000 {
            let t = clock::now_ns();
            ingest.record(Hop::Feed, 100);
            fused.record_span(Hop::Risk, t, t + 250);
            fused.stamp_since(Hop::E2e, t);
            recorded += 1;
            ingest.poll();
            fused.poll();
            if recorded.is_multiple_of(64) {
                std::thread::sleep(Duration::from_micros(200));
            }
        }
        request.request();
        // The stages keep polling while idle, as they would in the engine.
        let t1 = clock::now_ns();
        let (cause, requested) = loop {
            ingest.poll();
            fused.poll();
            if let Ok(got) = rx.try_recv() {
                break got;
            }
            assert!(
                clock::now_ns() - t1 < 10_000_000_000,
                "no report 10 s after the request"
            );
            std::thread::sleep(Duration::from_micros(100));
        };
        assert_eq!(cause, ReportCause::Requested);
        let feed = requested.get("feed").unwrap().count;
        assert!(feed > 0 && feed <= recorded, "{feed} of {recorded}");
        drop(ingest);
        drop(fused);
        stop.store(true, Ordering::Relaxed);
        let report = handle.join().unwrap().unwrap();
        let last = rx.iter().last().unwrap();
        assert_eq!(last.0, ReportCause::Shutdown);
        assert_eq!(last.1, report);
        for hop in ["feed", "risk", "e2e"] {
            assert_eq!(report.get(hop).unwrap().count, recorded, "{hop}");
        }
        assert!(report.get("emit").is_none());
        let stats = report.get("risk").unwrap();
        assert_eq!((stats.p50_ns, stats.max_ns), (250, 250));
        // The log holds the same samples, one tag per hop of the topology.
        let contents = read_interval_log(&std::fs::read(&path).unwrap()).unwrap();
        let tags: Vec<_> = contents.tags.iter().map(|t| t.name.as_str()).collect();
        assert_eq!(tags, ["feed", "risk", "e2e"]);
        for t in &contents.tags {
            assert_eq!(t.total.len(), recorded, "{}", t.name);
            assert!(t.intervals >= 2, "{} intervals", t.intervals);
        }
    }
}
