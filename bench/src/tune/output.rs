//! `woodpecker tune`'s outputs: the readable report and the configuration
//! file of its recommendation (never with credentials in it).

use super::advise::size;
use super::probe::{Checksum, Conditional};
use super::TuneReport;
use crate::BenchError;
use std::fmt::Write as _;
use std::path::Path;
use woodpecker_tuning::{Loaded, StoreKind};

/// The recommendation as YAML this project reads (`--config`), with the
/// store it was measured on; credentials stay where they came from.
pub fn config_text(report: &TuneReport, loaded: &Loaded) -> String {
    let r = &report.recommendation;
    let m = &report.model;
    let mut text = String::new();
    let mut line = |s: String| {
        text.push_str(&s);
        text.push('\n');
    };
    line(format!(
        "# woodpecker tune: goal {}{}, store {}, measured in {:.0} s",
        r.goal,
        if r.goal_met { "" } else { " (not met)" },
        report.store,
        report.seconds
    ));
    line(format!(
        "# {:.1} ms per request, {:.0} MB/s per stream, ceiling {:.0} MB/s; expected {:.0} MB/s \
         at PUT p99 {:.1} ms",
        m.request_ms, m.stream_mb_s, m.ceiling_mb_s, r.expected_mb_s, r.expected_put_p99_ms
    ));
    line("# Credentials are not written: keep them in WOODPECKER_S3_ACCESS_KEY and".into());
    line("# WOODPECKER_S3_SECRET_KEY, or add store.s3.access_key and secret_key.".into());
    line("engine:".into());
    line(format!(
        "  fragment_bytes_max: {}",
        size(r.fragment_bytes_max)
    ));
    line(format!(
        "  uploads_in_flight_max: {}",
        r.uploads_in_flight_max
    ));
    line("  flush_policy: adaptive".into());
    line(format!("  flush_interval_ms: {}", r.flush_interval_ms));
    line(format!("  log_buffers_max: {}", r.log_buffers_max));
    line(format!(
        "  shard_buffer_bytes_max: {}",
        size(r.shard_buffer_bytes_max)
    ));
    if let Some(threshold) = r.multipart_threshold_bytes {
        line(format!("  multipart_threshold_bytes: {}", size(threshold)));
    }
    let store = &loaded.settings.store;
    line("store:".into());
    match store.kind {
        StoreKind::S3 => {
            let s3 = &store.s3;
            line("  kind: s3".into());
            line("  s3:".into());
            line(format!("    endpoint: {}", yaml_string(&s3.endpoint)));
            line(format!("    bucket: {}", yaml_string(&s3.bucket)));
            line(format!("    region: {}", yaml_string(&s3.region)));
            if s3.virtual_hosted {
                line("    virtual_hosted: true".into());
            }
            if let Some(ca) = &s3.ca_cert_path {
                line(format!(
                    "    ca_cert_path: {}",
                    yaml_string(&ca.display().to_string())
                ));
            }
            line(format!("    connections_max: {}", r.connections_max));
        }
        StoreKind::Local => {
            line("  kind: local".into());
            line(format!(
                "  local_dir: {}",
                yaml_string(&store.local_dir.display().to_string())
            ));
        }
        StoreKind::Memory => line("  kind: memory".into()),
        StoreKind::Null => line("  kind: null".into()),
    }
    text
}

/// A YAML double-quoted string.
fn yaml_string(text: &str) -> String {
    serde_json::to_string(text).expect("strings serialize")
}

pub fn write_config(report: &TuneReport, loaded: &Loaded, path: &Path) -> Result<(), BenchError> {
    std::fs::write(path, config_text(report, loaded))
        .map_err(|e| BenchError::Failed(format!("writing {}: {e}", path.display())))
}

/// The measurements as a table, the promises probed, and the
/// recommendation with its reasons.
pub fn print_report(report: &TuneReport) {
    print!("{}", report_text(report));
}

fn report_text(report: &TuneReport) -> String {
    let mut out = String::new();
    let p = &report.probes;
    let _ = writeln!(
        out,
        "store {} probed in {:.1} s (budget {} s); MB = 10^6 bytes",
        report.store, report.seconds, report.budget_s
    );
    let conditional = match p.conditional_put {
        Conditional::Enforced => "enforced",
        Conditional::Ignored => "IGNORED",
        Conditional::Failed => "probe failed",
    };
    let _ = writeln!(
        out,
        "put-if-absent: {conditional}: {}",
        p.conditional_detail
    );
    let checksum = match p.checksum {
        Checksum::Verified => "verified",
        Checksum::NotVerified => "not verified",
        Checksum::NotSent => "not sent",
        Checksum::Failed => "probe failed",
    };
    let _ = writeln!(out, "checksums: {checksum}: {}", p.checksum_detail);
    let _ = writeln!(
        out,
        "\n{:>8} {:>8} | {:>9} {:>8} {:>8} | {:>6} {:>9} {:>8} {:>8}",
        "object",
        "inflight",
        "PUT MB/s",
        "p50 ms",
        "p99 ms",
        "GET in",
        "GET MB/s",
        "p50 ms",
        "p99 ms"
    );
    for cell in &report.grid.cells {
        let _ = writeln!(
            out,
            "{:>8} {:>8} | {:>9.1} {:>8.2} {:>8.2} | {:>6} {:>9.1} {:>8.2} {:>8.2}",
            size(cell.object_bytes),
            cell.inflight,
            cell.put.mb_s,
            cell.put.latency_ms.p50,
            cell.put.latency_ms.p99,
            cell.get_inflight,
            cell.get.mb_s,
            cell.get.latency_ms.p50,
            cell.get.latency_ms.p99,
        );
    }
    for skipped in &report.grid.skipped {
        let _ = writeln!(
            out,
            "{:>8} {:>8} | skipped: {}",
            size(skipped.object_bytes),
            skipped.inflight,
            skipped.reason
        );
    }
    let r = &report.recommendation;
    let _ = writeln!(out, "\nrecommendation (goal {}):", r.goal);
    for reason in &r.reasons {
        let _ = writeln!(out, "  - {reason}");
    }
    let _ = writeln!(out, "written to {}", report.output.display());
    if let Some(warning) = report.unsafe_store() {
        let _ = writeln!(out, "\nWARNING: {warning}");
    }
    out
}
