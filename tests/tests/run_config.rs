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

#[test]
fn check_refuses_a_core_it_may_not_use_and_a_foreign_feed_file() {
    let dir = tempfile::tempdir().expect("temp dir");
    let root = brink_tests::workspace_root();
    let scenario = root.join("examples/scenario.toml");
    let run = |name: &str, text: String| {
        let file = dir.path().join(name);
        std::fs::write(&file, text).expect("write");
        Command::new(brink_tests::bin("brink"))
            .args(["run", "--check", "--config"])
            .arg(&file)
            .output()
            .expect("brink runs")
    };
    let base = format!(
        "[accounts]\nscenario = \"{}\"\n[feed]\npath = \"feed.ring\"\n[orders]\npath = \"orders.ring\"\n[journal]\npath = \"j\"\n",
        scenario.display()
    );
    let out = run(
        "cores.toml",
        format!("{base}[topology]\nmode = \"fused1\"\nwait = \"backoff\"\ncores = [100000]\n"),
    );
    assert_eq!(out.status.code(), Some(2));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("topology.cores"), "{stderr}");
    assert!(stderr.contains("core 100000"), "{stderr}");

    std::fs::write(dir.path().join("feed.ring"), b"something else entirely").expect("write");
    let out = run("feed.toml", base.clone());
    assert_eq!(out.status.code(), Some(2));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("feed.path"), "{stderr}");
    std::fs::remove_file(dir.path().join("feed.ring")).expect("remove");

    let out = run("fine.toml", base);
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "{stdout}");
    assert!(
        stdout.contains("feed ring") && stdout.contains("not there yet"),
        "{stdout}"
    );
    assert!(
        stdout.contains("snapshot") && stdout.contains("none yet"),
        "{stdout}"
    );
}
