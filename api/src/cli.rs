//! The `huiyin` command line.

use std::process::ExitCode;

use clap::{Parser, Subcommand};
use infra::EventStore;

use crate::auth::Authenticator;
use crate::settings::{AuthArgs, DatabaseArgs, ServeArgs};
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
    /// Recompute every stream's hash chain, cases' and campaign records' (and with --projections,
    /// compare every ledger and record row with a replay of its stream); exits 1 if anything is
    /// wrong.
    Verify {
        /// Also check the projections.
        #[arg(long)]
        projections: bool,
        /// A checkpoint kept outside the database (the `jws` of a checkpoint, in a file): the log
        /// must still hold exactly the events it covers. Without it, the latest checkpoint in the
        /// database is used.
        #[arg(long)]
        checkpoint: Option<std::path::PathBuf>,
        /// Database.
        #[command(flatten)]
        db: DatabaseArgs,
        /// Checkpoint keys (the public key checks signatures).
        #[command(flatten)]
        keys: crate::settings::CheckpointArgs,
    },
    /// Erase a complainant's personal data: shred their key and record a redaction marker.
    Erase {
        /// The data subject (the `complainant.sealed.subject` of the case's first event).
        #[arg(long, conflicts_with = "case")]
        subject: Option<uuid::Uuid>,
        /// Or the case whose complainant to erase.
        #[arg(long)]
        case: Option<uuid::Uuid>,
        /// Who asks (recorded in the history).
        #[arg(long, default_value = "cli-admin")]
        actor: String,
        /// Database.
        #[command(flatten)]
        db: DatabaseArgs,
        /// Personal-data key.
        #[command(flatten)]
        vault: crate::settings::VaultArgs,
    },
    /// Rewrite the key partitions that still hold a shredded key's old row version, so that
    /// erasures reach the table's storage (as the schema owner; `serve` does it every minute
    /// when it has the owner's connection). Exits 1 when a transaction older than an erasure
    /// still runs and its partition had to keep the old version (run it again later).
    Shred {
        /// Database.
        #[command(flatten)]
        db: DatabaseArgs,
    },
    /// Rebuild every projection from the log into fresh tables and switch over while the
    /// service runs (as the schema owner).
    Rebuild {
        /// Database.
        #[command(flatten)]
        db: DatabaseArgs,
    },
    /// Write a fresh Ed25519 key pair in PEM (the checkpoint signing pair, or an EdDSA pair for
    /// tokens): the private key 0600. Refuses to overwrite either file.
    Keygen {
        /// Where the private key goes (PKCS#8 PEM).
        #[arg(long)]
        private: std::path::PathBuf,
        /// Where the public key goes (SubjectPublicKeyInfo PEM).
        #[arg(long)]
        public: std::path::PathBuf,
    },
    /// Print a token signed with the configured key (development and operations).
    Token {
        /// The subject (who).
        #[arg(long)]
        sub: String,
        /// The role: clerk, handler, supervisor, auditor, admin.
        #[arg(long)]
        role: String,
        /// The unit, for handlers.
        #[arg(long)]
        unit: Option<uuid::Uuid>,
        /// How long it is valid: e.g. 30m, 8h; at most HUIYIN_JWT_MAX_TTL_S (12 h by default).
        #[arg(long, default_value = "8h")]
        ttl: String,
        /// Keys.
        #[command(flatten)]
        auth: AuthArgs,
    },
    /// Load a realistic Chinese town: units, categories, this year's holidays; with --cases N,
    /// also N cases with realistic lifecycles over two years (bulk-loaded), each with its ledger row.
    SeedDemo {
        /// How many cases to generate.
        #[arg(long, default_value_t = 0)]
        cases: u64,
        /// The random seed (the same seed gives the same cases, up to the current time).
        #[arg(long, default_value_t = 42)]
        seed: u64,
        /// Database.
        #[command(flatten)]
        db: DatabaseArgs,
        /// Personal-data key (the generated complainants are sealed with it).
        #[command(flatten)]
        vault: crate::settings::VaultArgs,
    },
    /// Print the OpenAPI document.
    Openapi,
}

