//! What `[measures.*]`, `[business_measures.*]` and `[segments.*]` say, as written, and the
//! resolved model: templates expanded (`sql/templates/*.toml`), references checked, and
//! everything in dependency order. Resolution happens when the config loads, so a mistake is
//! reported with its line before any data is read.

use crate::config::Problem;
use std::collections::{BTreeMap, BTreeSet};
use std::ops::Range;

use serde::Deserialize;

use crate::config::{is_identifier, ProjectConfig};
use crate::error::Result;
use crate::table_catalog::names;

/// `[measures.<name>]` and `[business_measures.<name>]`, as written.
#[derive(Debug, Clone, Deserialize, Default)]
pub struct MeasureDef {
    /// An aggregate over the rows of `from` (per customer, or over all for business measures).
    pub aggregate: Option<String>,
    /// A per-customer expression over profile fields and other measures (may use window
    /// functions over all customers).
    pub expression: Option<String>,
    /// Rows the aggregate runs over: `activities` (default for customer measures), an
    /// activity source's name, a source mapped in `[unify.sources]`, or (business measures)
    /// `customers` (the default) and `activities`.
    pub from: Option<String>,
    /// Only rows where this SQL condition holds.
    #[serde(rename = "where")]
    pub filter: Option<String>,
    /// Business measures: one value per distinct value of this expression, or per segment
    /// with `by = "segment"`.
    pub by: Option<String>,
    /// Value for customers without rows (e.g. `0` for counts and sums).
    pub default: Option<toml::Value>,
    pub description: Option<String>,
    /// Expand a ready template (`rfm`, `lifetime_spend`, ...), with its parameters as keys.
    pub template: Option<String>,
    #[serde(flatten)]
    pub params: BTreeMap<String, toml::Value>,
}

/// `[segments.<name>]`, as written.
#[derive(Debug, Clone, Deserialize, Default)]
pub struct SegmentDef {
    /// SQL condition over `customer_profiles` (profile fields and measures).
    #[serde(rename = "where")]
    pub condition: Option<String>,
    /// Members of these segments are members too.
    #[serde(default)]
    pub include: Vec<String>,
    /// Members of these segments are not members.
    #[serde(default)]
    pub exclude: Vec<String>,
    /// Only members of all these segments can be members.
    #[serde(default)]
    pub within: Vec<String>,
    /// `dynamic` (re-evaluated every run, the default) or `static` (frozen when first built).
    pub kind: Option<SegmentKindDef>,
    pub description: Option<String>,
    /// `lifecycle`, `rfm_segments`, or `per_value` (one segment per value of `column`).
    pub template: Option<String>,
    #[serde(flatten)]
    pub params: BTreeMap<String, toml::Value>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum SegmentKindDef {
    Dynamic,
    Static,
}

/// Where a definition came from, for error messages: its line in `panorama.toml` and the
/// template that produced it.
#[derive(Debug, Clone)]
pub struct Origin {
    pub span: Range<usize>,
    pub line: usize,
    pub template: Option<String>,
}

impl Origin {
    /// `panorama.toml:12` or `panorama.toml:12 (template rfm)`.
    pub fn describe(&self) -> String {
        match &self.template {
            Some(t) => format!("panorama.toml:{} (template {t})", self.line),
            None => format!("panorama.toml:{}", self.line),
        }
    }
}

/// The rows an aggregate measure runs over.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Rows {
    /// The `activities` table (resolved rows only).
    Activities,
    /// The rows of `[activities.<name>]`'s source, each with its resolved customer.
    ActivitySource(String),
    /// A source mapped in `[unify.sources]`, joined to customers through `customer_links`.
    UnifiedSource(String),
    /// A table of the predictions stage (`predictions_clv`, ...), one or more rows per customer.
    Prediction(String),
    /// One row per customer: `customer_profiles` (business measures).
    Customers,
}

