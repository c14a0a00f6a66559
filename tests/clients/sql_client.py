"""Run SQL through a real client and print what came back as JSON, one result per statement.

    python3 sql_client.py psycopg "host=127.0.0.1 port=5433 dbname=panorama" SQL [SQL ...]
    python3 sql_client.py adbc grpc://127.0.0.1:50051 SQL [SQL ...]

Options (before the mode): --token T (Flight bearer token), --cafile F (TLS root),
--param V (bind V as the one parameter of every statement; psycopg's extended protocol).
A failed statement gives {"error": "..."}; the script itself only fails on bad usage.
"""
import json
import sys


def plain(v):
    if v is None or isinstance(v, (bool, int, float, str)):
        return v
    return str(v)


def run_psycopg(conninfo, statements, param):
    import psycopg

    out = []
    with psycopg.connect(conninfo, autocommit=True) as conn:
        for sql in statements:
            try:
                with conn.cursor() as cur:
                    if param is not None:
                        cur.execute(sql, (param,))
                    else:
                        cur.execute(sql)
                    cols = [d.name for d in cur.description] if cur.description else []
                    rows = [[plain(v) for v in r] for r in cur.fetchall()] if cur.description else []
                    out.append({"columns": cols, "rows": rows})
            except Exception as e:  # noqa: BLE001 - reported to the caller
                out.append({"error": f"{type(e).__name__}: {e}"})
    return out


def run_adbc(uri, statements, token, cafile):
    import adbc_driver_flightsql.dbapi as flight_sql

    kwargs = {}
    if token:
        kwargs["adbc.flight.sql.authorization_header"] = "Bearer " + token
    if cafile:
        kwargs["adbc.flight.sql.client_option.tls_root_certs"] = open(cafile).read()
    out = []
    with flight_sql.connect(uri, db_kwargs=kwargs) as conn:
        for sql in statements:
            try:
                with conn.cursor() as cur:
                    cur.execute(sql)
                    table = cur.fetch_arrow_table()
                    rows = [[plain(v) for v in r.values()] for r in table.to_pylist()]
                    out.append({"columns": table.column_names, "rows": rows,
                                "arrow_types": [str(t) for t in table.schema.types]})
            except Exception as e:  # noqa: BLE001
                out.append({"error": f"{type(e).__name__}: {e}"})
    return out


def main(argv):
    token = cafile = param = None
    while argv and argv[0].startswith("--"):
        flag, value, argv = argv[0], argv[1], argv[2:]
        if flag == "--token":
            token = value
        elif flag == "--cafile":
            cafile = value
        elif flag == "--param":
            param = value
        else:
            raise SystemExit(f"unknown option {flag}")
    mode, target, statements = argv[0], argv[1], argv[2:]
    if mode == "psycopg":
        result = run_psycopg(target, statements, param)
    elif mode == "adbc":
        result = run_adbc(target, statements, token, cafile)
    else:
        raise SystemExit(f"unknown mode {mode}")
    print(json.dumps(result))


if __name__ == "__main__":
    main(sys.argv[1:])
