//! Per-hop latency tables: percentiles, max, count and throughput, as text or JSON.
//!
//! A [`Report`] is built from merged histograms (by the collector, or from an interval log by
//! `brink-hist`). Its JSON form is the object the bench output nests under `"hops"`:
//! `{"e2e":{"p50_ns":…,"p90_ns":…,"p99_ns":…,"p999_ns":…,"p9999_ns":…,"max_ns":…,"count":…},…}`,
//! keys in pipeline order.

use std::fmt::{self, Write as _};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use hdrhistogram::Histogram;
use serde::ser::SerializeMap;
use serde::{Deserialize, Serialize, Serializer};

use super::error::TelemetryError;

/// The quantiles every table reports, with their column labels.
pub const QUANTILES: [(f64, &str); 5] = [
    (0.5, "p50"),
    (0.9, "p90"),
    (0.99, "p99"),
    (0.999, "p99.9"),
    (0.9999, "p99.99"),
];

/// One hop's latency summary, in nanoseconds. Percentiles are hdrhistogram's: the highest value
/// equivalent (within 3 significant digits) to the sample at rank `ceil(q·count)`.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct HopStats {
    /// Median.
    pub p50_ns: u64,
    /// 90th percentile.
    pub p90_ns: u64,
    /// 99th percentile.
    pub p99_ns: u64,
    /// 99.9th percentile.
    pub p999_ns: u64,
    /// 99.99th percentile.
    pub p9999_ns: u64,
    /// Largest sample (to histogram precision).
    pub max_ns: u64,
    /// Number of samples.
    pub count: u64,
}

impl HopStats {
    /// The summary of `hist`.
    pub fn from_histogram(hist: &Histogram<u64>) -> HopStats {
        if hist.is_empty() {
            return HopStats::default();
        }
        HopStats {
            p50_ns: hist.value_at_quantile(0.5),
            p90_ns: hist.value_at_quantile(0.9),
            p99_ns: hist.value_at_quantile(0.99),
            p999_ns: hist.value_at_quantile(0.999),
            p9999_ns: hist.value_at_quantile(0.9999),
            max_ns: hist.max(),
            count: hist.len(),
        }
    }

    /// The percentile columns in [`QUANTILES`] order.
    pub fn percentiles_ns(&self) -> [u64; 5] {
        [
            self.p50_ns,
            self.p90_ns,
            self.p99_ns,
            self.p999_ns,
            self.p9999_ns,
        ]
    }
}

/// One row of a report.
#[derive(Clone, Debug, PartialEq)]
pub struct ReportRow {
    /// The hop's short name ([`Hop::name`](super::Hop::name)) or a log tag.
    pub name: String,
    /// The summary.
    pub stats: HopStats,
    /// Samples above the histogram's range, recorded at its top (10 s).
    pub clamped_high: u64,
    /// Spans whose end stamp preceded their start stamp, recorded as 0.
    pub backwards: u64,
}

/// A per-hop latency table over a stretch of time.
///
/// Invariant: rows are in pipeline order and have `count > 0`; a hop that saw no samples (or that
/// the topology does not have) has no row.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Report {
    /// The stretch of time the samples come from, in ns (the throughput denominator).
    pub elapsed_ns: u64,
    /// One row per hop with samples.
    pub rows: Vec<ReportRow>,
}

