//! Charts of a run, shared by the web console (`panorama serve`) and the run report
//! (`panorama report`): each is one SQL query over the run's tables and one Vega-Lite (or Vega)
//! spec drawing its rows. The console fetches rows from `/api/charts/<id>`; the report inlines
//! them. The chart libraries are compiled in ([`assets`]), so nothing is fetched from the web.

pub mod report;

use serde_json::{json, Value};

/// The compiled-in chart libraries (see `src/charts/assets/README.md`).
pub mod assets {
    pub const VEGA: &str = include_str!("assets/vega.min.js");
    pub const VEGA_LITE: &str = include_str!("assets/vega-lite.min.js");
    pub const VEGA_EMBED: &str = include_str!("assets/vega-embed.min.js");
}

/// Console pages, in menu order.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Page {
    Unify,
    Segments,
    Measures,
    Predictions,
    Journeys,
    Data,
}

impl Page {
    pub const ALL: [Page; 6] = [
        Page::Unify,
        Page::Segments,
        Page::Measures,
        Page::Predictions,
        Page::Journeys,
        Page::Data,
    ];

    pub fn as_str(&self) -> &'static str {
        match self {
            Page::Unify => "unify",
            Page::Segments => "segments",
            Page::Measures => "measures",
            Page::Predictions => "predictions",
            Page::Journeys => "journeys",
            Page::Data => "data",
        }
    }

    pub fn title(&self) -> &'static str {
        match self {
            Page::Unify => "Unification",
            Page::Segments => "Segments",
            Page::Measures => "Measures",
            Page::Predictions => "Predictions",
            Page::Journeys => "Journeys",
            Page::Data => "Data quality",
        }
    }

    pub fn parse(s: &str) -> Option<Page> {
        Page::ALL.into_iter().find(|p| p.as_str() == s)
    }
}

/// What a chart may be asked about: chosen segments, a measure, a customer, a pair.
#[derive(Debug, Clone, Default, serde::Deserialize)]
pub struct Params {
    /// Comma-separated segment names.
    pub segments: Option<String>,
    pub measure: Option<String>,
    pub customer: Option<String>,
    pub left: Option<String>,
    pub right: Option<String>,
}

/// What the run has, to fill defaults (which segments, which measure, the threshold).
#[derive(Debug, Clone, Default)]
pub struct RunFacts {
    pub tables: Vec<String>,
    /// Segments by size, largest first.
    pub segments: Vec<String>,
    /// Numeric columns of `customer_measures`.
    pub numeric_measures: Vec<String>,
    pub lifecycle: Vec<String>,
    /// The config's `[funnels.<name>]`.
    pub funnels: Vec<(String, crate::config::funnels::FunnelDef)>,
}

impl RunFacts {
    pub fn has(&self, table: &str) -> bool {
        self.tables.iter().any(|t| t == table)
    }

    /// Facts of the run open in `ctx`, with the funnels `cfg` declares.
    pub async fn gather(
        ctx: &datafusion::prelude::SessionContext,
        tables: &[String],
        cfg: &crate::config::ProjectConfig,
    ) -> crate::Result<Self> {
        let mut facts = RunFacts {
            tables: tables.to_vec(),
            funnels: cfg
                .funnels
                .iter()
                .map(|(n, f)| (n.clone(), f.get_ref().clone()))
                .collect(),
            ..Default::default()
        };
        if facts.has("segment_members") {
            let batches = ctx
                .sql("SELECT segment FROM segment_members GROUP BY segment ORDER BY count(*) DESC, segment")
                .await?
                .collect()
                .await?;
            for b in &batches {
                let col = crate::output::string_column(b, "segment")?;
                facts
                    .segments
                    .extend(col.iter().flatten().map(str::to_string));
            }
            facts.lifecycle = LIFECYCLE
                .iter()
                .filter(|s| facts.segments.iter().any(|x| x == *s))
                .map(|s| s.to_string())
                .collect();
        }
        if facts.has("customer_measures") {
            let schema = ctx.table("customer_measures").await?.schema().clone();
            facts.numeric_measures = schema
                .fields()
                .iter()
                .filter(|f| f.data_type().is_numeric() && f.name() != "customer_id")
                .map(|f| f.name().clone())
                .collect();
        }
        Ok(facts)
    }
}

