//! Small durable state in SQLite: opening a database with versioned schema migrations.
//!
//! Every crate that keeps small state (checkpoints here, alerts and the outbox in `alerting`)
//! opens its own file through [`open_sqlite`], so each owns its schema. The schema version is
//! SQLite's `user_version`; a file written by a newer Vigie is refused, never "migrated down".

use std::path::{Path, PathBuf};

use rusqlite::{Connection, OptionalExtension};

#[derive(Debug, thiserror::Error)]
pub enum StateError {
    #[error("cannot open database {path}: {source}")]
    Open { path: PathBuf, source: rusqlite::Error },
    #[error(
        "database {path} has schema version {found}, newer than the {supported} this vigie \
         understands; run a newer vigie or point --data at another directory"
    )]
    TooNew { path: PathBuf, found: i64, supported: i64 },
    #[error("cannot migrate database {path} to schema version {version}: {source}")]
    Migrate { path: PathBuf, version: i64, source: rusqlite::Error },
    #[error("database error: {0}")]
    Sqlite(#[from] rusqlite::Error),
}

/// Opens (or creates) the SQLite database at `path` and applies the `migrations` it has not
/// seen yet, each in its own transaction. `migrations[i]` brings the schema to version `i + 1`.
///
/// The connection uses WAL journaling and `synchronous = FULL`: a committed transaction
/// survives a power cut, which is what lets a checkpoint or an outbox row be trusted.
pub fn open_sqlite(path: &Path, migrations: &[&str]) -> Result<Connection, StateError> {
    let open_err = |source| StateError::Open { path: path.to_owned(), source };
    let mut conn = Connection::open(path).map_err(open_err)?;
    conn.pragma_update(None, "journal_mode", "WAL").map_err(open_err)?;
    conn.pragma_update(None, "synchronous", "FULL").map_err(open_err)?;
    conn.busy_timeout(std::time::Duration::from_secs(5)).map_err(open_err)?;
    // Several processes' and stages' connections write the same file: a transaction takes the
    // write lock when it begins (waiting up to the busy timeout), never by upgrading a read
    // snapshot later, which SQLite refuses at once with "database is locked".
    conn.set_transaction_behavior(rusqlite::TransactionBehavior::Immediate);
    let found: i64 = conn.pragma_query_value(None, "user_version", |r| r.get(0)).map_err(open_err)?;
    let supported = migrations.len() as i64;
    if found > supported {
        return Err(StateError::TooNew { path: path.to_owned(), found, supported });
    }
    // SQLite's procedure for schema changes: foreign keys off outside the transaction (a
    // migration may rebuild a referenced table), checked before each commit, then back on.
    let enforced: bool = conn.pragma_query_value(None, "foreign_keys", |r| r.get(0)).map_err(open_err)?;
    let pending = (found as usize) < migrations.len();
    if pending && enforced {
        conn.pragma_update(None, "foreign_keys", false).map_err(open_err)?;
    }
    for (i, sql) in migrations.iter().enumerate().skip(found as usize) {
        let version = i as i64 + 1;
        let migrate_err = |source| StateError::Migrate { path: path.to_owned(), version, source };
        let tx = conn.transaction().map_err(migrate_err)?;
        tx.execute_batch(sql).map_err(migrate_err)?;
        let broken: Option<String> =
            tx.query_row("PRAGMA foreign_key_check", [], |r| r.get(0)).optional().map_err(migrate_err)?;
        if let Some(table) = broken {
            return Err(migrate_err(rusqlite::Error::SqliteFailure(
                rusqlite::ffi::Error::new(rusqlite::ffi::SQLITE_CONSTRAINT_FOREIGNKEY),
                Some(format!("the migration leaves rows of {table} pointing at nothing")),
            )));
        }
        tx.pragma_update(None, "user_version", version).map_err(migrate_err)?;
        tx.commit().map_err(migrate_err)?;
    }
    if pending && enforced {
        conn.pragma_update(None, "foreign_keys", true).map_err(open_err)?;
    }
    Ok(conn)
}

#[cfg(test)]
mod tests {
    use super::*;

    const V1: &str = "CREATE TABLE t (a INTEGER);";
    const V2: &str = "ALTER TABLE t ADD COLUMN b TEXT;";

    #[test]
    fn migrations_apply_once_and_in_order() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("s.sqlite");
        drop(open_sqlite(&path, &[V1]).unwrap());
        let conn = open_sqlite(&path, &[V1, V2]).unwrap();
        conn.execute("INSERT INTO t (a, b) VALUES (1, 'x')", []).unwrap();
        let v: i64 = conn.pragma_query_value(None, "user_version", |r| r.get(0)).unwrap();
        assert_eq!(v, 2);
    }

    #[test]
    fn a_newer_schema_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("s.sqlite");
        drop(open_sqlite(&path, &[V1, V2]).unwrap());
        let err = open_sqlite(&path, &[V1]).unwrap_err();
        assert!(matches!(err, StateError::TooNew { found: 2, supported: 1, .. }), "{err}");
        assert!(err.to_string().contains("newer"));
    }
}
