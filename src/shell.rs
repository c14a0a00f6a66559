//! `panorama sql`: an interactive SQL shell with history and multi-line statements.
//! A statement runs when a line ends with `;`. Backslash commands: `\d`, `\d TABLE`, `\q`, `\?`.

use std::path::PathBuf;

use datafusion::prelude::SessionContext;
use rustyline::error::ReadlineError;
use rustyline::DefaultEditor;

use crate::error::{Error, Result};
use crate::output::{write_batches, OutputFormat};

const HELP: &str = "\
Statements end with `;` and may span lines.
  \\d            list tables
  \\d TABLE      describe a table
  \\q            quit (or Ctrl-D)
  \\?            this help";

/// Run the shell until the user quits. History lives in `history_file`.
pub async fn run_shell(ctx: &SessionContext, history_file: PathBuf, banner: &str) -> Result<()> {
    let mut rl = DefaultEditor::new().map_err(|e| Error::Terminal {
        what: "cannot start the shell",
        message: e.to_string(),
    })?;
    let _ = rl.load_history(&history_file);
    println!("{banner}\nType \\? for help, \\q to quit.");
    let mut buffer = String::new();
    loop {
        let prompt = if buffer.is_empty() {
            "panorama> "
        } else {
            "      ...> "
        };
        match rl.readline(prompt) {
            Ok(line) => {
                let trimmed = line.trim();
                if buffer.is_empty() && trimmed.starts_with('\\') {
                    let _ = rl.add_history_entry(trimmed);
                    if trimmed == "\\q" {
                        break;
                    }
                    if let Err(e) = meta_command(ctx, trimmed).await {
                        eprintln!("error: {e}");
                    }
                    continue;
                }
                if trimmed.is_empty() && buffer.is_empty() {
                    continue;
                }
                buffer.push_str(&line);
                buffer.push('\n');
                if trimmed.ends_with(';') {
                    let sql = std::mem::take(&mut buffer);
                    let _ = rl.add_history_entry(sql.trim());
                    let started = std::time::Instant::now();
                    match run_sql(ctx, &sql).await {
                        Ok(rows) => {
                            println!("{rows} row(s) in {:.3}s", started.elapsed().as_secs_f64())
                        }
                        Err(e) => eprintln!("error: {e}"),
                    }
                }
            }
            Err(ReadlineError::Interrupted) => {
                buffer.clear();
            }
            Err(ReadlineError::Eof) => break,
            Err(e) => {
                return Err(Error::Terminal {
                    what: "shell input failed",
                    message: e.to_string(),
                })
            }
        }
    }
    if let Some(dir) = history_file.parent() {
        let _ = std::fs::create_dir_all(dir);
    }
    let _ = rl.save_history(&history_file);
    Ok(())
}

async fn run_sql(ctx: &SessionContext, sql: &str) -> Result<usize> {
    let (_, batches) = crate::session::user_query(ctx, sql).await?;
    let rows = batches.iter().map(|b| b.num_rows()).sum();
    write_batches(&batches, OutputFormat::Table, &mut std::io::stdout())?;
    Ok(rows)
}

async fn meta_command(ctx: &SessionContext, cmd: &str) -> Result<()> {
    let mut parts = cmd.split_whitespace();
    match (parts.next(), parts.next()) {
        (Some("\\?"), _) => println!("{HELP}"),
        (Some("\\d"), None) => {
            run_sql(ctx, "SELECT table_name, table_type FROM information_schema.tables WHERE table_schema = 'public' ORDER BY table_name").await?;
        }
        (Some("\\d"), Some(table)) => {
            run_sql(ctx, &describe_sql(table)).await?;
        }
        _ => println!("unknown command {cmd}; \\? lists commands"),
    }
    Ok(())
}

/// SQL listing a table's columns, types and nullability.
pub fn describe_sql(table: &str) -> String {
    format!(
        "SELECT column_name, data_type, is_nullable FROM information_schema.columns \
         WHERE table_schema = 'public' AND table_name = '{}' ORDER BY ordinal_position",
        table.replace('\'', "''")
    )
}
