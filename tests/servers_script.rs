//! `scripts/servers.sh`, the real servers every other test and benchmark
//! runs against: starting again in a directory whose servers still run is
//! refused (it used to forget their PIDs, so `stop` left them running);
//! starting again in one whose servers are gone (kept from an earlier
//! session) works and writes an env naming the new ports (it used to fail
//! silently on the existing bucket and leave the old env); `stop` stops
//! what `start` started.

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

fn wait_gone(pid: u32) {
    // A stopped child of the script lingers as a zombie only until init
    // reaps it: wait briefly for its /proc entry to go.
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
    while alive(pid) && std::time::Instant::now() < deadline {
        std::thread::sleep(std::time::Duration::from_millis(50));
    }
    assert!(!alive(pid), "server {pid} still runs");
}

/// Starts the servers in `dir_arg`, which must succeed.
fn start(dir_arg: &str) {
    let started = servers_sh(&["start", dir_arg]);
    assert!(
        started.status.success(),
        "start: {}",
        String::from_utf8_lossy(&started.stderr)
    );
}

/// Stops the servers in `dir_arg` and waits until each of `pids` is gone.
fn stop(dir_arg: &str, pids: Vec<u32>) {
    assert!(servers_sh(&["stop", dir_arg]).status.success());
    for pid in pids {
        wait_gone(pid);
    }
}

fn test_dir(name: &str) -> std::path::PathBuf {
    std::env::temp_dir().join(format!("woodpecker-servers-{name}.{}", std::process::id()))
}

#[test]
fn start_refuses_a_directory_whose_servers_still_run_and_stop_stops_them() {
    let dir = test_dir("running");
    let dir_arg = dir.to_str().expect("a UTF-8 path");
    start(dir_arg);
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

    stop(dir_arg, started);
    assert!(!dir.exists(), "stop removes a directory under /tmp");
}

#[test]
fn start_again_in_a_directory_whose_servers_are_gone_names_the_new_ports() {
    let dir = test_dir("kept");
    let dir_arg = dir.to_str().expect("a UTF-8 path");
    start(dir_arg);
    for pid in pids(&dir) {
        assert!(Command::new("kill")
            .arg(pid.to_string())
            .status()
            .unwrap()
            .success());
        wait_gone(pid);
    }

    let again = servers_sh(&["start", dir_arg]);
    assert!(
        again.status.success(),
        "a start over a kept directory failed: {}",
        String::from_utf8_lossy(&again.stderr)
    );
    let env = std::fs::read_to_string(dir.join("env")).unwrap();
    let endpoint = |name: &str| {
        env.lines()
            .find_map(|line| line.strip_prefix(&format!("export {name}=")))
            .unwrap_or_else(|| panic!("{name} in {env}"))
            .trim_start_matches("http://")
            .to_string()
    };
    for name in ["WOODPECKER_ETCD_ENDPOINTS", "WOODPECKER_S3_ENDPOINT"] {
        let address = endpoint(name);
        assert!(
            std::net::TcpStream::connect(&address).is_ok(),
            "{name}={address} from the new env does not answer"
        );
    }
    stop(dir_arg, pids(&dir));
}
