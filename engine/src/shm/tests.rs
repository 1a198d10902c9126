//! Protocol tests in one process (two threads or one). Cross-process tests live in `tests/`.

use std::io::{Seek, SeekFrom, Write};
use std::sync::atomic::Ordering;

use super::*;

fn tick(i: u64) -> Record {
    Input::Tick(Tick {
        instrument: (i % 3) as u32,
        mark_px: 1_000 + i as i64,
        ..Tick::default()
    })
    .encode()
}

fn temp() -> tempfile::TempDir {
    tempfile::tempdir().expect("temp dir")
}

#[test]
fn full_ring_refuses_then_accepts_after_release() {
    let dir = temp();
    let path = dir.path().join("r");
    let mut p = Producer::create(&path, RingKind::Feed, 4).expect("create");
    let mut c = Consumer::open(&path, Expect::default()).expect("open");
    for i in 0..4 {
        assert_eq!(p.try_push(tick(i)), Ok(i));
    }
    assert!(matches!(p.try_push(tick(4)), Err(Full(_))));
    match c.peek() {
        Slot::Ready(r) => assert_eq!(r.seq(), Some(0)),
        other => panic!("expected ready, got {other:?}"),
    }
    c.advance();
    // Not yet released: still full.
    assert!(p.try_push(tick(4)).is_err());
    c.release();
    assert_eq!(p.try_push(tick(4)), Ok(4));
    assert_eq!(c.ring().header().producer_cursor, 5);
}

#[test]
fn threads_see_every_record_once_in_order() {
    let dir = temp();
    let path = dir.path().join("r");
    let mut p = Producer::create(&path, RingKind::Feed, 8).expect("create");
    let mut c = Consumer::open(&path, Expect::default()).expect("open");
    const N: u64 = 50_000;
    let writer = std::thread::spawn(move || {
        let mut digest = DIGEST_SEED;
        for i in 0..N {
            let mut r = tick(i);
            let seq = p.push(r);
            r.commit = seq + 1;
            digest = r.fold_digest(digest);
        }
        p.close();
        digest
    });
    let mut digest = DIGEST_SEED;
    let mut n = 0;
    while n < N {
        match c.peek() {
            Slot::Ready(r) => {
                assert_eq!(r.seq(), Some(n));
                assert_eq!(Input::decode(&r), Input::decode(&tick(n)));
                digest = r.fold_digest(digest);
                c.advance();
                n += 1;
                if n % 3 == 0 {
                    c.release();
                }
            }
            Slot::Empty => {
                c.release();
                std::hint::spin_loop();
            }
            other => panic!("unexpected {other:?} at {n}"),
        }
    }
    assert_eq!(writer.join().expect("writer"), digest);
    assert_eq!(c.ring().header().producer_closed, N + 1);
}

#[test]
fn overrun_and_torn_slots_are_told_apart() {
    let dir = temp();
    let path = dir.path().join("r");
    let p = Producer::create(&path, RingKind::Feed, 4).expect("create");
    let ring = p.ring();
    // Forge: the producer claims 6 records; slot 0 holds seq 4 (a lap ahead), slot 1 garbage.
    ring.commit_word(0).store(5, Ordering::Release);
    ring.commit_word(1).store(77, Ordering::Release);
    ring.word(layout::off::PRODUCER_CURSOR)
        .store(6, Ordering::Release);
    let mut c = Consumer::open(&path, Expect::default()).expect("open");
    assert_eq!(c.peek(), Slot::Overrun { seq: 4 });
    c.advance();
    assert_eq!(c.peek(), Slot::Torn { commit: 77 });
}

#[test]
fn attach_resumes_after_the_last_committed_record() {
    let dir = temp();
    let path = dir.path().join("r");
    let mut p = Producer::create(&path, RingKind::Feed, 8).expect("create");
    p.push(tick(0));
    p.push(tick(1));
    // Simulate a crash after committing seq 2 but before storing the cursor.
    p.ring().commit_word(2).store(3, Ordering::Release);
    drop(p);
    let p2 = Producer::attach(&path, RingKind::Feed).expect("attach");
    assert_eq!(p2.published(), 3);
    assert_eq!(p2.ring().header().producer_pid, std::process::id());
}

