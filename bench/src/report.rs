//! `bench write --report FILE.html`: one self-contained HTML file (inline
//! SVG, no scripts or styles fetched) with the ack-latency CDF of the
//! engine against the raw PUT baseline, throughput over the run, the
//! per-stage breakdown and the settings.

use crate::write::WriteReport;
use hdrhistogram::Histogram;
use std::fmt::Write as _;
use std::path::Path;

const WIDTH: f64 = 720.0;
const HEIGHT: f64 = 320.0;
/// Plot area inside the chart: left, top, right, bottom margins.
const MARGIN: (f64, f64, f64, f64) = (64.0, 30.0, 150.0, 44.0);
const COLORS: [&str; 2] = ["#1f77b4", "#d62728"];

/// What a report draws besides the summary.
pub struct ReportData<'a> {
    pub engine_latency: &'a Histogram<u64>,
    pub raw_latency: Option<&'a Histogram<u64>>,
    /// (seconds since start, MB/s acknowledged) samples.
    pub throughput: &'a [(f64, f64)],
}

pub fn write(path: &Path, report: &WriteReport, data: &ReportData) -> std::io::Result<()> {
    std::fs::write(path, html(report, data))
}

pub fn html(report: &WriteReport, data: &ReportData) -> String {
    let mut cdfs = vec![("engine ack", cdf(data.engine_latency))];
    if let Some(raw) = data.raw_latency {
        cdfs.push(("raw PUT", cdf(raw)));
    }
    let mut out = String::new();
    let _ = write!(
        out,
        "<!DOCTYPE html>\n<html><head><meta charset=\"utf-8\"><title>woodpecker bench write \
         report</title>\n<style>body{{font-family:sans-serif;margin:2em;max-width:760px}}\
         table{{border-collapse:collapse}}td,th{{border:1px solid #ccc;padding:2px 8px;\
         text-align:right}}th{{text-align:left}}</style></head><body>\n\
         <h1>bench write: {:.1} MB/s, ack p99 {:.2} ms</h1>\n",
        report.throughput_mb_s, report.ack_latency_ms.p99
    );
    let _ = writeln!(out, "<h2>Ack latency</h2>");
    out.push_str(&line_chart(
        "ack-latency-cdf",
        "latency (ms, log scale)",
        "fraction of requests",
        &cdfs,
        true,
    ));
    let _ = writeln!(out, "<h2>Throughput</h2>");
    out.push_str(&line_chart(
        "throughput",
        "seconds (gaps: raw PUT phases)",
        "MB/s acknowledged",
        &[("engine", data.throughput.to_vec())],
        false,
    ));
    if let Some(profile) = &report.profile {
        let _ = writeln!(out, "<h2>Where the ack latency goes (mean per stage)</h2>");
        let bars: Vec<(&str, f64)> = profile
            .stages
            .iter()
            .map(|s| (s.stage, s.mean_ms))
            .collect();
        out.push_str(&bar_chart("stages", &bars));
        let _ = writeln!(
            out,
            "<table><tr><th>stage</th><th>mean ms</th><th>p50</th><th>p99</th><th>max</th></tr>"
        );
        for s in &profile.stages {
            let _ = writeln!(
                out,
                "<tr><th>{} ({})</th><td>{:.3}</td><td>{:.3}</td><td>{:.3}</td><td>{:.3}</td></tr>",
                s.stage, s.help, s.mean_ms, s.p50_ms, s.p99_ms, s.max_ms
            );
        }
        out.push_str("</table>\n");
    }
    let _ = writeln!(out, "<h2>Settings and results</h2><table>");
    if let Ok(serde_json::Value::Object(fields)) = serde_json::to_value(report) {
        for (key, value) in fields {
            if value.is_object() || value.is_array() {
                continue;
            }
            let _ = writeln!(
                out,
                "<tr><th>{key}</th><td>{}</td></tr>",
                escape(&value.to_string())
            );
        }
    }
    out.push_str("</table>\n");
    // Lets a headless browser confirm the charts laid out: each chart's
    // plotted marks must have a size once rendered.
    out.push_str(
        "<script>addEventListener('load',()=>{let n=0;for(const s of \
         document.querySelectorAll('svg.chart')){const m=s.querySelector('.mark');\
         if(m){const b=m.getBBox();if(b.width>0&&b.height>0)n++;}}\
         document.body.setAttribute('data-rendered-charts',n);});</script>\n",
    );
    out.push_str("</body></html>\n");
    out
}

/// The CDF as (ms, fraction) points, quantile by quantile.
fn cdf(h: &Histogram<u64>) -> Vec<(f64, f64)> {
    let mut quantiles: Vec<f64> = (0..=99).map(|q| q as f64 / 100.0).collect();
    quantiles.extend([0.995, 0.999, 0.9999, 1.0]);
    quantiles
        .into_iter()
        .map(|q| (h.value_at_quantile(q).max(1) as f64 / 1e3, q))
        .collect()
}

