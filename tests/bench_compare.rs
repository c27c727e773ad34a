//! `bench compare` on two real runs' reports, and the progress bar: drawn
//! on a terminal, never when the output is piped or JSON.

mod common;

use common::{tiny_write, woodpecker};

fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

/// A one-second `bench write` on the memory store with `extra`, its JSON
/// in `path`.
fn write_report(path: &std::path::Path, extra: &[&str]) {
    let mut args = tiny_write("memory");
    args.extend(extra);
    let output = woodpecker(&args, &[]);
    assert!(output.status.success(), "{}", text(&output.stderr));
    std::fs::write(path, &output.stdout).unwrap();
}

#[test]
fn compare_names_the_differing_settings_and_every_changed_figure() {
    let dir = tempfile::tempdir().unwrap();
    let (a, b) = (dir.path().join("a.json"), dir.path().join("b.json"));
    write_report(&a, &[]);
    write_report(&b, &["--entry-bytes", "512"]);
    let output = woodpecker(
        &["bench", "compare", a.to_str().unwrap(), b.to_str().unwrap()],
        &[],
    );
    let stdout = text(&output.stdout);
    assert!(output.status.success(), "{stdout}{}", text(&output.stderr));
    assert!(stdout.contains("settings that differ:"), "{stdout}");
    let entry = stdout
        .lines()
        .find(|l| l.trim_start().starts_with("entry_bytes"))
        .unwrap_or_else(|| panic!("{stdout}"));
    assert!(entry.contains("1024 -> 512"), "{entry}");
    let throughput = stdout
        .lines()
        .find(|l| l.trim_start().starts_with("throughput_mb_s"))
        .unwrap_or_else(|| panic!("{stdout}"));
    assert!(throughput.contains('%'), "{throughput}");

    let missing = woodpecker(
        &["bench", "compare", a.to_str().unwrap(), "/nonexistent.json"],
        &[],
    );
    assert!(!missing.status.success());
    assert!(text(&missing.stderr).contains("/nonexistent.json"));
}

/// Runs `command` under a pseudo-terminal (util-linux `script`).
fn on_a_terminal(command: &str) -> String {
    let output = std::process::Command::new("script")
        .args(["-qec", command, "/dev/null"])
        .env_remove("RUST_LOG")
        .output()
        .expect("running script (util-linux)");
    assert!(output.status.success(), "{}", text(&output.stdout));
    text(&output.stdout)
}

#[test]
fn the_progress_bar_shows_on_a_terminal_only() {
    let binary = env!("CARGO_BIN_EXE_woodpecker");
    let args = "bench write --store memory --duration-s 4 --rounds 2 --window 8";
    let terminal = on_a_terminal(&format!("{binary} {args}"));
    assert!(terminal.contains("engine round 2/2"), "{terminal}");
    assert!(terminal.contains("MB/s"), "the report follows: {terminal}");

    let quiet = on_a_terminal(&format!("{binary} {args} --json"));
    assert!(!quiet.contains("engine round 1/2"), "{quiet}");
    let piped = woodpecker(&args.split(' ').collect::<Vec<_>>(), &[]);
    assert!(!text(&piped.stderr).contains("engine round 1/2"));
    assert!(!text(&piped.stdout).contains("engine round 1/2"));
}
