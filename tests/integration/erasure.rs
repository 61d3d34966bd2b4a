//! Erasure reaches the storage: after a key is shredded, no page of the key table holds it.

use reqwest::StatusCode;
use serde_json::json;
use tests::app::spawn_app;

/// Every byte of a relation's pages, read through pageinspect (as the superuser).
async fn raw_pages(client: &tokio_postgres::Client, relation: &str) -> Vec<u8> {
    let rows = client
        .query(
            "SELECT get_raw_page($1::text, i::int) FROM generate_series(0, pg_relation_size($1::text::regclass) / 8192 - 1) AS i",
            &[&relation],
        )
        .await
        .unwrap();
    rows.iter().flat_map(|r| r.get::<_, Vec<u8>>(0)).collect()
}

fn holds(haystack: &[u8], needle: &[u8]) -> bool {
    haystack.windows(needle.len()).any(|w| w == needle)
}

/// Compacts until `partition` is rewritten clean: the service's own short snapshots (the
/// integrity watch's pass) may hold a dead version for a moment, as any reader may.
async fn compacted(app: &tests::app::TestApp, partition: &str) -> infra::vault::Compaction {
    for _ in 0..50 {
        let done = infra::vault::compact_erased_keys(&app.db.owner_settings()).await.unwrap();
        if done.rewritten.iter().any(|p| p == partition) {
            return done;
        }
        tokio::time::sleep(std::time::Duration::from_millis(200)).await;
    }
    panic!("{partition} was never rewritten clean within 10 s");
}

#[tokio::test]
async fn a_shredded_key_leaves_no_trace_in_the_key_tables_pages_once_compacted() {
    let app = spawn_app().await;
    let admin = app.token("admin", None);
    let id = app.register(app.case_body()).await;
    let owner = app.db.owner_client().await;
    let row = owner.query_one("SELECT wrapped_key, tableoid::regclass::text FROM subject_keys", &[]).await.unwrap();
    let (key, partition): (Vec<u8>, String) = (row.get(0), row.get(1));
    assert!(key.len() >= 32, "a wrapped key");
    let r = app.post(&format!("/api/v1/cases/{id}/complainant/erase"), &admin, json!({})).await;
    assert_eq!(r.status, StatusCode::NO_CONTENT, "{}", r.text);

    let su = app.db.super_client().await;
    su.batch_execute("CREATE EXTENSION IF NOT EXISTS pageinspect").await.unwrap();
    // Without compaction the old row version still carries the key: this is what the test
    // guards against (it fails here when compaction does nothing).
    assert!(holds(&raw_pages(&su, &partition).await, &key), "the dead row version holds the key before compaction");

    let done = compacted(&app, &partition).await;
    assert_eq!(done.rewritten, vec![partition.clone()]);
    assert!(!holds(&raw_pages(&su, &partition).await, &key), "no page of {partition} holds the shredded key");
    // Nothing left to do until the next erasure.
    assert_eq!(infra::vault::compact_erased_keys(&app.db.owner_settings()).await.unwrap(), Default::default());
    // The erased subject's row is still there, without its key.
    let left: Option<Vec<u8>> = owner.query_one("SELECT wrapped_key FROM subject_keys", &[]).await.unwrap().get(0);
    assert_eq!(left, None);
}

