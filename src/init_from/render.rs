//! Writing an [`InitPlan`] as a commented `panorama.toml`, and the summary `init` prints.

use std::fmt::Write as _;

use super::{InitPlan, MapValue, Role, SourcePlan};

/// A TOML basic string.
pub fn toml_str(s: &str) -> String {
    toml::Value::String(s.to_string()).to_string()
}

/// A TOML key: bare when it can be.
pub fn toml_key(s: &str) -> String {
    if !s.is_empty()
        && s.chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-')
    {
        s.to_string()
    } else {
        toml_str(s)
    }
}

/// `line` with `# comment` beside it, aligned.
fn commented(line: String, comment: &str) -> String {
    if comment.is_empty() {
        return format!("{line}\n");
    }
    let pad = 44usize.saturating_sub(line.chars().count()).max(1);
    format!("{line}{}# {comment}\n", " ".repeat(pad))
}

fn sure(confidence: f64) -> &'static str {
    if confidence >= 0.9 {
        ""
    } else if confidence >= 0.7 {
        " (likely)"
    } else {
        " (check)"
    }
}

fn rows_read(s: &SourcePlan) -> String {
    if s.sample.complete {
        format!("{} rows, all read", s.sample.rows)
    } else {
        format!("the first {} rows read", s.sample.rows)
    }
}

/// The config text.
pub fn config(plan: &InitPlan) -> String {
    let mut out = String::new();
    render_project_section(&mut out, plan);
    let _ = writeln!(
        out,
        "# ---- Sources: one table each ------------------------------------------------------\n"
    );
    for s in &plan.sources {
        render_source_section(&mut out, s);
    }
    render_unify_section(&mut out, plan);
    render_activities_section(&mut out, plan);
    if let Some(t) = &plan.templates {
        render_templates_section(&mut out, t);
    }
    out
}

/// The opening comment, `[project]` and `[workspace]`.
fn render_project_section(out: &mut String, plan: &InitPlan) {
    let name = std::path::absolute(&plan.dir)
        .ok()
        .and_then(|p| p.file_name().map(|n| n.to_string_lossy().to_string()))
        .unwrap_or_else(|| "my-project".into());
    let _ = writeln!(
        out,
        "# Written by `panorama init --from` from {} source(s): every guess has its evidence\n\
         # beside it; \"(check)\" marks the unsure ones. Every key is documented in docs/config.md.\n\
         # Next: `panorama doctor` checks the config against the data, then `panorama run`.\n",
        plan.sources.len()
    );
    let _ = writeln!(out, "[project]\nname = {}\n", toml_str(&name));
    let _ = writeln!(
        out,
        "[workspace]\ndir = \".panorama\"   # runs are written here\nkeep_runs = 5       # completed runs kept for querying and rollback\n"
    );
}

/// `[sources.X]`, with its role and notes above it.
fn render_source_section(out: &mut String, s: &SourcePlan) {
    let input = &s.sample.input;
    let _ = writeln!(out, "# {}: {}; {}", s.name(), s.role.label(), rows_read(s));
    for note in &s.notes {
        let _ = writeln!(out, "# NOTE: {note}");
    }
    let _ = writeln!(out, "[sources.{}]", s.name());
    match &input.written {
        Some(w) => {
            let var = if input.format == "mysql" {
                "MYSQL_PWD"
            } else {
                "PGPASSWORD"
            };
            let _ = writeln!(
                out,
                "# The password is read from the environment: export {var}=… before a run."
            );
            let _ = writeln!(out, "location = {}", toml_str(w));
        }
        None => {
            let _ = writeln!(out, "location = {}", toml_str(&input.location));
        }
    }
    let _ = writeln!(out, "format = \"{}\"", input.format);
    if let Some(t) = &input.table {
        let _ = writeln!(out, "table = {}", toml_str(t));
    }
    let key = if s.primary_key.len() == 1 {
        format!("primary_key = {}", toml_str(&s.primary_key[0]))
    } else {
        format!(
            "primary_key = [{}]",
            s.primary_key
                .iter()
                .map(|k| toml_str(k))
                .collect::<Vec<_>>()
                .join(", ")
        )
    };
    out.push_str(&commented(key, &s.key_evidence));
    if !s.types.is_empty() {
        let types: Vec<String> = s
            .types
            .iter()
            .map(|(c, t)| format!("{} = \"{t}\"", toml_key(c)))
            .collect();
        out.push_str(&commented(
            format!("types = {{ {} }}", types.join(", ")),
            "codes kept as text: leading zeros and letters survive",
        ));
    }
    if let Some((e, how)) = &input.encoding {
        out.push_str(&commented(format!("encoding = {}", toml_str(e)), how));
    }
    if let Some(d) = input.delimiter {
        let _ = writeln!(out, "\n[sources.{}.csv]", s.name());
        out.push_str(&commented(
            format!("delimiter = {}", toml_str(&d.to_string())),
            "found in the header line",
        ));
    }
    out.push('\n');
}

