//! Reading what `panorama init --from` is pointed at: each input becomes a candidate source
//! (name, location, format, CSV delimiter) and a sample of its rows as text, read with the same
//! readers `panorama run` uses, so the guesses are about exactly what a run will see.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use arrow::array::{Array, StringArray};
use arrow::datatypes::DataType;

use crate::config::{ColumnType, ProjectConfig};
use crate::error::{Error, Result};
use crate::sources::location;
use crate::table_catalog::names;
use crate::text_encoding as encoding;

/// One input turned into a source.
#[derive(Debug, Clone)]
pub struct Input {
    /// Table name: from the file or table name, lower-case, unique.
    pub name: String,
    /// Where it is read from (relative to the project when inside it).
    pub location: String,
    /// What the config says instead, when that differs: a database URL's password becomes
    /// `${PGPASSWORD}` (`${MYSQL_PWD}` for MySQL), so no secret lands in a file kept in git.
    pub written: Option<String>,
    pub format: &'static str,
    /// `postgres` and `mysql` only.
    pub table: Option<String>,
    /// CSV only, when not a comma.
    pub delimiter: Option<char>,
    /// CSV and JSON: the encoding found in the first file when it is not UTF-8
    /// (`windows-1252`), and how it was found (a comment for the config).
    pub encoding: Option<(String, String)>,
}

/// A source's sampled rows, column by column, as text.
#[derive(Debug)]
pub struct Sample {
    pub input: Input,
    pub columns: Vec<SampledColumn>,
    pub rows: usize,
    /// The whole source was read (not only its first `sample_rows` rows).
    pub complete: bool,
    /// Rows the reader rejected (broken CSV lines).
    pub rejects: usize,
}

#[derive(Debug)]
pub struct SampledColumn {
    pub name: String,
    /// The type as read: Utf8 for CSV, the file's type for Parquet, JSON and tables.
    pub data_type: DataType,
    /// The type `panorama run` infers for a CSV column from its first rows.
    pub inferred: Option<ColumnType>,
    /// Values as text; None for NULL and blank values.
    pub values: Vec<Option<String>>,
}

impl Sample {
    pub fn column(&self, name: &str) -> Option<&SampledColumn> {
        self.columns.iter().find(|c| c.name == name)
    }
}

/// Names Panorama's own tables use; a source named so gets `_source` appended.
const RESERVED: &[&str] = &[
    names::REJECTS,
    names::RUNS,
    names::SOURCE_STATS,
    names::UNIFY_RECORDS,
    names::MATCH_PAIRS,
    names::CUSTOMER_LINKS,
    names::UNIFIED_CUSTOMERS,
    names::ID_CHANGES,
    names::ACCOUNT_LINKS,
    names::UNIFIED_ACCOUNTS,
    names::ACTIVITIES,
    names::ACTIVITY_STATS,
    names::UNIFY_STATS,
    names::IDENTITY_GRAPH,
    "truth",
];

/// A table name from a file or table name: `Kunden-Export 2024.csv` → `kunden_export_2024`.
pub fn table_name(stem: &str, taken: &[String]) -> String {
    let mut name: String = stem
        .chars()
        .map(|c| {
            let c = crate::init_from::semantics::fold_char(c);
            if c.is_ascii_alphanumeric() {
                c.to_ascii_lowercase()
            } else {
                '_'
            }
        })
        .collect();
    while name.contains("__") {
        name = name.replace("__", "_");
    }
    let mut name = name.trim_matches('_').to_string();
    if name.is_empty() || name.starts_with(|c: char| c.is_ascii_digit()) {
        name = format!("source_{name}");
    }
    if RESERVED.contains(&name.as_str()) {
        name.push_str("_source");
    }
    let base = name.clone();
    let mut n = 2;
    while taken.contains(&name) {
        name = format!("{base}_{n}");
        n += 1;
    }
    name
}

fn format_of(path: &str) -> Option<&'static str> {
    let lower = path.to_ascii_lowercase();
    let ext = lower.rsplit('.').next().unwrap_or("");
    match ext {
        "csv" | "tsv" | "txt" => Some("csv"),
        "parquet" | "pq" => Some("parquet"),
        "json" | "ndjson" | "jsonl" => Some("json"),
        _ => None,
    }
}

