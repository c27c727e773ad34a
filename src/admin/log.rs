//! `woodpecker log ...`: logs managed directly against etcd and the object
//! store (no server in between), and their entries printed as text, hex or
//! JSON lines.

use serde_json::json;
use std::io::Write;
use woodpecker_shards::{block_on, Client, LogReader, ReadEntry, StartAt};

#[derive(Debug, clap::Subcommand)]
pub enum LogCommand {
    /// Create a log.
    Create { name: String },
    /// List logs (name, id, writer epoch, truncation point).
    List {
        /// Only logs whose name starts with this.
        #[arg(long, default_value = "")]
        prefix: String,
        #[arg(long)]
        json: bool,
    },
    /// A log's segments, durable end and truncation point.
    Info {
        name: String,
        #[arg(long)]
        json: bool,
    },
    /// Truncate a log below OFFSET (retention deletes what lies below).
    Truncate { name: String, offset: u64 },
    /// Delete a log: its record, then its objects.
    Delete { name: String },
    /// Print entries as they become durable, from the end of the log (or
    /// --from), until --count entries or interrupted.
    Tail {
        name: String,
        /// First offset to print [default: the log's end].
        #[arg(long)]
        from: Option<u64>,
        /// Stop after this many entries.
        #[arg(long)]
        count: Option<u64>,
        #[arg(long, value_enum, default_value_t = Format::Text)]
        format: Format,
    },
    /// Print entries already in the log: offsets, properties and payloads.
    Dump {
        name: String,
        /// First offset [default: the first retained entry].
        #[arg(long)]
        from: Option<u64>,
        /// Entries to print at most [default: up to the log's end].
        #[arg(long)]
        count: Option<u64>,
        #[arg(long, value_enum, default_value_t = Format::Text)]
        format: Format,
    },
}

/// How an entry is printed.
#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
pub enum Format {
    /// `offset<TAB>payload` with properties as `key=value`; bytes that are
    /// not UTF-8 are escaped.
    Text,
    /// `offset<TAB>payload` in hex, properties as `key=value` in hex.
    Hex,
    /// One JSON object per line: offset, payload (UTF-8, or base64 with
    /// `"payload_base64"`), properties.
    Json,
}

pub fn run(client: &Client, command: LogCommand) -> Result<(), String> {
    let text = |e: woodpecker_engine::Error| e.to_string();
    match command {
        LogCommand::Create { name } => {
            let log = block_on(client.create_log(&name)).map_err(text)?;
            println!("created log {} (id {})", log.name, log.id);
        }
        LogCommand::List { prefix, json } => {
            let mut logs = block_on(client.list_logs()).map_err(text)?;
            logs.retain(|log| log.name.starts_with(&prefix));
            logs.sort_by(|a, b| a.name.cmp(&b.name));
            for log in logs {
                if json {
                    println!("{}", serde_json::to_string(&log).expect("serializes"));
                } else {
                    println!(
                        "{}\tid {}\tepoch {}\ttruncated below {}",
                        log.name, log.id, log.epoch, log.truncated_below
                    );
                }
            }
        }
        LogCommand::Info { name, json } => info(client, &name, json)?,
        LogCommand::Truncate { name, offset } => {
            block_on(client.truncate(&name, offset)).map_err(text)?;
            println!("truncated {name} below {offset}");
        }
        LogCommand::Delete { name } => {
            block_on(client.delete_log(&name)).map_err(text)?;
            println!("deleted log {name}");
        }
        LogCommand::Tail {
            name,
            from,
            count,
            format,
        } => {
            let start = from.map_or(StartAt::Latest, StartAt::Offset);
            let reader = block_on(client.open_reader(&name, start)).map_err(text)?;
            print_entries(reader, count.unwrap_or(u64::MAX), format)?;
        }
        LogCommand::Dump {
            name,
            from,
            count,
            format,
        } => {
            let status = block_on(client.log_status(&name)).map_err(text)?;
            let first = from.unwrap_or(status.log.truncated_below);
            let available = status.end_offset.saturating_sub(first);
            let start = from.map_or(StartAt::Earliest, StartAt::Offset);
            let reader = block_on(client.open_reader(&name, start)).map_err(text)?;
            print_entries(reader, count.unwrap_or(u64::MAX).min(available), format)?;
        }
    }
    Ok(())
}

