//! LISTEN/NOTIFY between instances: a wake-up hint for event streams, never a source of truth
//! (notifications are lost while a listener is disconnected; readers also poll).

use std::sync::Arc;

use futures_util::StreamExt;
use tokio_postgres::{AsyncMessage, NoTls};

use crate::db::{DbSettings, Pool};
use crate::error::StoreError;

/// The channel the instances notify each other on.
pub const CHANNEL: &str = "huiyin_events";

/// Tells the other instances that events were appended.
pub async fn notify(pool: &Pool) -> Result<(), StoreError> {
    pool.get().await?.batch_execute(&format!("NOTIFY {CHANNEL}")).await?;
    Ok(())
}

/// Listens until the connection drops, waking `wake`'s waiters on every notification (and once
/// when listening starts, for what was missed while disconnected).
pub async fn listen(db: &DbSettings, wake: &Arc<tokio::sync::Notify>) -> Result<(), StoreError> {
    let (client, mut conn) = db.pg_config()?.connect(NoTls).await?;
    let mut messages = futures_util::stream::poll_fn(move |cx| conn.poll_message(cx));
    let (done_tx, done_rx) = tokio::sync::oneshot::channel::<()>();
    let on_message = wake.clone();
    let driver = tokio::spawn(async move {
        while let Some(m) = messages.next().await {
            match m {
                Ok(AsyncMessage::Notification(_)) => on_message.notify_waiters(),
                Ok(_) => {}
                Err(_) => break,
            }
        }
        let _ = done_tx.send(());
    });
    client.batch_execute(&format!("LISTEN {CHANNEL}")).await?;
    wake.notify_waiters();
    let _ = done_rx.await;
    driver.abort();
    Ok(())
}