/// A customer-level measure.
#[derive(Debug, Clone)]
pub struct Measure {
    pub name: String,
    pub kind: MeasureKind,
    /// SQL literal for customers without rows.
    pub default: Option<String>,
    pub description: String,
    pub origin: Origin,
}

#[derive(Debug, Clone)]
pub enum MeasureKind {
    Aggregate {
        sql: String,
        rows: Rows,
        filter: Option<String>,
    },
    /// `level` 1 uses only aggregates and profile fields; level n uses measures of lower levels.
    Expression {
        sql: String,
        depends: Vec<String>,
        level: usize,
    },
}

/// A business-level measure: one value, or one per `by` value.
#[derive(Debug, Clone)]
pub struct BusinessMeasure {
    pub name: String,
    pub aggregate: String,
    pub rows: Rows,
    pub filter: Option<String>,
    pub by: Option<By>,
    pub description: String,
    pub origin: Origin,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum By {
    Segment,
    Expression(String),
}

/// A segment.
#[derive(Debug, Clone)]
pub struct Segment {
    pub name: String,
    pub rule: SegmentRule,
    pub frozen: bool,
    pub description: String,
    pub origin: Origin,
}

#[derive(Debug, Clone)]
pub enum SegmentRule {
    /// Members: (condition ∪ include) ∩ within − exclude.
    Condition {
        condition: Option<String>,
        include: Vec<String>,
        exclude: Vec<String>,
        within: Vec<String>,
    },
    /// One segment `<name>_<value>` per distinct value of a column.
    PerValue { column: String },
}

impl Segment {
    /// Text that changes when the definition changes (a static segment is rebuilt then).
    pub fn definition(&self) -> String {
        match &self.rule {
            SegmentRule::Condition {
                condition,
                include,
                exclude,
                within,
            } => format!(
                "where: {}; include: {}; exclude: {}; within: {}",
                condition.as_deref().unwrap_or("-"),
                include.join(","),
                exclude.join(","),
                within.join(",")
            ),
            SegmentRule::PerValue { column } => format!("per value of {column}"),
        }
    }

    pub fn depends(&self) -> Vec<&String> {
        match &self.rule {
            SegmentRule::Condition {
                include,
                exclude,
                within,
                ..
            } => include.iter().chain(exclude).chain(within).collect(),
            SegmentRule::PerValue { .. } => Vec::new(),
        }
    }
}

/// Everything measures and segments need, resolved and ordered.
#[derive(Debug, Clone, Default)]
pub struct Analytics {
    /// Aggregates first, then expressions by level.
    pub measures: Vec<Measure>,
    pub business: Vec<BusinessMeasure>,
    /// Each segment after the segments it refers to.
    pub segments: Vec<Segment>,
}

impl Analytics {
    /// Whether a segment of this name exists: a declared one, or one a `per_value` segment
    /// makes (`<name>_<value>`).
    pub fn has_segment(&self, name: &str) -> bool {
        self.segments.iter().any(|s| {
            s.name == name
                || (matches!(s.rule, SegmentRule::PerValue { .. })
                    && name.starts_with(&format!("{}_", s.name)))
        })
    }

    pub fn is_empty(&self) -> bool {
        self.measures.is_empty() && self.business.is_empty() && self.segments.is_empty()
    }

