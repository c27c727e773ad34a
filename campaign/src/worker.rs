//! The campaign's child processes: a writer of every log of a run, and a
//! reader tailing them all. Each prints what it learns, one line per
//! event, flushed at once (a SIGKILL loses at most the line being made):
//!
//! | line | meaning |
//! |---|---|
//! | `ack L OFFSET W SEQ` | log L acknowledged origin W:SEQ at OFFSET |
//! | `notsent L W SEQ KIND` | the append failed and says it was not written |
//! | `unknown L W SEQ` | the append failed with `OutcomeUnknown` |
//! | `bad L W SEQ KIND DETAIL` | an append error no fault should cause |
//! | `session L START` | a reader (re)opened at START (`earliest` or an offset) |
//! | `read L OFFSET W SEQ` | the reader returned origin W:SEQ at OFFSET |
//! | `rerr L KIND DETAIL` | the reader failed (it reopens) |

use crate::entries::{payload, Origin};
use crate::settings::{Settings, LOGS};
use futures::stream::{FuturesUnordered, StreamExt};
use std::io::Write;
use std::time::{Duration, Instant};
use woodpecker_engine::ErrorKind;
use woodpecker_shards::{block_on, Client, LogWriter, StartAt};

fn emit(line: String) {
    let mut out = std::io::stdout().lock();
    // One write per line: lines from several threads never interleave.
    let _ = out.write_all(format!("{line}\n").as_bytes());
    let _ = out.flush();
}

fn one_line(detail: &str) -> String {
    detail.replace(['\n', '\r'], " ")
}

/// Ends the process when its lifetime is over (bounds every loop below).
fn watchdog(lifetime: Duration) {
    std::thread::spawn(move || {
        std::thread::sleep(lifetime);
        std::process::exit(3);
    });
}

fn open_writer(client: &Client, name: &str, deadline: Instant) -> Option<LogWriter> {
    while Instant::now() < deadline {
        match block_on(client.open_writer(name)) {
            Ok(writer) => return Some(writer),
            Err(_) => std::thread::sleep(Duration::from_millis(50)),
        }
    }
    None
}

/// How a writer process appends.
#[derive(Clone, Copy, Debug)]
pub struct Load {
    /// Appends in flight per log.
    pub window: usize,
    /// Appends per second per log; 0 for as fast as the window allows.
    pub rate: u64,
}

/// Appends to log `log` until the lifetime ends, reopening the writer
/// whenever it stops (fenced, or failed past its deadlines).
fn write_log(client: &Client, settings: &Settings, log: usize, writer_id: u64, load: Load) {
    let name = settings.log_name(log);
    let deadline = Instant::now() + settings.lifetime();
    let started = tokio::time::Instant::now();
    let mut seq = 0u64;
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_time()
        .build()
        .expect("tokio runtime");
    while let Some(writer) = open_writer(client, &name, deadline) {
        runtime.block_on(async {
            let mut in_flight = FuturesUnordered::new();
            let mut stopped = false;
            loop {
                let mut due = None;
                while !stopped && in_flight.len() < load.window {
                    if let Some(micros) = (seq * 1_000_000).checked_div(load.rate) {
                        let at = started + Duration::from_micros(micros);
                        if at > tokio::time::Instant::now() {
                            due = Some(at);
                            break;
                        }
                    }
                    let origin = Origin {
                        writer: writer_id,
                        seq,
                    };
                    seq += 1;
                    let ack = writer.append_with(payload(log, origin), vec![origin.property()]);
                    in_flight.push(async move { (origin, ack.await) });
                }
                let next = async {
                    match due {
                        Some(at) if !in_flight.is_empty() => tokio::select! {
                            done = in_flight.next() => done,
                            _ = tokio::time::sleep_until(at) => None,
                        },
                        Some(at) => {
                            tokio::time::sleep_until(at).await;
                            None
                        }
                        None => in_flight.next().await,
                    }
                };
                let Some((origin, result)) = next.await else {
                    if due.is_none() {
                        break;
                    }
                    continue;
                };
                let Origin { writer: w, seq: s } = origin;
                match result {
                    Ok(offset) => emit(format!("ack {log} {offset} {w} {s}")),
                    Err(err) => {
                        let kind = err.kind();
                        match kind {
                            ErrorKind::Fenced
                            | ErrorKind::WriterFailed
                            | ErrorKind::Unavailable => {
                                emit(format!("notsent {log} {w} {s} {kind:?}"))
                            }
                            ErrorKind::OutcomeUnknown => emit(format!("unknown {log} {w} {s}")),
                            _ => emit(format!(
                                "bad {log} {w} {s} {kind:?} {}",
                                one_line(err.detail())
                            )),
                        }
                        stopped |= err.needs_reopen() || !err.is_retriable();
                    }
                }
            }
        });
    }
}

pub fn writer(settings: Settings, writer_id: u64, load: Load) {
    watchdog(settings.lifetime());
    let client = settings.client(false).expect("writer client");
    let threads: Vec<_> = (0..LOGS)
        .map(|log| {
            let (client, settings) = (client.clone(), settings.clone());
            std::thread::spawn(move || write_log(&client, &settings, log, writer_id, load))
        })
        .collect();
    for thread in threads {
        let _ = thread.join();
    }
}

/// Reports a reader's error; truncation past `start` means start over.
fn reader_failed(log: usize, err: &woodpecker_engine::Error, start: &mut StartAt) {
    emit(format!(
        "rerr {log} {:?} {}",
        err.kind(),
        one_line(err.detail())
    ));
    if err.kind() == ErrorKind::Invalid {
        *start = StartAt::Earliest;
    }
}

/// Tails log `log` from the start, reopening after every error where it
/// left off (from the start again if truncation passed it).
fn read_log(client: &Client, settings: &Settings, log: usize) {
    let name = settings.log_name(log);
    let deadline = Instant::now() + settings.lifetime();
    let mut start = StartAt::Earliest;
    while Instant::now() < deadline {
        let mut reader = match block_on(client.open_reader(&name, start)) {
            Ok(reader) => reader,
            Err(err) => {
                reader_failed(log, &err, &mut start);
                std::thread::sleep(Duration::from_millis(50));
                continue;
            }
        };
        match start {
            StartAt::Offset(offset) => emit(format!("session {log} {offset}")),
            _ => emit(format!("session {log} earliest")),
        }
        loop {
            match block_on(reader.next()) {
                Ok(entry) => {
                    let origin = Origin::of(&entry.properties).unwrap_or(Origin {
                        writer: u64::MAX,
                        seq: u64::MAX,
                    });
                    emit(format!(
                        "read {log} {} {} {}",
                        entry.offset, origin.writer, origin.seq
                    ));
                    start = StartAt::Offset(entry.offset + 1);
                }
                Err(err) => {
                    reader_failed(log, &err, &mut start);
                    break;
                }
            }
        }
    }
}

pub fn reader(settings: Settings) {
    watchdog(settings.lifetime());
    let client = settings.client(false).expect("reader client");
    let threads: Vec<_> = (0..LOGS)
        .map(|log| {
            let (client, settings) = (client.clone(), settings.clone());
            std::thread::spawn(move || read_log(&client, &settings, log))
        })
        .collect();
    for thread in threads {
        let _ = thread.join();
    }
}
