//! Helpers for Brink's end-to-end tests: locating binaries, the shared data folder, temp dirs.

pub mod mutate;
pub mod run;

use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::Mutex;

/// The folder of real market data beside the project (`../shared/data` from the workspace root),
/// or `None` with a printed reason when it is absent, as on a fresh clone.
pub fn shared_data() -> Option<PathBuf> {
    let root = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("..");
    let dir = root.join("../shared/data");
    if dir.is_dir() {
        Some(dir)
    } else {
        println!(
            "skipped: {} is absent (a fresh clone has no shared data)",
            dir.display()
        );
        None
    }
}

/// The workspace root (the folder holding the top-level `Cargo.toml`).
pub fn workspace_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .map_or_else(|| PathBuf::from(".."), Path::to_path_buf)
}

/// The path of a workspace binary (`brink`, `brink-feed`, `brink-accounts`, ...) built with the
/// same profile as the running test, built first with `cargo build --bin NAME` so that it is
/// never stale (a no-op when it is fresh). Integration tests in this package cannot use
/// `env!("CARGO_BIN_EXE_…")` for binaries of other packages; this finds `target/{debug,release}/NAME`
/// next to the test executable (`target/<profile>/deps/<test>`).
///
/// Panics (test set-up failure, not input) when the binary cannot be built.
pub fn bin(name: &str) -> PathBuf {
    static BUILT: Mutex<Vec<String>> = Mutex::new(Vec::new());
    let exe = std::env::current_exe().expect("the test executable has a path");
    let profile_dir = exe
        .parent()
        .and_then(Path::parent)
        .expect("test executables live in target/<profile>/deps")
        .to_path_buf();
    let path = profile_dir.join(format!("{name}{}", std::env::consts::EXE_SUFFIX));
    let mut built = BUILT.lock().unwrap_or_else(|e| e.into_inner());
    if !built.iter().any(|b| b == name) {
        let release = profile_dir.file_name().is_some_and(|n| n == "release");
        let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".to_string());
        let mut cmd = Command::new(cargo);
        cmd.current_dir(workspace_root())
            .args(["build", "--quiet", "--bin", name]);
        if release {
            cmd.arg("--release");
        }
        // Build into the same target dir as the tests.
        if let Some(target) = profile_dir.parent() {
            cmd.env("CARGO_TARGET_DIR", target);
        }
        let status = cmd.status().expect("cargo can be started");
        assert!(status.success(), "cargo build --bin {name} failed");
        built.push(name.to_string());
    }
    assert!(path.is_file(), "{} was not built", path.display());
    path
}

/// A fixture file under `tests/fixtures/`.
pub fn fixture(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("fixtures")
        .join(name)
}

/// A Binance kline CSV (with header) falling from `from` to `to` in bars `step` wide, one minute
/// each: open and high at the bar's top, low and close at its bottom.
pub fn falling_klines(from: u64, to: u64, step: u64) -> String {
    let mut csv = String::from(
        "open_time,open,high,low,close,volume,close_time,quote_volume,count,taker_buy_volume,taker_buy_quote_volume,ignore\n",
    );
    let mut t = 1_700_000_000_000u64;
    let mut p = from;
    while p > to {
        let next = p.saturating_sub(step).max(to);
        csv.push_str(&format!(
            "{t},{p},{p},{next},{next},0,{},0,60,0,0,0\n",
            t + 59_999
        ));
        t += 60_000;
        p = next;
    }
    csv
}

/// Sends `sig` to the child process `pid`.
///
/// Panics (test set-up failure) when the signal cannot be delivered.
pub fn signal(pid: u32, sig: rustix::process::Signal) {
    let pid = i32::try_from(pid)
        .ok()
        .and_then(rustix::process::Pid::from_raw)
        .expect("a child pid is a positive i32");
    rustix::process::kill_process(pid, sig).expect("signal delivered");
}

/// Kills the process `pid` with SIGKILL when dropped (a test that panics half-way leaves no
/// engine running behind it); an already-ended process is left alone.
#[derive(Debug)]
pub struct KillOnDrop(pub u32);

impl Drop for KillOnDrop {
    fn drop(&mut self) {
        if let Some(pid) = i32::try_from(self.0)
            .ok()
            .and_then(rustix::process::Pid::from_raw)
        {
            let _ = rustix::process::kill_process(pid, rustix::process::Signal::KILL);
        }
    }
}
