//! The layers of `src/` and their one direction (issue 20): foundation → config → shared
//! state → stages in pipeline order → pipeline and tools → interfaces. A module may use a
//! module of its own or an earlier layer, never a later one.
//!
//! The test fails naming the files when a module imports from a later layer (stop 32 started
//! with 41 such back-imports as a ratchet list; the last went at stop 41). Read from the
//! source text, as `crate::<module>` paths outside comments and `#[cfg(test)]` modules.

use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;

/// Each top-level module of the library and its layer; later layers may use earlier ones.
const LAYERS: &[(&str, u32)] = &[
    // Foundation: errors, SQL text, table names, table output, the workspace on disk.
    ("background_priority", 0),
    ("engine", 0),
    ("error", 0),
    ("event_log", 0),
    ("sql_text", 0),
    ("text_encoding", 0),
    ("table_catalog", 0),
    ("table_io", 0),
    ("query_limits", 0),
    ("output", 0),
    ("workspace", 0),
    // The whole panorama.toml.
    ("config", 1),
    // The context a run's stages compute in; Panorama's own logs kept across runs.
    ("run_context", 2),
    ("state", 2),
    // What privacy requests left behind (suppression list, consent), honoured by every stage.
    ("privacy_state", 2),
    // Ballista contexts (`--features ballista`): built beside, and from, the local session.
    ("scale_out", 2),
    // Stages, in the order a run makes them.
    ("sources", 3),
    ("unify", 4),
    // Profiles and expectations: run after loading, before unification, but measure parse
    // rates with unify's staging SQL.
    ("quality", 4),
    ("activities", 5),
    ("predictions", 6),
    ("analytics", 7),
    // A finished run opened for queries: every table and table function.
    ("session", 8),
    ("charts", 8),
    // The lookup index `panorama serve` answers from, built at the end of a run.
    ("lookup_index", 8),
    ("exports", 9),
    ("journeys", 10),
    // The pipeline, and tools that use the stages.
    ("run", 12),
    // Privacy requests (access, rectification, erasure) run the pipeline again; what they
    // leave behind for the stages is `privacy_state`.
    ("privacy", 12),
    ("project", 12),
    ("demo", 12),
    ("init_from", 12),
    ("doctor", 12),
    // Interfaces.
    ("serve", 13),
    ("shell", 13),
    ("schedule", 13),
];

fn layer(module: &str) -> Option<u32> {
    LAYERS.iter().find(|(m, _)| *m == module).map(|(_, l)| *l)
}

/// The source text without comments and without the `#[cfg(test)]` module at the end.
fn code_of(text: &str) -> String {
    let text = text.split("#[cfg(test)]").next().unwrap_or("");
    text.lines()
        .filter(|l| !l.trim_start().starts_with("//"))
        .collect::<Vec<_>>()
        .join("\n")
}

/// The top-level modules a file's code names through `crate::`.
fn used_modules(code: &str) -> BTreeSet<String> {
    let mut used = BTreeSet::new();
    let ident = |s: &str| -> String {
        s.chars()
            .take_while(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || *c == '_')
            .collect()
    };
    for (i, _) in code.match_indices("crate::") {
        let rest = &code[i + "crate::".len()..];
        if let Some(group) = rest.strip_prefix('{') {
            // `use crate::{a::b, c};`: the first name of each item at the group's top level.
            let mut depth = 0;
            let mut start = true;
            for (j, c) in group.char_indices() {
                match c {
                    '{' => depth += 1,
                    '}' if depth == 0 => break,
                    '}' => depth -= 1,
                    ',' if depth == 0 => start = true,
                    c if start && !c.is_whitespace() => {
                        used.insert(ident(&group[j..]));
                        start = false;
                    }
                    _ => {}
                }
            }
        } else {
            used.insert(ident(rest));
        }
    }
    used
}

fn rust_files(dir: &Path, out: &mut Vec<std::path::PathBuf>) {
    for e in std::fs::read_dir(dir).unwrap() {
        let p = e.unwrap().path();
        if p.is_dir() {
            rust_files(&p, out);
        } else if p.extension().is_some_and(|x| x == "rs") {
            out.push(p);
        }
    }
}

#[test]
fn modules_import_only_from_their_own_or_earlier_layers() {
    let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("src");
    let mut files = Vec::new();
    rust_files(&src, &mut files);
    let mut back: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
    let mut unknown = BTreeSet::new();
    for f in &files {
        let rel = f
            .strip_prefix(&src)
            .unwrap()
            .to_string_lossy()
            .replace('\\', "/");
        let top = rel
            .split('/')
            .next()
            .unwrap()
            .trim_end_matches(".rs")
            .to_string();
        // The binaries sit above every layer.
        if matches!(top.as_str(), "lib" | "main" | "cli" | "bin") {
            continue;
        }
        let Some(from) = layer(&top) else {
            unknown.insert(top);
            continue;
        };
        for m in used_modules(&code_of(&std::fs::read_to_string(f).unwrap())) {
            if m == top || m.is_empty() {
                continue;
            }
            match layer(&m) {
                Some(to) if to > from => {
                    back.entry(format!("{top} -> {m}"))
                        .or_default()
                        .insert(rel.clone());
                }
                Some(_) => {}
                None => {
                    unknown.insert(m);
                }
            }
        }
    }
    assert!(
        unknown.is_empty(),
        "modules with no layer in tests/layering.rs (add them to LAYERS): {unknown:?}"
    );
    let new: Vec<String> = back
        .iter()
        .map(|(e, files)| {
            format!(
                "{e} (in {})",
                files.iter().cloned().collect::<Vec<_>>().join(", ")
            )
        })
        .collect();
    assert!(
        new.is_empty(),
        "{} new import(s) from a later layer; move the helper down to a layer both can use \
         instead:\n  {}",
        new.len(),
        new.join("\n  ")
    );
}
