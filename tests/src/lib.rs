//! Test support: a fresh PostgreSQL database per test, cloned from a migrated template.
//!
//! `HUIYIN_TEST_DATABASE_URL` names a superuser connection to the private cluster
//! (`scripts/pg.sh env` prints it; `make test` sets it). The template's name carries a hash of
//! the migration files, so a changed migration gets a new template. Tests run in parallel, each
//! in its own database; nothing is mocked.

#![allow(clippy::unwrap_used, missing_docs)]

use std::path::PathBuf;

use infra::DbSettings;
use sha2::{Digest, Sha256};
use tokio_postgres::{Client, NoTls};

pub mod fixtures;
pub mod receiver;
pub mod smtp;
pub mod story;

/// One test's database.
pub struct TestDb {
    pub name: String,
    base: String,
}

fn base_url() -> String {
    std::env::var("HUIYIN_TEST_DATABASE_URL").unwrap_or_else(|_| {
        panic!("HUIYIN_TEST_DATABASE_URL is not set: run the tests with `make test` (it starts a private PostgreSQL)")
    })
}

/// `postgres://user:password@host:port/db` with another user and database. The private cluster
/// asks every role for its password (SCRAM): the base URL's password when the user is the
/// same, else the one the pgpass file (`PGPASSFILE`, which `make test` exports, else
/// `~/.pgpass`) holds for that host, port, database and user.
pub fn url_with(base: &str, user: &str, db: &str) -> String {
    let rest = base.split_once("://").map_or(base, |(_, r)| r);
    let (userinfo, hostpart) = rest.rsplit_once('@').unwrap_or(("", rest));
    let host = hostpart.split_once('/').map_or(hostpart, |(h, _)| h);
    let (base_user, base_password) = userinfo.split_once(':').unwrap_or((userinfo, ""));
    let password = if base_user == user && !base_password.is_empty() {
        Some(base_password.to_owned())
    } else {
        pgpass(host, db, user).map(|p| percent_encode(&p))
    };
    match password {
        Some(p) => format!("postgres://{user}:{p}@{host}/{db}"),
        None => format!("postgres://{user}@{host}/{db}"),
    }
}

/// The password a pgpass file holds for `host:port`, `db` and `user` (fields may be `*`;
/// `\:` and `\\` are escapes), as libpq reads it.
pub fn pgpass(hostport: &str, db: &str, user: &str) -> Option<String> {
    let file = std::env::var_os("PGPASSFILE")
        .map(PathBuf::from)
        .or_else(|| std::env::var_os("HOME").map(|h| PathBuf::from(h).join(".pgpass")))?;
    let (host, port) = hostport.rsplit_once(':').unwrap_or((hostport, "5432"));
    let text = std::fs::read_to_string(file).ok()?;
    text.lines().filter(|l| !l.trim_start().starts_with('#')).find_map(|line| {
        let mut fields = vec![String::new()];
        let mut chars = line.chars();
        while let Some(c) = chars.next() {
            match c {
                '\\' => fields.last_mut()?.extend(chars.next()),
                ':' if fields.len() < 5 => fields.push(String::new()),
                c => fields.last_mut()?.push(c),
            }
        }
        let matches = |f: &String, want: &str| f == "*" || f == want;
        (fields.len() == 5
            && matches(&fields[0], host)
            && matches(&fields[1], port)
            && matches(&fields[2], db)
            && matches(&fields[3], user))
        .then(|| fields[4].clone())
    })
}

fn percent_encode(s: &str) -> String {
    s.bytes()
        .map(|b| {
            if b.is_ascii_alphanumeric() || b"-._~".contains(&b) {
                (b as char).to_string()
            } else {
                format!("%{b:02X}")
            }
        })
        .collect()
}

fn migrations_hash() -> String {
    let dir = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../migrations");
    let mut files: Vec<_> = std::fs::read_dir(&dir).unwrap().map(|e| e.unwrap().path()).collect();
    files.sort();
    let mut h = Sha256::new();
    for f in files {
        h.update(f.file_name().unwrap().to_string_lossy().as_bytes());
        h.update(std::fs::read(&f).unwrap());
    }
    hex::encode(&h.finalize()[..6])
}

async fn connect(url: &str) -> Client {
    let (client, conn) = tokio_postgres::connect(url, NoTls).await.unwrap();
    tokio::spawn(async move {
        let _ = conn.await;
    });
    client
}

impl TestDb {
    /// Creates a fresh, migrated database for one test.
    pub async fn new() -> Self {
        let base = base_url();
        let admin = connect(&url_with(&base, "postgres", "postgres")).await;
        let template = format!("huiyin_tpl_{}", migrations_hash());
        admin.execute("SELECT pg_advisory_lock(727274)", &[]).await.unwrap();
        let exists =
            admin.query_opt("SELECT 1 FROM pg_database WHERE datname = $1", &[&template]).await.unwrap().is_some();
        if !exists {
            admin.batch_execute(&format!("CREATE DATABASE {template} OWNER huiyin_owner")).await.unwrap();
            infra::migrate::run(&DbSettings::new(url_with(&base, "huiyin_owner", &template))).await.unwrap();
        }
        admin.execute("SELECT pg_advisory_unlock(727274)", &[]).await.unwrap();
        let name = format!("huiyin_t_{}", uuid::Uuid::new_v4().simple());
        admin.batch_execute(&format!("CREATE DATABASE {name} TEMPLATE {template} OWNER huiyin_owner")).await.unwrap();
        Self { name, base }
    }

    /// Settings for the service's role (`huiyin_app`, not the owner).
    pub fn app_settings(&self) -> DbSettings {
        DbSettings::new(url_with(&self.base, "huiyin_app", &self.name))
    }

    /// Settings for the schema owner (migrations).
    pub fn owner_settings(&self) -> DbSettings {
        DbSettings::new(url_with(&self.base, "huiyin_owner", &self.name))
    }

    /// A pool as the service's role.
    pub fn app_pool(&self) -> infra::Pool {
        self.app_settings().pool().unwrap()
    }

    /// A plain connection as the service's role.
    pub async fn app_client(&self) -> Client {
        connect(&url_with(&self.base, "huiyin_app", &self.name)).await
    }

    /// A plain connection as the schema owner.
    pub async fn owner_client(&self) -> Client {
        connect(&url_with(&self.base, "huiyin_owner", &self.name)).await
    }

    /// A plain connection as the superuser (to tamper, as an attacker with full access would).
    pub async fn super_client(&self) -> Client {
        connect(&self.super_url()).await
    }

    /// The superuser's URL of this database (for tools such as pg_dump).
    pub fn super_url(&self) -> String {
        url_with(&self.base, "postgres", &self.name)
    }
}

pub mod app;
