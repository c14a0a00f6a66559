//! `panorama init DIR --from PATH...`: a working project from the user's own files.
//!
//! Each input is read with the readers `panorama run` uses (a sample of its rows), every column
//! is guessed from its name in several languages and checked against its values, and the
//! sources are given roles: people to unify, events with anonymous ids, orders keyed by another
//! source's id. The result is a complete, commented `panorama.toml`: every mapping carries its
//! evidence, and the summary says how sure each guess is. The written config is parsed before
//! it is written, so it always loads.

pub mod render;
pub mod sample;
pub mod semantics;

use std::collections::{BTreeMap, HashMap, HashSet};
use std::path::PathBuf;

use crate::error::{Error, Result};
use sample::Sample;
use semantics::{Guess, Kind, ValueStats};

/// What `init --from` is asked to do.
#[derive(Debug, Clone)]
pub struct InitFromOptions {
    pub dir: PathBuf,
    pub from: Vec<String>,
    /// Rows read per source to guess from (the whole source when smaller).
    pub sample_rows: usize,
}

/// What a source is for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Role {
    /// Records about people: unified into customers.
    People,
    /// Events with cookie or device ids: identities and activities.
    Events,
    /// Rows keyed by another source's record id with a time: activities (orders).
    Transactions,
    /// Nothing recognised: loaded as a table, not used by the stages.
    Table,
}

impl Role {
    pub fn label(self) -> &'static str {
        match self {
            Role::People => "people (unified)",
            Role::Events => "events (anonymous ids → identities, activities)",
            Role::Transactions => "transactions (activities)",
            Role::Table => "a plain table",
        }
    }
}

/// A value in `[unify.sources.X]`: a column, or an SQL expression over the source's columns.
#[derive(Debug, Clone)]
pub enum MapValue {
    Column(String),
    Sql(String),
}

#[derive(Debug, Clone)]
pub struct Mapping {
    pub field: String,
    pub value: MapValue,
    pub evidence: String,
    pub confidence: f64,
}

#[derive(Debug, Clone)]
pub struct ColumnGuess {
    pub column: String,
    pub stats: ValueStats,
    pub guess: Option<Guess>,
}

#[derive(Debug, Clone)]
pub struct IdentityPlan {
    pub anonymous_id: String,
    pub id_type: &'static str,
    pub email: Option<String>,
    pub phone: Option<String>,
    pub timestamp: Option<String>,
}

#[derive(Debug, Clone)]
pub struct ActivityPlan {
    /// (column, source whose record ids it holds)
    pub customer: Option<(String, String)>,
    pub anonymous_id: Option<String>,
    pub timestamp: String,
    pub activity_type: Option<String>,
    pub type_column: Option<String>,
    pub amount: Option<String>,
    pub details: Vec<String>,
    pub evidence: String,
}

/// Everything decided about one source.
#[derive(Debug)]
pub struct SourcePlan {
    pub sample: Sample,
    pub role: Role,
    pub primary_key: Vec<String>,
    pub key_evidence: String,
    pub types: BTreeMap<String, &'static str>,
    pub columns: Vec<ColumnGuess>,
    pub map: Vec<Mapping>,
    pub default_region: Option<(String, String)>,
    pub identity: Option<IdentityPlan>,
    pub activity: Option<ActivityPlan>,
    pub notes: Vec<String>,
}

impl SourcePlan {
    pub fn name(&self) -> &str {
        &self.sample.input.name
    }

    fn guessed(&self, kind: Kind) -> Option<&ColumnGuess> {
        self.columns
            .iter()
            .find(|c| c.guess.as_ref().is_some_and(|g| g.kind == kind))
    }
}

/// A custom match field (`[unify.fields.<name>]`) found in the data.
#[derive(Debug, Clone)]
pub struct CustomField {
    pub name: String,
    pub kind: &'static str,
    pub evidence: String,
    /// (source, column)
    pub columns: Vec<(String, String)>,
}

/// The whole guess: what `init --from` writes.
#[derive(Debug)]
pub struct InitPlan {
    pub sources: Vec<SourcePlan>,
    pub fields: Vec<CustomField>,
    /// The activity type the measure templates are switched on for.
    pub templates: Option<String>,
    pub skipped: Vec<String>,
    pub dir: PathBuf,
}

/// Read the inputs and decide everything; nothing is written.
pub fn plan(opts: &InitFromOptions, runtime: &tokio::runtime::Handle) -> Result<InitPlan> {
    let (inputs, skipped) = sample::expand(&opts.from, &opts.dir)?;
    let root = std::path::absolute(&opts.dir).unwrap_or_else(|_| opts.dir.clone());
    let mut samples = Vec::new();
    for input in inputs {
        samples.push(sample::read_sample(
            input,
            &root,
            opts.sample_rows,
            runtime,
        )?);
    }
    Ok(decide(samples, skipped, opts.dir.clone()))
}

