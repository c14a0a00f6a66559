"""The `panorama` Python package against a demo project that `panorama run` made, each value
checked against the CLI's own answer (`panorama query`). Run by python_package.rs with the
wheel installed; PANORAMA_TEST_PROJECT and PANORAMA_BIN name the project and the CLI."""

import csv
import io
import os
import subprocess

import pyarrow as pa
import pytest

import panorama

PROJECT = os.environ["PANORAMA_TEST_PROJECT"]
BIN = os.environ["PANORAMA_BIN"]


def cli(sql):
    out = subprocess.run(
        [BIN, "query", "-p", PROJECT, "--format", "csv", sql],
        check=True, capture_output=True, text=True,
    ).stdout
    return list(csv.DictReader(io.StringIO(out)))


@pytest.fixture(scope="module")
def project():
    return panorama.open(PROJECT)


def test_opens_the_current_run_with_its_tables(project):
    current = cli("SELECT run_id FROM runs WHERE status = 'succeeded' ORDER BY started_at DESC LIMIT 1")
    assert project.run_id == current[0]["run_id"]
    tables = project.tables()
    for t in ["unified_customers", "customer_links", "match_pairs", "crm_contacts", "runs"]:
        assert t in tables
    assert repr(project).startswith("<panorama.Project ")


def test_sql_returns_a_pyarrow_table_equal_to_the_cli(project):
    t = project.sql(
        "SELECT customer_id, email, city FROM unified_customers ORDER BY customer_id LIMIT 20"
    )
    assert isinstance(t, pa.Table)
    assert t.column_names == ["customer_id", "email", "city"]
    expected = cli(
        "SELECT customer_id, email, city FROM unified_customers ORDER BY customer_id LIMIT 20"
    )
    got = t.to_pylist()
    assert [r["customer_id"] for r in got] == [r["customer_id"] for r in expected]
    assert [r["email"] or "" for r in got] == [r["email"] for r in expected]
    n = project.sql("SELECT count(*) AS n FROM unified_customers").column("n")[0].as_py()
    assert n == int(cli("SELECT count(*) AS n FROM unified_customers")[0]["n"])
    # pandas, as a notebook would.
    df = project.sql("SELECT segment, count(*) AS members FROM segment_members GROUP BY segment").to_pandas()
    assert set(df.columns) == {"segment", "members"}
    assert df["members"].sum() == int(cli("SELECT count(*) AS n FROM segment_members")[0]["n"])


def test_empty_results_keep_their_schema(project):
    t = project.sql("SELECT customer_id, email FROM unified_customers WHERE false")
    assert t.num_rows == 0
    assert t.schema.names == ["customer_id", "email"]


def test_explain_gives_the_comparisons_of_a_matched_pair(project):
    pair = project.sql(
        "SELECT left_uid, right_uid, match_weight FROM match_pairs ORDER BY match_weight DESC, left_uid LIMIT 1"
    ).to_pylist()[0]
    t = project.explain(pair["left_uid"], pair["right_uid"])
    assert isinstance(t, pa.Table)
    assert {"comparison", "level", "weight_bits"} <= set(t.column_names)
    # The last row is the decision, with the pair's total weight.
    decision = [r for r in t.to_pylist() if r["comparison"] == "decision"]
    assert len(decision) == 1
    assert decision[0]["level"].startswith("MATCH")
    assert decision[0]["weight_bits"] == pytest.approx(pair["match_weight"], abs=1e-2)


def test_errors_are_panorama_errors_with_the_reason(project, tmp_path):
    with pytest.raises(panorama.PanoramaError, match="no_such_table"):
        project.sql("SELECT * FROM no_such_table")
    with pytest.raises(panorama.PanoramaError, match="no panorama.toml"):
        panorama.open(tmp_path)
    # The project is still usable after an error.
    assert project.sql("SELECT 1 AS one").column("one")[0].as_py() == 1


def test_run_then_refresh(project):
    before = project.run_id
    summary = project.run(full=True, progress=False)
    assert summary["run_id"] != before
    assert project.run_id == summary["run_id"]
    customers = project.sql("SELECT count(*) AS n FROM unified_customers").column("n")[0].as_py()
    assert summary["customers"] == customers
    assert summary["rows_loaded"]["crm_contacts"] == int(
        cli("SELECT rows_loaded FROM source_stats WHERE source = 'crm_contacts'")[0]["rows_loaded"]
    )
    # A run made by the CLI is seen after refresh().
    subprocess.run([BIN, "run", "-p", PROJECT, "-q", "--full"], check=True)
    project.refresh()
    latest = cli("SELECT run_id FROM runs WHERE status = 'succeeded' ORDER BY started_at DESC LIMIT 1")
    assert project.run_id == latest[0]["run_id"] != summary["run_id"]
