//! The lookup index a run leaves for `panorama serve`, so a lookup never scans Parquet:
//!
//! ```text
//! <run>/index/identifiers.parquet  kind (email|phone|record|cookie), value, customer_id
//!            /profiles.parquet     customer_profiles ordered by customer_id
//!            /timeline.parquet     activities ordered by customer_id, ts DESC, small pages
//! ```
//!
//! The server loads identifiers and profiles into hash maps and reads a page of a timeline
//! by row position (page index, one row group).

use std::collections::HashMap;
use std::fs::File;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use arrow::array::{Array, AsArray, RecordBatch};
use datafusion::parquet::arrow::arrow_reader::{
    ArrowReaderMetadata, ArrowReaderOptions, ParquetRecordBatchReaderBuilder, RowSelection,
    RowSelector,
};
use datafusion::parquet::file::properties::WriterProperties;
use datafusion::prelude::SessionContext;

use crate::error::{Error, Result};
use crate::table_catalog::names;

pub const DIR: &str = "index";

/// Identifier kinds a customer can be looked up by.
pub const KINDS: &[&str] = &["email", "phone", "record", "cookie"];

/// Parts of the previous run's index a run may link instead of writing them again (their
/// tables were made from the same inputs); the profiles are written every run.
#[derive(Debug, Default)]
pub struct Reuse {
    /// The previous run's `index/`.
    pub index: Option<PathBuf>,
    /// Records, links and identity graph as in the previous run.
    pub identifiers: bool,
    /// Activities as in the previous run.
    pub timeline: bool,
}

impl Reuse {
    /// Link `file` of the previous index into `to` when `same` and it is there.
    fn link(&self, same: bool, file: &str, to: &Path) -> Result<bool> {
        match &self.index {
            Some(dir) if same && dir.join(file).exists() => {
                crate::workspace::link_file(&dir.join(file), &to.join(file))?;
                Ok(true)
            }
            _ => Ok(false),
        }
    }
}

/// Write `<run_dir>/index/` from the run's tables, linking what `reuse` allows. Replaces an
/// older index atomically.
pub async fn build(run_dir: &Path, reuse: &Reuse) -> Result<()> {
    let tables_dir = run_dir.join("tables");
    let tables = crate::workspace::parquet_tables(&tables_dir)?;
    let has = |t: &str| tables.iter().any(|n| n == t);
    if !has(names::UNIFIED_CUSTOMERS) {
        return Ok(());
    }
    let ctx = crate::session::new_context();
    for t in &tables {
        crate::table_io::register_written(&ctx, &tables_dir, t).await?;
    }
    let profiles = if has(names::CUSTOMER_MEASURES) {
        let measures = ctx.table(names::CUSTOMER_MEASURES).await?.schema().clone();
        crate::analytics::measures::customer_profiles_sql(
            measures
                .fields()
                .iter()
                .map(|f| f.name().as_str())
                .filter(|n| *n != "customer_id"),
        )
    } else {
        "SELECT * FROM unified_customers".to_string()
    };
    // Where each profile value came from, beside it (the card shows it).
    let profiles = if has(names::UNIFIED_CUSTOMERS_PROVENANCE) {
        let columns = crate::unify::merge::provenance_columns()
            .iter()
            .map(|c| format!("v.{c}"))
            .collect::<Vec<_>>()
            .join(", ");
        format!(
            "SELECT p.*, {columns} FROM ({profiles}) p \
             LEFT JOIN unified_customers_provenance v ON v.customer_id = p.customer_id"
        )
    } else {
        profiles
    };
    let tmp = run_dir.join(format!("{DIR}.tmp"));
    let _ = std::fs::remove_dir_all(&tmp);
    std::fs::create_dir_all(&tmp).map_err(|e| Error::io("cannot create", &tmp, e))?;
    write_sorted(
        &ctx,
        &format!("SELECT * FROM ({profiles}) ORDER BY customer_id"),
        &tmp.join("profiles.parquet"),
    )
    .await?;
    if !reuse.link(reuse.identifiers, "identifiers.parquet", &tmp)? {
        write_identifiers(&ctx, has(names::IDENTITY_GRAPH), &tmp).await?;
    }
    if has(names::ACTIVITIES) && !reuse.link(reuse.timeline, "timeline.parquet", &tmp)? {
        write_sorted(
            &ctx,
            "SELECT customer_id, ts, type, activity_source, source, amount, details \
             FROM activities WHERE customer_id IS NOT NULL ORDER BY customer_id, ts DESC",
            &tmp.join("timeline.parquet"),
        )
        .await?;
    }
    let dir = run_dir.join(DIR);
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::rename(&tmp, &dir).map_err(|e| Error::io("cannot rename", &tmp, e))?;
    Ok(())
}

