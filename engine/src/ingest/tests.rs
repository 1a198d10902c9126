//! Ingest checks in one process; the two-process tests live in `tests/tests/feed_*.rs`.

use std::sync::atomic::Ordering;

use super::*;
use crate::shm::{Fill, Heartbeat, Producer, Status, Tick, layout::off};

fn tick(instrument: u32, mark_px: i64) -> Input {
    Input::Tick(Tick {
        instrument,
        mark_px,
        bid_px: mark_px - 1,
        ask_px: mark_px + 1,
        bid_qty: 5,
        ask_qty: 6,
        ..Tick::default()
    })
}

fn config() -> IngestConfig {
    IngestConfig {
        instruments: 2,
        band_bps: 1_000,
        stale_after_ns: 20_000_000,
        restart_check_ns: 0,
        ..IngestConfig::default()
    }
}

fn drain(ingest: &mut Ingest) -> (Vec<FeedEvent>, PollStatus) {
    let mut events = Vec::new();
    let status = ingest.poll(1_000, |e| events.push(e));
    (events, status)
}

#[test]
fn bad_records_are_counted_by_reason_and_good_ones_pass() {
    let dir = tempfile::tempdir().expect("dir");
    let path = dir.path().join("feed");
    let mut p = Producer::create(&path, RingKind::Feed, 64).expect("create");
    let mut ingest = Ingest::open(&path, config()).expect("open");
    let crossed = Input::Tick(Tick {
        instrument: 0,
        mark_px: 100,
        bid_px: 101,
        ask_px: 100,
        ..Tick::default()
    });
    let bad_status = {
        let mut r = Input::Status(Status {
            instrument: 0,
            state: crate::shm::InstrumentState::Halted,
            settle_px: 0,
        })
        .encode();
        r.aux = 77;
        r
    };
    let records = [
        tick(0, 100).encode(),
        tick(7, 100).encode(), // unknown instrument
        tick(0, 0).encode(),   // non-positive
        tick(0, 200).encode(), // out of band (+100 %)
        crossed.encode(),      // crossed
        Record {
            tag: 99,
            ..Record::default()
        }, // unknown tag
        bad_status,            // bad field
        Input::Fill(Fill {
            instrument: 0,
            qty: 0,
            price_px: 100,
            ..Fill::default()
        })
        .encode(),
        tick(0, 105).encode(),
        Input::Heartbeat(Heartbeat::default()).encode(),
    ];
    for r in records {
        p.push(r);
    }
    let (events, status) = drain(&mut ingest);
    assert_eq!(status, PollStatus::Data(records.len()));
    let seqs: Vec<u64> = events
        .iter()
        .filter(|e| matches!(e.body, FeedBody::Input(_)))
        .map(|e| e.seq)
        .collect();
    assert_eq!(seqs, vec![0, 8, 9]);
    // The out-of-band tick was held, with an alert right after it.
    let held: Vec<_> = events
        .iter()
        .filter_map(|e| match e.body {
            FeedBody::Alert(a) => Some((e.seq, a.code, a.arg1)),
            FeedBody::Input(_) => None,
        })
        .collect();
    assert_eq!(held, vec![(3, alert_code::PRICE_HELD, 200)]);
    let c = ingest.counters();
    assert_eq!(c.accepted, 3);
    for (reason, want) in [
        (Reject::UnknownInstrument, 1),
        (Reject::NonPositivePrice, 1),
        (Reject::OutOfBand, 1),
        (Reject::CrossedBook, 1),
        (Reject::UnknownTag, 1),
        (Reject::BadField, 2),
        (Reject::TimeBackwards, 0),
        (Reject::Torn, 0),
    ] {
        assert_eq!(c.rejected.get(reason), want, "{}", reason.name());
    }
    assert!(events.iter().all(|e| e.receive_ns >= e.publish_ns));
    // The consumer cursor was released: the producer can fill the ring again.
    assert_eq!(ingest.header().consumer_cursor, records.len() as u64);
}

