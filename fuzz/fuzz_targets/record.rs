//! Feed and order ring records: 64 bytes decode as an input, an output, or a typed error.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    if let Some(r) = brink::shm::Record::from_le_bytes(data) {
        let _ = brink::shm::Input::decode(&r);
        let _ = brink::shm::Output::decode(&r);
    }
});