/// The phone region of the data: the most common region of numbers written with a country
/// code, else of a country column's ISO codes.
fn data_region(samples: &[Sample]) -> Option<(String, String)> {
    let mut regions: HashMap<String, usize> = HashMap::new();
    let mut seen = 0usize;
    for s in samples {
        for c in &s.columns {
            if semantics::kind_from_name(&c.name) != Some(Kind::Phone) {
                let phoneish = c
                    .values
                    .iter()
                    .flatten()
                    .take(200)
                    .filter(|v| v.starts_with('+') || v.starts_with("00"))
                    .count();
                if phoneish < 20 {
                    continue;
                }
            }
            for v in c.values.iter().flatten() {
                if let Some(r) = semantics::phone_region(v) {
                    *regions.entry(r).or_default() += 1;
                    seen += 1;
                }
            }
        }
    }
    if let Some((r, n)) = regions
        .iter()
        .max_by_key(|(r, n)| (**n, std::cmp::Reverse((*r).clone())))
    {
        if *n >= 3 {
            return Some((
                r.clone(),
                format!("{n} of {seen} phone numbers written with a country code are {r}"),
            ));
        }
    }
    for s in samples {
        for c in &s.columns {
            if semantics::kind_from_name(&c.name) == Some(Kind::Country) {
                let mut counts: HashMap<String, usize> = HashMap::new();
                for v in c.values.iter().flatten() {
                    if v.len() == 2 {
                        *counts.entry(v.to_ascii_uppercase()).or_default() += 1;
                    }
                }
                if let Some((r, n)) = counts.into_iter().max_by_key(|(_, n)| *n) {
                    return Some((r.clone(), format!("{n} rows of `{}` are {r}", c.name)));
                }
            }
        }
    }
    None
}

/// Column names that suggest a reference to a customer record in another source.
fn customer_reference_name(column: &str, target_key: &str) -> bool {
    let key = semantics::name_key(column);
    key == semantics::name_key(target_key)
        || [
            "customer", "klant", "kunde", "client", "member", "lid", "contact", "user", "account",
            "person", "buyer", "koper", "kaufer",
        ]
        .iter()
        .any(|w| key.contains(w))
}

fn order_like_name(source: &str) -> bool {
    let key = semantics::name_key(source);
    [
        "order",
        "bestel",
        "bestell",
        "commande",
        "pedido",
        "ordine",
        "purchase",
        "aankoop",
        "kauf",
        "achat",
        "compra",
        "sale",
        "verkoop",
        "transaction",
        "transactie",
        "invoice",
        "factu",
        "rechnung",
        "receipt",
        "bon",
    ]
    .iter()
    .any(|w| key.contains(w))
}

fn pct(x: f64) -> String {
    format!("{:.1}%", x * 100.0)
}

/// Choose the primary key: a column with no empty value and no repeat in the sample,
/// preferring id-like names and the leftmost; else all columns together.
fn primary_key(s: &Sample, stats: &[ColumnGuess]) -> (Vec<String>, String) {
    let mut best: Option<(i32, usize)> = None;
    for (i, c) in stats.iter().enumerate() {
        let st = &c.stats;
        if st.rows == 0 || st.filled != st.rows || st.distinct != st.rows {
            continue;
        }
        let col = &s.columns[i];
        if matches!(
            col.data_type,
            arrow::datatypes::DataType::Float32 | arrow::datatypes::DataType::Float64
        ) {
            continue;
        }
        let key = semantics::name_key(&c.column);
        let mut score = 0;
        if key == "id"
            || key.ends_with("id")
            || key.ends_with("nr")
            || key.ends_with("nummer")
            || key.ends_with("number")
            || key.ends_with("key")
            || key.ends_with("code")
        {
            score += 10;
        }
        if c.guess.as_ref().is_some_and(|g| {
            matches!(
                g.kind,
                Kind::Email | Kind::Phone | Kind::Identifier | Kind::AnonymousId
            )
        }) {
            score -= 5;
        }
        score -= i as i32;
        if best.is_none_or(|(b, _)| score > b) {
            best = Some((score, i));
        }
    }
    let scope = if s.complete {
        format!("all {} rows", s.rows)
    } else {
        format!("the first {} rows", s.rows)
    };
    match best {
        Some((_, i)) => (
            vec![stats[i].column.clone()],
            format!("`{}`: filled and distinct in {scope}", stats[i].column),
        ),
        None => (
            s.columns.iter().map(|c| c.name.clone()).collect(),
            format!(
                "no single column is filled and distinct in {scope}: every column together \
                 (rows repeated in full are rejected)"
            ),
        ),
    }
}

