//! `scripts/servers.sh`, the real servers every other test and benchmark
//! runs against: starting again in a directory whose servers still run is
//! refused (it used to forget their PIDs, so `stop` left them running),
//! and `stop` stops what `start` started.

use std::path::Path;
use std::process::{Command, Output};

fn servers_sh(args: &[&str]) -> Output {
    Command::new("bash")
        .arg(concat!(env!("CARGO_MANIFEST_DIR"), "/scripts/servers.sh"))
        .args(args)
        .output()
        .expect("bash runs")
}

fn pids(dir: &Path) -> Vec<u32> {
    std::fs::read_to_string(dir.join("pids"))
        .expect("start writes DIR/pids")
        .lines()
        .map(|line| line.trim().parse().expect("a PID per line"))
        .collect()
}

fn alive(pid: u32) -> bool {
    Path::new(&format!("/proc/{pid}")).exists()
}

#[test]
fn start_refuses_a_directory_whose_servers_still_run_and_stop_stops_them() {
    let dir = std::env::temp_dir().join(format!("woodpecker-servers-test.{}", std::process::id()));
    let dir_arg = dir.to_str().expect("a UTF-8 path");
    let first = servers_sh(&["start", dir_arg]);
    assert!(
        first.status.success(),
        "start: {}",
        String::from_utf8_lossy(&first.stderr)
    );
    let env = std::fs::read_to_string(dir.join("env")).expect("start writes DIR/env");
    let started = pids(&dir);
    assert_eq!(started.len(), 3, "etcd and two MinIO: {started:?}");

    let again = servers_sh(&["start", dir_arg]);
    let stderr = String::from_utf8_lossy(&again.stderr);
    assert!(
        !again.status.success(),
        "a second start succeeded: {stderr}"
    );
    assert!(stderr.contains("still run"), "{stderr}");
    assert_eq!(pids(&dir), started, "the second start changed DIR/pids");
    assert_eq!(
        std::fs::read_to_string(dir.join("env")).unwrap(),
        env,
        "the second start changed DIR/env"
    );
    assert!(started.iter().all(|&pid| alive(pid)));

    let stop = servers_sh(&["stop", dir_arg]);
    assert!(stop.status.success());
    for pid in started {
        // A stopped child of the script lingers as a zombie only until
        // init reaps it: wait briefly for its /proc entry to go.
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
        while alive(pid) && std::time::Instant::now() < deadline {
            std::thread::sleep(std::time::Duration::from_millis(50));
        }
        assert!(!alive(pid), "server {pid} still runs after stop");
    }
    assert!(!dir.exists(), "stop removes a directory under /tmp");
}
