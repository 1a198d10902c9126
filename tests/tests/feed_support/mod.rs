//! Shared helpers of the `feed_*` end-to-end tests: the `brink-feed` binary, ring paths, JSON.

#![allow(dead_code)]

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use anyhow::{Context, Result, bail};
use serde_json::Value;

/// The `brink-feed` binary of this test's profile, built so that it is never stale.
pub fn brink_feed() -> PathBuf {
    brink_tests::bin("brink-feed")
}

/// A fresh directory for ring files: under /dev/shm when present, the temp dir otherwise.
pub fn ring_dir() -> tempfile::TempDir {
    let shm = Path::new("/dev/shm");
    let builder = {
        let mut b = tempfile::Builder::new();
        b.prefix("brink-test-");
        b
    };
    if shm.is_dir() {
        builder.tempdir_in(shm).expect("temp dir in /dev/shm")
    } else {
        builder.tempdir().expect("temp dir")
    }
}

/// Runs `brink-feed args…` to completion.
pub fn run(args: &[&str]) -> Result<Output> {
    Command::new(brink_feed())
        .args(args)
        .output()
        .with_context(|| format!("running brink-feed {args:?}"))
}

/// Runs `brink-feed args…`, requires success, parses the last stdout line as JSON.
pub fn run_json(args: &[&str]) -> Result<Value> {
    let out = run(args)?;
    if !out.status.success() {
        bail!(
            "brink-feed {args:?} failed ({}): {}",
            out.status,
            String::from_utf8_lossy(&out.stderr)
        );
    }
    last_json(&out.stdout)
}

/// The last non-empty line of `stdout` as JSON.
pub fn last_json(stdout: &[u8]) -> Result<Value> {
    let text = String::from_utf8_lossy(stdout);
    let line = text
        .lines()
        .rfind(|l| !l.trim().is_empty())
        .context("no output")?;
    serde_json::from_str(line).with_context(|| format!("not JSON: {line}"))
}

/// `v[key]` as u64.
pub fn u(v: &Value, key: &str) -> u64 {
    v[key]
        .as_u64()
        .unwrap_or_else(|| panic!("{key} missing in {v}"))
}

/// Path as &str.
pub fn s(p: &Path) -> &str {
    p.to_str().expect("utf-8 path")
}
