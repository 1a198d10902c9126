//! The real BTCUSDT crash of 2025-10-10 (Binance USDⓈ-M mark price, 5-minute klines, four ticks
//! per bar) through two risk engines over the same generated accounts: one evaluating only the
//! units whose safe band a tick left (`Scan::Index`), one evaluating every unit on every tick
//! (`Scan::All`, the brute-force oracle). On every tick both must emit the same decisions and
//! reach the same unit states. Skipped when ../shared/data is absent.

use anyhow::{Context, Result, ensure};
use brink::bulk::synth;
use brink::feed::{FileSource, Scaling};
use brink::margin::{InstrumentId, Price};
use brink::risk::{Book, RiskConfig, RiskEngine, Scan};
use brink::shm::{Input, Output};

const FILE: &str = "binance-um_BTCUSDT_markprice_5m_2025-10-10.zip";
/// Feed time between two ticks of a 5-minute bar replayed as four ticks.
const TICK_NS: u64 = 75_000_000_000;

/// The crash path as BTC marks (2 price decimals, the synthetic BTC instrument's).
fn crash_marks() -> Result<Option<Vec<i64>>> {
    let Some(dir) = brink_tests::shared_data() else {
        return Ok(None);
    };
    let path = dir.join(FILE);
    if !path.is_file() {
        println!("skipped: {} is absent", path.display());
        return Ok(None);
    }
    let scaling = Scaling {
        instrument: 0,
        price_decimals: 2,
        qty_decimals: 3,
    };
    let mut marks = Vec::new();
    for input in FileSource::open(&path, scaling)? {
        if let Input::Tick(t) = input? {
            marks.push(t.mark_px);
        }
    }
    ensure!(
        marks.len() == 288 * 4,
        "{FILE}: {} ticks, expected 288 bars × 4",
        marks.len()
    );
    Ok(Some(marks))
}

fn sorted(mut v: Vec<Output>) -> Vec<Output> {
    v.sort_by_key(|o| format!("{o:?}"));
    v
}

#[test]
fn index_and_brute_force_agree_on_every_tick_of_the_crash() -> Result<()> {
    let Some(path) = crash_marks()? else {
        return Ok(());
    };
    let (table, mut marks) = synth::instruments(6, 10);
    // Open the book at the day's first mark so that entries sit around it.
    ensure!(marks.set(InstrumentId(0), Price(path[0])), "first mark");
    let accounts = synth::generate(&table, &marks, 4_000, 2025, 2)?;
    let btc_holders = accounts
        .iter()
        .filter(|a| a.position_index(InstrumentId(0)).is_some())
        .count();
    ensure!(btc_holders > 1_000, "only {btc_holders} accounts hold BTC");
    let config = RiskConfig::default();
    let mut fast = RiskEngine::new(
        table.clone(),
        marks.clone(),
        accounts.clone(),
        config,
        Scan::Index,
    );
    let mut slow = RiskEngine::new(table, marks, accounts, config, Scan::All);
    ensure!(
        fast.unit_states().eq(slow.unit_states()),
        "states differ after loading"
    );
    let (low, high) = (
        path.iter().min().context("empty path")?,
        path.iter().max().context("empty path")?,
    );
    for (i, &mark) in path.iter().enumerate() {
        let seq = i as u64 + 1;
        let now_ns = seq * TICK_NS;
        let (mut got, mut want) = (Vec::new(), Vec::new());
        fast.on_tick_at(0, Price(mark), Book::default(), seq, now_ns, &mut |o| {
            got.push(o)
        });
        slow.on_tick_at(0, Price(mark), Book::default(), seq, now_ns, &mut |o| {
            want.push(o)
        });
        let (got, want) = (sorted(got), sorted(want));
        ensure!(
            got == want,
            "tick {seq} (mark {mark}): outputs differ\n index: {got:?}\n all:   {want:?}"
        );
        ensure!(
            fast.unit_states().eq(slow.unit_states()),
            "tick {seq} (mark {mark}): unit states differ: first {:?}",
            fast.unit_states()
                .zip(slow.unit_states())
                .find(|(a, b)| a != b)
        );
    }
    let (f, s) = (fast.counters(), slow.counters());
    println!(
        "{} ticks, BTC {low}..{high}: {} margin calls, {} liquidations, {} orders, {} ADL; \
         evaluations index {} vs all {}",
        path.len(),
        f.margin_calls,
        f.liquidations,
        f.orders,
        f.adl,
        f.evaluations,
        s.evaluations
    );
    ensure!(f.margin_calls > 0, "the crash raised no margin call");
    ensure!(f.liquidations > 0, "the crash liquidated nobody");
    ensure!(
        f.evaluations < s.evaluations,
        "the index evaluated {} units, brute force {}",
        f.evaluations,
        s.evaluations
    );
    Ok(())
}