/// `identifiers.parquet` in `dir`: every e-mail, phone, record and cookie with its customer.
async fn write_identifiers(ctx: &SessionContext, identity_graph: bool, dir: &Path) -> Result<()> {
    let mut ids = vec![
        "SELECT 'email' AS kind, r.email AS value, l.customer_id FROM unify_records r \
         JOIN customer_links l ON r.uid = l.uid WHERE r.email IS NOT NULL"
            .to_string(),
        "SELECT 'phone', r.phone, l.customer_id FROM unify_records r \
         JOIN customer_links l ON r.uid = l.uid WHERE r.phone IS NOT NULL"
            .to_string(),
        "SELECT 'record', l.uid, l.customer_id FROM customer_links l".to_string(),
    ];
    if identity_graph {
        ids.push(
            "SELECT 'cookie', anonymous_id, customer_id FROM identity_graph \
             WHERE customer_id IS NOT NULL"
                .into(),
        );
    }
    write_sorted(
        ctx,
        &format!(
            "SELECT DISTINCT kind, value, customer_id FROM ({}) ORDER BY kind, value, customer_id",
            ids.join(" UNION ALL ")
        ),
        &dir.join("identifiers.parquet"),
    )
    .await
}

async fn write_sorted(ctx: &SessionContext, sql: &str, path: &Path) -> Result<()> {
    use futures::StreamExt;
    let err = |e| Error::query(format!("lookup index {}", path.display()), e);
    let mut stream = ctx
        .sql(sql)
        .await
        .map_err(err)?
        .execute_stream()
        .await
        .map_err(err)?;
    let file = File::create(path).map_err(|e| Error::io("cannot create", path, e))?;
    // Small row groups and pages: a timeline page reads a few KiB, not a row group.
    let props = WriterProperties::builder()
        .set_compression(datafusion::parquet::basic::Compression::SNAPPY)
        .set_max_row_group_row_count(Some(32 * 1024))
        .set_data_page_row_count_limit(512)
        .set_write_batch_size(512)
        .build();
    let mut w =
        datafusion::parquet::arrow::ArrowWriter::try_new(file, stream.schema(), Some(props))?;
    while let Some(b) = stream.next().await {
        w.write(&b.map_err(err)?)?;
    }
    w.close()?;
    Ok(())
}

/// A run's index in memory.
pub struct LookupIndex {
    /// Profiles, one row per customer, in customer id order.
    pub profiles: RecordBatch,
    rows: HashMap<String, u32>,
    identifiers: HashMap<&'static str, HashMap<String, Vec<u32>>>,
    names: HashMap<String, Vec<u32>>,
    /// Segment names, and each customer row's segments (indexes into it).
    pub segments: Vec<String>,
    pub segment_sizes: Vec<u64>,
    memberships: HashMap<u32, Vec<u32>>,
    timeline: Option<Timeline>,
}

struct Timeline {
    path: PathBuf,
    meta: ArrowReaderMetadata,
    /// Per profile row: first timeline row and count.
    spans: HashMap<u32, (u64, u32)>,
    row_group_starts: Vec<u64>,
}

impl LookupIndex {
    /// Load `<run_dir>/index/` (building it first when an older run has none).
    pub async fn load(run_dir: &Path) -> Result<Self> {
        let dir = run_dir.join(DIR);
        if !dir.join("profiles.parquet").exists() {
            build(run_dir, &Reuse::default()).await?;
        }
        if !dir.join("profiles.parquet").exists() {
            return Err(Error::NotFound(format!(
                "run {} has no unified customers to serve: add [unify] to the config and run again",
                run_dir.display()
            )));
        }
        let run_dir = run_dir.to_path_buf();
        tokio::task::spawn_blocking(move || Self::load_blocking(&run_dir))
            .await
            .map_err(|e| Error::Internal(format!("loading the lookup index: {e}")))?
    }

