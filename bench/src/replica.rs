//! A streaming hot standby of the private cluster (`scripts/pg.sh standby`): the ledger and
//! statistics served from it beside the same requests on the primary, and the replication lag
//! while Huiyin appends on the primary.

use std::time::{Duration, Instant};

use crate::queries::{KINDS, KindResult, PASSES, Pools, WARM_UP, absorb_pass, measure_kinds, serve_url};
use crate::report::{Goal, Summary, Verdict, summarize};
use crate::setup::{BenchDb, base_url, connect};

const SCRIPT: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/../scripts/pg.sh");

/// The standby, removed (stopped, its folder deleted) on drop.
struct Standby;

impl Standby {
    /// Takes a fresh base backup of the cluster and starts it streaming.
    fn start() -> Self {
        let status = std::process::Command::new(SCRIPT).args(["standby", "start"]).status().unwrap();
        assert!(status.success(), "scripts/pg.sh standby start failed");
        Self
    }
}

impl Drop for Standby {
    fn drop(&mut self) {
        let _ = std::process::Command::new(SCRIPT).args(["standby", "remove"]).status();
    }
}

/// `url` with its port moved to the standby's (the primary's + 1: `scripts/pg.sh`).
fn on_standby(url: &str) -> String {
    let (head, tail) = url.rsplit_once('@').expect("a URL with credentials");
    let (host, rest) = tail.split_once('/').unwrap_or((tail, ""));
    let (name, port) = host.rsplit_once(':').expect("a URL with a port");
    let port: u16 = port.parse().unwrap();
    format!("{head}@{name}:{}/{rest}", port + 1)
}