/// The stages of `sql/templates/lifecycle.toml`, in lifecycle order.
const LIFECYCLE: &[&str] = &["prospect", "active", "inactive", "lost"];

/// Each chart's query (`sql/charts/<id>.sql`, `{name}` placeholders filled through
/// [`crate::sql_text::fill`]) and drawing (`src/charts/specs/<id>.json`, Vega-Lite; Vega for
/// the cluster graph).
macro_rules! chart_files {
    ($($id:literal),* $(,)?) => {
        &[$((
            $id,
            include_str!(concat!("../../sql/charts/", $id, ".sql")),
            include_str!(concat!("specs/", $id, ".json")),
        )),*]
    };
}
const FILES: &[(&str, &str, &str)] = chart_files!(
    "records_per_source",
    "cluster_sizes",
    "match_scores",
    "rule_counts",
    "largest_clusters",
    "explain",
    "cluster",
    "segment_sizes",
    "segment_changes",
    "segment_overlap",
    "lifecycle",
    "business_measures",
    "measure_distribution",
    "clv_deciles",
    "clv_pareto",
    "churn_bands",
    "funnels",
    "top_paths",
    "path_flows",
    "attribution_models",
    "quality_failures",
    "quality_checks",
    "null_shares",
    "parse_rates",
);
/// The matches part of `rule_counts`, when the run kept `match_pairs`.
const RULE_COUNTS_MATCHED_SQL: &str = include_str!("../../sql/charts/rule_counts_matched.sql");
/// The links part of `cluster`, when the run kept `match_pairs`.
const CLUSTER_LINKS_SQL: &str = include_str!("../../sql/charts/cluster_links.sql");

/// A chart's (query template, spec).
fn files(id: &str) -> Option<(&'static str, &'static str)> {
    FILES
        .iter()
        .find(|(i, _, _)| *i == id)
        .map(|(_, sql, spec)| (*sql, *spec))
}

/// One chart.
pub struct Chart {
    pub id: &'static str,
    pub page: Page,
    pub title: &'static str,
    pub description: &'static str,
    /// Tables the chart needs; without them it is left out.
    pub requires: &'static [&'static str],
    /// Shown on the console page and in the report (the explain and cluster charts are not:
    /// they need a pair or a customer).
    pub listed: bool,
}

/// What to configure so a table has rows, and the section of docs/config.md that explains it:
/// the empty states of the console and the card teach instead of only saying "nothing".
pub fn how_to_fill(table: &str) -> (&'static str, &'static str) {
    match table {
        "customer_links" | "unify_stats" | "unify_records" => (
            "map your sources' columns in `[unify.sources.<source>]` (or start from `panorama init --from`)",
            "unifysourcessource-map",
        ),
        "match_score_histogram" => (
            "probabilistic matching writes it: remove `mode = \"rules\"` from `[unify]`",
            "unifyprobabilistic-match-by-probability-the-default",
        ),
        "segment_sizes" | "segment_members" => (
            "add `[segments.<name>]` with `where = \"...\"`, or `lifecycle = { template = \"lifecycle\" }` under `[segments]`",
            "segmentsname",
        ),
        "lifecycle" => (
            "add `lifecycle = { template = \"lifecycle\" }` under `[segments]`",
            "templates",
        ),
        "measure_history" => (
            "add `[business_measures.<name>]`, or `kpis = { template = \"retail_kpis\" }` under `[business_measures]`",
            "business_measuresname",
        ),
        "customer_measures" => (
            "add `[measures.<name>]`, or `rfm = { template = \"rfm\" }` under `[measures]` (it needs `[activities.<name>]`)",
            "measuresname",
        ),
        "activities" => (
            "add `[activities.<name>]`: orders or events with a column holding a customer's record id or a cookie id",
            "activitiesname",
        ),
        "predictions_clv" => (
            "add `[predictions.clv]` (it needs order activities)",
            "predictionsclv-customer-lifetime-value",
        ),
        "predictions_churn" => ("add `[predictions.churn]`", "predictionschurn-churn-risk"),
        "funnels" => (
            "add `[funnels.<name>]` with `steps = [\"type = 'product_view'\", \"type = 'order'\"]` (it needs `[activities.<name>]`)",
            "journey-analytics-funnel-paths-and-funnelsname",
        ),
        "attribution_results" => (
            "add `[attribution.<name>]` with `conversions` and `channel` (it needs `[activities.<name>]`)",
            "attributionname-which-channels-earn-the-conversions",
        ),
        "data_quality" => (
            "add `[[expectations]]` (not_null, unique, accepted_values, matches, between, row_count_change, freshness, mapped_parse_rate): checked on every run",
            "data-quality-expectations-and-source-profiles",
        ),
        "source_profiles" => (
            "run the project: every run that loads its sources profiles them",
            "data-quality-expectations-and-source-profiles",
        ),
        _ => ("see the configuration reference", ""),
    }
}

