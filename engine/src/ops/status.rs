//! The status file a running engine leaves next to its journal, and what `brink status` makes
//! of it together with the ring headers.
//!
//! The ops thread writes [`StatusFile`] as JSON every telemetry interval to
//! `<journal>.status`, under a temporary name renamed over the old one (a reader sees a whole
//! file or the previous one), and a last time with `state = "stopped"` at shutdown. `brink
//! status` reads it, judges it fresh or stale by its age and the writer's pid, and adds what the
//! ring headers say now (cursors, lag, heartbeat ages: [`RingStatus`]).

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use crate::shm::{Expect, RingFile, RingKind};
use crate::telemetry::{Report, format_ns};

/// Version of the status file's layout.
pub const STATUS_VERSION: u32 = 1;

/// Why a status file could not be written or read.
#[derive(Debug, thiserror::Error)]
pub enum StatusError {
    /// No status file: the engine has not run with this journal, or runs elsewhere.
    #[error("{path}: no status file ({source}): is `brink run` running with this configuration?")]
    Missing {
        /// The status file.
        path: PathBuf,
        /// The operating system's error.
        source: std::io::Error,
    },
    /// The file is not a status file of this version.
    #[error("{path}: not a status file of version {STATUS_VERSION}: {message}")]
    Format {
        /// The status file.
        path: PathBuf,
        /// What the parser said.
        message: String,
    },
    /// The file could not be written.
    #[error("{path}: cannot write the status file: {source}; check the journal's folder")]
    Write {
        /// The status file (or its temporary).
        path: PathBuf,
        /// The operating system's error.
        source: std::io::Error,
    },
}

/// The status file beside a journal.
pub fn status_path(journal: &Path) -> PathBuf {
    let mut name = journal.as_os_str().to_owned();
    name.push(".status");
    PathBuf::from(name)
}

/// One hop's latest latency figures.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct HopLatency {
    /// Hop name.
    pub hop: String,
    /// Samples.
    pub count: u64,
    /// Median, ns.
    pub p50_ns: u64,
    /// 99th percentile, ns.
    pub p99_ns: u64,
    /// 99.9th percentile, ns.
    pub p999_ns: u64,
    /// Largest, ns.
    pub max_ns: u64,
}

/// Rows of a latency report.
pub fn hop_rows(report: &Report) -> Vec<HopLatency> {
    report
        .rows
        .iter()
        .map(|r| HopLatency {
            hop: r.name.clone(),
            count: r.stats.count,
            p50_ns: r.stats.p50_ns,
            p99_ns: r.stats.p99_ns,
            p999_ns: r.stats.p999_ns,
            max_ns: r.stats.max_ns,
        })
        .collect()
}

/// The latest latency the telemetry thread closed.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct LatencyStatus {
    /// The last telemetry interval (hops with samples in it).
    pub interval: Vec<HopLatency>,
    /// Since the start.
    pub cumulative: Vec<HopLatency>,
}

/// Ingest counters.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct IngestStatus {
    /// Records accepted.
    pub accepted: u64,
    /// Records refused, all reasons.
    pub rejected: u64,
    /// Records refused, by reason (the reason's name; `out_of_band` counts held prices).
    pub rejected_by_reason: BTreeMap<String, u64>,
    /// Sequence gaps.
    pub gaps: u64,
    /// Records lost in gaps.
    pub gap_records: u64,
    /// Times the producer went stale.
    pub stale: u64,
    /// Producer restarts seen.
    pub restarts: u64,
    /// Out-of-band moves confirmed.
    pub confirmed_moves: u64,
    /// Alerts raised by ingest.
    pub alerts: u64,
}

/// Risk counters and gauges.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct RiskStatus {
    /// Inputs applied.
    pub inputs: u64,
    /// Seq of the last input applied.
    pub last_input_seq: u64,
    /// Ticks applied.
    pub ticks: u64,
    /// Margin calls.
    pub margin_calls: u64,
    /// Units handed to liquidation.
    pub liquidations: u64,
    /// Liquidation orders sent.
    pub orders: u64,
    /// ADL closes.
    pub adl: u64,
    /// Bankrupt remainders the insurance fund took over.
    #[serde(default)]
    pub fund_takeovers: u64,
    /// Fills booked (ordinary and liquidation).
    pub fills: u64,
    /// Settlements.
    pub settlements: u64,
    /// Liquidation jobs open.
    pub open_jobs: u64,
    /// Insurance fund, decimal string.
    pub insurance_fund: String,
    /// Circuit breaker trips.
    pub breaker_trips: u64,
    /// Whether the breaker is tripped now.
    pub breaker_tripped: bool,
}

