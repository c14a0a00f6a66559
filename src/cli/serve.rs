//! Serving: `serve`, and the `users` and `tokens` that log in to it.

use panorama::error::{Error, Result};

use super::flags::*;
use super::Globals;

/// `panorama serve`: PostgreSQL wire, Flight SQL and HTTP over the current run; prints the ports, then `ready`.
pub async fn serve(g: &Globals, overrides: panorama::serve::Overrides) -> Result<()> {
    let cfg = g.config()?;
    let tls = overrides.tls_cert.is_some() || cfg.serve.as_ref().is_some_and(|s| s.tls.is_some());
    panorama::serve::serve(cfg, &overrides, |b, serving| {
        let snap = serving.snapshot();
        let (http, pg_ssl) = if tls {
            ("https", "?sslmode=require")
        } else {
            ("http", "")
        };
        // Tests and scripts read these lines to find the ports.
        println!(
            "serving run {} ({} customers)",
            snap.run_id,
            snap.index.customers()
        );
        println!("postgres  postgres://{}/panorama{pg_ssl}", b.pg);
        println!(
            "flight    grpc{}://{}",
            if tls { "+tls" } else { "" },
            b.flight
        );
        println!("http      {http}://{}/", b.http);
        println!("ready");
        use std::io::Write;
        let _ = std::io::stdout().flush();
    })
    .await
}

/// `panorama users add|remove|list`.
pub fn users(g: &Globals, command: UsersCommand) -> Result<()> {
    let quiet = g.quiet;
    let cfg = g.config()?;
    let dir = cfg.workspace_dir();
    let mut file = panorama::serve::auth::AuthFile::load(&dir)?;
    match command {
        UsersCommand::Add { name, role } => {
            let password = read_secret(&format!("Password for {name}: "))?;
            file.set_user(&name, &password, role)?;
            file.save(&dir)?;
            if !quiet {
                println!("user {name} ({}) saved", role.as_str());
            }
        }
        UsersCommand::Remove { name } => {
            if file.users.remove(&name).is_none() {
                return Err(Error::NotFound(format!("no user {name}")));
            }
            file.save(&dir)?;
        }
        UsersCommand::List => {
            for (n, u) in &file.users {
                println!("{n}\t{}", u.role.as_str());
            }
        }
    }
    Ok(())
}

/// `panorama tokens create|revoke|list`.
pub fn tokens(g: &Globals, command: TokensCommand) -> Result<()> {
    let quiet = g.quiet;
    let cfg = g.config()?;
    let dir = cfg.workspace_dir();
    let mut file = panorama::serve::auth::AuthFile::load(&dir)?;
    match command {
        TokensCommand::Create { name, role } => {
            let token = file.create_token(&name, role)?;
            file.save(&dir)?;
            println!("{token}");
            if !quiet {
                eprintln!(
                    "token {name} ({}) created; it is not shown again",
                    role.as_str()
                );
            }
        }
        TokensCommand::Revoke { name } => {
            if file.tokens.remove(&name).is_none() {
                return Err(Error::NotFound(format!("no token {name}")));
            }
            file.save(&dir)?;
        }
        TokensCommand::List => {
            for (n, t) in &file.tokens {
                println!("{n}\t{}\t{}", t.role.as_str(), t.created_at);
            }
        }
    }
    Ok(())
}

/// `panorama write-keys create|revoke|list`.
pub fn write_keys(g: &Globals, command: WriteKeysCommand) -> Result<()> {
    let cfg = g.config()?;
    let dir = cfg.workspace_dir();
    let mut file = panorama::serve::auth::AuthFile::load(&dir)?;
    match command {
        WriteKeysCommand::Create { name } => {
            let key = file.create_write_key(&name)?;
            file.save(&dir)?;
            println!("{key}");
            if !g.quiet {
                eprintln!("write key {name} created; it is not shown again");
                if cfg.events_source().is_none() {
                    eprintln!(
                        "note: no source has format = \"events\" yet, so the server collects nothing"
                    );
                }
            }
        }
        WriteKeysCommand::Revoke { name } => {
            if file.write_keys.remove(&name).is_none() {
                return Err(Error::NotFound(format!("no write key {name}")));
            }
            file.save(&dir)?;
        }
        WriteKeysCommand::List => {
            for (n, k) in &file.write_keys {
                println!("{n}\t{}", k.created_at);
            }
        }
    }
    Ok(())
}

/// A password from stdin: prompted on a terminal, one line when piped.
pub(crate) fn read_secret(prompt: &str) -> Result<String> {
    use std::io::{BufRead, IsTerminal, Write};
    if std::io::stdin().is_terminal() {
        eprint!("{prompt}");
        let _ = std::io::stderr().flush();
    }
    let mut line = String::new();
    std::io::stdin()
        .lock()
        .read_line(&mut line)
        .map_err(|e| Error::Terminal {
            what: "cannot read the password",
            message: e.to_string(),
        })?;
    Ok(line.trim_end_matches(['\r', '\n']).to_string())
}