impl Report {
    /// A report over `elapsed_ns` from named histograms; empty histograms are left out.
    pub fn from_histograms<'a>(
        elapsed_ns: u64,
        hists: impl IntoIterator<Item = (&'a str, &'a Histogram<u64>)>,
    ) -> Report {
        let rows = hists
            .into_iter()
            .filter(|(_, h)| !h.is_empty())
            .map(|(name, h)| ReportRow {
                name: name.to_owned(),
                stats: HopStats::from_histogram(h),
                clamped_high: 0,
                backwards: 0,
            })
            .collect();
        Report { elapsed_ns, rows }
    }

    /// The row named `name`, if it has samples.
    pub fn get(&self, name: &str) -> Option<&HopStats> {
        self.rows.iter().find(|r| r.name == name).map(|r| &r.stats)
    }

    /// Samples per second for `count` samples over this report's elapsed time (display only).
    pub fn throughput_per_s(&self, count: u64) -> f64 {
        if self.elapsed_ns == 0 {
            return 0.0;
        }
        count as f64 * 1e9 / self.elapsed_ns as f64
    }

    /// The JSON object `{"<hop>":{"p50_ns":…,…,"count":…},…}` as text, keys in pipeline order
    /// (a `serde_json::Value` would sort them).
    pub fn to_json_string(&self, pretty: bool) -> String {
        // Serializing plain integers and strings cannot fail.
        let text = if pretty {
            serde_json::to_string_pretty(self)
        } else {
            serde_json::to_string(self)
        };
        text.unwrap_or_default()
    }

    /// The JSON object `{"<hop>":{"p50_ns":…,…,"count":…},…}` as a value (keys sorted).
    pub fn to_json(&self) -> serde_json::Value {
        // Serializing plain integers into a Value cannot fail.
        serde_json::to_value(self).unwrap_or(serde_json::Value::Null)
    }

    /// The text table: one line per hop, then notes on clamped or backwards samples.
    pub fn to_text(&self) -> String {
        let mut out = String::new();
        // Writing into a String cannot fail.
        let _ = self.write_text(&mut out);
        out
    }

    fn write_text(&self, out: &mut String) -> fmt::Result {
        write!(out, "{:<12}", "hop")?;
        for (_, label) in QUANTILES {
            write!(out, "{label:>10}")?;
        }
        writeln!(out, "{:>10}{:>12}{:>12}", "max", "count", "per_s")?;
        for row in &self.rows {
            write!(out, "{:<12}", row.name)?;
            for v in row.stats.percentiles_ns() {
                write!(out, "{:>10}", format_ns(v))?;
            }
            writeln!(
                out,
                "{:>10}{:>12}{:>12.0}",
                format_ns(row.stats.max_ns),
                row.stats.count,
                self.throughput_per_s(row.stats.count)
            )?;
        }
        if self.rows.is_empty() {
            writeln!(out, "(no samples)")?;
        }
        writeln!(out, "over {:.3} s", self.elapsed_ns as f64 / 1e9)?;
        for row in &self.rows {
            if row.clamped_high > 0 {
                writeln!(
                    out,
                    "note: {}: {} samples above 10 s recorded as 10 s",
                    row.name, row.clamped_high
                )?;
            }
            if row.backwards > 0 {
                writeln!(
                    out,
                    "note: {}: {} spans ran backwards (end stamp before start) and were recorded as 0",
                    row.name, row.backwards
                )?;
            }
        }
        Ok(())
    }
}

impl Serialize for Report {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        let mut map = s.serialize_map(Some(self.rows.len()))?;
        for row in &self.rows {
            map.serialize_entry(&row.name, &row.stats)?;
        }
        map.end()
    }
}

impl fmt::Display for Report {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.to_text())
    }
}

/// A latency for people: `812ns`, `3.41us`, `12.0ms`, `1.50s` (three significant digits).
pub fn format_ns(ns: u64) -> String {
    let v = ns as f64;
    let (scaled, unit) = if ns < 1_000 {
        return format!("{ns}ns");
    } else if ns < 1_000_000 {
        (v / 1e3, "us")
    } else if ns < 1_000_000_000 {
        (v / 1e6, "ms")
    } else {
        (v / 1e9, "s")
    };
    if scaled < 10.0 {
        format!("{scaled:.2}{unit}")
    } else if scaled < 100.0 {
        format!("{scaled:.1}{unit}")
    } else {
        format!("{scaled:.0}{unit}")
    }
}

/// A "print a report now" request flag, set by a signal handler or any thread and taken by the
/// telemetry thread. Cloning shares the flag.
#[derive(Clone, Debug, Default)]
pub struct ReportRequest {
    flag: Arc<AtomicBool>,
}

impl ReportRequest {
    /// A flag with no request pending.
    pub fn new() -> ReportRequest {
        ReportRequest::default()
    }

    /// The shared flag itself, for a caller that installs its own signal handling (e.g.
    /// `signal_hook::flag::register(SIGUSR1, Arc::clone(request.flag()))`).
    pub fn flag(&self) -> &Arc<AtomicBool> {
        &self.flag
    }

    /// Asks for a report.
    pub fn request(&self) {
        // Relaxed: the flag carries no data; the report reads only telemetry-owned state.
        self.flag.store(true, Ordering::Relaxed);
    }

    /// Whether a report was requested since the last call; clears the request.
    pub fn take(&self) -> bool {
        // Relaxed: see `request`.
        self.flag.swap(false, Ordering::Relaxed)
    }

