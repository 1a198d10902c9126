//! `brink run` configuration text: parses or names file, line or key; never panics.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let text = String::from_utf8_lossy(data);
    let _ = brink::config::RunConfig::parse(&text, std::path::Path::new("/etc/brink.toml"));
});