    pub fn segment(&self, name: &str) -> Option<&Segment> {
        self.segments.iter().find(|s| s.name == name)
    }
}

/// The ready templates, by name.
pub const TEMPLATES: &[(&str, &str)] = &[
    ("rfm", include_str!("../../sql/templates/rfm.toml")),
    (
        "engagement",
        include_str!("../../sql/templates/engagement.toml"),
    ),
    (
        "lifetime_spend",
        include_str!("../../sql/templates/lifetime_spend.toml"),
    ),
    (
        "purchase_frequency",
        include_str!("../../sql/templates/purchase_frequency.toml"),
    ),
    (
        "average_order_value",
        include_str!("../../sql/templates/average_order_value.toml"),
    ),
    (
        "lifecycle",
        include_str!("../../sql/templates/lifecycle.toml"),
    ),
    (
        "rfm_segments",
        include_str!("../../sql/templates/rfm_segments.toml"),
    ),
    (
        "retail_kpis",
        include_str!("../../sql/templates/retail_kpis.toml"),
    ),
];

/// The built-in segment template that needs the data to know its segments.
const PER_VALUE: &str = "per_value";

/// A template file.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct TemplateFile {
    /// Measure templates this one needs (expanded unless their measures already exist).
    #[serde(default)]
    requires: Vec<String>,
    #[serde(default)]
    params: BTreeMap<String, toml::Value>,
    #[serde(default)]
    measures: BTreeMap<String, MeasureDef>,
    #[serde(default)]
    segments: BTreeMap<String, SegmentDef>,
    #[serde(default)]
    business_measures: BTreeMap<String, MeasureDef>,
}

fn template_file(name: &str) -> std::result::Result<TemplateFile, super::Problem> {
    let Some((_, text)) = TEMPLATES.iter().find(|(n, _)| *n == name) else {
        let mut names: Vec<&str> = TEMPLATES.iter().map(|(n, _)| *n).collect();
        names.push(PER_VALUE);
        return Err(Problem(format!(
            "no template named `{name}` (templates: {})",
            names.join(", ")
        )));
    };
    toml::from_str(text).map_err(|e| Problem(format!("template {name} is invalid: {e}")))
}

/// A parameter's value as it goes into SQL text.
fn param_text(v: &toml::Value) -> String {
    match v {
        toml::Value::String(s) => s.clone(),
        toml::Value::Boolean(b) => if *b { "TRUE" } else { "FALSE" }.into(),
        other => other.to_string(),
    }
}

/// `{name}` replaced by the parameter's value.
fn fill(text: &str, params: &BTreeMap<String, String>) -> String {
    params.iter().fold(text.to_string(), |t, (k, v)| {
        t.replace(&format!("{{{k}}}"), v)
    })
}

fn fill_opt(text: &Option<String>, params: &BTreeMap<String, String>) -> Option<String> {
    text.as_ref().map(|t| fill(t, params))
}

/// A default value as a SQL literal.
fn default_sql(v: &toml::Value) -> std::result::Result<String, super::Problem> {
    match v {
        toml::Value::String(s) => Ok(crate::sql_text::literal(s)),
        toml::Value::Integer(i) => Ok(i.to_string()),
        toml::Value::Float(f) => Ok(format!("{f:?}")),
        toml::Value::Boolean(b) => Ok(if *b { "TRUE" } else { "FALSE" }.into()),
        other => Err(Problem(format!(
            "default must be a number, string or boolean, got {other}"
        ))),
    }
}

/// Words of a SQL text that may name a measure (identifiers and keywords, not literals).
pub fn words(sql: &str) -> BTreeSet<String> {
    use datafusion::sql::sqlparser::dialect::GenericDialect;
    use datafusion::sql::sqlparser::tokenizer::{Token, Tokenizer};
    let Ok(tokens) = Tokenizer::new(&GenericDialect {}, sql).tokenize() else {
        return BTreeSet::new();
    };
    tokens
        .into_iter()
        .filter_map(|t| match t {
            Token::Word(w) if w.quote_style.is_none() => Some(w.value.to_lowercase()),
            Token::Word(w) => Some(w.value),
            _ => None,
        })
        .collect()
}

/// A template's parameters: name and SQL text.
type ParamValues = BTreeMap<String, String>;

