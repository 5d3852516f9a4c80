//! Try it against a local PostgreSQL: publishes a table and prints every change of it as
//! livecore's JSON.
//!
//! ```text
//! LIVECORE_PG_URL='host=127.0.0.1 user=me password=... dbname=app' \
//!   cargo run -p livecore-postgres --example tail -- public.items
//! ```
//!
//! The table must be `REPLICA IDENTITY FULL`. The example creates the slot
//! `livecore_tail` and the publication `livecore_tail`, loads the table through a
//! subscription with an initial load, prints changes until Ctrl-C, then drops both.

use std::sync::Arc;
use std::time::Duration;

use livecore::*;
use livecore_postgres::{PgSource, SourceConfig, TableConfig};

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let url = std::env::var("LIVECORE_PG_URL").map_err(|_| "set LIVECORE_PG_URL")?;
    let table = std::env::args()
        .nth(1)
        .unwrap_or_else(|| "public.items".into());
    let (schema, name) = table
        .split_once('.')
        .ok_or("name the table as schema.table")?;
    let manager = Arc::new(ConnectionsManager::new(ManagerConfig::default())?);
    let config = SourceConfig::new(
        url,
        "livecore_tail",
        "livecore_tail",
        vec![TableConfig::shared(schema, name)],
    );
    let source = PgSource::start(manager.clone(), config).await?;
    let mut connection = manager.register_connection()?;
    manager.authenticate(connection.connection_id, UserId::from("tail"), None)?;
    let subscription = manager.subscribe_sql(
        connection.connection_id,
        &format!("SELECT * FROM {table}"),
        SubscriptionOptions::with_initial_load(),
    )?;
    let printer = std::thread::spawn(move || {
        while let Ok(notification) = connection.notifications.recv() {
            println!("{}", notification.to_json());
        }
    });
    source.load(subscription.live_query_id).await?;
    tokio::select! {
        _ = tokio::signal::ctrl_c() => {}
        error = source.failed() => eprintln!("source failed: {error}"),
    }
    source.stop_and_drop().await?;
    manager.shutdown(Duration::from_secs(1));
    let _ = printer.join();
    Ok(())
}