fn is_glob(s: &str) -> bool {
    s.contains(['*', '?', '['])
}

/// How `location` is written in the config of a project in `project`: relative when inside it.
fn written_location(path: &Path, project: &Path) -> String {
    let abs = std::path::absolute(path).unwrap_or_else(|_| path.to_path_buf());
    let root = std::path::absolute(project).unwrap_or_else(|_| project.to_path_buf());
    match abs.strip_prefix(&root) {
        Ok(rel) => rel.display().to_string(),
        Err(_) => abs.display().to_string(),
    }
}

/// Expand the `--from` arguments into inputs. Returns the inputs and a note per path skipped.
pub fn expand(from: &[String], project: &Path) -> Result<(Vec<Input>, Vec<String>)> {
    let mut inputs: Vec<Input> = Vec::new();
    let mut skipped = Vec::new();
    let mut taken: Vec<String> = Vec::new();
    let mut push = |stem: &str,
                    location: String,
                    format: &'static str,
                    table: Option<String>,
                    written: Option<String>| {
        let name = table_name(stem, &taken);
        taken.push(name.clone());
        inputs.push(Input {
            name,
            location,
            written,
            format,
            table,
            delimiter: None,
            encoding: None,
        });
    };
    for arg in from {
        let database = if arg.starts_with("postgres://") || arg.starts_with("postgresql://") {
            Some((
                "postgres",
                "postgres://user@host/db#schema.table",
                "PGPASSWORD",
            ))
        } else if arg.starts_with("mysql://") || arg.starts_with("mariadb://") {
            Some(("mysql", "mysql://user@host/db#table", "MYSQL_PWD"))
        } else {
            None
        };
        if let Some((format, example, password_var)) = database {
            let Some((url, table)) = arg.rsplit_once('#') else {
                return Err(Error::InvalidRequest(format!(
                    "--from {}: name the table after a `#`: {example}",
                    crate::sources::location::redact(arg)
                )));
            };
            let stem = table.rsplit('.').next().unwrap_or(table);
            let redacted = crate::sources::location::redact(url);
            let written = (redacted != url)
                .then(|| redacted.replace(":***@", &format!(":${{{password_var}}}@")));
            push(
                stem,
                url.to_string(),
                format,
                Some(table.to_string()),
                written,
            );
            continue;
        }
        if location::is_url(arg) {
            let Some(format) = format_of(arg.trim_end_matches('/')) else {
                skipped.push(format!(
                    "{arg}: not a .csv, .tsv, .parquet or .json location"
                ));
                continue;
            };
            let stem = arg
                .trim_end_matches('/')
                .rsplit('/')
                .find(|p| !is_glob(p) && format_of(p).is_none())
                .or_else(|| {
                    arg.rsplit('/')
                        .next()
                        .map(|f| f.split('.').next().unwrap_or(f))
                })
                .unwrap_or("source");
            push(stem, arg.clone(), format, None, None);
            continue;
        }
        if is_glob(arg) {
            let Some(format) = format_of(arg) else {
                skipped.push(format!(
                    "{arg}: the pattern names no .csv, .parquet or .json files"
                ));
                continue;
            };
            let path = Path::new(arg);
            let stem = path
                .parent()
                .and_then(|p| p.file_name())
                .map(|s| s.to_string_lossy().to_string())
                .unwrap_or_else(|| "source".into());
            let loc = written_location(path, project);
            push(&stem, loc, format, None, None);
            continue;
        }
        let path = PathBuf::from(arg);
        if !path.exists() {
            return Err(Error::NotFound(format!(
                "--from {arg}: no such file or directory"
            )));
        }
        let mut found = Vec::new();
        walk(&path, true, &mut found, &mut skipped);
        for (stem, p, format) in found {
            let mut loc = written_location(&p, project);
            if p.is_dir() && format != "delta" {
                loc.push('/');
            }
            push(&stem, loc, format, None, None);
        }
    }
    if inputs.is_empty() {
        return Err(Error::NotFound(format!(
            "--from found no data to read{}",
            if skipped.is_empty() {
                String::new()
            } else {
                format!(": {}", skipped.join("; "))
            }
        )));
    }
    Ok((inputs, skipped))
}