/// Template parameters: the template's defaults overridden by the user's, which must exist.
fn merge_params(
    template: &str,
    file: &TemplateFile,
    given: &BTreeMap<String, toml::Value>,
) -> std::result::Result<ParamValues, super::Problem> {
    let mut params: BTreeMap<String, String> = file
        .params
        .iter()
        .map(|(k, v)| (k.clone(), param_text(v)))
        .collect();
    for (k, v) in given {
        if !params.contains_key(k) {
            let known: Vec<&str> = file.params.keys().map(String::as_str).collect();
            return Err(Problem(format!(
                "template {template} has no parameter `{k}` (parameters: {})",
                if known.is_empty() {
                    "none".to_string()
                } else {
                    known.join(", ")
                }
            )));
        }
        params.insert(k.clone(), param_text(v));
    }
    Ok(params)
}

/// Build the resolved model of a config.
pub fn resolve(cfg: &ProjectConfig) -> Result<Analytics> {
    Resolver {
        cfg,
        measures: BTreeMap::new(),
        business: BTreeMap::new(),
        segments: BTreeMap::new(),
        required: Vec::new(),
    }
    .run()
}

struct Resolver<'a> {
    cfg: &'a ProjectConfig,
    measures: BTreeMap<String, (MeasureDef, Origin)>,
    business: BTreeMap<String, (MeasureDef, Origin)>,
    segments: BTreeMap<String, (SegmentDef, Origin)>,
    /// (measure template, parameters, where it was asked for).
    required: Vec<(String, BTreeMap<String, toml::Value>, Origin)>,
}

