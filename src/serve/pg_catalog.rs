//! What PostgreSQL clients introspect, on top of datafusion-postgres's `pg_catalog`:
//!
//! - the catalog functions SQLAlchemy, pgjdbc, psqlODBC, DBeaver and Metabase call
//!   (`pg_get_serial_sequence`, `information_schema._pg_expandarray`, `pg_get_indexdef`,
//!   `pg_get_constraintdef`, `obj_description`, `col_description`, `to_regtype`,
//!   `current_setting`, `set_config`, `like_escape`, `version`);
//! - each table's key and references as PostgreSQL declares them (`pg_constraint`,
//!   `pg_index` and the index rows of `pg_class`), and what each table and column means
//!   (`pg_description`), from [`crate::table_catalog`];
//! - the columns clients expect of `pg_class` (`reloptions`, `relacl`) and the settings they
//!   read from `pg_settings`;
//! - [`rewrite`]: SQL PostgreSQL accepts and DataFusion does not (`LIKE … ESCAPE '/'`,
//!   set-returning `_pg_expandarray` in the select list).
//!
//! The functions and [`rewrite`] know nothing of Panorama (they could move to
//! datafusion-postgres as they are); [`install`] adds Panorama's tables.
//!
//! The catalog is read once per served run: OIDs are given on first sight and stay for the
//! process, and a run's tables do not change, so keys and descriptions are tables in memory
//! and the functions look them up in maps. Catalog queries touch hundreds of rows, so the
//! functions work a row at a time on `ScalarValue`s.

use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;

use async_trait::async_trait;
use datafusion::arrow::array::{Array, ArrayRef, AsArray, RecordBatch};
use datafusion::arrow::datatypes::{DataType, Field, Fields, Schema, SchemaRef};
use datafusion::catalog::{MemTable, SchemaProvider, TableProvider};
use datafusion::common::{exec_err, Result as DfResult, ScalarValue};
use datafusion::logical_expr::{
    ColumnarValue, ScalarFunctionArgs, ScalarUDF, ScalarUDFImpl, Signature, TypeSignature,
    Volatility,
};
use datafusion::prelude::SessionContext;
use datafusion::sql::sqlparser::ast::{
    self as ast, Expr, FunctionArg, FunctionArgExpr, FunctionArguments, ObjectNamePart, Statement,
    Value, VisitMut, VisitorMut,
};

use crate::error::{Error, Result};
use crate::table_catalog::TableDoc;
use datafusion_postgres::pgwire;

/// `pg_class`'s OID in PostgreSQL: `pg_description.classoid` of tables and columns when
/// the catalog does not list pg_class itself.
const PG_CLASS_OID: i32 = 1259;
/// The btree access method's OID (`pg_am`).
const BTREE_OID: i32 = 403;
/// Indexes and constraints get OIDs above every table's (the catalog counts up from 16384):
/// table OID + one of these.
const INDEX_OID_OFFSET: i32 = 1_000_000;
const PK_OID_OFFSET: i32 = 2_000_000;
const FK_OID_OFFSET: i32 = 3_000_000;

// ---------------------------------------------------------------------------------------
// Functions

type RowFn = dyn Fn(&[ScalarValue]) -> DfResult<ScalarValue> + Send + Sync;

/// A catalog function evaluated row by row.
struct PgFunction {
    name: String,
    signature: Signature,
    returns: DataType,
    f: Arc<RowFn>,
}

impl std::fmt::Debug for PgFunction {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "PgFunction({})", self.name)
    }
}

impl PartialEq for PgFunction {
    fn eq(&self, other: &Self) -> bool {
        self.name == other.name && Arc::ptr_eq(&self.f, &other.f)
    }
}
impl Eq for PgFunction {}
impl std::hash::Hash for PgFunction {
    fn hash<H: std::hash::Hasher>(&self, state: &mut H) {
        self.name.hash(state)
    }
}

impl ScalarUDFImpl for PgFunction {
    fn name(&self) -> &str {
        &self.name
    }
    fn signature(&self) -> &Signature {
        &self.signature
    }
    fn return_type(&self, _: &[DataType]) -> DfResult<DataType> {
        Ok(self.returns.clone())
    }
    fn invoke_with_args(&self, args: ScalarFunctionArgs) -> DfResult<ColumnarValue> {
        let all_scalar = args
            .args
            .iter()
            .all(|a| matches!(a, ColumnarValue::Scalar(_)));
        let rows = if all_scalar { 1 } else { args.number_rows };
        let arrays: Vec<ArrayRef> = args
            .args
            .iter()
            .map(|a| a.to_array(rows))
            .collect::<DfResult<_>>()?;
        let mut out = Vec::with_capacity(rows);
        let mut values = Vec::with_capacity(arrays.len());
        for row in 0..rows {
            values.clear();
            for a in &arrays {
                values.push(ScalarValue::try_from_array(a, row)?);
            }
            let v = (self.f)(&values)?;
            out.push(if v.is_null() {
                ScalarValue::try_from(&self.returns)?
            } else {
                v
            });
        }
        if all_scalar {
            return Ok(ColumnarValue::Scalar(out.pop().expect("one row")));
        }
        Ok(ColumnarValue::Array(ScalarValue::iter_to_array(out)?))
    }
}

/// A function taking any `arities` arguments of any type.
fn function(
    name: &str,
    arities: &[usize],
    returns: DataType,
    volatility: Volatility,
    f: impl Fn(&[ScalarValue]) -> DfResult<ScalarValue> + Send + Sync + 'static,
) -> ScalarUDF {
    let signatures = arities
        .iter()
        .map(|n| {
            if *n == 0 {
                TypeSignature::Nullary
            } else {
                TypeSignature::Any(*n)
            }
        })
        .collect();
    ScalarUDF::new_from_impl(PgFunction {
        name: name.to_string(),
        signature: Signature::one_of(signatures, volatility),
        returns,
        f: Arc::new(f),
    })
}

fn text(v: &ScalarValue) -> Option<String> {
    if v.is_null() {
        return None;
    }
    match v {
        ScalarValue::Utf8(s) | ScalarValue::LargeUtf8(s) | ScalarValue::Utf8View(s) => s.clone(),
        other => Some(other.to_string()),
    }
}

fn int(v: &ScalarValue) -> Option<i64> {
    if v.is_null() {
        return None;
    }
    v.cast_to(&DataType::Int64).ok().and_then(|v| match v {
        ScalarValue::Int64(i) => i,
        _ => None,
    })
}

fn utf8(s: Option<String>) -> ScalarValue {
    ScalarValue::Utf8(s)
}

/// What a computed `::regclass` cast becomes (see the rewrite): the OID of a relation named
/// `name`, `schema.name` or with quoted parts; NULL when there is none (PostgreSQL would
/// fail; a catalog query then shows nothing for it).
const REGCLASS_FUNCTION: &str = "panorama_regclass";

fn regclass_oid(oids: &HashMap<(String, String), i32>, name: &str) -> Option<i32> {
    let part = |p: &str| match p.strip_prefix('"').and_then(|p| p.strip_suffix('"')) {
        Some(quoted) => quoted.replace("\"\"", "\""),
        None => p.to_lowercase(),
    };
    match name.split_once('.') {
        Some((schema, table)) if !name.starts_with('"') || schema.ends_with('"') => {
            oids.get(&(part(schema), part(table))).copied()
        }
        _ => ["public", "pg_catalog"]
            .iter()
            .find_map(|schema| oids.get(&(schema.to_string(), part(name))).copied()),
    }
}

/// PostgreSQL's `format(template, args…)`: `%s` (text, NULL as nothing), `%I` (an identifier,
/// quoted when it must be), `%L` (a literal, NULL unquoted), `%%`, each optionally with an
/// argument position (`%2$s`). Widths and the `-` flag are not read.
fn pg_format(template: &str, args: &[Option<String>]) -> DfResult<String> {
    let mut out = String::new();
    let mut next = 0usize;
    let mut chars = template.chars().peekable();
    while let Some(c) = chars.next() {
        if c != '%' {
            out.push(c);
            continue;
        }
        let mut spec = String::new();
        while let Some(d) = chars.peek().filter(|d| d.is_ascii_digit() || **d == '$') {
            spec.push(*d);
            chars.next();
        }
        let kind = chars.next();
        if kind == Some('%') && spec.is_empty() {
            out.push('%');
            continue;
        }
        let index = match spec.strip_suffix('$') {
            Some(n) => n
                .parse::<usize>()
                .ok()
                .filter(|n| *n >= 1)
                .map(|n| n - 1)
                .ok_or_else(|| {
                    datafusion::error::DataFusionError::Execution(format!(
                        "format: bad argument position %{spec}"
                    ))
                })?,
            None => next,
        };
        next = index + 1;
        let Some(value) = args.get(index) else {
            return exec_err!("format: too few arguments for {template:?}");
        };
        match kind {
            Some('s') => out.push_str(value.as_deref().unwrap_or("")),
            Some('I') => match value {
                Some(v) => out.push_str(&quote(v)),
                None => return exec_err!("format: NULL cannot be an identifier (%I)"),
            },
            Some('L') => match value {
                Some(v) => out.push_str(&crate::sql_text::literal(v)),
                None => out.push_str("NULL"),
            },
            other => return exec_err!("format: unknown conversion %{}", other.unwrap_or(' ')),
        }
    }
    Ok(out)
}

/// `current_setting(name [, missing_ok])` over one session's settings.
pub fn current_setting_udf(settings: BTreeMap<String, String>) -> ScalarUDF {
    function(
        "current_setting",
        &[1, 2],
        DataType::Utf8,
        Volatility::Stable,
        move |a| {
            let Some(name) = text(&a[0]) else {
                return Ok(utf8(None));
            };
            match settings.get(&name.to_lowercase()) {
                Some(v) => Ok(utf8(Some(v.clone()))),
                None if a.get(1).and_then(|m| m.cast_to(&DataType::Boolean).ok())
                    == Some(ScalarValue::Boolean(Some(true))) =>
                {
                    Ok(utf8(None))
                }
                None => exec_err!("unrecognized configuration parameter \"{name}\""),
            }
        },
    )
}

/// `like_escape(pattern, escape)`: the pattern rewritten to use backslash as its escape,
/// which is the only one DataFusion's LIKE knows.
pub fn like_escape(pattern: &str, escape: char) -> String {
    let mut out = String::with_capacity(pattern.len() + 4);
    let mut chars = pattern.chars();
    while let Some(c) = chars.next() {
        if c == escape {
            if let Some(next) = chars.next() {
                out.push('\\');
                out.push(next);
            }
        } else if c == '\\' {
            out.push_str("\\\\");
        } else {
            out.push(c);
        }
    }
    out
}

/// The catalog functions that need nothing of Panorama.
fn generic_functions(type_oids: HashMap<String, i32>) -> Vec<ScalarUDF> {
    let mut functions = session_functions();
    functions.extend(text_functions());
    functions.extend(expandarray_functions());
    functions.extend(type_functions(type_oids));
    functions.extend(NULL_FUNCTIONS.iter().map(|(name, arguments)| {
        function(
            name,
            &[*arguments],
            DataType::Utf8,
            Volatility::Stable,
            |_| Ok(utf8(None)),
        )
    }));
    functions
}

/// Catalog functions whose answer is always NULL here: (name, number of arguments).
const NULL_FUNCTIONS: &[(&str, usize)] = &[
    // No column is backed by a sequence.
    ("pg_get_serial_sequence", 2),
    // Panorama has no stored functions to describe.
    ("pg_get_function_result", 1),
    ("pg_get_function_arguments", 1),
    ("pg_get_function_identity_arguments", 1),
    ("shobj_description", 2),
];