/// Emit counters.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct EmitStatus {
    /// Records journaled and published.
    pub emitted: u64,
    /// Of those: alerts.
    pub alerts: u64,
    /// Decisions refused after a journal failure.
    pub refused: u64,
    /// The journal failure, if any.
    pub journal_error: Option<String>,
    /// Time spent waiting for room in the order ring, ns.
    pub ring_wait_ns: u64,
}

/// SIGHUP reloads.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct ReloadStatus {
    /// Reloads applied.
    pub applied: u64,
    /// Reloads refused.
    pub refused: u64,
    /// The last outcome, in words.
    pub last: Option<String>,
}

/// What the running engine publishes (see the module docs).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct StatusFile {
    /// [`STATUS_VERSION`].
    pub version: u32,
    /// `running`, `stopping`, `stopped` (clean shutdown) or `failed` (stopped on an error).
    pub state: String,
    /// The engine's pid.
    pub pid: u32,
    /// The configuration file.
    pub config: PathBuf,
    /// Feed ring.
    pub feed: PathBuf,
    /// Order ring.
    pub orders: PathBuf,
    /// Journal.
    pub journal: PathBuf,
    /// When the engine started (wall ns since the Unix epoch).
    pub started_wall_ns: u64,
    /// When this file was written (wall ns).
    pub written_wall_ns: u64,
    /// How often it is written, ms.
    pub interval_ms: u64,
    /// Ingest.
    pub ingest: IngestStatus,
    /// Risk.
    pub risk: RiskStatus,
    /// Emit.
    pub emit: EmitStatus,
    /// Reloads.
    pub reloads: ReloadStatus,
    /// Latency.
    pub latency: LatencyStatus,
}

impl StatusFile {
    /// Writes the file atomically (temporary name in the same folder, then rename).
    pub fn write(&self, path: &Path) -> Result<(), StatusError> {
        let mut tmp = path.as_os_str().to_owned();
        tmp.push(".tmp");
        let tmp = PathBuf::from(tmp);
        let text = serde_json::to_vec_pretty(self).unwrap_or_default();
        std::fs::write(&tmp, text).map_err(|source| StatusError::Write {
            path: tmp.clone(),
            source,
        })?;
        std::fs::rename(&tmp, path).map_err(|source| StatusError::Write {
            path: path.to_path_buf(),
            source,
        })
    }

    /// Reads a status file.
    pub fn read(path: &Path) -> Result<StatusFile, StatusError> {
        let text = std::fs::read(path).map_err(|source| StatusError::Missing {
            path: path.to_path_buf(),
            source,
        })?;
        let status: StatusFile =
            serde_json::from_slice(&text).map_err(|e| StatusError::Format {
                path: path.to_path_buf(),
                message: e.to_string(),
            })?;
        if status.version != STATUS_VERSION {
            return Err(StatusError::Format {
                path: path.to_path_buf(),
                message: format!("version {}", status.version),
            });
        }
        Ok(status)
    }
}

/// A ring's header as `brink status` sees it now.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct RingStatus {
    /// The ring file.
    pub path: PathBuf,
    /// Records published (the next sequence number).
    pub produced: u64,
    /// Records consumed.
    pub consumed: u64,
    /// `produced − consumed`.
    pub lag: u64,
    /// Capacity, records.
    pub capacity: u64,
    /// Age of the producer's last heartbeat, ms (`None`: never).
    pub producer_heartbeat_age_ms: Option<u64>,
    /// Age of the consumer's last heartbeat, ms (`None`: never).
    pub consumer_heartbeat_age_ms: Option<u64>,
    /// Producer pid.
    pub producer_pid: u32,
    /// Consumer pid (0: none yet).
    pub consumer_pid: u32,
    /// Whether the producer closed the ring.
    pub closed: bool,
}

impl RingStatus {
    /// Reads a ring's header; `Err` says why it could not be opened.
    pub fn read(path: &Path, kind: RingKind) -> Result<RingStatus, String> {
        let ring = RingFile::open(
            path,
            Expect {
                kind: Some(kind),
                capacity: None,
            },
        )
        .map_err(|e| e.to_string())?;
        let h = ring.header();
        let now = crate::clock::now_ns();
        let age = |hb: u64| (hb != 0).then(|| now.saturating_sub(hb) / 1_000_000);
        Ok(RingStatus {
            path: path.to_path_buf(),
            produced: h.producer_cursor,
            consumed: h.consumer_cursor,
            lag: h.producer_cursor.saturating_sub(h.consumer_cursor),
            capacity: h.capacity,
            producer_heartbeat_age_ms: age(h.producer_heartbeat_ns),
            consumer_heartbeat_age_ms: age(h.consumer_heartbeat_ns),
            producer_pid: h.producer_pid,
            consumer_pid: h.consumer_pid,
            closed: h.producer_closed != 0,
        })
    }
}

