//! The index's Arrow IPC files (uncompressed), read two ways so that what a server holds stays
//! small however many customers it serves:
//!
//! - [`Mapped`]: a sorted key table (customer ids, identifiers) memory-mapped; a lookup is a
//!   binary search touching a few pages of it. [`write`] checks the order as it writes, so a
//!   reader trusts it without reading the whole file.
//! - [`Paged`]: wide rows (profiles) in batches of a fixed number of rows; a lookup reads the
//!   one batch its row is in (`pread`, ~45 KB at 1M customers) and drops it when answered.
//!   Mapped, 100,000 random lookups at 1M touched nearly every page of the 525 MB file (a
//!   lookup reads one value from each of ~40 columns, each on its own page) and the server's
//!   resident memory grew by as much.

use std::cmp::Ordering;
use std::collections::HashMap;
use std::fs::File;
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use arrow::array::{Array, AsArray, RecordBatch, StringArray};
use arrow::buffer::{Buffer, MutableBuffer};
use arrow::datatypes::{DataType, SchemaRef};
use arrow::ipc::reader::FileDecoder;
use arrow::ipc::writer::FileWriter;
use arrow::ipc::{convert::fb_to_schema, reader::read_footer_length, root_as_footer, Block};

use crate::error::{Error, Result};

/// Footer metadata of a paged file: its rows per batch.
const BATCH_ROWS: &str = "panorama.batch_rows";

/// What an IPC file's footer says.
struct Footer {
    schema: SchemaRef,
    version: arrow::ipc::MetadataVersion,
    dictionaries: Vec<Block>,
    batches: Vec<Block>,
    metadata: HashMap<String, String>,
}

impl Footer {
    /// Parse the footer of a file of `size` bytes; `read(at, len)` gives its bytes.
    fn read(
        path: &Path,
        size: usize,
        read: impl Fn(usize, usize) -> Result<Buffer>,
    ) -> Result<Self> {
        let bad = |what: String| Error::Internal(format!("{}: {what}", path.display()));
        if size < 10 {
            return Err(bad("not an Arrow IPC file (too short)".into()));
        }
        let trailer = read(size - 10, 10)?;
        let footer_len = read_footer_length(
            trailer
                .as_slice()
                .try_into()
                .map_err(|_| bad("no IPC footer".into()))?,
        )
        .map_err(|e| bad(format!("not an Arrow IPC file: {e}")))?;
        if footer_len > size - 10 {
            return Err(bad("IPC footer longer than the file".into()));
        }
        let bytes = read(size - 10 - footer_len, footer_len)?;
        let footer =
            root_as_footer(&bytes).map_err(|e| bad(format!("unreadable IPC footer: {e}")))?;
        let schema = Arc::new(fb_to_schema(
            footer
                .schema()
                .ok_or_else(|| bad("IPC footer without a schema".into()))?,
        ));
        let data_end = size - 10 - footer_len;
        // Each block checked to lie within the data.
        let checked = |blocks: &mut dyn Iterator<Item = &Block>| -> Result<Vec<Block>> {
            blocks
                .map(|b| {
                    let (at, len) = block_range(b);
                    match at.checked_add(len) {
                        Some(end) if end <= data_end => Ok(*b),
                        _ => Err(bad(format!("a block at byte {at} runs past the data"))),
                    }
                })
                .collect()
        };
        let dictionaries = checked(&mut footer.dictionaries().iter().flatten())?;
        let batches = checked(&mut footer.recordBatches().iter().flatten())?;
        Ok(Footer {
            schema,
            version: footer.version(),
            dictionaries,
            batches,
            metadata: footer
                .custom_metadata()
                .iter()
                .flatten()
                .filter_map(|kv| Some((kv.key()?.to_string(), kv.value()?.to_string())))
                .collect(),
        })
    }

