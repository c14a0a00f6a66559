//! Staging: one normalized row per source record, in one shape for every source, as the SQL
//! view `unify_records`. Normalizers are our UDFs; unmapped fields are NULL.

use super::config::{Mapped, SourceMap};
use super::fields::{stage_sql, CustomFields};
use crate::error::{Error, Result};

pub(crate) use crate::sql_text::{ident, literal};

/// The last nine digits of a phone number: the same whatever its format or country prefix
/// (a UDF: `regexp_replace` compiled its pattern on every call, which real-time matching of
/// one record at a time paid in full).
pub(crate) fn phone_digits(expr: &str) -> String {
    format!("phone_digits({expr})")
}

/// A mapped value as a SQL expression of a type, or a typed NULL. `TRY_CAST`: a value that
/// does not convert is NULL for matching (and counted), never a failed run.
fn col(map: &Option<Mapped>, sql_type: &str) -> String {
    match map {
        Some(m) if sql_type == "VARCHAR" => format!("CAST({} AS VARCHAR)", m.sql()),
        Some(m) => format!("TRY_CAST({} AS {sql_type})", m.sql()),
        None => format!("CAST(NULL AS {sql_type})"),
    }
}

/// The mapped values that are typed by staging (dates, timestamps, custom fields), as
/// `(field, raw SQL, staged SQL)`: a raw value present whose staged value is NULL did not
/// convert, and is counted in `unify_stats.conversion_failures`.
pub fn typed_values(
    map: &SourceMap,
    custom: &CustomFields,
) -> Result<Vec<(String, String, String)>> {
    let mut out = Vec::new();
    if let Some(m) = &map.birth_date {
        out.push((
            "birth_date".into(),
            m.sql(),
            format!("parse_date({})", m.sql()),
        ));
    }
    if let Some(m) = &map.updated_at {
        out.push((
            "updated_at".into(),
            m.sql(),
            col(&map.updated_at, "TIMESTAMP"),
        ));
    }
    for (name, m) in map
        .custom_fields(custom)
        .map_err(|m| Error::invalid("unify.sources", m))?
    {
        let def = &custom[&name];
        out.push((name, m.sql(), stage_sql(def, &m.sql())));
    }
    Ok(out)
}

/// A mapped value that staging parses, and how: a non-empty raw value whose parsed value is
/// NULL did not parse.
#[derive(Debug, Clone, PartialEq)]
pub struct ParsedValue {
    pub field: String,
    /// The source column, when the value is one column (not an expression).
    pub column: Option<String>,
    /// The mapped value as SQL over the source table.
    pub raw: String,
    /// The value as staged: `normalize_email`, `normalize_phone` (E.164), `parse_date`, ...
    pub parsed: String,
}

/// The mapped values staging parses (e-mail, phone, birth date, `updated_at`, custom
/// fields), for parse rates in `source_profiles` and `mapped_parse_rate` expectations —
/// with the same SQL `unify_records` stages them by.
pub fn parsed_values(map: &SourceMap, custom: &CustomFields) -> Result<Vec<ParsedValue>> {
    let mut out = Vec::new();
    let mut add = |field: &str, m: &Mapped, parsed: String| {
        out.push(ParsedValue {
            field: field.to_string(),
            column: m.column().map(str::to_string),
            raw: m.sql(),
            parsed,
        })
    };
    if let Some(m) = &map.email {
        add(
            "email",
            m,
            format!("normalize_email({}, true)", col(&map.email, "VARCHAR")),
        );
    }
    if let Some(m) = &map.phone {
        add(
            "phone",
            m,
            format!(
                "normalize_phone({}, {})",
                col(&map.phone, "VARCHAR"),
                phone_region(map)
            ),
        );
    }
    if let Some(m) = &map.birth_date {
        add("birth_date", m, format!("parse_date({})", m.sql()));
    }
    if let Some(m) = &map.updated_at {
        add("updated_at", m, col(&map.updated_at, "TIMESTAMP"));
    }
    let mapped = map
        .custom_fields(custom)
        .map_err(|m| Error::invalid("unify.sources", m))?;
    for (name, m) in &mapped {
        add(name, m, stage_sql(&custom[name], &m.sql()));
    }
    Ok(out)
}