/// Whether the engine behind a status file is running, judged now.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Liveness {
    /// Written recently by a live process.
    Running,
    /// Written long ago, or its writer is gone without saying it stopped.
    Stale,
    /// The engine wrote its last status at shutdown (clean or on an error: see the state).
    Stopped,
}

/// Judges a status file: stopped when it says so (`stopped` or `failed`); stale when older than three intervals (at
/// least 2 s) or when its pid is gone; running otherwise.
pub fn liveness(status: &StatusFile, now_wall_ns: u64) -> Liveness {
    if status.state == "stopped" || status.state == "failed" {
        return Liveness::Stopped;
    }
    let age_ms = now_wall_ns.saturating_sub(status.written_wall_ns) / 1_000_000;
    let limit_ms = status.interval_ms.saturating_mul(3).max(2_000);
    if age_ms > limit_ms || !process_alive(status.pid) {
        Liveness::Stale
    } else {
        Liveness::Running
    }
}

fn process_alive(pid: u32) -> bool {
    match i32::try_from(pid)
        .ok()
        .and_then(rustix::process::Pid::from_raw)
    {
        Some(pid) => {
            rustix::process::test_kill_process(pid).is_ok()
                || std::path::Path::new(&format!("/proc/{}", pid.as_raw_nonzero())).exists()
        }
        None => false,
    }
}

/// `brink status` as text: the state line, the rings, counters, the fund and latency.
pub fn render_text(
    status: &StatusFile,
    live: Liveness,
    now_wall_ns: u64,
    feed: &Result<RingStatus, String>,
    orders: &Result<RingStatus, String>,
) -> String {
    use std::fmt::Write;
    let mut s = String::new();
    let age_ms = now_wall_ns.saturating_sub(status.written_wall_ns) / 1_000_000;
    let up_s = status
        .written_wall_ns
        .saturating_sub(status.started_wall_ns)
        / 1_000_000_000;
    let state = match live {
        Liveness::Running => format!("running (pid {}, up {up_s} s)", status.pid),
        Liveness::Stale => format!(
            "NOT RUNNING or hung: status is stale ({age_ms} ms old, pid {} {})",
            status.pid,
            if process_alive(status.pid) {
                "alive"
            } else {
                "gone"
            }
        ),
        Liveness::Stopped if status.state == "failed" => {
            format!("STOPPED on a fatal error (pid {}; see its log)", status.pid)
        }
        Liveness::Stopped => format!("stopped (pid {} exited cleanly)", status.pid),
    };
    let _ = writeln!(s, "engine   {state}");
    let _ = writeln!(
        s,
        "status   written {age_ms} ms ago (every {} ms), config {}",
        status.interval_ms,
        status.config.display()
    );
    let _ = writeln!(
        s,
        "\n{:<7} {:>12} {:>12} {:>9} {:>10} {:>14} {:>14}",
        "ring", "produced", "consumed", "lag", "capacity", "producer hb", "consumer hb"
    );
    let hb = |a: Option<u64>| a.map_or("never".to_string(), |ms| format!("{ms} ms ago"));
    for (name, ring) in [("feed", feed), ("orders", orders)] {
        match ring {
            Ok(r) => {
                let _ = writeln!(
                    s,
                    "{name:<7} {:>12} {:>12} {:>9} {:>10} {:>14} {:>14}{}",
                    r.produced,
                    r.consumed,
                    r.lag,
                    r.capacity,
                    hb(r.producer_heartbeat_age_ms),
                    hb(r.consumer_heartbeat_age_ms),
                    if r.closed { "  (closed)" } else { "" }
                );
            }
            Err(e) => {
                let _ = writeln!(s, "{name:<7} unavailable: {e}");
            }
        }
    }
    s.push('\n');
    s.push_str(&render_counters(&status.ingest, &status.risk, &status.emit));
    let _ = writeln!(
        s,
        "reloads  {} applied, {} refused{}",
        status.reloads.applied,
        status.reloads.refused,
        status
            .reloads
            .last
            .as_ref()
            .map(|l| format!("; last: {l}"))
            .unwrap_or_default()
    );
    for (title, rows) in [
        ("latency, last interval", &status.latency.interval),
        ("latency, since start", &status.latency.cumulative),
    ] {
        let _ = writeln!(
            s,
            "\n{title:<24} {:>10} {:>10} {:>10} {:>10} {:>10}",
            "count", "p50", "p99", "p99.9", "max"
        );
        if rows.is_empty() {
            let _ = writeln!(s, "  (no samples)");
        }
        for h in rows {
            let _ = writeln!(
                s,
                "  {:<22} {:>10} {:>10} {:>10} {:>10} {:>10}",
                h.hop,
                h.count,
                format_ns(h.p50_ns),
                format_ns(h.p99_ns),
                format_ns(h.p999_ns),
                format_ns(h.max_ns)
            );
        }
    }
    s
}

