//! The readable summary of a `bench write` report.

use super::*;

pub fn print_summary(report: &WriteReport) {
    println!(
        "write: store={} logs={} entry={} B appenders={} window={} batch={} acks={:?} rate={} flush={:?}",
        report.store,
        report.logs,
        report.entry_bytes,
        report.appenders,
        report.window,
        report.batch,
        report.ack_order,
        report.rate.map_or("max".to_string(), |r| format!("{r}/s")),
        report.flush_policy,
    );
    println!(
        "  {:.1} MB/s, {:.0} entries/s over {:.1} s ({} fragments, avg {} bytes, {:.0} PUTs/s, {} retries)",
        report.throughput_mb_s,
        report.entries_per_s,
        report.seconds,
        report.fragments,
        report.avg_fragment_bytes,
        report.puts_per_s,
        report.upload_retries
    );
    // Through a server, the slowest upload is known only as the bound of
    // the server's histogram bucket that holds it.
    let slowest = match report.target {
        Some(_) => format!("slowest at most {:.1} ms", report.upload_latency_max_ms),
        None => format!("slowest {:.1} ms", report.upload_latency_max_ms),
    };
    println!(
        "  uploads: mean {:.1} ms each ({slowest}), {:.2} in flight on average",
        report.upload_latency_mean_ms, report.uploads_in_flight_mean
    );
    if let Some(keep) = report.keep_mb {
        println!(
            "  truncated as written, keeping {keep} MB: {} segments deleted",
            report.segments_deleted
        );
    }
    if report.throughput_mb_s_rounds.len() > 1 {
        println!(
            "  engine rounds MB/s: [{}]",
            crate::mb_s_list(&report.throughput_mb_s_rounds)
        );
    }
    let l = &report.ack_latency_ms;
    println!(
        "  ack latency ms: p50 {:.2} p90 {:.2} p99 {:.2} p99.9 {:.2} max {:.2}",
        l.p50, l.p90, l.p99, l.p999, l.max
    );
    if let (Some(target), Some(e), Some(ratio)) =
        (&report.target, &report.embedded, report.service_to_embedded)
    {
        println!(
            "  service at {target}; embedded engine in the same run: {:.1} MB/s (rounds [{}]), \
             ack p50 {:.2} p99 {:.2} ms, avg fragment {} bytes; service/embedded = {:.3}",
            e.throughput_mb_s,
            crate::mb_s_list(&e.throughput_mb_s_rounds),
            e.ack_latency_ms.p50,
            e.ack_latency_ms.p99,
            e.avg_fragment_bytes,
            ratio
        );
    }
    if let (Some(raw), Some(ratio)) = (report.raw_put_mb_s, report.ratio_to_raw) {
        let (p50, p99) = report
            .raw_put_latency_ms
            .map_or((0.0, 0.0), |l| (l.p50, l.p99));
        println!(
            "  raw PUT {:.1} MB/s, mean of [{}] ({} B x {} in flight, p50 {:.2} p99 {:.2} ms); \
             engine/raw = {:.3}",
            raw,
            crate::mb_s_list(&report.raw_put_mb_s_phases),
            report.raw_object_bytes.unwrap_or(0),
            report.raw_inflight.unwrap_or(0),
            p50,
            p99,
            ratio
        );
    }
    match (
        &report.tcp,
        report.embedded.as_ref().and_then(|e| e.tcp.as_ref()),
    ) {
        (Some(tcp), Some(embedded)) => println!(
            "  TCP on this machine: {}; during the embedded phases: {}",
            tcp_line(tcp),
            tcp_line(embedded)
        ),
        (Some(tcp), None) => println!("  TCP on this machine: {}", tcp_line(tcp)),
        _ => {}
    }
    if let Some(profile) = &report.profile {
        crate::profile::print(profile, &report.ack_latency_ms);
    }
    if let Some(requests) = &report.append_requests {
        println!(
            "  append requests: {} of {:.0} entries ({:.0} KB) on average; round trip \
             p50 {:.2} p99 {:.2} ms",
            requests.requests,
            requests.mean_entries,
            requests.mean_bytes / 1e3,
            requests.round_trip_ms.p50,
            requests.round_trip_ms.p99,
        );
        if let (Some(server), Some(outside)) = (&requests.server_ms, &requests.outside_server_ms) {
            println!(
                "    in the server p50 {:.2} p99 {:.2} ms; outside it (network, HTTP, client) \
                 p50 {:.2} p99 {:.2} ms",
                server.p50, server.p99, outside.p50, outside.p99
            );
        }
    }
    if let (Some(server), Some(embedded)) = (report.server_cpu_s_per_gb, &report.embedded) {
        println!(
            "  CPU s/GB: service {:.2} (client {:.2} + server {server:.2}), embedded {:.2}",
            report.cpu_s_per_gb + server,
            report.cpu_s_per_gb,
            embedded.cpu_s_per_gb
        );
    }
    println!(
        "  client CPU s/GB: engine {:.2}, raw PUT {}",
        report.cpu_s_per_gb,
        report
            .raw_put_cpu_s_per_gb
            .map_or("n/a".into(), |c| format!("{c:.2}")),
    );
}

fn tcp_line(tcp: &crate::tcp::TcpCounters) -> String {
    format!(
        "{} segments retransmitted, {} loss probes, {} zero-window adverts",
        tcp.retransmitted_segments, tcp.loss_probes, tcp.zero_window_adverts
    )
}
