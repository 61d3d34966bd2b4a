//! The soak (`make prove`, part soak): the release server, its peak measured first (closed loop,
//! 32 connections, whole lifecycles), then an open-loop load at half that rate for the soak's
//! length, with a supervisor reading the ledger and the overdue view every second. Reports, per
//! minute, what was sent, the failures, p50/p99 and the server's resident memory; passes when no
//! request failed, the last minute's p99 is within three times the first's, and memory at the end
//! is within 1.5 × (plus 32 MiB) of what it was after the first minute.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use tokio::sync::{Mutex, Semaphore};

use crate::http::{Fixture, lifecycle, load, start_huiyin};
use crate::report::summarize;

/// One minute of the soak.
struct Minute {
    started: u64,
    failed: u64,
    shed: u64,
    latencies: Vec<Duration>,
    rss_mib: f64,
}

/// Runs the soak for `minutes`; prints one `soak:` line (which scripts/prove.sh keeps) and a
/// table; returns whether it passed.
pub async fn run(minutes: u64) -> bool {
    let Fixture { app_url, owner_url, unit, token } = Fixture::new("huiyin_bench_soak").await;
    let server = start_huiyin(&app_url, &owner_url).await;
    let base = server.base.clone();

    // The peak: whole lifecycles from 32 connections, 3 windows of 5 s.
    let (b, t) = (base.clone(), token.clone());
    let peak = load(32, Duration::from_secs(5), 3, move |c, _| {
        let (b, t) = (b.clone(), t.clone());
        async move {
            let (lat, failed) = lifecycle(&c, &b, &t, unit).await;
            assert_eq!(failed, None, "a lifecycle failed while measuring the peak");
            lat
        }
    })
    .await;
    let rate = peak.rate().0 / 2.0;
    eprintln!("soak: peak {:.0} lifecycles/s; soaking at {rate:.1}/s for {minutes} min", peak.rate().0);

    let client = reqwest::Client::builder().no_proxy().pool_max_idle_per_host(64).build().unwrap();
    // At most 256 lifecycles in flight: beyond that the server is not keeping up, and the
    // lifecycle is counted as shed (a failure) instead of piling up in the load generator.
    let in_flight = Arc::new(Semaphore::new(256));
    let current = Arc::new(Mutex::new(Minute { started: 0, failed: 0, shed: 0, latencies: Vec::new(), rss_mib: 0.0 }));
    let reads_failed = Arc::new(AtomicU64::new(0));
    let mut done: Vec<Minute> = Vec::new();
    let interval = Duration::from_secs_f64(1.0 / rate.max(0.1));
    let start = Instant::now();
    let mut next = start;
    let mut next_read = start;
    let mut minute_end = start + Duration::from_secs(60);
    while start.elapsed() < Duration::from_secs(minutes * 60) {
        let now = Instant::now();
        if now >= minute_end {
            let mut m = current.lock().await;
            m.rss_mib = server.rss_mib();
            done.push(std::mem::replace(
                &mut *m,
                Minute { started: 0, failed: 0, shed: 0, latencies: Vec::new(), rss_mib: 0.0 },
            ));
            minute_end += Duration::from_secs(60);
        }
        if now >= next_read {
            next_read += Duration::from_secs(1);
            let (c, b, t, failed) = (client.clone(), base.clone(), token.clone(), reads_failed.clone());
            tokio::spawn(async move {
                for path in ["/api/v1/ledger?limit=20", "/api/v1/overdue"] {
                    let ok = c
                        .get(format!("{b}{path}"))
                        .bearer_auth(t.as_str())
                        .send()
                        .await
                        .is_ok_and(|r| r.status().is_success());
                    if !ok {
                        failed.fetch_add(1, Ordering::Relaxed);
                    }
                }
            });
        }
        if now >= next {
            next += interval;
            let mut m = current.lock().await;
            m.started += 1;
            match in_flight.clone().try_acquire_owned() {
                Err(_) => m.shed += 1,
                Ok(permit) => {
                    let (c, b, t, cur) = (client.clone(), base.clone(), token.clone(), current.clone());
                    tokio::spawn(async move {
                        let (lat, failed) = lifecycle(&c, &b, &t, unit).await;
                        let mut m = cur.lock().await;
                        m.latencies.extend(lat);
                        if let Some(f) = failed {
                            if m.failed == 0 {
                                eprintln!("soak: first failure of the minute: {f}");
                            }
                            m.failed += 1;
                        }
                        drop(permit);
                    });
                }
            }
        }
        let wake = next.min(next_read).min(minute_end);
        tokio::time::sleep_until(tokio::time::Instant::from_std(wake)).await;
    }
    // Let the last lifecycles finish.
    let _ = tokio::time::timeout(Duration::from_secs(30), in_flight.acquire_many(256)).await;
    {
        let mut m = current.lock().await;
        if m.started > 0 && done.len() < minutes as usize {
            m.rss_mib = server.rss_mib();
            done.push(std::mem::replace(
                &mut *m,
                Minute { started: 0, failed: 0, shed: 0, latencies: Vec::new(), rss_mib: 0.0 },
            ));
        }
    }

    println!(
        "\n| minute | lifecycles started | failed | shed | p50 ms | p99 ms | server RSS MiB |\n|---|---|---|---|---|---|---|"
    );
    for (i, m) in done.iter().enumerate() {
        let s = summarize(&m.latencies);
        println!(
            "| {} | {} | {} | {} | {:.1} | {:.1} | {:.0} |",
            i + 1,
            m.started,
            m.failed,
            m.shed,
            s.p50,
            s.p99,
            m.rss_mib
        );
    }
    let (Some(first), Some(last)) = (done.first(), done.last()) else {
        println!("soak: FAILED: no minute completed");
        return false;
    };
    let sent: u64 = done.iter().map(|m| m.started).sum();
    let failed: u64 = done.iter().map(|m| m.failed + m.shed).sum::<u64>() + reads_failed.load(Ordering::Relaxed);
    let (p99_first, p99_last) = (summarize(&first.latencies).p99, summarize(&last.latencies).p99);
    let rss_max = done.iter().map(|m| m.rss_mib).fold(0.0, f64::max);
    let passed = failed == 0 && p99_last <= 3.0 * p99_first && last.rss_mib <= 1.5 * first.rss_mib + 32.0;
    println!(
        "soak: {} for {} min at {rate:.1} lifecycles/s (half the measured peak of {:.0}/s), {sent} lifecycles \
         ({} requests) and {} reads: {failed} failed; p99 first minute {p99_first:.1} ms, last {p99_last:.1} ms; \
         server RSS {:.0} MiB after the first minute, {:.0} at the end, {rss_max:.0} at most",
        if passed { "passed" } else { "FAILED" },
        done.len(),
        peak.rate().0,
        sent * 5,
        start.elapsed().as_secs() * 2,
        first.rss_mib,
        last.rss_mib,
    );
    passed
}