/// The web address of a section of docs/config.md.
pub fn docs_url(section: &str) -> String {
    format!(
        "{}/blob/main/docs/config.md{}{section}",
        env!("CARGO_PKG_REPOSITORY"),
        if section.is_empty() { "" } else { "#" }
    )
}

impl Chart {
    /// Why the chart is not shown for `facts`, and what would show it: (what, docs url).
    pub fn missing(&self, facts: &RunFacts) -> (String, String) {
        let table = self
            .requires
            .iter()
            .find(|t| !facts.has(t))
            .copied()
            .unwrap_or(match self.id {
                "lifecycle" => "lifecycle",
                _ => "customer_measures",
            });
        let (what, section) = how_to_fill(table);
        (what.to_string(), docs_url(section))
    }
}

pub const CHARTS: &[Chart] = &[
    Chart { id: "records_per_source", page: Page::Unify, title: "Records per source", description: "Matched records joined a customer with other records; singletons stayed alone.", requires: &["customer_links"], listed: true },
    Chart { id: "cluster_sizes", page: Page::Unify, title: "Customers by number of records", description: "How many source records each customer was made of.", requires: &["customer_links"], listed: true },
    Chart { id: "match_scores", page: Page::Unify, title: "Match weight of candidate pairs", description: "Every compared pair by its match weight (bits); pairs right of the line matched.", requires: &["match_score_histogram"], listed: true },
    Chart { id: "rule_counts", page: Page::Unify, title: "Pairs per rule", description: "Candidate pairs each blocking rule brought to comparison (those no earlier rule found), and matches per match rule.", requires: &["unify_stats"], listed: true },
    Chart { id: "largest_clusters", page: Page::Unify, title: "Largest customers", description: "The customers made of most records: where over-merging would show. Click a bar for its records.", requires: &["customer_links"], listed: true },
    Chart { id: "explain", page: Page::Unify, title: "Why two records match", description: "Each comparison's contribution to the match weight, from the prior to the decision.", requires: &["unify_records"], listed: false },
    Chart { id: "cluster", page: Page::Unify, title: "Records of one customer", description: "Source records of one customer and the matches that link them. Click a link to explain it.", requires: &["customer_links"], listed: false },
    Chart { id: "segment_sizes", page: Page::Segments, title: "Segment size over runs", description: "Members at each run.", requires: &["segment_sizes"], listed: true },
    Chart { id: "segment_changes", page: Page::Segments, title: "Entered and left per run", description: "Customers who entered (up) and left (down) each segment at each run.", requires: &["segment_sizes"], listed: true },
    Chart { id: "segment_overlap", page: Page::Segments, title: "Overlap between segments", description: "Customers in exactly each combination of the chosen segments (UpSet-style).", requires: &["segment_members"], listed: true },
    Chart { id: "lifecycle", page: Page::Segments, title: "Lifecycle stages", description: "Customers per lifecycle stage.", requires: &["segment_members"], listed: true },
    Chart { id: "business_measures", page: Page::Measures, title: "Business measures over runs", description: "Each business measure at each run.", requires: &["measure_history"], listed: true },
    Chart { id: "measure_distribution", page: Page::Measures, title: "Distribution of a customer measure", description: "Customers by value of the chosen measure (30 bins; nulls left out).", requires: &["customer_measures"], listed: true },
    Chart { id: "clv_deciles", page: Page::Predictions, title: "Lifetime value by decile", description: "Predicted lifetime value of each decile of customers (10 = most valuable).", requires: &["predictions_clv"], listed: true },
    Chart { id: "clv_pareto", page: Page::Predictions, title: "Share of value by share of customers", description: "The most valuable x% of customers hold y% of predicted lifetime value (the 80/20 curve).", requires: &["predictions_clv"], listed: true },
    Chart { id: "funnels", page: Page::Journeys, title: "Funnels", description: "Customers reaching each step of each configured funnel, in order and within its time; the label is the share of those who started.", requires: &["activities"], listed: true },
    Chart { id: "top_paths", page: Page::Journeys, title: "Most common paths", description: "Activity types from a customer's first step of each funnel to its first last step after it (repeats once, at most six steps).", requires: &["activities"], listed: true },
    Chart { id: "path_flows", page: Page::Journeys, title: "Paths to conversion", description: "Each attribution's paths as flows: from the first touchpoint's channel through the next (at most four) to a conversion or none; a band's width is the paths taking it.", requires: &["attribution_paths"], listed: true },
    Chart { id: "attribution_models", page: Page::Journeys, title: "Attribution by model", description: "Each channel's share of the conversions under every model, side by side: where the rule models and the data-driven Markov and Shapley models disagree.", requires: &["attribution_results"], listed: true },
    Chart { id: "quality_failures", page: Page::Data, title: "Failed expectations per run", description: "Expectations that failed at each run, by severity (error stops the run, so its run is not current).", requires: &["data_quality"], listed: true },
    Chart { id: "quality_checks", page: Page::Data, title: "Expectations over runs", description: "The figure each expectation compares, at each run: share of rows passing, row count change, age in hours, parse rate. Red points failed.", requires: &["data_quality"], listed: true },
    Chart { id: "null_shares", page: Page::Data, title: "NULLs per column", description: "Share of NULL values of each source column with any, in the latest profile.", requires: &["source_profiles"], listed: true },
    Chart { id: "parse_rates", page: Page::Data, title: "Parse rates over runs", description: "Share of each mapped field's values that parse (valid e-mail, phone in E.164, real date), at each profiled run.", requires: &["source_profiles"], listed: true },
    Chart { id: "churn_bands", page: Page::Predictions, title: "Churn risk", description: "Customers per churn risk band.", requires: &["predictions_churn"], listed: true },
];