#[test]
fn bad_files_give_errors_naming_found_and_expected() {
    let dir = temp();
    let path = dir.path().join("r");
    drop(Producer::create(&path, RingKind::Feed, 16).expect("create"));

    let err = RingFile::open(
        &path,
        Expect {
            kind: Some(RingKind::Orders),
            capacity: None,
        },
    )
    .expect_err("wrong kind");
    assert!(matches!(err, ShmError::WrongKind { .. }), "{err}");
    let err = RingFile::open(
        &path,
        Expect {
            kind: None,
            capacity: Some(32),
        },
    )
    .expect_err("cap");
    assert!(err.to_string().contains("capacity 16"), "{err}");

    let len = std::fs::metadata(&path).expect("meta").len();
    let f = std::fs::OpenOptions::new()
        .write(true)
        .open(&path)
        .expect("open");
    f.set_len(len - 64).expect("truncate");
    let err = RingFile::open(&path, Expect::default()).expect_err("truncated");
    assert!(
        matches!(err, ShmError::Truncated { found, expected, .. } if found == len - 64 && expected == len),
        "{err}"
    );
    f.set_len(100).expect("truncate");
    assert!(matches!(
        RingFile::open(&path, Expect::default()),
        Err(ShmError::Truncated { found: 100, .. })
    ));

    let mut f = std::fs::OpenOptions::new()
        .write(true)
        .open(&path)
        .expect("open");
    f.set_len(len).expect("regrow");
    f.seek(SeekFrom::Start(0)).expect("seek");
    f.write_all(b"NOTARING").expect("write");
    let err = RingFile::open(&path, Expect::default()).expect_err("magic");
    assert!(err.to_string().contains("not a Brink ring file"), "{err}");
    f.seek(SeekFrom::Start(0)).expect("seek");
    f.write_all(&MAGIC.to_le_bytes()).expect("write");
    f.write_all(&99u32.to_le_bytes()).expect("write");
    let err = RingFile::open(&path, Expect::default()).expect_err("version");
    assert!(
        matches!(err, ShmError::BadVersion { found: 99, .. }),
        "{err}"
    );

    assert!(matches!(
        RingFile::create(&path, RingKind::Feed, 3),
        Err(ShmError::InvalidCapacity { requested: 3 })
    ));
}

#[test]
fn cursors_at_the_end_of_u64_do_not_overflow() {
    let dir = temp();
    let path = dir.path().join("r");
    let mut p = Producer::create(&path, RingKind::Feed, 4).expect("create");
    let ring = p.ring();
    ring.word(layout::off::CONSUMER_CURSOR)
        .store(u64::MAX - 1, Ordering::Release);
    ring.word(layout::off::PRODUCER_CURSOR)
        .store(u64::MAX, Ordering::Release);
    ring.commit_word(u64::MAX - 1)
        .store(u64::MAX, Ordering::Release);
    let mut c = Consumer::open(&path, Expect::default()).expect("open");
    assert!(matches!(c.peek(), Slot::Ready(r) if r.seq() == Some(u64::MAX - 1)));
    c.advance();
    assert_eq!(c.peek(), Slot::Empty);
    c.advance();
    c.release();
    // A consumer cursor ahead of the producer's is an empty ring for the producer.
    assert!(p.try_push(tick(0)).is_ok());
    drop(p);
    let p2 = Producer::attach(&path, RingKind::Feed).expect("attach");
    assert!(p2.published() > 0);
}

#[test]
fn a_record_round_trips_through_its_file_bytes() {
    let record = Record {
        commit: 7,
        publish_ns: 123_456_789,
        tag: 17,
        aux: 2,
        reserved: 0,
        instrument: 3,
        payload: [1, u64::MAX, 42, 0, 9],
    };
    let bytes = record.to_le_bytes();
    assert_eq!(&bytes[..8], &7u64.to_le_bytes());
    assert_eq!(bytes[16], 17);
    assert_eq!(Record::from_le_bytes(&bytes), Some(record));
    assert_eq!(Record::from_le_bytes(&bytes[..63]), None);
}

#[test]
fn a_given_publish_stamp_is_the_one_the_reader_sees() {
    let dir = temp();
    let path = dir.path().join("r");
    let mut p = Producer::create(&path, RingKind::Feed, 4).expect("create");
    let mut c = Consumer::open(&path, Expect::default()).expect("open");
    let before = crate::clock::now_ns();
    assert_eq!(p.try_push_at(tick(0), 1_234), Ok(0));
    assert_eq!(p.push_at(tick(1), 5_678), 1);
    assert_eq!(p.push(tick(2)), 2);
    let mut stamps = Vec::new();
    while let Slot::Ready(r) = c.peek() {
        stamps.push(r.publish_ns);
        c.advance();
    }
    assert_eq!(stamps[..2], [1_234, 5_678]);
    assert!(
        stamps[2] >= before,
        "an unstamped push takes the time of writing"
    );
    // The heartbeat still tells the time, not the stamp.
    assert!(c.ring().header().producer_heartbeat_ns >= before);
}
