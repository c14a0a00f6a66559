//! Making a project: `quickstart`, `init` (from data with `--from`), `doctor`, `demo`.

use std::path::{Path, PathBuf};

use panorama::error::{Error, Result};

use super::run::run_summary;
use super::Globals;
use panorama::config::ProjectConfig;
use panorama::demo::{self, DemoOptions};
use panorama::output::{write_batches, OutputFormat};
use panorama::run::{run_project, RunOptions};
use panorama::session::open_project;
use panorama::table_catalog::names;

/// `panorama init`: a config guessed from data (`--from`), else a starter project.
pub async fn init(
    g: &Globals,
    dir: PathBuf,
    from: Vec<String>,
    dry_run: bool,
    force: bool,
    sample_rows: usize,
) -> Result<()> {
    let quiet = g.quiet;
    if from.is_empty() {
        panorama::project::init(&dir)?;
        if !quiet {
            println!(
                "Created {}. Next: panorama run --project {0} && panorama tables --project {0}",
                dir.display()
            );
        }
        return Ok(());
    }
    let opts = panorama::init_from::InitFromOptions {
        dir: dir.clone(),
        from,
        sample_rows: sample_rows.max(1),
    };
    let done = panorama::init_from::init(opts, dry_run, force).await?;
    if dry_run {
        print!("{}", done.config);
    }
    if !quiet {
        eprint!("{}", done.summary);
        if !dry_run {
            eprintln!(
                "Wrote {}. Next: panorama doctor -p {1} && panorama run -p {1}",
                dir.join(panorama::config::CONFIG_FILE).display(),
                dir.display()
            );
        }
    }
    Ok(())
}

/// `panorama doctor`: check a project against its data without a run; fails on errors.
pub async fn doctor(g: &Globals, sample_rows: usize) -> Result<()> {
    let cfg = g.config()?;
    let diagnosis = panorama::doctor::diagnose(&cfg, sample_rows).await?;
    print!("{}", diagnosis.report(&cfg));
    if diagnosis.errors() > 0 {
        return Err(Error::Partial(format!(
            "{} error(s) in {}",
            diagnosis.errors(),
            cfg.path.display()
        )));
    }
    Ok(())
}

/// `panorama demo`: write a demo project with ground truth.
pub async fn demo(
    g: &Globals,
    persons: usize,
    out: PathBuf,
    seed: u64,
    postgres: Option<String>,
) -> Result<()> {
    let quiet = g.quiet;
    let report = demo::generate(&DemoOptions {
        persons,
        out: out.clone(),
        seed,
        postgres,
        quiet,
    })
    .await?;
    if !quiet {
        println!("{}", report.summary());
        println!("Next: panorama run --project {}", out.display());
    }
    Ok(())
}

