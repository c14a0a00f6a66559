//! Charts of a run, shared by the web console (`panorama serve`) and the run report
//! (`panorama report`): each is one SQL query over the run's tables and one Vega-Lite (or Vega)
//! spec drawing its rows. The console fetches rows from `/api/charts/<id>`; the report inlines
//! them. The chart libraries are compiled in ([`assets`]), so nothing is fetched from the web.

pub mod report;

use crate::table_catalog::names;
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
        if facts.has(names::SEGMENT_MEMBERS) {
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
        if facts.has(names::CUSTOMER_MEASURES) {
            let schema = ctx.table(names::CUSTOMER_MEASURES).await?.schema().clone();
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

/// The matches part of `rule_counts`, when the run kept `match_pairs`.
const RULE_COUNTS_MATCHED_SQL: &str = include_str!("../../sql/charts/rule_counts_matched.sql");
/// The links part of `cluster`, when the run kept `match_pairs`.
const CLUSTER_LINKS_SQL: &str = include_str!("../../sql/charts/cluster_links.sql");

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
    /// The query template, `sql/charts/<id>.sql` (`{name}` placeholders filled through
    /// [`crate::sql_text::fill`]).
    query: &'static str,
    /// The drawing, `src/charts/specs/<id>.json` (Vega-Lite; Vega for the cluster graph).
    spec_text: &'static str,
}

/// A [`Chart`] with its query and spec read from the files named by its id: a chart without
/// both does not compile.
macro_rules! chart {
    ($id:literal, $page:expr, $title:literal, $description:literal, $requires:expr, $listed:expr $(,)?) => {
        Chart {
            id: $id,
            page: $page,
            title: $title,
            description: $description,
            requires: $requires,
            listed: $listed,
            query: include_str!(concat!("../../sql/charts/", $id, ".sql")),
            spec_text: include_str!(concat!("specs/", $id, ".json")),
        }
    };
}

/// What to configure so a table has rows, and the section of docs/config.md that explains it:
/// the empty states of the console and the card teach instead of only saying "nothing".
pub fn how_to_fill(table: &str) -> (&'static str, &'static str) {
    match table {
        names::CUSTOMER_LINKS | names::UNIFY_STATS | names::UNIFY_RECORDS => (
            "map your sources' columns in `[unify.sources.<source>]` (or start from `panorama init --from`)",
            "unifysourcessource-map",
        ),
        names::MATCH_SCORE_HISTOGRAM => (
            "probabilistic matching writes it: remove `mode = \"rules\"` from `[unify]`",
            "unifyprobabilistic-match-by-probability-the-default",
        ),
        names::SEGMENT_SIZES | names::SEGMENT_MEMBERS => (
            "add `[segments.<name>]` with `where = \"...\"`, or `lifecycle = { template = \"lifecycle\" }` under `[segments]`",
            "segmentsname",
        ),
        "lifecycle" => (
            "add `lifecycle = { template = \"lifecycle\" }` under `[segments]`",
            "templates",
        ),
        names::MEASURE_HISTORY => (
            "add `[business_measures.<name>]`, or `kpis = { template = \"retail_kpis\" }` under `[business_measures]`",
            "business_measuresname",
        ),
        names::CUSTOMER_MEASURES => (
            "add `[measures.<name>]`, or `rfm = { template = \"rfm\" }` under `[measures]` (it needs `[activities.<name>]`)",
            "measuresname",
        ),
        names::ACTIVITIES => (
            "add `[activities.<name>]`: orders or events with a column holding a customer's record id or a cookie id",
            "activitiesname",
        ),
        names::PREDICTIONS_CLV => (
            "add `[predictions.clv]` (it needs order activities)",
            "predictionsclv-customer-lifetime-value",
        ),
        names::PREDICTIONS_CHURN => ("add `[predictions.churn]`", "predictionschurn-churn-risk"),
        "funnels" => (
            "add `[funnels.<name>]` with `steps = [\"type = 'product_view'\", \"type = 'order'\"]` (it needs `[activities.<name>]`)",
            "journey-analytics-funnel-paths-and-funnelsname",
        ),
        names::ATTRIBUTION_RESULTS => (
            "add `[attribution.<name>]` with `conversions` and `channel` (it needs `[activities.<name>]`)",
            "attributionname-which-channels-earn-the-conversions",
        ),
        names::DATA_QUALITY => (
            "add `[[expectations]]` (not_null, unique, accepted_values, matches, between, row_count_change, freshness, mapped_parse_rate): checked on every run",
            "data-quality-expectations-and-source-profiles",
        ),
        names::SOURCE_PROFILES => (
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
                _ => names::CUSTOMER_MEASURES,
            });
        let (what, section) = how_to_fill(table);
        (what.to_string(), docs_url(section))
    }
}

