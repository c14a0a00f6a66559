//! The web console, the run report and the notebook, against a demo project with three runs:
//! Debian's headless Chromium loads each console page and the report (offline) and the test
//! compares what the charts drew with SQL; Jupyter executes `examples/explore.ipynb` against
//! `panorama serve`. Screenshots land in `target/console-screenshots/` for review.
//! `.ci/run` installs the clients and sets `PANORAMA_REQUIRE_SERVICES=1`.

mod common;

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::Command;

use common::*;
use serde_json::Value;

fn have_python(what: &str, args: &[&str]) -> bool {
    have(what, "python3", args)
}

fn target_dir(name: &str) -> PathBuf {
    let d = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("target")
        .join(name);
    std::fs::create_dir_all(&d).unwrap();
    d
}

fn num(v: &Value) -> f64 {
    match v {
        Value::Number(n) => n.as_f64().unwrap(),
        Value::String(s) => s.parse().unwrap(),
        other => panic!("not a number: {other}"),
    }
}

fn browse(shots: &Path, args: &[&str]) -> Value {
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/clients/console_browser.py");
    let out = Command::new("python3")
        .arg(script)
        .arg(shots)
        .args(args)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "console_browser.py: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_slice(&out.stdout).unwrap()
}

/// Charts of one page by id.
fn charts(page: &Value) -> BTreeMap<String, Value> {
    page["charts"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| (c["id"].as_str().unwrap().to_string(), c.clone()))
        .collect()
}

fn sum(chart: &Value, field: &str) -> f64 {
    chart["rows"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| num(&r[field]))
        .sum()
}

