//! Benchmark databases on the private cluster, seeded once and reused.

use infra::DbSettings;
use tokio_postgres::NoTls;

/// The superuser URL of the cluster.
pub fn base_url() -> String {
    std::env::var("HUIYIN_TEST_DATABASE_URL").expect("HUIYIN_TEST_DATABASE_URL: run through `make bench`")
}

/// `postgres://user:password@host:port/db` with another user and database; the password is the
/// base URL's for the same user, else the pgpass file's (`PGPASSFILE`, which scripts/pg.sh
/// writes and `make bench` exports): the private cluster asks every role for one.
pub fn url_with(base: &str, user: &str, db: &str) -> String {
    let rest = base.split_once("://").map_or(base, |(_, r)| r);
    let (userinfo, hostpart) = rest.rsplit_once('@').unwrap_or(("", rest));
    let host = hostpart.split_once('/').map_or(hostpart, |(h, _)| h);
    let (base_user, base_password) = userinfo.split_once(':').unwrap_or((userinfo, ""));
    let password = if base_user == user && !base_password.is_empty() {
        Some(base_password.to_owned())
    } else {
        pgpass(host, db, user)
    };
    match password {
        Some(p) => format!("postgres://{user}:{p}@{host}/{db}"),
        None => format!("postgres://{user}@{host}/{db}"),
    }
}

/// The password the pgpass file holds for `host:port`, `db` and `user` (`*` matches anything;
/// the passwords scripts/pg.sh writes are hex, so escapes are not handled).
fn pgpass(hostport: &str, db: &str, user: &str) -> Option<String> {
    let (host, port) = hostport.rsplit_once(':').unwrap_or((hostport, "5432"));
    let text = std::fs::read_to_string(std::env::var_os("PGPASSFILE")?).ok()?;
    text.lines().find_map(|line| {
        let f: Vec<&str> = line.splitn(5, ':').collect();
        let ok = |i: usize, want: &str| f.get(i).is_some_and(|v| *v == "*" || *v == want);
        (f.len() == 5 && ok(0, host) && ok(1, port) && ok(2, db) && ok(3, user)).then(|| f[4].to_owned())
    })
}

/// A benchmark database.
pub struct BenchDb {
    pub name: String,
    pub base: String,
}

impl BenchDb {
    pub fn app(&self) -> DbSettings {
        let mut s = DbSettings::new(url_with(&self.base, "huiyin_app", &self.name));
        s.pool_size = 16;
        s
    }
    pub fn owner(&self) -> DbSettings {
        DbSettings::new(url_with(&self.base, "huiyin_owner", &self.name))
    }
    pub fn super_url(&self) -> String {
        url_with(&self.base, "postgres", &self.name)
    }
}

pub async fn connect(url: &str) -> tokio_postgres::Client {
    let (client, conn) = tokio_postgres::connect(url, NoTls).await.unwrap();
    tokio::spawn(async move {
        let _ = conn.await;
    });
    client
}

/// The key used to seal the benchmark's generated complainants (the server refuses patterned
/// keys such as `[9; 32]`; databases seeded with that one are reseeded: see `SEEDED`).
pub const BENCH_KEK: [u8; 32] = [
    0x07, 0x54, 0xee, 0x09, 0x9e, 0x64, 0x35, 0xf2, 0x1f, 0x75, 0x20, 0xaa, 0xed, 0xad, 0x6f, 0x1e, 0xc0, 0x07, 0x5e,
    0xed, 0x53, 0xcf, 0x67, 0x69, 0x3f, 0x39, 0xb5, 0x14, 0xb8, 0x43, 0xd5, 0x24,
];

/// The comment on a seeded database, naming the key its complainants are sealed with.
/// "campaign": the demo campaign is loaded before the cases are generated (so those received in
/// it are tagged, and the summary report has a campaign to read).
const SEEDED: &str = "seeded, kek 2, campaign";

/// The benchmark's checkpoint key (Ed25519, PKCS#8): a service in operation signs checkpoints
/// as it goes, and its integrity watch starts at the newest one. Without one the watch of every
/// benchmark server would check the whole log from its start while the queries are measured.
const BENCH_CHECKPOINT_KEY: &str = "-----BEGIN PRIVATE KEY-----
MC4CAQAwBQYDK2VwBCIEICMxNMHvoZEJcYFUGy3twM7QOlOiHMNjmCfrefrb6LOY
-----END PRIVATE KEY-----
";