impl Resolver<'_> {
    fn origin(&self, span: Range<usize>, template: Option<&str>) -> Origin {
        Origin {
            line: crate::config::line_col(&self.cfg.text, span.start).0,
            span,
            template: template.map(str::to_string),
        }
    }

    fn err(&self, origin: &Origin, msg: impl Into<String>) -> crate::error::Error {
        self.cfg.error_at(origin.span.clone(), msg)
    }

    fn add<T>(
        cfg: &ProjectConfig,
        table: &mut BTreeMap<String, (T, Origin)>,
        what: &str,
        name: String,
        def: T,
        origin: Origin,
    ) -> Result<()> {
        if let Some((_, first)) = table.get(&name) {
            return Err(cfg.error_at(
                origin.span.clone(),
                format!(
                    "{what} `{name}` is defined twice: at {} and {}",
                    first.describe(),
                    origin.describe()
                ),
            ));
        }
        table.insert(name, (def, origin));
        Ok(())
    }

    /// Expand one template use; `kind` is the section it was used in.
    fn expand(
        &mut self,
        kind: &str,
        key: &str,
        template: &str,
        given: &BTreeMap<String, toml::Value>,
        origin: &Origin,
    ) -> Result<()> {
        let file =
            template_file(template).map_err(|m| self.err(origin, format!("{kind}.{key}: {m}")))?;
        let defines = |n: usize, section: &str| (n > 0).then(|| section.to_string());
        let sections: Vec<String> = [
            defines(file.measures.len(), "measures"),
            defines(file.segments.len(), "segments"),
            defines(file.business_measures.len(), "business_measures"),
        ]
        .into_iter()
        .flatten()
        .collect();
        if !sections.iter().any(|s| s == kind) {
            return Err(self.err(
                origin,
                format!(
                    "{kind}.{key}: template `{template}` defines {}; use it as {}.{key} = {{ template = \"{template}\" }}",
                    sections.join(" and "),
                    sections[0]
                ),
            ));
        }
        let params = merge_params(template, &file, given)
            .map_err(|m| self.err(origin, format!("{kind}.{key}: {m}")))?;
        let at = Origin {
            template: Some(template.to_string()),
            ..origin.clone()
        };
        for (name, d) in file.measures {
            let d = fill_measure(d, &params);
            let name = fill(&name, &params);
            Self::add(self.cfg, &mut self.measures, "measure", name, d, at.clone())?;
        }
        for (name, d) in file.business_measures {
            let d = fill_measure(d, &params);
            Self::add(
                self.cfg,
                &mut self.business,
                "business measure",
                name,
                d,
                at.clone(),
            )?;
        }
        for (name, mut d) in file.segments {
            d.condition = fill_opt(&d.condition, &params);
            d.description = fill_opt(&d.description, &params);
            Self::add(self.cfg, &mut self.segments, "segment", name, d, at.clone())?;
        }
        for req in file.requires {
            // Pass on the parameters the required template also has.
            let passed = given
                .iter()
                .filter(|(k, _)| {
                    template_file(&req).is_ok_and(|f| f.params.contains_key(k.as_str()))
                })
                .map(|(k, v)| (k.clone(), v.clone()))
                .collect();
            self.required.push((req, passed, at.clone()));
        }
        Ok(())
    }

    fn run(mut self) -> Result<Analytics> {
        let cfg = self.cfg;
        for (key, def) in &cfg.measures {
            let origin = self.origin(def.span(), None);
            let d = def.get_ref();
            match &d.template {
                Some(t) => self.expand("measures", key, t, &d.params, &origin)?,
                None => {
                    Self::add(
                        self.cfg,
                        &mut self.measures,
                        "measure",
                        key.clone(),
                        d.clone(),
                        origin,
                    )?;
                }
            }
        }
        for (key, def) in &cfg.business_measures {
            let origin = self.origin(def.span(), None);
            let d = def.get_ref();
            match &d.template {
                Some(t) => self.expand("business_measures", key, t, &d.params, &origin)?,
                None => Self::add(
                    self.cfg,
                    &mut self.business,
                    "business measure",
                    key.clone(),
                    d.clone(),
                    origin,
                )?,
            }
        }
        for (key, def) in &cfg.segments {
            let origin = self.origin(def.span(), None);
            let d = def.get_ref();
            match d.template.as_deref() {
                Some(PER_VALUE) | None => {
                    Self::add(
                        self.cfg,
                        &mut self.segments,
                        "segment",
                        key.clone(),
                        d.clone(),
                        origin,
                    )?;
                }
                Some(t) => self.expand("segments", key, t, &d.params, &origin)?,
            }
        }
        // Required measure templates add the measures not defined otherwise.
        for (req, params, origin) in std::mem::take(&mut self.required) {
            let file = template_file(&req).map_err(|m| self.err(&origin, m))?;
            let params = merge_params(&req, &file, &params).map_err(|m| self.err(&origin, m))?;
            let at = Origin {
                template: Some(req.clone()),
                ..origin
            };
            for (name, d) in file.measures {
                self.measures
                    .entry(name)
                    .or_insert_with(|| (fill_measure(d, &params), at.clone()));
            }
        }
        let measures = self.measures()?;
        let business = self.business()?;
        let segments = self.segments()?;
        Ok(Analytics {
            measures,
            business,
            segments,
        })
    }

    fn check_name(&self, what: &str, name: &str, origin: &Origin) -> Result<()> {
        if !is_identifier(name) {
            return Err(self.err(
                origin,
                format!("{what} name `{name}` must be a lowercase SQL identifier (letters, digits, `_`)"),
            ));
        }
        Ok(())
    }

    /// What `from` names, for a customer measure (`business` false) or a business measure.
    fn rows(
        &self,
        from: Option<&str>,
        business: bool,
    ) -> std::result::Result<Rows, super::Problem> {
        let cfg = self.cfg;
        match from {
            None if business => Ok(Rows::Customers),
            None | Some(names::ACTIVITIES) => Ok(Rows::Activities),
            Some("customers") if business => Ok(Rows::Customers),
            Some(a) if !business && cfg.activities.contains_key(a) => {
                Ok(Rows::ActivitySource(a.to_string()))
            }
            Some(s)
                if !business
                    && cfg
                        .unify
                        .as_ref()
                        .is_some_and(|u| u.sources.contains_key(s)) =>
            {
                Ok(Rows::UnifiedSource(s.to_string()))
            }
            Some(t)
                if !business
                    && cfg.predictions.as_ref().is_some_and(|p| match t {
                        names::PREDICTIONS_CLV => p.clv.is_some(),
                        names::PREDICTIONS_CHURN => p.churn.is_some(),
                        names::RECOMMENDATIONS => p.recommendations.is_some(),
                        _ => false,
                    }) =>
            {
                Ok(Rows::Prediction(t.to_string()))
            }
            Some(other) if business => Err(Problem(format!(
                "from = \"{other}\": business measures aggregate `customers` (profiles with their measures, the default) or `activities`"
            ))),
            Some(other) => {
                let mut choices = vec![names::ACTIVITIES.to_string()];
                choices.extend(cfg.activities.keys().cloned());
                choices.extend(cfg.unify.iter().flat_map(|u| u.sources.keys().cloned()));
                if let Some(p) = &cfg.predictions {
                    for (t, on) in [
                        (names::PREDICTIONS_CLV, p.clv.is_some()),
                        (names::PREDICTIONS_CHURN, p.churn.is_some()),
                        (names::RECOMMENDATIONS, p.recommendations.is_some()),
                    ] {
                        if on {
                            choices.push(t.to_string());
                        }
                    }
                }
                Err(Problem(format!(
                    "from = \"{other}\" is neither `activities`, an activity source, a source mapped in [unify.sources] nor a configured prediction table (can be: {})",
                    choices.join(", ")
                )))
            }
        }
    }

    fn measures(&self) -> Result<Vec<Measure>> {
        let names: BTreeSet<&String> = self.measures.keys().collect();
        let mut out: Vec<Measure> = Vec::new();
        let mut expressions: BTreeMap<&String, (String, Vec<String>, &Origin, &MeasureDef)> =
            BTreeMap::new();
        for (name, (d, origin)) in &self.measures {
            let at = |m: String| self.err(origin, format!("measures.{name}: {m}"));
            self.check_name("measure", name, origin)?;
            if name == "customer_id" || name == "segment" {
                return Err(at(format!(
                    "`{name}` is a column Panorama adds itself; choose another name"
                )));
            }
            if let Some(k) = d.params.keys().next() {
                return Err(at(format!("unknown key `{k}` (keys: aggregate, expression, from, where, default, description, template)")));
            }
            if d.by.is_some() {
                return Err(at("`by` is for business measures".into()));
            }
            let default = d
                .default
                .as_ref()
                .map(default_sql)
                .transpose()
                .map_err(|m| at(m.0))?;
            let description = d.description.clone().unwrap_or_default();
            match (&d.aggregate, &d.expression) {
                (Some(sql), None) => {
                    let rows = self.rows(d.from.as_deref(), false).map_err(|m| at(m.0))?;
                    out.push(Measure {
                        name: name.clone(),
                        kind: MeasureKind::Aggregate {
                            sql: sql.clone(),
                            rows,
                            filter: d.filter.clone(),
                        },
                        default,
                        description,
                        origin: origin.clone(),
                    });
                }
                (None, Some(sql)) => {
                    if d.from.is_some() || d.filter.is_some() {
                        return Err(at("`from` and `where` go with `aggregate`; an expression is computed per customer".into()));
                    }
                    let deps: Vec<String> = words(sql)
                        .into_iter()
                        .filter(|w| w != name && names.contains(w))
                        .collect();
                    expressions.insert(name, (sql.clone(), deps, origin, d));
                }
                _ => {
                    return Err(at(
                        "set exactly one of `aggregate` (e.g. \"sum(amount)\"), `expression` (e.g. \"lifetime_spend / nullif(order_count, 0)\") or `template`".into(),
                    ))
                }
            }
        }
        // Levels: an expression comes after every measure it uses.
        let mut level: BTreeMap<String, usize> = out.iter().map(|m| (m.name.clone(), 0)).collect();
        while !expressions.is_empty() {
            let ready: Vec<&String> = expressions
                .iter()
                .filter(|(_, (_, deps, _, _))| deps.iter().all(|d| level.contains_key(d)))
                .map(|(n, _)| *n)
                .collect();
            if ready.is_empty() {
                let stuck: Vec<&str> = expressions.keys().map(|n| n.as_str()).collect();
                let (_, (_, _, origin, _)) = expressions.iter().next().expect("not empty");
                return Err(self.err(
                    origin,
                    format!(
                        "measures {} refer to each other in a cycle",
                        stuck.join(", ")
                    ),
                ));
            }
            for name in ready {
                let (sql, deps, origin, d) = expressions.remove(name).expect("ready");
                let l = 1 + deps.iter().map(|d| level[d]).max().unwrap_or(0);
                level.insert(name.clone(), l);
                out.push(Measure {
                    name: name.clone(),
                    kind: MeasureKind::Expression {
                        sql,
                        depends: deps,
                        level: l,
                    },
                    default: d
                        .default
                        .as_ref()
                        .map(default_sql)
                        .transpose()
                        .map_err(|m| self.err(origin, format!("measures.{name}: {m}")))?,
                    description: d.description.clone().unwrap_or_default(),
                    origin: origin.clone(),
                });
            }
        }
        out.sort_by_key(|m| match &m.kind {
            MeasureKind::Aggregate { .. } => 0,
            MeasureKind::Expression { level, .. } => *level,
        });
        Ok(out)
    }

    fn business(&self) -> Result<Vec<BusinessMeasure>> {
        let mut out = Vec::new();
        for (name, (d, origin)) in &self.business {
            let at = |m: String| self.err(origin, format!("business_measures.{name}: {m}"));
            self.check_name("business measure", name, origin)?;
            if let Some(k) = d.params.keys().next() {
                return Err(at(format!(
                    "unknown key `{k}` (keys: aggregate, from, where, by, description, template)"
                )));
            }
            if d.expression.is_some() || d.default.is_some() {
                return Err(at("a business measure is an `aggregate` (e.g. \"sum(lifetime_spend)\"), optionally `by` a column or `segment`".into()));
            }
            let Some(aggregate) = d.aggregate.clone() else {
                return Err(at(
                    "set `aggregate`, e.g. \"sum(amount)\", or `template`".into()
                ));
            };
            let rows = self.rows(d.from.as_deref(), true).map_err(|m| at(m.0))?;
            let by = d.by.as_ref().map(|b| {
                if b == "segment" {
                    By::Segment
                } else {
                    By::Expression(b.clone())
                }
            });
            out.push(BusinessMeasure {
                name: name.clone(),
                aggregate,
                rows,
                filter: d.filter.clone(),
                by,
                description: d.description.clone().unwrap_or_default(),
                origin: origin.clone(),
            });
        }
        Ok(out)
    }

    fn segments(&self) -> Result<Vec<Segment>> {
        let mut pending: BTreeMap<&String, Segment> = BTreeMap::new();
        for (name, (d, origin)) in &self.segments {
            let at = |m: String| self.err(origin, format!("segments.{name}: {m}"));
            self.check_name("segment", name, origin)?;
            let rule = if d.template.as_deref() == Some(PER_VALUE) {
                let mut column = None;
                for (k, v) in &d.params {
                    match (k.as_str(), v) {
                        ("column", toml::Value::String(c)) => column = Some(c.clone()),
                        _ => return Err(at(format!("template per_value takes `column` (a profile field or measure), not `{k}`"))),
                    }
                }
                let Some(column) = column else {
                    return Err(at(
                        "template per_value needs `column`, e.g. column = \"country\"".into(),
                    ));
                };
                if d.condition.is_some()
                    || !d.include.is_empty()
                    || !d.exclude.is_empty()
                    || !d.within.is_empty()
                {
                    return Err(at("template per_value takes only `column`".into()));
                }
                SegmentRule::PerValue { column }
            } else {
                if let Some(k) = d.params.keys().next() {
                    return Err(at(format!("unknown key `{k}` (keys: where, include, exclude, within, kind, description, template)")));
                }
                if d.condition.is_none() && d.include.is_empty() {
                    return Err(at("set `where` (a SQL condition, e.g. \"lifetime_spend > 500\") or `include` (other segments)".into()));
                }
                for other in d.include.iter().chain(&d.exclude).chain(&d.within) {
                    match self.segments.get(other) {
                        None => return Err(at(format!("no segment named `{other}`"))),
                        Some((o, _)) if o.template.as_deref() == Some(PER_VALUE) => {
                            return Err(at(format!("`{other}` makes one segment per value; name one of them in a condition instead")))
                        }
                        Some(_) if other == name => return Err(at("a segment cannot include or exclude itself".into())),
                        Some(_) => {}
                    }
                }
                SegmentRule::Condition {
                    condition: d.condition.clone(),
                    include: d.include.clone(),
                    exclude: d.exclude.clone(),
                    within: d.within.clone(),
                }
            };
            pending.insert(
                name,
                Segment {
                    name: name.clone(),
                    rule,
                    frozen: d.kind == Some(SegmentKindDef::Static),
                    description: d.description.clone().unwrap_or_default(),
                    origin: origin.clone(),
                },
            );
        }
        let mut out: Vec<Segment> = Vec::new();
        while !pending.is_empty() {
            let ready: Vec<&String> = pending
                .iter()
                .filter(|(_, s)| {
                    s.depends()
                        .iter()
                        .all(|d| out.iter().any(|o| &&o.name == d))
                })
                .map(|(n, _)| *n)
                .collect();
            if ready.is_empty() {
                let (_, first) = pending.iter().next().expect("not empty");
                let names: Vec<&str> = pending.keys().map(|n| n.as_str()).collect();
                return Err(self.err(
                    &first.origin,
                    format!(
                        "segments {} include or exclude each other in a cycle",
                        names.join(", ")
                    ),
                ));
            }
            for n in ready {
                out.push(pending.remove(n).expect("ready"));
            }
        }
        Ok(out)
    }
}