/// `version`, `current_setting` and `set_config`: the server's identity and settings.
fn session_functions() -> Vec<ScalarUDF> {
    vec![
        function(
            "version",
            &[0],
            DataType::Utf8,
            Volatility::Immutable,
            |_| Ok(utf8(Some(super::pg_session::version()))),
        ),
        current_setting_udf(super::pg_session::settings(&HashMap::new())),
        // Settings cannot change on a read-only server's catalog; the value is echoed as
        // PostgreSQL does.
        function(
            "set_config",
            &[3],
            DataType::Utf8,
            Volatility::Volatile,
            |a| Ok(utf8(text(&a[1]))),
        ),
    ]
}

/// `like_escape`, `format` and `json_build_object`: text as PostgreSQL makes it.
fn text_functions() -> Vec<ScalarUDF> {
    vec![
        function(
            "like_escape",
            &[2],
            DataType::Utf8,
            Volatility::Immutable,
            |a| {
                let (Some(p), Some(e)) = (text(&a[0]), text(&a[1])) else {
                    return Ok(utf8(None));
                };
                Ok(utf8(Some(match e.chars().next() {
                    Some(e) => like_escape(&p, e),
                    None => p,
                })))
            },
        ),
        // PostgreSQL's `format` (Metabase names tables `format('%I.%I', schema, table)`).
        function(
            "format",
            &[1, 2, 3, 4, 5, 6, 7, 8],
            DataType::Utf8,
            Volatility::Immutable,
            |a| {
                let Some(template) = text(&a[0]) else {
                    return Ok(utf8(None));
                };
                let args: Vec<Option<String>> = a[1..].iter().map(text).collect();
                pg_format(&template, &args).map(|s| utf8(Some(s)))
            },
        ),
        ScalarUDF::new_from_impl(PgFunction {
            name: "json_build_object".into(),
            signature: Signature::variadic_any(Volatility::Immutable),
            returns: DataType::Utf8,
            f: Arc::new(|a| {
                let mut object = serde_json::Map::new();
                for pair in a.chunks(2) {
                    let key = text(&pair[0]).unwrap_or_default();
                    let value = match pair.get(1) {
                        None => serde_json::Value::Null,
                        Some(v) if v.is_null() => serde_json::Value::Null,
                        Some(ScalarValue::Boolean(Some(b))) => serde_json::Value::Bool(*b),
                        Some(v) => match int(v) {
                            Some(i) if !matches!(v, ScalarValue::Utf8(_)) => i.into(),
                            _ => serde_json::Value::String(text(v).unwrap_or_default()),
                        },
                    };
                    object.insert(key, value);
                }
                Ok(utf8(Some(serde_json::Value::Object(object).to_string())))
            }),
        }),
    ]
}

/// `_pg_expandarray` and `_pg_expandarray_field`, which [`rewrite`] calls for
/// `information_schema._pg_expandarray` and its fields.
fn expandarray_functions() -> Vec<ScalarUDF> {
    let expanded = DataType::List(Arc::new(Field::new_list_field(
        DataType::Struct(Fields::from(vec![
            Field::new("x", DataType::Int32, true),
            Field::new("n", DataType::Int32, false),
        ])),
        true,
    )));
    let struct_fields = match &expanded {
        DataType::List(f) => match f.data_type() {
            DataType::Struct(fields) => fields.clone(),
            _ => unreachable!("built above"),
        },
        _ => unreachable!("built above"),
    };
    vec![
        // One (element, 1-based position) per array element; [`rewrite`] makes the call a
        // set-returning one with `unnest`.
        function(
            "_pg_expandarray",
            &[1],
            expanded,
            Volatility::Immutable,
            move |a| {
                let ScalarValue::List(list) = &a[0] else {
                    return Ok(ScalarValue::Null);
                };
                if list.is_null(0) {
                    return Ok(ScalarValue::Null);
                }
                let values = list.value(0);
                let mut items = Vec::with_capacity(values.len());
                for i in 0..values.len() {
                    let x = int(&ScalarValue::try_from_array(&values, i)?).map(|v| v as i32);
                    items.push(ScalarValue::Struct(Arc::new(
                        datafusion::arrow::array::StructArray::try_new(
                            struct_fields.clone(),
                            vec![
                                Arc::new(datafusion::arrow::array::Int32Array::from(vec![x])),
                                Arc::new(datafusion::arrow::array::Int32Array::from(vec![
                                    i as i32 + 1,
                                ])),
                            ],
                            None,
                        )?,
                    )));
                }
                Ok(ScalarValue::List(ScalarValue::new_list_nullable(
                    &items,
                    &DataType::Struct(struct_fields.clone()),
                )))
            },
        ),
        // One field of _pg_expandarray's rows: `x` the elements, `n` their positions.
        function(
            "_pg_expandarray_field",
            &[2],
            DataType::List(Arc::new(Field::new_list_field(DataType::Int32, true))),
            Volatility::Immutable,
            |a| {
                let (ScalarValue::List(list), Some(field)) = (&a[0], text(&a[1])) else {
                    return Ok(ScalarValue::Null);
                };
                if list.is_null(0) {
                    return Ok(ScalarValue::Null);
                }
                let values = list.value(0);
                let items = (0..values.len())
                    .map(|i| {
                        Ok(ScalarValue::Int32(match field.as_str() {
                            "n" => Some(i as i32 + 1),
                            _ => int(&ScalarValue::try_from_array(&values, i)?).map(|v| v as i32),
                        }))
                    })
                    .collect::<DfResult<Vec<_>>>()?;
                Ok(ScalarValue::List(ScalarValue::new_list_nullable(
                    &items,
                    &DataType::Int32,
                )))
            },
        ),
    ]
}

/// `to_regtype` (by `type_oids`, name → OID) and `pg_collation_is_visible`.
fn type_functions(type_oids: HashMap<String, i32>) -> Vec<ScalarUDF> {
    vec![
        // Every collation is visible: there is one schema.
        function(
            "pg_collation_is_visible",
            &[1],
            DataType::Boolean,
            Volatility::Stable,
            |_| Ok(ScalarValue::Boolean(Some(true))),
        ),
        function(
            "to_regtype",
            &[1],
            DataType::Int32,
            Volatility::Stable,
            move |a| {
                let name = text(&a[0]).map(|n| {
                    n.trim_start_matches("pg_catalog.")
                        .trim_matches('"')
                        .to_lowercase()
                });
                Ok(ScalarValue::Int32(
                    name.and_then(|n| type_oids.get(&n).copied()),
                ))
            },
        ),
    ]
}

// ---------------------------------------------------------------------------------------
// Keys and descriptions

/// The keys and descriptions of one served run, by OID.
#[derive(Debug, Default)]
struct Declared {
    /// (object OID, column number or 0) → description.
    descriptions: BTreeMap<(i32, i32), String>,
    /// Constraint OID → `PRIMARY KEY (a, b)` / `FOREIGN KEY (a) REFERENCES t(b)`.
    constraint_defs: HashMap<i32, String>,
    /// Index OID → (definition, its columns).
    index_defs: HashMap<i32, (String, Vec<String>)>,
    pg_index: Vec<HashMap<&'static str, ScalarValue>>,
    pg_constraint: Vec<HashMap<&'static str, ScalarValue>>,
    pg_description: Vec<HashMap<&'static str, ScalarValue>>,
    pg_class: Vec<HashMap<&'static str, ScalarValue>>,
    /// The index relations' columns (psqlODBC reads a key's columns from its index).
    pg_attribute: Vec<HashMap<&'static str, ScalarValue>>,
}

fn i16_list(values: &[i16]) -> ScalarValue {
    let items: Vec<ScalarValue> = values
        .iter()
        .map(|v| ScalarValue::Int16(Some(*v)))
        .collect();
    ScalarValue::List(ScalarValue::new_list_nullable(&items, &DataType::Int16))
}

/// One `pg_constraint` row of `rel`: its primary key, or with `references` (the table and
/// column referred to) a foreign key; `index` is the key's index, or the referred one's.
fn constraint_row(
    oid: i32,
    name: &str,
    rel: &Relation,
    index: i32,
    conkey: &[i16],
    references: Option<(i32, i16)>,
) -> HashMap<&'static str, ScalarValue> {
    // Foreign keys: no action on update or delete, simple match; keys have none.
    let (kind, action, matching) = match references {
        Some(_) => ("f", "a", "s"),
        None => ("p", " ", " "),
    };
    let mut row = HashMap::from([
        ("oid", ScalarValue::from(oid)),
        ("conname", ScalarValue::from(name)),
        ("connamespace", ScalarValue::from(rel.namespace)),
        ("contype", ScalarValue::from(kind)),
        ("condeferrable", ScalarValue::from(false)),
        ("condeferred", ScalarValue::from(false)),
        ("convalidated", ScalarValue::from(true)),
        ("conrelid", ScalarValue::from(rel.oid)),
        ("contypid", ScalarValue::from(0i32)),
        ("conindid", ScalarValue::from(index)),
        ("conparentid", ScalarValue::from(0i32)),
        (
            "confrelid",
            ScalarValue::from(references.map_or(0, |r| r.0)),
        ),
        ("confupdtype", ScalarValue::from(action)),
        ("confdeltype", ScalarValue::from(action)),
        ("confmatchtype", ScalarValue::from(matching)),
        ("conislocal", ScalarValue::from(true)),
        ("coninhcount", ScalarValue::from(0i16)),
        ("connoinherit", ScalarValue::from(true)),
        ("conkey", i16_list(conkey)),
    ]);
    if let Some((_, column)) = references {
        row.insert("confkey", i16_list(&[column]));
    }
    row
}

fn i32_list(values: &[i32]) -> ScalarValue {
    let items: Vec<ScalarValue> = values
        .iter()
        .map(|v| ScalarValue::Int32(Some(*v)))
        .collect();
    ScalarValue::List(ScalarValue::new_list_nullable(&items, &DataType::Int32))
}

fn quote(ident: &str) -> String {
    crate::sql_text::ident_if_needed(ident)
}

/// A served table as the catalog numbers it.
struct Relation {
    oid: i32,
    namespace: i32,
    owner: i32,
    /// Column name → number.
    columns: HashMap<String, i16>,
    /// Column name → type OID.
    types: HashMap<String, i32>,
}

/// The `pg_index` row of a table's primary key `key` (its columns' numbers), whose index is
/// `index_oid`.
fn primary_key_index_row(
    index_oid: i32,
    rel: &Relation,
    key: &[i16],
) -> HashMap<&'static str, ScalarValue> {
    let i = |v: i32| ScalarValue::Int32(Some(v));
    let b = |v: bool| ScalarValue::Boolean(Some(v));
    HashMap::from([
        ("indexrelid", i(index_oid)),
        ("indrelid", i(rel.oid)),
        ("indnatts", ScalarValue::Int16(Some(key.len() as i16))),
        ("indnkeyatts", ScalarValue::Int16(Some(key.len() as i16))),
        ("indisunique", b(true)),
        ("indnullsnotdistinct", b(false)),
        ("indisprimary", b(true)),
        ("indisexclusion", b(false)),
        ("indimmediate", b(true)),
        ("indisclustered", b(false)),
        ("indisvalid", b(true)),
        ("indcheckxmin", b(false)),
        ("indisready", b(true)),
        ("indislive", b(true)),
        ("indisreplident", b(false)),
        ("indkey", i16_list(key)),
        ("indoption", i16_list(&vec![0; key.len()])),
        ("indclass", i32_list(&vec![0; key.len()])),
        ("indcollation", i32_list(&vec![0; key.len()])),
    ])
}