/// Everything from the samples.
pub fn decide(samples: Vec<Sample>, skipped: Vec<String>, dir: PathBuf) -> InitPlan {
    let region = data_region(&samples);
    let region_code = region.as_ref().map(|(r, _)| r.as_str());
    let mut plans: Vec<SourcePlan> = samples
        .into_iter()
        .map(|s| plan_source(s, region_code))
        .collect();

    // Roles.
    for p in plans.iter_mut() {
        p.role = guess_role(p);
    }

    // References from transactions and events to people sources' record ids.
    let keys = people_record_ids(&plans);
    for p in plans.iter_mut() {
        if !matches!(p.role, Role::Transactions | Role::Events | Role::Table) {
            continue;
        }
        if let Some((column, source, evidence)) = customer_reference(p, &keys) {
            plan_customer_activity(p, column, source, evidence);
        }
    }
    for p in plans.iter_mut() {
        if p.role == Role::Events {
            plan_events(p);
        }
    }
    for p in plans.iter_mut() {
        if p.role == Role::Transactions && p.activity.is_none() {
            p.notes.push(
                "looks like transactions, but no column holds another source's record ids: \
                 not made an activity (add `[activities.<name>]` with `customer` and \
                 `customer_source`)"
                    .into(),
            );
        }
    }

    let fields = custom_fields(&plans);
    let streets = people_streets(&plans);
    for p in plans.iter_mut() {
        if p.role == Role::People {
            let others: HashSet<String> = streets
                .iter()
                .filter(|(s, _)| s != p.name())
                .flat_map(|(_, v)| v.iter().cloned())
                .collect();
            map_people(p, &fields, region.as_ref(), &others);
        }
        set_types(p, &fields);
    }
    let templates = plans
        .iter()
        .filter_map(|p| p.activity.as_ref())
        .find(|a| a.amount.is_some() && a.activity_type.is_some())
        .and_then(|a| a.activity_type.clone());
    InitPlan {
        sources: plans,
        fields,
        templates,
        skipped,
        dir,
    }
}

/// A source's first plan: every column guessed, the primary key chosen, a plain table.
fn plan_source(s: Sample, region_code: Option<&str>) -> SourcePlan {
    let columns: Vec<ColumnGuess> = s
        .columns
        .iter()
        .map(|c| {
            let stats = semantics::value_stats(c, region_code);
            let guess = semantics::guess(c, &stats);
            ColumnGuess {
                column: c.name.clone(),
                stats,
                guess,
            }
        })
        .collect();
    let (primary_key, key_evidence) = primary_key(&s, &columns);
    SourcePlan {
        sample: s,
        role: Role::Table,
        primary_key,
        key_evidence,
        types: BTreeMap::new(),
        columns,
        map: Vec::new(),
        default_region: None,
        identity: None,
        activity: None,
        notes: Vec::new(),
    }
}

/// A source's role from the kinds of its columns (a single-column key left out).
fn guess_role(p: &SourcePlan) -> Role {
    let kinds: HashSet<Kind> = p
        .columns
        .iter()
        .filter(|c| !p.primary_key.contains(&c.column) || p.primary_key.len() > 1)
        .filter_map(|c| c.guess.as_ref().map(|g| g.kind))
        .collect();
    let person_fields = kinds.iter().filter(|k| k.is_person_field()).count();
    let has_time = kinds.contains(&Kind::Timestamp);
    if kinds.contains(&Kind::AnonymousId) && has_time {
        Role::Events
    } else if has_time
        && (kinds.contains(&Kind::Amount) || order_like_name(p.name()))
        && !kinds.contains(&Kind::FirstName)
        && !kinds.contains(&Kind::FullName)
    {
        Role::Transactions
    } else if person_fields >= 2 {
        Role::People
    } else {
        Role::Table
    }
}

/// The record ids of each people source with a one-column key: (source, key column, ids).
fn people_record_ids(plans: &[SourcePlan]) -> Vec<(String, String, HashSet<String>)> {
    plans
        .iter()
        .filter(|p| p.role == Role::People && p.primary_key.len() == 1)
        .map(|p| {
            let col = p.sample.column(&p.primary_key[0]).expect("key column");
            (
                p.name().to_string(),
                p.primary_key[0].clone(),
                col.values.iter().flatten().cloned().collect(),
            )
        })
        .collect()
}

/// The column of `p` whose values are most often another people source's record ids (at
/// least half of them): (column, that source, evidence).
fn customer_reference(
    p: &SourcePlan,
    keys: &[(String, String, HashSet<String>)],
) -> Option<(String, String, String)> {
    let mut best: Option<(f64, String, String, String)> = None;
    for c in &p.sample.columns {
        if p.primary_key.contains(&c.name) {
            continue;
        }
        let distinct: HashSet<&String> = c.values.iter().flatten().collect();
        if distinct.len() < 2 {
            continue;
        }
        let integers = distinct.iter().all(|v| v.parse::<i64>().is_ok());
        for (source, key, values) in keys {
            if source == p.name() {
                continue;
            }
            // Small integer ids overlap between any two tables: they count only when the
            // column's name says it refers to a customer.
            if integers && !customer_reference_name(&c.name, key) {
                continue;
            }
            let found = distinct.iter().filter(|v| values.contains(**v)).count();
            let share = found as f64 / distinct.len() as f64;
            if share >= 0.5 && best.as_ref().is_none_or(|b| share > b.0) {
                best = Some((
                    share,
                    c.name.clone(),
                    source.clone(),
                    format!(
                        "{} of `{}`'s values are record ids (`{key}`) of `{source}`",
                        pct(share),
                        c.name
                    ),
                ));
            }
        }
    }
    best.map(|(_, column, source, evidence)| (column, source, evidence))
}