/// What the standby measured.
pub struct ReplicaResults {
    /// Seconds to take the base backup and start the standby.
    pub setup_s: f64,
    /// Huiyin's appends per second on the primary while the lag was sampled.
    pub appends_per_s: f64,
    /// The standby's replay lag (`pg_stat_replication.replay_lag`), sampled every 100 ms.
    pub replay_lag_ms: Summary,
    pub replay_lag_max_ms: f64,
    /// WAL bytes the standby had not replayed, sampled with the lag: p95 and the most.
    pub behind_bytes_p95: f64,
    pub behind_bytes_max: f64,
    /// The server settings Huiyin's connections to the standby see.
    pub settings: String,
    /// Per measured kind: its name, on the primary, on the standby.
    pub queries: Vec<(&'static str, KindResult, KindResult)>,
}

/// The primary's view of its one standby: replay lag in ms (0 when idle) and WAL bytes behind
/// (NULL until the standby reports a replay position).
const LAG_SQL: &str = "SELECT coalesce(extract(epoch FROM replay_lag) * 1000, 0)::float8, \
     pg_wal_lsn_diff(pg_current_wal_lsn(), replay_lsn)::float8 FROM pg_stat_replication LIMIT 1";

/// Starts the standby, waits for it to catch up, samples the lag under Huiyin's append load
/// (32 tasks for `window`), then measures the ledger and statistics on `db` from the primary and
/// from the standby (about `reps` each, the same requests drawn from `pools`, in alternating
/// passes), and removes the standby.
pub async fn run(db: &BenchDb, pools: &Pools, window: Duration, reps: usize) -> ReplicaResults {
    let t = Instant::now();
    let standby = Standby::start();
    let primary = connect(&crate::setup::url_with(&base_url(), "postgres", "postgres")).await;
    // Caught up: streaming, and nothing left to replay.
    let deadline = Instant::now() + Duration::from_secs(600);
    loop {
        let row = primary.query_opt(LAG_SQL, &[]).await.unwrap();
        // No replay position yet reads as not caught up.
        if row.is_some_and(|r| r.get::<_, Option<f64>>(1).is_some_and(|b| b <= 0.0)) {
            break;
        }
        assert!(Instant::now() < deadline, "the standby did not catch up in 10 minutes");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    let setup_s = t.elapsed().as_secs_f64();
    eprintln!("bench: standby streaming after {setup_s:.0} s");

    let (appends_per_s, samples) = crate::append::huiyin_while(32, window, |total| {
        let primary = &primary;
        async move {
            let end = Instant::now() + total;
            let mut samples = Vec::new();
            while Instant::now() < end {
                if let Some(r) = primary.query_opt(LAG_SQL, &[]).await.unwrap()
                    && let Some(behind) = r.get::<_, Option<f64>>(1)
                {
                    samples.push((r.get::<_, f64>(0), behind));
                }
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
            samples
        }
    })
    .await;
    let lags: Vec<Duration> = samples.iter().map(|(ms, _)| Duration::from_secs_f64(ms / 1000.0)).collect();
    let mut behind: Vec<f64> = samples.iter().map(|(_, b)| *b).collect();
    behind.sort_by(f64::total_cmp);
    let p95 = |v: &[f64]| v.get(((v.len() as f64 * 0.95).ceil() as usize).saturating_sub(1)).copied();

    // The ledger and the statistics, the same requests on each side, in passes that alternate
    // between them, each side with the same warm-up (the standby's buffers start empty).
    let kinds = [0usize, 3];
    let (mut on_primary, mut on_replica) = (Vec::new(), Vec::new());
    {
        let primary = serve_url(db.app().url.expose()).await;
        let replica = serve_url(&on_standby(db.app().url.expose())).await;
        let per_pass = reps.div_ceil(PASSES);
        for pass in 0..PASSES {
            let warm_up = if pass == 0 { WARM_UP } else { 0 };
            let seed = 7 + pass as u64;
            absorb_pass(&mut on_primary, measure_kinds(&primary, pools, kinds, per_pass, warm_up, seed).await);
            absorb_pass(&mut on_replica, measure_kinds(&replica, pools, kinds, per_pass, warm_up, seed).await);
        }
    }
    let settings = crate::append::pool_settings(&on_standby(db.app().url.expose())).await;
    drop(standby);
    ReplicaResults {
        settings,
        setup_s,
        appends_per_s,
        replay_lag_ms: summarize(&lags),
        replay_lag_max_ms: samples.iter().map(|(ms, _)| *ms).fold(0.0, f64::max),
        behind_bytes_p95: p95(&behind).unwrap_or(f64::NAN),
        behind_bytes_max: behind.last().copied().unwrap_or(f64::NAN),
        queries: kinds
            .iter()
            .map(|&k| KINDS[k])
            .zip(on_primary.into_iter().zip(on_replica))
            .map(|(n, (p, r))| (n, p, r))
            .collect(),
    }
}

/// The section of BENCHMARKS.md.
pub fn section(r: &ReplicaResults, size: u64) -> String {
    let mut body = format!(
        "\nA hot standby of the private cluster (`scripts/pg.sh standby start`: `pg_basebackup -R`, streaming \
         replication, asynchronous; base backup and catch-up took {:.0} s), on the same machine, so it shares its two \
         cores with the primary and the load. Its settings as Huiyin's connections see them: `{}`.\n\n\
         Replication lag while Huiyin appended on the primary (one event per append, 32 tasks, {:.0} appends/s), \
         sampled every 100 ms from `pg_stat_replication`: replay lag p50 {:.1} / p95 {:.1} / max {:.1} ms; WAL not yet \
         replayed p95 {:.0} / max {:.0} bytes.\n\n\
         The same requests at {size} cases (one client; {WARM_UP} warm-up requests per kind on each side, then \
         {PASSES} passes alternating between the sides), served by a `huiyin serve` reading the primary and by one \
         reading the standby:\n\n\
         | query | primary p50 / p95 / p99 ms | standby p50 / p95 / p99 ms | failed (primary, standby) |\n|---|---|---|---|\n",
        r.setup_s,
        r.settings,
        r.appends_per_s,
        r.replay_lag_ms.p50,
        r.replay_lag_ms.p95,
        r.replay_lag_max_ms,
        r.behind_bytes_p95,
        r.behind_bytes_max,
    );
    for (name, p, s) in &r.queries {
        body.push_str(&format!(
            "| {name} | {:.1} / {:.1} / {:.1} | {:.1} / {:.1} / {:.1} | {}, {} |\n",
            p.summary().p50,
            p.summary().p95,
            p.summary().p99,
            s.summary().p50,
            s.summary().p95,
            s.summary().p99,
            p.failed,
            s.failed
        ));
    }
    body
}

/// The standby's row of the goals: reported, not bounded (the issue asks for the ledger and stats
/// served from it and the replication lag under the append load).
pub fn goal(r: &ReplicaResults, size: u64) -> Goal {
    let p95 = |name: &str| {
        r.queries
            .iter()
            .find(|q| q.0.starts_with(name))
            .map_or((f64::NAN, f64::NAN), |q| (q.1.summary().p95, q.2.summary().p95))
    };
    let (ledger, stats) = (p95("ledger"), p95("stats"));
    Goal::new(
        format!("a streaming standby at {size} cases"),
        "reported",
        format!(
            "replay lag p95 {:.1} ms at {:.0} appends/s; p95 standby vs primary: ledger {:.1} vs {:.1} ms, stats {:.1} vs {:.1} ms",
            r.replay_lag_ms.p95, r.appends_per_s, ledger.1, ledger.0, stats.1, stats.0
        ),
        Verdict::Reported,
    )
}
