//! Scenario text: parses or names file and line; a valid one evaluates without a panic.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let text = String::from_utf8_lossy(data);
    if let Ok(s) = brink::scenario::Scenario::parse(&text, std::path::Path::new("f.toml")) {
        for a in &s.accounts {
            let _ = a.evaluate(&s.instruments, &s.marks, s.call_level);
        }
    }
});