    /// The rows per batch the file was written with.
    fn batch_rows(&self, path: &Path) -> Result<usize> {
        self.metadata
            .get(BATCH_ROWS)
            .and_then(|v| v.parse::<usize>().ok())
            .filter(|n| *n > 0)
            .ok_or_else(|| {
                Error::Internal(format!("{}: no {BATCH_ROWS} in its footer", path.display()))
            })
    }
}

/// A decoder of a file's batches that trusts its arrays.
fn trusted_decoder(schema: SchemaRef, version: arrow::ipc::MetadataVersion) -> FileDecoder {
    // Arrays are not validated: that reads every byte (UTF-8 checks), which took the 1M
    // server's resident pages from ~0.1 to 0.77 GB before its first lookup.
    // SAFETY: the files are written by `write` below into the run's index directory, from
    // arrays DataFusion built; blocks are checked to lie within the file.
    unsafe { FileDecoder::new(schema, version).with_skip_validation(true) }
}

fn block_range(b: &Block) -> (usize, usize) {
    (
        b.offset() as usize,
        b.metaDataLength() as usize + b.bodyLength() as usize,
    )
}

/// A sorted key table mapped into memory: string columns in batches of a fixed number of
/// rows, pointing into the mapping.
pub struct Mapped {
    path: PathBuf,
    schema: SchemaRef,
    /// Per column, its array in each batch.
    columns: Vec<Vec<StringArray>>,
    batch_rows: usize,
    rows: usize,
}

impl Mapped {
    /// Map `path`. Nothing is read but the footer and each batch's metadata.
    pub fn open(path: &Path) -> Result<Self> {
        let file = File::open(path).map_err(|e| Error::io("cannot open", path, e))?;
        // SAFETY: the index's files are written under a temporary name and renamed into
        // place, never changed afterwards; a newer index replaces the directory, and a file
        // unlinked while mapped stays readable until it is unmapped.
        let map =
            unsafe { memmap2::Mmap::map(&file) }.map_err(|e| Error::io("cannot map", path, e))?;
        // A binary search touches a few pages: read-ahead would only fill memory with neighbours.
        let _ = map.advise(memmap2::Advice::Random);
        let buffer = Buffer::from(bytes::Bytes::from_owner(map));
        let footer = Footer::read(path, buffer.len(), |at, len| {
            Ok(buffer.slice_with_length(at, len))
        })?;
        let batch_rows = footer.batch_rows(path)?;
        // Zero-copy or an error: a copy of misaligned data would be heap after all.
        let decoder =
            trusted_decoder(footer.schema.clone(), footer.version).with_require_alignment(true);
        let mut columns: Vec<Vec<StringArray>> = vec![Vec::new(); footer.schema.fields().len()];
        let mut rows = 0;
        for (i, block) in footer.batches.iter().enumerate() {
            let (at, len) = block_range(block);
            let Some(b) = decoder
                .read_record_batch(block, &buffer.slice_with_length(at, len))
                .map_err(|e| Error::Internal(format!("{}: batch {i}: {e}", path.display())))?
            else {
                continue;
            };
            let last = i + 1 == footer.batches.len();
            if b.num_rows() != batch_rows && !last {
                return Err(Error::Internal(format!(
                    "{}: batch {i} has {} rows, not {batch_rows}",
                    path.display(),
                    b.num_rows()
                )));
            }
            rows += b.num_rows();
            for (c, a) in b.columns().iter().enumerate() {
                let strings = a.as_string_opt::<i32>().ok_or_else(|| {
                    Error::Internal(format!(
                        "{}: column {} is {}, not Utf8",
                        path.display(),
                        footer.schema.field(c).name(),
                        a.data_type()
                    ))
                })?;
                columns[c].push(strings.clone());
            }
        }
        Ok(Mapped {
            path: path.to_path_buf(),
            schema: footer.schema,
            columns,
            batch_rows,
            rows,
        })
    }

    pub fn num_rows(&self) -> usize {
        self.rows
    }

