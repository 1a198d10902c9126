//! The ops thread of `brink run`: SIGHUP reloads, the status file and operator log lines.
//!
//! One unpinned thread, never on the hot path. Every [`POLL`] it
//! - prepares a reload when SIGHUP raised its flag ([`super::reload::prepare`]), logs the
//!   keys ignored until a restart, and posts the parameters to the risk stage
//!   ([`super::RiskControl`]); a bad file is refused with one error line and the running
//!   parameters stay;
//! - logs what the risk stage did with a posted reload (applied after which input, units
//!   re-evaluated, calls and liquidations raised);
//! - compares the stages' published counters with the last ones it saw and logs one line per
//!   kind of operator event: sequence gaps, a stale, resumed or restarted producer, held and
//!   confirmed prices, other rejections, circuit-breaker trips and re-arms, ADL shortfalls,
//!   failed evaluations, a journal failure;
//!
//! and every telemetry interval it logs the decisions of the interval (calls, liquidations,
//! ADL) when there were any and rewrites the status file ([`super::status`]). At shutdown it
//! writes the status a last time, as `stopped` (or `failed` after a fatal error).

use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::thread::JoinHandle;
use std::time::Duration;

use crate::config::RunConfig;
use crate::ingest::{IngestCounters, Reject};
use crate::live::LiveCounters;
use crate::margin::Instrument;
use crate::risk::RiskCounters;
use crate::runtime::StopSignal;
use crate::stages::EmitCounters;

use super::control::{ReloadApplied, ReloadRequest, RiskGauges};
use super::reload::prepare;
use super::status::{
    EmitStatus, IngestStatus, LatencyStatus, ReloadStatus, RiskStatus, STATUS_VERSION, StatusFile,
    hop_rows,
};

/// How often the ops thread looks at its flags and counters.
pub const POLL: Duration = Duration::from_millis(20);

/// What the ops thread needs to know.
#[derive(Debug, Clone)]
pub struct OpsConfig {
    /// The configuration file (read again on SIGHUP).
    pub file: PathBuf,
    /// The configuration the engine started with.
    pub running: RunConfig,
    /// The instruments the engine started with, in id order.
    pub instruments: Vec<Instrument>,
    /// Where the status file goes.
    pub status_path: PathBuf,
}

/// The running ops thread.
#[derive(Debug)]
pub struct OpsThread {
    done: Arc<AtomicBool>,
    /// Whether the engine stopped cleanly; written before `done` (Release) and read after it.
    clean: Arc<AtomicBool>,
    handle: JoinHandle<()>,
}

impl OpsThread {
    /// Starts the thread. `hup` is the flag SIGHUP sets; `stop` the engine's stop signal (only
    /// read, to report `stopping`).
    pub fn spawn(
        config: OpsConfig,
        counters: LiveCounters,
        stop: StopSignal,
        hup: Arc<AtomicBool>,
    ) -> std::io::Result<OpsThread> {
        let done = Arc::new(AtomicBool::new(false));
        let clean = Arc::new(AtomicBool::new(true));
        let (flag, clean_flag) = (Arc::clone(&done), Arc::clone(&clean));
        let handle = std::thread::Builder::new()
            .name("brink-ops".into())
            .spawn(move || {
                let mut ops = Ops::new(config, counters);
                ops.run(&stop, &hup, &flag, &clean_flag);
            })?;
        Ok(OpsThread {
            done,
            clean,
            handle,
        })
    }

    /// After the engine stopped: a last look at the counters and the final status file, with
    /// state `stopped` (`clean`) or `failed`.
    pub fn finish(self, clean: bool) {
        self.clean.store(clean, Ordering::Relaxed);
        // Release: pairs with the Acquire load in `Ops::run`; the stages' final counters were
        // published (under their locks) before the engine returned.
        self.done.store(true, Ordering::Release);
        let _ = self.handle.join();
    }
}