pub async fn quickstart(
    dir: Option<PathBuf>,
    persons: usize,
    seed: u64,
    quiet: bool,
) -> Result<()> {
    let dir = match dir {
        Some(d) => d,
        None => std::env::temp_dir().join(format!("panorama-quickstart-{}", std::process::id())),
    };
    if dir.join("panorama.toml").exists() {
        return Err(Error::Conflict(format!(
            "{} already holds a project; pick another directory",
            dir.display()
        )));
    }
    if !quiet {
        println!(
            "Generating a demo retail project for {persons} people in {} ...",
            dir.display()
        );
    }
    let report = demo::generate(&DemoOptions {
        persons,
        out: dir.clone(),
        seed,
        postgres: None,
        quiet,
    })
    .await?;
    if !quiet {
        println!("{}", report.summary());
    }
    let cfg = ProjectConfig::load(&dir)?;
    let outcome = run_project(
        &cfg,
        &RunOptions {
            quiet,
            ..Default::default()
        },
    )
    .await?;
    if quiet {
        return Ok(());
    }
    print!("{}", run_summary(&cfg, &outcome));
    let (ctx, _) = open_project(&cfg, None).await?;
    let example = "SELECT country, count(*) AS contacts, count(DISTINCT normalize_email(email)) AS distinct_emails \
                   FROM crm_contacts GROUP BY country ORDER BY contacts DESC";
    println!("\nContacts per country in the CRM:\n  {example}");
    let batches = ctx.sql(example).await?.collect().await?;
    write_batches(&batches, OutputFormat::Table, &mut std::io::stdout().lock())?;
    let unified = "SELECT customer_id, first_name, last_name, email, city, source_count, record_count \
                   FROM unified_customers ORDER BY source_count DESC, record_count DESC, customer_id LIMIT 5";
    println!("\nOne profile per person, merged from several sources:\n  {unified}");
    let batches = ctx.sql(unified).await?.collect().await?;
    write_batches(&batches, OutputFormat::Table, &mut std::io::stdout().lock())?;
    panorama::unify::register_truth(&ctx, &dir.join("truth.csv")).await?;
    println!("\nAccuracy against the generator's ground truth (panorama eval):");
    let batches = ctx.sql(panorama::unify::EVAL_SQL).await?.collect().await?;
    write_batches(&batches, OutputFormat::Table, &mut std::io::stdout().lock())?;
    if ctx.table_exist(names::SEGMENT_SIZES)? {
        println!("\nSegments (panorama segments), from measures such as RFM and lifetime spend:");
        let batches = ctx
            .sql(panorama::analytics::SEGMENTS_SQL)
            .await?
            .collect()
            .await?;
        write_batches(&batches, OutputFormat::Table, &mut std::io::stdout().lock())?;
    }
    print!("{}", next_steps(&dir));
    Ok(())
}

fn next_steps(dir: &Path) -> String {
    let p = dir.display();
    format!(
        "\nWhat to try next (the binary is target/release/panorama; put it on your PATH):
  panorama tables   --project {p}
  panorama query    --project {p} \"SELECT * FROM customer_links WHERE customer_id = 'cus_000000001'\"
  panorama explain  --project {p} crm_contacts:C0000001 webshop_customers:W0000001
  panorama query    --project {p} \"SELECT * FROM match_weights\"     (the learned match model)
  panorama eval     --project {p} --truth {p}/truth.csv
  panorama query    --project {p} \"SELECT * FROM customer_profiles WHERE rfm_group = 'champions' LIMIT 5\"
  panorama query    --project {p} \"SELECT * FROM business_measures\"
  panorama query    --project {p} \"SELECT model, metric, value, baseline, grade FROM prediction_grades WHERE grade IS NOT NULL\"
  panorama segment  --project {p} win_back --preview
  panorama refresh  --project {p} --as-of 2027-01-01      (measures and segments, no re-matching)
  panorama export   --project {p} --all                   (files under {p}/exports; see export_log)
  panorama journeys --project {p}                         (messages into the outbox, delivered once)
  panorama privacy  --project {p} access --email <an e-mail from unified_customers>
  panorama describe --project {p} webshop_customers
  panorama query    --project {p} \"SELECT * FROM rejects LIMIT 5\"
  panorama query    --project {p} \"SELECT expectation, passed, observed FROM data_quality\"   (checked every run)
  panorama profile  --project {p} webshop_orders        (a source's columns profiled, without a run)
  panorama query    --project {p} \"SELECT * FROM funnel('type = ''product_view''', 'type = ''add_to_cart''', 'type = ''order''')\"
  panorama query    --project {p} \"SELECT model, channel, round(sum(share), 3) AS share FROM attribution_results GROUP BY model, channel ORDER BY model, share DESC\"   (which channels earn the orders, 8 models)
  panorama query    --project {p} \"SELECT tier, count(*), avg(points) FROM loyalty_members GROUP BY tier\" --format csv
  panorama sql      --project {p}        (interactive shell)
  panorama serve    --project {p}        (psql -h 127.0.0.1 -p 5433 -d panorama; http://127.0.0.1:8080/ and /console)
  panorama report   --project {p} --out report.html   (the run's charts in one offline file)
  Config: {p}/panorama.toml (keys explained in docs/config.md)
"
    )
}