    /// Check that the columns are `names`, in that order (readers address them by position).
    pub fn expect_columns(&self, names: &[&str]) -> Result<()> {
        let found: Vec<&str> = self
            .schema
            .fields()
            .iter()
            .map(|f| f.name().as_str())
            .collect();
        if found != names {
            return Err(Error::Internal(format!(
                "{} has columns {}, not {}",
                self.path.display(),
                found.join(", "),
                names.join(", ")
            )));
        }
        Ok(())
    }

    /// The string in column `col` at `row`, None when null.
    pub fn str_at(&self, col: usize, row: usize) -> Option<&str> {
        let a = &self.columns[col][row / self.batch_rows];
        let i = row % self.batch_rows;
        (!a.is_null(i)).then(|| a.value(i))
    }

    /// Every value of column `col`, in row order.
    pub fn strings(&self, col: usize) -> impl Iterator<Item = Option<&str>> + '_ {
        self.columns[col].iter().flat_map(|a| a.iter())
    }

    /// The first row whose key is not less than the target, for a file sorted by that key
    /// (`key(row)` compares that row's key to the target).
    pub fn lower_bound(&self, key: impl Fn(usize) -> Ordering) -> usize {
        let (mut lo, mut hi) = (0, self.num_rows());
        while lo < hi {
            let mid = lo + (hi - lo) / 2;
            if key(mid) == Ordering::Less {
                lo = mid + 1;
            } else {
                hi = mid;
            }
        }
        lo
    }
}

/// Wide rows in batches of a fixed number of rows, read a batch at a time.
pub struct Paged {
    path: PathBuf,
    file: File,
    schema: SchemaRef,
    version: arrow::ipc::MetadataVersion,
    dictionaries: Vec<Block>,
    decoder: FileDecoder,
    batches: Vec<Block>,
    batch_rows: usize,
}

impl Paged {
    /// Open `path` and read its footer.
    pub fn open(path: &Path) -> Result<Self> {
        let file = File::open(path).map_err(|e| Error::io("cannot open", path, e))?;
        let size = file
            .metadata()
            .map_err(|e| Error::io("cannot read", path, e))?
            .len() as usize;
        let footer = Footer::read(path, size, |at, len| read_at(&file, path, at, len))?;
        let batch_rows = footer.batch_rows(path)?;
        let decoder = dictionaries_read(
            trusted_decoder(footer.schema.clone(), footer.version),
            &footer.dictionaries,
            &file,
            path,
        )?;
        Ok(Paged {
            path: path.to_path_buf(),
            file,
            decoder,
            schema: footer.schema,
            version: footer.version,
            dictionaries: footer.dictionaries,
            batches: footer.batches,
            batch_rows,
        })
    }

    /// Every batch in order with only `columns` decoded (a pass over the file at load: the
    /// name words of 9.3 M profiles read 2 of ~40 columns).
    pub fn scan(
        &self,
        columns: Vec<usize>,
    ) -> Result<impl Iterator<Item = Result<RecordBatch>> + '_> {
        let decoder = dictionaries_read(
            trusted_decoder(self.schema.clone(), self.version).with_projection(columns),
            &self.dictionaries,
            &self.file,
            &self.path,
        )?;
        Ok((0..self.batches.len()).map(move |b| self.decode(&decoder, b)))
    }

    /// The index of `name` in the schema.
    pub fn column(&self, name: &str) -> Result<usize> {
        column(&self.schema, name, &self.path)
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Rows per batch: batch `b` holds rows from `b * batch_rows()`.
    pub fn batch_rows(&self) -> usize {
        self.batch_rows
    }

    /// Batch `b`, read from the file.
    pub fn batch(&self, b: usize) -> Result<RecordBatch> {
        self.decode(&self.decoder, b)
    }

    fn decode(&self, decoder: &FileDecoder, b: usize) -> Result<RecordBatch> {
        let block = self
            .batches
            .get(b)
            .ok_or_else(|| Error::Internal(format!("{}: no batch {b}", self.path.display())))?;
        let (at, len) = block_range(block);
        let data = read_at(&self.file, &self.path, at, len)?;
        decoder
            .read_record_batch(block, &data)
            .map_err(|e| Error::Internal(format!("{}: batch {b}: {e}", self.path.display())))?
            .ok_or_else(|| Error::Internal(format!("{}: batch {b} is empty", self.path.display())))
    }

    /// The batch row `row` is in, and its place in it.
    pub fn row(&self, row: usize) -> Result<(RecordBatch, usize)> {
        let b = self.batch(row / self.batch_rows)?;
        let i = row % self.batch_rows;
        if i >= b.num_rows() {
            return Err(Error::Internal(format!(
                "{}: no row {row}",
                self.path.display()
            )));
        }
        Ok((b, i))
    }
}

