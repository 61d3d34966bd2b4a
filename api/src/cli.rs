//! The `huiyin` command line.

use std::process::ExitCode;

use clap::{Parser, Subcommand};
use infra::EventStore;

use crate::settings::{DatabaseArgs, ServeArgs};
use crate::startup::Application;
use crate::telemetry;

/// Huiyin (回音): every complaint gets an answer.
#[derive(Debug, Parser)]
#[command(name = "huiyin", version, about)]
pub struct Cli {
    /// What to do.
    #[command(subcommand)]
    pub command: Command,
}

/// The subcommands.
#[derive(Debug, Subcommand)]
pub enum Command {
    /// Apply pending database migrations (as the schema owner).
    Migrate {
        /// Database.
        #[command(flatten)]
        db: DatabaseArgs,
    },
    /// Run the HTTP service.
    Serve(Box<ServeArgs>),
    /// Recompute every case's hash chain; exits non-zero if any is broken.
    Verify {
        /// Database.
        #[command(flatten)]
        db: DatabaseArgs,
    },
}

/// Parses the command line and runs it.
pub fn main() -> ExitCode {
    let cli = Cli::parse();
    telemetry::init();
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("huiyin: cannot start the runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    runtime.block_on(run(cli))
}

async fn run(cli: Cli) -> ExitCode {
    match cli.command {
        Command::Migrate { db } => match infra::migrate::run(&db.admin()).await {
            Ok(applied) => {
                println!("applied {} migration(s)", applied.len());
                for m in applied {
                    println!("  {m}");
                }
                ExitCode::SUCCESS
            }
            Err(e) => fail(&e),
        },
        Command::Serve(args) => {
            let app = match Application::build(*args.clone()).await {
                Ok(app) => app,
                Err(e) => return fail(&e),
            };
            tracing::info!(bind = %args.bind, port = app.port(), "huiyin is serving");
            match app.run_until_stopped().await {
                Ok(()) => ExitCode::SUCCESS,
                Err(e) => fail(&e),
            }
        }
        Command::Verify { db } => verify(&db).await,
    }
}

/// Runs `huiyin verify` and returns its exit code: 0 when every chain holds, 1 otherwise.
pub async fn verify(db: &DatabaseArgs) -> ExitCode {
    let store = match db.app().pool() {
        Ok(pool) => EventStore::new(pool),
        Err(e) => return fail(&e),
    };
    match store.verify_all().await {
        Ok(report) => {
            println!(
                "checked {} case(s), {} event(s)",
                report.cases, report.events
            );
            for f in &report.failures {
                println!(
                    "TAMPERED case {} at version {}: {}",
                    f.case_id,
                    f.first_bad_version.unwrap_or(0),
                    f.problem.as_deref().unwrap_or("")
                );
            }
            if report.failures.is_empty() {
                println!("every hash chain verifies");
                ExitCode::SUCCESS
            } else {
                ExitCode::FAILURE
            }
        }
        Err(e) => fail(&e),
    }
}

fn fail(e: &dyn std::error::Error) -> ExitCode {
    let mut msg = e.to_string();
    let mut source = e.source();
    while let Some(s) = source {
        msg.push_str(": ");
        msg.push_str(&s.to_string());
        source = s.source();
    }
    eprintln!("huiyin: {msg}");
    ExitCode::from(2)
}
