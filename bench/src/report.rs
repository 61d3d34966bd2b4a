//! Latency statistics and the BENCHMARKS.md section.

use std::time::Duration;

/// Summary of one measured series.
#[derive(Debug, Clone, Copy)]
pub struct Summary {
    pub p50: f64,
    pub p95: f64,
    pub p99: f64,
}

/// Percentiles of latencies, in milliseconds.
pub fn summarize(samples: &[Duration]) -> Summary {
    let mut ms: Vec<f64> = samples.iter().map(|d| d.as_secs_f64() * 1000.0).collect();
    ms.sort_by(|a, b| a.total_cmp(b));
    let pick = |q: f64| {
        if ms.is_empty() {
            return f64::NAN;
        }
        let i = ((q * ms.len() as f64).ceil() as usize).clamp(1, ms.len()) - 1;
        ms[i]
    };
    Summary { p50: pick(0.50), p95: pick(0.95), p99: pick(0.99) }
}

/// Median and spread (min–max) of repeated runs. The count must be odd, so the median is a
/// value that was measured (an even count would have two middles).
///
/// # Panics
/// On an even, non-zero count.
pub fn median_spread(values: &[f64]) -> (f64, f64, f64) {
    assert!(values.is_empty() || values.len() % 2 == 1, "a median of {} values: use an odd count", values.len());
    let mut v = values.to_vec();
    v.sort_by(|a, b| a.total_cmp(b));
    let med = if v.is_empty() { f64::NAN } else { v[v.len() / 2] };
    (med, v.first().copied().unwrap_or(f64::NAN), v.last().copied().unwrap_or(f64::NAN))
}

/// The machine, for the report header.
pub fn machine() -> String {
    let cores = std::thread::available_parallelism().map(|n| n.get()).unwrap_or(0);
    let mem = std::fs::read_to_string("/proc/meminfo")
        .ok()
        .and_then(|m| {
            m.lines().find(|l| l.starts_with("MemTotal")).map(|l| l.split_whitespace().nth(1).unwrap_or("0").to_owned())
        })
        .and_then(|kb| kb.parse::<f64>().ok())
        .map(|kb| format!("{:.0} GiB", kb / 1024.0 / 1024.0))
        .unwrap_or_default();
    let cpu = std::fs::read_to_string("/proc/cpuinfo")
        .ok()
        .and_then(|c| {
            c.lines().find(|l| l.starts_with("model name")).map(|l| l.split(':').nth(1).unwrap_or("").trim().to_owned())
        })
        .unwrap_or_default();
    format!("{cores} cores ({cpu}), {mem} RAM")
}

/// Appends a section to the report file, replacing an earlier section with the same title.
pub fn write_section(path: &str, title: &str, body: &str) {
    let existing = std::fs::read_to_string(path).unwrap_or_else(|_| "# Benchmarks\n\nMeasured by `huiyin-bench` (the `bench` crate). Figures are medians over repetitions; goals are from the issues.\n".into());
    let marker = format!("\n## {title}\n");
    let mut out = match existing.find(&marker) {
        Some(start) => {
            let rest = &existing[start + marker.len()..];
            let end = rest.find("\n## ").map_or(existing.len(), |e| start + marker.len() + e);
            format!("{}{}", &existing[..start], &existing[end..])
        }
        None => existing,
    };
    if !out.ends_with('\n') {
        out.push('\n');
    }
    out.push_str(&marker);
    out.push_str(body);
    std::fs::write(path, out).unwrap();
}