/// The thread's state.
struct Ops {
    config: OpsConfig,
    counters: LiveCounters,
    started_wall_ns: u64,
    generation: u64,
    reloads: ReloadStatus,
    /// Last counters seen (for event lines).
    ingest: IngestCounters,
    risk: RiskCounters,
    gauges: RiskGauges,
    emit: EmitCounters,
    /// Risk counters at the last interval line.
    interval_risk: RiskCounters,
    stopping_logged: bool,
    status_error_logged: bool,
}

impl Ops {
    fn new(config: OpsConfig, counters: LiveCounters) -> Ops {
        Ops {
            config,
            counters,
            started_wall_ns: crate::clock::wall_ns(),
            generation: 0,
            reloads: ReloadStatus::default(),
            ingest: IngestCounters::default(),
            risk: RiskCounters::default(),
            gauges: RiskGauges::default(),
            emit: EmitCounters::default(),
            interval_risk: RiskCounters::default(),
            stopping_logged: false,
            status_error_logged: false,
        }
    }

    fn run(&mut self, stop: &StopSignal, hup: &AtomicBool, done: &AtomicBool, clean: &AtomicBool) {
        let interval = self.config.running.telemetry_interval.max(POLL);
        let mut next_status = std::time::Instant::now();
        loop {
            // Acquire: pairs with the Release store in `OpsThread::finish`.
            let finishing = done.load(Ordering::Acquire);
            // Relaxed: the flag carries no data; the file is read afresh.
            if hup.swap(false, Ordering::Relaxed) && !finishing {
                self.reload();
            }
            for applied in self.counters.control.take_applied() {
                self.report_applied(&applied);
            }
            self.log_events();
            if stop.is_stopped() && !self.stopping_logged {
                self.stopping_logged = true;
                tracing::info!("stop requested: input stopped, draining the rings");
            }
            if finishing {
                self.log_interval();
                // Relaxed: ordered before `done` by its Release store, read after the Acquire.
                let state = if clean.load(Ordering::Relaxed) {
                    "stopped"
                } else {
                    "failed"
                };
                self.write_status(state);
                return;
            }
            if std::time::Instant::now() >= next_status {
                next_status += interval;
                self.log_interval();
                let state = if stop.is_stopped() {
                    "stopping"
                } else {
                    "running"
                };
                self.write_status(state);
            }
            std::thread::sleep(POLL);
        }
    }

    fn reload(&mut self) {
        let file = self.config.file.clone();
        tracing::info!(config = %file.display(), "SIGHUP: reading the configuration again");
        let prepared = match prepare(&file, &self.config.running, &self.config.instruments) {
            Ok(p) => p,
            Err(e) => {
                tracing::error!("reload refused, the running configuration stays: {e}");
                self.reloads.refused += 1;
                self.reloads.last = Some(format!("refused: {e}"));
                return;
            }
        };
        for key in &prepared.ignored {
            tracing::warn!(key, "reload: {key} changed: ignored until restart");
        }
        self.generation += 1;
        tracing::info!(
            generation = self.generation,
            "reload {} validated: new tiers for [{}], thresholds {}; applying at the next input boundary",
            self.generation,
            prepared.instruments_changed.join(", "),
            if prepared.thresholds_changed {
                "changed"
            } else {
                "unchanged"
            }
        );
        self.counters.control.post(ReloadRequest {
            generation: self.generation,
            params: prepared.params.clone(),
        });
        // What a restart would change stays as it started; tiers and thresholds move on.
        self.config.instruments = prepared.params.instruments;
        self.config.running.risk = prepared.config.risk;
        self.config.running.scenario = prepared.config.scenario;
    }

