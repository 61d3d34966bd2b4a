//! A campaign's projections as the log stood at a moment, folded again from the events on a
//! private connection: what a frozen summary report is computed from, and recomputed from when
//! an auditor checks it.
//!
//! The moment is a [`LogCut`]: a PostgreSQL snapshot (`pg_current_snapshot()`) names exactly the
//! transactions that had ended when it was taken, so the events it sees never change — one
//! committed later stays outside it — and folding them again any day gives the same rows. A
//! snapshot, not a position: appends commit out of position order, and a transaction still
//! running (anywhere in the cluster) would hold the feed's gap-free head back.

use uuid::Uuid;

use crate::db::{DbSettings, Pool};
use crate::error::StoreError;
use crate::records::replay_projection;
use crate::store::{COLUMNS, StoredEvent, fold};

/// A moment of the log: the events its snapshot sees.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LogCut {
    /// The snapshot (`pg_snapshot` as text, `xmin:xmax:xip,…`).
    pub snapshot: String,
    /// The newest event's position it sees (0 for none): for people; the snapshot decides.
    pub position: i64,
}

/// The log as it stands: the current snapshot and the newest position it sees, in one statement
/// (one snapshot).
///
/// # Errors
/// A database failure.
pub async fn cut_now(pool: &Pool) -> Result<LogCut, StoreError> {
    let client = pool.get().await?;
    let stmt = client
        .prepare_cached("SELECT pg_current_snapshot()::text, coalesce((SELECT max(position) FROM events), 0)")
        .await?;
    let row = client.query_one(&stmt, &[]).await?;
    Ok(LogCut { snapshot: row.get(0), position: row.get(1) })
}

/// The events the cut sees (`$2` its snapshot).
const SEEN: &str = "pg_visible_in_snapshot(tx_id, $2::text::pg_snapshot)";

/// How many streams are read and folded at once.
const CHUNK: usize = 2000;