    fn load_blocking(run_dir: &Path) -> Result<Self> {
        let dir = run_dir.join(DIR);
        let batches = read_all(&dir.join("profiles.parquet"))?;
        let schema = batches
            .first()
            .map(|b| b.schema())
            .ok_or_else(|| Error::Internal("empty profile index".into()))?;
        let profiles = arrow::compute::concat_batches(&schema, &batches)?;
        let ids = string_column(&profiles, "customer_id")?;
        let mut rows = HashMap::with_capacity(profiles.num_rows());
        for (i, id) in ids.iter().enumerate() {
            if let Some(id) = id {
                rows.insert(id.to_string(), i as u32);
            }
        }
        let mut names: HashMap<String, Vec<u32>> = HashMap::new();
        let mut token = String::new();
        for col in ["first_name", "last_name"] {
            let Ok(values) = string_column(&profiles, col) else {
                continue;
            };
            for (i, v) in values.iter().enumerate() {
                let Some(v) = v else { continue };
                for word in v.split(|c: char| !c.is_alphanumeric()) {
                    token.clear();
                    if panorama_udfs::normalize::normalize_name_into(word, &mut token) {
                        let list = names.entry(token.clone()).or_default();
                        if list.last() != Some(&(i as u32)) {
                            list.push(i as u32);
                        }
                    }
                }
            }
        }
        for list in names.values_mut() {
            list.sort_unstable();
            list.dedup();
        }
        let mut identifiers: HashMap<&'static str, HashMap<String, Vec<u32>>> =
            KINDS.iter().map(|k| (*k, HashMap::new())).collect();
        for b in read_all(&dir.join("identifiers.parquet"))? {
            let kind = string_column(&b, "kind")?;
            let value = string_column(&b, "value")?;
            let customer = string_column(&b, "customer_id")?;
            for i in 0..b.num_rows() {
                let (Some(k), Some(v), Some(c)) =
                    (kind.value_at(i), value.value_at(i), customer.value_at(i))
                else {
                    continue;
                };
                let (Some(map), Some(row)) = (identifiers.get_mut(k), rows.get(c)) else {
                    continue;
                };
                map.entry(v.to_string()).or_default().push(*row);
            }
        }
        let (segments, segment_sizes, memberships) =
            load_segments(&run_dir.join("tables/segment_members.parquet"), &rows)?;
        let timeline_path = dir.join("timeline.parquet");
        let timeline = if timeline_path.exists() {
            Some(Timeline::load(timeline_path, &rows)?)
        } else {
            None
        };
        Ok(LookupIndex {
            profiles,
            rows,
            identifiers,
            names,
            segments,
            segment_sizes,
            memberships,
            timeline,
        })
    }

    /// An index of no customers, for a run without unification.
    pub fn empty() -> Self {
        let schema = Arc::new(arrow::datatypes::Schema::new(vec![
            arrow::datatypes::Field::new("customer_id", arrow::datatypes::DataType::Utf8, false),
        ]));
        LookupIndex {
            profiles: RecordBatch::new_empty(schema),
            rows: HashMap::new(),
            identifiers: HashMap::new(),
            names: HashMap::new(),
            segments: Vec::new(),
            segment_sizes: Vec::new(),
            memberships: HashMap::new(),
            timeline: None,
        }
    }

    pub fn customers(&self) -> usize {
        self.profiles.num_rows()
    }

    /// The profile row of a customer id.
    pub fn row(&self, customer_id: &str) -> Option<u32> {
        self.rows.get(customer_id).copied()
    }

    /// The customer id of a profile row.
    pub fn customer_id(&self, row: u32) -> Option<String> {
        let col = self.profiles.column_by_name("customer_id")?;
        let row = row as usize;
        if row >= col.len() || col.is_null(row) {
            return None;
        }
        match col.as_string_opt::<i32>() {
            Some(ids) => Some(ids.value(row).to_string()),
            None => col.as_string_view_opt().map(|v| v.value(row).to_string()),
        }
    }

