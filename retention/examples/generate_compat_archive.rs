//! Writes the compatibility archive of the current format version, to be committed under
//! `retention/tests/compat/v<FORMAT_VERSION>` when a new format version is introduced:
//!
//! `cargo run -p retention --example generate_compat_archive -- retention/tests/compat/v3`
//!
//! It writes the records of `fixture::batches_v2` (the fields have not changed since version 2).
//! Days are sealed (manifest, signature, chain head; from version 3 on, the day summary too)
//! with the fixture key `fixture::V2_KEY_SEED`, as of 2025-04-09.

#[path = "../tests/compat/fixture.rs"]
mod fixture;

use std::path::PathBuf;
use std::process::ExitCode;

use retention::{Archive, ArchiveError, ArchiveKey, ArchiveQuery};

fn main() -> ExitCode {
    let Some(dir) = std::env::args_os().nth(1).map(PathBuf::from) else {
        eprintln!("usage: generate_compat_archive <empty directory>");
        return ExitCode::FAILURE;
    };
    if std::fs::read_dir(&dir).is_ok_and(|mut entries| entries.next().is_some()) {
        eprintln!("{} is not empty: an existing compatibility archive is never rewritten", dir.display());
        return ExitCode::FAILURE;
    }
    let result = (|| {
        let mut archive = Archive::open(&dir)?;
        for batch in fixture::batches_v2() {
            archive.append(&batch)?;
            archive.commit()?;
        }
        // One more commit closes the writers, so no lock or merge is left behind.
        archive.commit()?;
        archive.set_key(ArchiveKey::from_seed(fixture::V2_KEY_SEED));
        let sealed_at = "2025-04-09T00:00:00Z".parse().expect("valid timestamp");
        archive.close_days(sealed_at, jiff::SignedDuration::from_hours(2))?;
        let query = ArchiveQuery {
            from: "2025-01-01T00:00:00Z".parse().expect("valid timestamp"),
            to: "2026-01-01T00:00:00Z".parse().expect("valid timestamp"),
            limit: 100,
            ..ArchiveQuery::default()
        };
        if archive.search(&query)? != fixture::expected_v2() {
            return Err(ArchiveError::InvalidQuery("the written archive does not read back as expected".into()));
        }
        Ok::<(), ArchiveError>(())
    })();
    match result {
        Ok(()) => {
            println!("format version {} archive written to {}", retention::FORMAT_VERSION, dir.display());
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("cannot write the compatibility archive: {e}");
            ExitCode::FAILURE
        }
    }
}