    fn report_applied(&mut self, applied: &ReloadApplied) {
        match &applied.result {
            Ok(o) => {
                self.reloads.applied += 1;
                let text = format!(
                    "reload {} applied after input seq {}: {} instrument(s) with new tiers, thresholds {}, {} unit(s) re-evaluated, {} margin call(s), {} liquidation(s)",
                    applied.generation,
                    applied.after_seq,
                    o.instruments_changed,
                    if o.thresholds_changed {
                        "changed"
                    } else {
                        "unchanged"
                    },
                    o.units_evaluated,
                    o.margin_calls,
                    o.liquidations
                );
                tracing::info!("{text}");
                self.reloads.last = Some(text);
            }
            Err(e) => {
                self.reloads.refused += 1;
                tracing::error!(
                    "reload {} refused by the risk stage, the running parameters stay: {e}",
                    applied.generation
                );
                self.reloads.last = Some(format!("refused: {e}"));
            }
        }
    }

    /// One line per kind of operator event since the last look.
    fn log_events(&mut self) {
        let ingest = self
            .counters
            .ingest
            .lock()
            .map(|c| *c)
            .unwrap_or(self.ingest);
        let risk = self.counters.risk.lock().map(|c| *c).unwrap_or(self.risk);
        let gauges = self.counters.control.gauges();
        let emit = self
            .counters
            .emit
            .lock()
            .map(|c| c.clone())
            .unwrap_or_else(|_| self.emit.clone());
        let (old, new) = (&self.ingest, &ingest);
        if new.gaps > old.gaps {
            tracing::warn!(
                "feed sequence gap: {} gap(s), {} record(s) lost ({} in all)",
                new.gaps - old.gaps,
                new.gap_records - old.gap_records,
                new.gap_records
            );
        }
        if new.stale > old.stale {
            tracing::warn!(
                "feed producer stale: no heartbeat for {} ms (reading goes on)",
                self.config.running.stale_after.as_millis()
            );
        }
        if new.resumed > old.resumed {
            tracing::info!("feed producer resumed its heartbeats");
        }
        if new.restarts > old.restarts {
            tracing::warn!("feed producer restarted (new pid or new ring file)");
        }
        for reason in Reject::ALL {
            let d = new.rejected.get(reason) - old.rejected.get(reason);
            if d == 0 {
                continue;
            }
            if reason == Reject::OutOfBand {
                tracing::warn!(
                    "price held: {d} out-of-band mark(s) waiting for confirmation (band {} bps)",
                    self.config.running.price_band_bps
                );
            } else {
                tracing::warn!("{d} feed record(s) rejected: {}", reason.name());
            }
        }
        if new.confirmed_moves > old.confirmed_moves {
            tracing::info!(
                "price confirmed: {} held move(s) accepted",
                new.confirmed_moves - old.confirmed_moves
            );
        }
        if gauges.breaker_trips > self.gauges.breaker_trips {
            tracing::error!(
                "insurance fund circuit breaker tripped (fund {}): liquidations go straight to ADL",
                money_text(gauges.fund_money)
            );
        } else if self.gauges.breaker_tripped && !gauges.breaker_tripped {
            tracing::info!(
                "insurance fund circuit breaker re-armed (fund {})",
                money_text(gauges.fund_money)
            );
        }
        if risk.adl_shortfall > self.risk.adl_shortfall {
            tracing::warn!(
                "auto-deleveraging found too little opposite quantity {} time(s): the fund covers the rest (fund {})",
                risk.adl_shortfall - self.risk.adl_shortfall,
                money_text(gauges.fund_money)
            );
        }
        if risk.unevaluable > self.risk.unevaluable {
            tracing::warn!(
                "{} margin evaluation(s) failed (an unpriced instrument or overflow): those accounts wait for the next mark",
                risk.unevaluable - self.risk.unevaluable
            );
        }
        if let Some(e) = &emit.journal_error
            && self.emit.journal_error.is_none()
        {
            tracing::error!("journal failed, emitting stopped: {e}");
        }
        self.ingest = ingest;
        self.risk = risk;
        self.gauges = gauges;
        self.emit = emit;
    }