/// `decoder` with the file's dictionaries read into it.
fn dictionaries_read(
    mut decoder: FileDecoder,
    dictionaries: &[Block],
    file: &File,
    path: &Path,
) -> Result<FileDecoder> {
    for block in dictionaries {
        let (at, len) = block_range(block);
        decoder
            .read_dictionary(block, &read_at(file, path, at, len)?)
            .map_err(|e| Error::Internal(format!("{}: {e}", path.display())))?;
    }
    Ok(decoder)
}

/// `len` bytes at `at`, into a buffer aligned as Arrow arrays want it.
fn read_at(file: &File, path: &Path, at: usize, len: usize) -> Result<Buffer> {
    let mut buf = MutableBuffer::from_len_zeroed(len);
    file.read_exact_at(buf.as_slice_mut(), at as u64)
        .map_err(|e| Error::io("cannot read", path, e))?;
    Ok(buf.into())
}

fn column(schema: &SchemaRef, name: &str, path: &Path) -> Result<usize> {
    schema
        .index_of(name)
        .map_err(|_| Error::Internal(format!("{}: no column {name}", path.display())))
}

/// The string at `i`, None when null or not a string array.
pub fn string_value(a: &dyn Array, i: usize) -> Option<&str> {
    if a.is_null(i) {
        return None;
    }
    match a.data_type() {
        DataType::Utf8 => Some(a.as_string::<i32>().value(i)),
        DataType::LargeUtf8 => Some(a.as_string::<i64>().value(i)),
        DataType::Utf8View => Some(a.as_string_view().value(i)),
        _ => None,
    }
}

/// Strings in sort order with NULLs last, as `ORDER BY` writes them by default.
pub fn cmp_nulls_last(a: Option<&str>, b: Option<&str>) -> Ordering {
    match (a, b) {
        (Some(a), Some(b)) => a.cmp(b),
        (None, None) => Ordering::Equal,
        (None, Some(_)) => Ordering::Greater,
        (Some(_), None) => Ordering::Less,
    }
}

/// One file [`write`] makes of the rows.
pub struct Output<'a> {
    pub path: &'a Path,
    /// Only these columns (all when None).
    pub columns: Option<&'a [&'a str]>,
    /// Batches of exactly this many rows (the last fewer): a reader finds a row's batch by
    /// division.
    pub batch_rows: usize,
}

/// One output being written.
struct Writing<'a> {
    out: &'a Output<'a>,
    projection: Option<Vec<usize>>,
    schema: SchemaRef,
    writer: FileWriter<std::io::BufWriter<File>>,
    pending: Vec<RecordBatch>,
    pending_rows: usize,
}