/// The `pg_attribute` rows of index `index_oid`'s columns, the table's columns named in `key`.
fn index_attribute_rows(
    index_oid: i32,
    rel: &Relation,
    key: &[String],
) -> Vec<HashMap<&'static str, ScalarValue>> {
    let s = |v: &str| ScalarValue::Utf8(Some(v.to_string()));
    let i = |v: i32| ScalarValue::Int32(Some(v));
    let b = |v: bool| ScalarValue::Boolean(Some(v));
    key.iter()
        .enumerate()
        .map(|(n, column)| {
            HashMap::from([
                ("attrelid", i(index_oid)),
                ("attname", s(column)),
                ("atttypid", i(rel.types.get(column).copied().unwrap_or(25))),
                ("attnum", ScalarValue::Int16(Some(n as i16 + 1))),
                ("attlen", ScalarValue::Int16(Some(-1))),
                ("atttypmod", i(-1)),
                ("attnotnull", b(false)),
                ("atthasdef", b(false)),
                ("attisdropped", b(false)),
                ("attislocal", b(true)),
                ("attidentity", s("")),
                ("attgenerated", s("")),
            ])
        })
        .collect()
}

/// The `pg_class` row of index `index_oid`, named `name`, of `columns` columns of `rel`.
fn index_class_row(
    index_oid: i32,
    name: &str,
    rel: &Relation,
    columns: usize,
) -> HashMap<&'static str, ScalarValue> {
    let s = |v: &str| ScalarValue::Utf8(Some(v.to_string()));
    let i = |v: i32| ScalarValue::Int32(Some(v));
    let b = |v: bool| ScalarValue::Boolean(Some(v));
    HashMap::from([
        ("oid", i(index_oid)),
        ("relname", s(name)),
        ("relnamespace", i(rel.namespace)),
        ("reltype", i(0)),
        ("reloftype", i(0)),
        ("relowner", i(rel.owner)),
        ("relam", i(BTREE_OID)),
        ("relfilenode", i(index_oid)),
        ("reltablespace", i(0)),
        ("relpages", i(0)),
        ("reltuples", ScalarValue::Float32(Some(-1.0))),
        ("relallvisible", i(0)),
        ("reltoastrelid", i(0)),
        ("relhasindex", b(false)),
        ("relisshared", b(false)),
        ("relpersistence", s("p")),
        ("relkind", s("i")),
        ("relnatts", ScalarValue::Int16(Some(columns as i16))),
        ("relchecks", ScalarValue::Int16(Some(0))),
        ("relhasrules", b(false)),
        ("relhastriggers", b(false)),
        ("relhassubclass", b(false)),
        ("relrowsecurity", b(false)),
        ("relforcerowsecurity", b(false)),
        ("relispopulated", b(true)),
        ("relreplident", s("n")),
        ("relispartition", b(false)),
        ("relrewrite", i(0)),
        ("relfrozenxid", i(0)),
        ("relminmxid", i(0)),
    ])
}

impl Declared {
    fn build(
        docs: &[TableDoc],
        relations: &HashMap<String, Relation>,
        kinds: &HashMap<String, String>,
        class_oid: i32,
    ) -> Self {
        let mut d = Declared::default();
        // PostgreSQL has no keys on views.
        let is_table = |doc: &TableDoc| kinds.get(&doc.name).map(String::as_str) == Some("r");
        for doc in docs {
            let Some(rel) = relations.get(&doc.name) else {
                continue;
            };
            d.describe(doc, rel);
            if is_table(doc) {
                d.declare_primary_key(doc, rel);
            }
        }
        // References, once every key is known.
        for doc in docs {
            let Some(rel) = relations.get(&doc.name) else {
                continue;
            };
            if is_table(doc) {
                d.declare_references(doc, rel, relations);
            }
        }
        let s = |v: &str| ScalarValue::Utf8(Some(v.to_string()));
        let i = |v: i32| ScalarValue::Int32(Some(v));
        for ((oid, sub), text) in &d.descriptions {
            d.pg_description.push(HashMap::from([
                ("objoid", i(*oid)),
                ("classoid", i(class_oid)),
                ("objsubid", i(*sub)),
                ("description", s(text)),
            ]));
        }
        d
    }

    /// What a table and its columns mean.
    fn describe(&mut self, doc: &TableDoc, rel: &Relation) {
        self.descriptions
            .insert((rel.oid, 0), doc.description.clone());
        for (column, text) in &doc.columns {
            if let Some(n) = rel.columns.get(column) {
                self.descriptions.insert((rel.oid, *n as i32), text.clone());
            }
        }
    }

    /// A table's key as PostgreSQL declares it: a primary key constraint and its unique
    /// index (`pg_index`, the index's `pg_class` row and columns). Nothing when the table has
    /// no key or names a column it does not have.
    fn declare_primary_key(&mut self, doc: &TableDoc, rel: &Relation) {
        let key: Option<Vec<i16>> = doc
            .key
            .iter()
            .map(|c| rel.columns.get(c).copied())
            .collect();
        let Some(key) = key.filter(|k| !k.is_empty()) else {
            return;
        };
        let index_oid = rel.oid + INDEX_OID_OFFSET;
        let pk_oid = rel.oid + PK_OID_OFFSET;
        let name = format!("{}_pkey", doc.name);
        let cols = doc
            .key
            .iter()
            .map(|c| quote(c))
            .collect::<Vec<_>>()
            .join(", ");
        self.constraint_defs
            .insert(pk_oid, format!("PRIMARY KEY ({cols})"));
        self.index_defs.insert(
            index_oid,
            (
                format!(
                    "CREATE UNIQUE INDEX {} ON public.{} USING btree ({cols})",
                    quote(&name),
                    quote(&doc.name)
                ),
                doc.key.clone(),
            ),
        );
        self.pg_index
            .push(primary_key_index_row(index_oid, rel, &key));
        self.pg_attribute
            .extend(index_attribute_rows(index_oid, rel, &doc.key));
        self.pg_class
            .push(index_class_row(index_oid, &name, rel, key.len()));
        self.pg_constraint
            .push(constraint_row(pk_oid, &name, rel, index_oid, &key, None));
    }

    /// A table's references to other served tables, as foreign key constraints.
    fn declare_references(
        &mut self,
        doc: &TableDoc,
        rel: &Relation,
        relations: &HashMap<String, Relation>,
    ) {
        for (k, (column, table, target)) in doc.references.iter().enumerate() {
            let (Some(from), Some(to)) = (rel.columns.get(column), relations.get(table)) else {
                continue;
            };
            let Some(to_col) = to.columns.get(target) else {
                continue;
            };
            let oid = rel.oid + FK_OID_OFFSET + k as i32 * 100_000;
            let name = format!("{}_{}_fkey", doc.name, column);
            self.constraint_defs.insert(
                oid,
                format!(
                    "FOREIGN KEY ({}) REFERENCES {}({})",
                    quote(column),
                    quote(table),
                    quote(target)
                ),
            );
            self.pg_constraint.push(constraint_row(
                oid,
                &name,
                rel,
                to.oid + INDEX_OID_OFFSET,
                &[*from],
                Some((to.oid, *to_col)),
            ));
        }
    }

    fn functions(self: &Arc<Self>) -> Vec<ScalarUDF> {
        let (a, b, c, e) = (self.clone(), self.clone(), self.clone(), self.clone());
        vec![
            function(
                "obj_description",
                &[1, 2],
                DataType::Utf8,
                Volatility::Stable,
                move |v| {
                    let oid = int(&v[0]).map(|o| o as i32);
                    Ok(utf8(oid.and_then(|o| a.descriptions.get(&(o, 0)).cloned())))
                },
            ),
            function(
                "col_description",
                &[2],
                DataType::Utf8,
                Volatility::Stable,
                move |v| {
                    let (Some(oid), Some(n)) = (int(&v[0]), int(&v[1])) else {
                        return Ok(utf8(None));
                    };
                    Ok(utf8(b.descriptions.get(&(oid as i32, n as i32)).cloned()))
                },
            ),
            function(
                "pg_get_constraintdef",
                &[1, 2],
                DataType::Utf8,
                Volatility::Stable,
                move |v| {
                    let oid = int(&v[0]).map(|o| o as i32);
                    Ok(utf8(oid.and_then(|o| c.constraint_defs.get(&o).cloned())))
                },
            ),
            // (index) → its definition; (index, n, pretty) → its n-th column, 0 for all.
            function(
                "pg_get_indexdef",
                &[1, 3],
                DataType::Utf8,
                Volatility::Stable,
                move |v| {
                    let Some((def, cols)) = int(&v[0]).and_then(|o| e.index_defs.get(&(o as i32)))
                    else {
                        return Ok(utf8(None));
                    };
                    let n = v.get(1).and_then(int).unwrap_or(0);
                    Ok(utf8(if n == 0 {
                        Some(def.clone())
                    } else {
                        cols.get(n as usize - 1).map(|c| quote(c))
                    }))
                },
            ),
        ]
    }
}

// ---------------------------------------------------------------------------------------
// Tables

