//! The live engine: the three stages wired to a feed ring, an order ring and a journal, on the
//! topology a [`TopologyPlan`] chooses, with latency telemetry. `brink run`, `brink demo` and
//! `brink bench` start the engine through [`run`].

use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use crate::ingest::{Ingest, IngestConfig, IngestCounters, IngestError};
use crate::journal::{FsyncPolicy, JournalError};
use crate::recovery::{
    JournalProgress, RecoveryError, RestartConfig, RestartReport, SnapshotSettings, SnapshotWriter,
    WriterReport,
};
use crate::risk::shard::Shards;
use crate::risk::{RiskCounters, RiskEngine};
use crate::runtime::{LinkKind, Pipeline, RuntimeError, ShardPlan, StopSignal, TopologyPlan};
use crate::shm::ShmError;
use crate::stages::{EmitCounters, EmitSink, IngestSource, RiskStage};
use crate::telemetry::{
    Collector, HopSet, Report, ReportCause, ReportRequest, TelemetryConfig, TelemetryError,
};

/// Where the live engine reads and writes.
#[derive(Debug, Clone)]
pub struct LiveConfig {
    /// The feed ring file (created by the publisher).
    pub feed: PathBuf,
    /// The order ring file (created by the engine).
    pub orders: PathBuf,
    /// Capacity of the order ring, records (a power of two).
    pub orders_capacity: u64,
    /// The journal file.
    pub journal: PathBuf,
    /// When the journal syncs.
    pub fsync: FsyncPolicy,
    /// Capacity of each SPSC ring between stages.
    pub ring_capacity: usize,
    /// Ingest checks.
    pub ingest: IngestConfig,
    /// How long to wait for the feed file to appear.
    pub feed_wait: Duration,
    /// End when the publisher closes its ring (a replay) instead of waiting for a new one.
    pub stop_on_close: bool,
    /// Latency telemetry.
    pub telemetry: TelemetryConfig,
    /// Periodic snapshots of the risk state (`None`: none; a restart replays the whole journal).
    pub snapshot: Option<SnapshotSettings>,
    /// How many risk shards, and on which threads ([`ShardPlan::single`]: unsharded).
    pub shards: ShardPlan,
}

