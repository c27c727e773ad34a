//! Crash recovery: a child process appends to the real MinIO and etcd and
//! is killed with SIGKILL at a random moment, many times. After each kill a
//! new writer recovers the log; every offset the child reported as acked
//! must be there, byte-identical (by CRC32C and length), and what a scan
//! showed once never changes afterwards (nothing past a recovered end ever
//! becomes readable).

mod common;

use common::*;
use std::collections::BTreeMap;
use std::io::{BufRead, BufReader};
use std::process::{Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::Duration;

const ROUNDS: usize = 8;

fn child_binary() -> &'static str {
    env!("CARGO_BIN_EXE_crash-child")
}

#[test]
fn killed_writers_lose_no_acknowledged_entry() {
    let config = small_config();
    let (client, etcd) = real_client(config.clone());
    within(30, client.create_log("crashy")).unwrap();
    let mut acked: BTreeMap<u64, (u32, usize)> = BTreeMap::new();
    let mut seen: Vec<(u64, Vec<u8>)> = Vec::new();
    let mut rng = fastrand::Rng::with_seed(7);
    for round in 0..ROUNDS {
        let mut child = Command::new(child_binary())
            .args([
                "crashy",
                &config.key_prefix,
                &etcd.prefix,
                &round.to_string(),
            ])
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .unwrap();
        let lines = Arc::new(Mutex::new(Vec::new()));
        let reader = {
            let lines = lines.clone();
            let stdout = child.stdout.take().unwrap();
            std::thread::spawn(move || {
                for line in BufReader::new(stdout).lines() {
                    match line {
                        Ok(line) => lines.lock().unwrap().push(line),
                        Err(_) => break,
                    }
                }
            })
        };
        // Wait for the first ack, then kill at a random moment.
        let waited = std::time::Instant::now();
        while lines.lock().unwrap().is_empty() {
            assert!(
                waited.elapsed() < Duration::from_secs(30),
                "child never acked"
            );
            std::thread::sleep(Duration::from_millis(5));
        }
        std::thread::sleep(Duration::from_millis(rng.u64(20..400)));
        child.kill().unwrap(); // SIGKILL
        child.wait().unwrap();
        reader.join().unwrap();
        let lines = lines.lock().unwrap();
        assert!(!lines.is_empty());
        for line in lines.iter() {
            let fields: Vec<&str> = line.split(' ').collect();
            if fields.len() != 3 {
                continue; // a line cut by the kill
            }
            let (Ok(offset), Ok(crc), Ok(len)) =
                (fields[0].parse(), fields[1].parse(), fields[2].parse())
            else {
                continue;
            };
            assert!(
                acked.insert(offset, (crc, len)).is_none(),
                "offset {offset} acked twice"
            );
        }

        // Recover with a new writer, then look.
        let writer = within(60, client.open_writer("crashy")).unwrap();
        within(60, writer.close()).unwrap();
        let entries = within(120, client.scan("crashy")).unwrap();
        for (offset, (crc, len)) in &acked {
            let entry = entries
                .get(*offset as usize)
                .unwrap_or_else(|| panic!("round {round}: acked offset {offset} lost"));
            assert_eq!(entry.offset, *offset);
            assert_eq!(
                (crc32c::crc32c(&entry.payload), entry.payload.len()),
                (*crc, *len)
            );
        }
        for (offset, payload) in &seen {
            assert_eq!(
                &entries[*offset as usize].payload, payload,
                "history changed at {offset}"
            );
        }
        assert!(entries.len() >= seen.len(), "history shrank");
        seen = entries
            .iter()
            .map(|e| (e.offset, e.payload.clone()))
            .collect();
    }
    assert!(acked.len() > ROUNDS, "the children acknowledged work");
}
