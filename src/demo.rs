//! `vigie demo`: the embedded default configuration and its welcome banner.

use std::path::Path;

use anyhow::Context;

/// The demo's configuration, as a user would write it. Paths are relative to the data dir.
const DEMO_CONFIG: &str = include_str!("../config/demo.toml");

/// The default rule files, embedded so the demo needs nothing on disk; written to
/// `<data>/rules/` on first start, where the user can read and edit them.
const RULES: &[(&str, &str)] = &crate::demo_rules::FILES;

pub(crate) fn config(
    listen: &str,
    data: &Path,
    smtp: Option<&str>,
    rate: u32,
) -> anyhow::Result<crate::config::Config> {
    std::fs::create_dir_all(data).with_context(|| format!("cannot create the data directory {}", data.display()))?;
    let data = data.canonicalize().with_context(|| format!("cannot resolve {}", data.display()))?;
    let rules = data.join("rules");
    if !rules.exists() {
        std::fs::create_dir_all(&rules)?;
        for (name, text) in RULES {
            std::fs::write(rules.join(name), text)
                .with_context(|| format!("cannot write {}", rules.join(name).display()))?;
        }
    }
    let mut text = DEMO_CONFIG
        .replace("@LISTEN@", listen)
        .replace("@WEB_RATE@", &rate.to_string())
        .replace("@FW_RATE@", &(rate / 10).max(1).to_string());
    // The archive's signing key, made on first start: the demo seals and purges days and its
    // legal officer can search, export and read the audit log. (A real site keeps the key
    // outside the data directory: `vigie archive keygen`.)
    let key = data.join("archive.key");
    if !key.exists() {
        retention::ArchiveKey::generate(&key).with_context(|| format!("cannot create {}", key.display()))?;
    }
    text.push_str("\n[retention]\nsigning_key = \"archive.key\"\n");
    if let Some(smtp) = smtp {
        let (host, port) = smtp.rsplit_once(':').with_context(|| format!("--smtp {smtp}: write it as HOST:PORT"))?;
        let port: u16 = port.parse().with_context(|| format!("--smtp {smtp}: the port is not a number"))?;
        text.push_str(&format!("\n[alerting.smtp]\nhost = \"{host}\"\nport = {port}\n"));
    }
    crate::config::parse(&data.join("demo.toml"), &text)
        .map_err(|e| anyhow::anyhow!("the embedded demo configuration is invalid:\n{e}"))
}

/// Writes the built-in rule files (and their tests) into `dir`.
pub(crate) fn write_default_rules(dir: &Path) -> anyhow::Result<()> {
    std::fs::create_dir_all(dir).with_context(|| format!("cannot create {}", dir.display()))?;
    for (name, text) in RULES {
        std::fs::write(dir.join(name), text).with_context(|| format!("cannot write {}", dir.join(name).display()))?;
    }
    Ok(())
}

pub(crate) fn banner(addr: &std::net::SocketAddr, data: &Path) {
    println!();
    println!("  Vigie demo is running on generated traffic of the city's 188 schools.");
    println!("  Open  http://{addr}/");
    println!("  An attack burst starts after about 12 s, an outage of the ENT after 35 s.");
    println!("  Data: {}  (alerts, emails in outbox/, archive/)", data.display());
    println!("  Stop with Ctrl-C.");
    println!();
}
