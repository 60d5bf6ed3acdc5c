//! `vigie user add|passwd|disable|list`: the web interface's local accounts, kept in
//! `users.sqlite` in the data directory; and the demo accounts' lines of `vigie demo`'s banner.

use std::io::{BufRead, IsTerminal, Write};
use std::path::PathBuf;

use anyhow::Context;

/// Where the accounts are: the data directory, given directly or through the configuration.
#[derive(Debug, clap::Args)]
#[group(required = true, multiple = false)]
pub(crate) struct Where {
    /// The configuration file (its `[data] dir` holds the accounts).
    #[arg(long, short, value_name = "FILE")]
    config: Option<PathBuf>,
    /// The data directory.
    #[arg(long, value_name = "DIR")]
    data: Option<PathBuf>,
}

#[derive(Debug, clap::Subcommand)]
pub(crate) enum UserCommand {
    /// Create an account; the password is asked twice (or read as one line from standard input).
    #[command(after_help = "Roles: viewer (dashboards), on-call (acknowledge, silence), approver (the city's IT\n\
                            service: approves outage notices), legal (requisition search only; a one-time code is\n\
                            mandatory), admin.\n\nExamples:\n  vigie user add --data /var/lib/vigie --role approver sctn.dupont\n  \
                            echo \"$PASSWORD\" | vigie user add --config /etc/vigie/vigie.toml --role legal juriste")]
    Add {
        #[command(flatten)]
        at: Where,
        /// viewer, on-call, approver, legal or admin.
        #[arg(long, value_name = "ROLE")]
        role: String,
        /// Ask for a one-time code at login (always on for the legal role).
        #[arg(long)]
        totp: bool,
        /// The account name (letters, digits, `.`, `-`, `_`, `@`).
        name: String,
    },
    /// Change an account's password (its open sessions are closed).
    Passwd {
        #[command(flatten)]
        at: Where,
        name: String,
    },
    /// Disable an account (kept for the audit trail; its sessions are closed).
    Disable {
        #[command(flatten)]
        at: Where,
        name: String,
    },
    /// List the accounts.
    List {
        #[command(flatten)]
        at: Where,
    },
}

fn data_dir(at: &Where) -> anyhow::Result<PathBuf> {
    match (&at.config, &at.data) {
        (Some(file), _) => match crate::config::load(file) {
            Ok(config) => Ok(config.data_dir),
            Err(errors) => anyhow::bail!("{errors}"),
        },
        (None, Some(dir)) => Ok(dir.clone()),
        (None, None) => anyhow::bail!("give --config FILE or --data DIR"),
    }
}

fn open(at: &Where) -> anyhow::Result<dashboards::UserStore> {
    let dir = data_dir(at)?;
    std::fs::create_dir_all(&dir).with_context(|| format!("cannot create the data directory {}", dir.display()))?;
    let path = dir.join("users.sqlite");
    dashboards::UserStore::open(&path).with_context(|| format!("opening the account database {}", path.display()))
}

/// Reads a password: twice without echo on a terminal, else one line of standard input.
fn read_password(prompt: &str) -> anyhow::Result<String> {
    let stdin = std::io::stdin();
    if !stdin.is_terminal() {
        let mut line = String::new();
        stdin.lock().read_line(&mut line).context("reading the password from standard input")?;
        return Ok(line.trim_end_matches(['\r', '\n']).to_owned());
    }
    let ask = |p: &str| -> anyhow::Result<String> {
        eprint!("{p}");
        std::io::stderr().flush()?;
        let _ = std::process::Command::new("stty").arg("-echo").status();
        let mut line = String::new();
        let read = stdin.lock().read_line(&mut line);
        let _ = std::process::Command::new("stty").arg("echo").status();
        eprintln!();
        read.context("reading the password")?;
        Ok(line.trim_end_matches(['\r', '\n']).to_owned())
    };
    let first = ask(prompt)?;
    let second = ask("Again: ")?;
    anyhow::ensure!(first == second, "the two passwords differ; nothing was changed");
    Ok(first)
}

/// Runs a `vigie user` command.
pub(crate) fn run(command: UserCommand) -> anyhow::Result<()> {
    match command {
        UserCommand::Add { at, role, totp, name } => {
            let role = dashboards::Role::parse(&role)?;
            let mut store = open(&at)?;
            let password = read_password(&format!(
                "Password for {name} (at least {} characters): ",
                dashboards::MIN_PASSWORD_LEN
            ))?;
            let secret = store.add(&name, role, &password, totp, jiff::Timestamp::now())?;
            println!("account {name} created with role {}", role.as_str());
            if let Some(secret) = secret {
                println!("one-time codes: add this key to an authenticator app (TOTP, SHA-1, 6 digits, 30 s):");
                println!("  key: {secret}");
                println!("  uri: {}", dashboards::otpauth_uri(&name, &secret));
            }
        }
        UserCommand::Passwd { at, name } => {
            let mut store = open(&at)?;
            let password = read_password(&format!("New password for {name}: "))?;
            store.set_password(&name, &password)?;
            println!("password of {name} changed; its sessions are closed");
        }
        UserCommand::Disable { at, name } => {
            open(&at)?.disable(&name)?;
            println!("account {name} disabled; its sessions are closed");
        }
        UserCommand::List { at } => {
            let users = open(&at)?.list()?;
            println!("{:<24} {:<9} {:<5} {:<9} created", "name", "role", "totp", "state");
            for u in users {
                println!(
                    "{:<24} {:<9} {:<5} {:<9} {}",
                    u.name,
                    u.role.as_str(),
                    if u.totp { "yes" } else { "no" },
                    if u.disabled { "disabled" } else { "active" },
                    u.created
                );
            }
        }
    }
    Ok(())
}

/// The banner lines of the demo accounts: one per role, with its password (demo only).
pub(crate) fn print_demo_accounts(accounts: &[dashboards::DemoAccount]) {
    println!("  Demo accounts (new passwords at each start; the demo only):");
    for a in accounts {
        print!("    {:<20} role {:<9} password {}", a.name, a.role.as_str(), a.password);
        if let Some(secret) = &a.totp_secret {
            print!("  TOTP key {secret}");
        }
        println!();
    }
    println!();
}
