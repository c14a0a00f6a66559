"""Merge-on-read deletes in an Iceberg table, committed by pyiceberg's own snapshot producer and
manifest writer. pyiceberg (0.12) writes only copy-on-write deletes itself, so its fast-append
producer is pointed at a delete manifest. Used by tests/source_formats.rs and
benches/sources/load_formats.sh."""

import os
import uuid

import pyarrow as pa
import pyarrow.parquet as pq
from pyiceberg.manifest import DataFile, DataFileContent, FileFormat, ManifestContent, ManifestWriterV2
from pyiceberg.table.snapshots import Operation
from pyiceberg.table.update.snapshot import _FastAppendFiles
from pyiceberg.typedef import Record

POSITION, EQUALITY = DataFileContent.POSITION_DELETES, DataFileContent.EQUALITY_DELETES

# Iceberg's reserved field ids of a position delete file's columns.
POSITION_SCHEMA = pa.schema([
    pa.field("file_path", pa.string(), nullable=False, metadata={"PARQUET:field_id": "2147483546"}),
    pa.field("pos", pa.int64(), nullable=False, metadata={"PARQUET:field_id": "2147483545"})])


class _DeleteManifestWriter(ManifestWriterV2):
    def content(self):
        return ManifestContent.DELETES

    @property
    def _meta(self):
        return {**ManifestWriterV2._meta.fget(self), "content": "deletes"}


class _AddDeletes(_FastAppendFiles):
    def new_manifest_writer(self, spec):
        return _DeleteManifestWriter(spec, self._transaction.table_metadata.schema(),
                                     self.new_manifest_output(), self._snapshot_id,
                                     self._compression)


def positions(paths, positions):
    """A position delete file's rows: (data file path, 0-based row position)."""
    return pa.table({"file_path": paths, "pos": positions}, schema=POSITION_SCHEMA)


def commit_delete(table, content, data, equality_ids=None):
    """Write `data` as a delete file of `content` into `table` and commit it as a new snapshot;
    returns the table at that snapshot."""
    path = f"{table.location()}/data/delete-{uuid.uuid4()}.parquet"
    local = path.removeprefix("file://")
    pq.write_table(data, local)
    f = DataFile.from_args(content=content, file_path=path, file_format=FileFormat.PARQUET,
                           partition=Record(), record_count=data.num_rows,
                           file_size_in_bytes=os.path.getsize(local), equality_ids=equality_ids)
    f.spec_id = table.metadata.default_spec_id
    with table.transaction() as tx:
        producer = _AddDeletes(operation=Operation.DELETE, transaction=tx, io=table.io)
        producer.append_data_file(f)
        producer.commit()
    return table.refresh()