pub fn chart(id: &str) -> Option<&'static Chart> {
    CHARTS.iter().find(|c| c.id == id)
}

use crate::sql_text::{fill, in_list, literal as quote, Param};

impl Chart {
    /// Whether the run has what the chart needs.
    pub fn available(&self, facts: &RunFacts) -> bool {
        self.requires.iter().all(|t| facts.has(t))
            && match self.id {
                "lifecycle" => !facts.lifecycle.is_empty(),
                "measure_distribution" => !facts.numeric_measures.is_empty(),
                "funnels" | "top_paths" => !facts.funnels.is_empty(),
                _ => true,
            }
    }

    /// The segments a chart shows: those asked for (known ones only), else the largest few.
    pub fn segments(&self, facts: &RunFacts, params: &Params) -> Vec<String> {
        let asked: Vec<String> = params
            .segments
            .as_deref()
            .unwrap_or("")
            .split(',')
            .map(str::trim)
            .filter(|s| facts.segments.iter().any(|x| x == s))
            .map(str::to_string)
            .collect();
        if !asked.is_empty() {
            return asked;
        }
        let n = if self.id == "segment_overlap" { 4 } else { 6 };
        facts.segments.iter().take(n).cloned().collect()
    }

    /// The measure a chart shows: the one asked for if numeric, else the first numeric one.
    pub fn measure(&self, facts: &RunFacts, params: &Params) -> Option<String> {
        params
            .measure
            .as_ref()
            .filter(|m| facts.numeric_measures.contains(m))
            .cloned()
            .or_else(|| {
                ["lifetime_spend", "order_count"]
                    .iter()
                    .find(|m| facts.numeric_measures.iter().any(|x| x == *m))
                    .map(|m| m.to_string())
            })
            .or_else(|| facts.numeric_measures.first().cloned())
    }

