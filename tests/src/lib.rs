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

/// Path of the workspace binary `name` in the profile dir of the running test executable
/// (`target/<profile>/deps/test-exe` → `target/<profile>/name`). It may not be built yet.
pub fn bin_path(name: &str) -> PathBuf {
    let exe = std::env::current_exe().expect("the test executable has a path");
    let profile_dir = exe
        .parent()
        .and_then(|deps| deps.parent())
        .expect("the test executable lives in target/<profile>/deps");
    profile_dir.join(name)
}
