//! `bench write --profile`: the ack latency split into the write path's
//! stages, printed next to the total the appenders measured.

use crate::latency::LatencyMs;
use std::fmt::Write as _;
use woodpecker_shards::StageProfile;

pub fn print(profile: &StageProfile, total: &LatencyMs) {
    print!("{}", text(profile, total));
}

/// The breakdown as a table: each stage, the engine's sum, the delivery
/// to the caller (by difference of means) and the caller's total.
pub fn text(profile: &StageProfile, total: &LatencyMs) -> String {
    let mut out = String::new();
    let _ = writeln!(out, "  where the ack latency goes (ms, every append):");
    let _ = writeln!(
        out,
        "    {:<8} {:<36} {:>8} {:>8} {:>8} {:>8} {:>8}",
        "stage", "", "mean", "p50", "p90", "p99", "max"
    );
    for s in &profile.stages {
        let _ = writeln!(
            out,
            "    {:<8} {:<36} {:>8.3} {:>8.3} {:>8.3} {:>8.3} {:>8.3}",
            s.stage, s.help, s.mean_ms, s.p50_ms, s.p90_ms, s.p99_ms, s.max_ms
        );
    }
    let engine = profile.mean_total_ms();
    let _ = writeln!(
        out,
        "    {:<8} {:<36} {engine:>8.3}",
        "engine", "queued to ack sent (sum of means)"
    );
    let _ = writeln!(
        out,
        "    {:<8} {:<36} {:>8.3}",
        "delivery",
        "ack sent to caller (mean, by diff.)",
        (total.mean - engine).max(0.0)
    );
    let _ = writeln!(
        out,
        "    {:<8} {:<36} {:>8.3} {:>8.3} {:>8.3} {:>8.3} {:>8.3}",
        "total",
        "the appenders' ack latency",
        total.mean,
        total.p50,
        total.p90,
        total.p99,
        total.max
    );
    out
}
