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

/// The layout of the `path_flows` Sankey (Vega has no Sankey transform: see the file).
const PATH_FLOWS_SQL: &str = include_str!("../../sql/charts/path_flows.sql");

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

use crate::sql_text::{ident as quote_ident, literal as quote};

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
    pub fn sql(&self, facts: &RunFacts, params: &Params) -> Result<String, String> {
        let in_list =
            |segs: &[String]| segs.iter().map(|s| quote(s)).collect::<Vec<_>>().join(", ");
        Ok(match self.id {
            "records_per_source" => "SELECT source, CASE WHEN matched_by = 'singleton' THEN 'singleton' ELSE 'matched' END AS status, \
                 count(*) AS records FROM customer_links GROUP BY 1, 2 ORDER BY 1, 2".into(),
            "cluster_sizes" => "SELECT size AS records, count(*) AS customers FROM \
                 (SELECT customer_id, count(*) AS size FROM customer_links GROUP BY customer_id) \
                 GROUP BY size ORDER BY size".into(),
            "match_scores" => "SELECT weight_bin, pairs, matched, threshold_weight FROM match_score_histogram ORDER BY weight_bin".into(),
            "rule_counts" => {
                let matches = if facts.has("match_pairs") {
                    " UNION ALL SELECT 'matched' AS kind, rule, count(*) AS pairs FROM match_pairs GROUP BY rule"
                } else {
                    ""
                };
                format!(
                    "SELECT 'compared' AS kind, substr(metric, 12) AS rule, CAST(value AS BIGINT) AS pairs FROM unify_stats \
                     WHERE metric LIKE 'pairs_rule:%'{matches} ORDER BY kind, pairs DESC"
                )
            }
            "largest_clusters" => "SELECT customer_id, count(*) AS records, count(DISTINCT source) AS sources, \
                 '/console/cluster/' || customer_id AS link FROM customer_links GROUP BY customer_id \
                 ORDER BY records DESC, customer_id LIMIT 15".into(),
            "explain" => {
                let (Some(l), Some(r)) = (&params.left, &params.right) else {
                    return Err("give left= and right= record ids (SOURCE:ID)".into());
                };
                // The running total makes the waterfall; the decision row is the total.
                format!(
                    "SELECT row_number() OVER () AS step, comparison, level, left AS left_value, right AS right_value, m, u, \
                       weight_bits FROM explain_pair({}, {})",
                    quote(l),
                    quote(r)
                )
            }
            "cluster" => {
                let Some(c) = &params.customer else {
                    return Err("give customer=".into());
                };
                let c = quote(c);
                // Record ids are `source:id`: nothing in them needs escaping in a query string.
                let href = "'/console/explain?left=' || p.left_uid || '&right=' || p.right_uid";
                let links = if facts.has("match_pairs") && facts.has("match_weights") {
                    format!(
                        "SELECT 'link' AS kind, p.left_uid AS uid, p.right_uid AS target, p.left_uid AS source, CAST(NULL AS VARCHAR) AS system, \
                           CAST(p.match_weight AS DOUBLE) AS weight, p.rule AS label, {href} AS href \
                         FROM match_pairs p JOIN customer_links a ON a.uid = p.left_uid JOIN customer_links b ON b.uid = p.right_uid \
                         WHERE a.customer_id = {c} AND b.customer_id = {c}"
                    )
                } else if facts.has("match_pairs") {
                    format!(
                        "SELECT 'link' AS kind, p.left_uid AS uid, p.right_uid AS target, p.left_uid AS source, CAST(NULL AS VARCHAR) AS system, \
                           CAST(NULL AS DOUBLE) AS weight, p.rule AS label, {href} AS href \
                         FROM match_pairs p JOIN customer_links a ON a.uid = p.left_uid JOIN customer_links b ON b.uid = p.right_uid \
                         WHERE a.customer_id = {c} AND b.customer_id = {c}"
                    )
                } else {
                    "SELECT 'link' AS kind, 'x' AS uid, 'x' AS target, 'x' AS source, CAST(NULL AS VARCHAR) AS system, CAST(NULL AS DOUBLE) AS weight, 'x' AS label, 'x' AS href WHERE false".into()
                };
                format!(
                    "SELECT 'node' AS kind, uid, CAST(NULL AS VARCHAR) AS target, uid AS source, source AS system, CAST(NULL AS DOUBLE) AS weight, \
                       record_id AS label, CAST(NULL AS VARCHAR) AS href FROM customer_links WHERE customer_id = {c} \
                     UNION ALL {links}"
                )
            }
            "segment_sizes" => format!(
                "SELECT run_id, CAST(as_of AS VARCHAR) AS as_of, segment, members FROM segment_sizes \
                 WHERE segment IN ({}) ORDER BY run_id, segment",
                in_list(&self.segments(facts, params))
            ),
            "segment_changes" => format!(
                "SELECT run_id, segment, 'entered' AS change, entered AS customers FROM segment_sizes WHERE segment IN ({s}) \
                 UNION ALL SELECT run_id, segment, 'left', -exited FROM segment_sizes WHERE segment IN ({s}) \
                 ORDER BY 1, 2, 3",
                s = in_list(&self.segments(facts, params))
            ),
            "segment_overlap" => format!(
                "SELECT combination, segment_count, count(*) AS customers FROM \
                   (SELECT customer_id, string_agg(segment, ' & ' ORDER BY segment) AS combination, count(*) AS segment_count \
                    FROM segment_members WHERE segment IN ({}) GROUP BY customer_id) \
                 GROUP BY combination, segment_count ORDER BY customers DESC, combination LIMIT 30",
                in_list(&self.segments(facts, params))
            ),
            "lifecycle" => format!(
                "SELECT segment AS stage, count(*) AS customers, CASE segment {} END AS stage_order \
                 FROM segment_members WHERE segment IN ({}) GROUP BY segment ORDER BY stage_order",
                LIFECYCLE
                    .iter()
                    .enumerate()
                    .map(|(i, s)| format!("WHEN {} THEN {i}", quote(s)))
                    .collect::<Vec<_>>()
                    .join(" "),
                in_list(&facts.lifecycle)
            ),
            "business_measures" => "SELECT run_id, CAST(as_of AS VARCHAR) AS as_of, measure, value FROM measure_history \
                 WHERE by_value IS NULL AND value IS NOT NULL ORDER BY measure, run_id".into(),
            "measure_distribution" => {
                let m = self
                    .measure(facts, params)
                    .ok_or("no numeric customer measure in this run")?;
                let col = format!("CAST({} AS DOUBLE)", quote_ident(&m));
                format!(
                    "WITH v AS (SELECT {col} AS x FROM customer_measures WHERE {col} IS NOT NULL), \
                          r AS (SELECT min(x) AS lo, max(x) AS hi FROM v) \
                     SELECT {name} AS measure, lo + (hi - lo) / 30.0 * b AS bin_start, lo + (hi - lo) / 30.0 * (b + 1) AS bin_end, count(*) AS customers \
                     FROM (SELECT CASE WHEN r.hi = r.lo THEN 0 ELSE least(CAST(floor((x - r.lo) / ((r.hi - r.lo) / 30.0)) AS BIGINT), 29) END AS b, r.lo, r.hi \
                           FROM v CROSS JOIN r) \
                     GROUP BY b, lo, hi ORDER BY b",
                    name = quote(&m)
                )
            }
            "clv_deciles" => "SELECT clv_decile AS decile, count(*) AS customers, sum(clv) AS total_clv, avg(clv) AS mean_clv \
                 FROM predictions_clv WHERE clv IS NOT NULL GROUP BY clv_decile ORDER BY clv_decile".into(),
            "clv_pareto" => "SELECT pct_customers, max(cum) / max(total) AS share_of_value FROM \
                   (SELECT CAST(ceil(100.0 * row_number() OVER (ORDER BY clv DESC, customer_id) / count(*) OVER ()) AS BIGINT) AS pct_customers, \
                           sum(clv) OVER (ORDER BY clv DESC, customer_id ROWS UNBOUNDED PRECEDING) AS cum, sum(clv) OVER () AS total \
                    FROM predictions_clv WHERE clv IS NOT NULL) \
                 GROUP BY pct_customers ORDER BY pct_customers".into(),
            "churn_bands" => "SELECT churn_risk, count(*) AS customers, CASE churn_risk WHEN 'low' THEN 0 WHEN 'medium' THEN 1 ELSE 2 END AS band_order \
                 FROM predictions_churn GROUP BY churn_risk ORDER BY band_order".into(),
            "funnels" => facts
                .funnels
                .iter()
                .map(|(name, f)| {
                    format!(
                        "SELECT {} AS funnel, step, condition, customers, conversion_from_start, median_seconds FROM funnel({})",
                        quote(name),
                        f.funnel_args()
                    )
                })
                .collect::<Vec<_>>()
                .join(" UNION ALL ")
                + " ORDER BY funnel, step",
            "top_paths" => facts
                .funnels
                .iter()
                .map(|(name, f)| {
                    format!(
                        "SELECT * FROM (SELECT {} AS funnel, path, converted, customers, share FROM paths({}, {}, 6) \
                         ORDER BY customers DESC, path LIMIT 10)",
                        quote(name),
                        quote(&f.steps[0]),
                        quote(f.steps.last().expect("two or more steps"))
                    )
                })
                .collect::<Vec<_>>()
                .join(" UNION ALL ")
                + " ORDER BY funnel, customers DESC, path",
            "path_flows" => PATH_FLOWS_SQL.into(),
            "attribution_models" => "SELECT attribution, model, channel, sum(conversions) AS conversions, sum(value) AS value, sum(share) AS share \
                 FROM attribution_results GROUP BY attribution, model, channel ORDER BY attribution, model, channel".into(),
            "quality_failures" => "SELECT run_id, severity, CAST(sum(CASE WHEN passed THEN 0 ELSE 1 END) AS BIGINT) AS failed, \
                 count(*) AS checks FROM data_quality GROUP BY run_id, severity ORDER BY run_id, severity".into(),
            "quality_checks" => "SELECT run_id, expectation, \"check\", severity, passed, observed_value, observed FROM data_quality \
                 WHERE observed_value IS NOT NULL ORDER BY expectation, run_id".into(),
            "null_shares" => "SELECT source || '.' || \"column\" AS source_column, null_share, nulls, rows FROM source_profiles \
                 WHERE run_id = (SELECT max(run_id) FROM source_profiles) AND nulls > 0 \
                 ORDER BY null_share DESC, source_column LIMIT 40".into(),
            "parse_rates" => "SELECT run_id, source || '.' || mapped_field AS field, parse_rate, parse_failures FROM source_profiles \
                 WHERE parse_rate IS NOT NULL ORDER BY field, run_id".into(),
            other => return Err(format!("no chart {other}")),
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

    fn body(&self) -> Value {
        let tooltip =
            |fields: &[&str]| -> Value { fields.iter().map(|f| json!({"field": f})).collect() };
        match self.id {
            "records_per_source" => json!({
                "mark": "bar",
                "encoding": {
                    "y": {"field": "source", "type": "nominal", "title": null},
                    "x": {"field": "records", "type": "quantitative", "stack": "zero", "title": "records"},
                    "color": {"field": "status", "type": "nominal", "scale": {"domain": ["matched", "singleton"], "range": ["#2457c5", "#b6c4dd"]}},
                    "tooltip": tooltip(&["source", "status", "records"])
                }
            }),
            "cluster_sizes" => json!({
                "mark": "bar",
                "encoding": {
                    "x": {"field": "records", "type": "ordinal", "title": "records per customer"},
                    "y": {"field": "customers", "type": "quantitative", "scale": {"type": "symlog"}},
                    "tooltip": tooltip(&["records", "customers"])
                }
            }),
            "match_scores" => json!({
                "layer": [
                    {"mark": "bar", "encoding": {
                        "x": {"field": "weight_bin", "type": "quantitative", "bin": {"binned": true, "step": 1}, "title": "match weight (bits)"},
                        "x2": {"field": "bin_end"},
                        "y": {"field": "pairs", "type": "quantitative", "scale": {"type": "symlog"}},
                        "color": {"condition": {"test": "datum.weight_bin >= datum.threshold_weight", "value": "#2457c5"}, "value": "#b6c4dd"},
                        "tooltip": tooltip(&["weight_bin", "pairs", "matched"])
                    }},
                    {"mark": {"type": "rule", "color": "#b3261e", "strokeWidth": 2}, "encoding": {
                        "x": {"aggregate": "max", "field": "threshold_weight", "type": "quantitative"}
                    }}
                ],
                "transform": [{"calculate": "datum.weight_bin + 1", "as": "bin_end"}]
            }),
            "rule_counts" => json!({
                "mark": "bar",
                "encoding": {
                    "y": {"field": "rule", "type": "nominal", "sort": "-x", "title": null},
                    "yOffset": {"field": "kind"},
                    "x": {"field": "pairs", "type": "quantitative"},
                    "color": {"field": "kind", "type": "nominal", "title": null,
                              "scale": {"domain": ["compared", "matched"], "range": ["#b6c4dd", "#2457c5"]}},
                    "tooltip": tooltip(&["kind", "rule", "pairs"])
                }
            }),
            "largest_clusters" => json!({
                "mark": {"type": "bar", "cursor": "pointer"},
                "encoding": {
                    "y": {"field": "customer_id", "type": "nominal", "sort": "-x", "title": null},
                    "x": {"field": "records", "type": "quantitative"},
                    "color": {"field": "sources", "type": "ordinal", "title": "sources"},
                    "href": {"field": "link"},
                    "tooltip": tooltip(&["customer_id", "records", "sources"])
                }
            }),
            "explain" => json!({
                "transform": [
                    {"filter": "datum.comparison !== 'decision'"},
                    {"window": [{"op": "sum", "field": "weight_bits", "as": "end"}], "sort": [{"field": "step"}]},
                    {"calculate": "datum.end - datum.weight_bits", "as": "start"},
                    {"calculate": "datum.comparison + (datum.level ? ': ' + datum.level : '')", "as": "label"}
                ],
                "mark": "bar",
                "encoding": {
                    "y": {"field": "comparison", "type": "nominal", "sort": {"field": "step"}, "title": null},
                    "x": {"field": "start", "type": "quantitative", "title": "match weight (bits)"},
                    "x2": {"field": "end"},
                    "color": {"condition": {"test": "datum.weight_bits < 0", "value": "#b3261e"}, "value": "#2457c5"},
                    "tooltip": tooltip(&["comparison", "level", "left_value", "right_value", "weight_bits", "end"])
                }
            }),
            "cluster" => json!({
                "$schema": "https://vega.github.io/schema/vega/v5.json",
                "width": 640, "height": 360, "autosize": "none",
                "signals": [{"name": "cx", "update": "width / 2"}, {"name": "cy", "update": "height / 2"}],
                "data": [
                    {"name": "node-data", "source": "rows", "transform": [{"type": "filter", "expr": "datum.kind === 'node'"}]},
                    {"name": "link-data", "source": "rows", "transform": [{"type": "filter", "expr": "datum.kind === 'link'"}]}
                ],
                "scales": [{"name": "color", "type": "ordinal", "domain": {"data": "node-data", "field": "system"}, "range": {"scheme": "category10"}}],
                "legends": [{"fill": "color", "title": "source", "orient": "top-left"}],
                "marks": [
                    {"name": "nodes", "type": "symbol", "zindex": 1, "from": {"data": "node-data"},
                     "encode": {"enter": {"fill": {"scale": "color", "field": "system"}, "stroke": {"value": "white"}, "size": {"value": 500},
                                          "tooltip": {"signal": "datum.uid"}}},
                     "transform": [{"type": "force", "iterations": 300, "static": true, "signal": "force", "forces": [
                        {"force": "center", "x": {"signal": "cx"}, "y": {"signal": "cy"}},
                        {"force": "collide", "radius": 30},
                        {"force": "nbody", "strength": -120},
                        {"force": "link", "links": "link-data", "id": "datum.uid", "distance": 120}
                     ]}]},
                    {"type": "path", "from": {"data": "link-data"}, "interactive": true,
                     "encode": {"update": {"stroke": {"value": "#8899aa"}, "strokeWidth": {"signal": "datum.weight ? max(1.5, datum.weight / 8) : 2"},
                                           "href": {"field": "href"}, "cursor": {"value": "pointer"},
                                           "tooltip": {"signal": "datum.label + (datum.weight ? ': ' + format(datum.weight, '.1f') + ' bits' : '')"}}},
                     "transform": [{"type": "linkpath", "require": {"signal": "force"}, "shape": "line",
                                    "sourceX": "datum.source.x", "sourceY": "datum.source.y", "targetX": "datum.target.x", "targetY": "datum.target.y"}]},
                    {"type": "text", "from": {"data": "nodes"}, "zindex": 2,
                     "encode": {"update": {"x": {"field": "x"}, "y": {"field": "y", "offset": 24}, "align": {"value": "center"},
                                           "text": {"field": "datum.label"}, "fontSize": {"value": 11}}}}
                ]
            }),
            "segment_sizes" => json!({
                "mark": {"type": "line", "point": true},
                "encoding": {
                    "x": {"field": "run_id", "type": "ordinal", "title": "run", "axis": {"labelAngle": -30, "labelLimit": 120}},
                    "y": {"field": "members", "type": "quantitative"},
                    "color": {"field": "segment", "type": "nominal"},
                    "tooltip": tooltip(&["segment", "run_id", "as_of", "members"])
                }
            }),
            "segment_changes" => json!({
                "mark": "bar",
                "encoding": {
                    "x": {"field": "run_id", "type": "ordinal", "title": "run", "axis": {"labelAngle": -30, "labelLimit": 120}},
                    "xOffset": {"field": "segment"},
                    "y": {"field": "customers", "type": "quantitative", "title": "entered (+) / left (−)"},
                    "color": {"field": "segment", "type": "nominal"},
                    "opacity": {"condition": {"test": "datum.change === 'left'", "value": 0.55}, "value": 1},
                    "tooltip": tooltip(&["segment", "run_id", "change", "customers"])
                }
            }),
            "segment_overlap" => json!({
                "mark": "bar",
                "encoding": {
                    "y": {"field": "combination", "type": "nominal", "sort": "-x", "title": null, "axis": {"labelLimit": 360}},
                    "x": {"field": "customers", "type": "quantitative"},
                    "color": {"field": "segment_count", "type": "ordinal", "title": "segments"},
                    "tooltip": tooltip(&["combination", "customers"])
                }
            }),
            "lifecycle" => json!({
                "mark": "bar",
                "encoding": {
                    "x": {"field": "stage", "type": "nominal", "sort": {"field": "stage_order"}, "title": null},
                    "y": {"field": "customers", "type": "quantitative"},
                    "color": {"field": "stage", "type": "nominal", "legend": null, "sort": {"field": "stage_order"}},
                    "tooltip": tooltip(&["stage", "customers"])
                }
            }),
            "business_measures" => json!({
                "facet": {"field": "measure", "type": "nominal", "title": null},
                "columns": 3,
                "resolve": {"scale": {"y": "independent"}},
                "spec": {
                    "width": 220, "height": 120,
                    "mark": {"type": "line", "point": true},
                    "encoding": {
                        "x": {"field": "run_id", "type": "ordinal", "title": null, "axis": {"labels": false}},
                        "y": {"field": "value", "type": "quantitative", "title": null},
                        "tooltip": tooltip(&["measure", "run_id", "as_of", "value"])
                    }
                }
            }),
            "measure_distribution" => json!({
                "mark": "bar",
                "encoding": {
                    "x": {"field": "bin_start", "type": "quantitative", "bin": {"binned": true}, "title": {"expr": "data('rows')[0] ? data('rows')[0].measure : 'value'"}},
                    "x2": {"field": "bin_end"},
                    "y": {"field": "customers", "type": "quantitative"},
                    "tooltip": tooltip(&["bin_start", "bin_end", "customers"])
                }
            }),
            "clv_deciles" => json!({
                "mark": "bar",
                "encoding": {
                    "x": {"field": "decile", "type": "ordinal"},
                    "y": {"field": "total_clv", "type": "quantitative", "title": "predicted lifetime value"},
                    "tooltip": tooltip(&["decile", "customers", "total_clv", "mean_clv"])
                }
            }),
            "clv_pareto" => json!({
                "layer": [
                    {"mark": {"type": "line"}, "encoding": {
                        "x": {"field": "pct_customers", "type": "quantitative", "title": "% of customers (most valuable first)"},
                        "y": {"field": "share_of_value", "type": "quantitative", "axis": {"format": "%"}, "title": "share of predicted value"},
                        "tooltip": tooltip(&["pct_customers", "share_of_value"])
                    }},
                    {"mark": {"type": "rule", "strokeDash": [4, 4], "color": "#888"}, "encoding": {"x": {"datum": 20}}},
                    {"mark": {"type": "rule", "strokeDash": [4, 4], "color": "#888"}, "encoding": {"y": {"datum": 0.8}}}
                ]
            }),
            "churn_bands" => json!({
                "mark": "bar",
                "encoding": {
                    "x": {"field": "churn_risk", "type": "nominal", "sort": {"field": "band_order"}, "title": "churn risk"},
                    "y": {"field": "customers", "type": "quantitative"},
                    "color": {"field": "churn_risk", "type": "nominal", "legend": null,
                              "scale": {"domain": ["low", "medium", "high"], "range": ["#4caf50", "#f0a030", "#b3261e"]}},
                    "tooltip": tooltip(&["churn_risk", "customers"])
                }
            }),
            "funnels" => json!({
                "facet": {"field": "funnel", "type": "nominal", "title": null},
                "columns": 2,
                "resolve": {"scale": {"x": "independent"}},
                "spec": {
                    "width": 320, "height": 160,
                    "layer": [
                        {"mark": "bar", "encoding": {
                            "y": {"field": "condition", "type": "nominal", "sort": {"field": "step"}, "title": null, "axis": {"labelLimit": 200}},
                            "x": {"field": "customers", "type": "quantitative"},
                            "tooltip": tooltip(&["step", "condition", "customers", "conversion_from_start", "median_seconds"])
                        }},
                        {"mark": {"type": "text", "align": "left", "dx": 3}, "encoding": {
                            "y": {"field": "condition", "type": "nominal", "sort": {"field": "step"}},
                            "x": {"field": "customers", "type": "quantitative"},
                            "text": {"field": "conversion_from_start", "type": "quantitative", "format": ".0%"}
                        }}
                    ]
                }
            }),
            "top_paths" => json!({
                "transform": [{"calculate": "datum.funnel + ': ' + datum.path", "as": "label"}],
                "mark": "bar",
                "encoding": {
                    "y": {"field": "label", "type": "nominal", "sort": "-x", "title": null, "axis": {"labelLimit": 480}},
                    "x": {"field": "customers", "type": "quantitative"},
                    "color": {"field": "converted", "type": "nominal", "scale": {"domain": [true, false], "range": ["#2457c5", "#b6c4dd"]}},
                    "tooltip": tooltip(&["funnel", "path", "customers", "share"])
                }
            }),
            "path_flows" => json!({
                "facet": {"row": {"field": "attribution", "type": "nominal", "title": null}},
                "resolve": {"scale": {"y": "independent"}},
                "spec": {
                    "width": 640, "height": 320,
                    "layer": [
                        {"transform": [{"filter": "datum.kind == 'link'"}],
                         "mark": {"type": "area", "opacity": 0.35, "interpolate": "monotone"},
                         "encoding": {
                            "x": {"field": "x", "type": "quantitative", "axis": null},
                            "y": {"field": "y", "type": "quantitative", "axis": null, "scale": {"reverse": true}},
                            "y2": {"field": "y2"},
                            "detail": [{"field": "step"}, {"field": "label"}, {"field": "target"}],
                            "color": {"field": "label", "type": "nominal", "title": "channel"},
                            "tooltip": tooltip(&["step", "label", "target", "customers"])
                        }},
                        {"transform": [{"filter": "datum.kind == 'node'"}],
                         "mark": "rect",
                         "encoding": {
                            "x": {"field": "x", "type": "quantitative"},
                            "x2": {"field": "x2"},
                            "y": {"field": "y", "type": "quantitative"},
                            "y2": {"field": "y2"},
                            "color": {"field": "label", "type": "nominal"},
                            "tooltip": tooltip(&["step", "label", "customers"])
                        }},
                        {"transform": [{"filter": "datum.kind == 'node'"}, {"calculate": "(datum.y + datum.y2) / 2", "as": "middle"}],
                         "mark": {"type": "text", "align": "left", "dx": 4, "fontSize": 10},
                         "encoding": {
                            "x": {"field": "x2", "type": "quantitative"},
                            "y": {"field": "middle", "type": "quantitative"},
                            "text": {"field": "label"}
                        }}
                    ]
                }
            }),
            "attribution_models" => json!({
                "transform": [{"calculate": "datum.attribution + ': ' + datum.channel", "as": "label"}],
                "mark": "bar",
                "encoding": {
                    "y": {"field": "label", "type": "nominal", "title": null, "axis": {"labelLimit": 260}},
                    "yOffset": {"field": "model", "sort": crate::config::attribution::MODELS},
                    "x": {"field": "share", "type": "quantitative", "axis": {"format": "%"}, "title": "share of conversions"},
                    "color": {"field": "model", "type": "nominal", "sort": crate::config::attribution::MODELS},
                    "tooltip": tooltip(&["attribution", "model", "channel", "conversions", "value", "share"])
                }
            }),
            "quality_failures" => json!({
                "mark": "bar",
                "encoding": {
                    "x": {"field": "run_id", "type": "ordinal", "title": "run", "axis": {"labelAngle": -30, "labelLimit": 120}},
                    "y": {"field": "failed", "type": "quantitative", "title": "failed expectations", "stack": "zero"},
                    "color": {"field": "severity", "type": "nominal",
                              "scale": {"domain": ["warn", "error"], "range": ["#f0a030", "#b3261e"]}},
                    "tooltip": tooltip(&["run_id", "severity", "failed", "checks"])
                }
            }),
            "quality_checks" => json!({
                "facet": {"field": "expectation", "type": "nominal", "title": null},
                "columns": 3,
                "resolve": {"scale": {"y": "independent"}},
                "spec": {
                    "width": 220, "height": 120,
                    "mark": {"type": "line", "point": {"filled": true, "size": 50}},
                    "encoding": {
                        "x": {"field": "run_id", "type": "ordinal", "title": null, "axis": {"labels": false}},
                        "y": {"field": "observed_value", "type": "quantitative", "title": null},
                        "color": {"value": "#2457c5"},
                        "fill": {"field": "passed", "type": "nominal", "legend": null,
                                 "scale": {"domain": [true, false], "range": ["#2457c5", "#b3261e"]}},
                        "tooltip": tooltip(&["expectation", "run_id", "passed", "observed"])
                    }
                }
            }),
            "null_shares" => json!({
                "mark": "bar",
                "encoding": {
                    "y": {"field": "source_column", "type": "nominal", "sort": "-x", "title": null, "axis": {"labelLimit": 260}},
                    "x": {"field": "null_share", "type": "quantitative", "axis": {"format": "%"}, "title": "NULL", "scale": {"domain": [0, 1]}},
                    "tooltip": tooltip(&["source_column", "nulls", "rows", "null_share"])
                }
            }),
            "parse_rates" => json!({
                "mark": {"type": "line", "point": true},
                "encoding": {
                    "x": {"field": "run_id", "type": "ordinal", "title": "run", "axis": {"labelAngle": -30, "labelLimit": 120}},
                    "y": {"field": "parse_rate", "type": "quantitative", "axis": {"format": "%"}, "title": "values that parse"},
                    "color": {"field": "field", "type": "nominal"},
                    "tooltip": tooltip(&["field", "run_id", "parse_rate", "parse_failures"])
                }
            }),
            _ => json!({}),
        }
    }
}
