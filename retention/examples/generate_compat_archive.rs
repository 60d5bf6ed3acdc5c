//! Writes the compatibility archive of the current format version, to be committed under
//! `retention/tests/compat/v<FORMAT_VERSION>` when a new format version is introduced:
//!
//! `cargo run -p retention --example generate_compat_archive -- retention/tests/compat/v1`

#[path = "../tests/compat/fixture.rs"]
mod fixture;

use std::path::PathBuf;
use std::process::ExitCode;

use retention::{Archive, ArchiveError, ArchiveQuery};

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
        for batch in fixture::batches() {
            archive.append(&batch)?;
            archive.commit()?;
        }
        // One more commit closes the writers, so no lock or merge is left behind.
        archive.commit()?;
        let query = ArchiveQuery {
            from: "2025-01-01T00:00:00Z".parse().expect("valid timestamp"),
            to: "2026-01-01T00:00:00Z".parse().expect("valid timestamp"),
            source_ip: None,
            source_port: None,
            user_name: None,
            limit: 100,
        };
        if archive.search(&query)? != fixture::expected() {
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