impl Writing<'_> {
    fn push(&mut self, b: &RecordBatch) -> Result<()> {
        let b = match &self.projection {
            Some(p) => b.project(p)?,
            None => b.clone(),
        };
        let columns = b
            .columns()
            .iter()
            .zip(self.schema.fields())
            .map(|(c, f)| match c.data_type() == f.data_type() {
                true => Ok(c.clone()),
                false => arrow::compute::cast(c, f.data_type()),
            })
            .collect::<std::result::Result<Vec<_>, _>>()?;
        let b = RecordBatch::try_new(self.schema.clone(), columns)?;
        let n = self.out.batch_rows;
        let mut at = 0;
        while at < b.num_rows() {
            let take = (n - self.pending_rows).min(b.num_rows() - at);
            self.pending.push(b.slice(at, take));
            self.pending_rows += take;
            at += take;
            if self.pending_rows == n {
                self.flush()?;
            }
        }
        Ok(())
    }

    /// Write what is pending as one batch (copied, so it holds only its own rows).
    fn flush(&mut self) -> Result<()> {
        if self.pending_rows > 0 {
            let b = arrow::compute::concat_batches(&self.schema, &self.pending)?;
            self.writer.write(&b)?;
        }
        self.pending.clear();
        self.pending_rows = 0;
        Ok(())
    }

    fn finish(mut self) -> Result<()> {
        self.flush()?;
        self.writer
            .write_metadata(BATCH_ROWS, self.out.batch_rows.to_string());
        self.writer.finish()?;
        let path = self.out.path;
        self.writer
            .into_inner()?
            .into_inner()
            .map_err(|e| Error::io("cannot write", path, e.into_error()))?
            .sync_all()
            .map_err(|e| Error::io("cannot sync", path, e))
    }
}