/// The ledger rows (with their KPI facts) and records of `campaign` as they stood at `cut`: a
/// one-connection pool whose connection holds them in temporary tables named `ledger`,
/// `kpi_facts`, `records` and the rollups (V25's `kpi_rollup`, `case_rollup` and their empty
/// change logs, filled by V26's `rollups_fill()`), which hide the live tables from every query made
/// through it (PostgreSQL looks in the session's temporary schema first). Reference data (units, categories, the calendar) is read live: it is not in
/// the log.
///
/// The cases are those the live ledger files under the campaign (a case's campaign is fixed at
/// registration); the records are the campaign's own, those filed under it, and the supervision
/// items about its cases. A stream with no event the cut sees did not exist yet and is left
/// out. The service's role needs the `TEMPORARY` privilege on the database (V23 grants it).
///
/// # Errors
/// A database failure, or a history that does not fold.
pub async fn campaign_at(settings: &DbSettings, campaign: Uuid, cut: &LogCut) -> Result<Pool, StoreError> {
    let mut one = settings.clone();
    one.pool_size = 1;
    one.application_name = "huiyin-replay".into();
    let pool = one.pool()?;
    let client = pool.get().await?;
    client
        .batch_execute(
            "CREATE TEMPORARY TABLE ledger (LIKE public.ledger INCLUDING DEFAULTS); \
             CREATE TEMPORARY TABLE records (LIKE public.records INCLUDING DEFAULTS);",
        )
        .await?;
    let cases: Vec<Uuid> = client
        .query("SELECT case_id FROM public.ledger WHERE campaign_id = $1 ORDER BY case_id", &[&campaign])
        .await?
        .iter()
        .map(|r| r.get(0))
        .collect();
    let events =
        format!("SELECT {COLUMNS} FROM public.events WHERE case_id = ANY($1) AND {SEEN} ORDER BY case_id, version");
    for chunk in cases.chunks(CHUNK) {
        let mut folded = Vec::with_capacity(chunk.len());
        for (id, history) in by_stream(client.query(&events, &[&chunk, &cut.snapshot]).await?)? {
            if let Some(case) = fold(domain::CaseId::from_uuid(id), &history)? {
                folded.push(case);
            }
        }
        crate::ledger::insert_rows(&**client, "pg_temp.ledger", &folded, false).await?;
    }
    let records: Vec<Uuid> = client
        .query(
            "SELECT record_id FROM public.records \
             WHERE record_id = $1 OR campaign_id = $1 \
                OR (stream_type = 'supervision' AND (doc->>'case')::uuid = ANY($2)) \
             ORDER BY record_id",
            &[&campaign, &cases],
        )
        .await?
        .iter()
        .map(|r| r.get(0))
        .collect();
    for chunk in records.chunks(CHUNK) {
        for (id, history) in by_stream(client.query(&events, &[&chunk, &cut.snapshot]).await?)? {
            let (Some(row), Some(last)) = (replay_projection(id, &history)?, history.last()) else { continue };
            let version = i32::try_from(last.version).unwrap_or(i32::MAX);
            client.execute(PUT_RECORD, &[&id, &last.stream_type(), &version, &row]).await?;
        }
    }
    client
        .batch_execute(&format!(
            "CREATE TEMPORARY TABLE kpi_facts AS {}; \
             CREATE TEMPORARY TABLE kpi_rollup (LIKE public.kpi_rollup INCLUDING CONSTRAINTS INCLUDING INDEXES); \
             CREATE TEMPORARY TABLE kpi_fact_changes (LIKE public.kpi_fact_changes); \
             CREATE TEMPORARY TABLE case_rollup (LIKE public.case_rollup INCLUDING CONSTRAINTS INCLUDING INDEXES); \
             CREATE TEMPORARY TABLE case_changes (LIKE public.case_changes); \
             SET work_mem = '256MB'; SELECT rollups_fill('kpi_facts', 'ledger', 'kpi_rollup', 'case_rollup'); \
             RESET work_mem; \
             ANALYZE pg_temp.ledger; ANALYZE pg_temp.records; ANALYZE pg_temp.kpi_facts; \
             ANALYZE pg_temp.kpi_rollup; ANALYZE pg_temp.case_rollup;",
            crate::ledger::kpi_facts_select("pg_temp.ledger")
        ))
        .await?;
    drop(client);
    Ok(pool)
}

/// A record's projection row into the temporary `records`, as `records_put()` (V18) writes the
/// live one.
const PUT_RECORD: &str = "INSERT INTO pg_temp.records (record_id, stream_type, version, campaign_id, unit_ids, \
                                   restricted, happened_on, serials, doc, updated_at) \
     VALUES ($1, $2, $3, ($4::jsonb->>'campaign_id')::uuid, \
             ARRAY(SELECT u::uuid FROM jsonb_array_elements_text(coalesce($4::jsonb->'unit_ids', '[]')) AS u), \
             coalesce(($4::jsonb->>'restricted')::boolean, false), ($4::jsonb->>'happened_on')::date, \
             CASE WHEN $4::jsonb ? 'serial_from' \
                  THEN int8range(($4::jsonb->>'serial_from')::bigint, ($4::jsonb->>'serial_to')::bigint, '[]') END, \
             $4::jsonb->'doc', now())";

/// Rows of events (ordered by stream and version) grouped per stream.
fn by_stream(rows: Vec<tokio_postgres::Row>) -> Result<Vec<(Uuid, Vec<StoredEvent>)>, StoreError> {
    let mut out: Vec<(Uuid, Vec<StoredEvent>)> = Vec::new();
    for r in &rows {
        let e = StoredEvent::from_row(r)?;
        match out.last_mut() {
            Some((id, history)) if *id == e.case_id => history.push(e),
            _ => out.push((e.case_id, vec![e])),
        }
    }
    Ok(out)
}