fn escape(text: &str) -> String {
    text.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
}

/// Axis ticks: 1-2-5 steps, or decades on a log axis.
fn ticks(low: f64, high: f64, log: bool) -> Vec<f64> {
    if log {
        let (a, b) = (low.log10().floor() as i32, high.log10().ceil() as i32);
        return (a..=b).map(|e| 10f64.powi(e)).collect();
    }
    let span = (high - low).max(f64::MIN_POSITIVE);
    let raw = span / 5.0;
    let magnitude = 10f64.powf(raw.log10().floor());
    let step = [1.0, 2.0, 5.0, 10.0]
        .into_iter()
        .map(|m| m * magnitude)
        .find(|s| *s >= raw)
        .unwrap_or(10.0 * magnitude);
    let mut v = (low / step).floor() * step;
    let mut out = Vec::new();
    loop {
        out.push(v);
        if v >= high - step * 1e-9 {
            return out;
        }
        v += step;
    }
}

fn line_chart(
    id: &str,
    x_label: &str,
    y_label: &str,
    series: &[(&str, Vec<(f64, f64)>)],
    log_x: bool,
) -> String {
    let points = series.iter().flat_map(|(_, p)| p.iter());
    let (mut x0, mut x1, mut y1) = (f64::MAX, f64::MIN, 0f64);
    for &(x, y) in points {
        x0 = x0.min(x);
        x1 = x1.max(x);
        y1 = y1.max(y);
    }
    if x0 > x1 {
        (x0, x1) = (if log_x { 0.1 } else { 0.0 }, 1.0);
    }
    if !log_x {
        x0 = x0.min(0.0);
    }
    let xt = ticks(x0, x1, log_x);
    let x0 = xt[0];
    let last = *xt.last().expect("ticks");
    // One tick (all points equal): widen so the axis has a length.
    let x1 = match (last > x0, log_x) {
        (true, _) => last,
        (false, true) => x0 * 10.0,
        (false, false) => x0 + 1.0,
    };
    let yt = ticks(0.0, y1.max(f64::MIN_POSITIVE), false);
    let y1 = *yt.last().expect("ticks");
    let (l, t, r, b) = MARGIN;
    let (pw, ph) = (WIDTH - l - r, HEIGHT - t - b);
    let fx = |x: f64| {
        let f = if log_x {
            (x.max(x0).log10() - x0.log10()) / (x1.log10() - x0.log10())
        } else {
            (x - x0) / (x1 - x0)
        };
        l + f * pw
    };
    let fy = |y: f64| t + ph - y / y1 * ph;
    let mut s = String::new();
    let _ = writeln!(
        s,
        "<svg class=\"chart\" id=\"{id}\" xmlns=\"http://www.w3.org/2000/svg\" width=\"{WIDTH}\" \
         height=\"{HEIGHT}\" font-size=\"11\">"
    );
    let _ = writeln!(
        s,
        "<rect x=\"{l}\" y=\"{t}\" width=\"{pw}\" height=\"{ph}\" fill=\"none\" stroke=\"#999\"/>"
    );
    for x in &xt {
        let px = fx(*x);
        let _ = writeln!(
            s,
            "<line x1=\"{px:.1}\" y1=\"{t}\" x2=\"{px:.1}\" y2=\"{:.1}\" stroke=\"#eee\"/>\
             <text x=\"{px:.1}\" y=\"{:.1}\" text-anchor=\"middle\">{}</text>",
            t + ph,
            t + ph + 14.0,
            tick_label(*x)
        );
    }
    for y in &yt {
        let py = fy(*y);
        let _ = writeln!(
            s,
            "<line x1=\"{l}\" y1=\"{py:.1}\" x2=\"{:.1}\" y2=\"{py:.1}\" stroke=\"#eee\"/>\
             <text x=\"{:.1}\" y=\"{:.1}\" text-anchor=\"end\">{}</text>",
            l + pw,
            l - 4.0,
            py + 4.0,
            tick_label(*y)
        );
    }
    let _ = writeln!(
        s,
        "<text x=\"{:.1}\" y=\"{:.1}\" text-anchor=\"middle\">{}</text>\
         <text transform=\"translate(14,{:.1}) rotate(-90)\" text-anchor=\"middle\">{}</text>",
        l + pw / 2.0,
        HEIGHT - 6.0,
        escape(x_label),
        t + ph / 2.0,
        escape(y_label)
    );
    for (i, (name, points)) in series.iter().enumerate() {
        let color = COLORS[i % COLORS.len()];
        let path: Vec<String> = points
            .iter()
            .map(|&(x, y)| format!("{:.1},{:.1}", fx(x), fy(y)))
            .collect();
        let _ = writeln!(
            s,
            "<polyline class=\"mark\" fill=\"none\" stroke=\"{color}\" stroke-width=\"2\" \
             points=\"{}\"/>\
             <line x1=\"{:.1}\" y1=\"{:.1}\" x2=\"{:.1}\" y2=\"{:.1}\" stroke=\"{color}\" \
             stroke-width=\"2\"/><text x=\"{:.1}\" y=\"{:.1}\">{}</text>",
            path.join(" "),
            l + pw + 10.0,
            t + 10.0 + 16.0 * i as f64,
            l + pw + 30.0,
            t + 10.0 + 16.0 * i as f64,
            l + pw + 34.0,
            t + 14.0 + 16.0 * i as f64,
            escape(name)
        );
    }
    s.push_str("</svg>\n");
    s
}

