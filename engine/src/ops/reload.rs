//! The ops thread's half of a SIGHUP reload: read the configuration file again, validate it
//! and the instruments of its scenario, and tell the live-reloadable parameters (instrument
//! tiers and liquidation fees, the `[thresholds]`) from the keys that only a restart changes.
//!
//! Nothing is applied here: a [`Prepared`] reload goes to the risk stage through
//! [`super::RiskControl`], which applies it between two inputs.

use std::path::{Path, PathBuf};

use crate::config::{ConfigError, RunConfig};
use crate::margin::Instrument;
use crate::risk::reload::{ReloadError, RiskParams, check_instruments};
use crate::scenario::{Scenario, ScenarioError};

/// Why a reload was refused before it reached the engine. The running configuration stays.
#[derive(Debug, thiserror::Error)]
pub enum PrepareError {
    /// The configuration file is unreadable or invalid.
    #[error(transparent)]
    Config(#[from] ConfigError),
    /// The scenario file (where the instruments' tiers are) is unreadable or invalid.
    #[error("scenario {path}: {source}")]
    Scenario {
        /// The scenario file.
        path: PathBuf,
        /// Why.
        source: ScenarioError,
    },
    /// The instruments changed in a way only a restart allows.
    #[error("scenario {path}: {source}")]
    Instruments {
        /// The scenario file.
        path: PathBuf,
        /// What changed.
        source: ReloadError,
    },
}

/// A validated reload, ready for the risk stage.
#[derive(Debug, Clone)]
pub struct Prepared {
    /// The configuration as now written.
    pub config: RunConfig,
    /// What the risk stage will apply.
    pub params: RiskParams,
    /// Keys whose new value is ignored until a restart (`section.key`).
    pub ignored: Vec<&'static str>,
    /// Symbols of the instruments whose tiers or liquidation fee changed.
    pub instruments_changed: Vec<String>,
    /// Whether the thresholds changed.
    pub thresholds_changed: bool,
}

/// The instruments of a scenario file, in id order.
pub fn load_instruments(scenario: &Path) -> Result<Vec<Instrument>, PrepareError> {
    let s = Scenario::load(scenario).map_err(|source| PrepareError::Scenario {
        path: scenario.to_path_buf(),
        source,
    })?;
    Ok(s.instruments.iter().map(|(_, i)| i.clone()).collect())
}

/// Reads `file` again and prepares a reload against the running configuration and instruments.
pub fn prepare(
    file: &Path,
    running: &RunConfig,
    running_instruments: &[Instrument],
) -> Result<Prepared, PrepareError> {
    let config = RunConfig::load(file)?;
    let instruments = load_instruments(&config.scenario)?;
    check_instruments(running_instruments, &instruments).map_err(|source| {
        PrepareError::Instruments {
            path: config.scenario.clone(),
            source,
        }
    })?;
    let instruments_changed = running_instruments
        .iter()
        .zip(&instruments)
        .filter(|(a, b)| a.tiers() != b.tiers() || a.liquidation_fee != b.liquidation_fee)
        .map(|(a, _)| a.symbol.to_string())
        .collect();
    Ok(Prepared {
        ignored: ignored_keys(running, &config),
        thresholds_changed: config.risk != running.risk,
        instruments_changed,
        params: RiskParams {
            instruments,
            config: config.risk,
        },
        config,
    })
}

/// Keys that differ between `running` and `new` but only change with a restart: ring and file
/// paths, sizes, topology, ingest checks, the starting fund and telemetry. (A changed
/// `accounts.scenario` is listed too: the tiers are read from the new file, the accounts are
/// not.)
pub fn ignored_keys(running: &RunConfig, new: &RunConfig) -> Vec<&'static str> {
    let checks: [(&'static str, bool); 19] = [
        ("feed.path", running.feed != new.feed),
        (
            "feed.stale_after_ms",
            running.stale_after != new.stale_after,
        ),
        ("feed.wait_ms", running.feed_wait != new.feed_wait),
        (
            "feed.price_band_bps",
            running.price_band_bps != new.price_band_bps,
        ),
        (
            "feed.confirm_ticks",
            running.confirm_ticks != new.confirm_ticks,
        ),
        (
            "feed.index_agree_bps",
            running.index_agree_bps != new.index_agree_bps,
        ),
        ("orders.path", running.orders != new.orders),
        (
            "orders.capacity",
            running.orders_capacity != new.orders_capacity,
        ),
        ("journal.path", running.journal != new.journal),
        ("journal.fsync", running.fsync != new.fsync),
        ("accounts.scenario", running.scenario != new.scenario),
        ("accounts.bulk", running.bulk != new.bulk),
        (
            "accounts.insurance_fund",
            running.insurance_fund != new.insurance_fund,
        ),
        ("topology.mode", running.topology != new.topology),
        (
            "topology.ring_capacity",
            running.ring_capacity != new.ring_capacity,
        ),
        (
            "telemetry.interval_ms",
            running.telemetry_interval != new.telemetry_interval,
        ),
        (
            "telemetry.report_every_s",
            running.report_every != new.report_every,
        ),
        (
            "telemetry.histogram_log",
            running.histogram_log != new.histogram_log,
        ),
        (
            "thresholds (fields outside the file)",
            running.risk.clock != new.risk.clock
                || running.risk.vol_scaling != new.risk.vol_scaling,
        ),
    ];
    checks
        .into_iter()
        .filter(|(_, differs)| *differs)
        .map(|(key, _)| key)
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn example_scenario() -> PathBuf {
        PathBuf::from(concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/../examples/scenario.toml"
        ))
    }