pub const CHARTS: &[Chart] = &[
    chart!("records_per_source", Page::Unify, "Records per source", "Matched records joined a customer with other records; singletons stayed alone.", &[names::CUSTOMER_LINKS], true),
    chart!("cluster_sizes", Page::Unify, "Customers by number of records", "How many source records each customer was made of.", &[names::CUSTOMER_LINKS], true),
    chart!("match_scores", Page::Unify, "Match weight of candidate pairs", "Every compared pair by its match weight (bits); pairs right of the line matched.", &[names::MATCH_SCORE_HISTOGRAM], true),
    chart!("rule_counts", Page::Unify, "Pairs per rule", "Candidate pairs each blocking rule brought to comparison (those no earlier rule found), and matches per match rule.", &[names::UNIFY_STATS], true),
    chart!("largest_clusters", Page::Unify, "Largest customers", "The customers made of most records: where over-merging would show. Click a bar for its records.", &[names::CUSTOMER_LINKS], true),
    chart!("explain", Page::Unify, "Why two records match", "Each comparison's contribution to the match weight, from the prior to the decision.", &[names::UNIFY_RECORDS], false),
    chart!("cluster", Page::Unify, "Records of one customer", "Source records of one customer and the matches that link them. Click a link to explain it.", &[names::CUSTOMER_LINKS], false),
    chart!("segment_sizes", Page::Segments, "Segment size over runs", "Members at each run.", &[names::SEGMENT_SIZES], true),
    chart!("segment_changes", Page::Segments, "Entered and left per run", "Customers who entered (up) and left (down) each segment at each run.", &[names::SEGMENT_SIZES], true),
    chart!("segment_overlap", Page::Segments, "Overlap between segments", "Customers in exactly each combination of the chosen segments (UpSet-style).", &[names::SEGMENT_MEMBERS], true),
    chart!("lifecycle", Page::Segments, "Lifecycle stages", "Customers per lifecycle stage.", &[names::SEGMENT_MEMBERS], true),
    chart!("business_measures", Page::Measures, "Business measures over runs", "Each business measure at each run.", &[names::MEASURE_HISTORY], true),
    chart!("measure_distribution", Page::Measures, "Distribution of a customer measure", "Customers by value of the chosen measure (30 bins; nulls left out).", &[names::CUSTOMER_MEASURES], true),
    chart!("clv_deciles", Page::Predictions, "Lifetime value by decile", "Predicted lifetime value of each decile of customers (10 = most valuable).", &[names::PREDICTIONS_CLV], true),
    chart!("clv_pareto", Page::Predictions, "Share of value by share of customers", "The most valuable x% of customers hold y% of predicted lifetime value (the 80/20 curve).", &[names::PREDICTIONS_CLV], true),
    chart!("funnels", Page::Journeys, "Funnels", "Customers reaching each step of each configured funnel, in order and within its time; the label is the share of those who started.", &[names::ACTIVITIES], true),
    chart!("top_paths", Page::Journeys, "Most common paths", "Activity types from a customer's first step of each funnel to its first last step after it (repeats once, at most six steps).", &[names::ACTIVITIES], true),
    chart!("path_flows", Page::Journeys, "Paths to conversion", "Each attribution's paths as flows: from the first touchpoint's channel through the next (at most four) to a conversion or none; a band's width is the paths taking it.", &[names::ATTRIBUTION_PATHS], true),
    chart!("attribution_models", Page::Journeys, "Attribution by model", "Each channel's share of the conversions under every model, side by side: where the rule models and the data-driven Markov and Shapley models disagree.", &[names::ATTRIBUTION_RESULTS], true),
    chart!("quality_failures", Page::Data, "Failed expectations per run", "Expectations that failed at each run, by severity (error stops the run, so its run is not current).", &[names::DATA_QUALITY], true),
    chart!("quality_checks", Page::Data, "Expectations over runs", "The figure each expectation compares, at each run: share of rows passing, row count change, age in hours, parse rate. Red points failed.", &[names::DATA_QUALITY], true),
    chart!("null_shares", Page::Data, "NULLs per column", "Share of NULL values of each source column with any, in the latest profile.", &[names::SOURCE_PROFILES], true),
    chart!("parse_rates", Page::Data, "Parse rates over runs", "Share of each mapped field's values that parse (valid e-mail, phone in E.164, real date), at each profiled run.", &[names::SOURCE_PROFILES], true),
    chart!("churn_bands", Page::Predictions, "Churn risk", "Customers per churn risk band.", &[names::PREDICTIONS_CHURN], true),
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
        let template = self.query;
        let segments = || in_list(&self.segments(facts, params));
        Ok(match self.id {
            "rule_counts" => {
                let matched = if facts.has(names::MATCH_PAIRS) {
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
                let links = if facts.has(names::MATCH_PAIRS) {
                    let weight = if facts.has(names::MATCH_WEIGHTS) {
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
        let mut spec: Value =
            serde_json::from_str(self.spec_text).expect("chart specs are JSON (tested)");
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
    /// What the chart needs is missing (a parameter, a measure); the message says what.
    #[error("{0}")]
    Needs(&'static str),
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Every chart has a query and a spec; every spec parses; every query's placeholders are
    /// filled (`fill` panics otherwise) and the filled text parses as SQL.
    /// Every query and spec file belongs to a chart (a chart without its files does not
    /// compile: [`chart!`] reads them).
    #[test]
    fn no_chart_file_is_left_over() {
        let ids: Vec<&str> = CHARTS.iter().map(|c| c.id).collect();
        let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR"));
        for (dir, ext, parts) in [
            (
                "sql/charts",
                "sql",
                &["rule_counts_matched", "cluster_links"][..],
            ),
            ("src/charts/specs", "json", &[][..]),
        ] {
            for entry in std::fs::read_dir(root.join(dir)).unwrap() {
                let path = entry.unwrap().path();
                if path.extension().and_then(|e| e.to_str()) != Some(ext) {
                    continue;
                }
                let stem = path.file_stem().unwrap().to_str().unwrap();
                assert!(
                    ids.contains(&stem) || parts.contains(&stem),
                    "{} belongs to no chart",
                    path.display()
                );
            }
        }
    }

    #[test]
    fn every_chart_has_its_files() {
        let facts = RunFacts {
            tables: vec![names::MATCH_PAIRS.into(), names::MATCH_WEIGHTS.into()],
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
            let spec = chart.spec(json!({"values": []}));
            assert!(spec.is_object(), "{}", chart.id);
            let sql = chart.sql(&facts, &params).unwrap();
            datafusion::sql::sqlparser::parser::Parser::parse_sql(
                &datafusion::sql::sqlparser::dialect::GenericDialect {},
                &sql,
            )
            .unwrap_or_else(|e| panic!("{}: {e}\n{sql}", chart.id));
        }
        let cluster = chart("cluster").unwrap().sql(&facts, &params).unwrap();
        assert!(cluster.contains("customer_id = 'C{1}'''"), "{cluster}");
        let models = &chart("attribution_models").unwrap().body()["encoding"]["color"]["sort"];
        assert_eq!(models, &json!(crate::config::attribution::MODELS));
    }
}
