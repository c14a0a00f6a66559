//! The lookup index a run leaves for `panorama serve`, so a lookup never scans Parquet:
//!
//! ```text
//! <run>/index/identifiers.arrow  kind (email|phone|record|cookie), value, customer_id, sorted
//!            /customers.arrow    customer_id, sorted: row i is profile row i
//!            /profiles.arrow     customer_profiles ordered by customer_id, 64 rows a batch
//!            /timeline.parquet   activities ordered by customer_id, ts DESC, small pages
//! ```
//!
//! The server maps the two sorted key files into memory and binary-searches them, reads a
//! profile's batch of 64 rows when it is asked for ([`files`]: Arrow IPC, uncompressed), and
//! reads a page of a timeline by row position (page index, one row group). In its own memory
//! is only what each profile row needs beside the files: its segments, its timeline's place,
//! and the words of its names (for a search by name).

mod files;

use std::collections::HashMap;
use std::fs::File;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use arrow::array::{Array, RecordBatch};
use datafusion::parquet::arrow::arrow_reader::{
    ArrowReaderMetadata, ArrowReaderOptions, ParquetRecordBatchReaderBuilder, RowSelection,
    RowSelector,
};
use datafusion::parquet::file::properties::WriterProperties;
use datafusion::prelude::SessionContext;

use crate::error::{Error, Result};
use crate::table_catalog::names;
use files::{Mapped, Output, Paged};

pub const DIR: &str = "index";
const PROFILES: &str = "profiles.arrow";
const CUSTOMERS: &str = "customers.arrow";
/// Profile rows read together: one lookup reads ~45 KB of a 1M-customer index (64 rows of ~40
/// columns and the batch's IPC metadata).
const PROFILE_BATCH_ROWS: usize = 64;
/// Rows per batch of the key files: a row's batch is a division away, not a search.
const KEY_BATCH_ROWS: usize = 64 * 1024;
const IDENTIFIERS: &str = "identifiers.arrow";

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
    // Where the build's time goes, per file (at 10M it was 281 s of a 1,484 s run).
    let mut started = std::time::Instant::now();
    let mut done = |part: &str, linked: bool| {
        tracing::info!(
            part,
            linked,
            seconds = started.elapsed().as_secs_f64(),
            "lookup index part written"
        );
        started = std::time::Instant::now();
    };
    files::write(
        rows(
            &ctx,
            &format!(
                "SELECT * FROM ({profiles}) WHERE customer_id IS NOT NULL ORDER BY customer_id"
            ),
            &tmp.join(PROFILES),
        )
        .await?,
        &["customer_id"],
        false,
        &[
            Output {
                path: &tmp.join(PROFILES),
                columns: None,
                batch_rows: PROFILE_BATCH_ROWS,
            },
            Output {
                path: &tmp.join(CUSTOMERS),
                columns: Some(&["customer_id"]),
                batch_rows: KEY_BATCH_ROWS,
            },
        ],
    )
    .await?;
    done("profiles and customer ids", false);
    let linked = reuse.link(reuse.identifiers, IDENTIFIERS, &tmp)?;
    if !linked {
        write_identifiers(&ctx, has(names::IDENTITY_GRAPH), &tmp).await?;
    }
    done("identifiers", linked);
    if has(names::ACTIVITIES) {
        let linked = reuse.link(reuse.timeline, "timeline.parquet", &tmp)?;
        if !linked {
            write_timeline(
                &ctx,
                "SELECT customer_id, ts, type, activity_source, source, amount, details \
                 FROM activities WHERE customer_id IS NOT NULL ORDER BY customer_id, ts DESC",
                &tmp.join("timeline.parquet"),
            )
            .await?;
        }
        done("timeline", linked);
    }
    let dir = run_dir.join(DIR);
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::rename(&tmp, &dir).map_err(|e| Error::io("cannot rename", &tmp, e))?;
    Ok(())
}

/// `identifiers.arrow` in `dir`: every e-mail, phone, record and cookie with its customer.
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
    let path = dir.join(IDENTIFIERS);
    // Sorted, repeats left out as they are written (no DISTINCT: see `files::write`).
    let sql = format!(
        "SELECT kind, value, customer_id FROM ({}) \
         WHERE value IS NOT NULL AND customer_id IS NOT NULL \
         ORDER BY kind, value, customer_id",
        ids.join(" UNION ALL ")
    );
    files::write(
        rows(ctx, &sql, &path).await?,
        &["kind", "value", "customer_id"],
        true,
        &[Output {
            path: &path,
            columns: None,
            batch_rows: KEY_BATCH_ROWS,
        }],
    )
    .await
}