    /// The query giving the chart's rows, or why it cannot be drawn.
    pub fn sql(&self, facts: &RunFacts, params: &Params) -> Result<String, ChartError> {
        let template = files(self.id)
            .ok_or_else(|| ChartError::Unknown(self.id.to_string()))?
            .0;
        let segments = || in_list(&self.segments(facts, params));
        Ok(match self.id {
            "rule_counts" => {
                let matched = if facts.has("match_pairs") {
                    RULE_COUNTS_MATCHED_SQL
                } else {
                    ""
                };
                fill(template, &[("matched", Param::Sql(matched))])
            }
            "explain" => {
                let (Some(l), Some(r)) = (&params.left, &params.right) else {
                    return Err(ChartError::Needs(
                        "give left= and right= record ids (SOURCE:ID)",
                    ));
                };
                fill(
                    template,
                    &[("left", Param::Literal(l)), ("right", Param::Literal(r))],
                )
            }
            "cluster" => {
                let Some(c) = &params.customer else {
                    return Err(ChartError::Needs("give customer="));
                };
                let links = if facts.has("match_pairs") {
                    let weight = if facts.has("match_weights") {
                        "CAST(p.match_weight AS DOUBLE)"
                    } else {
                        "CAST(NULL AS DOUBLE)"
                    };
                    fill(
                        CLUSTER_LINKS_SQL,
                        &[
                            ("weight", Param::Sql(weight)),
                            ("customer", Param::Literal(c)),
                        ],
                    )
                } else {
                    "SELECT 'link' AS kind, 'x' AS uid, 'x' AS target, 'x' AS source, CAST(NULL AS VARCHAR) AS system, CAST(NULL AS DOUBLE) AS weight, 'x' AS label, 'x' AS href WHERE false".into()
                };
                fill(
                    template,
                    &[
                        ("customer", Param::Literal(c)),
                        ("links", Param::Sql(&links)),
                    ],
                )
            }
            "segment_sizes" | "segment_changes" | "segment_overlap" => {
                fill(template, &[("segments", Param::Sql(&segments()))])
            }
            "lifecycle" => {
                let order = LIFECYCLE
                    .iter()
                    .enumerate()
                    .map(|(i, s)| format!("WHEN {} THEN {i}", quote(s)))
                    .collect::<Vec<_>>()
                    .join(" ");
                fill(
                    template,
                    &[
                        ("stage_order", Param::Sql(&order)),
                        ("segments", Param::Sql(&in_list(&facts.lifecycle))),
                    ],
                )
            }
            "measure_distribution" => {
                let m = self
                    .measure(facts, params)
                    .ok_or(ChartError::Needs("no numeric customer measure in this run"))?;
                fill(
                    template,
                    &[
                        ("column", Param::Ident(&m)),
                        ("measure", Param::Literal(&m)),
                    ],
                )
            }
            "funnels" => {
                let each = facts.funnels.iter().map(|(name, f)| {
                    fill(
                        template,
                        &[
                            ("funnel", Param::Literal(name)),
                            ("args", Param::Sql(&f.funnel_args())),
                        ],
                    )
                });
                each.collect::<Vec<_>>().join("\nUNION ALL\n") + "\nORDER BY funnel, step"
            }
            "top_paths" => {
                let each = facts.funnels.iter().map(|(name, f)| {
                    fill(
                        template,
                        &[
                            ("funnel", Param::Literal(name)),
                            ("from", Param::Literal(&f.steps[0])),
                            (
                                "to",
                                Param::Literal(f.steps.last().expect("two or more steps")),
                            ),
                        ],
                    )
                });
                each.collect::<Vec<_>>().join("\nUNION ALL\n")
                    + "\nORDER BY funnel, customers DESC, path"
            }
            _ => template.to_string(),
        })
    }

