//! HdrHistogram interval logs: one line per hop per interval, tagged with the hop's name, each
//! histogram V2-encoded, deflate-compressed and base64'd (`Tag=e2e,12.000,1.000,0.000123,HISTFAAA…`).
//!
//! The header carries `StartTime` and `BaseTime` (both the run's wall-clock start), so interval
//! timestamps are seconds since the start of the run. The standard tools read these files, e.g.
//! `java -cp HdrHistogram.jar org.HdrHistogram.HistogramLogProcessor -i run.hlog -tag e2e`
//! (add `-outputValueUnitRatio 1` to see nanoseconds: values are recorded in ns).

use std::io::{Cursor, Write};
use std::time::{Duration, SystemTime};

use base64::Engine as _;
use hdrhistogram::Histogram;
use hdrhistogram::serialization::interval_log::{
    IntervalLogIterator, IntervalLogWriterBuilder, IntervalLogWriterError, LogEntry, Tag,
};
use hdrhistogram::serialization::{Deserializer, V2DeflateSerializer};

use super::error::TelemetryError;
use super::report::Report;

/// The tag name given to untagged intervals of foreign logs.
pub const UNTAGGED: &str = "untagged";

/// Writes an interval log to `W` (a file, usually through a `BufWriter`).
pub struct IntervalLog<W: Write> {
    out: W,
    serializer: V2DeflateSerializer,
}

impl<W: Write> IntervalLog<W> {
    /// Starts a log whose interval timestamps count from `start` (the run's wall-clock start);
    /// `comment` (may be empty) is written as header comment lines.
    pub fn new(mut out: W, start: SystemTime, comment: &str) -> Result<Self, TelemetryError> {
        let mut serializer = V2DeflateSerializer::new();
        let mut builder = IntervalLogWriterBuilder::new();
        builder.add_comment("[Histogram log format version 1.3]");
        if !comment.is_empty() {
            builder.add_comment(comment);
        }
        builder
            .add_comment("[values are latencies in nanoseconds, one tag per hop]")
            .with_start_time(start)
            .with_base_time(start);
        builder
            .begin_log_with(&mut out, &mut serializer)
            .map_err(TelemetryError::LogWrite)?;
        out.write_all(
            b"\"StartTimestamp\",\"Interval_Length\",\"Interval_Max\",\"Interval_Compressed_Histogram\"\n",
        )
        .map_err(TelemetryError::LogWrite)?;
        Ok(IntervalLog { out, serializer })
    }

    /// Appends one interval: `hist` tagged `tag`, covering `length` from `start` (time since the
    /// run's start). A tag that could not be parsed back (empty, or holding `,` or whitespace) is
    /// written untagged.
    pub fn write(
        &mut self,
        tag: &str,
        hist: &Histogram<u64>,
        start: Duration,
        length: Duration,
    ) -> Result<(), TelemetryError> {
        // A builder with no headers writes nothing; it only lends out a writer for one line.
        let mut writer = IntervalLogWriterBuilder::new()
            .begin_log_with(&mut self.out, &mut self.serializer)
            .map_err(TelemetryError::LogWrite)?;
        let tag = Tag::new(tag).filter(|_| !tag.is_empty() && !tag.contains(char::is_whitespace));
        writer
            .write_histogram(hist, start, length, tag)
            .map_err(|e| match e {
                IntervalLogWriterError::SerializeError(e) => TelemetryError::LogEncode(e),
                IntervalLogWriterError::IoError(e) => TelemetryError::LogWrite(e),
            })
    }

    /// Flushes the underlying writer.
    pub fn flush(&mut self) -> Result<(), TelemetryError> {
        self.out.flush().map_err(TelemetryError::LogWrite)
    }

    /// The underlying writer.
    pub fn into_inner(self) -> W {
        self.out
    }
}

/// One interval read back from a log.
#[derive(Debug)]
pub struct LoggedInterval<'a> {
    /// The tag (hop name), or [`UNTAGGED`].
    pub tag: &'a str,
    /// Start, relative to the log's base time (or the epoch without one).
    pub start: Duration,
    /// Length of the interval.
    pub length: Duration,
    /// The interval's histogram.
    pub hist: Histogram<u64>,
}