/// A fresh reviewer's finding: with a repeatable-read transaction open since before the
/// erasure (as a `pg_dump` holds one), `VACUUM FULL` copied the old row version, wrapped key and
/// all, into the new file, and the partition was recorded as done and never looked at again;
/// the reviewer unwrapped the key six minutes later. Now the partition is held, not done, until
/// a rewrite leaves no dead version.
#[tokio::test]
async fn a_transaction_older_than_the_erasure_holds_the_compaction_until_it_ends() {
    let app = spawn_app().await;
    let admin = app.token("admin", None);
    let id = app.register(app.case_body()).await;
    let owner = app.db.owner_client().await;
    let row = owner.query_one("SELECT wrapped_key, tableoid::regclass::text FROM subject_keys", &[]).await.unwrap();
    let (key, partition): (Vec<u8>, String) = (row.get(0), row.get(1));
    // A reader whose snapshot predates the erasure (it read another table, as a long export
    // would; one holding a lock on the key table is the next test's).
    let reader = app.db.app_client().await;
    reader.batch_execute("BEGIN ISOLATION LEVEL REPEATABLE READ").await.unwrap();
    let seen: i64 = reader.query_one("SELECT count(*) FROM events", &[]).await.unwrap().get(0);
    assert_eq!(seen, 1);
    let r = app.post(&format!("/api/v1/cases/{id}/complainant/erase"), &admin, json!({})).await;
    assert_eq!(r.status, StatusCode::NO_CONTENT, "{}", r.text);

    let su = app.db.super_client().await;
    su.batch_execute("CREATE EXTENSION IF NOT EXISTS pageinspect").await.unwrap();
    let done = infra::vault::compact_erased_keys(&app.db.owner_settings()).await.unwrap();
    assert_eq!((done.rewritten.as_slice(), done.held.as_slice()), (&[][..], &[partition.clone()][..]));
    assert!(holds(&raw_pages(&su, &partition).await, &key), "the reader may still read the old version: it stays");
    let recorded: i64 = owner.query_one("SELECT count(*) FROM subject_key_compactions", &[]).await.unwrap().get(0);
    assert_eq!(recorded, 0, "not recorded as done");

    reader.batch_execute("COMMIT").await.unwrap();
    let done = compacted(&app, &partition).await;
    assert_eq!(done.held, Vec::<String>::new());
    assert!(!holds(&raw_pages(&su, &partition).await, &key), "no page of {partition} holds the shredded key");
}

/// Found while writing the test above: `VACUUM FULL` waits for the partition's ACCESS EXCLUSIVE
/// lock, and while it waits every new reader of the key table queues behind it, so a
/// `pg_dump` (which holds ACCESS SHARE on every table for the whole dump) stalled every
/// registration. Now the rewrite takes the lock only when it is free (`SKIP_LOCKED`), else holds the partition for
/// the next try, and registrations go on.
#[tokio::test]
async fn a_long_reader_of_the_key_table_neither_blocks_the_compaction_nor_is_queued_behind_it() {
    let app = spawn_app().await;
    let admin = app.token("admin", None);
    let id = app.register(app.case_body()).await;
    let partition: String = app
        .db
        .owner_client()
        .await
        .query_one("SELECT tableoid::regclass::text FROM subject_keys", &[])
        .await
        .unwrap()
        .get(0);
    let reader = app.db.app_client().await;
    // Read committed: it holds the table's lock, but no snapshot between its statements, so
    // nothing keeps the old version; only the lock stands in the rewrite's way.
    reader.batch_execute("BEGIN").await.unwrap();
    reader.query_one("SELECT count(*) FROM subject_keys", &[]).await.unwrap();
    let r = app.post(&format!("/api/v1/cases/{id}/complainant/erase"), &admin, json!({})).await;
    assert_eq!(r.status, StatusCode::NO_CONTENT, "{}", r.text);

    let started = std::time::Instant::now();
    let done = tokio::time::timeout(
        std::time::Duration::from_secs(20),
        infra::vault::compact_erased_keys(&app.db.owner_settings()),
    )
    .await
    .expect("the compaction gives up on the lock instead of waiting")
    .unwrap();
    assert_eq!(done.held, vec![partition.clone()]);
    assert!(started.elapsed() < std::time::Duration::from_secs(10), "{:?}", started.elapsed());
    // A registration meanwhile (it reads and writes the key table) is answered.
    app.register(app.case_body()).await;
    reader.batch_execute("COMMIT").await.unwrap();
    assert_eq!(compacted(&app, &partition).await.held, Vec::<String>::new());
}
