//! Persisted source positions, one row per source, in the data directory's `state.sqlite`.

use std::path::Path;
use std::sync::{Arc, Mutex};

use rusqlite::{Connection, OptionalExtension, params};
use serde::{Deserialize, Serialize};

use super::SourceError;

const MIGRATIONS: &[&str] = &["CREATE TABLE checkpoints (
        source     TEXT PRIMARY KEY,
        position   INTEGER NOT NULL,
        identity   TEXT NOT NULL,
        updated_at TEXT NOT NULL
    );"];

/// Where a source stands: everything before `position` was durably processed.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct Checkpoint {
    /// Byte offset (files) or sequence number (generators) of the next record to read.
    pub position: u64,
    /// What the position refers to: a file's fingerprint, a generator's seed. A source that
    /// finds a different identity knows the position is not about the same data.
    pub identity: String,
}

/// The checkpoint table. Cheap to clone; writes run on the blocking pool.
#[derive(Debug, Clone)]
pub struct CheckpointStore {
    conn: Arc<Mutex<Connection>>,
}

impl CheckpointStore {
    pub fn open(path: &Path) -> Result<CheckpointStore, crate::StateError> {
        let conn = crate::open_sqlite(path, MIGRATIONS)?;
        Ok(CheckpointStore { conn: Arc::new(Mutex::new(conn)) })
    }

    pub async fn load(&self, source: &str) -> Result<Option<Checkpoint>, SourceError> {
        let conn = self.conn.clone();
        let source = source.to_owned();
        run_blocking(move || {
            let conn = conn.lock().unwrap_or_else(|e| e.into_inner());
            conn.query_row("SELECT position, identity FROM checkpoints WHERE source = ?1", params![source], |row| {
                Ok(Checkpoint { position: row.get::<_, i64>(0)? as u64, identity: row.get(1)? })
            })
            .optional()
        })
        .await
    }

    pub async fn save(&self, source: &str, checkpoint: &Checkpoint) -> Result<(), SourceError> {
        let conn = self.conn.clone();
        let source = source.to_owned();
        let checkpoint = checkpoint.clone();
        run_blocking(move || {
            let conn = conn.lock().unwrap_or_else(|e| e.into_inner());
            conn.execute(
                "INSERT INTO checkpoints (source, position, identity, updated_at)
                 VALUES (?1, ?2, ?3, ?4)
                 ON CONFLICT(source) DO UPDATE SET position = ?2, identity = ?3, updated_at = ?4",
                params![source, checkpoint.position as i64, checkpoint.identity, jiff::Timestamp::now().to_string()],
            )
            .map(drop)
        })
        .await
    }

    /// Every checkpoint, for status pages and tests.
    pub fn all(&self) -> Result<Vec<(String, Checkpoint)>, rusqlite::Error> {
        let conn = self.conn.lock().unwrap_or_else(|e| e.into_inner());
        let mut stmt = conn.prepare("SELECT source, position, identity FROM checkpoints ORDER BY source")?;
        let rows = stmt.query_map([], |row| {
            Ok((row.get(0)?, Checkpoint { position: row.get::<_, i64>(1)? as u64, identity: row.get(2)? }))
        })?;
        rows.collect()
    }
}

async fn run_blocking<T: Send + 'static>(
    f: impl FnOnce() -> Result<T, rusqlite::Error> + Send + 'static,
) -> Result<T, SourceError> {
    match tokio::task::spawn_blocking(f).await {
        Ok(result) => Ok(result?),
        Err(join) => std::panic::resume_unwind(join.into_panic()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn saves_and_loads_per_source() {
        let dir = tempfile::tempdir().unwrap();
        let store = CheckpointStore::open(&dir.path().join("state.sqlite")).unwrap();
        assert_eq!(store.load("a").await.unwrap(), None);
        let cp = Checkpoint { position: 42, identity: "inode:7".into() };
        store.save("a", &cp).await.unwrap();
        store.save("b", &Checkpoint { position: 1, identity: String::new() }).await.unwrap();
        store.save("a", &Checkpoint { position: 43, ..cp.clone() }).await.unwrap();
        let reopened = CheckpointStore::open(&dir.path().join("state.sqlite")).unwrap();
        assert_eq!(reopened.load("a").await.unwrap().unwrap().position, 43);
        assert_eq!(reopened.all().unwrap().len(), 2);
    }
}