fn tick_label(v: f64) -> String {
    let text = format!("{v:.3}");
    let text = text.trim_end_matches('0').trim_end_matches('.');
    if text.is_empty() || text == "-" {
        "0".into()
    } else {
        text.into()
    }
}

/// Horizontal bars of (label, ms).
fn bar_chart(id: &str, bars: &[(&str, f64)]) -> String {
    let row = 26.0;
    let (l, r) = (80.0, 120.0);
    let height = row * bars.len() as f64 + 20.0;
    let max = bars.iter().map(|b| b.1).fold(0.0, f64::max).max(1e-9);
    let mut s = String::new();
    let _ = writeln!(
        s,
        "<svg class=\"chart\" id=\"{id}\" xmlns=\"http://www.w3.org/2000/svg\" width=\"{WIDTH}\" \
         height=\"{height}\" font-size=\"11\">"
    );
    for (i, (label, ms)) in bars.iter().enumerate() {
        let y = 10.0 + row * i as f64;
        let w = (ms / max * (WIDTH - l - r)).max(1.0);
        let _ = writeln!(
            s,
            "<text x=\"{:.1}\" y=\"{:.1}\" text-anchor=\"end\">{}</text>\
             <rect class=\"mark\" x=\"{l}\" y=\"{y:.1}\" width=\"{w:.1}\" height=\"{:.1}\" \
             fill=\"{}\"/><text x=\"{:.1}\" y=\"{:.1}\">{ms:.3} ms</text>",
            l - 6.0,
            y + 14.0,
            escape(label),
            row - 6.0,
            COLORS[0],
            l + w + 6.0,
            y + 14.0
        );
    }
    s.push_str("</svg>\n");
    s
}

/// Samples the client's acknowledged entries every half second, on a
/// thread of its own (nothing is added to the appenders' path).
pub struct Sampler {
    stop: std::sync::Arc<std::sync::atomic::AtomicBool>,
    thread: std::thread::JoinHandle<Vec<(f64, f64)>>,
}

const SAMPLE_EVERY: std::time::Duration = std::time::Duration::from_millis(500);

impl Sampler {
    pub fn start(client: woodpecker_shards::Client, entry_bytes: usize) -> Sampler {
        use std::sync::atomic::Ordering;
        let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
        let stopping = stop.clone();
        let thread = std::thread::spawn(move || {
            let started = std::time::Instant::now();
            let (mut last_t, mut last_acks) = (0.0, client.stats().acks);
            let mut samples = Vec::new();
            while !stopping.load(Ordering::Relaxed) {
                std::thread::sleep(SAMPLE_EVERY);
                let (t, acks) = (started.elapsed().as_secs_f64(), client.stats().acks);
                let mb = (acks - last_acks) as f64 * entry_bytes as f64 / 1e6;
                samples.push((t, mb / (t - last_t)));
                (last_t, last_acks) = (t, acks);
            }
            samples
        });
        Sampler { stop, thread }
    }

    pub fn stop(self) -> Vec<(f64, f64)> {
        self.stop.store(true, std::sync::atomic::Ordering::Relaxed);
        self.thread.join().unwrap_or_default()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ticks_cover_the_range_in_round_steps() {
        assert_eq!(ticks(0.0, 9.0, false), vec![0.0, 2.0, 4.0, 6.0, 8.0, 10.0]);
        assert_eq!(ticks(0.3, 40.0, true), vec![0.1, 1.0, 10.0, 100.0]);
        assert_eq!(tick_label(0.6000000000000001), "0.6");
        assert_eq!(tick_label(0.0), "0");
        assert_eq!(tick_label(1000.0), "1000");
        assert_eq!(tick_label(0.1), "0.1");
        let t = ticks(0.0, 0.37, false);
        assert!(t[0] == 0.0 && *t.last().unwrap() >= 0.37, "{t:?}");
    }

    #[test]
    fn a_chart_has_a_mark_per_series_inside_its_box() {
        let svg = line_chart(
            "c",
            "x",
            "y",
            &[
                ("a", vec![(1.0, 0.0), (10.0, 1.0)]),
                ("b", vec![(2.0, 0.5)]),
            ],
            true,
        );
        assert_eq!(svg.matches("class=\"mark\"").count(), 2);
        assert!(svg.contains(">a</text>") && svg.contains(">b</text>"));
        let bars = bar_chart("s", &[("ring", 0.1), ("upload", 3.0)]);
        assert_eq!(bars.matches("class=\"mark\"").count(), 2);
    }
}