/// The counter lines of `brink status` (also printed on SIGUSR1): input, rejections, feed
/// events, decisions, alerts, the fund and emit.
pub fn render_counters(i: &IngestStatus, r: &RiskStatus, e: &EmitStatus) -> String {
    use std::fmt::Write;
    let mut s = String::new();
    let _ = writeln!(
        s,
        "input    {} accepted, last seq applied {}, {} ticks",
        i.accepted, r.last_input_seq, r.ticks
    );
    let reasons: Vec<String> = i
        .rejected_by_reason
        .iter()
        .filter(|(_, n)| **n > 0)
        .map(|(k, n)| format!("{k} {n}"))
        .collect();
    let _ = writeln!(
        s,
        "rejected {}{}",
        i.rejected,
        if reasons.is_empty() {
            String::new()
        } else {
            format!(" ({})", reasons.join(", "))
        }
    );
    let _ = writeln!(
        s,
        "feed     {} gaps ({} records lost), {} stale, {} restarts, {} confirmed moves",
        i.gaps, i.gap_records, i.stale, i.restarts, i.confirmed_moves
    );
    let _ = writeln!(
        s,
        "risk     {} margin calls, {} liquidations ({} orders, {} open), {} fund takeovers, {} ADL, {} fills, {} settlements",
        r.margin_calls,
        r.liquidations,
        r.orders,
        r.open_jobs,
        r.fund_takeovers,
        r.adl,
        r.fills,
        r.settlements
    );
    let _ = writeln!(s, "alerts   {} ({} from ingest)", e.alerts, i.alerts);
    let _ = writeln!(
        s,
        "fund     {}  breaker {} ({} trips)",
        r.insurance_fund,
        if r.breaker_tripped {
            "TRIPPED"
        } else {
            "armed"
        },
        r.breaker_trips
    );
    let _ = writeln!(
        s,
        "emit     {} records, {} refused, order-ring wait {}{}",
        e.emitted,
        e.refused,
        format_ns(e.ring_wait_ns),
        e.journal_error
            .as_ref()
            .map(|j| format!(", JOURNAL FAILED: {j}"))
            .unwrap_or_default()
    );
    s
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_written_status_reads_back_and_ages() {
        let dir = tempfile::tempdir().expect("temp dir");
        let path = status_path(&dir.path().join("brink.journal"));
        assert!(path.ends_with("brink.journal.status"));
        assert!(matches!(
            StatusFile::read(&path),
            Err(StatusError::Missing { .. })
        ));
        let now = crate::clock::wall_ns();
        let status = StatusFile {
            version: STATUS_VERSION,
            state: "running".into(),
            pid: std::process::id(),
            written_wall_ns: now,
            started_wall_ns: now - 5_000_000_000,
            interval_ms: 1_000,
            risk: RiskStatus {
                margin_calls: 3,
                insurance_fund: "100.5".into(),
                ..RiskStatus::default()
            },
            ..StatusFile::default()
        };
        status.write(&path).expect("write");
        let back = StatusFile::read(&path).expect("read");
        assert_eq!(back, status);
        assert_eq!(liveness(&back, now + 1_000_000_000), Liveness::Running);
        assert_eq!(liveness(&back, now + 4_000_000_000), Liveness::Stale);
        let gone = StatusFile {
            pid: i32::MAX as u32,
            ..back.clone()
        };
        assert_eq!(liveness(&gone, now), Liveness::Stale);
        let stopped = StatusFile {
            state: "stopped".into(),
            ..back.clone()
        };
        assert_eq!(liveness(&stopped, now + 60_000_000_000), Liveness::Stopped);
        let failed = StatusFile {
            state: "failed".into(),
            ..back.clone()
        };
        assert_eq!(liveness(&failed, now), Liveness::Stopped);
        let missing = Err("gone".to_string());
        let text = render_text(&failed, Liveness::Stopped, now, &missing, &missing);
        assert!(text.contains("STOPPED on a fatal error"), "{text}");
        let missing = Err("no such file".to_string());
        let text = render_text(&back, Liveness::Running, now, &missing, &missing);
        assert!(text.contains("running (pid"), "{text}");
        assert!(text.contains("3 margin calls"), "{text}");
        assert!(text.contains("100.5"), "{text}");
        assert!(text.contains("feed    unavailable: no such file"), "{text}");
    }
}
