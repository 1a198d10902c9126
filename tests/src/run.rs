//! A `brink run` under test: its files in a fresh folder, the engine process and a
//! `brink-feed publish` replaying a kline file into its feed ring.

use std::path::PathBuf;
use std::process::{Child, Command, Stdio};

use brink::journal::{FsyncPolicy, Journal};
use brink::shm::Output;
use tempfile::TempDir;

/// The files of one run: feed and order rings, journal, configuration, scenario and klines.
pub struct RunFiles {
    /// The folder holding them all (removed on drop).
    pub dir: TempDir,
    /// Feed ring (created by the publisher).
    pub feed: PathBuf,
    /// Order ring (created by the engine).
    pub orders: PathBuf,
    /// Journal.
    pub journal: PathBuf,
    /// `brink run` configuration.
    pub config: PathBuf,
    /// Binance kline CSV the publisher replays.
    pub klines: PathBuf,
}

impl RunFiles {
    /// Writes `scenario` (TOML text), `klines` (a kline CSV) and a configuration: an order ring
    /// of `orders_capacity` records, an insurance fund of `insurance_fund`, the `fuse-last2`
    /// topology with back-off waits plus `topology_extra` (more `[topology]` lines). Builds the
    /// `brink` and `brink-feed` binaries, so that nothing is built between starting the two
    /// processes.
    ///
    /// Panics (test set-up failure) when a file cannot be written.
    pub fn new(
        scenario: &str,
        klines: &str,
        orders_capacity: u64,
        insurance_fund: u64,
        topology_extra: &str,
    ) -> RunFiles {
        let dir = tempfile::tempdir().expect("temp dir");
        let at = |name: &str| dir.path().join(name);
        let files = RunFiles {
            feed: at("feed.ring"),
            orders: at("orders.ring"),
            journal: at("orders.journal"),
            config: at("brink.toml"),
            klines: at("klines.csv"),
            dir,
        };
        let scenario_path = files.dir.path().join("scenario.toml");
        std::fs::write(&scenario_path, scenario).expect("write scenario");
        std::fs::write(&files.klines, klines).expect("write klines");
        std::fs::write(
            &files.config,
            format!(
                "[feed]\npath = \"{}\"\nwait_ms = 60000\n[orders]\npath = \"{}\"\ncapacity = {orders_capacity}\n\
                 [journal]\npath = \"{}\"\n[accounts]\nscenario = \"{}\"\ninsurance_fund = {insurance_fund}\n\
                 [topology]\nmode = \"fuse-last2\"\nwait = \"backoff\"\n{topology_extra}\n",
                files.feed.display(),
                files.orders.display(),
                files.journal.display(),
                scenario_path.display()
            ),
        )
        .expect("write config");
        crate::bin("brink");
        crate::bin("brink-feed");
        files
    }

    /// Starts `brink run` on the configuration, stdout and stderr piped.
    pub fn start_engine(&self) -> Child {
        Command::new(crate::bin("brink"))
            .args(["run", "--config"])
            .arg(&self.config)
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("brink run starts")
    }

    /// Replays the klines into a fresh feed ring at `rate` records per second, to the end.
    ///
    /// Panics when the publisher fails.
    pub fn publish(&self, rate: u32) {
        let out = Command::new(crate::bin("brink-feed"))
            .args(["publish", "--create", "--rate", &rate.to_string(), "--feed"])
            .arg(&self.feed)
            .arg("--file")
            .arg(&self.klines)
            .stdout(Stdio::null())
            .output()
            .expect("brink-feed publishes");
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
    }

    /// The decisions in the journal, in order (every record must decode as an entry).
    pub fn journaled(&self) -> Vec<Output> {
        let (_, recovery) = Journal::open(&self.journal, FsyncPolicy::Never).expect("journal");
        for bytes in &recovery.records {
            brink::recovery::Entry::decode(bytes).expect("journal record decodes");
        }
        brink::recovery::journaled_outputs(&recovery.records)
    }
}