/// A source whose `column` holds `source`'s record ids: a table with a time becomes
/// transactions, and transactions and events with a time become an activity of that customer.
fn plan_customer_activity(p: &mut SourcePlan, column: String, source: String, evidence: String) {
    if p.role == Role::Table {
        let has_time = p.guessed(Kind::Timestamp).is_some();
        if has_time {
            p.role = Role::Transactions;
        }
    }
    if p.role != Role::Table {
        let timestamp = p.guessed(Kind::Timestamp).map(|c| c.column.clone());
        if let Some(timestamp) = timestamp {
            p.activity = Some(activity_plan(
                p,
                Some((column, source)),
                None,
                timestamp,
                evidence,
            ));
        }
    }
}

/// An events source: its identities (anonymous id and what it links to), and an activity of
/// the anonymous ids when no customer reference made one.
fn plan_events(p: &mut SourcePlan) {
    let anon = p
        .guessed(Kind::AnonymousId)
        .map(|c| c.column.clone())
        .expect("events");
    let ts = p.guessed(Kind::Timestamp).map(|c| c.column.clone());
    let key = semantics::name_key(&anon);
    p.identity = Some(IdentityPlan {
        anonymous_id: anon.clone(),
        id_type: if key.contains("cookie") {
            "cookie"
        } else if ["device", "dispositivo", "appareil", "geraet"]
            .iter()
            .any(|w| key.contains(w))
        {
            "device"
        } else {
            "anonymous"
        },
        email: p.guessed(Kind::Email).map(|c| c.column.clone()),
        phone: p.guessed(Kind::Phone).map(|c| c.column.clone()),
        timestamp: ts.clone(),
    });
    if p.activity.is_none() {
        if let Some(ts) = ts {
            let evidence = format!("anonymous ids in `{anon}`, times in `{ts}`");
            p.activity = Some(activity_plan(p, None, Some(anon), ts, evidence));
        }
    }
}

/// Whole street values (with their number) of every people source, to write split
/// street and number columns the way the other sources do.
fn people_streets(plans: &[SourcePlan]) -> Vec<(String, HashSet<String>)> {
    plans
        .iter()
        .filter(|p| p.role == Role::People && p.guessed(Kind::HouseNumber).is_none())
        .filter_map(|p| {
            let c = p
                .guessed(Kind::Street)
                .or_else(|| p.guessed(Kind::Address))?;
            let values = p.sample.column(&c.column)?.values.iter().flatten();
            let set = values
                .map(|v| v.split(',').next().unwrap_or(v).trim().to_lowercase())
                .collect();
            Some((p.name().to_string(), set))
        })
        .collect()
}

fn activity_plan(
    p: &SourcePlan,
    customer: Option<(String, String)>,
    anonymous_id: Option<String>,
    timestamp: String,
    evidence: String,
) -> ActivityPlan {
    let type_column = p.guessed(Kind::EventType).map(|c| c.column.clone());
    let activity_type = if type_column.is_some() {
        None
    } else if p.role == Role::Events {
        Some("event".to_string())
    } else if order_like_name(p.name()) || p.guessed(Kind::Amount).is_some() {
        Some("order".to_string())
    } else {
        Some(p.name().to_string())
    };
    let amount = p.guessed(Kind::Amount).map(|c| c.column.clone());
    let used: Vec<&str> = [
        customer.as_ref().map(|c| c.0.as_str()),
        anonymous_id.as_deref(),
        Some(timestamp.as_str()),
        type_column.as_deref(),
        amount.as_deref(),
    ]
    .into_iter()
    .flatten()
    .chain(p.primary_key.iter().map(String::as_str))
    .collect();
    // A few low-cardinality columns (channel, product, page) as details.
    let details: Vec<String> = p
        .columns
        .iter()
        .filter(|c| !used.contains(&c.column.as_str()))
        .filter(|c| c.guess.as_ref().is_none_or(|g| !g.kind.is_person_field()))
        .filter(|c| c.stats.filled > 0 && c.stats.distinct <= 1000)
        .take(4)
        .map(|c| c.column.clone())
        .collect();
    ActivityPlan {
        customer,
        anonymous_id,
        timestamp,
        activity_type,
        type_column,
        amount,
        details,
        evidence,
    }
}

/// Normalized values of a column for comparing identifiers across sources.
fn identifier_values(s: &Sample, column: &str) -> HashSet<String> {
    let mut out = HashSet::new();
    if let Some(c) = s.column(column) {
        for v in c.values.iter().flatten() {
            let mut n = String::new();
            if panorama_udfs::normalize::normalize_identifier_into(v, &mut n) && n.len() >= 4 {
                out.insert(n);
            }
        }
    }
    out
}

