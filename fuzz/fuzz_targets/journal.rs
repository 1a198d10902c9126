//! Journal images: the good prefix is recovered, a torn tail cut, records decode or are refused.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    if let Ok((recovery, _)) = brink::journal::scan(data) {
        for payload in &recovery.records {
            if let Some(r) = brink::shm::Record::from_le_bytes(payload) {
                let _ = brink::shm::Output::decode(&r);
            }
        }
    }
});
