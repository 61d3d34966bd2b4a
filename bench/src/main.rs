//! `huiyin-bench`: measures Huiyin on this machine and writes the tables to BENCHMARKS.md.
//!
//! Every figure has a warm-up and repetitions and is reported as median and spread; speed is
//! only ever measured here, never asserted in a test. The benchmark databases are created on
//! the private cluster (`HUIYIN_TEST_DATABASE_URL`, a superuser connection); the query databases
//! are kept between runs, because seeding a million cases takes minutes.

#![allow(clippy::unwrap_used, missing_docs)]

mod append;
mod http;
mod queries;
mod report;
mod setup;
mod soak;

use std::time::{Duration, Instant};

use clap::{Parser, Subcommand};

/// The benchmark harness.
#[derive(Debug, Parser)]
#[command(name = "huiyin-bench")]
struct Cli {
    #[command(subcommand)]
    what: What,
}

#[derive(Debug, Subcommand)]
enum What {
    /// Everything, in one run: appends, HTTP commands, queries, rebuild and verification.
    All {
        /// A small, fast run (for CI: checks the harness, numbers not judged).
        #[arg(long)]
        quick: bool,
        /// Where to write the tables.
        #[arg(long, default_value = "BENCHMARKS.md")]
        out: String,
        /// The exact command to print in the report.
        #[arg(long, default_value = "make bench")]
        command: String,
    },
    /// Query latencies at several sizes, rebuild and verification throughput at the largest.
    Queries {
        #[arg(long, value_delimiter = ',', default_value = "10000,1000000")]
        sizes: Vec<u64>,
        #[arg(long, default_value_t = 200)]
        reps: usize,
        #[arg(long, default_value = "BENCHMARKS.md")]
        out: String,
        #[arg(long, default_value = "make bench-queries")]
        command: String,
        /// Also measure rebuild and verification at the largest size (each rebuild fills the
        /// analysis rollups again: minutes at a million cases).
        #[arg(long, default_value_t = true, action = clap::ArgAction::Set)]
        throughput: bool,
    },
    /// Only the append comparison (to iterate on it), printed.
    Appends {
        #[arg(long, value_delimiter = ',', default_value = "1,8,32")]
        tasks: Vec<usize>,
        #[arg(long, value_delimiter = ',', default_value = "1,10")]
        batches: Vec<usize>,
        #[arg(long, default_value_t = 2.0)]
        window_s: f64,
        /// Repetitions of every cell (odd, so the median is a measured value).
        #[arg(long, default_value_t = 5)]
        reps: usize,
    },
    /// The soak of `make prove`: half the measured peak for `minutes`; exits 1 when it fails.
    Soak {
        #[arg(long, default_value_t = 10)]
        minutes: u64,
    },
    /// The raw-insert HTTP baseline server (started by the HTTP benchmark).
    #[command(hide = true)]
    RawServer {
        #[arg(long)]
        port: u16,
        #[arg(long)]
        database_url: String,
    },
}

fn main() {
    let cli = Cli::parse();
    let rt = tokio::runtime::Builder::new_multi_thread().enable_all().build().unwrap();
    rt.block_on(async {
        match cli.what {
            What::Queries { sizes, reps, out, command, throughput } => {
                queries::run(&sizes, reps, &out, &command, throughput).await
            }
            What::RawServer { port, database_url } => {
                // Its own runtime: actix runs its workers.
                http::raw_server(port, &database_url).await;
            }
            What::All { quick, out, command } => all(quick, &out, &command).await,
            What::Soak { minutes } => {
                if !soak::run(minutes).await {
                    std::process::exit(1);
                }
            }
            What::Appends { tasks, batches, window_s, reps } => {
                let r = append::run(&tasks, &batches, Duration::from_secs_f64(window_s), reps).await;
                println!(
                    "{}",
                    appends_section(&r, &tasks, Duration::from_secs_f64(window_s), reps, "huiyin-bench appends")
                );
            }
        }
    });
}

fn cell(r: (f64, f64, f64)) -> String {
    format!("{:.0} ({:.0}–{:.0})", r.0, r.1, r.2)
}