    /// The Vega-Lite spec (Vega for the cluster graph) with `data` for the given rows source.
    pub fn spec(&self, data: Value) -> Value {
        let mut spec = self.body();
        let obj = spec.as_object_mut().expect("specs are objects");
        if self.id == "cluster" {
            // A Vega spec: nodes and links both come from the one row set.
            if let Some(Value::Array(datasets)) = obj.get_mut("data") {
                let mut source = data;
                source["name"] = json!("rows");
                datasets.insert(0, source);
            }
        } else {
            let mut d = data;
            d["name"] = json!("rows");
            obj.insert("data".into(), d);
            obj.insert(
                "$schema".into(),
                json!("https://vega.github.io/schema/vega-lite/v5.json"),
            );
            // Faceted charts size their cells instead.
            if !obj.contains_key("facet") {
                obj.entry("width").or_insert(json!("container"));
                obj.entry("height").or_insert(json!(260));
            }
        }
        spec
    }

    /// The chart's drawing from its spec file; the attribution chart orders models as
    /// [`MODELS`](crate::config::attribution::MODELS) does.
    fn body(&self) -> Value {
        let Some((_, spec)) = files(self.id) else {
            return json!({});
        };
        let mut spec: Value = serde_json::from_str(spec).expect("chart specs are JSON (tested)");
        if self.id == "attribution_models" {
            for channel in ["yOffset", "color"] {
                spec["encoding"][channel]["sort"] = json!(crate::config::attribution::MODELS);
            }
        }
        spec
    }
}

/// Why a chart cannot be drawn with these parameters.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ChartError {
    #[error("no chart {0}")]
    Unknown(String),
    /// What the chart needs is missing (a parameter, a measure); the message says what.
    #[error("{0}")]
    Needs(&'static str),
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Every chart has a query and a spec; every spec parses; every query's placeholders are
    /// filled (`fill` panics otherwise) and the filled text parses as SQL.
    #[test]
    fn every_chart_has_its_files() {
        let facts = RunFacts {
            tables: vec!["match_pairs".into(), "match_weights".into()],
            segments: vec!["vip".into(), "it's".into()],
            numeric_measures: vec!["lifetime_spend".into()],
            lifecycle: vec!["active".into()],
            funnels: vec![(
                "checkout".into(),
                crate::config::funnels::FunnelDef {
                    steps: vec!["type = 'view'".into(), "type = 'order'".into()],
                    within: Some("7d".into()),
                    description: None,
                },
            )],
        };
        let params = Params {
            customer: Some("C{1}'".into()),
            left: Some("crm:1".into()),
            right: Some("shop:2".into()),
            ..Default::default()
        };
        for chart in CHARTS {
            assert!(files(chart.id).is_some(), "{}: no files", chart.id);
            let spec = chart.spec(json!({"values": []}));
            assert!(spec.is_object(), "{}", chart.id);
            let sql = chart.sql(&facts, &params).unwrap();
            datafusion::sql::sqlparser::parser::Parser::parse_sql(
                &datafusion::sql::sqlparser::dialect::GenericDialect {},
                &sql,
            )
            .unwrap_or_else(|e| panic!("{}: {e}\n{sql}", chart.id));
        }
        assert_eq!(FILES.len(), CHARTS.len());
        let cluster = chart("cluster").unwrap().sql(&facts, &params).unwrap();
        assert!(cluster.contains("customer_id = 'C{1}'''"), "{cluster}");
        let models = &chart("attribution_models").unwrap().body()["encoding"]["color"]["sort"];
        assert_eq!(models, &json!(crate::config::attribution::MODELS));
    }
}