/// The sources under `p`: a file; a Delta table; a folder of part files of one format (no
/// subfolders) as one source; else (and always for a folder given on the command line) each
/// entry on its own.
fn walk(
    p: &Path,
    given: bool,
    found: &mut Vec<(String, PathBuf, &'static str)>,
    skipped: &mut Vec<String>,
) {
    let stem = |p: &Path| {
        p.file_stem()
            .map(|s| s.to_string_lossy().to_string())
            .unwrap_or_default()
    };
    if p.join("_delta_log").is_dir() {
        found.push((stem(p), p.to_path_buf(), "delta"));
        return;
    }
    if !p.is_dir() {
        match format_of(&p.to_string_lossy()) {
            Some(format) => found.push((stem(p), p.to_path_buf(), format)),
            None => skipped.push(format!(
                "{}: not a format Panorama reads (csv, tsv, parquet, json, delta)",
                p.display()
            )),
        }
        return;
    }
    let mut entries: Vec<PathBuf> = std::fs::read_dir(p)
        .into_iter()
        .flatten()
        .flatten()
        .map(|e| e.path())
        .filter(|e| {
            !e.file_name()
                .is_some_and(|n| n.to_string_lossy().starts_with(['.', '_']))
        })
        .collect();
    entries.sort();
    let mut formats: Vec<Option<&'static str>> = entries
        .iter()
        .map(|e| {
            if e.is_dir() {
                None
            } else {
                format_of(&e.to_string_lossy())
            }
        })
        .collect();
    formats.dedup();
    if !given && formats.len() == 1 && formats[0].is_some() {
        found.push((stem(p), p.to_path_buf(), formats[0].expect("one format")));
        return;
    }
    for e in entries {
        walk(&e, false, found, skipped);
    }
}

/// The delimiter of a CSV file from its first line: the one of `,` `;` tab `|` seen most
/// often outside quotes (a comma when none is).
pub fn sniff_delimiter(head: &[u8]) -> char {
    let line = head.split(|b| *b == b'\n').next().unwrap_or(head);
    let mut counts = [0usize; 4];
    let mut quoted = false;
    for b in line {
        match b {
            b'"' => quoted = !quoted,
            b',' if !quoted => counts[0] += 1,
            b';' if !quoted => counts[1] += 1,
            b'\t' if !quoted => counts[2] += 1,
            b'|' if !quoted => counts[3] += 1,
            _ => {}
        }
    }
    let best = (0..4)
        .max_by_key(|i| (counts[*i], usize::MAX - i))
        .unwrap_or(0);
    if counts[best] == 0 {
        ','
    } else {
        [',', ';', '\t', '|'][best]
    }
}

/// A config with only `input` as a source, for the readers. Its primary key is never used.
fn reading_config(input: &Input, root: &Path) -> Result<ProjectConfig> {
    let mut text = format!(
        "[sources.{}]\nlocation = {}\nformat = \"{}\"\nprimary_key = \"_\"\n",
        input.name,
        super::render::toml_str(&input.location),
        input.format
    );
    if let Some(t) = &input.table {
        text.push_str(&format!("table = {}\n", super::render::toml_str(t)));
    }
    if let Some((e, _)) = &input.encoding {
        text.push_str(&format!("encoding = {}\n", super::render::toml_str(e)));
    }
    if let Some(d) = input.delimiter {
        text.push_str(&format!(
            "[sources.{}.csv]\ndelimiter = {}\n",
            input.name,
            super::render::toml_str(&d.to_string())
        ));
    }
    ProjectConfig::parse(root, &root.join("panorama.toml"), text)
}

/// Read up to `sample_rows` rows of `input` (all of them when the source is smaller).
pub fn read_sample(
    mut input: Input,
    root: &Path,
    sample_rows: usize,
    runtime: &tokio::runtime::Handle,
) -> Result<Sample> {
    let loc = location::expand_env(&input.location)
        .map_err(|m| Error::source(&input.name, &input.location, m))?;
    if matches!(input.format, "csv" | "json") {
        let files = runtime
            .block_on(location::resolve_files(&loc, root))
            .map_err(|m| Error::source(&input.name, &input.location, m))?;
        if let Some(first) = files.first() {
            let data = runtime
                .block_on(first.read())
                .map_err(|m| Error::source(&input.name, &first.display, m))?;
            // An export in Windows-1252 or UTF-16 is read as what it is, and the config says so.
            let text = encoding::decode(data, encoding::Declared::Auto);
            if text.encoding != encoding_rs::UTF_8 {
                let how = match text.found {
                    encoding::Found::ByteOrderMark => "the file starts with its byte-order mark",
                    _ => "not UTF-8: detected from the first file's bytes",
                };
                input.encoding = Some((text.encoding.name().to_ascii_lowercase(), how.into()));
            }
            if input.format == "csv" && input.delimiter.is_none() {
                let d = sniff_delimiter(&text.data[..text.data.len().min(64 * 1024)]);
                if d != ',' {
                    input.delimiter = Some(d);
                } else if input.location.to_ascii_lowercase().ends_with(".tsv") {
                    input.delimiter = Some('\t');
                }
            }
        }
    }
    let cfg = reading_config(&input, root)?;
    let source = &cfg.sources[&input.name];
    let mut columns: Vec<SampledColumn> = Vec::new();
    let mut rows = 0usize;
    let mut log = crate::sources::ReadLog::default();
    let mut complete = true;
    let result = crate::sources::read_raw(
        &cfg,
        &input.name,
        source,
        &loc,
        runtime,
        None,
        &mut log,
        &mut |chunk, infer| {
            let batch = &chunk.batch;
            if columns.is_empty() {
                let inferred: BTreeMap<String, ColumnType> = infer(batch);
                columns = batch
                    .schema()
                    .fields()
                    .iter()
                    .map(|f| SampledColumn {
                        name: f.name().clone(),
                        data_type: f.data_type().clone(),
                        inferred: inferred.get(f.name()).cloned(),
                        values: Vec::new(),
                    })
                    .collect();
            }
            let take = batch.num_rows().min(sample_rows - rows);
            for (i, col) in columns.iter_mut().enumerate() {
                let array = batch.column(i).slice(0, take);
                col.values.extend(as_text(&array));
            }
            rows += take;
            if rows >= sample_rows {
                complete = false;
                return Err(Error::StopReading);
            }
            Ok(())
        },
    );
    match result {
        Ok(_) | Err(Error::StopReading) => {}
        Err(e) => return Err(e),
    }
    Ok(Sample {
        input,
        columns,
        rows,
        complete,
        rejects: log.rejects.len(),
    })
}

/// A column's values as text (NULL and blank → None); nested values → None.
fn as_text(array: &dyn Array) -> Vec<Option<String>> {
    let text = match array.data_type() {
        DataType::Utf8 => None,
        DataType::Struct(_) | DataType::List(_) | DataType::LargeList(_) | DataType::Map(..) => {
            return vec![None; array.len()]
        }
        _ => arrow::compute::cast(array, &DataType::Utf8).ok(),
    };
    let strings = match &text {
        Some(a) => a.as_any().downcast_ref::<StringArray>(),
        None => array.as_any().downcast_ref::<StringArray>(),
    };
    match strings {
        Some(s) => s
            .iter()
            .map(|v| v.map(str::trim).filter(|v| !v.is_empty()).map(String::from))
            .collect(),
        None => vec![None; array.len()],
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn delimiters_are_sniffed_outside_quotes() {
        assert_eq!(sniff_delimiter(b"a;b;c\n1;2;3"), ';');
        assert_eq!(sniff_delimiter(b"\"a,b\";c;d\n"), ';');
        assert_eq!(sniff_delimiter(b"a\tb\n"), '\t');
        assert_eq!(sniff_delimiter(b"a,b\n"), ',');
        assert_eq!(sniff_delimiter(b"single\n"), ',');
    }

    #[test]
    fn table_names_are_sql_names() {
        let taken = vec!["crm".to_string()];
        assert_eq!(
            table_name("Kunden-Export 2024", &taken),
            "kunden_export_2024"
        );
        assert_eq!(table_name("crm", &taken), "crm_2");
        assert_eq!(table_name("2024 orders", &taken), "source_2024_orders");
        assert_eq!(table_name("activities", &taken), "activities_source");
        assert_eq!(table_name("Bestellungen_Ü", &taken), "bestellungen_u");
    }
}
