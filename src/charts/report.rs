//! `panorama report`: one self-contained HTML file with a run's summary and charts. The chart
//! libraries and every row are inlined, so the file opens anywhere, offline, for good.

use std::path::Path;

use minijinja::{context, Environment};
use serde_json::{json, Value};

use super::{Params, RunFacts, CHARTS};
use crate::config::ProjectConfig;
use crate::error::{Error, Result};
use crate::table_catalog::names;
use crate::workspace::Workspace;

/// The script that draws every `.chart` element from the spec its `data-spec` names; shared
/// with the console pages.
pub const DRAW_CHARTS_JS: &str = r#"
function panoramaDrawCharts() {
  document.querySelectorAll('.chart[data-spec]').forEach(function (el) {
    var spec = JSON.parse(document.getElementById(el.dataset.spec).textContent);
    var vega = spec.$schema && spec.$schema.indexOf('/schema/vega/') > 0;
    vegaEmbed(el.querySelector('.plot'), spec, { actions: false, renderer: 'svg', mode: vega ? 'vega' : 'vega-lite' })
      .then(function (r) {
        var rows = r.view.data('rows') || [];
        // Kept for tests and the browser console: the rows the chart drew.
        el.panoramaRows = rows.map(function (d) {
          var o = {};
          Object.keys(d).forEach(function (k) { if (d[k] === null || typeof d[k] !== 'object') o[k] = d[k]; });
          return o;
        });
        el.dataset.rows = rows.length;
        el.dataset.rendered = 'true';
      })
      .catch(function (e) {
        el.dataset.error = String(e);
        el.querySelector('.plot').textContent = 'This chart could not be drawn: ' + e;
      });
  });
}
document.addEventListener('DOMContentLoaded', panoramaDrawCharts);
"#;

/// JSON inside a `<script>` element: `</` must not close it.
pub fn script_json(v: &Value) -> String {
    v.to_string().replace("</", "<\\/")
}

/// What a report holds.
#[derive(Debug)]
pub struct ReportSummary {
    pub run_id: String,
    pub charts: usize,
    pub bytes: usize,
}

/// Write the report of `run_id` (default: the current run) to `out`.
pub async fn write(cfg: &ProjectConfig, run_id: Option<&str>, out: &Path) -> Result<ReportSummary> {
    let (ctx, opened) = crate::session::open_project(cfg, run_id).await?;
    let ws = Workspace::new(cfg.workspace_dir());
    let manifest = ws.read_manifest(&opened.run_id)?;
    let facts = RunFacts::gather(&ctx, &opened.tables, cfg).await?;
    let params = Params::default();
    let mut sections = Vec::new();
    let mut count = 0;
    for page in super::Page::ALL {
        let mut charts = Vec::new();
        for c in CHARTS.iter().filter(|c| c.page == page && c.listed) {
            if !c.available(&facts) {
                continue;
            }
            let sql = match c.sql(&facts, &params) {
                Ok(s) => s,
                Err(_) => continue,
            };
            let batches = ctx
                .sql(&sql)
                .await
                .map_err(|e| Error::query(format!("chart {}", c.id), e))?
                .collect()
                .await
                .map_err(|e| Error::query(format!("chart {}", c.id), e))?;
            let rows: Vec<Value> = batches
                .iter()
                .flat_map(crate::output::batch_objects)
                .map(Value::Object)
                .collect();
            let spec = c.spec(json!({ "values": rows }));
            charts.push(json!({
                "id": c.id,
                "title": c.title,
                "description": c.description,
                "spec": script_json(&spec),
            }));
            count += 1;
        }
        if !charts.is_empty() {
            sections.push(json!({ "title": page.title(), "charts": charts }));
        }
    }
    let stats: Vec<Value> = if facts.has(names::UNIFY_STATS) {
        ctx.sql("SELECT metric, value FROM unify_stats WHERE metric NOT LIKE 'pairs_rule:%'")
            .await?
            .collect()
            .await?
            .iter()
            .flat_map(crate::output::batch_objects)
            .map(Value::Object)
            .collect()
    } else {
        Vec::new()
    };
    let sources: Vec<Value> = manifest
        .sources
        .iter()
        .map(|s| {
            json!({
                "name": s.name, "format": s.format, "rows_loaded": s.rows_loaded,
                "rows_rejected": s.rows_rejected, "seconds": format!("{:.1}", s.seconds),
            })
        })
        .collect();
    let mut env = Environment::new();
    env.add_template("report.html", include_str!("report.html"))
        .map_err(|e| Error::Internal(format!("report template: {e}")))?;
    let html = env
        .get_template("report.html")
        .and_then(|t| {
            t.render(context! {
                project => cfg.project.name.clone(),
                run_id => opened.run_id.clone(),
                status => manifest.status.as_str(),
                started_at => manifest.started_at.clone(),
                ended_at => manifest.ended_at.clone(),
                as_of => manifest.as_of.clone(),
                sources => minijinja::Value::from(minijinja::value::Serde(&sources)),
                stats => minijinja::Value::from(minijinja::value::Serde(&stats)),
                sections => minijinja::Value::from(minijinja::value::Serde(&sections)),
                generated_at => chrono::Utc::now().to_rfc3339(),
                vega => minijinja::Value::from_safe_string(super::assets::VEGA.replace("</script", "<\\/script")),
                vega_lite => minijinja::Value::from_safe_string(super::assets::VEGA_LITE.replace("</script", "<\\/script")),
                vega_embed => minijinja::Value::from_safe_string(super::assets::VEGA_EMBED.replace("</script", "<\\/script")),
                draw => minijinja::Value::from_safe_string(DRAW_CHARTS_JS.to_string()),
            })
        })
        .map_err(|e| Error::Internal(format!("report: {e}")))?;
    if let Some(dir) = out.parent().filter(|d| !d.as_os_str().is_empty()) {
        std::fs::create_dir_all(dir).map_err(|e| Error::io("cannot create", dir, e))?;
    }
    crate::workspace::write_atomic(out, html.as_bytes())?;
    Ok(ReportSummary {
        run_id: opened.run_id,
        charts: count,
        bytes: html.len(),
    })
}