/// Write the rows of `stream` to each of `outputs`, checking that they come in the order of
/// the string columns `sorted_by` (readers binary-search them). With `distinct`, a row equal
/// to the one before it on `sorted_by` is a repeat and left out: a `DISTINCT` the sort has
/// already done (at 10M the identifiers' `SELECT DISTINCT` hashed ~45 M rows before sorting
/// them: 178 s of a 289 s index build).
pub async fn write(
    mut stream: datafusion::physical_plan::SendableRecordBatchStream,
    sorted_by: &[&str],
    distinct: bool,
    outputs: &[Output<'_>],
) -> Result<()> {
    use futures::StreamExt;
    let schema = stream.schema();
    let name = outputs
        .first()
        .map_or_else(String::new, |o| o.path.display().to_string());
    let index_of = |c: &str| {
        schema
            .index_of(c)
            .map_err(|_| Error::Internal(format!("lookup index {name}: no column {c}")))
    };
    let keys = sorted_by
        .iter()
        .map(|c| index_of(c))
        .collect::<Result<Vec<_>>>()?;
    let mut writing = Vec::new();
    for out in outputs {
        let projection = match out.columns {
            Some(cols) => Some(
                cols.iter()
                    .map(|c| index_of(c))
                    .collect::<Result<Vec<_>>>()?,
            ),
            None => None,
        };
        let projected = match &projection {
            Some(p) => schema.project(p)?,
            None => schema.as_ref().clone(),
        };
        // Strings of every kind as Utf8, the one readers take.
        let schema = Arc::new(arrow::datatypes::Schema::new(
            projected
                .fields()
                .iter()
                .map(|f| match f.data_type() {
                    DataType::Utf8View | DataType::LargeUtf8 => {
                        f.as_ref().clone().with_data_type(DataType::Utf8)
                    }
                    _ => f.as_ref().clone(),
                })
                .collect::<Vec<_>>(),
        ));
        let file = File::create(out.path).map_err(|e| Error::io("cannot create", out.path, e))?;
        writing.push(Writing {
            out,
            projection,
            writer: FileWriter::try_new(std::io::BufWriter::new(file), &schema)?,
            schema,
            pending: Vec::new(),
            pending_rows: 0,
        });
    }
    // Two rows of (possibly different) batches compared by the sort columns.
    let order = |a: &RecordBatch, i: usize, b: &RecordBatch, j: usize| {
        keys.iter()
            .map(|c| {
                cmp_nulls_last(
                    string_value(a.column(*c).as_ref(), i),
                    string_value(b.column(*c).as_ref(), j),
                )
            })
            .find(|o| o.is_ne())
            .unwrap_or(Ordering::Equal)
    };
    // The previous batch's last row.
    let mut last: Option<RecordBatch> = None;
    let mut rows = 0usize;
    while let Some(b) = stream.next().await {
        let b = b.map_err(|e| Error::query(format!("lookup index {name}"), e))?;
        let mut keep: Option<Vec<bool>> = None;
        for i in 0..b.num_rows() {
            let o = match (i, &last) {
                (0, Some(l)) => order(l, 0, &b, 0),
                (0, None) => Ordering::Less,
                _ => order(&b, i - 1, &b, i),
            };
            if o == Ordering::Greater {
                return Err(Error::Internal(format!(
                    "lookup index {name}: row {} is out of order by {}",
                    rows + i,
                    sorted_by.join(", ")
                )));
            }
            if distinct && o == Ordering::Equal {
                keep.get_or_insert_with(|| vec![true; b.num_rows()])[i] = false;
            }
        }
        if b.num_rows() > 0 {
            last = Some(b.slice(b.num_rows() - 1, 1));
        }
        rows += b.num_rows();
        let b = match keep {
            Some(k) => arrow::compute::filter_record_batch(&b, &k.into())?,
            None => b,
        };
        for w in &mut writing {
            w.push(&b)?;
        }
    }
    for w in writing {
        w.finish()?;
    }
    Ok(())
}
#[cfg(test)]
mod tests {
    use super::*;
    use arrow::array::{Int64Array, StringViewArray};
    use arrow::datatypes::{Field, Schema};
    use datafusion::physical_plan::stream::RecordBatchStreamAdapter;

    /// A stream of batches of (id, n), n counting rows from 0; ids as string views (files
    /// hold them as Utf8).
    fn stream(
        batches: Vec<Vec<Option<&str>>>,
    ) -> datafusion::physical_plan::SendableRecordBatchStream {
        let schema = Arc::new(Schema::new(vec![
            Field::new("id", DataType::Utf8View, true),
            Field::new("n", DataType::Int64, false),
        ]));
        let mut n = 0i64;
        let batches: Vec<_> = batches
            .into_iter()
            .map(|v| {
                let ns: Vec<i64> = (n..n + v.len() as i64).collect();
                n += v.len() as i64;
                Ok(RecordBatch::try_new(
                    schema.clone(),
                    vec![
                        Arc::new(StringViewArray::from(v)),
                        Arc::new(Int64Array::from(ns)),
                    ],
                )
                .unwrap())
            })
            .collect();
        Box::pin(RecordBatchStreamAdapter::new(
            schema,
            futures::stream::iter(batches),
        ))
    }

    #[tokio::test]
    async fn keys_mapped_and_rows_paged_across_batches() {
        let dir = tempfile::tempdir().unwrap();
        let (keys, rows) = (dir.path().join("ids.arrow"), dir.path().join("rows.arrow"));
        let batches = vec![
            vec![Some("a"), Some("c"), Some("c")],
            vec![],
            vec![Some("d"), Some("f")],
            vec![Some("g"), None],
        ];
        let outputs = [
            Output {
                path: &keys,
                columns: Some(&["id"]),
                batch_rows: 3,
            },
            Output {
                path: &rows,
                columns: None,
                batch_rows: 2,
            },
        ];
        write(stream(batches), &["id"], false, &outputs)
            .await
            .unwrap();

        let m = Mapped::open(&keys).unwrap();
        m.expect_columns(&["id"]).unwrap();
        assert!(m.expect_columns(&["id", "n"]).is_err());
        assert_eq!(m.num_rows(), 7);
        let find = |v: &str| m.lower_bound(|r| cmp_nulls_last(m.str_at(0, r), Some(v)));
        // The first row not less than the value, in whichever batch it is.
        assert_eq!(
            ["a", "b", "c", "d", "e", "f", "g", "h"].map(find),
            [0, 1, 1, 3, 4, 4, 5, 6]
        );
        assert_eq!((m.str_at(0, 4), m.str_at(0, 6)), (Some("f"), None));
        assert_eq!(
            m.strings(0).collect::<Vec<_>>(),
            [
                Some("a"),
                Some("c"),
                Some("c"),
                Some("d"),
                Some("f"),
                Some("g"),
                None
            ]
        );

        // Paged: batches of exactly two rows (the last one), whatever batches came in.
        let p = Paged::open(&rows).unwrap();
        assert_eq!(p.batch_rows(), 2);
        // A scan of one column: every batch in order, only that column decoded.
        let scanned: Vec<RecordBatch> = p.scan(vec![1]).unwrap().map(Result::unwrap).collect();
        assert_eq!(
            scanned.iter().map(|b| b.num_rows()).collect::<Vec<_>>(),
            [2, 2, 2, 1]
        );
        assert!(scanned.iter().all(|b| b.num_columns() == 1));
        let n = scanned[3]
            .column(0)
            .as_primitive::<arrow::datatypes::Int64Type>();
        assert_eq!(n.value(0), 6);
        for r in 0..7 {
            let (batch, i) = p.row(r).unwrap();
            assert_eq!((batch.num_rows(), i), (if r < 6 { 2 } else { 1 }, r % 2));
            let n = batch
                .column(1)
                .as_primitive::<arrow::datatypes::Int64Type>();
            assert_eq!(n.value(i), r as i64);
            assert_eq!(string_value(batch.column(0).as_ref(), i), m.str_at(0, r));
        }
        assert!(p.row(7).is_err());
        // A file without the batch size in its footer is refused.
        let plain = dir.path().join("plain.arrow");
        let schema = Schema::new(vec![Field::new("id", DataType::Utf8, true)]);
        FileWriter::try_new(File::create(&plain).unwrap(), &schema)
            .unwrap()
            .finish()
            .unwrap();
        let e = Paged::open(&plain).err().unwrap().to_string();
        assert!(e.contains("no panorama.batch_rows"), "{e}");
        assert!(Mapped::open(&plain).is_err());
    }

    #[tokio::test]
    async fn distinct_leaves_out_repeats_within_and_across_batches() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("ids.arrow");
        let out = [Output {
            path: &path,
            columns: Some(&["id"]),
            batch_rows: 2,
        }];
        let ids = vec![
            vec![Some("a"), Some("a"), Some("c")],
            vec![Some("c")],
            vec![Some("c"), Some("d"), None, None],
        ];
        write(stream(ids.clone()), &["id"], true, &out)
            .await
            .unwrap();
        let m = Mapped::open(&path).unwrap();
        assert_eq!(
            m.strings(0).collect::<Vec<_>>(),
            [Some("a"), Some("c"), Some("d"), None]
        );
        // Without it every row is written.
        write(stream(ids), &["id"], false, &out).await.unwrap();
        assert_eq!(Mapped::open(&path).unwrap().num_rows(), 8);
    }

    #[tokio::test]
    async fn rows_out_of_order_are_refused() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("bad.arrow");
        let out = [Output {
            path: &path,
            columns: None,
            batch_rows: 3,
        }];
        // At a batch boundary: an error naming the row.
        let bad = vec![vec![Some("a"), Some("c")], vec![Some("b")]];
        let e = write(stream(bad), &["id"], false, &out)
            .await
            .unwrap_err()
            .to_string();
        assert!(e.contains("row 2 is out of order by id"), "{e}");
        // NULLs sort last, as ORDER BY writes them.
        let nulls_first = vec![vec![None, Some("a")]];
        assert!(write(stream(nulls_first), &["id"], false, &out)
            .await
            .is_err());
        // A file cut short is an error, not a crash.
        let good = vec![vec![Some("a"), Some("b")]];
        write(stream(good), &["id"], false, &out).await.unwrap();
        let bytes = std::fs::read(&path).unwrap();
        let cut = dir.path().join("cut.arrow");
        std::fs::write(&cut, &bytes[..bytes.len() / 2]).unwrap();
        assert!(Mapped::open(&cut).is_err());
    }
}
