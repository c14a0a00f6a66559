//! Staging: one normalized row per source record, in one shape for every source, as the SQL
//! view `unify_records`. Normalizers are our UDFs; unmapped fields are NULL.

use super::config::SourceMap;

/// A SQL identifier, quoted.
pub(crate) fn ident(col: &str) -> String {
    format!("\"{}\"", col.replace('"', "\"\""))
}

/// A SQL string literal.
pub(crate) fn literal(s: &str) -> String {
    format!("'{}'", s.replace('\'', "''"))
}

/// The last nine digits of a phone number: the same whatever its format or country prefix
/// (a UDF: `regexp_replace` compiled its pattern on every call, which real-time matching of
/// one record at a time paid in full).
pub(crate) fn phone_digits(expr: &str) -> String {
    format!("phone_digits({expr})")
}

/// A mapped column as a SQL expression, or a typed NULL.
fn col(map: &Option<String>, sql_type: &str) -> String {
    match map {
        Some(c) => format!("CAST({} AS {sql_type})", ident(c)),
        None => format!("CAST(NULL AS {sql_type})"),
    }
}

/// The SELECT of one source for the `unify_records` union.
pub fn source_select(source: &str, map: &SourceMap, record_id: &str, priority: i64) -> String {
    let full = map
        .full_name
        .as_ref()
        .map(|c| format!("split_full_name(CAST({} AS VARCHAR))", ident(c)));
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
    let region = match &map.default_region {
        Some(r) => format!("COALESCE(upper({country}), {})", literal(r)),
        None => format!("upper({country})"),
    };
    format!(
        "SELECT {src} || ':' || CAST({rid} AS VARCHAR) AS uid, {src} AS source, CAST({rid} AS VARCHAR) AS record_id, \
         CAST({priority} AS BIGINT) AS source_priority,
       canonical_first_name({raw_first}) AS first_name,
       substr(normalize_name({raw_first}), 1, 1) AS first_initial,
       normalize_name({raw_last}) AS last_name,
       double_metaphone({raw_last}) AS last_name_phonetic,
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
       trim({postcode}) AS raw_postcode, trim({city}) AS raw_city, trim({company}) AS raw_company
FROM {table}",
        src = literal(source),
        rid = ident(record_id),
        email = col(&map.email, "VARCHAR"),
        phone = col(&map.phone, "VARCHAR"),
        phone_digits = phone_digits(&col(&map.phone, "VARCHAR")),
        street = col(&map.street, "VARCHAR"),
        postcode = col(&map.postcode, "VARCHAR"),
        city = col(&map.city, "VARCHAR"),
        birth = col(&map.birth_date, "DATE"),
        gender = col(&map.gender, "VARCHAR"),
        company = col(&map.company, "VARCHAR"),
        updated = col(&map.updated_at, "TIMESTAMP"),
        table = ident(source),
    )
}
