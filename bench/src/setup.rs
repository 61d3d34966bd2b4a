//! Benchmark databases on the private cluster, seeded once and reused.

use infra::DbSettings;
use tokio_postgres::NoTls;

/// The superuser URL of the cluster.
pub fn base_url() -> String {
    std::env::var("HUIYIN_TEST_DATABASE_URL").expect("HUIYIN_TEST_DATABASE_URL: run through `make bench`")
}

/// `postgres://user@host:port/db` with another user and database.
pub fn url_with(base: &str, user: &str, db: &str) -> String {
    let rest = base.split_once("://").map_or(base, |(_, r)| r);
    let hostpart = rest.split_once('@').map_or(rest, |(_, h)| h);
    let host = hostpart.split_once('/').map_or(hostpart, |(h, _)| h);
    format!("postgres://{user}@{host}/{db}")
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

/// The key used to seal the benchmark's generated complainants.
pub const BENCH_KEK: [u8; 32] = [9; 32];

/// A database with exactly `cases` seeded cases (created and seeded when missing or different).
pub async fn seeded(cases: u64) -> BenchDb {
    let base = base_url();
    let name = format!("huiyin_bench_{cases}");
    let db = BenchDb { name: name.clone(), base: base.clone() };
    let admin = connect(&url_with(&base, "postgres", "postgres")).await;
    let exists = admin.query_opt("SELECT 1 FROM pg_database WHERE datname = $1", &[&name]).await.unwrap().is_some();
    if exists {
        let c = connect(&db.super_url()).await;
        let n: Option<i64> = c.query_opt("SELECT count(*) FROM ledger", &[]).await.ok().flatten().map(|r| r.get(0));
        drop(c);
        let marker: Option<String> = admin
            .query_opt("SELECT shobj_description(oid, 'pg_database') FROM pg_database WHERE datname = $1", &[&name])
            .await
            .unwrap()
            .and_then(|r| r.get(0));
        if n == Some(cases as i64) && marker.as_deref() == Some("seeded") {
            eprintln!("bench: reusing {name} ({cases} cases)");
            infra::migrate::run(&db.owner()).await.unwrap();
            return db;
        }
        admin.batch_execute(&format!("DROP DATABASE {name} WITH (FORCE)")).await.unwrap();
    }
    admin.batch_execute(&format!("CREATE DATABASE {name} OWNER huiyin_owner")).await.unwrap();
    infra::migrate::run(&db.owner()).await.unwrap();
    let pool = db.app().pool().unwrap();
    let reference = infra::reference::ReferenceData::new(pool);
    api::seed::seed_demo(&reference).await.unwrap();
    let vault = infra::vault::Vault::new(BENCH_KEK, "bench-kek");
    let mut loader = infra::bulk::BulkLoader::connect(&db.owner(), vault.kek_id()).await.unwrap();
    let g = api::seed::generate_cases(&reference, &mut loader, &vault, cases, 42).await.unwrap();
    loader.close().await.unwrap();
    eprintln!("bench: generated {} cases, {} events in {:.1} s", g.cases, g.events, g.seconds);
    let r = infra::ledger::rebuild(&db.owner()).await.unwrap();
    eprintln!("bench: initial ledger build {:.1} s", r.seconds);
    let c = connect(&db.super_url()).await;
    c.batch_execute("VACUUM ANALYZE").await.unwrap();
    admin.batch_execute(&format!("COMMENT ON DATABASE {name} IS 'seeded'")).await.unwrap();
    db
}