    /// Makes SIGUSR1 request a report. Not installed by default; the binary decides. The handler
    /// only stores `true` into the flag (async-signal-safe).
    pub fn install_sigusr1(&self) -> Result<signal_hook::SigId, TelemetryError> {
        signal_hook::flag::register(signal_hook::consts::SIGUSR1, Arc::clone(&self.flag))
            .map_err(TelemetryError::Signal)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::telemetry::recorder::new_histogram;
    use rand::{Rng, SeedableRng};

    /// hdrhistogram's rank for quantile `q` over `n` samples.
    fn rank(q: f64, n: usize) -> usize {
        ((q * n as f64).ceil() as usize).max(1)
    }

    #[test]
    fn percentiles_match_a_brute_force_sort_within_precision() {
        let mut rng = rand::rngs::StdRng::seed_from_u64(7);
        let mut h = new_histogram().unwrap();
        let mut samples: Vec<u64> = (0..200_000)
            .map(|_| {
                // Log-uniform over 50 ns .. 50 ms, so every decade is exercised.
                let e: f64 = rng.random_range(1.7..7.7);
                10f64.powf(e) as u64
            })
            .collect();
        for &s in &samples {
            h.record(s).unwrap();
        }
        samples.sort_unstable();
        let report = Report::from_histograms(1_000_000_000, [("e2e", &h)]);
        let stats = report.get("e2e").unwrap();
        assert_eq!(stats.count, samples.len() as u64);
        for ((q, label), got) in QUANTILES.iter().zip(stats.percentiles_ns()) {
            let exact = samples[rank(*q, samples.len()) - 1];
            assert!(
                h.equivalent(exact, got),
                "{label}: histogram says {got}, sorted samples say {exact}"
            );
        }
        assert!(h.equivalent(*samples.last().unwrap(), stats.max_ns));
        assert!((report.throughput_per_s(stats.count) - 200_000.0).abs() < 1e-6);
    }

    #[test]
    fn empty_hops_are_left_out_and_json_has_the_documented_shape() {
        let mut a = new_histogram().unwrap();
        let b = new_histogram().unwrap();
        for v in [100, 200, 300] {
            a.record(v).unwrap();
        }
        let report = Report::from_histograms(10, [("feed", &b), ("e2e", &a)]);
        assert_eq!(report.rows.len(), 1);
        assert!(report.get("feed").is_none());
        let json = report.to_json();
        let e2e = &json["e2e"];
        for key in [
            "p50_ns", "p90_ns", "p99_ns", "p999_ns", "p9999_ns", "max_ns", "count",
        ] {
            assert!(e2e[key].is_u64(), "{key} missing in {json}");
        }
        assert_eq!(e2e["count"], 3);
        let back: HopStats = serde_json::from_value(e2e.clone()).unwrap();
        let two = Report::from_histograms(10, [("feed", &a), ("e2e", &a)]);
        let text = two.to_json_string(false);
        assert!(text.starts_with(r#"{"feed":{"p50_ns":"#), "{text}");
        assert!(text.find("\"feed\"") < text.find("\"e2e\""));
        assert_eq!(&back, report.get("e2e").unwrap());
        let text = report.to_text();
        assert!(text.contains("e2e") && text.contains("p99.99") && !text.contains("feed"));
    }

    #[test]
    fn format_ns_picks_units() {
        assert_eq!(format_ns(812), "812ns");
        assert_eq!(format_ns(3_412), "3.41us");
        assert_eq!(format_ns(12_049_000), "12.0ms");
        assert_eq!(format_ns(1_500_000_000), "1.50s");
        assert_eq!(format_ns(250_000), "250us");
    }

    #[test]
    fn report_request_is_taken_once() {
        let r = ReportRequest::new();
        assert!(!r.take());
        r.clone().request();
        assert!(r.take());
        assert!(!r.take());
        r.flag().store(true, Ordering::Relaxed);
        assert!(r.take());
    }

    #[test]
    fn sigusr1_sets_the_request() {
        let r = ReportRequest::new();
        let id = r.install_sigusr1().unwrap();
        signal_hook::low_level::raise(signal_hook::consts::SIGUSR1).unwrap();
        // raise() returns after the handler ran on this thread; the loop only guards against a
        // platform that delivers it later.
        let mut seen = false;
        for _ in 0..1000 {
            if r.take() {
                seen = true;
                break;
            }
            std::thread::yield_now();
        }
        signal_hook::low_level::unregister(id);
        assert!(seen);
    }
}