/// Parses the command line and runs it.
pub fn main() -> ExitCode {
    let cli = Cli::parse();
    telemetry::init();
    let runtime = match tokio::runtime::Builder::new_multi_thread().enable_all().build() {
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
        Command::Verify { db, projections, checkpoint, keys } => {
            let mut code = verify(&db).await;
            let log = verify_checkpoint(&db, checkpoint.as_deref(), keys.public_key.as_deref()).await;
            if code == ExitCode::SUCCESS {
                code = log;
            }
            if projections {
                let ledger = verify_projections(&db).await;
                if code == ExitCode::SUCCESS {
                    code = ledger;
                }
            }
            code
        }
        Command::Erase { subject, case, actor, db, vault } => erase(&db, &vault, subject, case, &actor).await,
        Command::Keygen { private, public } => match crate::keys::write_ed25519_pair(&private, &public) {
            Ok(()) => {
                println!("wrote {} and {}", private.display(), public.display());
                ExitCode::SUCCESS
            }
            Err(e) => {
                eprintln!("keygen: {e}");
                ExitCode::FAILURE
            }
        },
        Command::Shred { db } => match infra::vault::compact_erased_keys(&db.admin()).await {
            Ok(done) => {
                println!("rewrote {} key partition(s) holding shredded keys", done.rewritten.len());
                if done.held.is_empty() {
                    ExitCode::SUCCESS
                } else {
                    eprintln!(
                        "{} partition(s) still hold a shredded key's old row version: a transaction older than the erasure still runs; run this again once it ends",
                        done.held.len()
                    );
                    ExitCode::FAILURE
                }
            }
            Err(e) => fail(&e),
        },
        Command::Rebuild { db } => match infra::ledger::rebuild(&db.admin()).await {
            Ok(r) => {
                println!(
                    "rebuilt the ledger: {} case(s), {} event(s) in {:.1} s ({:.0} events/s), {} case(s) caught up at the switch-over",
                    r.folded.cases,
                    r.folded.events,
                    r.seconds,
                    r.events_per_second(),
                    r.caught_up
                );
                println!("phases: {}", r.phases_line());
                match infra::records::rebuild(&db.admin()).await {
                    Ok(n) => {
                        println!("rebuilt the campaign's records: {n} record(s)");
                        ExitCode::SUCCESS
                    }
                    Err(e) => fail(&e),
                }
            }
            Err(e) => fail(&e),
        },
        Command::Token { sub, role, unit, ttl, auth } => match token(&sub, &role, unit, &ttl, &auth) {
            Ok(t) => {
                println!("{t}");
                ExitCode::SUCCESS
            }
            Err(e) => {
                eprintln!("huiyin token: {e}");
                ExitCode::from(2)
            }
        },
        Command::SeedDemo { db, cases, seed, vault } => seed_demo(&db, &vault, cases, seed).await,
        Command::Openapi => {
            print!("{}", crate::openapi::spec_json());
            ExitCode::SUCCESS
        }
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
            println!("checked {} case(s), {} event(s)", report.cases, report.events);
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

async fn seed_demo(db: &DatabaseArgs, vault: &crate::settings::VaultArgs, cases: u64, seed: u64) -> ExitCode {
    if let Err(e) = infra::migrate::run(&db.admin()).await {
        return fail(&e);
    }
    let pool = match db.app().pool() {
        Ok(p) => p,
        Err(e) => return fail(&e),
    };
    let reference = infra::reference::ReferenceData::new(pool);
    match crate::seed::seed_demo(&reference).await {
        Ok(summary) => println!("{summary}"),
        Err(e) => return fail(&e),
    }
    match crate::seed::seed_integrations(&reference).await {
        Ok(summary) => println!("{summary}"),
        Err(e) => return fail(&e),
    }
    match crate::seed::campaign::seed_campaign(reference.pool(), &reference).await {
        Ok(summary) => println!("{summary}"),
        Err(e) => {
            eprintln!("huiyin seed-demo: the demo campaign: {e}");
            return ExitCode::from(2);
        }
    }
    if cases == 0 {
        return ExitCode::SUCCESS;
    }
    let vault = match vault.vault() {
        Ok(v) => v,
        Err(e) => {
            eprintln!("huiyin seed-demo: {e}");
            return ExitCode::from(2);
        }
    };
    let mut loader = match infra::bulk::BulkLoader::connect(&db.admin(), vault.kek_id()).await {
        Ok(l) => l,
        Err(e) => return fail(&e),
    };
    match crate::seed::generate_cases(&reference, &mut loader, &vault, cases, seed).await {
        Ok(r) => println!(
            "generated {} case(s), {} event(s) in {:.1} s ({:.0} events/s)",
            r.cases,
            r.events,
            r.seconds,
            r.events as f64 / r.seconds.max(1e-9)
        ),
        Err(e) => {
            eprintln!("huiyin seed-demo: {e}");
            return ExitCode::from(2);
        }
    }
    match loader.close().await {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => fail(&e),
    }
}

/// Checks the whole log against a checkpoint (a file, or the latest in the database) and its
/// signature (when a public key is given). 0 when the log holds exactly what it covers.
pub async fn verify_checkpoint(
    db: &DatabaseArgs,
    file: Option<&std::path::Path>,
    public_key: Option<&std::path::Path>,
) -> ExitCode {
    let store = match db.app().pool() {
        Ok(pool) => EventStore::new(pool),
        Err(e) => return fail(&e),
    };
    let jws = match file {
        Some(path) => match std::fs::read_to_string(path) {
            Ok(s) => s.trim().to_owned(),
            Err(e) => return fail(&e),
        },
        None => match infra::integrity::latest(store.pool()).await {
            Ok(Some(c)) => c.jws,
            Ok(None) => {
                println!("no checkpoint yet: the whole-log check is skipped");
                return ExitCode::SUCCESS;
            }
            Err(e) => return fail(&e),
        },
    };
    let claims = match public_key {
        Some(path) => match crate::settings::read_key_pem("the checkpoint public key", path)
            .and_then(|pem| infra::integrity::verify_signature(&jws, &pem))
        {
            Ok(c) => {
                println!("checkpoint signature verifies");
                c
            }
            Err(e) => {
                println!("TAMPERED checkpoint: the signature does not verify ({e})");
                return ExitCode::FAILURE;
            }
        },
        None => match infra::integrity::claims_unverified(&jws) {
            Ok(c) => {
                println!("checkpoint signature not checked (no HUIYIN_CHECKPOINT_PUBLIC_KEY)");
                c
            }
            Err(e) => {
                println!("the checkpoint does not parse: {e}");
                return ExitCode::FAILURE;
            }
        },
    };
    match infra::integrity::check_log(&store, &claims).await {
        Ok(check) if check.ok() => {
            println!(
                "the log holds exactly the {} event(s) of the checkpoint at {} (log hash {})",
                check.actual_count, claims.cursor, check.actual_hash
            );
            ExitCode::SUCCESS
        }
        Ok(check) => {
            println!(
                "TAMPERED log: the checkpoint at {} covers {} event(s) with log hash {}, the log now gives {} with {}",
                claims.cursor, check.expected_count, check.expected_hash, check.actual_count, check.actual_hash
            );
            ExitCode::FAILURE
        }
        Err(e) => fail(&e),
    }
}

async fn erase(
    db: &DatabaseArgs,
    vault: &crate::settings::VaultArgs,
    subject: Option<uuid::Uuid>,
    case: Option<uuid::Uuid>,
    actor: &str,
) -> ExitCode {
    let vault = match vault.vault() {
        Ok(v) => v,
        Err(e) => {
            eprintln!("huiyin erase: {e}");
            return ExitCode::from(2);
        }
    };
    let pool = match db.app().pool() {
        Ok(p) => p,
        Err(e) => return fail(&e),
    };
    let state = crate::startup::AppState {
        replay_db: db.app(),
        webhook_allow_private: false,
        store: EventStore::new(pool.clone()),
        reference: infra::reference::ReferenceData::new(pool.clone()),
        vault,
        ledger: infra::ledger::Ledger::new(pool.clone()),
        analysis: infra::analysis::Analysis::new(pool.clone()),
        supervision_rules: Default::default(),
        signer: None,
        feed_wake: std::sync::Arc::new(tokio::sync::Notify::new()),
        appended: std::sync::Arc::new(tokio::sync::Notify::new()),
        watch: std::sync::Arc::default(),
        calendar_changed: std::sync::Arc::default(),
        // The command line erases; it reveals nothing.
        reveal_replay: chrono::Duration::zero(),
        pool,
    };
    let case_id = match (case, subject) {
        (Some(c), _) => c,
        (None, Some(s)) => match state.store.case_of_subject(domain::SubjectId::from_uuid(s)).await {
            Ok(Some(c)) => c,
            Ok(None) => {
                eprintln!("huiyin erase: no case has subject {s}");
                return ExitCode::from(2);
            }
            Err(e) => return fail(&e),
        },
        (None, None) => {
            eprintln!("huiyin erase: give --subject or --case");
            return ExitCode::from(2);
        }
    };
    let Ok(id) = domain::ActorId::parse(actor) else {
        eprintln!("huiyin erase: bad --actor");
        return ExitCode::from(2);
    };
    let meta = crate::service::RequestMeta {
        principal: crate::auth::Principal { id, role: domain::Role::Admin, unit: None, expires_at: i64::MAX },
        request_id: None,
        idempotency_key: None,
        if_match: None,
    };
    match crate::service::erase(&state, &meta, domain::CaseId::from_uuid(case_id)).await {
        Ok(v) => {
            println!("erased the complainant of case {case_id} (version {v})");
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("huiyin erase: {e}");
            ExitCode::from(2)
        }
    }
}

/// Runs `huiyin verify --projections`: 0 when every ledger row equals the replay of its case.
pub async fn verify_projections(db: &DatabaseArgs) -> ExitCode {
    match infra::ledger::verify_projections(&db.app()).await {
        Ok(r) => {
            println!("replayed {} case(s), {} event(s) against the ledger", r.cases, r.events);
            for m in r.mismatches.iter().take(50) {
                println!("MISMATCH case {}: {}", m.case_id, m.problem);
            }
            if r.mismatches.is_empty() {
                println!("every ledger row equals the replay of its case");
                ExitCode::SUCCESS
            } else {
                println!("{} mismatch(es)", r.mismatches.len());
                ExitCode::FAILURE
            }
        }
        Err(e) => fail(&e),
    }
}

/// Parses a duration like `30m`, `8h`, `2d` or `3600s`: positive and at most 366 days. Never
/// panics, however large the number (`99999999999999d` is refused, not overflowed).
pub fn parse_ttl(s: &str) -> Result<chrono::Duration, String> {
    let s = s.trim();
    let (num, unit) = s.split_at(s.find(|c: char| !c.is_ascii_digit()).unwrap_or(s.len()));
    let too_long = || format!("ttl {s:?} is too long: at most 366 days");
    let n: i64 = match num.parse() {
        Ok(n) => n,
        Err(_) if !num.is_empty() => return Err(too_long()),
        Err(_) => return Err(format!("bad ttl {s:?}: use e.g. 30m, 8h, 2d")),
    };
    let d = match unit {
        "s" | "" => chrono::Duration::try_seconds(n),
        "m" => chrono::Duration::try_minutes(n),
        "h" => chrono::Duration::try_hours(n),
        "d" => chrono::Duration::try_days(n),
        _ => return Err(format!("bad ttl unit in {s:?}: use s, m, h or d")),
    }
    .ok_or_else(too_long)?;
    if d <= chrono::Duration::zero() {
        return Err(format!("ttl {s:?} must be positive"));
    }
    if d > chrono::Duration::days(366) {
        return Err(too_long());
    }
    Ok(d)
}

/// `huiyin token`: a signed token for `sub` with `role` (and `unit`), valid for `ttl`; refused
/// when `ttl` exceeds the server's cap on token lifetimes (`HUIYIN_JWT_MAX_TTL_S`), since the
/// server would refuse such a token anyway.
pub fn token(sub: &str, role: &str, unit: Option<uuid::Uuid>, ttl: &str, auth: &AuthArgs) -> Result<String, String> {
    let role: domain::Role = serde_json::from_value(serde_json::Value::String(role.to_owned()))
        .map_err(|_| format!("unknown role {role:?}: clerk, handler, supervisor, auditor or admin"))?;
    if role == domain::Role::Handler && unit.is_none() {
        return Err("a handler's token needs --unit".into());
    }
    domain::ActorId::parse(sub).map_err(|e| e.to_string())?;
    let ttl = parse_ttl(ttl)?;
    let authn = Authenticator::from_settings(auth)?;
    if ttl > authn.max_ttl() {
        return Err(format!(
            "--ttl {} s exceeds the longest token lifetime the server accepts, {} s (HUIYIN_JWT_MAX_TTL_S)",
            ttl.num_seconds(),
            authn.max_ttl().num_seconds()
        ));
    }
    authn.sign(sub, role, unit, ttl)
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

#[cfg(test)]
mod tests {
    use clap::CommandFactory;

    use super::*;

    /// clap checks its definitions only in debug builds, at the first parse: two arguments with
    /// one id (the server's and the metrics listener's `bind`) crashed `huiyin serve` at start.
    #[test]
    fn the_command_line_definitions_are_consistent() {
        Cli::command().debug_assert();
    }

    #[test]
    fn the_server_and_the_metrics_listener_read_their_own_addresses() {
        let args = [
            "huiyin",
            "serve",
            "--database-url",
            "postgres://x@h/db",
            "--bind",
            "127.0.0.1:1111",
            "--metrics-bind",
            "127.0.0.1:2222",
        ];
        let cli = Cli::try_parse_from(args).unwrap_or_else(|e| panic!("{e}"));
        let Command::Serve(s) = cli.command else { panic!("serve") };
        assert_eq!((s.bind.port(), s.metrics.bind.port()), (1111, 2222));
    }
}