/// A table of `schema`'s columns (with `types` replacing some columns' types) holding
/// `rows`; a row's missing columns are NULL.
fn rows_table(
    schema: &Schema,
    types: &[(&str, DataType)],
    rows: &[HashMap<&'static str, ScalarValue>],
) -> DfResult<RecordBatch> {
    let fields: Vec<Field> = schema
        .fields()
        .iter()
        .map(|f| match types.iter().find(|(n, _)| n == f.name()) {
            Some((_, t)) => Field::new(f.name(), t.clone(), true),
            None => f.as_ref().clone().with_nullable(true),
        })
        .collect();
    let schema = Arc::new(Schema::new(fields));
    let columns = schema
        .fields()
        .iter()
        .map(|f| {
            let null = ScalarValue::try_from(f.data_type())?;
            if rows.is_empty() {
                return Ok(datafusion::arrow::array::new_empty_array(f.data_type()));
            }
            let values = rows
                .iter()
                .map(|r| match r.get(f.name().as_str()) {
                    Some(v) => v.cast_to(f.data_type()),
                    None => Ok(null.clone()),
                })
                .collect::<DfResult<Vec<_>>>()?;
            ScalarValue::iter_to_array(values)
        })
        .collect::<DfResult<Vec<_>>>()?;
    Ok(RecordBatch::try_new(schema, columns)?)
}

/// `batches` with NULL columns `extra` appended, and then `rows`.
fn extended_table(
    batches: &[RecordBatch],
    schema: &SchemaRef,
    extra: &[Field],
    rows: &[HashMap<&'static str, ScalarValue>],
) -> DfResult<Vec<RecordBatch>> {
    let mut fields: Vec<Field> = schema
        .fields()
        .iter()
        .map(|f| f.as_ref().clone().with_nullable(true))
        .collect();
    fields.extend(extra.iter().cloned());
    let wide = Arc::new(Schema::new(fields));
    let mut out = Vec::with_capacity(batches.len() + 1);
    for b in batches {
        let mut columns = b.columns().to_vec();
        for f in extra {
            columns.push(datafusion::arrow::array::new_null_array(
                f.data_type(),
                b.num_rows(),
            ));
        }
        out.push(RecordBatch::try_new(wide.clone(), columns)?);
    }
    out.push(rows_table(&wide, &[], rows)?);
    Ok(out)
}

/// `pg_catalog` with some tables replaced.
#[derive(Debug)]
struct PgCatalogOverlay {
    inner: Arc<dyn SchemaProvider>,
    replaced: HashMap<String, Arc<dyn TableProvider>>,
}

#[async_trait]
impl SchemaProvider for PgCatalogOverlay {
    fn table_names(&self) -> Vec<String> {
        self.inner.table_names()
    }
    async fn table(&self, name: &str) -> DfResult<Option<Arc<dyn TableProvider>>> {
        match self.replaced.get(name) {
            Some(t) => Ok(Some(t.clone())),
            None => self.inner.table(name).await,
        }
    }
    fn table_exist(&self, name: &str) -> bool {
        self.replaced.contains_key(name) || self.inner.table_exist(name)
    }
}

async fn collect(ctx: &SessionContext, sql: &str) -> Result<(SchemaRef, Vec<RecordBatch>)> {
    let df = ctx.sql(sql).await?;
    let schema: SchemaRef = Arc::new(df.schema().as_arrow().clone());
    Ok((schema, df.collect().await?))
}

fn strings(batches: &[RecordBatch], column: usize) -> Vec<Option<String>> {
    let mut out = vec![];
    for b in batches {
        let c = datafusion::arrow::compute::cast(b.column(column), &DataType::Utf8)
            .expect("any column casts to text");
        let c = c.as_string::<i32>();
        for r in 0..c.len() {
            out.push((!c.is_null(r)).then(|| c.value(r).to_string()));
        }
    }
    out
}

fn ints(batches: &[RecordBatch], column: usize) -> Vec<i64> {
    strings(batches, column)
        .into_iter()
        .map(|s| s.and_then(|s| s.parse().ok()).unwrap_or(0))
        .collect()
}

/// Add the catalog functions and Panorama's keys and descriptions to a context whose
/// `pg_catalog` datafusion-postgres has set up.
pub async fn install(ctx: &SessionContext, docs: &[TableDoc]) -> Result<()> {
    for f in generic_functions(type_oids(ctx).await?) {
        ctx.register_udf(f);
    }
    let (relations, kinds) = public_relations(ctx).await?;
    let class_oids = class_oids(ctx).await?;
    // `pg_description.classoid` of a table is pg_class's own OID in this catalog, which is
    // what clients' `'pg_catalog.pg_class'::regclass` resolves to.
    let class_oid = class_oids
        .get(&("pg_catalog".to_string(), "pg_class".to_string()))
        .copied()
        .unwrap_or(PG_CLASS_OID);
    ctx.register_udf(function(
        REGCLASS_FUNCTION,
        &[1],
        DataType::Int32,
        Volatility::Stable,
        move |a| {
            let oid = text(&a[0]).and_then(|name| regclass_oid(&class_oids, &name));
            Ok(ScalarValue::Int32(oid))
        },
    ));
    let declared = Arc::new(Declared::build(docs, &relations, &kinds, class_oid));
    for f in declared.functions() {
        ctx.register_udf(f);
    }
    let replaced = replaced_tables(ctx, &declared).await?;
    register_overlay(ctx, replaced).await
}

/// Each type's OID by name (`pg_type`), for `to_regtype`.
async fn type_oids(ctx: &SessionContext) -> Result<HashMap<String, i32>> {
    let (_, types) = collect(ctx, "SELECT typname, oid FROM pg_catalog.pg_type").await?;
    Ok(strings(&types, 0)
        .into_iter()
        .zip(ints(&types, 1))
        .filter_map(|(n, o)| n.map(|n| (n, o as i32)))
        .collect())
}

/// The run's tables and views by name, with their OIDs and columns, and their `relkind`s.
async fn public_relations(
    ctx: &SessionContext,
) -> Result<(HashMap<String, Relation>, HashMap<String, String>)> {
    // Numbering the run's tables gives them their OIDs for the life of the process.
    let (_, rels) = collect(
        ctx,
        "SELECT c.oid, c.relname, c.relnamespace, c.relowner, c.relkind \
         FROM pg_catalog.pg_class c JOIN pg_catalog.pg_namespace n ON c.relnamespace = n.oid \
         WHERE n.nspname = 'public'",
    )
    .await?;
    let (_, atts) = collect(
        ctx,
        "SELECT attrelid, attname, attnum, atttypid FROM pg_catalog.pg_attribute",
    )
    .await?;
    let mut by_oid: HashMap<i64, HashMap<String, i16>> = HashMap::new();
    let mut types_by_oid: HashMap<i64, HashMap<String, i32>> = HashMap::new();
    for (((rel, name), num), ty) in ints(&atts, 0)
        .into_iter()
        .zip(strings(&atts, 1))
        .zip(ints(&atts, 2))
        .zip(ints(&atts, 3))
    {
        if let Some(name) = name {
            by_oid
                .entry(rel)
                .or_default()
                .insert(name.clone(), num as i16);
            types_by_oid.entry(rel).or_default().insert(name, ty as i32);
        }
    }
    let mut relations = HashMap::new();
    let mut kinds = HashMap::new();
    let names = strings(&rels, 1);
    let oids = ints(&rels, 0);
    let namespaces = ints(&rels, 2);
    let owners = ints(&rels, 3);
    let relkinds = strings(&rels, 4);
    for (k, name) in names.into_iter().enumerate() {
        let Some(name) = name else { continue };
        kinds.insert(name.clone(), relkinds[k].clone().unwrap_or_default());
        relations.insert(
            name,
            Relation {
                oid: oids[k] as i32,
                namespace: namespaces[k] as i32,
                owner: owners[k] as i32,
                columns: by_oid.remove(&oids[k]).unwrap_or_default(),
                types: types_by_oid.remove(&oids[k]).unwrap_or_default(),
            },
        );
    }
    Ok((relations, kinds))
}

/// Every relation's OID by schema and name: for computed `::regclass` casts.
async fn class_oids(ctx: &SessionContext) -> Result<HashMap<(String, String), i32>> {
    let (_, classes) = collect(
        ctx,
        "SELECT n.nspname, c.relname, c.oid FROM pg_catalog.pg_class c \
         JOIN pg_catalog.pg_namespace n ON c.relnamespace = n.oid",
    )
    .await?;
    Ok(strings(&classes, 0)
        .into_iter()
        .zip(strings(&classes, 1))
        .zip(ints(&classes, 2))
        .filter_map(|((n, c), o)| Some(((n?, c?), o as i32)))
        .collect())
}

/// The `pg_catalog` tables replaced in the overlay: `pg_index`, `pg_constraint` and
/// `pg_description` made of `declared`'s rows, `pg_attribute` and `pg_class` with them
/// added (and `pg_class` with the columns clients expect), `pg_settings` with the missing
/// settings.
async fn replaced_tables(
    ctx: &SessionContext,
    declared: &Declared,
) -> Result<HashMap<String, Arc<dyn TableProvider>>> {
    let list = |t: DataType| DataType::List(Arc::new(Field::new_list_field(t, true)));
    let mut replaced: HashMap<String, Arc<dyn TableProvider>> = HashMap::new();
    let memtable = |batches: Vec<RecordBatch>| -> Result<Arc<dyn TableProvider>> {
        let schema = batches[0].schema();
        Ok(Arc::new(MemTable::try_new(schema, vec![batches])?))
    };
    let (schema, _) = collect(ctx, "SELECT * FROM pg_catalog.pg_index LIMIT 0").await?;
    let index_types = [
        ("indkey", list(DataType::Int16)),
        ("indoption", list(DataType::Int16)),
        ("indclass", list(DataType::Int32)),
        ("indcollation", list(DataType::Int32)),
    ];
    replaced.insert(
        "pg_index".into(),
        memtable(vec![rows_table(&schema, &index_types, &declared.pg_index)?])?,
    );
    let (schema, _) = collect(ctx, "SELECT * FROM pg_catalog.pg_constraint LIMIT 0").await?;
    let constraint_types = [
        ("conkey", list(DataType::Int16)),
        ("confkey", list(DataType::Int16)),
    ];
    replaced.insert(
        "pg_constraint".into(),
        memtable(vec![rows_table(
            &schema,
            &constraint_types,
            &declared.pg_constraint,
        )?])?,
    );
    let (schema, _) = collect(ctx, "SELECT * FROM pg_catalog.pg_description LIMIT 0").await?;
    replaced.insert(
        "pg_description".into(),
        memtable(vec![rows_table(&schema, &[], &declared.pg_description)?])?,
    );
    let (schema, attributes) = collect(ctx, "SELECT * FROM pg_catalog.pg_attribute").await?;
    replaced.insert(
        "pg_attribute".into(),
        memtable(extended_table(
            &attributes,
            &schema,
            &[],
            &declared.pg_attribute,
        )?)?,
    );
    let (schema, classes) = collect(ctx, "SELECT * FROM pg_catalog.pg_class").await?;
    let acl = [
        Field::new("reloptions", list(DataType::Utf8), true),
        Field::new("relacl", list(DataType::Utf8), true),
    ];
    replaced.insert(
        "pg_class".into(),
        memtable(extended_table(&classes, &schema, &acl, &declared.pg_class)?)?,
    );
    let (schema, settings) = collect(ctx, "SELECT * FROM pg_catalog.pg_settings").await?;
    let missing = missing_settings(&settings);
    replaced.insert(
        "pg_settings".into(),
        memtable(extended_table(&settings, &schema, &[], &missing)?)?,
    );
    Ok(replaced)
}

/// `pg_settings` rows of the settings clients read as rows (pgjdbc: max_index_keys) and
/// `settings` (the table's batches) are missing.
fn missing_settings(settings: &[RecordBatch]) -> Vec<HashMap<&'static str, ScalarValue>> {
    let present: std::collections::HashSet<String> =
        strings(settings, 0).into_iter().flatten().collect();
    super::pg_session::settings(&HashMap::new())
        .into_iter()
        .filter(|(n, _)| !present.contains(n))
        .map(|(n, v)| {
            HashMap::from([
                ("name", ScalarValue::Utf8(Some(n))),
                ("setting", ScalarValue::Utf8(Some(v))),
                ("context", ScalarValue::Utf8(Some("internal".into()))),
                ("vartype", ScalarValue::Utf8(Some("string".into()))),
                ("source", ScalarValue::Utf8(Some("default".into()))),
            ])
        })
        .collect()
}

/// Put `pg_catalog` with the `replaced` tables in place of datafusion-postgres's, and then
/// with the PostgreSQL-shaped `information_schema` tables read from it.
async fn register_overlay(
    ctx: &SessionContext,
    mut replaced: HashMap<String, Arc<dyn TableProvider>>,
) -> Result<()> {
    let catalog = ctx
        .catalog("panorama")
        .ok_or_else(|| Error::Internal("pg_catalog: no catalog `panorama`".into()))?;
    let inner = catalog
        .schema("pg_catalog")
        .ok_or_else(|| Error::Internal("pg_catalog: not set up".into()))?;
    catalog.register_schema(
        "pg_catalog",
        Arc::new(PgCatalogOverlay {
            inner: inner.clone(),
            replaced: replaced.clone(),
        }),
    )?;
    // information_schema as PostgreSQL has it, read from the catalog just made.
    for (name, sql) in INFORMATION_SCHEMA {
        let (schema, batches) = collect(ctx, sql).await?;
        replaced.insert(
            information_schema_table(name),
            Arc::new(MemTable::try_new(schema, vec![batches])?),
        );
    }
    catalog.register_schema("pg_catalog", Arc::new(PgCatalogOverlay { inner, replaced }))?;
    Ok(())
}

/// `information_schema` views PostgreSQL clients read in PostgreSQL's shape, which
/// DataFusion's own differ from or lack: `columns` with PostgreSQL's type names (`text`,
/// `bigint`, `timestamp without time zone`: Grafana picks time columns by them; DataFusion
/// says `Utf8`, `Timestamp(ns)`), `udt_name`, `is_identity`, `is_generated`; and the key
/// views Metabase and Superset read primary and foreign keys from. PostgreSQL connections
/// read them in place of DataFusion's ([`information_schema_table`]); Flight SQL, HTTP and
/// the CLI keep DataFusion's.
const INFORMATION_SCHEMA: &[(&str, &str)] = &[
    (
        "columns",
        "SELECT 'panorama' AS table_catalog, n.nspname AS table_schema, c.relname AS table_name, \
           a.attname AS column_name, CAST(a.attnum AS INT) AS ordinal_position, \
           CAST(NULL AS VARCHAR) AS column_default, \
           CASE WHEN a.attnotnull THEN 'NO' ELSE 'YES' END AS is_nullable, \
           CASE WHEN t.typname LIKE '\\_%' THEN 'ARRAY' \
                WHEN t.typname = 'int8' THEN 'bigint' WHEN t.typname = 'int4' THEN 'integer' \
                WHEN t.typname = 'int2' THEN 'smallint' WHEN t.typname = 'float8' THEN 'double precision' \
                WHEN t.typname = 'float4' THEN 'real' WHEN t.typname = 'bool' THEN 'boolean' \
                WHEN t.typname = 'varchar' THEN 'character varying' WHEN t.typname = 'bpchar' THEN 'character' \
                WHEN t.typname = 'timestamp' THEN 'timestamp without time zone' \
                WHEN t.typname = 'timestamptz' THEN 'timestamp with time zone' \
                WHEN t.typname = 'time' THEN 'time without time zone' \
                WHEN t.typname IS NULL THEN 'text' ELSE t.typname END AS data_type, \
           CAST(NULL AS INT) AS character_maximum_length, CAST(NULL AS INT) AS character_octet_length, \
           CAST(CASE t.typname WHEN 'int8' THEN 64 WHEN 'int4' THEN 32 WHEN 'int2' THEN 16 \
                WHEN 'float8' THEN 53 WHEN 'float4' THEN 24 END AS INT) AS numeric_precision, \
           CAST(CASE WHEN t.typname IN ('int8', 'int4', 'int2', 'float8', 'float4') THEN 2 END AS INT) \
             AS numeric_precision_radix, \
           CAST(CASE WHEN t.typname IN ('int8', 'int4', 'int2') THEN 0 END AS INT) AS numeric_scale, \
           CAST(CASE WHEN t.typname IN ('timestamp', 'timestamptz', 'time') THEN 6 \
                WHEN t.typname = 'date' THEN 0 END AS INT) AS datetime_precision, \
           'panorama' AS udt_catalog, 'pg_catalog' AS udt_schema, coalesce(t.typname, 'text') AS udt_name, \
           CAST(a.attnum AS INT) AS dtd_identifier, 'NO' AS is_self_referencing, 'NO' AS is_identity, \
           'NEVER' AS is_generated, 'NO' AS is_updatable \
         FROM pg_catalog.pg_attribute a \
         JOIN pg_catalog.pg_class c ON a.attrelid = c.oid \
         JOIN pg_catalog.pg_namespace n ON c.relnamespace = n.oid \
         LEFT JOIN pg_catalog.pg_type t ON t.oid = a.atttypid \
         WHERE a.attnum > 0 AND c.relkind IN ('r', 'v', 'm', 'p', 'f')",
    ),
    (
        "table_constraints",
        "SELECT 'panorama' AS constraint_catalog, n.nspname AS constraint_schema, \
           con.conname AS constraint_name, 'panorama' AS table_catalog, n.nspname AS table_schema, \
           c.relname AS table_name, \
           CASE con.contype WHEN 'p' THEN 'PRIMARY KEY' WHEN 'f' THEN 'FOREIGN KEY' \
                WHEN 'u' THEN 'UNIQUE' WHEN 'c' THEN 'CHECK' END AS constraint_type, \
           'NO' AS is_deferrable, 'NO' AS initially_deferred, 'YES' AS enforced \
         FROM pg_catalog.pg_constraint con \
         JOIN pg_catalog.pg_class c ON con.conrelid = c.oid \
         JOIN pg_catalog.pg_namespace n ON c.relnamespace = n.oid",
    ),
    (
        "key_column_usage",
        "SELECT 'panorama' AS constraint_catalog, n.nspname AS constraint_schema, \
           con.conname AS constraint_name, 'panorama' AS table_catalog, n.nspname AS table_schema, \
           c.relname AS table_name, a.attname AS column_name, \
           CAST(array_position(con.conkey, a.attnum) AS INT) AS ordinal_position, \
           CAST(CASE WHEN con.contype = 'f' THEN array_position(con.conkey, a.attnum) END AS INT) \
             AS position_in_unique_constraint \
         FROM pg_catalog.pg_constraint con \
         JOIN pg_catalog.pg_class c ON con.conrelid = c.oid \
         JOIN pg_catalog.pg_namespace n ON c.relnamespace = n.oid \
         JOIN pg_catalog.pg_attribute a ON a.attrelid = con.conrelid AND array_has(con.conkey, a.attnum) \
         WHERE con.contype IN ('p', 'f', 'u')",
    ),
    (
        "referential_constraints",
        "SELECT 'panorama' AS constraint_catalog, n.nspname AS constraint_schema, \
           con.conname AS constraint_name, 'panorama' AS unique_constraint_catalog, \
           n.nspname AS unique_constraint_schema, pk.conname AS unique_constraint_name, \
           'NONE' AS match_option, 'NO ACTION' AS update_rule, 'NO ACTION' AS delete_rule \
         FROM pg_catalog.pg_constraint con \
         JOIN pg_catalog.pg_class c ON con.conrelid = c.oid \
         JOIN pg_catalog.pg_namespace n ON c.relnamespace = n.oid \
         LEFT JOIN pg_catalog.pg_constraint pk ON pk.conrelid = con.confrelid AND pk.contype = 'p' \
         WHERE con.contype = 'f'",
    ),
    (
        "constraint_column_usage",
        "SELECT 'panorama' AS table_catalog, n.nspname AS table_schema, rc.relname AS table_name, \
           a.attname AS column_name, 'panorama' AS constraint_catalog, \
           n.nspname AS constraint_schema, con.conname AS constraint_name \
         FROM pg_catalog.pg_constraint con \
         JOIN pg_catalog.pg_class rc \
           ON rc.oid = CASE WHEN con.contype = 'f' THEN con.confrelid ELSE con.conrelid END \
         JOIN pg_catalog.pg_namespace n ON rc.relnamespace = n.oid \
         JOIN pg_catalog.pg_attribute a ON a.attrelid = rc.oid \
          AND array_has(CASE WHEN con.contype = 'f' THEN con.confkey ELSE con.conkey END, a.attnum)",
    ),
];

/// Functions PostgreSQL clients call in FROM that return one value, not rows (Grafana's table
/// list: `FROM generate_series(…) AS i, string_to_array(current_setting('search_path'), ',')
/// AS parts`). PostgreSQL reads such a call as one row of one column named by its alias;
/// DataFusion looks for a table function of that name.
const SCALAR_IN_FROM: &[&str] = &[
    "string_to_array",
    "regexp_split_to_array",
    "current_schemas",
];

/// `f(args) AS a` in FROM, `f` in [`SCALAR_IN_FROM`] → `(SELECT f(args) AS a) AS a`.
fn scalar_function_in_from(factor: &ast::TableFactor) -> Option<ast::TableFactor> {
    let ast::TableFactor::Table {
        name,
        alias,
        args: Some(args),
        ..
    } = factor
    else {
        return None;
    };
    let function = name.0.last()?.to_string().to_lowercase();
    if name.0.len() > 2 || !SCALAR_IN_FROM.contains(&function.as_str()) {
        return None;
    }
    let alias = alias.clone().unwrap_or(ast::TableAlias {
        explicit: true,
        name: ast::Ident::new(function),
        columns: vec![],
        at: None,
    });
    let column = alias.columns.first().map_or(&alias.name, |c| &c.name);
    let call = args
        .args
        .iter()
        .map(ToString::to_string)
        .collect::<Vec<_>>()
        .join(", ");
    let subquery = datafusion::sql::sqlparser::parser::Parser::new(
        &datafusion::sql::sqlparser::dialect::PostgreSqlDialect {},
    )
    .try_with_sql(&format!("SELECT {name}({call}) AS {column}"))
    .and_then(|mut p| p.parse_query())
    .ok()?;
    Some(ast::TableFactor::Derived {
        lateral: false,
        subquery,
        alias: Some(ast::TableAlias {
            columns: vec![],
            ..alias
        }),
        sample: None,
    })
}

/// `generate_series(…) AS i`: in PostgreSQL `i` names the column too (`parts[i]`);
/// DataFusion calls it `value`. True when the alias was given its column.
fn name_series_column(factor: &mut ast::TableFactor) -> bool {
    let ast::TableFactor::Table {
        name,
        alias: Some(alias),
        args: Some(_),
        ..
    } = factor
    else {
        return false;
    };
    let series = name
        .0
        .last()
        .is_some_and(|n| n.to_string().eq_ignore_ascii_case("generate_series"));
    if !series || !alias.columns.is_empty() {
        return false;
    }
    alias.columns = vec![ast::TableAliasColumnDef {
        name: alias.name.clone(),
        data_type: None,
    }];
    true
}

/// `information_schema.<view>` → the PostgreSQL-shaped table of [`INFORMATION_SCHEMA`],
/// keeping the view's name as the alias so `columns.column_name` still resolves. True when
/// the relation was pointed there.
fn postgresql_information_schema(factor: &mut ast::TableFactor) -> bool {
    let ast::TableFactor::Table {
        name,
        alias,
        args: None,
        ..
    } = factor
    else {
        return false;
    };
    let parts: Vec<String> = name
        .0
        .iter()
        .map(|p| p.to_string().to_lowercase())
        .collect();
    let [schema, view] = parts.as_slice() else {
        return false;
    };
    if schema != "information_schema" || !INFORMATION_SCHEMA.iter().any(|(v, _)| v == view) {
        return false;
    }
    if alias.is_none() {
        *alias = Some(ast::TableAlias {
            explicit: true,
            name: ast::Ident::new(view.clone()),
            columns: vec![],
            at: None,
        });
    }
    *name = ast::ObjectName::from(vec![
        ast::Ident::new("pg_catalog"),
        ast::Ident::new(information_schema_table(view)),
    ]);
    true
}

/// Where a PostgreSQL connection reads `information_schema.<name>` from, for the views of
/// [`INFORMATION_SCHEMA`]: a table of the `pg_catalog` overlay, not listed in `pg_class`.
fn information_schema_table(name: &str) -> String {
    format!("information_schema_{name}")
}

// ---------------------------------------------------------------------------------------
// Rewrites

/// `'pg_class'::regclass` → `'pg_catalog.pg_class'::regclass`: PostgreSQL always searches
/// pg_catalog, datafusion-postgres only the current schema (pgjdbc's table remarks join
/// `pg_description` on `'pg_class'::regclass`). Done on the text, before datafusion-postgres
/// turns the cast into a lookup.
pub fn qualify_catalog_names(sql: &str) -> std::borrow::Cow<'_, str> {
    let qualified = edit_cast_literals(sql, "regclass", |name| {
        let catalog_table =
            name.starts_with("pg_") && name.bytes().all(|b| b.is_ascii_lowercase() || b == b'_');
        catalog_table.then(|| format!("'pg_catalog.{name}'::regclass"))
    });
    // `'pg_catalog.array_in'::regproc` (pgjdbc's getTypeInfo) compares with `typinput`, which
    // this catalog holds as the function's name: compare names.
    let text = qualified.as_deref().unwrap_or(sql);
    let named = edit_cast_literals(text, "regproc", |name| {
        let plain = name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'.');
        plain.then(|| format!("'{}'", name.strip_prefix("pg_catalog.").unwrap_or(name)))
    });
    match (named, qualified) {
        (Some(text), _) | (None, Some(text)) => std::borrow::Cow::Owned(text),
        (None, None) => std::borrow::Cow::Borrowed(sql),
    }
}