#[test]
fn console_report_and_notebook_show_the_runs_data() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path();
    ok(&[
        "demo",
        "--persons",
        "300",
        "--seed",
        "5",
        "--out",
        p(dir),
        "-q",
    ]);
    ok(&["run", "-p", p(dir), "-q", "--report"]);
    // Three runs, the later ones on later days, so histories have three points.
    ok(&["refresh", "-p", p(dir), "-q", "--as-of", "2026-12-01"]);
    ok(&["refresh", "-p", p(dir), "-q", "--as-of", "2027-01-01"]);
    let runs = json_rows(
        dir,
        "SELECT count(*) AS n FROM runs WHERE status = 'succeeded'",
    )[0]["n"]
        .as_u64()
        .unwrap();
    assert_eq!(runs, 3);
    let first_run = json_rows(dir, "SELECT min(run_id) AS r FROM runs")[0]["r"]
        .as_str()
        .unwrap()
        .to_string();
    assert!(
        dir.join(format!(".panorama/runs/{first_run}/report.html"))
            .exists(),
        "run --report"
    );

    // --- The report: self-contained, no external URL to load -----------------------------
    let report = target_dir("console-screenshots").join("report.html");
    let said = ok(&["report", "-p", p(dir), "--out", p(&report)]);
    assert!(said.contains("charts"), "{said}");
    let html = std::fs::read_to_string(&report).unwrap();
    for external in [
        "src=\"http",
        "href=\"http",
        "src='http",
        "url(http",
        "\"url\":",
        "<link ",
    ] {
        assert!(
            !html.contains(external),
            "the report refers to something outside it: {external}"
        );
    }
    let playwright = have_python(
        "Playwright and Chromium",
        &[
            "-c",
            "import playwright, shutil, sys; sys.exit(0 if shutil.which('chromium') else 1)",
        ],
    );
    let customers = json_rows(dir, "SELECT count(*) AS n FROM unified_customers")[0]["n"]
        .as_u64()
        .unwrap() as f64;
    if playwright {
        let seen = browse(
            &target_dir("console-screenshots"),
            &["--offline", &format!("file://{}", report.display())],
        );
        assert!(
            seen["blocked"].as_array().unwrap().is_empty(),
            "the report asked the network: {}",
            seen["blocked"]
        );
        let page = &seen["pages"][0];
        let all = charts(page);
        assert!(all.len() >= 12, "charts in the report: {:?}", all.keys());
        for (id, c) in &all {
            assert!(
                c["rendered"].as_bool().unwrap(),
                "report chart {id}: {}",
                c["error"]
            );
            assert!(
                c["marks"].as_u64().unwrap() > 0,
                "report chart {id} drew nothing"
            );
        }
        assert_eq!(sum(&all["cluster_sizes"], "customers"), customers);
        assert!(as_str(&page["text"]).contains("Sources"));
    }

    // --- The console, served ---------------------------------------------------------------
    let server = Server::start(dir, &[]);
    let base = format!("http://{}", server.http);
    let largest = json_rows(dir, "SELECT customer_id, count(*) AS n FROM customer_links GROUP BY 1 ORDER BY 2 DESC, 1 LIMIT 1").remove(0);
    let largest_id = largest["customer_id"].as_str().unwrap().to_string();
    let pair = json_rows(
        dir,
        "SELECT left_uid, right_uid FROM match_pairs ORDER BY match_weight DESC, left_uid LIMIT 1",
    )
    .remove(0);
    let (l, r) = (
        pair["left_uid"].as_str().unwrap(),
        pair["right_uid"].as_str().unwrap(),
    );
    let explain_rows = json_rows(
        dir,
        &format!(
            "SELECT count(*) AS n FROM explain_pair('{l}', '{r}') WHERE comparison <> 'decision'"
        ),
    )[0]["n"]
        .as_u64()
        .unwrap();
    // The figures are JSON too.
    let api: Value = {
        let body = http_get(&format!("{base}/api/charts/segment_sizes?segments=active"));
        serde_json::from_str(&body).unwrap()
    };
    let sizes_sql = json_rows(
        dir,
        "SELECT run_id, members FROM segment_sizes WHERE segment = 'active' ORDER BY run_id",
    );
    let api_sizes: Vec<(String, f64)> = api["rows"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| {
            (
                r["run_id"].as_str().unwrap().to_string(),
                num(&r["members"]),
            )
        })
        .collect();
    let sql_sizes: Vec<(String, f64)> = sizes_sql
        .iter()
        .map(|r| {
            (
                r["run_id"].as_str().unwrap().to_string(),
                num(&r["members"]),
            )
        })
        .collect();
    assert_eq!(api_sizes, sql_sizes);
    let list: Value = serde_json::from_str(&http_get(&format!("{base}/api/charts"))).unwrap();
    assert!(list["charts"]
        .as_array()
        .unwrap()
        .iter()
        .any(|c| c["id"] == "match_scores" && c["available"] == true));

    // Match quality: `panorama unify report` as a page, the same estimates as the CLI with
    // the page's sample, computed once per run.
    let page = http_get(&format!("{base}/console/quality"));
    let cli = common::unify_report(dir, 250_000, 20);
    let text = page
        .replace("&#x27;", "'")
        .replace("&#x2f;", "/")
        .replace("&quot;", "\"")
        .replace("&amp;", "&");
    for line in cli["summary"].as_array().unwrap() {
        let line = line.as_str().unwrap();
        assert!(text.contains(line), "{line} not in the page:\n{page}");
    }
    let precision: f64 = text
        .split("estimated precision ")
        .nth(1)
        .and_then(|t| t.split_whitespace().next())
        .and_then(|v| v.parse().ok())
        .unwrap_or_else(|| panic!("no estimated precision in the page:\n{page}"));
    assert!(precision >= 0.9, "{page}");
    for title in cli["tables"].as_object().unwrap().keys() {
        assert!(text.contains(title.as_str()), "{title}");
    }
    assert_eq!(http_get(&format!("{base}/console/quality")), page);

    if playwright {
        let urls = [
            format!("{base}/console/unify"),
            format!("{base}/console/segments?segments=active&segments=champions&segments=at_risk"),
            format!("{base}/console/measures?measure=lifetime_spend"),
            format!("{base}/console/predictions"),
            format!("{base}/console/explain?left={l}&right={r}"),
            format!("{base}/console/cluster/{largest_id}"),
            format!("{base}/console/quality"),
            format!("{base}/console/data"),
            format!("{base}/console/journeys"),
        ];
        let url_refs: Vec<&str> = urls.iter().map(String::as_str).collect();
        let seen = browse(&target_dir("console-screenshots"), &url_refs);
        assert!(
            seen["script_errors"].as_array().unwrap().is_empty(),
            "{}",
            seen["script_errors"]
        );
        let pages = seen["pages"].as_array().unwrap();
        for page in pages {
            for (id, c) in charts(page) {
                assert!(
                    c["rendered"].as_bool().unwrap(),
                    "{} chart {id}: {}",
                    page["url"],
                    c["error"]
                );
            }
        }
        // Unification: every record counted once, every customer once, every match once.
        let unify = charts(&pages[0]);
        let links = json_rows(dir, "SELECT count(*) AS n FROM customer_links")[0]["n"]
            .as_u64()
            .unwrap() as f64;
        assert_eq!(sum(&unify["records_per_source"], "records"), links);
        assert_eq!(sum(&unify["cluster_sizes"], "customers"), customers);
        let matched = json_rows(dir, "SELECT count(*) AS n FROM match_pairs")[0]["n"]
            .as_u64()
            .unwrap() as f64;
        assert_eq!(sum(&unify["match_scores"], "matched"), matched);
        assert!(unify["match_scores"]["rows"]
            .as_array()
            .unwrap()
            .iter()
            .all(|r| num(&r["threshold_weight"]) > 0.0));
        assert_eq!(
            unify["largest_clusters"]["rows"][0]["customer_id"],
            largest_id.as_str()
        );
        // Segments: one point per run for each chosen segment, the sizes of segment_sizes.
        let segs = charts(&pages[1]);
        let sizes = segs["segment_sizes"]["rows"].as_array().unwrap();
        for seg in ["active", "champions", "at_risk"] {
            let points: Vec<f64> = sizes
                .iter()
                .filter(|r| r["segment"] == seg)
                .map(|r| num(&r["members"]))
                .collect();
            let want: Vec<f64> = json_rows(
                dir,
                &format!(
                    "SELECT members FROM segment_sizes WHERE segment = '{seg}' ORDER BY run_id"
                ),
            )
            .iter()
            .map(|r| num(&r["members"]))
            .collect();
            assert_eq!(points.len() as u64, runs, "{seg}: a point per run");
            assert_eq!(points, want, "{seg}");
        }
        let overlap_total = sum(&segs["segment_overlap"], "customers");
        let in_any = json_rows(dir, "SELECT count(DISTINCT customer_id) AS n FROM segment_members WHERE segment IN ('active', 'champions', 'at_risk')")[0]["n"]
            .as_u64()
            .unwrap() as f64;
        assert_eq!(
            overlap_total, in_any,
            "every member in exactly one combination"
        );
        let lifecycle = sum(&segs["lifecycle"], "customers");
        let staged = json_rows(dir, "SELECT count(*) AS n FROM segment_members WHERE segment IN ('prospect', 'active', 'inactive', 'lost')")[0]["n"]
            .as_u64()
            .unwrap() as f64;
        assert_eq!(lifecycle, staged);
        // Measures: every business measure at every run; the histogram counts every value.
        let meas = charts(&pages[2]);
        let history = json_rows(dir, "SELECT count(*) AS n FROM measure_history WHERE by_value IS NULL AND value IS NOT NULL")[0]["n"]
            .as_u64()
            .unwrap();
        assert_eq!(
            meas["business_measures"]["rows"].as_array().unwrap().len() as u64,
            history
        );
        let with_spend = json_rows(
            dir,
            "SELECT count(lifetime_spend) AS n FROM customer_measures",
        )[0]["n"]
            .as_u64()
            .unwrap() as f64;
        assert_eq!(sum(&meas["measure_distribution"], "customers"), with_spend);
        // Predictions.
        let pred = charts(&pages[3]);
        let churned = json_rows(dir, "SELECT count(*) AS n FROM predictions_churn")[0]["n"]
            .as_u64()
            .unwrap() as f64;
        assert_eq!(sum(&pred["churn_bands"], "customers"), churned);
        let pareto = pred["clv_pareto"]["rows"].as_array().unwrap();
        assert!((num(&pareto.last().unwrap()["share_of_value"]) - 1.0).abs() < 1e-9);
        // Explain: one bar per comparison, the decision in words.
        let explain = charts(&pages[4]);
        let bars = explain["explain"]["rows"]
            .as_array()
            .unwrap()
            .iter()
            .filter(|r| r["comparison"] != "decision")
            .count() as u64;
        assert_eq!(bars, explain_rows);
        assert!(
            as_str(&pages[4]["text"]).contains("MATCH"),
            "{}",
            pages[4]["text"]
        );
        // Cluster: a node per record of the customer.
        let cluster = charts(&pages[5]);
        let nodes = cluster["cluster"]["rows"]
            .as_array()
            .unwrap()
            .iter()
            .filter(|r| r["kind"] == "node")
            .count() as u64;
        assert_eq!(nodes, largest["n"].as_u64().unwrap());
        // Journeys: the demo's funnel as funnel() gives it, and its paths.
        let journeys = charts(&pages[8]);
        let steps = json_rows(
            dir,
            "SELECT step, customers FROM funnel('type = ''product_view''', 'type = ''add_to_cart''', 'type = ''order''', INTERVAL '2592000 seconds') ORDER BY step",
        );
        let drawn = journeys["funnels"]["rows"].as_array().unwrap();
        assert_eq!(drawn.len(), 3);
        for (d, s) in drawn.iter().zip(&steps) {
            assert_eq!(d["funnel"], "browse_to_buy");
            assert_eq!(d["customers"], s["customers"]);
        }
        assert!(num(&drawn[0]["customers"]) > 0.0);
        let top = json_rows(
            dir,
            "SELECT sum(customers) AS n FROM (SELECT customers FROM paths('type = ''product_view''', 'type = ''order''', 6) ORDER BY customers DESC, path LIMIT 10)",
        )[0]["n"]
            .as_u64()
            .unwrap() as f64;
        assert_eq!(sum(&journeys["top_paths"], "customers"), top);
        let credited = json_rows(
            dir,
            "SELECT count(*) AS n FROM (SELECT DISTINCT model, channel FROM attribution_results)",
        )[0]["n"]
            .as_u64()
            .unwrap();
        let bars = journeys["attribution_models"]["rows"].as_array().unwrap();
        assert_eq!(bars.len() as u64, credited);
        // Every model's shares add up to all conversions.
        let markov: f64 = bars
            .iter()
            .filter(|r| r["model"] == "markov")
            .map(|r| num(&r["share"]))
            .sum();
        assert!((markov - 1.0).abs() < 1e-9, "{markov}");
        // Paths to conversion (the Sankey): the first step's nodes hold every path with a
        // touchpoint, every path ends once (a conversion or none), and each band is a link of
        // consecutive channels as attribution_paths has them.
        let flows = journeys["path_flows"]["rows"].as_array().unwrap();
        let node_sum = |keep: &dyn Fn(&serde_json::Value) -> bool| -> f64 {
            flows
                .iter()
                .filter(|r| r["kind"] == "node" && keep(r))
                .map(|r| num(&r["customers"]))
                .sum()
        };
        let paths = json_rows(
            dir,
            "SELECT count(*) AS n FROM attribution_paths WHERE touchpoints > 0",
        )[0]["n"]
            .as_u64()
            .unwrap() as f64;
        assert!(paths > 0.0);
        assert_eq!(node_sum(&|r| r["step"] == 1), paths);
        assert_eq!(
            node_sum(&|r| r["label"] == "conversion" || r["label"] == "no conversion"),
            paths
        );
        let converted = json_rows(
            dir,
            "SELECT count(*) AS n FROM attribution_paths WHERE touchpoints > 0 AND converted",
        )[0]["n"]
            .as_u64()
            .unwrap() as f64;
        assert_eq!(node_sum(&|r| r["label"] == "conversion"), converted);
        let first_links = json_rows(
            dir,
            "SELECT count(DISTINCT CASE WHEN touchpoints = 1 THEN path || CAST(converted AS VARCHAR) \
             ELSE split_part(path, ' > ', 1) || ' > ' || split_part(path, ' > ', 2) END) AS n \
             FROM attribution_paths WHERE touchpoints > 0",
        )[0]["n"]
            .as_u64()
            .unwrap() as usize;
        let drawn: std::collections::BTreeSet<(String, String)> = flows
            .iter()
            .filter(|r| r["kind"] == "link" && r["step"] == 1)
            .map(|r| (r["label"].to_string(), r["target"].to_string()))
            .collect();
        assert_eq!(drawn.len(), first_links);
        // Data quality: every failed expectation of every run (the refreshes checked again,
        // and as of 2027 the web events are stale), every profiled parse rate.
        let data = charts(&pages[7]);
        let failed = json_rows(
            dir,
            "SELECT count(*) AS n FROM data_quality WHERE NOT passed",
        )[0]["n"]
            .as_u64()
            .unwrap() as f64;
        assert!(failed > 0.0, "the later refreshes find the events stale");
        assert_eq!(sum(&data["quality_failures"], "failed"), failed);
        let trend = json_rows(
            dir,
            "SELECT count(*) AS n FROM data_quality WHERE observed_value IS NOT NULL",
        )[0]["n"]
            .as_u64()
            .unwrap();
        assert_eq!(
            data["quality_checks"]["rows"].as_array().unwrap().len() as u64,
            trend
        );
        let parsed = json_rows(
            dir,
            "SELECT count(*) AS n FROM source_profiles WHERE parse_rate IS NOT NULL",
        )[0]["n"]
            .as_u64()
            .unwrap();
        assert_eq!(
            data["parse_rates"]["rows"].as_array().unwrap().len() as u64,
            parsed
        );
        let with_nulls = json_rows(
            dir,
            "SELECT count(*) AS n FROM source_profiles WHERE nulls > 0",
        )[0]["n"]
            .as_u64()
            .unwrap() as usize;
        assert_eq!(
            data["null_shares"]["rows"].as_array().unwrap().len(),
            with_nulls.min(40)
        );
    }

    // --- The notebook, executed against the server over Flight SQL ---------------------------
    if have_python(
        "Jupyter (nbconvert) with pandas and matplotlib",
        &[
            "-c",
            "import nbconvert, nbclient, ipykernel, pandas, matplotlib, adbc_driver_flightsql",
        ],
    ) {
        let out_dir = target_dir("notebook");
        let plot = out_dir.join("lifetime_spend.png");
        let _ = std::fs::remove_file(&plot);
        let nb = Path::new(env!("CARGO_MANIFEST_DIR")).join("examples/explore.ipynb");
        // The notebook's last cell opens the project with the `panorama` Python package: the
        // extension `cargo test --workspace` built beside this test, as a package directory.
        // A test build leaves the cdylib in `deps/`, beside this test's binary.
        let library = std::env::current_exe()
            .unwrap()
            .with_file_name("lib_panorama.so");
        let embedded = library.is_file();
        assert!(
            embedded || !required(),
            "{} is built by `cargo test --workspace`",
            library.display()
        );
        let python_path = out_dir.join("python");
        if embedded {
            let package = python_path.join("panorama");
            std::fs::create_dir_all(&package).unwrap();
            std::fs::copy(
                Path::new(env!("CARGO_MANIFEST_DIR")).join("python/panorama/__init__.py"),
                package.join("__init__.py"),
            )
            .unwrap();
            std::fs::copy(&library, package.join("_panorama.abi3.so")).unwrap();
        }
        let mut run = Command::new("python3");
        if embedded {
            run.env("PANORAMA_PROJECT", dir)
                .env("PYTHONPATH", &python_path);
        }
        let run = run
            .args([
                "-m",
                "jupyter",
                "nbconvert",
                "--to",
                "notebook",
                "--execute",
                "--ExecutePreprocessor.timeout=300",
            ])
            .arg("--output-dir")
            .arg(&out_dir)
            .arg(&nb)
            .env("PANORAMA_FLIGHT_URI", format!("grpc://{}", server.flight))
            .env("PANORAMA_PLOT", &plot)
            .output()
            .unwrap();
        assert!(
            run.status.success(),
            "the notebook failed:\n{}",
            String::from_utf8_lossy(&run.stderr)
        );
        let executed: Value =
            serde_json::from_str(&std::fs::read_to_string(out_dir.join("explore.ipynb")).unwrap())
                .unwrap();
        let printed: String = executed["cells"]
            .as_array()
            .unwrap()
            .iter()
            .flat_map(|c| c["outputs"].as_array().cloned().unwrap_or_default())
            .filter_map(|o| o["text"].as_array().cloned())
            .flatten()
            .filter_map(|t| t.as_str().map(str::to_string))
            .collect();
        assert!(
            printed.contains(&format!("customers: {}", customers as u64)),
            "{printed}"
        );
        assert!(printed.contains("plotted"), "{printed}");
        if embedded {
            assert!(
                printed.contains(&format!("embedded customers: {}", customers as u64)),
                "{printed}"
            );
        }
        assert!(
            std::fs::metadata(&plot).unwrap().len() > 1000,
            "the plot was saved"
        );
    }
}

fn as_str(v: &Value) -> &str {
    v.as_str().unwrap_or("")
}

fn http_get(url: &str) -> String {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    rt.block_on(async { reqwest::get(url).await.unwrap().text().await.unwrap() })
}