/// Signs a checkpoint over whatever the log holds beyond the newest one (a no-op when nothing
/// was added), as the service's checkpoint task would have.
async fn checkpointed(db: &BenchDb) {
    let signer = infra::integrity::Signer::from_pem(BENCH_CHECKPOINT_KEY.as_bytes(), "bench").unwrap();
    // Folding a million cases' log takes minutes: no statement or pool-wait limit.
    let mut settings = db.app();
    settings.statement_timeout = std::time::Duration::ZERO;
    settings.wait_timeout = std::time::Duration::from_secs(3600);
    let store = infra::EventStore::new(settings.pool().unwrap());
    let t = std::time::Instant::now();
    if let Some(c) = infra::integrity::make_checkpoint(&store, &signer, None).await.unwrap() {
        eprintln!("bench: checkpoint over {} events signed in {:.1} s", c.event_count, t.elapsed().as_secs_f64());
    }
}

/// The age (days since its newest receipt) past which a benchmark database is seeded again.
const MAX_AGE_DAYS: f64 = 1.0;

/// A database with `cases` generated cases and the demo campaign's (created and seeded when
/// missing, different, or older than [`MAX_AGE_DAYS`]).
pub async fn seeded(cases: u64) -> BenchDb {
    let base = base_url();
    let name = format!("huiyin_bench_{cases}");
    let db = BenchDb { name: name.clone(), base: base.clone() };
    let admin = connect(&url_with(&base, "postgres", "postgres")).await;
    let exists = admin.query_opt("SELECT 1 FROM pg_database WHERE datname = $1", &[&name]).await.unwrap().is_some();
    if exists {
        // Its cases, and its age: what the server's clock decides (the overdue view, due-soon
        // clocks, the campaign's phase) drifts as the generated data ages, so a database seeded
        // over a day ago is seeded again.
        let (n, age_days): (Option<i64>, Option<f64>) = connect(&db.super_url())
            .await
            .query_opt("SELECT count(*), extract(epoch FROM now() - max(received_at))::float8 / 86400 FROM ledger", &[])
            .await
            .ok()
            .flatten()
            .map_or((None, None), |r| (Some(r.get(0)), r.get(1)));
        let marker: Option<String> = admin
            .query_opt("SELECT shobj_description(oid, 'pg_database') FROM pg_database WHERE datname = $1", &[&name])
            .await
            .unwrap()
            .and_then(|r| r.get(0));
        let fresh = age_days.is_some_and(|d| d <= MAX_AGE_DAYS);
        if !fresh {
            eprintln!("bench: {name} was seeded {:.1} days ago: seeding it again", age_days.unwrap_or(f64::NAN));
        }
        // The demo campaign's own cases (meeting opinions, visit findings) come on top.
        if fresh
            && n.is_some_and(|n| (cases as i64..cases as i64 + 1000).contains(&n))
            && marker.as_deref() == Some(SEEDED)
        {
            eprintln!("bench: reusing {name} ({cases} cases)");
            let applied = infra::migrate::run(&db.owner()).await.unwrap();
            if !applied.is_empty() {
                // A new index or table has no statistics and a rewritten one no visibility map
                // yet: the planner would see a database no seeded run ever shows it.
                eprintln!("bench: {name} migrated ({}): VACUUM ANALYZE", applied.join(", "));
                connect(&db.super_url()).await.batch_execute("VACUUM ANALYZE").await.unwrap();
            }
            checkpointed(&db).await;
            return db;
        }
        admin.batch_execute(&format!("DROP DATABASE {name} WITH (FORCE)")).await.unwrap();
    }
    admin.batch_execute(&format!("CREATE DATABASE {name} OWNER huiyin_owner")).await.unwrap();
    infra::migrate::run(&db.owner()).await.unwrap();
    let pool = db.app().pool().unwrap();
    let reference = infra::reference::ReferenceData::new(pool);
    api::seed::seed_demo(&reference).await.unwrap();
    api::seed::campaign::seed_campaign(reference.pool(), &reference).await.unwrap();
    let vault = infra::vault::Vault::new(BENCH_KEK, "bench-kek");
    let mut loader = infra::bulk::BulkLoader::connect(&db.owner(), vault.kek_id()).await.unwrap();
    let g = api::seed::generate_cases(&reference, &mut loader, &vault, cases, 42).await.unwrap();
    loader.close().await.unwrap();
    eprintln!("bench: generated {} cases, {} events in {:.1} s", g.cases, g.events, g.seconds);
    let r = infra::ledger::rebuild(&db.owner()).await.unwrap();
    eprintln!("bench: initial ledger build {:.1} s", r.seconds);
    let c = connect(&db.super_url()).await;
    c.batch_execute("VACUUM ANALYZE").await.unwrap();
    checkpointed(&db).await;
    admin.batch_execute(&format!("COMMENT ON DATABASE {name} IS '{SEEDED}'")).await.unwrap();
    db
}