/// Each `'literal'::<cast>` of `sql` (the cast's whole word) replaced by what `edit` makes
/// of the literal; `None` from `edit` leaves it. `None`: nothing replaced.
fn edit_cast_literals(
    sql: &str,
    cast: &str,
    edit: impl Fn(&str) -> Option<String>,
) -> Option<String> {
    let marker = format!("'::{cast}");
    let lower = sql.to_ascii_lowercase();
    let mut out = String::new();
    let mut copied = 0;
    let mut from = 0;
    while let Some(at) = lower[from..].find(&marker).map(|i| i + from) {
        let end = at + marker.len();
        from = end;
        if lower[end..].starts_with(|c: char| c.is_ascii_alphanumeric() || c == '_') {
            continue; // a longer type name (regprocedure)
        }
        let Some(open) = sql[..at].rfind('\'') else {
            continue;
        };
        let Some(replacement) = edit(&sql[open + 1..at]) else {
            continue;
        };
        out.push_str(&sql[copied..open]);
        out.push_str(&replacement);
        copied = end;
    }
    (copied > 0).then(|| {
        out.push_str(&sql[copied..]);
        out
    })
}

/// Rewrite what PostgreSQL accepts and DataFusion does not; true when anything changed.
///
/// - `a LIKE p ESCAPE 'c'` → `a LIKE like_escape(p, 'c')` (DataFusion escapes only with `\`);
/// - `information_schema._pg_expandarray(a)` → `unnest(_pg_expandarray(a))`: PostgreSQL runs
///   a set-returning function in the select list once per element, in step with the other
///   ones, which is what DataFusion's `unnest` does.
pub fn rewrite(statement: &mut Statement) -> bool {
    let mut r = Rewriter { changed: false };
    let _ = statement.visit(&mut r);
    r.changed
}