/// Why the live engine could not start or stopped with an error.
#[derive(Debug, thiserror::Error)]
pub enum LiveError {
    /// The feed ring could not be opened.
    #[error("feed {path}: {source}")]
    Feed {
        /// The feed file.
        path: PathBuf,
        /// Why.
        source: IngestError,
    },
    /// The order ring could not be created.
    #[error("order ring {path}: {source}")]
    Orders {
        /// The order ring file.
        path: PathBuf,
        /// Why.
        source: ShmError,
    },
    /// The journal could not be opened.
    #[error(transparent)]
    Journal(#[from] JournalError),
    /// The journal, the snapshot or the order ring could not be recovered.
    #[error(transparent)]
    Recovery(#[from] RecoveryError),
    /// Telemetry could not start.
    #[error("telemetry: {0}")]
    Telemetry(#[from] TelemetryError),
    /// A stage failed.
    #[error(transparent)]
    Runtime(#[from] RuntimeError),
}

/// Live views of the stages' counters, refreshed off the hot path while the engine runs.
#[derive(Debug, Clone, Default)]
pub struct LiveCounters {
    /// Ingest's counters.
    pub ingest: Arc<Mutex<IngestCounters>>,
    /// Risk's counters.
    pub risk: Arc<Mutex<RiskCounters>>,
    /// Emit's counters.
    pub emit: Arc<Mutex<EmitCounters>>,
    /// The risk stage's reload mailbox and gauges (see [`crate::ops`]).
    pub control: Arc<crate::ops::RiskControl>,
    /// The telemetry thread's latest interval and cumulative reports.
    pub latency: crate::telemetry::LatestReports,
}

/// What a finished run leaves.
#[derive(Debug)]
pub struct LiveSummary {
    /// The plan it ran on.
    pub plan: TopologyPlan,
    /// Ingest counters at the end.
    pub ingest: IngestCounters,
    /// Emit counters at the end.
    pub emit: EmitCounters,
    /// The risk shards as they ended (balances, fund, counters).
    pub engine: Option<Shards>,
    /// The cumulative latency report.
    pub latency: Report,
    /// Journal records recovered when it was opened (a restart).
    pub journal_recovered: usize,
    /// What the restart found and did.
    pub restart: RestartReport,
    /// What the snapshot writer did, when snapshots are configured.
    pub snapshots: Option<WriterReport>,
}

/// Runs the engine until `stop` is raised or (with `stop_on_close`) the feed ends.
/// `on_report` receives interval and requested latency reports from the telemetry thread.
pub fn run(
    config: &LiveConfig,
    engine: RiskEngine,
    plan: &TopologyPlan,
    stop: StopSignal,
    counters: &LiveCounters,
    report_request: ReportRequest,
    on_report: impl FnMut(ReportCause, &Report) + Send + 'static,
) -> Result<LiveSummary, LiveError> {
    run_on(
        config,
        LinkKind::Ring,
        engine,
        plan,
        stop,
        counters,
        report_request,
        on_report,
    )
}

/// As [`run`], with the stages connected by `links` (`brink bench --baseline` runs the same
/// engine over [`LinkKind::Channel`] to measure the rings against it).
#[allow(clippy::too_many_arguments)]
pub fn run_on(
    config: &LiveConfig,
    links: LinkKind,
    engine: RiskEngine,
    plan: &TopologyPlan,
    stop: StopSignal,
    counters: &LiveCounters,
    report_request: ReportRequest,
    on_report: impl FnMut(ReportCause, &Report) + Send + 'static,
) -> Result<LiveSummary, LiveError> {
    let restart = crate::recovery::restart(
        &RestartConfig {
            journal: config.journal.clone(),
            fsync: config.fsync,
            snapshot: config.snapshot.as_ref().map(|s| s.path.clone()),
            orders: config.orders.clone(),
            orders_capacity: config.orders_capacity,
        },
        Shards::split(engine, config.shards.count),
    )?;
    let (engine, journal, producer, position) = (
        restart.engine,
        restart.journal,
        restart.producer,
        restart.position,
    );
    let progress = Arc::new(JournalProgress::new(
        position.inputs,
        position.next_feed_seq,
    ));
    let mut ingest = open_feed(config, &stop)?;
    ingest.set_release_gate(progress.clone());
    ingest.resume_at(position.next_feed_seq);
    ingest.restore_seen(&position.seen);
    let snapshots = match &config.snapshot {
        Some(settings) => Some(
            SnapshotWriter::spawn(
                settings.clone(),
                &config.journal,
                progress.clone(),
                position,
            )
            .map_err(|source| {
                RecoveryError::Snapshot(crate::recovery::SnapshotError::Io {
                    path: settings.path.clone(),
                    source,
                })
            })?,
        ),
        None => None,
    };
    let (writer, mut taker) = match snapshots {
        Some((w, t)) => (Some(w), Some(t)),
        None => (None, None),
    };
    // Without a snapshot to start from, one is taken at once: a restart then never has to
    // replay from the configuration files, whose tiers and thresholds a reload may have changed.
    if let Some(taker) = taker.as_mut()
        && restart.report.snapshot_inputs.is_none()
    {
        taker.store_now(|w| engine.encode_state(w));
    }

    let mut collector = Collector::new()?;
    use crate::telemetry::Hop;
    // A hand-off between fused stages is a direct call, not a queue: that hop is not reported.
    use crate::runtime::Topology;
    let (ingest_risk, risk_emit) = match plan.topology {
        Topology::Threads3 => (true, true),
        Topology::FuseFirst2 => (false, true),
        Topology::FuseLast2 => (true, false),
        Topology::Fused1 => (false, false),
    };
    let risk_hops: &[Hop] = if ingest_risk {
        &[Hop::IngestRisk, Hop::Risk]
    } else {
        &[Hop::Risk]
    };
    let emit_hops: &[Hop] = if risk_emit {
        &[Hop::RiskEmit, Hop::Emit, Hop::E2e]
    } else {
        &[Hop::Emit, Hop::E2e]
    };
    let ingest_rec = collector.recorder("ingest", HopSet::of(&[Hop::Feed]))?;
    // Shard threads record the risk hops themselves; inline shards, the risk stage.
    let threaded = config.shards.threaded();
    let risk_rec = if threaded {
        None
    } else {
        Some(collector.recorder("risk", HopSet::of(risk_hops))?)
    };
    // A shard thread is always behind a ring: it records the hand-off to it as `ingest_risk`.
    let mut shard_recs = Vec::new();
    if threaded {
        for _ in 0..config.shards.count {
            let hops = HopSet::of(&[Hop::IngestRisk, Hop::Risk]);
            shard_recs.push(Some(collector.recorder("risk", hops)?));
        }
    }
    let emit_rec = collector.recorder("emit", HopSet::of(emit_hops))?;
    collector.share_latest(counters.latency.clone());
    let telemetry_stop = Arc::new(AtomicBool::new(false));
    let telemetry = collector.spawn(
        config.telemetry.clone(),
        telemetry_stop.clone(),
        report_request,
        on_report,
    )?;

    let finished_engine = Arc::new(Mutex::new(None));
    let source = IngestSource::new(
        ingest,
        Some(ingest_rec),
        config.stop_on_close,
        counters.ingest.clone(),
    );
    // Shard threads the plan does not place wait like the risk stage's thread.
    let risk_wait = plan.stage_wait();
    let mut stage = RiskStage::new(
        engine,
        risk_rec,
        finished_engine.clone(),
        counters.risk.clone(),
    )
    .on_threads(&config.shards, shard_recs, config.ring_capacity, risk_wait)
    .map_err(|source| RuntimeError::Spawn {
        thread: "brink-risk-<shard>".to_string(),
        source,
    })?
    .with_control(counters.control.clone());
    if let Some(taker) = taker {
        stage = stage.with_snapshots(taker);
    }
    let sink = EmitSink::new(journal, producer, Some(emit_rec), counters.emit.clone())
        .with_progress(progress)
        .with_control(counters.control.clone());
    let handle = Pipeline::new(source, stage, sink)
        .names(["ingest", "risk", "emit"])
        .ring_capacity(config.ring_capacity)
        .links(links)
        .stop_signal(stop)
        .launch(plan)?;
    let outcome = handle.join();
    let snapshots = writer.map(SnapshotWriter::join);
    // Recorders were dropped with their stages (sending their last snapshots): stop telemetry.
    telemetry_stop.store(true, Ordering::Release);
    let latency = match telemetry.join() {
        Ok(Ok(report)) => report,
        Ok(Err(e)) => return Err(e.into()),
        Err(_) => Report::default(),
    };
    outcome?;
    let engine = finished_engine.lock().ok().and_then(|mut e| e.take());
    let ingest = counters.ingest.lock().map(|c| *c).unwrap_or_default();
    let emit = counters.emit.lock().map(|c| c.clone()).unwrap_or_default();
    Ok(LiveSummary {
        plan: plan.clone(),
        ingest,
        emit,
        engine,
        latency,
        journal_recovered: restart.report.journal_records,
        restart: restart.report,
        snapshots,
    })
}

/// Opens the feed, waiting up to `feed_wait` for its file to appear (the publisher may start
/// after the engine).
fn open_feed(config: &LiveConfig, stop: &StopSignal) -> Result<Ingest, LiveError> {
    let deadline = std::time::Instant::now() + config.feed_wait;
    loop {
        match Ingest::open(&config.feed, config.ingest) {
            Ok(ingest) => return Ok(ingest),
            Err(IngestError::Shm(ShmError::Io { .. }))
                if std::time::Instant::now() < deadline && !stop.is_stopped() =>
            {
                std::thread::sleep(Duration::from_millis(5));
            }
            Err(source) => {
                return Err(LiveError::Feed {
                    path: config.feed.clone(),
                    source,
                });
            }
        }
    }
}
