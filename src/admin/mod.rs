//! The admin commands, run directly against etcd and the object store:
//! `log ...`, `fsck` (and its repairs) and `inspect`.

pub mod log;

use log::{entry_line, Format};
use serde_json::json;
use woodpecker_engine::format::fragment::{DecodedFragment, FragmentHeader};
use woodpecker_engine::format::marker::decode_fence_marker;
use woodpecker_engine::fsck::{Repair, Report, Severity};
use woodpecker_shards::{block_on, Client};

#[derive(Debug, clap::Args)]
pub struct FsckArgs {
    /// The log to check [default: every log, and objects of logs that have
    /// no record].
    name: Option<String>,
    /// Carry out the repairs fsck knows to be safe: delete objects nothing
    /// can read (fragments past a seal, objects of deleted segments or
    /// logs). Then check again.
    #[arg(long)]
    repair: bool,
    /// With --repair, also seal open segments: opens and closes a writer of
    /// each such log, which fences the log's writer if one still runs. Use
    /// it when the writer is gone for good.
    #[arg(long, requires = "repair")]
    seal_open: bool,
    /// With --repair: print the repairs, change nothing.
    #[arg(long, requires = "repair")]
    dry_run: bool,
    /// Print the report as one JSON object.
    #[arg(long)]
    json: bool,
}

/// Checks, repairs if asked, and fails when problems remain.
pub fn fsck(client: &Client, args: FsckArgs) -> Result<(), String> {
    let check = || block_on(client.fsck(args.name.as_deref())).map_err(|e| e.to_string());
    let mut report = check()?;
    let repairs: Vec<Repair> = report
        .repairs
        .iter()
        .filter(|r| args.seal_open || !matches!(r, Repair::SealOpenSegment { .. }))
        .cloned()
        .collect();
    if args.repair && !args.dry_run && !repairs.is_empty() {
        print_report(&report, args.json, "found");
        block_on(client.repair(&repairs)).map_err(|e| format!("repair: {e}"))?;
        if !args.json {
            println!("repaired: {}", repairs.len());
        }
        report = check()?;
        print_report(&report, args.json, "after repair");
    } else {
        print_report(&report, args.json, "found");
        if args.repair && !args.json {
            println!("dry run: {} repairs, none carried out", repairs.len());
        }
    }
    match report.problems() {
        0 => Ok(()),
        n => Err(format!("fsck: {n} problems")),
    }
}

fn print_report(report: &Report, json: bool, stage: &str) {
    if json {
        let mut value = serde_json::to_value(report).expect("serializes");
        value["stage"] = json!(stage);
        value["problems"] = json!(report.problems());
        println!("{value}");
        return;
    }
    println!(
        "{stage}: {} logs, {} segments, {} fragments, {} fence markers, {} entries, {} bytes",
        report.logs,
        report.segments,
        report.fragments,
        report.fence_markers,
        report.entries,
        report.bytes
    );
    for finding in &report.findings {
        let severity = match finding.severity {
            Severity::Problem => "problem",
            Severity::Note => "note",
        };
        let segment = finding
            .segment
            .map(|s| format!(" segment {s}"))
            .unwrap_or_default();
        println!(
            "{severity:<8} log {}{segment}: {}",
            finding.log, finding.detail
        );
    }
    for repair in &report.repairs {
        match repair {
            Repair::DeleteObjects { log, keys } => {
                println!("repair   log {log}: delete {} objects", keys.len())
            }
            Repair::SealOpenSegment { log, segment } => {
                println!("repair   log {log} segment {segment}: seal (with --seal-open)")
            }
        }
    }
    println!("{} problems", report.problems());
}

#[derive(Debug, clap::Args)]
pub struct InspectArgs {
    /// The object's key in the store (as fsck and the layout in
    /// docs/FORMAT.md name it).
    key: String,
    /// Entries to print at most.
    #[arg(long, default_value_t = 20)]
    entries: usize,
    #[arg(long, value_enum, default_value_t = Format::Text)]
    format: Format,
}

/// Decodes one fragment or fence marker; fails when the object is neither
/// (naming what is wrong with it).
pub fn inspect(client: &Client, args: InspectArgs) -> Result<(), String> {
    let bytes = block_on(client.get_object(&args.key)).map_err(|e| e.to_string())?;
    if let Some(epoch) = decode_fence_marker(&bytes) {
        println!("fence marker: placed by the writer of epoch {epoch}");
        return Ok(());
    }
    let fragment = match DecodedFragment::decode(&bytes) {
        Ok(fragment) => fragment,
        Err(err) => {
            if let Ok(header) = FragmentHeader::decode(&bytes) {
                print_header(&header, bytes.len());
            }
            return Err(format!("{}: not a sound fragment: {err}", args.key));
        }
    };
    print_header(&fragment.header, bytes.len());
    println!("checksums: ok (header, index, every entry, fragment)");
    for entry in fragment.entries().take(args.entries) {
        let props: Vec<(&[u8], &[u8])> = entry.properties.iter().collect();
        println!(
            "{}",
            entry_line(entry.offset, entry.payload, &props, args.format)
        );
    }
    let count = fragment.header.entry_count as usize;
    if count > args.entries {
        println!("... {} more entries (--entries)", count - args.entries);
    }
    Ok(())
}

fn print_header(header: &FragmentHeader, object_bytes: usize) {
    println!("fragment: {object_bytes} bytes");
    println!("  version         {}", header.version);
    println!("  log id          {}", header.log_id);
    println!("  segment         {}", header.segment_id);
    println!("  fragment index  {}", header.fragment_index);
    println!("  writer epoch    {}", header.writer_epoch);
    println!(
        "  offsets         {}..{} ({} entries)",
        header.first_offset,
        header.end_offset(),
        header.entry_count
    );
    println!("  entry bytes     {}", header.entries_bytes);
    println!("  last of segment {}", header.is_last_of_segment());
}
