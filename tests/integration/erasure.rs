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

    let done = infra::vault::compact_erased_keys(&app.db.owner_settings()).await.unwrap();
    assert_eq!(done, vec![partition.clone()]);
    assert!(!holds(&raw_pages(&su, &partition).await, &key), "no page of {partition} holds the shredded key");
    // Nothing left to do until the next erasure.
    assert!(infra::vault::compact_erased_keys(&app.db.owner_settings()).await.unwrap().is_empty());
    // The erased subject's row is still there, without its key.
    let left: Option<Vec<u8>> = owner.query_one("SELECT wrapped_key FROM subject_keys", &[]).await.unwrap().get(0);
    assert_eq!(left, None);
}