/// `[unify]`: the match fields and people sources' mappings, and the events' identities.
fn render_unify_section(out: &mut String, plan: &InitPlan) {
    let people: Vec<&SourcePlan> = plan
        .sources
        .iter()
        .filter(|s| s.role == Role::People)
        .collect();
    let identities: Vec<&SourcePlan> = plan
        .sources
        .iter()
        .filter(|s| s.identity.is_some())
        .collect();
    if !people.is_empty() {
        let _ = writeln!(
            out,
            "# ---- Unification: one customer per person (probabilistic; blocking and vetoes are\n\
             # chosen from the data at run time: `panorama unify plan` shows the choice) ---------\n"
        );
        for f in &plan.fields {
            let _ = writeln!(out, "[unify.fields.{}]", f.name);
            out.push_str(&commented(format!("kind = \"{}\"", f.kind), &f.evidence));
            out.push('\n');
        }
        for s in &people {
            let _ = writeln!(out, "[unify.sources.{}]", s.name());
            for m in &s.map {
                let value = match &m.value {
                    MapValue::Column(c) => toml_str(c),
                    MapValue::Sql(sql) => format!("{{ sql = {} }}", toml_str(sql)),
                };
                out.push_str(&commented(
                    format!("{} = {value}", m.field),
                    &format!("{}{}", m.evidence, sure(m.confidence)),
                ));
            }
            if let Some((region, evidence)) = &s.default_region {
                out.push_str(&commented(
                    format!("default_region = {}", toml_str(region)),
                    evidence,
                ));
            }
            out.push('\n');
        }
    }
    for s in &identities {
        let id = s.identity.as_ref().expect("identity");
        let _ = writeln!(out, "[unify.identities.{}]", s.name());
        let _ = writeln!(out, "anonymous_id = {}", toml_str(&id.anonymous_id));
        let _ = writeln!(out, "id_type = \"{}\"", id.id_type);
        if let Some(e) = &id.email {
            out.push_str(&commented(
                format!("email = {}", toml_str(e)),
                "ties an anonymous id to a customer",
            ));
        }
        if let Some(p) = &id.phone {
            let _ = writeln!(out, "phone = {}", toml_str(p));
        }
        if let Some(t) = &id.timestamp {
            let _ = writeln!(out, "timestamp = {}", toml_str(t));
        }
        out.push('\n');
    }
}