    fn config(dir: &Path, extra: &str, scenario: &Path) -> PathBuf {
        let file = dir.join("brink.toml");
        std::fs::write(
            &file,
            format!(
                "[accounts]\nscenario = \"{}\"\n{extra}\n",
                scenario.display()
            ),
        )
        .expect("write config");
        file
    }

    #[test]
    fn new_tiers_and_thresholds_are_prepared_and_restart_keys_listed() {
        let dir = tempfile::tempdir().expect("temp dir");
        let file = config(dir.path(), "", &example_scenario());
        let running = RunConfig::load(&file).expect("valid");
        let instruments = load_instruments(&running.scenario).expect("scenario");
        let text = std::fs::read_to_string(example_scenario()).expect("read scenario");
        let changed = text.replace("mmr = \"0.004\"", "mmr = \"0.0045\"");
        assert_ne!(text, changed, "the example's first BTC tier is at 0.4 %");
        let scenario = dir.path().join("scenario.toml");
        std::fs::write(&scenario, changed).expect("write scenario");
        let file = config(
            dir.path(),
            "[orders]\ncapacity = 1024\n[thresholds]\nmargin_call = \"0.9\"",
            &scenario,
        );
        let p = prepare(&file, &running, &instruments).expect("prepared");
        assert_eq!(p.instruments_changed, ["BTCUSDT"]);
        assert!(p.thresholds_changed);
        assert_eq!(p.params.config.call_level.0, 900_000_000);
        assert_eq!(p.ignored, ["orders.capacity", "accounts.scenario"]);
    }

    #[test]
    fn bad_files_are_refused_saying_why() {
        let dir = tempfile::tempdir().expect("temp dir");
        let file = config(dir.path(), "", &example_scenario());
        let running = RunConfig::load(&file).expect("valid");
        let instruments = load_instruments(&running.scenario).expect("scenario");
        let bad = config(
            dir.path(),
            "[thresholds]\nmargin_call = \"0.5\"",
            &example_scenario(),
        );
        let err = prepare(&bad, &running, &instruments).unwrap_err();
        assert!(err.to_string().contains("thresholds.rearm"), "{err}");
        let text = std::fs::read_to_string(example_scenario()).expect("read scenario");
        let scenario = dir.path().join("scenario.toml");
        std::fs::write(&scenario, text.replace("ETHUSDT", "SOLUSDT")).expect("write");
        let file = config(dir.path(), "", &scenario);
        let err = prepare(&file, &running, &instruments).unwrap_err();
        assert!(
            matches!(
                &err,
                PrepareError::Instruments {
                    source: ReloadError::Renamed { id: 1, .. },
                    ..
                }
            ),
            "{err}"
        );
        assert!(err.to_string().contains("restart"), "{err}");
    }
}
