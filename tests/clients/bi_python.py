"""What Python BI and app clients do against `panorama serve`, printed as one JSON object.

    python3 bi_python.py HOST PORT
    python3 bi_python.py tls HOST PORT USER PASSWORD CAFILE [OLD_USER OLD_PASSWORD]

Each client runs the calls a BI tool or notebook makes (SQLAlchemy with psycopg2 and
psycopg 3 as Superset and pandas use it, psqlODBC through pyodbc as Power BI, Excel and
Tableau do, asyncpg as apps do); every call's result, or {"error": "..."}, goes under its
name. A missing module is {"missing": "name"}. The script itself only fails on bad usage.
"""
import asyncio
import json
import sys


def call(out, name, f):
    try:
        out[name] = f()
    except Exception as e:  # noqa: BLE001 - reported to the caller
        out[name] = {"error": f"{type(e).__name__}: {str(e).splitlines()[0]}"}


def tls_suite(host, port, user, password, cafile, *legacy):
    """SQLAlchemy over TLS (the server's certificate checked against `cafile`) with a
    password, and with a wrong one."""
    out = {}
    try:
        import pandas as pd
        import sqlalchemy as sa
    except ImportError as e:
        return {"missing": str(e)}
    tls = f"sslmode=verify-full&sslrootcert={cafile}"
    engine = sa.create_engine(f"postgresql+psycopg2://{user}:{password}@{host}:{port}/panorama?{tls}")
    with engine.connect() as c:
        call(out, "ssl", lambda: c.connection.dbapi_connection.info.ssl_in_use)
        call(out, "pk", lambda: sa.inspect(c).get_pk_constraint("segment_members")["constrained_columns"])
        call(out, "read_sql", lambda: pd.read_sql(
            sa.text("SELECT count(*) AS n FROM segment_members WHERE segment = :s"), c,
            params={"s": "champions"})["n"].tolist())
    # libpq 16+ refuses a server that asks for anything but SCRAM when told so.
    import psycopg
    base = f"host={host} port={port} dbname=panorama sslmode=verify-full sslrootcert={cafile}"
    def scram_only():
        with psycopg.connect(f"{base} user={user} password={password} require_auth=scram-sha-256") as c:
            return c.execute("SELECT count(*) FROM unified_customers").fetchone()[0]
    call(out, "scram_only", scram_only)
    if legacy:
        def cleartext_only():
            with psycopg.connect(f"{base} user={legacy[0]} password={legacy[1]} require_auth=password") as c:
                return c.execute("SELECT 1").fetchone()[0]
        call(out, "legacy_cleartext", cleartext_only)
    wrong = sa.create_engine(f"postgresql+psycopg2://{user}:wrong-{password}@{host}:{port}/panorama?{tls}")
    def refused_login():
        with wrong.connect() as c:
            return c.execute(sa.text("SELECT 1")).scalar()
    call(out, "wrong_password", refused_login)
    return out


def sqlalchemy_suite(driver, host, port):
    out = {}
    try:
        import pandas as pd
        import sqlalchemy as sa
    except ImportError as e:
        return {"missing": str(e)}
    engine = sa.create_engine(f"postgresql+{driver}://analyst@{host}:{port}/panorama")
    with engine.connect() as c:
        call(out, "server_version_info", lambda: list(engine.dialect.server_version_info))
        insp = sa.inspect(c)
        call(out, "schemas", insp.get_schema_names)
        call(out, "tables", lambda: sorted(insp.get_table_names()))
        call(out, "views", lambda: sorted(insp.get_view_names()))
        call(out, "columns", lambda: [c["name"] for c in insp.get_columns("unified_customers")])
        call(out, "column_comment", lambda: {c["name"]: c.get("comment") for c in insp.get_columns("unified_customers")}["customer_id"])
        call(out, "pk", lambda: insp.get_pk_constraint("segment_members")["constrained_columns"])
        call(out, "fks", lambda: [(f["constrained_columns"], f["referred_table"], f["referred_columns"]) for f in insp.get_foreign_keys("segment_members")])
        call(out, "indexes", lambda: insp.get_indexes("unified_customers"))
        call(out, "unique", lambda: insp.get_unique_constraints("unified_customers"))
        call(out, "table_comment", lambda: insp.get_table_comment("unified_customers")["text"])
        call(out, "has_table", lambda: insp.has_table("unified_customers"))
        # Reading pg_roles overflowed the server's stack and aborted it (datafusion-pg-catalog
        # 0.19); pgjdbc's privilege calls join it.
        call(out, "roles_join", lambda: c.execute(sa.text(
            "SELECT count(*) FROM pg_catalog.pg_class c "
            "JOIN pg_catalog.pg_roles r ON c.relowner = r.oid")).scalar())
        call(out, "read_sql", lambda: pd.read_sql(
            sa.text("SELECT count(*) AS n FROM segment_members WHERE segment = :s"), c,
            params={"s": "champions"})["n"].tolist())
        call(out, "read_sql_table", lambda: list(pd.read_sql_table("segment_sizes", c).shape))
        # A write inside a transaction is refused; the connection works after ROLLBACK.
        call(out, "write", lambda: c.execute(sa.text("DELETE FROM unified_customers")).rowcount)
        c.rollback()
        call(out, "after_write", lambda: c.execute(sa.text("SELECT count(*) FROM unified_customers")).scalar())
    with engine.begin() as c:
        call(out, "transaction", lambda: c.execute(sa.text("SELECT count(*) FROM segment_members")).scalar())
        call(out, "savepoint", lambda: _savepoint(c, sa))
    return out


