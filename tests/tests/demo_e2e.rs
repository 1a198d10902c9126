//! `brink demo` end to end: two real processes (the engine and its venue), real shared-memory
//! rings and a real journal. The journal and the order ring must hold the same records, in the
//! same order, and the crash must have caused margin calls, liquidations and fills.

use std::process::Command;

use brink::journal::{FsyncPolicy, Journal};
use brink::shm::{Expect, Output, RingFile, RingKind};

#[test]
fn the_demo_liquidates_through_the_whole_pipeline() {
    let dir = tempfile::tempdir().expect("temp dir");
    let out = Command::new(brink_tests::bin("brink"))
        .args([
            "demo",
            "--accounts",
            "4000",
            "--rate",
            "200000",
            "--steps",
            "4",
            "--topology",
            "fuse-last2",
        ])
        .arg("--dir")
        .arg(dir.path())
        .output()
        .expect("brink demo runs");
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "demo failed:\n{stdout}\n{stderr}");
    assert!(stdout.contains("== summary"), "{stdout}");

    // The journal, read back as a restarted engine would.
    let (_, recovery) = Journal::open(&dir.path().join("orders.journal"), FsyncPolicy::Never)
        .expect("journal opens");
    assert_eq!(recovery.torn_bytes, 0);
    for bytes in &recovery.records {
        brink::recovery::Entry::decode(bytes).expect("journal record decodes");
    }
    let journaled: Vec<Output> = brink::recovery::journaled_outputs(&recovery.records);

    // The order ring, read back record by record.
    let ring = RingFile::open(
        &dir.path().join("orders.ring"),
        Expect {
            kind: Some(RingKind::Orders),
            capacity: None,
        },
    )
    .expect("order ring opens");
    let published = ring.header().producer_cursor;
    assert_eq!(
        published as usize,
        journaled.len(),
        "ring and journal counts"
    );
    assert!(
        published <= ring.capacity(),
        "the test reads the first lap only"
    );
    let in_ring: Vec<Output> = (0..published)
        .map(|pos| Output::decode(&ring.read_raw(pos)).expect("ring record decodes"))
        .collect();
    assert_eq!(
        in_ring, journaled,
        "the ring holds exactly what was journaled"
    );

    let calls = in_ring
        .iter()
        .filter(|o| matches!(o, Output::MarginCall(_)))
        .count();
    let orders = in_ring
        .iter()
        .filter(|o| matches!(o, Output::Liquidation(_)))
        .count();
    assert!(calls > 0, "the crash raises margin calls");
    assert!(orders > 0, "the crash liquidates");
    // Every order carries a positive quantity and limit.
    for o in &in_ring {
        if let Output::Liquidation(l) = o {
            assert!(l.qty > 0 && l.limit_px > 0, "{l:?}");
        }
    }
    let fills_line = stdout
        .lines()
        .find(|l| l.starts_with("  fills booked"))
        .expect("summary reports fills");
    let fills: u64 = fills_line
        .split_whitespace()
        .last()
        .and_then(|n| n.parse().ok())
        .expect("a count");
    assert!(
        fills > 0,
        "the venue's fills reach the engine: {fills_line}"
    );
}
