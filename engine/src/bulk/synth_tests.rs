//! The generator's distributions: leverage spread, sides, modes; instruments are valid.

use super::*;

/// Leverage of every margin unit of `count` generated accounts: an isolated position's
/// notional / margin, a cross account's Σ cross notional / wallet.
fn spread(count: u64, seed: u64) -> (Vec<f64>, u64, u64, u64, u64) {
    let (table, marks) = instruments(20, 3);
    let mut g = AccountGen::new(&table, &marks, seed, 3).unwrap();
    let mut buf = Vec::new();
    let (mut lev, mut longs, mut shorts, mut cross, mut isolated) = (Vec::new(), 0, 0, 0, 0);
    for _ in 0..count {
        let (_, wallet) = g.next_into(&mut buf);
        assert_eq!(buf.len(), 3);
        let mut cross_notional = 0f64;
        for p in &buf {
            let inst = table.get(p.instrument).unwrap();
            let notional = p.qty.0.unsigned_abs() as f64 * p.entry.0 as f64
                / 10f64.powi((inst.price_decimals + inst.qty_decimals) as i32);
            if p.qty.0 > 0 {
                longs += 1;
            } else {
                shorts += 1;
            }
            match p.mode {
                MarginMode::Isolated => {
                    isolated += 1;
                    lev.push(notional / (p.margin_units as f64 / 1e8));
                }
                MarginMode::Cross => {
                    cross += 1;
                    cross_notional += notional;
                }
            }
        }
        if cross_notional > 0.0 {
            lev.push(cross_notional / (wallet as f64 / 1e8));
        }
    }
    (lev, longs, shorts, cross, isolated)
}

#[test]
fn leverage_sides_and_modes_are_spread_as_documented() {
    let (lev, longs, shorts, cross, isolated) = spread(20_000, 11);
    let n = lev.len() as f64;
    // Margins and wallets are rounded down to 10^-8, which may raise leverage by a hair.
    assert!(
        lev.iter().all(|&l| (0.999..=125.01).contains(&l)),
        "leverage outside 1x-125x: {:?}",
        lev.iter().find(|&&l| !(0.999..=125.01).contains(&l))
    );
    let mid = lev.iter().filter(|&&l| (5.0..=20.0).contains(&l)).count() as f64 / n;
    assert!((0.7..0.9).contains(&mid), "{mid} of units within 5x-20x");
    assert!(lev.iter().any(|&l| l > 40.0), "no highly levered unit");
    assert!(lev.iter().any(|&l| l < 3.0), "no lowly levered unit");
    let positions = (longs + shorts) as f64;
    let long_share = longs as f64 / positions;
    assert!((0.48..0.52).contains(&long_share), "longs {long_share}");
    let iso_share = isolated as f64 / (cross + isolated) as f64;
    assert!((0.27..0.33).contains(&iso_share), "isolated {iso_share}");
}

#[test]
fn the_same_seed_gives_the_same_accounts() {
    let (table, marks) = instruments(10, 5);
    let a = generate(&table, &marks, 500, 9, 3).unwrap();
    let b = generate(&table, &marks, 500, 9, 3).unwrap();
    let c = generate(&table, &marks, 500, 10, 3).unwrap();
    assert_eq!(a, b);
    assert_ne!(a, c);
    assert!(a.iter().all(|acc| acc.positions().len() == 3));
    let ids: Vec<u64> = a.iter().map(|acc| acc.id()).collect();
    assert_eq!(ids, (1..=500).collect::<Vec<_>>());
}

#[test]
fn a_written_file_loads_back_as_the_generated_accounts() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("synth.bin");
    let (table, marks) = instruments(8, 2);
    write(&path, &table, &marks, 300, 4, 3).unwrap();
    let loaded = super::super::load(&path, &table).unwrap();
    assert_eq!(loaded, generate(&table, &marks, 300, 4, 3).unwrap());
}

#[test]
fn synthetic_instruments_are_priced_and_tiered() {
    let (table, marks) = instruments(100, 1);
    assert_eq!(table.len(), 100);
    let btc = table.get(InstrumentId(0)).unwrap();
    assert_eq!(&*btc.symbol, "BTCUSDT");
    assert_eq!(marks.get(InstrumentId(0)), Some(Price(5_000_000)));
    assert_eq!(btc.tiers().len(), 6);
    for (id, inst) in table.iter() {
        let mark = marks.get(id).expect("every instrument has a mark");
        // A tick is at most 10^-4 of the mark.
        assert!(mark.0 >= 10_000, "{}: mark {} units", inst.symbol, mark.0);
        assert!(inst.tiers().len() == 6 && inst.tiers()[0].mmr.0 >= 4_000_000);
    }
    let (other, _) = instruments(100, 2);
    assert_ne!(
        table
            .iter()
            .map(|(_, i)| i.price_decimals)
            .collect::<Vec<_>>(),
        other
            .iter()
            .map(|(_, i)| i.price_decimals)
            .collect::<Vec<_>>()
    );
}

#[test]
fn a_healthy_book_has_only_healthy_accounts_and_the_count_asked() {
    let (table, marks) = instruments(10, 5);
    let level = CallLevel::default();
    let all = generate(&table, &marks, 5_000, 8, 3).unwrap();
    let unhealthy = all
        .iter()
        .filter(|a| a.evaluate(&table, &marks, level).unwrap().worst != MarginStatus::Healthy)
        .count();
    assert!(
        unhealthy > 0,
        "the plain generator drew no unhealthy account"
    );
    let healthy = generate_healthy(&table, &marks, 5_000, 8, 3, level).unwrap();
    assert_eq!(healthy.len(), 5_000);
    for a in &healthy {
        assert_eq!(
            a.evaluate(&table, &marks, level).unwrap().worst,
            MarginStatus::Healthy
        );
    }
    assert!(healthy.windows(2).all(|w| w[0].id() < w[1].id()));
}

#[test]
fn no_marks_is_an_error() {
    let (table, _) = instruments(3, 1);
    let err = AccountGen::new(&table, &MarkPrices::new(3), 1, 3).unwrap_err();
    assert!(matches!(err, GenError::NoMarks), "{err}");
}