def _savepoint(c, sa):
    # A failed statement inside a savepoint rolls back to it, and the transaction goes on.
    try:
        with c.begin_nested():
            c.execute(sa.text("SELECT no_such_column FROM unified_customers"))
    except Exception:  # noqa: BLE001 - the failure is the point
        pass
    return c.execute(sa.text("SELECT count(*) FROM unified_customers")).scalar()


def odbc_suite(host, port):
    out = {}
    try:
        import pyodbc
    except ImportError as e:
        return {"missing": str(e)}
    conn = pyodbc.connect(
        f"DRIVER={{PostgreSQL Unicode}};SERVER={host};PORT={port};DATABASE=panorama;UID=analyst;PWD=;",
        autocommit=False)
    cur = conn.cursor()
    call(out, "param", lambda: cur.execute(
        "SELECT count(*) FROM segment_members WHERE segment = ?", "champions").fetchone()[0])
    call(out, "error", lambda: cur.execute("SELECT no_such_column FROM unified_customers").fetchall())
    call(out, "after_error", lambda: cur.execute(
        "SELECT count(*) FROM unified_customers WHERE customer_id <> ?", "nobody").fetchone()[0])
    call(out, "tables", lambda: sorted(r.table_name for r in cur.tables(schema="public")))
    call(out, "columns", lambda: [r.column_name for r in cur.columns(table="unified_customers")])
    call(out, "pk", lambda: [r.column_name for r in cur.primaryKeys("segment_members")])
    # SQLStatistics reads pg_index.indkey as an int2vector into an array of shorts.
    call(out, "statistics", lambda: [
        (r.index_name, r.column_name, r.ordinal_position, r.non_unique)
        for r in cur.statistics("segment_members") if r.index_name])
    call(out, "fks", lambda: [(r.pktable_name, r.pkcolumn_name, r.fkcolumn_name) for r in cur.foreignKeys(foreignTable="segment_members")])
    call(out, "write", lambda: cur.execute("DELETE FROM unified_customers").rowcount)
    conn.rollback()
    call(out, "after_write", lambda: cur.execute("SELECT 1").fetchone()[0])
    conn.close()
    return out


def asyncpg_suite(host, port):
    try:
        import asyncpg
    except ImportError as e:
        return {"missing": str(e)}

    async def run():
        out = {}
        c = await asyncpg.connect(host=host, port=int(port), database="panorama", user="analyst")

        async def acall(name, coro):
            try:
                out[name] = await coro
            except Exception as e:  # noqa: BLE001
                out[name] = {"error": f"{type(e).__name__}: {e}"}
        await acall("fetchval", c.fetchval(
            "SELECT count(*) FROM segment_members WHERE segment = $1", "champions"))
        await acall("version", c.fetchval("SELECT version()"))
        try:
            async with c.transaction():
                out["transaction"] = await c.fetchval("SELECT count(*) FROM unified_customers")
        except Exception as e:  # noqa: BLE001
            out["transaction"] = {"error": str(e)}
        await c.close()
        return out
    return asyncio.run(run())


def main(argv):
    if argv[0] == "tls":
        print(json.dumps(tls_suite(*argv[1:]), default=str))
        return
    host, port = argv
    result = {
        "sqlalchemy_psycopg2": sqlalchemy_suite("psycopg2", host, port),
        "sqlalchemy_psycopg": sqlalchemy_suite("psycopg", host, port),
        "odbc": odbc_suite(host, port),
        "asyncpg": asyncpg_suite(host, port),
    }
    print(json.dumps(result, default=str))


if __name__ == "__main__":
    main(sys.argv[1:])
