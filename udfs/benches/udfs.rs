//! Rows per second of the UDFs unification runs on every record or candidate pair, through
//! DataFusion as a query would call them (100,000 rows per iteration, one partition).

use std::sync::Arc;

use criterion::{criterion_group, criterion_main, Criterion, Throughput};
use datafusion::arrow::array::{RecordBatch, StringArray};
use datafusion::arrow::datatypes::{DataType, Field, Schema};
use datafusion::datasource::MemTable;
use datafusion::prelude::{SessionConfig, SessionContext};

const ROWS: usize = 100_000;

const FIRST: &[&str] = &[
    "Jonathan",
    "Bob",
    "Hans-Peter",
    "Marie-Claire",
    "Jürgen",
    "Ana",
    "Sem",
];
const LAST: &[&str] = &[
    "Smith",
    "van den Berg",
    "Müller",
    "García López",
    "O'Brien",
    "Dupont",
];

/// Deterministic messy customer values: names with case and diacritics, e-mails with dots
/// and tags, phones in national and international formats.
fn table() -> (Arc<Schema>, RecordBatch) {
    let mut first = Vec::with_capacity(ROWS);
    let mut last = Vec::with_capacity(ROWS);
    let mut email = Vec::with_capacity(ROWS);
    let mut phone = Vec::with_capacity(ROWS);
    let mut other = Vec::with_capacity(ROWS);
    for i in 0..ROWS {
        let f = FIRST[i % FIRST.len()];
        let l = LAST[(i / 7) % LAST.len()];
        first.push(if i % 3 == 0 {
            f.to_uppercase()
        } else {
            f.to_string()
        });
        last.push(l.to_string());
        email.push(format!(
            " {}.{}+shop{}@GoogleMail.com",
            f,
            l.replace(' ', ""),
            i % 97
        ));
        phone.push(if i % 2 == 0 {
            format!("06-{:08}", i * 7919 % 100_000_000)
        } else {
            format!("+31 6 {:08}", i * 7919 % 100_000_000)
        });
        other.push(format!("{}{}", &l[..l.len() - 1], i % 10));
    }
    let schema = Arc::new(Schema::new(vec![
        Field::new("first", DataType::Utf8, false),
        Field::new("last", DataType::Utf8, false),
        Field::new("email", DataType::Utf8, false),
        Field::new("phone", DataType::Utf8, false),
        Field::new("other", DataType::Utf8, false),
    ]));
    let batch = RecordBatch::try_new(
        schema.clone(),
        vec![
            Arc::new(StringArray::from(first)),
            Arc::new(StringArray::from(last)),
            Arc::new(StringArray::from(email)),
            Arc::new(StringArray::from(phone)),
            Arc::new(StringArray::from(other)),
        ],
    )
    .expect("valid batch");
    (schema, batch)
}

fn udfs(c: &mut Criterion) {
    let rt = tokio::runtime::Runtime::new().expect("runtime");
    let ctx = SessionContext::new_with_config(SessionConfig::new().with_target_partitions(1));
    panorama_udfs::register_all(&ctx);
    let (schema, batch) = table();
    let t = MemTable::try_new(schema, vec![vec![batch]]).expect("table");
    ctx.register_table("t", Arc::new(t)).expect("register");

    let mut group = c.benchmark_group("udf");
    group.throughput(Throughput::Elements(ROWS as u64));
    group.sample_size(10);
    for (name, expr) in [
        ("normalize_email", "normalize_email(email, true)"),
        ("normalize_phone", "normalize_phone(phone, 'NL')"),
        ("normalize_name", "normalize_name(last)"),
        ("canonical_first_name", "canonical_first_name(first)"),
        (
            "split_full_name",
            "split_full_name(last || ', ' || first)['first']",
        ),
        ("double_metaphone", "double_metaphone(last)"),
        ("jaro_winkler", "jaro_winkler(last, other)"),
        ("levenshtein_sim", "levenshtein_sim(last, other)"),
        (
            "damerau_levenshtein_sim",
            "damerau_levenshtein_sim(last, other)",
        ),
        ("token_jaccard", "token_jaccard(last, other)"),
        ("qgram_sim", "qgram_sim(last, other)"),
    ] {
        let sql = format!("SELECT count({expr}) FROM t");
        group.bench_function(name, |b| {
            b.iter(|| rt.block_on(async { ctx.sql(&sql).await.unwrap().collect().await.unwrap() }))
        });
    }
    group.finish();
}

criterion_group!(benches, udfs);
criterion_main!(benches);