/// Identifier fields: columns named like one (national id, customer or card number), and
/// unnamed code columns whose values recur in another people source (a shared id).
fn custom_fields(plans: &[SourcePlan]) -> Vec<CustomField> {
    let people: Vec<&SourcePlan> = plans.iter().filter(|p| p.role == Role::People).collect();
    // Candidates: (source, column, named as identifier)
    let mut candidates: Vec<(&SourcePlan, String, bool)> = Vec::new();
    for p in &people {
        for c in &p.columns {
            if p.primary_key.len() == 1 && p.primary_key[0] == c.column {
                continue;
            }
            let named = c.guess.as_ref().is_some_and(|g| g.kind == Kind::Identifier);
            let code = c.guess.is_none()
                && c.stats.share(c.stats.code_like) >= 0.9
                && c.stats.unique() >= 0.8
                && c.stats.filled >= 10;
            if named || code {
                candidates.push((p, c.column.clone(), named));
            }
        }
    }
    let values: Vec<HashSet<String>> = candidates
        .iter()
        .map(|(p, c, _)| identifier_values(&p.sample, c))
        .collect();
    let mut fields: Vec<CustomField> = Vec::new();
    let mut used = vec![false; candidates.len()];
    for i in 0..candidates.len() {
        if used[i] {
            continue;
        }
        let mut group = vec![i];
        let mut evidence = Vec::new();
        for j in i + 1..candidates.len() {
            if used[j] || candidates[j].0.name() == candidates[i].0.name() {
                continue;
            }
            let shared = values[i].intersection(&values[j]).count();
            let smaller = values[i].len().min(values[j].len()).max(1);
            if shared >= 5 && shared as f64 / smaller as f64 >= 0.05 {
                group.push(j);
                evidence.push(format!(
                    "{shared} values of {}.{} also in {}.{}",
                    candidates[i].0.name(),
                    candidates[i].1,
                    candidates[j].0.name(),
                    candidates[j].1
                ));
            }
        }
        let named = group.iter().any(|g| candidates[*g].2);
        if group.len() < 2 && !named {
            continue;
        }
        for g in &group {
            used[*g] = true;
        }
        // The field is named after a column named like an identifier, else the first.
        let namer = group
            .iter()
            .find(|g| candidates[**g].2)
            .copied()
            .unwrap_or(i);
        let mut name = sample::table_name(&candidates[namer].1, &[]);
        let map_key = [
            "record_id",
            "priority",
            "default_region",
            "dedup",
            "full_name",
            "updated_at",
        ]
        .contains(&name.as_str());
        if crate::unify::fields::builtin_kind(&name).is_some()
            || map_key
            || name.starts_with("source_")
        {
            name = format!("{name}_id");
        }
        while fields.iter().any(|f| f.name == name) {
            name.push('_');
        }
        let unique = candidates[namer]
            .0
            .columns
            .iter()
            .find(|c| c.column == candidates[namer].1)
            .map(|c| c.stats.unique())
            .unwrap_or(0.0);
        let evidence = if evidence.is_empty() {
            format!(
                "column name `{}`; {} of values distinct",
                candidates[namer].1,
                pct(unique)
            )
        } else {
            evidence.join("; ")
        };
        fields.push(CustomField {
            name,
            kind: "identifier",
            evidence,
            columns: group
                .iter()
                .map(|g| {
                    (
                        candidates[*g].0.name().to_string(),
                        candidates[*g].1.clone(),
                    )
                })
                .collect(),
        });
    }
    fields
}

/// A column in generated SQL: always quoted (names like `by`, `date` or `Telefon` are a
/// keyword or case-sensitive otherwise).
fn col(c: &str) -> String {
    crate::sql_text::ident(c)
}

/// The `[unify.sources.X]` map of a people source.
fn map_people(
    p: &mut SourcePlan,
    fields: &[CustomField],
    region: Option<&(String, String)>,
    other_streets: &HashSet<String>,
) {
    let mut m = PeopleMap::default();
    map_names(p, &mut m);
    for (kind, field) in [
        (Kind::Email, "email"),
        (Kind::Phone, "phone"),
        (Kind::Postcode, "postcode"),
        (Kind::City, "city"),
        (Kind::Company, "company"),
        (Kind::UpdatedAt, "updated_at"),
    ] {
        if let Some(c) = p.guessed(kind) {
            let (e, conf) = evidence(c);
            m.add(field, MapValue::Column(c.column.clone()), e, conf);
        }
    }
    map_street(p, other_streets, &mut m);
    map_address(p, &mut m);
    map_birth_date(p, &mut m);
    map_gender(p, &mut m);
    if let Some(c) = p.guessed(Kind::Country) {
        let (e, conf) = evidence(c);
        m.add(
            "country",
            MapValue::Sql(format!("upper(trim({}))", col(&c.column))),
            e,
            conf,
        );
    }
    for f in fields {
        for (source, column) in &f.columns {
            if source == p.name() {
                m.add(
                    &f.name,
                    MapValue::Column(column.clone()),
                    f.evidence.clone(),
                    0.9,
                );
            }
        }
    }
    let PeopleMap { map, notes } = m;
    p.notes.extend(notes);
    if map.iter().any(|m| m.field == "phone") && p.guessed(Kind::Country).is_none() {
        p.default_region = region.cloned();
        if region.is_none() {
            p.notes.push(
                "phone numbers without a country code and no country column: set \
                 `default_region` (e.g. \"NL\") so national numbers can be read"
                    .into(),
            );
        }
    }
    p.map = map;
}