/// Calls `visit` for each interval of the log in `bytes`, in file order, with its histogram
/// decoded. Comment and header lines are skipped.
pub fn visit_intervals(
    bytes: &[u8],
    mut visit: impl FnMut(LoggedInterval<'_>) -> Result<(), TelemetryError>,
) -> Result<(), TelemetryError> {
    let mut deserializer = Deserializer::new();
    let mut raw = Vec::new();
    for (index, entry) in IntervalLogIterator::new(bytes)
        .filter(|e| !matches!(e, Ok(LogEntry::StartTime(_) | LogEntry::BaseTime(_))))
        .enumerate()
    {
        let interval = match entry {
            Ok(LogEntry::Interval(i)) => i,
            Ok(_) => continue,
            Err(hdrhistogram::serialization::interval_log::LogIteratorError::ParseError {
                offset,
            }) => return Err(TelemetryError::LogParse { offset }),
        };
        raw.clear();
        base64::engine::general_purpose::STANDARD
            .decode_vec(interval.encoded_histogram(), &mut raw)
            .map_err(|e| TelemetryError::LogBase64 {
                index,
                detail: e.to_string(),
            })?;
        let hist: Histogram<u64> = deserializer
            .deserialize(&mut Cursor::new(&raw))
            .map_err(|source| TelemetryError::LogDecode { index, source })?;
        visit(LoggedInterval {
            tag: interval.tag().map_or(UNTAGGED, |t| t.as_str()),
            start: interval.start_timestamp(),
            length: interval.duration(),
            hist,
        })?;
    }
    Ok(())
}

/// One tag's histograms summed over the whole log.
#[derive(Debug, Clone)]
pub struct TagTotal {
    /// The tag (hop name).
    pub name: String,
    /// The sum of the tag's interval histograms.
    pub total: Histogram<u64>,
    /// How many intervals the tag has.
    pub intervals: usize,
}

/// A whole log, summed per tag.
#[derive(Debug, Clone)]
pub struct LogContents {
    /// One entry per tag, in order of first appearance.
    pub tags: Vec<TagTotal>,
    /// From the earliest interval start to the latest interval end, in ns.
    pub span_ns: u64,
}

impl LogContents {
    /// The per-tag table over the log's span.
    pub fn report(&self) -> Report {
        Report::from_histograms(
            self.span_ns,
            self.tags.iter().map(|t| (t.name.as_str(), &t.total)),
        )
    }

    /// The total for `tag`, if the log has it.
    pub fn get(&self, tag: &str) -> Option<&Histogram<u64>> {
        self.tags.iter().find(|t| t.name == tag).map(|t| &t.total)
    }
}

/// Reads an interval log and sums its intervals per tag.
pub fn read_interval_log(bytes: &[u8]) -> Result<LogContents, TelemetryError> {
    let mut tags: Vec<TagTotal> = Vec::new();
    let mut first: Option<Duration> = None;
    let mut last = Duration::ZERO;
    visit_intervals(bytes, |i| {
        first = Some(first.map_or(i.start, |f| f.min(i.start)));
        last = last.max(i.start + i.length);
        match tags.iter_mut().find(|t| t.name == i.tag) {
            Some(t) => {
                t.total.add(&i.hist)?;
                t.intervals += 1;
            }
            None => {
                let mut total = Histogram::new_from(&i.hist);
                // A foreign log may mix ranges; growing here is off the hot path.
                total.auto(true);
                total.add(&i.hist)?;
                tags.push(TagTotal {
                    name: i.tag.to_owned(),
                    total,
                    intervals: 1,
                });
            }
        }
        Ok(())
    })?;
    let Some(first) = first else {
        return Err(TelemetryError::EmptyLog);
    };
    let span_ns = u64::try_from(last.saturating_sub(first).as_nanos()).unwrap_or(u64::MAX);
    Ok(LogContents { tags, span_ns })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::telemetry::hop::Hop;
    use crate::telemetry::recorder::new_histogram;
    use rand::{Rng, SeedableRng};

    #[test]
    fn round_trip_keeps_counts_and_percentiles() {
        let mut rng = rand::rngs::StdRng::seed_from_u64(11);
        let hops = [Hop::Feed, Hop::Risk, Hop::E2e];
        let mut totals: Vec<Histogram<u64>> =
            hops.iter().map(|_| new_histogram().unwrap()).collect();
        let mut log = IntervalLog::new(Vec::new(), SystemTime::now(), "round trip test").unwrap();
        let mut written = Vec::new();
        for interval in 0..5u64 {
            for (k, hop) in hops.iter().enumerate() {
                let mut h = new_histogram().unwrap();
                let n = 1000 * (k as u64 + 1) + interval;
                for _ in 0..n {
                    h.record(rng.random_range(100..2_000_000u64) << k).unwrap();
                }
                log.write(
                    hop.name(),
                    &h,
                    Duration::from_secs(interval),
                    Duration::from_secs(1),
                )
                .unwrap();
                totals[k].add(&h).unwrap();
                written.push((hop.name(), interval, h));
            }
        }
        let bytes = log.into_inner();
        let text = std::str::from_utf8(&bytes).unwrap();
        assert!(text.starts_with("#[Histogram log format version 1.3]\n"));
        assert!(text.contains("#[StartTime: ") && text.contains("#[BaseTime: "));
        assert!(text.contains("Tag=e2e,"));

        // Interval by interval: same tag, timestamps, histogram.
        let mut seen = 0;
        visit_intervals(&bytes, |i| {
            let (tag, start_s, h) = &written[seen];
            assert_eq!(i.tag, *tag);
            assert_eq!(i.start, Duration::from_secs(*start_s));
            assert_eq!(i.length, Duration::from_secs(1));
            assert_eq!(i.hist, *h);
            seen += 1;
            Ok(())
        })
        .unwrap();
        assert_eq!(seen, written.len());

        // Summed per tag: counts and percentiles match what was recorded.
        let contents = read_interval_log(&bytes).unwrap();
        assert_eq!(contents.tags.len(), hops.len());
        assert_eq!(contents.span_ns, 5_000_000_000);
        let report = contents.report();
        for (k, hop) in hops.iter().enumerate() {
            let got = contents.get(hop.name()).unwrap();
            assert_eq!(got.len(), totals[k].len());
            let stats = report.get(hop.name()).unwrap();
            assert_eq!(stats.count, totals[k].len());
            assert_eq!(stats.p99_ns, totals[k].value_at_quantile(0.99));
            assert_eq!(stats.p9999_ns, totals[k].value_at_quantile(0.9999));
            assert_eq!(stats.max_ns, totals[k].max());
        }
    }

    /// The reference implementation reads our logs: HdrHistogram's Java HistogramLogProcessor
    /// (Debian package `libhdrhistogram-java`), when java and the jar are installed.
    #[test]
    fn java_histogram_log_processor_reads_the_log() {
        let jar = "/usr/share/java/hdrhistogram.jar";
        if !std::path::Path::new(jar).exists() {
            println!("skipped: {jar} not installed (apt-get install libhdrhistogram-java)");
            return;
        }
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("java.hlog");
        let mut h = new_histogram().unwrap();
        for v in 1..=20_000u64 {
            h.record(v * 37).unwrap();
        }
        let mut log = IntervalLog::new(Vec::new(), SystemTime::now(), "").unwrap();
        log.write("e2e", &h, Duration::ZERO, Duration::from_secs(1))
            .unwrap();
        log.write("feed", &h, Duration::ZERO, Duration::from_secs(1))
            .unwrap();
        std::fs::write(&path, log.into_inner()).unwrap();
        let out = match std::process::Command::new("java")
            .args(["-cp", jar, "org.HdrHistogram.HistogramLogProcessor", "-i"])
            .arg(&path)
            .args(["-tag", "e2e", "-outputValueUnitRatio", "1"])
            .output()
        {
            Ok(out) => out,
            Err(e) => {
                println!("skipped: cannot run java ({e})");
                return;
            }
        };
        let text = String::from_utf8_lossy(&out.stdout);
        assert!(out.status.success(), "{text}");
        let field = |name: &str| -> f64 {
            let at = text
                .find(name)
                .unwrap_or_else(|| panic!("{name} in {text}"));
            let rest = text[at + name.len()..].trim_start_matches([' ', '=']);
            let end = rest.find([',', ']']).unwrap();
            rest[..end].trim().parse().unwrap()
        };
        assert_eq!(field("Total count"), h.len() as f64);
        assert_eq!(field("Max"), h.max() as f64);
    }

    #[test]
    fn bad_logs_are_typed_errors() {
        assert!(matches!(
            read_interval_log(b"#only a comment\n"),
            Err(TelemetryError::EmptyLog)
        ));
        assert!(matches!(
            read_interval_log(b"Tag=x,0.0,1.0,2.0,@@@@\n"),
            Err(TelemetryError::LogBase64 { .. })
        ));
        assert!(matches!(
            read_interval_log(b"Tag=x,0.0,1.0,2.0,AAAAAAAA\n"),
            Err(TelemetryError::LogDecode { .. })
        ));
        assert!(matches!(
            read_interval_log(b"garbage without newline"),
            Err(TelemetryError::LogParse { .. })
        ));
    }
}