    /// The decisions of the interval, when there were any.
    fn log_interval(&mut self) {
        let (old, new) = (&self.interval_risk, &self.risk);
        let calls = new.margin_calls - old.margin_calls;
        let liquidations = new.liquidations - old.liquidations;
        let adl = new.adl - old.adl;
        let takeovers = new.takeovers - old.takeovers;
        if calls + liquidations + adl + takeovers > 0 {
            tracing::info!(
                "decisions: {calls} margin call(s), {liquidations} liquidation(s), {takeovers} fund takeover(s), {adl} ADL close(s); fund {}",
                money_text(self.gauges.fund_money)
            );
        }
        self.interval_risk = self.risk;
    }

    fn write_status(&mut self, state: &str) {
        let latency = self
            .counters
            .latency
            .lock()
            .ok()
            .and_then(|l| l.clone())
            .map(|(interval, cumulative)| LatencyStatus {
                interval: hop_rows(&interval),
                cumulative: hop_rows(&cumulative),
            })
            .unwrap_or_default();
        let (i, r, g, e) = (&self.ingest, &self.risk, &self.gauges, &self.emit);
        let running = &self.config.running;
        let status = StatusFile {
            version: STATUS_VERSION,
            state: state.to_string(),
            pid: std::process::id(),
            config: self.config.file.clone(),
            feed: running.feed.clone(),
            orders: running.orders.clone(),
            journal: running.journal.clone(),
            started_wall_ns: self.started_wall_ns,
            written_wall_ns: crate::clock::wall_ns(),
            interval_ms: running.telemetry_interval.as_millis() as u64,
            ingest: ingest_status(i),
            risk: risk_status(r, g),
            emit: emit_status(e),
            reloads: self.reloads.clone(),
            latency,
        };
        match status.write(&self.config.status_path) {
            Ok(()) => self.status_error_logged = false,
            Err(e) if !self.status_error_logged => {
                self.status_error_logged = true;
                tracing::error!("{e}");
            }
            Err(_) => {}
        }
    }
}

fn ingest_status(i: &IngestCounters) -> IngestStatus {
    IngestStatus {
        accepted: i.accepted,
        rejected: i.rejected.total(),
        rejected_by_reason: Reject::ALL
            .iter()
            .map(|r| (r.name().to_string(), i.rejected.get(*r)))
            .collect(),
        gaps: i.gaps,
        gap_records: i.gap_records,
        stale: i.stale,
        restarts: i.restarts,
        confirmed_moves: i.confirmed_moves,
        alerts: i.alerts,
    }
}

fn risk_status(r: &RiskCounters, g: &RiskGauges) -> RiskStatus {
    RiskStatus {
        inputs: g.inputs,
        last_input_seq: g.last_seq,
        ticks: r.ticks,
        margin_calls: r.margin_calls,
        liquidations: r.liquidations,
        orders: r.orders,
        adl: r.adl,
        fund_takeovers: r.takeovers,
        fills: r.fills + r.liquidation_fills,
        settlements: r.settlements,
        open_jobs: g.open_jobs,
        insurance_fund: money_text(g.fund_money),
        breaker_trips: g.breaker_trips,
        breaker_tripped: g.breaker_tripped,
    }
}

fn emit_status(e: &EmitCounters) -> EmitStatus {
    EmitStatus {
        emitted: e.emitted,
        alerts: e.by_kind[4],
        refused: e.refused,
        journal_error: e.journal_error.clone(),
        ring_wait_ns: e.ring_wait_ns,
    }
}

/// The stages' counters as last published, as the counter lines of `brink status` (what
/// `brink run` prints on SIGUSR1 after the latency table).
pub fn counters_text(counters: &LiveCounters) -> String {
    let i = counters.ingest.lock().map(|c| *c).unwrap_or_default();
    let r = counters.risk.lock().map(|c| *c).unwrap_or_default();
    let e = counters.emit.lock().map(|c| c.clone()).unwrap_or_default();
    let g = counters.control.gauges();
    super::status::render_counters(&ingest_status(&i), &risk_status(&r, &g), &emit_status(&e))
}

/// Money in 10^-8 units as decimal text.
fn money_text(money: i64) -> String {
    crate::num::decimal::format_scaled_trimmed(i128::from(money), crate::shm::MONEY_DECIMALS)
}
