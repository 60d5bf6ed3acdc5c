//! The library without the `vigie` binary around it: `USERS` virtual users requesting `URL`
//! for `SECONDS`, no rate cap, the JSON report on standard output. The same code path as
//! `vigie loadtest --url URL --users USERS --duration SECONDS --max-rate none --json`; used to
//! measure the load generator itself when building the whole binary is not an option.
//!
//!   cargo run --release -p loadtest --example url_load -- http://127.0.0.1:8099/ 1000 10

use std::time::Duration;

use loadtest::{AllowList, ClientSettings, HttpVersion, Profile, Run, RunOptions, Scenario};
use tokio_util::sync::CancellationToken;

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let [url, users, seconds] = args.as_slice() else {
        return Err("usage: url_load URL USERS SECONDS".into());
    };
    loadtest::raise_open_files_limit()?;
    let options = RunOptions {
        profile: Profile::Constant { users: users.parse()? },
        duration: Some(Duration::from_secs(seconds.parse()?)),
        iterations_per_user: None,
        timeout: Duration::from_secs(30),
        max_rate: None,
        allow: AllowList::default(),
        client: ClientSettings::new(HttpVersion::Http1, &[])?,
    };
    let run = Run::new(Scenario::single_get(url)?, options)?;
    // As `vigie loadtest`: single-threaded on one core.
    let cores = std::thread::available_parallelism().map_or(1, std::num::NonZeroUsize::get);
    let mut builder = if cores == 1 {
        tokio::runtime::Builder::new_current_thread()
    } else {
        tokio::runtime::Builder::new_multi_thread()
    };
    let runtime = builder.enable_all().build()?;
    let report = runtime.block_on(run.run(CancellationToken::new()));
    println!("{}", serde_json::to_string_pretty(&report)?);
    Ok(())
}