fn info(client: &Client, name: &str, json: bool) -> Result<(), String> {
    let status = block_on(client.log_status(name)).map_err(|e| e.to_string())?;
    if json {
        let report = json!({
            "log": status.log,
            "end_offset": status.end_offset,
            "segments": status.segments,
        });
        println!("{report}");
        return Ok(());
    }
    let log = &status.log;
    println!("log {} (id {})", log.name, log.id);
    println!("  writer epoch     {}", log.epoch);
    println!("  truncated below  {}", log.truncated_below);
    println!("  durable end      {}", status.end_offset);
    println!("  segments         {}", status.segments.len());
    for segment in &status.segments {
        println!(
            "    segment {:>6}  {:?}  offsets {}..{}  {} fragments  {} bytes  epoch {}",
            segment.id,
            segment.state,
            segment.start_offset(),
            segment.end_offset,
            segment.fragment_count,
            segment.bytes,
            segment.epoch
        );
    }
    Ok(())
}

/// Prints `count` entries as the reader yields them, each flushed as soon
/// as it is read (a tail shows an entry as it becomes durable).
fn print_entries(mut reader: LogReader, count: u64, format: Format) -> Result<(), String> {
    let stdout = std::io::stdout();
    let mut out = stdout.lock();
    for _ in 0..count {
        let entry = reader.next_blocking().map_err(|e| e.to_string())?;
        write_entry(&mut out, &entry, format)?;
        out.flush().map_err(|e| e.to_string())?;
    }
    Ok(())
}

fn write_entry(out: &mut impl Write, entry: &ReadEntry, format: Format) -> Result<(), String> {
    let props: Vec<(&[u8], &[u8])> = entry
        .properties
        .iter()
        .map(|(k, v)| (&k[..], &v[..]))
        .collect();
    writeln!(
        out,
        "{}",
        entry_line(entry.offset, &entry.payload, &props, format)
    )
    .map_err(|e| e.to_string())
}

/// One entry as a line of `format`.
pub fn entry_line(offset: u64, payload: &[u8], props: &[(&[u8], &[u8])], format: Format) -> String {
    match format {
        Format::Text => {
            let props: Vec<String> = props
                .iter()
                .map(|(k, v)| format!("{}={}", escaped(k), escaped(v)))
                .collect();
            let props = if props.is_empty() {
                String::new()
            } else {
                format!("\t{}", props.join(" "))
            };
            format!("{offset}\t{}{props}", escaped(payload))
        }
        Format::Hex => {
            let props: Vec<String> = props
                .iter()
                .map(|(k, v)| format!("{}={}", hex(k), hex(v)))
                .collect();
            format!("{offset}\t{}\t{}", hex(payload), props.join(" "))
        }
        Format::Json => {
            let props: serde_json::Map<String, serde_json::Value> = props
                .iter()
                .map(|(k, v)| (escaped(k), json!(escaped(v))))
                .collect();
            let mut object = json!({ "offset": offset, "properties": props });
            match std::str::from_utf8(payload) {
                Ok(text) => object["payload"] = json!(text),
                Err(_) => object["payload_base64"] = json!(base64(payload)),
            }
            object.to_string()
        }
    }
}

/// UTF-8 as is (control characters escaped); other bytes as `\xNN`.
fn escaped(bytes: &[u8]) -> String {
    bytes.utf8_chunks().fold(String::new(), |mut text, chunk| {
        for c in chunk.valid().chars() {
            if c.is_control() {
                text.extend(c.escape_default());
            } else {
                text.push(c);
            }
        }
        for byte in chunk.invalid() {
            text.push_str(&format!("\\x{byte:02x}"));
        }
        text
    })
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

fn base64(bytes: &[u8]) -> String {
    use base64::Engine;
    base64::engine::general_purpose::STANDARD.encode(bytes)
}
