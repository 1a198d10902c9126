//! The commented example configuration is valid, and `brink run --check` reports it and bad ones
//! as documented (exit 0, or exit 2 naming the key).

use std::process::Command;

#[test]
fn the_example_configuration_checks_out() {
    let root = brink_tests::workspace_root();
    let example = root.join("examples/brink.toml");
    let config = brink::config::RunConfig::load(&example).expect("the example parses");
    assert_eq!(config.insurance_fund, 100_000);
    assert_eq!(config.scenario, root.join("examples/scenario.toml"));
    let out = Command::new(brink_tests::bin("brink"))
        .args(["run", "--check", "--config"])
        .arg(&example)
        .output()
        .expect("brink runs");
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{stdout}{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(stdout.contains("configuration valid"), "{stdout}");
    assert!(stdout.contains("2 units over 2 instruments"), "{stdout}");
    assert!(stdout.contains("topology:"), "{stdout}");
}

#[test]
fn a_bad_key_exits_2_naming_it() {
    let dir = tempfile::tempdir().expect("temp dir");
    let root = brink_tests::workspace_root();
    let file = dir.path().join("bad.toml");
    std::fs::write(
        &file,
        format!(
            "[accounts]\nscenario = \"{}\"\n\n[thresholds]\nmargin_call = \"0.8\"\nrearm = \"0.9\"\n",
            root.join("examples/scenario.toml").display()
        ),
    )
    .expect("write");
    let out = Command::new(brink_tests::bin("brink"))
        .args(["run", "--check", "--config"])
        .arg(&file)
        .output()
        .expect("brink runs");
    assert_eq!(out.status.code(), Some(2));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("thresholds.rearm"), "{stderr}");
    assert!(stderr.contains("bad.toml"), "{stderr}");
}
