//! What does timing a hop cost? One stamp (clock read), one histogram record, and the full
//! `stamp + record` a stage pays per hop. Target: ≤ 30 ns per hop including the clock read.
//!
//! `cargo bench -p brink-bench --bench telemetry`; criterion's medians are in
//! `target/criterion/telemetry/*/new/estimates.json` (`median.point_estimate`, ns).
//! On a shared VM the clock read varies with the hypervisor's clocksource: compare runs on the
//! same machine only.

use std::hint::black_box;
use std::time::Instant;

use brink::clock;
use brink::telemetry::{Collector, Hop, HopSet, Recorder, new_histogram};
use criterion::{Criterion, criterion_group, criterion_main};

/// 4096 latencies, log-uniform over roughly 60 ns .. 60 µs, so records land in many buckets as
/// they do in a real run (a single repeated value would keep one counter hot in L1).
fn latencies() -> Vec<u64> {
    let mut x: u64 = 0x9E37_79B9_7F4A_7C15;
    (0..4096)
        .map(|_| {
            // xorshift64: deterministic, no allocation in the loop being timed.
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            let exp = 6 + (x % 10); // 2^6 .. 2^15
            (1u64 << exp) + (x >> 40) % (1u64 << exp)
        })
        .collect()
}

fn recorder(collector: &mut Collector) -> Recorder {
    match collector.recorder("bench", HopSet::of(&[Hop::Risk, Hop::E2e])) {
        Ok(r) => r,
        Err(e) => panic!("bench set-up: {e}"),
    }
}

/// Behaviour before timing: what the recorder records is what the collector reports.
fn check_behaviour() {
    let mut collector = Collector::new().expect("collector");
    let mut rec = recorder(&mut collector);
    let values = latencies();
    for &v in &values {
        rec.record(Hop::Risk, v);
    }
    let t0 = clock::now_ns();
    let t1 = rec.stamp_since(Hop::E2e, t0);
    assert!(t1 >= t0);
    drop(rec);
    collector.collect().expect("collect");
    collector.close_interval(clock::now_ns()).expect("close");
    let report = collector.cumulative();
    assert_eq!(
        report.get("risk").map(|s| s.count),
        Some(values.len() as u64)
    );
    assert_eq!(report.get("e2e").map(|s| s.count), Some(1));
}

fn bench(c: &mut Criterion) {
    check_behaviour();
    if let Some(core) = core_affinity::get_core_ids().and_then(|ids| ids.last().copied()) {
        core_affinity::set_for_current(core);
    }
    let values = latencies();
    let mut g = c.benchmark_group("telemetry");

    g.bench_function("clock_now_ns", |b| b.iter(clock::now_ns));
    g.bench_function("std_instant_now", |b| b.iter(Instant::now));
    // For comparison only: the raw TSC, which would need calibrating against CLOCK_MONOTONIC to
    // be comparable across processes.
    #[cfg(target_arch = "x86_64")]
    g.bench_function("rdtsc", |b| {
        // SAFETY: RDTSC exists on every x86-64 CPU and only reads the time-stamp counter.
        b.iter(|| unsafe { core::arch::x86_64::_rdtsc() })
    });

    let mut hist = new_histogram().expect("histogram");
    let mut i = 0usize;
    g.bench_function("histogram_record", |b| {
        b.iter(|| {
            i = (i + 1) & 4095;
            hist.saturating_record(black_box(values[i]));
        })
    });
    assert!(!hist.is_empty());

    let mut collector = Collector::new().expect("collector");
    let mut rec = recorder(&mut collector);
    g.bench_function("recorder_record", |b| {
        b.iter(|| {
            i = (i + 1) & 4095;
            rec.record(black_box(Hop::Risk), black_box(values[i]));
        })
    });

    // The per-hop cost a stage pays: read the clock, record now − previous stamp, keep the stamp.
    let mut last = clock::now_ns();
    g.bench_function("stamp_and_record", |b| {
        b.iter(|| {
            last = rec.stamp_since(black_box(Hop::E2e), last);
        })
    });

    // The idle check a stage makes once per batch, with no snapshot requested.
    g.bench_function("poll_no_request", |b| b.iter(|| rec.poll()));
    g.finish();

    drop(rec);
    collector.collect().expect("collect");
}

criterion_group!(benches, bench);
criterion_main!(benches);