/// The fields a people source maps so far (the first mapping of a field wins), and notes on
/// what was left out.
#[derive(Default)]
struct PeopleMap {
    map: Vec<Mapping>,
    notes: Vec<String>,
}

impl PeopleMap {
    fn add(&mut self, field: &str, value: MapValue, evidence: String, confidence: f64) {
        if !self.map.iter().any(|m| m.field == field) {
            self.map.push(Mapping {
                field: field.to_string(),
                value,
                evidence,
                confidence,
            });
        }
    }
}

/// A column's guess: its evidence and confidence.
fn evidence(c: &ColumnGuess) -> (String, f64) {
    let g = c.guess.as_ref().expect("guessed");
    (g.evidence.clone(), g.confidence)
}

/// First and last name (several given names: the first; a particle column joined to the last
/// name), or the full name when either is missing.
fn map_names(p: &SourcePlan, m: &mut PeopleMap) {
    let first = p.guessed(Kind::FirstName);
    let last = p.guessed(Kind::LastName);
    let particle = p.guessed(Kind::NameParticle);
    let full = p.guessed(Kind::FullName);
    if let Some(f) = first {
        let (e, c) = evidence(f);
        let multi = p
            .sample
            .column(&f.column)
            .map(|col| {
                let filled: Vec<&String> = col.values.iter().flatten().collect();
                filled
                    .iter()
                    .filter(|v| v.split_whitespace().count() > 1)
                    .count() as f64
                    / filled.len().max(1) as f64
            })
            .unwrap_or(0.0);
        if multi >= 0.1 {
            m.add(
                "first_name",
                MapValue::Sql(format!("split_part(trim({}), ' ', 1)", col(&f.column))),
                format!(
                    "{e}; {} hold several given names: the first is used",
                    pct(multi)
                ),
                c,
            );
        } else {
            m.add("first_name", MapValue::Column(f.column.clone()), e, c);
        }
    }
    if let Some(l) = last {
        let (e, c) = evidence(l);
        match particle {
            Some(pa) => m.add(
                "last_name",
                MapValue::Sql(format!(
                    "nullif(concat_ws(' ', {}, {}), '')",
                    col(&pa.column),
                    col(&l.column)
                )),
                format!("{e}; with the particle in `{}` (\"van der\")", pa.column),
                c,
            ),
            None => m.add("last_name", MapValue::Column(l.column.clone()), e, c),
        }
    }
    if let Some(f) = full {
        if first.is_none() || last.is_none() {
            let (e, c) = evidence(f);
            m.add(
                "full_name",
                MapValue::Column(f.column.clone()),
                format!("{e}; split into first and last name by the engine"),
                c,
            );
        }
    }
}

/// Street, with the house number when it has a column of its own.
fn map_street(p: &SourcePlan, other_streets: &HashSet<String>, m: &mut PeopleMap) {
    if let Some(st) = p.guessed(Kind::Street) {
        let (e, c) = evidence(st);
        // "12 Main St" or "Main St 12": as the other sources write their streets (so that the
        // same address reads the same everywhere), else in the order of the file's columns.
        let (number_first, order_evidence) = match p.guessed(Kind::HouseNumber) {
            Some(h) => street_order(p, &st.column, &h.column, other_streets),
            None => (false, String::new()),
        };
        match p.guessed(Kind::HouseNumber) {
            Some(h) => m.add(
                "street",
                MapValue::Sql({
                    let (a, b) = if number_first {
                        (&h.column, &st.column)
                    } else {
                        (&st.column, &h.column)
                    };
                    format!("nullif(concat_ws(' ', {}, {}), '')", col(a), col(b))
                }),
                format!(
                    "{e}; with the house number in `{}` ({order_evidence})",
                    h.column
                ),
                c,
            ),
            None => m.add("street", MapValue::Column(st.column.clone()), e, c),
        }
    }
}

/// A one-string address: street before the first comma, postcode and city after it (each
/// part mapped when at least half the values give one).
fn map_address(p: &SourcePlan, m: &mut PeopleMap) {
    if let Some(a) = p.guessed(Kind::Address) {
        let (e, c) = evidence(a);
        let expressions = address_parts(&a.column);
        let shares = address_shares(p.sample.column(&a.column).expect("column"));
        for ((field, sql), share) in expressions.into_iter().zip(shares) {
            if share >= 0.5 {
                m.add(
                    field,
                    MapValue::Sql(sql),
                    format!(
                        "{e}; from the one-string address: {} of values give one",
                        pct(share)
                    ),
                    c * share,
                );
            } else {
                m.notes.push(format!(
                    "`{}` looks like a one-string address, but only {} of values give a {field}: not mapped",
                    a.column,
                    pct(share)
                ));
            }
        }
    }
}