struct Rewriter {
    changed: bool,
}

fn call(name: &str, args: Vec<Expr>) -> Expr {
    Expr::Function(ast::Function {
        name: ast::ObjectName(vec![ObjectNamePart::Identifier(ast::Ident::new(name))]),
        uses_odbc_syntax: false,
        parameters: FunctionArguments::None,
        args: FunctionArguments::List(ast::FunctionArgumentList {
            duplicate_treatment: None,
            args: args
                .into_iter()
                .map(|e| FunctionArg::Unnamed(FunctionArgExpr::Expr(e)))
                .collect(),
            clauses: vec![],
        }),
        filter: None,
        null_treatment: None,
        over: None,
        within_group: vec![],
    })
}

/// An expression from SQL text (the rewrites build their output as text).
fn expr(sql: &str) -> Expr {
    datafusion::sql::sqlparser::parser::Parser::new(
        &datafusion::sql::sqlparser::dialect::PostgreSqlDialect {},
    )
    .try_with_sql(sql)
    .and_then(|mut p| p.parse_expr())
    .expect("rewrites write valid SQL")
}

/// `int2vector`/`oidvector` columns of `pg_index`: PostgreSQL numbers their elements from 0,
/// DataFusion's lists from 1.
const ZERO_BASED: &[&str] = &["indkey", "indoption", "indclass", "indcollation"];

/// The wire type of a `pg_index` vector column as this server sends it (the rewrite above
/// makes the text, "1 2"): `int2vector` or `oidvector`, as in PostgreSQL. psqlODBC's
/// SQLStatistics binds `indkey` and `indoption` with the C type the column's type implies:
/// sent as `text`, it copied the characters into its array of shorts and read their bytes as
/// the key's length ("1 2" → 8,241 columns), reporting `UNKNOWN` columns or crashing.
fn vector_type(column: &str) -> Option<pgwire::api::Type> {
    use pgwire::api::Type;
    match column {
        "indkey" | "indoption" => Some(Type::INT2_VECTOR),
        "indclass" | "indcollation" => Some(Type::OID_VECTOR),
        _ => None,
    }
}

/// `fields` with each text column named as a `pg_index` vector column typed as that vector
/// ([`vector_type`]); `None` when there is none.
pub fn vector_types(
    fields: &[pgwire::api::results::FieldInfo],
) -> Option<Vec<pgwire::api::results::FieldInfo>> {
    use pgwire::api::results::FieldInfo;
    use pgwire::api::Type;
    let typed = |f: &FieldInfo| {
        (*f.datatype() == Type::TEXT)
            .then(|| vector_type(f.name()))
            .flatten()
    };
    if !fields.iter().any(|f| typed(f).is_some()) {
        return None;
    }
    Some(
        fields
            .iter()
            .map(|f| match typed(f) {
                Some(t) => FieldInfo::new(
                    f.name().to_string(),
                    f.table_id(),
                    f.column_id(),
                    t,
                    f.format(),
                ),
                None => f.clone(),
            })
            .collect(),
    )
}

/// A response whose rows carry `pg_index` vector columns, with their types ([`vector_types`]).
pub fn with_vector_types(
    response: pgwire::api::results::Response,
) -> pgwire::api::results::Response {
    use pgwire::api::results::Response;
    match response {
        Response::Query(mut q) => {
            if let Some(fields) = vector_types(&q.row_schema) {
                q.row_schema = std::sync::Arc::new(fields);
            }
            Response::Query(q)
        }
        other => other,
    }
}

/// Boolean columns of the catalog (`indisprimary`, `attisdropped`, `attnotnull`,
/// `relhasindex`, …), which clients compare with `'t'`.
fn is_catalog_flag(column: &str) -> bool {
    ["ind", "att", "rel", "typ", "con", "pro"].iter().any(|p| {
        column.strip_prefix(p).is_some_and(|rest| {
            rest.starts_with("is") || rest.starts_with("has") || rest.starts_with("not")
        })
    })
}

fn last_name(e: &Expr) -> Option<String> {
    match e {
        Expr::Identifier(i) => Some(i.value.to_lowercase()),
        Expr::CompoundIdentifier(parts) => parts.last().map(|i| i.value.to_lowercase()),
        _ => None,
    }
}

/// `unnest(_pg_expandarray(a))` → `a`.
fn expanded_array(e: &Expr) -> Option<String> {
    let e = match e {
        Expr::Nested(inner) => inner.as_ref(),
        other => other,
    };
    let s = e.to_string();
    s.strip_prefix("unnest(_pg_expandarray(")
        .and_then(|r| r.strip_suffix("))"))
        .map(str::to_string)
}

impl VisitorMut for Rewriter {
    type Break = ();

    /// Relations in FROM: scalar functions as one-row tables, `generate_series` aliases naming
    /// its column, `information_schema` views in PostgreSQL's shape.
    fn pre_visit_table_factor(
        &mut self,
        factor: &mut ast::TableFactor,
    ) -> std::ops::ControlFlow<()> {
        if let Some(derived) = scalar_function_in_from(factor) {
            *factor = derived;
            self.changed = true;
        } else {
            self.changed |= name_series_column(factor);
            self.changed |= postgresql_information_schema(factor);
        }
        std::ops::ControlFlow::Continue(())
    }

    fn post_visit_query(&mut self, query: &mut ast::Query) -> std::ops::ControlFlow<()> {
        if let ast::SetExpr::Select(select) = query.body.as_mut() {
            // PostgreSQL allows `SELECT NULL, NULL` (pgjdbc's getProcedures); DataFusion wants
            // distinct names: later repeats of a constant are named `?column?N`.
            let mut seen = std::collections::HashSet::new();
            for (n, item) in select.projection.iter_mut().enumerate() {
                if let ast::SelectItem::UnnamedExpr(e @ Expr::Value(_)) = item {
                    if !seen.insert(e.to_string()) {
                        *item = ast::SelectItem::ExprWithAlias {
                            expr: e.clone(),
                            alias: ast::Ident::with_quote('"', format!("?column?{n}")),
                        };
                        self.changed = true;
                    }
                }
            }
            // An int2vector selected as it is reads "1 2" in PostgreSQL (psqlODBC parses it).
            for item in select.projection.iter_mut() {
                if let ast::SelectItem::UnnamedExpr(e) = item {
                    if let Some(column) = last_name(e).filter(|c| ZERO_BASED.contains(&c.as_str()))
                    {
                        *item = ast::SelectItem::ExprWithAlias {
                            expr: expr(&format!("array_to_string({e}, ' ')")),
                            alias: ast::Ident::new(column),
                        };
                        self.changed = true;
                    }
                }
            }
            for item in select.projection.iter_mut() {
                if let ast::SelectItem::UnnamedExpr(e)
                | ast::SelectItem::ExprWithAlias { expr: e, .. } = item
                {
                    self.changed |= aggregate_scalar_subqueries(e);
                    self.changed |= in_subqueries_to_arrays(e);
                    self.changed |= exists_to_counts(e);
                    // generate_series in a select list returns rows in PostgreSQL, one list
                    // in DataFusion.
                    if matches!(e, Expr::Function(f) if f.name.to_string().eq_ignore_ascii_case("generate_series"))
                    {
                        *e = expr(&format!("unnest({e})"));
                        self.changed = true;
                    }
                }
            }
        }
        if let ast::SetExpr::Select(select) = query.body.as_mut() {
            if let Some(selection) = select.selection.as_mut() {
                self.changed |= predicate_subqueries_to_exists(selection);
            }
        }
        std::ops::ControlFlow::Continue(())
    }

    fn post_visit_expr(&mut self, e: &mut Expr) -> std::ops::ControlFlow<Self::Break> {
        if let Some(lookup) = computed_regclass(e) {
            *e = lookup;
            self.changed = true;
            return std::ops::ControlFlow::Continue(());
        }
        if user_as_session_user(e) || like_escape_as_backslash(e) {
            self.changed = true;
            return std::ops::ControlFlow::Continue(());
        }
        let replacement = match e {
            // datafusion-postgres strips the `information_schema.` qualifier before us.
            Expr::Function(f)
                if f.name
                    .0
                    .last()
                    .is_some_and(|n| n.to_string().eq_ignore_ascii_case("_pg_expandarray")) =>
            {
                let args = match &f.args {
                    FunctionArguments::List(l) => l
                        .args
                        .iter()
                        .map(|a| a.to_string())
                        .collect::<Vec<_>>()
                        .join(", "),
                    _ => String::new(),
                };
                Some(expr(&format!("unnest(_pg_expandarray({args}))")))
            }
            // generate_subscripts(a, 1): the positions 1..n of a's elements, one row each.
            Expr::Function(f)
                if f.name
                    .to_string()
                    .eq_ignore_ascii_case("generate_subscripts")
                    || f.name
                        .to_string()
                        .eq_ignore_ascii_case("pg_catalog.generate_subscripts") =>
            {
                match &f.args {
                    // The dimension stays an argument: it may be a client's bound parameter.
                    FunctionArguments::List(l) if l.args.len() == 2 => Some(expr(&format!(
                        "unnest(generate_series(1, CAST(array_length({}, CAST({} AS BIGINT)) AS BIGINT)))",
                        l.args[0], l.args[1]
                    ))),
                    _ => None,
                }
            }
            Expr::CompoundFieldAccess { root, access_chain } => {
                rewrite_field_access(root, access_chain)
            }
            // PostgreSQL's own string types.
            Expr::Cast {
                kind,
                expr: inner,
                data_type: ast::DataType::Custom(name, modifiers),
                array,
                format,
            } if modifiers.is_empty()
                && matches!(
                    name.to_string().to_lowercase().as_str(),
                    "name" | "pg_catalog.name" | "\"char\"" | "bpchar" | "citext"
                ) =>
            {
                Some(Expr::Cast {
                    kind: kind.clone(),
                    expr: inner.clone(),
                    data_type: ast::DataType::Text,
                    array: *array,
                    format: format.clone(),
                })
            }
            // `i.indisprimary = 't'`: PostgreSQL reads the literal as a boolean.
            Expr::BinaryOp { left, op, right }
                if matches!(op, ast::BinaryOperator::Eq | ast::BinaryOperator::NotEq)
                    && last_name(left).is_some_and(|n| is_catalog_flag(&n)) =>
            {
                boolean_literal(right).map(|f| Expr::BinaryOp {
                    left: left.clone(),
                    op: op.clone(),
                    right: Box::new(Expr::value(Value::Boolean(f))),
                })
            }
            _ => None,
        };
        if let Some(r) = replacement {
            *e = r;
            self.changed = true;
        }
        std::ops::ControlFlow::Continue(())
    }
}