    /// Profile rows whose `kind` identifier is `value`, already normalized as unification
    /// normalizes it.
    pub fn by_identifier(&self, kind: &str, value: &str) -> &[u32] {
        self.identifiers
            .get(kind)
            .and_then(|m| m.get(value))
            .map_or(&[], |v| v.as_slice())
    }

    /// Rows whose first or last name holds every word of `query`, at most `limit`.
    pub fn by_name(&self, query: &str, limit: usize) -> Vec<u32> {
        let mut token = String::new();
        let mut lists: Vec<&Vec<u32>> = Vec::new();
        for word in query.split(|c: char| !c.is_alphanumeric()) {
            token.clear();
            if panorama_udfs::normalize::normalize_name_into(word, &mut token) {
                match self.names.get(&token) {
                    Some(l) => lists.push(l),
                    None => return Vec::new(),
                }
            }
        }
        lists.sort_by_key(|l| l.len());
        let Some((first, rest)) = lists.split_first() else {
            return Vec::new();
        };
        first
            .iter()
            .filter(|r| rest.iter().all(|l| l.binary_search(r).is_ok()))
            .take(limit)
            .copied()
            .collect()
    }

    /// Names of the segments a profile row is in.
    pub fn segments_of(&self, row: u32) -> Vec<&str> {
        self.memberships
            .get(&row)
            .map(|s| {
                s.iter()
                    .map(|i| self.segments[*i as usize].as_str())
                    .collect()
            })
            .unwrap_or_default()
    }

    /// How many timeline entries a profile row has.
    pub fn timeline_len(&self, row: u32) -> u64 {
        self.timeline
            .as_ref()
            .and_then(|t| t.spans.get(&row))
            .map_or(0, |s| s.1 as u64)
    }

    /// Entries `offset..offset+limit` of a profile row's timeline, newest first.
    pub fn timeline_page(
        &self,
        row: u32,
        offset: u64,
        limit: usize,
    ) -> Result<Option<RecordBatch>> {
        let Some(t) = &self.timeline else {
            return Ok(None);
        };
        let Some(&(start, len)) = t.spans.get(&row) else {
            return Ok(None);
        };
        if offset >= len as u64 || limit == 0 {
            return Ok(None);
        }
        let from = start + offset;
        let n = (len as u64 - offset).min(limit as u64);
        t.read(from, n).map(Some)
    }
}

impl Timeline {
    fn load(path: PathBuf, rows: &HashMap<String, u32>) -> Result<Self> {
        let file = File::open(&path).map_err(|e| Error::io("cannot open", &path, e))?;
        let meta = ArrowReaderMetadata::load(
            &file,
            ArrowReaderOptions::new().with_page_index_policy(
                datafusion::parquet::file::metadata::PageIndexPolicy::Required,
            ),
        )?;
        let mut row_group_starts = Vec::new();
        let mut at = 0u64;
        for rg in meta.metadata().row_groups() {
            row_group_starts.push(at);
            at += rg.num_rows() as u64;
        }
        // One pass over the customer column gives each customer's span.
        let mut spans: HashMap<u32, (u64, u32)> = HashMap::new();
        let builder = ParquetRecordBatchReaderBuilder::new_with_metadata(file, meta.clone());
        let mask = datafusion::parquet::arrow::ProjectionMask::columns(
            builder.parquet_schema(),
            ["customer_id"],
        );
        let mut pos = 0u64;
        for b in builder.with_projection(mask).build()? {
            let b = b?;
            let ids = string_column(&b, "customer_id")?;
            for i in 0..b.num_rows() {
                if let Some(row) = ids.value_at(i).and_then(|c| rows.get(c)) {
                    let e = spans.entry(*row).or_insert((pos, 0));
                    e.1 += 1;
                }
                pos += 1;
            }
        }
        Ok(Timeline {
            path,
            meta,
            spans,
            row_group_starts,
        })
    }