/// The rows of `sql`, streamed; errors name the index file they were for.
async fn rows(
    ctx: &SessionContext,
    sql: &str,
    path: &Path,
) -> Result<datafusion::physical_plan::SendableRecordBatchStream> {
    let err = |e| Error::query(format!("lookup index {}", path.display()), e);
    ctx.sql(sql)
        .await
        .map_err(err)?
        .execute_stream()
        .await
        .map_err(err)
}

/// The timeline as Parquet with small pages, read a page at a time by row position.
async fn write_timeline(ctx: &SessionContext, sql: &str, path: &Path) -> Result<()> {
    use futures::StreamExt;
    let mut stream = rows(ctx, sql, path).await?;
    let err = |e| Error::query(format!("lookup index {}", path.display()), e);
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

/// A run's index, as the server holds it: the key files mapped, profiles read when asked for,
/// and what each profile row needs beside its columns in memory.
pub struct LookupIndex {
    /// Customer ids in order (row i is profile row i); None for a run without customers.
    customers: Option<Mapped>,
    /// Profiles, one row per customer, in customer id order.
    profiles: Option<Paged>,
    /// Identifiers sorted by kind, value and customer; None when there are none.
    identifiers: Option<Mapped>,
    /// A name word → the profile rows whose first or last name has it, ascending.
    names: HashMap<String, Vec<u32>>,
    /// Segment names, and their sizes.
    pub segments: Vec<String>,
    pub segment_sizes: Vec<u64>,
    /// Row r's segments are `member_of[member_at[r]..member_at[r + 1]]` (indexes into
    /// `segments`): two flat arrays, 4 bytes a membership, where a map of vectors took ~40.
    member_at: Vec<u32>,
    member_of: Vec<u32>,
    timeline: Option<Timeline>,
}

struct Timeline {
    path: PathBuf,
    meta: ArrowReaderMetadata,
    /// Per profile row: its first timeline row and how many it has.
    start: Vec<u64>,
    len: Vec<u32>,
    row_group_starts: Vec<u64>,
}

impl LookupIndex {
    /// Load `<run_dir>/index/` (building it first when an older run has none, or one written
    /// before the index was mapped).
    pub async fn load(run_dir: &Path) -> Result<Self> {
        let dir = run_dir.join(DIR);
        let complete = || [PROFILES, CUSTOMERS].iter().all(|f| dir.join(f).exists());
        if !complete() {
            build(run_dir, &Reuse::default()).await?;
            // The build's queries freed ~1.5 GB at 1M that glibc would otherwise keep for
            // the server's lifetime (measured: 1.57 GB heap after, 0.09 GB without a build).
            #[cfg(all(target_os = "linux", target_env = "gnu"))]
            // SAFETY: malloc_trim only returns free memory to the system.
            unsafe {
                libc::malloc_trim(0);
            }
        }
        if !complete() {
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
        let customers = Mapped::open(&dir.join(CUSTOMERS))?;
        let profiles = Paged::open(&dir.join(PROFILES))?;
        let n = customers.num_rows();
        customers.expect_columns(&["customer_id"])?;
        let identifiers = match dir.join(IDENTIFIERS) {
            p if p.exists() => Some(Mapped::open(&p)?),
            _ => None,
        };
        if let Some(ids) = &identifiers {
            ids.expect_columns(&["kind", "value", "customer_id"])?;
        }
        let started = std::time::Instant::now();
        let names = name_words(&profiles, n)?;
        let names_s = started.elapsed().as_secs_f64();
        // Customer id → profile row while loading; dropped before serving.
        let rows: HashMap<&str, u32> = customers
            .strings(0)
            .enumerate()
            .filter_map(|(i, id)| Some((id?, i as u32)))
            .collect();
        let (segments, segment_sizes, member_at, member_of) =
            load_segments(&run_dir.join("tables/segment_members.parquet"), &rows, n)?;
        let segments_s = started.elapsed().as_secs_f64() - names_s;
        let timeline_path = dir.join("timeline.parquet");
        let timeline = if timeline_path.exists() {
            Some(Timeline::load(timeline_path, &rows, n)?)
        } else {
            None
        };
        drop(rows);
        tracing::info!(
            customers = n,
            seconds = started.elapsed().as_secs_f64(),
            name_words = names_s,
            segments = segments_s,
            "lookup index loaded"
        );
        Ok(LookupIndex {
            customers: Some(customers),
            profiles: Some(profiles),
            identifiers,
            names,
            segments,
            segment_sizes,
            member_at,
            member_of,
            timeline,
        })
    }

    /// An index of no customers, for a run without unification.
    pub fn empty() -> Self {
        LookupIndex {
            customers: None,
            profiles: None,
            identifiers: None,
            names: HashMap::new(),
            segments: Vec::new(),
            segment_sizes: Vec::new(),
            member_at: Vec::new(),
            member_of: Vec::new(),
            timeline: None,
        }
    }

    pub fn customers(&self) -> usize {
        self.customers.as_ref().map_or(0, Mapped::num_rows)
    }

    /// The profile row of a customer id.
    pub fn row(&self, customer_id: &str) -> Option<u32> {
        let c = self.customers.as_ref()?;
        let at = c.lower_bound(|r| files::cmp_nulls_last(c.str_at(0, r), Some(customer_id)));
        (at < c.num_rows() && c.str_at(0, at) == Some(customer_id)).then_some(at as u32)
    }

    /// The customer id of a profile row.
    pub fn customer_id(&self, row: u32) -> Option<String> {
        let c = self.customers.as_ref()?;
        if row as usize >= c.num_rows() {
            return None;
        }
        c.str_at(0, row as usize).map(str::to_string)
    }

    /// A profile row's columns: the batch it was read with from the profiles file, and its
    /// row in that batch (not sliced out: a slice of ~80 columns cost a lookup ~3% of its CPU).
    pub fn profile(&self, row: u32) -> Result<Option<(RecordBatch, usize)>> {
        match &self.profiles {
            Some(p) if (row as usize) < self.customers() => p.row(row as usize).map(Some),
            _ => Ok(None),
        }
    }

    /// Profile rows whose `kind` identifier is `value`, already normalized as unification
    /// normalizes it, in customer id order.
    pub fn by_identifier(&self, kind: &str, value: &str) -> Vec<u32> {
        let Some(ids) = &self.identifiers else {
            return Vec::new();
        };
        let (k, v, c) = (0, 1, 2); // kind, value, customer_id, checked when loaded
        let target = |r: usize| {
            files::cmp_nulls_last(ids.str_at(k, r), Some(kind))
                .then_with(|| files::cmp_nulls_last(ids.str_at(v, r), Some(value)))
        };
        let mut out = Vec::new();
        let mut r = ids.lower_bound(target);
        while r < ids.num_rows() && target(r).is_eq() {
            if let Some(row) = ids.str_at(c, r).and_then(|id| self.row(id)) {
                out.push(row);
            }
            r += 1;
        }
        out
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
        let r = row as usize;
        match (self.member_at.get(r), self.member_at.get(r + 1)) {
            (Some(&a), Some(&b)) => self.member_of[a as usize..b as usize]
                .iter()
                .map(|i| self.segments[*i as usize].as_str())
                .collect(),
            _ => Vec::new(),
        }
    }

    /// How many timeline entries a profile row has.
    pub fn timeline_len(&self, row: u32) -> u64 {
        self.timeline
            .as_ref()
            .and_then(|t| t.len.get(row as usize))
            .map_or(0, |n| *n as u64)
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
        let (Some(&start), Some(&len)) = (t.start.get(row as usize), t.len.get(row as usize))
        else {
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

/// Each word of the profiles' first and last names (normalized as a search normalizes it) →
/// the rows that have it, ascending; one pass over the profiles, a batch at a time.
fn name_words(profiles: &Paged, customers: usize) -> Result<HashMap<String, Vec<u32>>> {
    let mut names: HashMap<String, Vec<u32>> = HashMap::new();
    let cols: Vec<usize> = ["first_name", "last_name"]
        .iter()
        .filter_map(|c| profiles.column(c).ok())
        .collect();
    let mut token = String::new();
    let mut rows = 0usize;
    for (b, batch) in profiles.scan(cols)?.enumerate() {
        let batch = batch?;
        let first = b * profiles.batch_rows();
        for values in batch.columns() {
            let values = values.as_ref();
            for i in 0..batch.num_rows() {
                let Some(v) = files::string_value(values, i) else {
                    continue;
                };
                let row = (first + i) as u32;
                for word in v.split(|c: char| !c.is_alphanumeric()) {
                    token.clear();
                    if panorama_udfs::normalize::normalize_name_into(word, &mut token) {
                        let list = names.entry(token.clone()).or_default();
                        if list.last() != Some(&row) {
                            list.push(row);
                        }
                    }
                }
            }
        }
        rows += batch.num_rows();
    }
    if rows != customers {
        return Err(Error::Internal(format!(
            "{} holds {rows} profiles for {customers} customer ids: delete the directory and \
             it is built again from the run's tables when served",
            profiles.path().display()
        )));
    }
    for list in names.values_mut() {
        list.sort_unstable();
        list.dedup();
        list.shrink_to_fit();
    }
    Ok(names)
}

impl Timeline {
    fn load(path: PathBuf, rows: &HashMap<&str, u32>, profiles: usize) -> Result<Self> {
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
        // One pass over the customer column gives each customer's span (the file is ordered
        // by customer, so a customer's entries are together).
        let mut start = vec![0u64; profiles];
        let mut len = vec![0u32; profiles];
        let builder = ParquetRecordBatchReaderBuilder::new_with_metadata(file, meta.clone());
        let mask = datafusion::parquet::arrow::ProjectionMask::columns(
            builder.parquet_schema(),
            ["customer_id"],
        );
        let mut pos = 0u64;
        for b in builder.with_projection(mask).build()? {
            let b = b?;
            let ids = crate::output::string_column(&b, "customer_id")?;
            for i in 0..b.num_rows() {
                if let Some(&row) = (!ids.is_null(i))
                    .then(|| ids.value(i))
                    .and_then(|c| rows.get(c))
                {
                    let r = row as usize;
                    if len[r] == 0 {
                        start[r] = pos;
                    }
                    len[r] += 1;
                }
                pos += 1;
            }
        }
        Ok(Timeline {
            path,
            meta,
            start,
            len,
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

/// Segment names, their sizes, and each profile row's segments as offsets into one list.
type Segments = (Vec<String>, Vec<u64>, Vec<u32>, Vec<u32>);

fn load_segments(path: &Path, rows: &HashMap<&str, u32>, profiles: usize) -> Result<Segments> {
    let mut names: Vec<String> = Vec::new();
    let mut sizes: Vec<u64> = Vec::new();
    let mut ids: HashMap<String, u32> = HashMap::new();
    // (profile row, segment), sorted into the flat lists below.
    let mut pairs: Vec<(u32, u32)> = Vec::new();
    if path.exists() {
        // Streamed, two columns: read whole, the 10M demo's 30 M memberships took the
        // server's start to a 1.9 GB peak.
        let file = File::open(path).map_err(|e| Error::io("cannot open", path, e))?;
        let builder = ParquetRecordBatchReaderBuilder::try_new(file)?;
        let mask = datafusion::parquet::arrow::ProjectionMask::columns(
            builder.parquet_schema(),
            ["segment", "customer_id"],
        );
        for b in builder.with_projection(mask).build()? {
            let b = b?;
            let seg = crate::output::string_column(&b, "segment")?;
            let customer = crate::output::string_column(&b, "customer_id")?;
            for i in 0..b.num_rows() {
                if seg.is_null(i) || customer.is_null(i) {
                    continue;
                }
                let (s, c) = (seg.value(i), customer.value(i));
                // Looked up before inserting: an owned key per membership (30 M at 10M)
                // was most of the load's 28 s there.
                let id = match ids.get(s) {
                    Some(id) => *id,
                    None => {
                        names.push(s.to_string());
                        sizes.push(0);
                        ids.insert(s.to_string(), names.len() as u32 - 1);
                        names.len() as u32 - 1
                    }
                };
                sizes[id as usize] += 1;
                if let Some(row) = rows.get(c) {
                    pairs.push((*row, id));
                }
            }
        }
    }
    pairs.sort_unstable();
    let mut member_at = Vec::with_capacity(profiles + 1);
    let member_of: Vec<u32> = pairs.iter().map(|p| p.1).collect();
    let mut k = 0usize;
    for r in 0..=profiles as u32 {
        while k < pairs.len() && pairs[k].0 < r {
            k += 1;
        }
        member_at.push(k as u32);
    }
    Ok((names, sizes, member_at, member_of))
}