#[test]
fn a_timestamp_going_backwards_is_refused() {
    let dir = tempfile::tempdir().expect("dir");
    let path = dir.path().join("feed");
    let mut p = Producer::create(&path, RingKind::Feed, 8).expect("create");
    let mut ingest = Ingest::open(&path, config()).expect("open");
    p.push(tick(1, 50).encode());
    p.push(tick(1, 51).encode());
    // Rewind the publish stamp of seq 1 below seq 0's (forged in place before reading).
    let slot = p.ring().slot(1);
    // SAFETY: slot + 1 is the publish word of slot 1 in the live mapping; nobody reads it yet.
    unsafe { core::ptr::write_volatile(slot.add(1), 1) };
    let (events, _) = drain(&mut ingest);
    assert_eq!(events.len(), 1);
    assert_eq!(ingest.counters().rejected.get(Reject::TimeBackwards), 1);
}

#[test]
fn gap_raises_an_alert_and_torn_slots_are_counted() {
    let dir = tempfile::tempdir().expect("dir");
    let path = dir.path().join("feed");
    let p = Producer::create(&path, RingKind::Feed, 4).expect("create");
    let ring = p.ring();
    // Slot 0 holds seq 4 (a lap ahead); the producer claims 5 records.
    ring.commit_word(0).store(5, Ordering::Release);
    ring.word(off::PRODUCER_CURSOR).store(5, Ordering::Release);
    let mut ingest = Ingest::open(&path, config()).expect("open");
    let (events, _) = drain(&mut ingest);
    let c = ingest.counters();
    assert_eq!(c.gaps, 1);
    assert_eq!(c.gap_records, 4);
    match events.first().map(|e| e.body) {
        Some(FeedBody::Alert(a)) => {
            assert_eq!((a.code, a.arg0, a.arg1), (alert_code::SEQUENCE_GAP, 0, 4));
        }
        other => panic!("expected a gap alert, got {other:?}"),
    }
    // Seq 4's payload is all zero: tag 0 is unknown.
    assert_eq!(c.rejected.get(Reject::UnknownTag), 1);

    let dir2 = tempfile::tempdir().expect("dir");
    let path2 = dir2.path().join("feed");
    let p2 = Producer::create(&path2, RingKind::Feed, 4).expect("create");
    p2.ring().commit_word(1).store(12345, Ordering::Release);
    p2.ring()
        .word(off::PRODUCER_CURSOR)
        .store(2, Ordering::Release);
    let mut ingest2 = Ingest::open(&path2, config()).expect("open");
    drain(&mut ingest2);
    assert_eq!(ingest2.counters().rejected.get(Reject::Torn), 2);
}

#[test]
fn stale_then_restarted_producer_is_reported_and_followed() {
    let dir = tempfile::tempdir().expect("dir");
    let path = dir.path().join("feed");
    let mut p = Producer::create(&path, RingKind::Feed, 8).expect("create");
    let mut ingest = Ingest::open(&path, config()).expect("open");
    p.push(tick(0, 100).encode());
    drop(p);
    assert_eq!(drain(&mut ingest).0.len(), 1);
    std::thread::sleep(std::time::Duration::from_millis(40));
    let (events, status) = drain(&mut ingest);
    assert_eq!(status, PollStatus::Stale);
    assert!(
        matches!(events[..], [FeedEvent { body: FeedBody::Alert(a), .. }] if a.code == alert_code::PRODUCER_STALE)
    );
    assert!(ingest.is_stale());
    // A new producer replaces the file.
    let mut p2 = Producer::create(&path, RingKind::Feed, 8).expect("recreate");
    p2.push(tick(0, 101).encode());
    let (events, _) = drain(&mut ingest);
    assert!(
        events.iter().any(
            |e| matches!(e.body, FeedBody::Alert(a) if a.code == alert_code::PRODUCER_RESTARTED)
        ),
        "{events:?}"
    );
    assert!(!ingest.is_stale());
    let (events, status) = drain(&mut ingest);
    assert_eq!(status, PollStatus::Data(1));
    assert_eq!(events[0].seq, 0);
    assert_eq!(ingest.counters().restarts, 1);
    assert_eq!(ingest.counters().accepted, 2);
    p2.close();
    assert_eq!(drain(&mut ingest).1, PollStatus::Closed);
}

#[test]
fn zero_instruments_is_a_config_error() {
    let dir = tempfile::tempdir().expect("dir");
    let path = dir.path().join("feed");
    drop(Producer::create(&path, RingKind::Feed, 8).expect("create"));
    let cfg = IngestConfig {
        instruments: 0,
        ..IngestConfig::default()
    };
    assert!(matches!(
        Ingest::open(&path, cfg),
        Err(IngestError::Config(_))
    ));
    let err = Ingest::open(&dir.path().join("missing"), IngestConfig::default()).err();
    assert!(err.is_some_and(|e| e.to_string().contains("missing")));
}