/// `<expression>::regclass` of a computed name (Metabase: `format('%I.%I', schema,
/// table)::regclass`) → a call of [`REGCLASS_FUNCTION`]: datafusion-pg-catalog looks up
/// literals and parameters only, and DataFusion would cast the text to an integer. `None`
/// (and `e` unchanged) for anything else.
fn computed_regclass(e: &mut Expr) -> Option<Expr> {
    let Expr::Cast {
        expr: inner,
        data_type,
        ..
    } = e
    else {
        return None;
    };
    let regclass = data_type
        .to_string()
        .to_lowercase()
        .trim_start_matches("pg_catalog.")
        == "regclass";
    if !regclass || matches!(inner.as_ref(), Expr::Value(_)) {
        return None;
    }
    let name = std::mem::replace(inner.as_mut(), Expr::value(Value::Null));
    Some(call(REGCLASS_FUNCTION, vec![name]))
}

/// `user` is `current_user` in PostgreSQL (Grafana's search-path expansion);
/// datafusion-pg-catalog renames `current_user` to `session_user`, not `user`. True when `e`
/// was a bare `user`, now `session_user`.
fn user_as_session_user(e: &mut Expr) -> bool {
    let Expr::Function(f) = e else {
        return false;
    };
    let bare_user = matches!(f.args, FunctionArguments::None)
        && f.name.0.len() == 1
        && f.name.to_string().eq_ignore_ascii_case("user");
    if bare_user {
        f.name = ast::ObjectName::from(vec![ast::Ident::new("session_user")]);
    }
    bare_user
}

/// `a LIKE p ESCAPE 'c'` (or `ILIKE`) → `a LIKE like_escape(p, 'c')`: DataFusion escapes only
/// with `\`. True when `e` was rewritten.
fn like_escape_as_backslash(e: &mut Expr) -> bool {
    let (Expr::Like {
        pattern,
        escape_char,
        ..
    }
    | Expr::ILike {
        pattern,
        escape_char,
        ..
    }) = e
    else {
        return false;
    };
    if !matches!(escape_char.as_ref().map(|v| &v.value),
            Some(Value::SingleQuotedString(c)) if c != "\\")
    {
        return false;
    }
    let Some(Value::SingleQuotedString(c)) = escape_char.take().map(|v| v.value) else {
        unreachable!("matched above")
    };
    let p = std::mem::replace(pattern.as_mut(), Expr::value(Value::Null));
    **pattern = call(
        "like_escape",
        vec![p, Expr::value(Value::SingleQuotedString(c))],
    );
    true
}

/// The boolean a quoted literal reads as in PostgreSQL (`'t'`, `'off'`, …), if it is one.
fn boolean_literal(e: &Expr) -> Option<bool> {
    let Expr::Value(v) = e else {
        return None;
    };
    match &v.value {
        Value::SingleQuotedString(t) => match t.to_lowercase().as_str() {
            "t" | "true" | "y" | "yes" | "on" | "1" => Some(true),
            "f" | "false" | "n" | "no" | "off" | "0" => Some(false),
            _ => None,
        },
        _ => None,
    }
}

/// `(composite).field` → `get_field(composite, 'field')` (DataFusion reads dots after an
/// expression only into maps), `(_pg_expandarray(a)).x` → the elements of `a` as rows, and
/// `pg_index.indkey[i]` → `indkey[i + 1]` (see [`ZERO_BASED`]).
fn rewrite_field_access(root: &mut Expr, chain: &mut [ast::AccessExpr]) -> Option<Expr> {
    use ast::{AccessExpr, Subscript};
    // a.indkey[i] parses as a (.indkey) [i]; indkey[i] as indkey [i].
    let (column, at) = match (root as &Expr, chain.first()) {
        (r, Some(AccessExpr::Subscript(_))) => (last_name(r), 0),
        (_, Some(AccessExpr::Dot(d))) if matches!(chain.get(1), Some(AccessExpr::Subscript(_))) => {
            (last_name(d), 1)
        }
        _ => (None, 0),
    };
    if column.is_some_and(|c| ZERO_BASED.contains(&c.as_str())) {
        if let AccessExpr::Subscript(Subscript::Index { index }) = &mut chain[at] {
            let shifted = expr(&format!("({index}) + 1"));
            *index = shifted;
            return Some(Expr::CompoundFieldAccess {
                root: Box::new(root.clone()),
                access_chain: chain.to_vec(),
            });
        }
        return None;
    }
    if !matches!(root, Expr::Nested(_)) {
        return None;
    }
    let mut fields = vec![];
    for a in chain.iter() {
        match a {
            AccessExpr::Dot(Expr::Identifier(f)) => fields.push(f.value.to_lowercase()),
            _ => return None,
        }
    }
    let (first, rest) = fields.split_first()?;
    let mut out = match expanded_array(root) {
        Some(array) => expr(&format!(
            "unnest(_pg_expandarray_field({array}, '{first}'))"
        )),
        None => expr(&format!("get_field({root}, '{first}')")),
    };
    for f in rest {
        out = expr(&format!("get_field({out}, '{f}')"));
    }
    Some(out)
}

const AGGREGATES: &[&str] = &[
    "count(",
    "max(",
    "min(",
    "sum(",
    "avg(",
    "array_agg(",
    "bool_and(",
    "bool_or(",
    "string_agg(",
    "json_agg(",
];

/// `x [NOT] IN (SELECT …)` inside a select-list expression (a BI tool naming a table bare
/// when its schema is on the search path: `CASE WHEN quote_ident(table_schema) IN (SELECT …
/// current_setting('search_path') …) THEN …`): DataFusion plans IN-subqueries only as filters
/// ("Physical plan does not support logical expression InSubquery"). As `array_has` over the
/// subquery's values, gathered by a scalar subquery, it plans anywhere; an empty subquery
/// gives false, as in PostgreSQL.
fn in_subqueries_to_arrays(e: &mut Expr) -> bool {
    let mut changed = false;
    let _ = ast::visit_expressions_mut(e, |x| {
        if let Expr::InSubquery {
            expr: needle,
            subquery,
            negated,
        } = x
        {
            let test = format!(
                "coalesce(array_has((SELECT array_agg(in_subquery.v) FROM ({subquery}) AS in_subquery(v)), {needle}), false)"
            );
            *x = expr(&if *negated {
                format!("NOT {test}")
            } else {
                test
            });
            changed = true;
        }
        std::ops::ControlFlow::<()>::Continue(())
    });
    changed
}

/// `EXISTS (subquery)` in a select list (Superset's has-table check), which DataFusion plans
/// only as a filter ("Physical plan does not support logical expression Exists"): a count of
/// the subquery's rows compared with 0 — its select list replaced by `count(*)` when it is a
/// plain SELECT, so a correlated one becomes an aggregating scalar subquery DataFusion turns
/// into a join; else counted as a derived table.
fn exists_to_counts(e: &mut Expr) -> bool {
    let mut changed = false;
    let _ = ast::visit_expressions_mut(e, |x| {
        if let Expr::Exists { subquery, negated } = x {
            let plain = subquery.limit_clause.is_none()
                && subquery.order_by.is_none()
                && subquery.with.is_none()
                && matches!(subquery.body.as_ref(), ast::SetExpr::Select(s)
                    if s.having.is_none()
                        && s.distinct.is_none()
                        && matches!(&s.group_by, ast::GroupByExpr::Expressions(g, _) if g.is_empty()));
            let count = if plain {
                let mut q = subquery.clone();
                if let ast::SetExpr::Select(s) = q.body.as_mut() {
                    s.projection = vec![ast::SelectItem::UnnamedExpr(expr("count(*)"))];
                }
                format!("({q})")
            } else {
                format!("(SELECT count(*) FROM ({subquery}) AS exists_subquery)")
            };
            let op = if *negated { "=" } else { ">" };
            *x = expr(&format!("({count} {op} 0)"));
            changed = true;
        }
        std::ops::ControlFlow::<()>::Continue(())
    });
    changed
}

/// Scalar subqueries in a select list that pick one row by a correlated condition
/// (`(SELECT pg_get_expr(d.adbin, d.adrelid) FROM pg_attrdef d WHERE d.adrelid = a.attrelid
/// AND d.adnum = a.attnum)`, SQLAlchemy) take `max(…)` of their value: DataFusion turns only
/// aggregating subqueries into joins, and over at most one row the two agree.
fn aggregate_scalar_subqueries(e: &mut Expr) -> bool {
    struct Wrap(bool);
    impl VisitorMut for Wrap {
        type Break = ();
        fn pre_visit_expr(&mut self, e: &mut Expr) -> std::ops::ControlFlow<()> {
            let Expr::Subquery(q) = e else {
                return std::ops::ControlFlow::Continue(());
            };
            let q = q.as_mut();
            let ast::SetExpr::Select(select) = q.body.as_mut() else {
                return std::ops::ControlFlow::Continue(());
            };
            let grouped =
                !matches!(&select.group_by, ast::GroupByExpr::Expressions(g, _) if g.is_empty());
            if grouped || select.having.is_some() || select.selection.is_none() {
                return std::ops::ControlFlow::Continue(());
            }
            if let [item] = select.projection.as_mut_slice() {
                let (ast::SelectItem::UnnamedExpr(value)
                | ast::SelectItem::ExprWithAlias { expr: value, .. }) = item
                else {
                    return std::ops::ControlFlow::Continue(());
                };
                let text = value.to_string().to_lowercase();
                if AGGREGATES.iter().any(|a| text.contains(a)) {
                    return std::ops::ControlFlow::Continue(());
                }
                *value = expr(&format!("max({value})"));
                // datafusion-postgres adds LIMIT 1; over one aggregate row it is moot.
                q.limit_clause = None;
                self.0 = true;
                // Conditions on the outer row alone (`WHERE pg_attribute.atthasdef AND …`)
                // move out into a CASE: DataFusion cannot decorrelate them inside.
                let inner = relations_of(select);
                let selection = select.selection.take().expect("checked above");
                let (outer, own): (Vec<Expr>, Vec<Expr>) = conjuncts(selection)
                    .into_iter()
                    .partition(|c| only_outer(c, &inner));
                // No column has a sequence: a condition on one never holds (SQLAlchemy's
                // identity options compare with a REGCLASS cast of it, which DataFusion
                // cannot decorrelate).
                let own = own.into_iter().map(|c| {
                    if c.to_string()
                        .to_lowercase()
                        .contains("pg_get_serial_sequence(")
                    {
                        expr("false")
                    } else {
                        c
                    }
                });
                select.selection = own.reduce(|a, b| expr(&format!("({a}) AND ({b})")));
                if select.selection.as_ref().map(|w| w.to_string()).as_deref() == Some("false") {
                    // No row: the subquery's value is NULL. Its parameters stay in the
                    // statement, typed as they were, so the client's binds still line up.
                    let mut params = placeholders(e);
                    for c in &outer {
                        for p in placeholders(c) {
                            if !params.contains(&p) {
                                params.push(p);
                            }
                        }
                    }
                    *e = if params.is_empty() {
                        Expr::value(Value::Null)
                    } else {
                        expr(&format!(
                            "CASE WHEN false THEN concat({}) END",
                            params.join(", ")
                        ))
                    };
                    return std::ops::ControlFlow::Continue(());
                }
                if !outer.is_empty() {
                    let condition = outer
                        .iter()
                        .map(|c| format!("({c})"))
                        .collect::<Vec<_>>()
                        .join(" AND ");
                    let subquery = std::mem::replace(e, Expr::value(Value::Null));
                    *e = expr(&format!("CASE WHEN {condition} THEN {subquery} END"));
                }
            }
            std::ops::ControlFlow::Continue(())
        }
    }
    let mut w = Wrap(false);
    let _ = e.visit(&mut w);
    w.0
}

