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
    let mut out = without_section(path, title);
    if !out.ends_with('\n') {
        out.push('\n');
    }
    out.push_str(&format!("\n## {title}\n"));
    out.push_str(body);
    std::fs::write(path, out).unwrap();
}

/// Writes a section as the report's first, before every other section, replacing an earlier
/// section with the same title.
pub fn write_first_section(path: &str, title: &str, body: &str) {
    let existing = without_section(path, title);
    let at = existing.find("\n## ").unwrap_or(existing.len());
    let mut section = format!("\n## {title}\n{body}");
    if !section.ends_with('\n') {
        section.push('\n');
    }
    std::fs::write(path, format!("{}{section}{}", &existing[..at], &existing[at..])).unwrap();
}

/// The report file's text without the section `title` (its heading up to the next heading).
fn without_section(path: &str, title: &str) -> String {
    let existing = std::fs::read_to_string(path).unwrap_or_else(|_| "# Benchmarks\n\nMeasured by `huiyin-bench` (the `bench` crate). Figures are medians over repetitions; goals are from the issues.\n".into());
    let marker = format!("\n## {title}\n");
    match existing.find(&marker) {
        Some(start) => {
            let rest = &existing[start + marker.len()..];
            let end = rest.find("\n## ").map_or(existing.len(), |e| start + marker.len() + e);
            format!("{}{}", &existing[..start], &existing[end..])
        }
        None => existing,
    }
}

/// Whether a run met a goal.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Verdict {
    Met,
    Missed,
    /// The run's figure and its repetitions fall on both sides of the bound: this run does not
    /// decide it.
    Undecided,
    /// The issue asks for the figure reported, not for a bound.
    Reported,
}

impl Verdict {
    /// Met when `ok`, else missed.
    pub fn of(ok: bool) -> Self {
        if ok { Self::Met } else { Self::Missed }
    }

    /// The verdict of a figure and its repetitions, each within the bound or not: met when all
    /// are, missed when none is, undecided when they fall on both sides.
    pub fn across(within: impl IntoIterator<Item = bool>) -> Self {
        let (mut any_in, mut any_out) = (false, false);
        for w in within {
            if w {
                any_in = true;
            } else {
                any_out = true;
            }
        }
        match (any_in, any_out) {
            (true, false) => Self::Met,
            (true, true) => Self::Undecided,
            (false, _) => Self::Missed,
        }
    }

    pub fn show(self) -> &'static str {
        match self {
            Self::Met => "met",
            Self::Missed => "**missed**",
            Self::Undecided => "undecided",
            Self::Reported => "reported",
        }
    }
}

/// One of issue 14's goals as this run measured it: a row of the report's "Goals" section.
#[derive(Debug, Clone)]
pub struct Goal {
    /// What is measured, as the issue names it.
    pub figure: String,
    /// The bound, with its unit.
    pub goal: String,
    /// The figure this run measured, with what it was divided by.
    pub measured: String,
    pub verdict: Verdict,
}

impl Goal {
    pub fn new(
        figure: impl Into<String>,
        goal: impl Into<String>,
        measured: impl Into<String>,
        verdict: Verdict,
    ) -> Self {
        Self { figure: figure.into(), goal: goal.into(), measured: measured.into(), verdict }
    }
}

/// The "Goals" section: every goal of issue 14 side by side, as this run measured them (the
/// sections below hold each figure's repetitions and spread).
pub fn goals_section(goals: &[Goal], command: &str, took_s: f64) -> String {
    let met = goals.iter().filter(|g| g.verdict == Verdict::Met).count();
    let undecided = goals.iter().filter(|g| g.verdict == Verdict::Undecided).count();
    let judged = goals.iter().filter(|g| g.verdict != Verdict::Reported).count();
    let mut body = format!(
        "\nWritten by `{command}` from this run's own figures, {} on {} (the run took {:.0} min): {met} of the {judged} \
         goals with a bound met, {undecided} undecided (the figure and its repetitions fall on both sides of the bound). \
         \"Reported\" rows are figures the issue asks for without a bound of its own. Each figure's repetitions, spread and method are in its own section; the analysis of the missed ones, with \
         their profiles and what was tried, is written by hand in \"Where the time goes\".\n\n| figure | goal | this run | |\n|---|---|---|---|\n",
        chrono::Utc::now().format("%Y-%m-%d %H:%M UTC"),
        machine(),
        took_s / 60.0,
    );
    for g in goals {
        body.push_str(&format!("| {} | {} | {} | {} |\n", g.figure, g.goal, g.measured, g.verdict.show()));
    }
    body
}
