//! `huiyin-bench`: measures Huiyin on this machine and writes the table to BENCHMARKS.md.
//!
//! Every figure has a warm-up and repetitions and is reported as median and spread; speed is
//! only ever measured here, never asserted in a test. The benchmark databases are created on
//! the private cluster (`HUIYIN_TEST_DATABASE_URL`, a superuser connection) and kept between
//! runs, because seeding a million cases takes minutes.

#![allow(clippy::unwrap_used)]

mod queries;
mod report;
mod setup;

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
    /// Query latencies (ledger, search, overdue, stats, history) at several sizes, rebuild and
    /// verification throughput at the largest.
    Queries {
        /// Case counts to measure at (each gets its own database).
        #[arg(long, value_delimiter = ',', default_value = "10000,1000000")]
        sizes: Vec<u64>,
        /// Measured requests per query kind and size.
        #[arg(long, default_value_t = 200)]
        reps: usize,
        /// Where to write the table (appended as a dated section).
        #[arg(long, default_value = "BENCHMARKS.md")]
        out: String,
        /// The exact command to print in the report.
        #[arg(long, default_value = "make bench-queries")]
        command: String,
    },
}

fn main() {
    let cli = Cli::parse();
    let rt = tokio::runtime::Builder::new_multi_thread().enable_all().build().unwrap();
    rt.block_on(async {
        match cli.what {
            What::Queries { sizes, reps, out, command } => queries::run(&sizes, reps, &out, &command).await,
        }
    });
}
