//! Bulk accounts bytes against a one-instrument table: loads or names the record and field.
#![no_main]

use std::sync::OnceLock;

use brink::margin::InstrumentTable;
use libfuzzer_sys::fuzz_target;

const SCENARIO: &str = "[[instrument]]\nsymbol = \"BTCUSDT\"\nkind = \"perpetual\"\n\
    price_decimals = 2\nqty_decimals = 3\nliquidation_fee = \"0.003\"\n\
    tiers = [ { max_notional = \"50000\", mmr = \"0.004\", imr = \"0.008\" } ]\n";

fn table() -> &'static InstrumentTable {
    static TABLE: OnceLock<InstrumentTable> = OnceLock::new();
    TABLE.get_or_init(|| {
        brink::scenario::Scenario::parse(SCENARIO, std::path::Path::new("s.toml"))
            .map(|s| s.instruments)
            .unwrap_or_default()
    })
}

fuzz_target!(|data: &[u8]| {
    let _ = brink::bulk::parse(data, std::path::Path::new("a.bin"), table());
});