    fn read(&self, from: u64, n: u64) -> Result<RecordBatch> {
        let end = from + n;
        let groups: Vec<usize> = (0..self.row_group_starts.len())
            .filter(|&g| {
                let s = self.row_group_starts[g];
                let e = self
                    .row_group_starts
                    .get(g + 1)
                    .copied()
                    .unwrap_or(u64::MAX);
                s < end && from < e
            })
            .collect();
        let first = self.row_group_starts[groups[0]];
        let total: u64 = groups
            .iter()
            .map(|&g| self.meta.metadata().row_group(g).num_rows() as u64)
            .sum();
        let skip = (from - first) as usize;
        let selection = RowSelection::from(vec![
            RowSelector::skip(skip),
            RowSelector::select(n as usize),
            RowSelector::skip(total as usize - skip - n as usize),
        ]);
        let file = File::open(&self.path).map_err(|e| Error::io("cannot open", &self.path, e))?;
        let reader = ParquetRecordBatchReaderBuilder::new_with_metadata(file, self.meta.clone())
            .with_row_groups(groups)
            .with_row_selection(selection)
            .build()?;
        let batches = reader.collect::<std::result::Result<Vec<_>, _>>()?;
        let schema = Arc::new(self.meta.schema().as_ref().clone());
        Ok(arrow::compute::concat_batches(&schema, &batches)?)
    }
}

/// Segment names, their sizes, and each profile row's segments (indexes into the names).
type Segments = (Vec<String>, Vec<u64>, HashMap<u32, Vec<u32>>);

fn load_segments(path: &Path, rows: &HashMap<String, u32>) -> Result<Segments> {
    let mut names: Vec<String> = Vec::new();
    let mut sizes: Vec<u64> = Vec::new();
    let mut ids: HashMap<String, u32> = HashMap::new();
    let mut memberships: HashMap<u32, Vec<u32>> = HashMap::new();
    if !path.exists() {
        return Ok((names, sizes, memberships));
    }
    for b in read_all(path)? {
        let seg = string_column(&b, "segment")?;
        let customer = string_column(&b, "customer_id")?;
        for i in 0..b.num_rows() {
            let (Some(s), Some(c)) = (seg.value_at(i), customer.value_at(i)) else {
                continue;
            };
            let id = *ids.entry(s.to_string()).or_insert_with(|| {
                names.push(s.to_string());
                sizes.push(0);
                names.len() as u32 - 1
            });
            sizes[id as usize] += 1;
            if let Some(row) = rows.get(c) {
                memberships.entry(*row).or_default().push(id);
            }
        }
    }
    Ok((names, sizes, memberships))
}

fn read_all(path: &Path) -> Result<Vec<RecordBatch>> {
    crate::workspace::read_parquet_file(path)
}

/// A string column of any string type, read uniformly.
pub(crate) struct Strings<'a>(StringsInner<'a>);

enum StringsInner<'a> {
    Utf8(&'a arrow::array::StringArray),
    Large(&'a arrow::array::LargeStringArray),
    View(&'a arrow::array::StringViewArray),
}

impl<'a> Strings<'a> {
    pub fn value_at(&self, i: usize) -> Option<&'a str> {
        match &self.0 {
            StringsInner::Utf8(a) => a.is_valid(i).then(|| a.value(i)),
            StringsInner::Large(a) => a.is_valid(i).then(|| a.value(i)),
            StringsInner::View(a) => a.is_valid(i).then(|| a.value(i)),
        }
    }
    pub fn iter(&self) -> impl Iterator<Item = Option<&'a str>> + '_ {
        let n = match &self.0 {
            StringsInner::Utf8(a) => a.len(),
            StringsInner::Large(a) => a.len(),
            StringsInner::View(a) => a.len(),
        };
        (0..n).map(|i| self.value_at(i))
    }
}

pub(crate) fn string_column<'a>(b: &'a RecordBatch, name: &str) -> Result<Strings<'a>> {
    let col = b
        .column_by_name(name)
        .ok_or_else(|| Error::Internal(format!("lookup index: no column {name}")))?;
    let inner = match col.data_type() {
        arrow::datatypes::DataType::Utf8 => StringsInner::Utf8(col.as_string::<i32>()),
        arrow::datatypes::DataType::LargeUtf8 => StringsInner::Large(col.as_string::<i64>()),
        arrow::datatypes::DataType::Utf8View => StringsInner::View(col.as_string_view()),
        other => {
            return Err(Error::Internal(format!(
                "lookup index: column {name} is {other}, not a string"
            )))
        }
    };
    Ok(Strings(inner))
}