/// Birth date: one column, or year, month and day columns.
fn map_birth_date(p: &SourcePlan, m: &mut PeopleMap) {
    if let Some(b) = p.guessed(Kind::BirthDate) {
        let (e, c) = evidence(b);
        m.add("birth_date", MapValue::Column(b.column.clone()), e, c);
    } else if let (Some(y), Some(mo), Some(d)) = (
        p.guessed(Kind::BirthYear),
        p.guessed(Kind::BirthMonth),
        p.guessed(Kind::BirthDay),
    ) {
        m.add(
            "birth_date",
            MapValue::Sql(format!(
                "concat_ws('-', {}, lpad(CAST({} AS VARCHAR), 2, '0'), lpad(CAST({} AS VARCHAR), 2, '0'))",
                col(&y.column),
                col(&mo.column),
                col(&d.column)
            )),
            format!("year, month and day in `{}`, `{}`, `{}`", y.column, mo.column, d.column),
            0.8,
        );
    }
}

/// Gender codes from the values seen (`M`, `Frau`, `vrouw` …) as one CASE.
fn map_gender(p: &SourcePlan, m: &mut PeopleMap) {
    if let Some(g) = p.guessed(Kind::Gender) {
        let (e, c) = evidence(g);
        let mut arms: Vec<(String, &str)> = Vec::new();
        for (v, _) in &g.stats.top_values {
            if let Some(code) = semantics::gender_code(v) {
                let key = v.trim().to_uppercase();
                if !arms.iter().any(|(k, _)| *k == key) {
                    arms.push((key, code));
                }
            }
        }
        if !arms.is_empty() {
            let cases: Vec<String> = arms
                .iter()
                .map(|(k, code)| format!("WHEN {} THEN '{code}'", crate::sql_text::literal(k)))
                .collect();
            m.add(
                "gender",
                MapValue::Sql(format!(
                    "CASE upper(trim({})) {} END",
                    col(&g.column),
                    cases.join(" ")
                )),
                e,
                c,
            );
        }
    }
}

/// Whether the house number goes before the street, and why: the order under which more of
/// this source's addresses are written the same way in another source; else the file's order.
fn street_order(
    p: &SourcePlan,
    street: &str,
    number: &str,
    others: &HashSet<String>,
) -> (bool, String) {
    let (Some(s), Some(n)) = (p.sample.column(street), p.sample.column(number)) else {
        return (false, String::new());
    };
    let (mut before, mut after) = (0usize, 0usize);
    for (sv, nv) in s.values.iter().zip(&n.values) {
        if let (Some(sv), Some(nv)) = (sv, nv) {
            let (sv, nv) = (sv.to_lowercase(), nv.to_lowercase());
            before += others.contains(&format!("{nv} {sv}")) as usize;
            after += others.contains(&format!("{sv} {nv}")) as usize;
        }
    }
    if before + after >= 5 && before != after {
        let (first, n) = if before > after {
            (true, before)
        } else {
            (false, after)
        };
        return (first, format!("{n} addresses written so in other sources"));
    }
    let position = |c: &str| p.columns.iter().position(|x| x.column == c);
    (
        position(number) < position(street),
        "in the file's order".into(),
    )
}

/// SQL for street, postcode and city from a one-string address "Street 12, 1234 AB City".
fn address_parts(column: &str) -> Vec<(&'static str, String)> {
    let c = col(column);
    vec![
        ("street", format!("nullif(trim(split_part({c}, ',', 1)), '')")),
        (
            "postcode",
            format!(
                "regexp_match({c}, '(?:^|[ ,])([0-9]{{4}} ?[A-Za-z]{{2}}|[0-9]{{4,5}}|[A-Za-z]{{1,2}}[0-9][A-Za-z0-9]? ?[0-9][A-Za-z]{{2}})(?: |$)')[1]"
            ),
        ),
        (
            "city",
            format!(
                "nullif(trim(regexp_replace(split_part({c}, ',', -1), '^ *([0-9]{{4}} ?[A-Za-z]{{2}}\\b|[0-9]{{4,5}}) *', '')), '')"
            ),
        ),
    ]
}

