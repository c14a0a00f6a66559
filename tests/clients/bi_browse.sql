-- Schema browsing as BI tools do it: the catalog queries Metabase, Grafana, Superset and
-- DBeaver send when they list schemas, tables, columns, keys and indexes. Written here in the
-- shape each tool uses (the catalogs, joins, casts and functions they rely on), not copied.
-- tests/bi_clients.rs runs each through psql against the served demo: a `-- name: expect`
-- line starts a query, and its output must hold `expect`.

-- metabase_schemas: public
SELECT nspname AS schema_name
FROM pg_catalog.pg_namespace
WHERE nspname NOT IN ('information_schema', 'pg_catalog', 'pg_toast')
  AND nspname NOT LIKE 'pg_temp%'
ORDER BY nspname;

-- metabase_tables: segment_members|TABLE|Who is in each segment
SELECT cls.relname AS table_name,
       CASE cls.relkind WHEN 'r' THEN 'TABLE' WHEN 'p' THEN 'PARTITIONED TABLE'
            WHEN 'v' THEN 'VIEW' WHEN 'f' THEN 'FOREIGN TABLE'
            WHEN 'm' THEN 'MATERIALIZED VIEW' END AS table_type,
       descr.description AS remarks,
       st.n_live_tup AS estimated_rows
FROM pg_catalog.pg_class cls
JOIN pg_catalog.pg_namespace ns ON cls.relnamespace = ns.oid
LEFT JOIN pg_catalog.pg_description descr
       ON descr.objoid = cls.oid AND descr.objsubid = 0
      AND descr.classoid = 'pg_class'::regclass
LEFT JOIN pg_catalog.pg_stat_user_tables st
       ON st.schemaname = ns.nspname AND st.relname = cls.relname
WHERE ns.nspname !~ '^information_schema$' AND ns.nspname <> 'pg_catalog'
  AND cls.relkind IN ('r', 'p', 'v', 'f', 'm') AND ns.nspname IN ('public')
ORDER BY table_type, ns.nspname, table_name;

-- metabase_columns: customer_id|text|1|t|
SELECT col.column_name, col.udt_name, col.ordinal_position - 1 AS position,
       key_cols.column_name IS NOT NULL AS is_pk,
       col_description(format('%I.%I', col.table_schema, col.table_name)::regclass::oid,
                       col.ordinal_position) AS remarks
FROM information_schema.columns col
LEFT JOIN (
    SELECT tc.table_schema, tc.table_name, kcu.column_name
    FROM information_schema.table_constraints tc
    JOIN information_schema.key_column_usage kcu
      ON tc.constraint_name = kcu.constraint_name
     AND tc.table_schema = kcu.table_schema AND tc.table_name = kcu.table_name
    WHERE tc.constraint_type = 'PRIMARY KEY'
) key_cols
  ON key_cols.table_schema = col.table_schema AND key_cols.table_name = col.table_name
 AND key_cols.column_name = col.column_name
WHERE col.table_schema IN ('public') AND col.table_name = 'segment_members'
ORDER BY col.table_name, position;

-- metabase_foreign_keys: segment_members|customer_id|unified_customers|customer_id
SELECT fk_table.relname AS fk_table, fk_col.attname AS fk_column,
       pk_table.relname AS pk_table, pk_col.attname AS pk_column
FROM pg_catalog.pg_constraint con
JOIN pg_catalog.pg_class fk_table ON con.conrelid = fk_table.oid
JOIN pg_catalog.pg_namespace fk_ns ON fk_table.relnamespace = fk_ns.oid
JOIN pg_catalog.pg_attribute fk_col
  ON fk_col.attrelid = con.conrelid AND fk_col.attnum = ANY (con.conkey)
JOIN pg_catalog.pg_class pk_table ON con.confrelid = pk_table.oid
JOIN pg_catalog.pg_attribute pk_col
  ON pk_col.attrelid = con.confrelid AND pk_col.attnum = ANY (con.confkey)
WHERE con.contype = 'f' AND fk_ns.nspname = 'public' AND fk_table.relname = 'segment_members';

-- grafana_tables: public.unified_customers
SELECT quote_ident(table_schema) || '.' || quote_ident(table_name) AS "table"
FROM information_schema.tables
WHERE table_schema IN (
    SELECT CASE WHEN trim(parts[i]) = '"$user"' THEN user ELSE trim(parts[i]) END
    FROM generate_series(
             array_lower(string_to_array(current_setting('search_path'), ','), 1),
             array_upper(string_to_array(current_setting('search_path'), ','), 1)) AS i,
         string_to_array(current_setting('search_path'), ',') AS parts
)
ORDER BY 1;

-- grafana_columns: customer_id|text
SELECT column_name AS "column", data_type AS "type"
FROM information_schema.columns
WHERE table_schema = split_part('public.unified_customers', '.', 1)
  AND table_name = split_part('public.unified_customers', '.', 2)
ORDER BY ordinal_position;

-- superset_has_table: t
SELECT EXISTS (
    SELECT 1 FROM pg_catalog.pg_class c
    JOIN pg_catalog.pg_namespace n ON n.oid = c.relnamespace
    WHERE n.nspname = 'public' AND c.relname = 'unified_customers'
      AND c.relkind = ANY (ARRAY['r', 'p', 'f', 'v', 'm'])
);

-- superset_indexes: unified_customers_pkey|
SELECT ic.relname AS index_name, pg_get_indexdef(ix.indexrelid) AS definition,
       ix.indisunique AS is_unique
FROM pg_catalog.pg_index ix
JOIN pg_catalog.pg_class tc ON tc.oid = ix.indrelid
JOIN pg_catalog.pg_class ic ON ic.oid = ix.indexrelid
JOIN pg_catalog.pg_namespace n ON n.oid = tc.relnamespace
WHERE n.nspname = 'public' AND tc.relname = 'unified_customers'
ORDER BY ic.relname;

-- dbeaver_schemas: public
SELECT n.oid, n.*, d.description
FROM pg_catalog.pg_namespace n
LEFT JOIN pg_catalog.pg_description d
       ON d.objoid = n.oid AND d.objsubid = 0 AND d.classoid = 'pg_namespace'::regclass
ORDER BY n.nspname;

-- dbeaver_tables: segment_members
SELECT c.oid, c.*, d.description
FROM pg_catalog.pg_class c
LEFT JOIN pg_catalog.pg_description d
       ON d.objoid = c.oid AND d.objsubid = 0 AND d.classoid = 'pg_class'::regclass
WHERE c.relnamespace = (SELECT oid FROM pg_catalog.pg_namespace WHERE nspname = 'public')
  AND c.relkind NOT IN ('i', 'I', 'c');

-- dbeaver_columns: segment_members|customer_id
SELECT c.relname, a.attname, a.attnum, a.attnotnull,
       pg_catalog.pg_get_expr(ad.adbin, ad.adrelid, true) AS default_value,
       dsc.description
FROM pg_catalog.pg_attribute a
JOIN pg_catalog.pg_class c ON a.attrelid = c.oid
LEFT JOIN pg_catalog.pg_attrdef ad ON a.attrelid = ad.adrelid AND a.attnum = ad.adnum
LEFT JOIN pg_catalog.pg_description dsc ON c.oid = dsc.objoid AND a.attnum = dsc.objsubid
WHERE a.attnum > 0 AND NOT a.attisdropped AND c.relname = 'segment_members'
ORDER BY a.attnum;