/// The region national phone numbers are read in: the record's country, else the source's
/// `default_region`.
fn phone_region(map: &SourceMap) -> String {
    let country = col(&map.country, "VARCHAR");
    match &map.default_region {
        Some(r) => format!("COALESCE(upper({country}), {})", literal(r)),
        None => format!("upper({country})"),
    }
}

/// The SELECT of one source for the `unify_records` union.
pub fn source_select(
    source: &str,
    map: &SourceMap,
    record_id: &str,
    priority: i64,
    custom: &CustomFields,
) -> Result<String> {
    let full = map
        .full_name
        .as_ref()
        .map(|c| format!("split_full_name(CAST({} AS VARCHAR))", c.sql()));
    let raw_first = match (&map.first_name, &full) {
        (Some(_), _) => col(&map.first_name, "VARCHAR"),
        (None, Some(f)) => format!("{f}['first']"),
        _ => "CAST(NULL AS VARCHAR)".into(),
    };
    let raw_last = match (&map.last_name, &full) {
        (Some(_), _) => col(&map.last_name, "VARCHAR"),
        (None, Some(f)) => format!("{f}['last']"),
        _ => "CAST(NULL AS VARCHAR)".into(),
    };
    let country = col(&map.country, "VARCHAR");
    let region = phone_region(map);
    let mapped = map
        .custom_fields(custom)
        .map_err(|m| Error::invalid("unify.sources", m))?;
    let custom_cols: String = custom
        .iter()
        .map(|(name, def)| {
            let v = match mapped.get(name) {
                Some(m) => stage_sql(def, &m.sql()),
                None => format!("CAST(NULL AS {})", def.kind.sql_type()),
            };
            format!(",\n       {v} AS {}", ident(name))
        })
        .collect();
    Ok(format!(
        "SELECT {src} || ':' || CAST({rid} AS VARCHAR) AS uid, {src} AS source, CAST({rid} AS VARCHAR) AS record_id, \
         CAST({priority} AS BIGINT) AS source_priority,
       canonical_first_name({raw_first}) AS first_name,
       substr(normalize_name({raw_first}), 1, 1) AS first_initial,
       normalize_surname({raw_last}) AS last_name,
       double_metaphone(normalize_surname({raw_last})) AS last_name_phonetic,
       normalize_email({email}, true) AS email,
       normalize_phone({phone}, {region}) AS phone,
       {phone_digits} AS phone_digits,
       normalize_address({street}) AS street,
       upper(replace({postcode}, ' ', '')) AS postcode,
       normalize_name({city}) AS city,
       upper({country}) AS country,
       {birth} AS birth_date,
       upper(substr(trim({gender}), 1, 1)) AS gender,
       normalize_company({company}) AS company,
       {updated} AS updated_at,
       trim({raw_first}) AS raw_first_name, trim({raw_last}) AS raw_last_name,
       trim({email}) AS raw_email, trim({phone}) AS raw_phone, trim({street}) AS raw_street,
       trim({postcode}) AS raw_postcode, trim({city}) AS raw_city, trim({company}) AS raw_company{custom_cols}
FROM {table}",
        src = literal(source),
        rid = ident(record_id),
        email = col(&map.email, "VARCHAR"),
        phone = col(&map.phone, "VARCHAR"),
        phone_digits = phone_digits(&col(&map.phone, "VARCHAR")),
        street = col(&map.street, "VARCHAR"),
        postcode = col(&map.postcode, "VARCHAR"),
        city = col(&map.city, "VARCHAR"),
        birth = match &map.birth_date {
            Some(m) => format!("parse_date({})", m.sql()),
            None => "CAST(NULL AS DATE)".into(),
        },
        gender = col(&map.gender, "VARCHAR"),
        company = col(&map.company, "VARCHAR"),
        updated = col(&map.updated_at, "TIMESTAMP"),
        table = ident(source),
    ))
}