fn fill_measure(mut d: MeasureDef, params: &BTreeMap<String, String>) -> MeasureDef {
    d.aggregate = fill_opt(&d.aggregate, params);
    d.expression = fill_opt(&d.expression, params);
    d.filter = fill_opt(&d.filter, params);
    d.by = fill_opt(&d.by, params);
    d.description = fill_opt(&d.description, params);
    d
}

/// Names Panorama's measure and segment stages write (in the catalog, so sources may not take
/// them: [`crate::config::is_reserved_table`]).
pub const OUTPUT_TABLES: &[&str] = &[
    names::CUSTOMER_MEASURES,
    names::CUSTOMER_PROFILES,
    names::BUSINESS_MEASURES,
    names::MEASURE_HISTORY,
    names::SEGMENT_MEMBERS,
    names::SEGMENT_HISTORY,
    names::SEGMENT_SIZES,
];

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_template_parses() {
        for (name, _) in TEMPLATES {
            let f = template_file(name).unwrap();
            assert!(
                !f.measures.is_empty() || !f.segments.is_empty() || !f.business_measures.is_empty(),
                "{name}"
            );
            for r in &f.requires {
                template_file(r).unwrap();
            }
        }
        for t in OUTPUT_TABLES {
            assert!(
                crate::config::is_reserved_table(t),
                "{t} is not in the catalog"
            );
        }
    }

    #[test]
    fn words_skip_literals() {
        let w = words("sum(amount) FILTER (WHERE type = 'frequency') + \"Order_Count\"");
        assert!(w.contains("amount") && w.contains("Order_Count") && w.contains("sum"));
        assert!(!w.contains("frequency"));
    }
}
