//! Helpers for Brink's end-to-end tests: locating binaries, the shared data folder, temp dirs.

use std::path::PathBuf;

/// The folder of real market data beside the project (`../shared/data` from the workspace root),
/// or `None` with a printed reason when it is absent, as on a fresh clone.
pub fn shared_data() -> Option<PathBuf> {
    let root = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("..");
    let dir = root.join("../shared/data");
    if dir.is_dir() {
        Some(dir)
    } else {
        println!(
            "skipped: {} is absent (a fresh clone has no shared data)",
            dir.display()
        );
        None
    }
}