proptest::proptest! {
    #![proptest_config(proptest::prelude::ProptestConfig::with_cases(64))]

    /// Any bytes in the slots: every slot is accepted, rejected or counted lost; nothing panics.
    #[test]
    fn arbitrary_slots_are_accounted_for(
        words in proptest::collection::vec(proptest::prelude::any::<[u64; 8]>(), 1..64),
        keep_commit in proptest::prelude::any::<bool>(),
    ) {
        let dir = tempfile::tempdir().expect("dir");
        let path = dir.path().join("feed");
        let p = Producer::create(&path, RingKind::Feed, 64).expect("create");
        let n = words.len() as u64;
        for (i, w) in words.iter().enumerate() {
            let slot = p.ring().slot(i as u64);
            for (j, word) in w.iter().enumerate().skip(1) {
                // SAFETY: slot + j (j < 8) lies in slot i of the live mapping; no reader yet.
                unsafe { core::ptr::write_volatile(slot.add(j), *word) };
            }
            let commit = if keep_commit { i as u64 + 1 } else { w[0] };
            p.ring().commit_word(i as u64).store(commit, Ordering::Release);
        }
        p.ring().word(off::PRODUCER_CURSOR).store(n, Ordering::Release);
        let mut ingest = Ingest::open(&path, config()).expect("open");
        let mut delivered = 0u64;
        for _ in 0..4 {
            ingest.poll(1_000, |e| {
                if matches!(e.body, FeedBody::Input(_)) {
                    delivered += 1;
                }
            });
        }
        let c = ingest.counters();
        proptest::prop_assert_eq!(delivered, c.accepted);
        if keep_commit {
            proptest::prop_assert_eq!(c.accepted + c.rejected.total(), n);
            proptest::prop_assert_eq!(c.rejected.get(Reject::Torn), 0);
        } else {
            proptest::prop_assert!(c.accepted + c.rejected.total() + c.gap_records >= n);
        }
    }
}

fn tick_with_index(instrument: u32, mark: i64, index: i64) -> Record {
    Input::Tick(Tick {
        instrument,
        mark_px: mark,
        index_px: index,
        ..Tick::default()
    })
    .encode()
}

#[test]
fn a_jump_is_held_until_it_persists_or_the_index_agrees() {
    let dir = tempfile::tempdir().expect("dir");
    let path = dir.path().join("feed");
    let mut p = Producer::create(&path, RingKind::Feed, 64).expect("create");
    let mut ingest = Ingest::open(&path, config()).expect("open");
    let marks = |events: &[FeedEvent]| -> Vec<i64> {
        events
            .iter()
            .filter_map(|e| match e.body {
                FeedBody::Input(Input::Tick(t)) => Some(t.mark_px),
                _ => None,
            })
            .collect()
    };
    // A one-tick spike that reverts is never accepted.
    for m in [1_000, 1_500, 1_010] {
        p.push(tick_with_index(0, m, 0));
    }
    let (events, _) = drain(&mut ingest);
    assert_eq!(marks(&events), vec![1_000, 1_010]);
    // A jump that persists for three ticks (confirm_ticks = 3) is accepted on the third.
    for m in [1_500, 1_510, 1_505, 1_520] {
        p.push(tick_with_index(0, m, 0));
    }
    let (events, _) = drain(&mut ingest);
    assert_eq!(marks(&events), vec![1_505, 1_520]);
    let codes: Vec<u32> = events
        .iter()
        .filter_map(|e| match e.body {
            FeedBody::Alert(a) => Some(a.code),
            FeedBody::Input(_) => None,
        })
        .collect();
    assert_eq!(
        codes,
        vec![alert_code::PRICE_HELD, alert_code::PRICE_CONFIRMED]
    );
    // A jump the index agrees with (index within 1 % of the mark, and out of band too) is
    // accepted at once.
    p.push(tick_with_index(0, 2_200, 2_190));
    let (events, _) = drain(&mut ingest);
    assert_eq!(marks(&events), vec![2_200]);
    assert_eq!(ingest.counters().confirmed_moves, 2);
    assert_eq!(ingest.counters().rejected.get(Reject::OutOfBand), 3);
}