/// `[activities.X]` of every source with an activity.
fn render_activities_section(out: &mut String, plan: &InitPlan) {
    let activities: Vec<&SourcePlan> = plan
        .sources
        .iter()
        .filter(|s| s.activity.is_some())
        .collect();
    if !activities.is_empty() {
        let _ = writeln!(out, "# ---- Activities: what customers did, resolved to customers ------------------------\n");
        for s in activities {
            let a = s.activity.as_ref().expect("activity");
            let _ = writeln!(out, "[activities.{}]", s.name());
            out.push_str(&commented(
                format!("source = \"{}\"", s.name()),
                &a.evidence,
            ));
            if let Some((c, src)) = &a.customer {
                let _ = writeln!(out, "customer = {}", toml_str(c));
                let _ = writeln!(out, "customer_source = \"{src}\"");
            }
            if let Some(anon) = &a.anonymous_id {
                let _ = writeln!(out, "anonymous_id = {}", toml_str(anon));
            }
            let _ = writeln!(out, "timestamp = {}", toml_str(&a.timestamp));
            if let Some(t) = &a.type_column {
                let _ = writeln!(out, "type_column = {}", toml_str(t));
            }
            if let Some(t) = &a.activity_type {
                let _ = writeln!(out, "type = {}", toml_str(t));
            }
            if let Some(am) = &a.amount {
                let _ = writeln!(out, "amount = {}", toml_str(am));
            }
            if !a.details.is_empty() {
                let d: Vec<String> = a.details.iter().map(|d| toml_str(d)).collect();
                let _ = writeln!(out, "details = [{}]", d.join(", "));
            }
            out.push('\n');
        }
    }
}

/// Measures and segments from templates, for activities of type `t`.
fn render_templates_section(out: &mut String, t: &str) {
    let param = if t == "order" {
        String::new()
    } else {
        format!(", activity_type = {}", toml_str(t))
    };
    let _ = writeln!(
        out,
        "# ---- Measures and segments from templates (docs/config.md#templates) -------------\n\
         [measures]\n\
         rfm = {{ template = \"rfm\"{param} }}                 # recency, frequency, monetary, scores\n\
         spend = {{ template = \"lifetime_spend\"{param} }}    # lifetime_spend\n\n\
         [segments]\n\
         lifecycle = {{ template = \"lifecycle\"{param} }}     # prospect, active, inactive, lost\n"
    );
}

/// What `init` prints: every guess and how sure it is, then what was left out.
pub fn summary(plan: &InitPlan) -> String {
    let mut out = String::new();
    for s in &plan.sources {
        let _ = writeln!(
            out,
            "{} ({}): {}; key {}; {}",
            s.name(),
            s.sample
                .input
                .written
                .as_ref()
                .unwrap_or(&s.sample.input.location),
            s.role.label(),
            s.primary_key.join(" + "),
            rows_read(s)
        );
        for m in &s.map {
            let value = match &m.value {
                MapValue::Column(c) => c.clone(),
                MapValue::Sql(sql) => sql.clone(),
            };
            let _ = writeln!(
                out,
                "  {:<12} ← {:<28} {:>3.0}%  {}",
                m.field,
                value,
                m.confidence * 100.0,
                m.evidence
            );
        }
        if let Some(a) = &s.activity {
            let _ = writeln!(out, "  activity: {}", a.evidence);
        }
        if let Some(id) = &s.identity {
            let _ = writeln!(
                out,
                "  identities: anonymous id `{}` ({})",
                id.anonymous_id, id.id_type
            );
        }
        let unused: Vec<&str> = s
            .columns
            .iter()
            .filter(|c| c.guess.is_none() && !s.primary_key.contains(&c.column))
            .map(|c| c.column.as_str())
            .collect();
        if !unused.is_empty() && s.role == Role::People {
            let _ = writeln!(out, "  not mapped: {}", unused.join(", "));
        }
        for n in &s.notes {
            let _ = writeln!(out, "  note: {n}");
        }
    }
    for f in &plan.fields {
        let cols: Vec<String> = f.columns.iter().map(|(s, c)| format!("{s}.{c}")).collect();
        let _ = writeln!(
            out,
            "match field `{}` ({}): {} — {}",
            f.name,
            f.kind,
            cols.join(", "),
            f.evidence
        );
    }
    for s in &plan.skipped {
        let _ = writeln!(out, "skipped {s}");
    }
    out
}