/// The Appends section: one row per batch size and concurrency, each system's median with
/// every value measured, and the ratios the goals judge (Huiyin as it ships: coalescing off).
fn appends_section(r: &append::Results, conc: &[usize], window: Duration, reps: usize, command: &str) -> String {
    let mut body = format!(
        "\nRun {} on {}; command: `{command}`. Each cell: the median per second of {reps} measurement(s), every value in \
         brackets in the order measured; each measurement is a {:.1} s window after a warm-up of half that, in a fresh \
         database (a copy of a migrated template, then `CHECKPOINT`), and the systems' order rotates by one place per \
         repetition. Same bytes (a `case.note_added` event with its metadata), every task appending to its own case. \
         Huiyin's append checks the expected version, chains the hash and writes the ledger row and the analysis facts in \
         the same transaction. The raw baselines: a minimal table (one index, a constant hash: the machine's limit) and a \
         table of the events' shape (unique `(case_id, version)`, the feed index, the same checks, the hash chained as \
         Huiyin chains it). The goals judge Huiyin as it ships (coalescing off); the coalesced column is for comparison.\n\n\
         Server settings per pool: {}.\n\n\
         | events per append | tasks | raw, minimal /s | raw, events' shape /s | Huiyin /s | Huiyin, coalesced /s | postgres-es /s | Huiyin ÷ raw shape (goal ≥ 0.8) | Huiyin ÷ raw minimal | Huiyin ÷ postgres-es (goal ≥ 2) |\n\
         |---|---|---|---|---|---|---|---|---|---|\n",
        chrono::Utc::now().format("%Y-%m-%d %H:%M UTC"),
        report::machine(),
        window.as_secs_f64(),
        r.settings.iter().map(|(pool, s)| format!("{pool}: `{s}`")).collect::<Vec<_>>().join("; "),
    );
    let batches: std::collections::BTreeSet<usize> = r.cells.iter().map(|c| c.batch).collect();
    for batch in batches {
        for &c in conc {
            let get =
                |s: append::System| r.cells.iter().find(|x| x.system == s && x.tasks == c && x.batch == batch).unwrap();
            let show = |cell: &append::Cell| {
                let values: Vec<String> = cell.values.iter().map(|v| format!("{v:.0}")).collect();
                format!("{:.0} [{}]", cell.median().0, values.join(" "))
            };
            let (raw, shaped, hui, bat, peer) = (
                get(append::System::Raw),
                get(append::System::RawShaped),
                get(append::System::Huiyin),
                get(append::System::HuiyinBatched),
                get(append::System::Peer),
            );
            let h = hui.median().0;
            let (r_shape, r_raw, r_peer) = (h / shaped.median().0, h / raw.median().0, h / peer.median().0);
            let judged = batch == 1 && c == 32;
            body.push_str(&format!(
                "| {batch} | {c} | {} | {} | {} | {} | {} | {r_shape:.2}{} | {r_raw:.2} | {r_peer:.2} {} |\n",
                show(raw),
                show(shaped),
                show(hui),
                show(bat),
                show(peer),
                match (judged, r_shape >= 0.8) {
                    (false, _) => "",
                    (true, true) => " met",
                    (true, false) => " **missed**",
                },
                if r_peer >= 2.0 { "met" } else { "**missed**" }
            ));
        }
    }
    body
}

async fn all(quick: bool, out: &str, command: &str) {
    let started = Instant::now();
    let (conc, window, reps): (Vec<usize>, Duration, usize) =
        if quick { (vec![1, 8], Duration::from_millis(500), 1) } else { (vec![1, 8, 32], Duration::from_secs(2), 5) };
    let appends = append::run(&conc, &[1, 10], window, reps).await;
    let body = appends_section(&appends, &conc, window, reps, command);
    report::write_section(out, "Appends", &body);
    println!("{body}");

    let (hwin, hreps) = if quick { (Duration::from_secs(1), 1) } else { (Duration::from_secs(6), 3) };
    let h = http::run(32, hwin, hreps).await;
    let ratio = h.register.rate.0 / h.raw.rate.0;
    let body = format!(
        "\n32 connections, a Rust load generator (reqwest) in the bench process, each server its own process (actix-web, \
         2 workers); {hreps} window(s) of {:.0} s after a warm-up. The raw server answers POST with one INSERT of the body.\n\n\
         | | per second | p50 ms | p95 ms | p99 ms | peak RSS |\n|---|---|---|---|---|---|\n\
         | raw actix-web insert | {} | {:.1} | {:.1} | {:.1} | {:.0} MiB |\n\
         | `POST /api/v1/cases` | {} | {:.1} | {:.1} | {:.1} | |\n\
         | lifecycle (register → assign → handle → feedback → close), per request | {} lifecycles | {:.1} | {:.1} | {:.1} | {:.0} MiB (Huiyin, whole run) |\n\n\
         Goals: registration ≥ 0.5× raw — {ratio:.2}, {}; p99 ≤ 25 ms — registration {:.1} ms {}, lifecycle requests {:.1} ms {}; \
         peak RSS ≤ 150 MB — {:.0} MiB {}.\n",
        hwin.as_secs_f64(),
        cell(h.raw.rate),
        h.raw.latency.p50,
        h.raw.latency.p95,
        h.raw.latency.p99,
        h.raw_rss,
        cell(h.register.rate),
        h.register.latency.p50,
        h.register.latency.p95,
        h.register.latency.p99,
        cell(h.lifecycle.rate),
        h.lifecycle.latency.p50,
        h.lifecycle.latency.p95,
        h.lifecycle.latency.p99,
        h.huiyin_rss,
        if ratio >= 0.5 { "met" } else { "**missed**" },
        h.register.latency.p99,
        if h.register.latency.p99 <= 25.0 { "met" } else { "**missed**" },
        h.lifecycle.latency.p99,
        if h.lifecycle.latency.p99 <= 25.0 { "met" } else { "**missed**" },
        h.huiyin_rss,
        if h.huiyin_rss <= 143.0 { "met" } else { "**missed**" },
    );
    report::write_section(out, "HTTP commands", &body);
    println!("{body}");

    let (sizes, qreps): (Vec<u64>, usize) = if quick { (vec![1000, 3000], 20) } else { (vec![10_000, 1_000_000], 200) };
    queries::run(&sizes, qreps, out, command, true).await;
    eprintln!("bench: everything took {:.0} s", started.elapsed().as_secs_f64());
}