/// Share of a one-string address column's values from which each of [`address_parts`] is
/// found, computed the same way in Rust (the SQL is checked when the config loads).
fn address_shares(c: &sample::SampledColumn) -> Vec<f64> {
    let filled: Vec<&String> = c.values.iter().flatten().collect();
    let n = filled.len().max(1) as f64;
    let street = filled
        .iter()
        .filter(|v| v.split(',').next().is_some_and(|s| !s.trim().is_empty()) && v.contains(','))
        .count() as f64;
    let postcode = filled
        .iter()
        .filter(|v| {
            v.split([' ', ',']).any(|t| {
                let t = t.trim();
                (t.len() == 4 || t.len() == 5) && t.bytes().all(|b| b.is_ascii_digit())
                    || (t.len() == 6
                        && t.bytes().take(4).all(|b| b.is_ascii_digit())
                        && t.bytes().skip(4).all(|b| b.is_ascii_alphabetic()))
            }) || v.split(',').any(|part| {
                let w: Vec<&str> = part.split_whitespace().collect();
                w.windows(2).any(|p| {
                    p[0].len() == 4
                        && p[0].bytes().all(|b| b.is_ascii_digit())
                        && p[1].len() == 2
                        && p[1].bytes().all(|b| b.is_ascii_alphabetic())
                })
            })
        })
        .count() as f64;
    let city = filled
        .iter()
        .filter(|v| {
            v.contains(',')
                && v.rsplit(',')
                    .next()
                    .is_some_and(|last| last.chars().filter(|c| c.is_alphabetic()).count() >= 2)
        })
        .count() as f64;
    vec![street / n, postcode / n, city / n]
}

/// Type overrides where inference would lose something: codes as text (postcodes, phones,
/// ids keep their leading zeros and never reject a row for a letter).
fn set_types(p: &mut SourcePlan, fields: &[CustomField]) {
    let mut text_columns: Vec<String> = Vec::new();
    for c in &p.columns {
        let code = matches!(
            c.guess.as_ref().map(|g| g.kind),
            Some(Kind::Phone | Kind::Postcode | Kind::Identifier | Kind::HouseNumber)
        );
        if code {
            text_columns.push(c.column.clone());
        }
    }
    for f in fields {
        for (source, column) in &f.columns {
            if source == p.name() {
                text_columns.push(column.clone());
            }
        }
    }
    if p.primary_key.len() == 1 {
        text_columns.push(p.primary_key[0].clone());
    }
    if let Some(a) = &p.activity {
        if let Some((c, _)) = &a.customer {
            text_columns.push(c.clone());
        }
    }
    // Declared even where the sampled rows were read as text: inference sees only the first
    // rows, and a German postcode column that starts with `10115` would be read as numbers
    // and reject the first `1234 AB` further down.
    for name in text_columns {
        if p.sample.column(&name).is_some() {
            p.types.insert(name, "string");
        }
    }
    // Birth dates written as numbers (19560409) stay text for the engine's date parser.
    if let Some(b) = p.guessed(Kind::BirthDate) {
        let col = p.sample.column(&b.column).expect("column");
        let numeric = col.data_type.is_numeric()
            || col.inferred.as_ref().is_some_and(|t| {
                matches!(
                    t,
                    crate::config::ColumnType::Int | crate::config::ColumnType::Float
                )
            });
        if numeric {
            p.types.insert(b.column.clone(), "string");
        }
    }
}

/// Write the plan's config into `dir`, or return it without writing (`dry_run`).
pub fn write(plan: &InitPlan, dry_run: bool, force: bool) -> Result<String> {
    let text = render::config(plan);
    // Parse what was generated: a config that does not load is a bug here, not the user's.
    let root = std::path::absolute(&plan.dir).unwrap_or_else(|_| plan.dir.clone());
    crate::config::ProjectConfig::parse(
        &root,
        &root.join(crate::config::CONFIG_FILE),
        text.clone(),
    )
    .map_err(|e| Error::Internal(format!("the generated config does not load: {e}\n{text}")))?;
    if dry_run {
        return Ok(text);
    }
    let path = plan.dir.join(crate::config::CONFIG_FILE);
    if path.exists() && !force {
        return Err(Error::Conflict(format!(
            "{} already exists; not overwriting it (use --force, or --dry-run to see the config)",
            path.display()
        )));
    }
    std::fs::create_dir_all(&plan.dir).map_err(|e| Error::io("cannot create", &plan.dir, e))?;
    std::fs::write(&path, &text).map_err(|e| Error::io("cannot write", &path, e))?;
    Ok(text)
}

/// Every guess and how sure it is, and what was left out: what `init` prints.
pub fn summary(plan: &InitPlan) -> String {
    render::summary(plan)
}

/// What `panorama init --from` did: the config text and the summary of its guesses.
pub struct InitOutcome {
    pub config: String,
    pub summary: String,
}

/// `panorama init DIR --from ...`: read, decide, and write the config (or only return it when
/// `dry_run`). The reading runs on a blocking thread (readers are synchronous).
pub async fn init(opts: InitFromOptions, dry_run: bool, force: bool) -> Result<InitOutcome> {
    let runtime = tokio::runtime::Handle::current();
    let plan = tokio::task::spawn_blocking(move || plan(&opts, &runtime))
        .await
        .map_err(|e| Error::Internal(format!("init stopped: {e}")))??;
    let config = write(&plan, dry_run, force)?;
    Ok(InitOutcome {
        config,
        summary: render::summary(&plan),
    })
}