/// The `$n` parameters in an expression, with their casts (`CAST($2 AS VARCHAR)`).
fn placeholders(e: &Expr) -> Vec<String> {
    struct P(Vec<String>, std::collections::HashSet<String>);
    impl ast::Visitor for P {
        type Break = ();
        fn pre_visit_expr(&mut self, e: &Expr) -> std::ops::ControlFlow<()> {
            let placeholder = |e: &Expr| match e {
                Expr::Value(v) => match &v.value {
                    Value::Placeholder(p) => Some(p.clone()),
                    _ => None,
                },
                _ => None,
            };
            if let Expr::Cast { expr: inner, .. } = e {
                if let Some(p) = placeholder(inner) {
                    if self.1.insert(p) {
                        self.0.push(e.to_string());
                    }
                }
            } else if let Some(p) = placeholder(e) {
                if self.1.insert(p.clone()) {
                    self.0.push(p);
                }
            }
            std::ops::ControlFlow::Continue(())
        }
    }
    let mut p = P(vec![], Default::default());
    let _ = ast::Visit::visit(e, &mut p);
    p.0
}

/// The names a query's FROM relations can be referred to by (table names, their last
/// part, aliases), lower-cased.
fn relations_of(select: &ast::Select) -> Vec<String> {
    let mut names = vec![];
    let mut add = |f: &ast::TableFactor| {
        if let ast::TableFactor::Table { name, alias, .. } = f {
            names.push(name.to_string().to_lowercase());
            if let Some(last) = name.0.last() {
                names.push(last.to_string().to_lowercase());
            }
            if let Some(a) = alias {
                names.push(a.name.value.to_lowercase());
            }
        }
    };
    for t in &select.from {
        add(&t.relation);
        for j in &t.joins {
            add(&j.relation);
        }
    }
    names
}

fn conjuncts(e: Expr) -> Vec<Expr> {
    match e {
        Expr::BinaryOp {
            left,
            op: ast::BinaryOperator::And,
            right,
        } => {
            let mut v = conjuncts(*left);
            v.extend(conjuncts(*right));
            v
        }
        Expr::Nested(inner)
            if matches!(
                inner.as_ref(),
                Expr::BinaryOp {
                    op: ast::BinaryOperator::And,
                    ..
                }
            ) =>
        {
            conjuncts(*inner)
        }
        other => vec![other],
    }
}

/// Whether a condition names columns, all qualified by relations other than `inner`.
fn only_outer(e: &Expr, inner: &[String]) -> bool {
    struct Names {
        outer: usize,
        other: usize,
        inner: Vec<String>,
    }
    impl ast::Visitor for Names {
        type Break = ();
        fn pre_visit_expr(&mut self, e: &Expr) -> std::ops::ControlFlow<()> {
            match e {
                Expr::CompoundIdentifier(parts) if parts.len() >= 2 => {
                    let qualifier = parts[..parts.len() - 1]
                        .iter()
                        .map(|p| p.value.to_lowercase())
                        .collect::<Vec<_>>()
                        .join(".");
                    if self.inner.contains(&qualifier) {
                        self.other += 1;
                    } else {
                        self.outer += 1;
                    }
                }
                Expr::Identifier(_) | Expr::Subquery(_) | Expr::Exists { .. } => self.other += 1,
                _ => {}
            }
            std::ops::ControlFlow::Continue(())
        }
    }
    let mut n = Names {
        outer: 0,
        other: 0,
        inner: inner.to_vec(),
    };
    let _ = ast::Visit::visit(e, &mut n);
    n.outer > 0 && n.other == 0
}

/// In a WHERE clause, a scalar subquery used as a condition (`… OR (SELECT c.relkind = 'c'
/// FROM pg_class c WHERE c.oid = t.typrelid)`, pgjdbc) becomes `EXISTS (… AND condition)`,
/// which DataFusion decorrelates. Only under AND/OR, where a NULL and a false both drop the
/// row, so the two agree.
fn predicate_subqueries_to_exists(e: &mut Expr) -> bool {
    match e {
        Expr::BinaryOp {
            left,
            op: ast::BinaryOperator::And | ast::BinaryOperator::Or,
            right,
        } => {
            let l = predicate_subqueries_to_exists(left);
            let r = predicate_subqueries_to_exists(right);
            l || r
        }
        Expr::Nested(inner) => predicate_subqueries_to_exists(inner),
        Expr::Subquery(q) => {
            let ast::SetExpr::Select(select) = q.body.as_ref() else {
                return false;
            };
            let [ast::SelectItem::UnnamedExpr(condition)] = select.projection.as_slice() else {
                return false;
            };
            let grouped =
                !matches!(&select.group_by, ast::GroupByExpr::Expressions(g, _) if g.is_empty());
            if grouped || select.having.is_some() || q.limit_clause.is_some() {
                return false;
            }
            let mut select = select.as_ref().clone();
            select.selection = Some(match select.selection.take() {
                Some(w) => expr(&format!("({w}) AND ({condition})")),
                None => condition.clone(),
            });
            select.projection = vec![ast::SelectItem::UnnamedExpr(expr("1"))];
            let mut query = q.as_ref().clone();
            query.body = Box::new(ast::SetExpr::Select(Box::new(select)));
            *e = Expr::Exists {
                subquery: Box::new(query),
                negated: false,
            };
            true
        }
        _ => false,
    }
}

#[cfg(test)]
mod tests {

    #[test]
    fn format_as_postgresql() {
        let a = |v: &[Option<&str>]| v.iter().map(|s| s.map(str::to_string)).collect::<Vec<_>>();
        assert_eq!(
            pg_format("%I.%I", &a(&[Some("public"), Some("Segment Members")])).unwrap(),
            "public.\"Segment Members\""
        );
        assert_eq!(
            pg_format("%s = %L or %L, 100%%", &a(&[Some("x"), Some("it's"), None])).unwrap(),
            "x = 'it''s' or NULL, 100%"
        );
        assert_eq!(
            pg_format("%2$s %1$s %s", &a(&[Some("a"), Some("b")])).unwrap(),
            "b a b"
        );
        assert!(pg_format("%s %s", &a(&[Some("a")])).is_err());
        assert!(pg_format("%I", &a(&[None])).is_err());
    }

    use super::*;
    use datafusion::sql::sqlparser::dialect::PostgreSqlDialect;
    use datafusion::sql::sqlparser::parser::Parser;

    fn rewritten(sql: &str) -> String {
        let mut s = Parser::parse_sql(&PostgreSqlDialect {}, sql)
            .unwrap()
            .remove(0);
        rewrite(&mut s);
        s.to_string()
    }

    #[test]
    fn like_escape_uses_backslash() {
        assert_eq!(like_escape("pg/_%", '/'), "pg\\_%");
        assert_eq!(like_escape("a\\b", '/'), "a\\\\b");
        assert_eq!(like_escape("//x", '/'), "\\/x");
        assert_eq!(
            rewritten("SELECT 1 WHERE n NOT LIKE 'pg/_' || '%' ESCAPE '/'"),
            "SELECT 1 WHERE n NOT LIKE like_escape('pg/_' || '%', '/')"
        );
        // Backslash is DataFusion's own escape: left alone.
        assert_eq!(
            rewritten("SELECT 1 WHERE n LIKE 'a\\_' ESCAPE '\\'"),
            "SELECT 1 WHERE n LIKE 'a\\_' ESCAPE '\\'"
        );
    }

    #[test]
    fn catalog_names_are_qualified() {
        assert_eq!(
            qualify_catalog_names("SELECT 1 WHERE d.classoid = 'pg_class'::regclass AND x = 'pg_catalog.pg_type'::REGCLASS"),
            "SELECT 1 WHERE d.classoid = 'pg_catalog.pg_class'::regclass AND x = 'pg_catalog.pg_type'::REGCLASS"
        );
        assert_eq!(
            qualify_catalog_names("SELECT 'my_table'::regclass"),
            "SELECT 'my_table'::regclass"
        );
        assert_eq!(
            qualify_catalog_names(
                "SELECT typinput='pg_catalog.array_in'::regproc, 'f'::regprocedure"
            ),
            "SELECT typinput='array_in', 'f'::regprocedure"
        );
    }

    #[test]
    fn catalog_idioms() {
        assert_eq!(
            rewritten(
                "SELECT information_schema._pg_expandarray(i.indkey) AS keys FROM pg_index i"
            ),
            "SELECT unnest(_pg_expandarray(i.indkey)) AS keys FROM pg_index i"
        );
        assert_eq!(
            rewritten("SELECT (r.keys).x FROM r"),
            "SELECT get_field((r.keys), 'x') FROM r"
        );
        assert_eq!(
            rewritten("SELECT i.indkey[a.attnum - 1], c.conkey[1], i.indkey FROM pg_index i"),
            "SELECT i.indkey[(a.attnum - 1) + 1], c.conkey[1], array_to_string(i.indkey, ' ') AS indkey FROM pg_index i"
        );
        assert_eq!(
            rewritten("SELECT generate_subscripts(i.indkey, 1) FROM pg_index i"),
            "SELECT unnest(generate_series(1, CAST(array_length(i.indkey, CAST(1 AS BIGINT)) AS BIGINT))) FROM pg_index i"
        );
        assert_eq!(
            rewritten("SELECT 1 FROM t WHERE t.a = 0 OR (SELECT c.k = 'c' FROM c WHERE c.oid = t.r)"),
            "SELECT 1 FROM t WHERE t.a = 0 OR EXISTS (SELECT 1 FROM c WHERE (c.oid = t.r) AND (c.k = 'c'))"
        );
        assert_eq!(
            rewritten("SELECT 1 FROM pg_index i WHERE i.indisprimary = 't' AND c.relkind = 't'"),
            "SELECT 1 FROM pg_index i WHERE i.indisprimary = true AND c.relkind = 't'"
        );
        assert_eq!(
            rewritten("SELECT 'p'::name, generate_series(1, 3) AS i FROM t"),
            "SELECT 'p'::TEXT, unnest(generate_series(1, 3)) AS i FROM t"
        );
    }

    #[test]
    fn in_subqueries_in_a_select_list_become_array_tests() {
        assert_eq!(
            rewritten("SELECT CASE WHEN s IN (SELECT trim(p) FROM x) THEN 1 END FROM t WHERE a IN (SELECT b FROM u)"),
            "SELECT CASE WHEN coalesce(array_has((SELECT array_agg(in_subquery.v) FROM (SELECT TRIM(p) FROM x) AS in_subquery (v)), s), false) THEN 1 END FROM t WHERE a IN (SELECT b FROM u)"
        );
        assert_eq!(
            rewritten("SELECT s NOT IN (SELECT p FROM x) AS off FROM t"),
            "SELECT NOT coalesce(array_has((SELECT array_agg(in_subquery.v) FROM (SELECT p FROM x) AS in_subquery (v)), s), false) AS off FROM t"
        );
    }

    #[test]
    fn expandarray_becomes_unnest() {
        assert_eq!(
            rewritten("SELECT (information_schema._pg_expandarray(i.indkey)).n FROM pg_index i"),
            "SELECT unnest(_pg_expandarray_field(i.indkey, 'n')) FROM pg_index i"
        );
    }
}
