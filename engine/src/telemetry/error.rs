//! Errors of the telemetry subsystem. None of them can happen on the recording path.

use std::io;

use hdrhistogram::serialization::{DeserializeError, V2DeflateSerializeError};
use hdrhistogram::{AdditionError, CreationError};

/// What went wrong in telemetry set-up, reporting, interval logs or plots.
#[derive(Debug, thiserror::Error)]
pub enum TelemetryError {
    /// The fixed histogram bounds were rejected by hdrhistogram.
    #[error(
        "cannot create a latency histogram ({0}); the bounds in telemetry::recorder \
         (LOWEST_NS, HIGHEST_NS, SIGNIFICANT_DIGITS) must satisfy 1 <= low, 2*low <= high, digits <= 5"
    )]
    Histogram(#[from] CreationError),
    /// Two histograms with different bounds were merged.
    #[error(
        "cannot merge histograms ({0}); merge only histograms built by telemetry::new_histogram \
         or read from one log"
    )]
    Merge(#[from] AdditionError),
    /// Writing the interval log failed.
    #[error(
        "cannot write the interval log: {0}; check that its directory exists, is writable and has space"
    )]
    LogWrite(#[source] io::Error),
    /// Compressing a histogram for the interval log failed.
    #[error("cannot encode a histogram for the interval log: {0}")]
    LogEncode(#[from] V2DeflateSerializeError),
    /// Reading the interval log failed.
    #[error("cannot read the interval log {path}: {source}; check the path")]
    LogRead {
        /// The path that was read.
        path: String,
        /// The underlying error.
        #[source]
        source: io::Error,
    },
    /// The log is not an HdrHistogram interval log.
    #[error(
        "the interval log does not parse at byte {offset}; expected lines `[Tag=NAME,]start,length,max,BASE64` \
         as written by brink or HdrHistogram's HistogramLogWriter"
    )]
    LogParse {
        /// Byte offset of the line that does not parse.
        offset: usize,
    },
    /// A histogram payload in the log is not valid base64.
    #[error(
        "interval {index} of the log has a histogram that is not valid base64 ({detail}); the log is truncated or corrupt"
    )]
    LogBase64 {
        /// Zero-based index of the interval line.
        index: usize,
        /// What the decoder said.
        detail: String,
    },
    /// A histogram payload in the log does not decode.
    #[error(
        "interval {index} of the log has a histogram that does not decode ({source}); write logs with V2 or V2+deflate encoding"
    )]
    LogDecode {
        /// Zero-based index of the interval line.
        index: usize,
        /// What the deserializer said.
        #[source]
        source: DeserializeError,
    },
    /// The log holds no interval histograms.
    #[error("the interval log holds no histograms; was the run long enough to close one interval?")]
    EmptyLog,
    /// Drawing the plot failed.
    #[error("cannot draw the percentile plot: {0}")]
    Plot(String),
    /// Starting the telemetry thread failed.
    #[error("cannot start the telemetry thread: {0}; the process may be out of threads or memory")]
    Spawn(#[source] io::Error),
    /// Installing the SIGUSR1 handler failed.
    #[error("cannot install the SIGUSR1 report handler: {0}; another handler may forbid it")]
    Signal(#[source] io::Error),
}
