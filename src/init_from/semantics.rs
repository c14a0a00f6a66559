//! What a column holds: a guess from its name (in English, Dutch, German, French, Spanish and
//! Italian) checked against its values, or from its values alone when the name says nothing
//! or misleads. Every guess carries its evidence, written beside the mapping in the config.

use std::collections::HashMap;

use panorama_udfs::dates::{parse_date_days, Order};
pub use panorama_udfs::normalize::phone_region;
use panorama_udfs::normalize::{canonical_email, is_valid_phone};

use super::sample::SampledColumn;

/// What a column is for.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Kind {
    FirstName,
    /// Dutch `tussenvoegsel`: "van der", written before the surname.
    NameParticle,
    LastName,
    FullName,
    Email,
    Phone,
    Street,
    HouseNumber,
    /// A whole address in one string: "Kerkstraat 12, 1234 AB Amsterdam".
    Address,
    Postcode,
    City,
    Country,
    BirthDate,
    BirthYear,
    BirthMonth,
    BirthDay,
    Gender,
    Company,
    UpdatedAt,
    /// A strong identifier a person keeps: national id, customer or card number.
    Identifier,
    /// Cookie or device id: many events per value.
    AnonymousId,
    Timestamp,
    Amount,
    EventType,
}

impl Kind {
    pub fn label(self) -> &'static str {
        match self {
            Kind::FirstName => "first name",
            Kind::NameParticle => "surname particle",
            Kind::LastName => "last name",
            Kind::FullName => "full name",
            Kind::Email => "e-mail",
            Kind::Phone => "phone",
            Kind::Street => "street",
            Kind::HouseNumber => "house number",
            Kind::Address => "one-string address",
            Kind::Postcode => "postcode",
            Kind::City => "city",
            Kind::Country => "country",
            Kind::BirthDate => "birth date",
            Kind::BirthYear => "birth year",
            Kind::BirthMonth => "birth month",
            Kind::BirthDay => "birth day",
            Kind::Gender => "gender",
            Kind::Company => "company",
            Kind::UpdatedAt => "last-updated time",
            Kind::Identifier => "identifier",
            Kind::AnonymousId => "anonymous id",
            Kind::Timestamp => "event time",
            Kind::Amount => "amount",
            Kind::EventType => "event type",
        }
    }

    /// Fields that describe a person (make a source one to unify).
    pub fn is_person_field(self) -> bool {
        !matches!(
            self,
            Kind::UpdatedAt
                | Kind::AnonymousId
                | Kind::Timestamp
                | Kind::Amount
                | Kind::EventType
                | Kind::Country
                | Kind::Gender
        )
    }
}

/// Column names per kind, compared after [`name_key`] (lower case, accents and separators
/// dropped: `E-Mail` → `email`, `Geburtsdatum` → `geburtsdatum`). Exact keys first; then
/// `CONTAINS` for longer names (`customer_email_address`).
const NAMES: &[(Kind, &[&str])] = &[
    (
        Kind::Email,
        &[
            "email",
            "emailaddress",
            "mail",
            "emailadres",
            "mailadres",
            "courriel",
            "correo",
            "correoelectronico",
            "epost",
            "emailadresse",
            "adressemail",
            "mailadresse",
        ],
    ),
    (
        Kind::Phone,
        &[
            "phone",
            "phonenumber",
            "tel",
            "telephone",
            "telefoon",
            "telefoonnummer",
            "telefon",
            "telefonnummer",
            "telefono",
            "mobile",
            "mobilephone",
            "mobiel",
            "mobil",
            "mobilnummer",
            "handy",
            "gsm",
            "cell",
            "cellphone",
            "movil",
            "celular",
            "cellulare",
            "portable",
            "numerotelephone",
            "landline",
            "phone1",
            "tel1",
        ],
    ),
    (
        Kind::FirstName,
        &[
            "firstname",
            "givenname",
            "givennames",
            "forename",
            "voornaam",
            "voornamen",
            "roepnaam",
            "vorname",
            "vornamen",
            "prenom",
            "nombre",
            "nome",
            "fname",
            "first",
        ],
    ),
    (
        Kind::NameParticle,
        &[
            "tussenvoegsel",
            "tussenvoegsels",
            "voorvoegsel",
            "nameprefix",
            "surnameprefix",
        ],
    ),
    (
        Kind::LastName,
        &[
            "lastname",
            "surname",
            "familyname",
            "achternaam",
            "geslachtsnaam",
            "nachname",
            "familienname",
            "nom",
            "nomdefamille",
            "nomfamille",
            "apellido",
            "apellidos",
            "cognome",
            "lname",
            "last",
        ],
    ),
    (
        Kind::FullName,
        &[
            "name",
            "fullname",
            "naam",
            "volledigenaam",
            "nomcomplet",
            "nombrecompleto",
            "nomecompleto",
            "customername",
            "contactname",
            "kundenname",
            "klantnaam",
            "personname",
        ],
    ),
    (
        Kind::Street,
        &[
            "street",
            "streetaddress",
            "address1",
            "addressline1",
            "straat",
            "straatnaam",
            "strasse",
            "rue",
            "calle",
            "via",
            "streetname",
            "adresregel1",
        ],
    ),
    (
        Kind::HouseNumber,
        &[
            "housenumber",
            "huisnummer",
            "hausnummer",
            "streetnumber",
            "numero",
            "nr",
            "houseno",
            "hausnr",
            "huisnr",
        ],
    ),
    (
        Kind::Address,
        &[
            "address",
            "adres",
            "adresse",
            "direccion",
            "indirizzo",
            "fulladdress",
            "postaladdress",
            "anschrift",
            "woonadres",
        ],
    ),
    (
        Kind::Postcode,
        &[
            "postcode",
            "postalcode",
            "zip",
            "zipcode",
            "plz",
            "postleitzahl",
            "codepostal",
            "cp",
            "cap",
            "codigopostal",
            "postnummer",
        ],
    ),
    (
        Kind::City,
        &[
            "city",
            "town",
            "woonplaats",
            "plaats",
            "stad",
            "ort",
            "stadt",
            "wohnort",
            "ville",
            "ciudad",
            "citta",
            "localite",
            "localidad",
            "gemeente",
            "municipality",
            "suburb",
        ],
    ),
    (
        Kind::Country,
        &[
            "country",
            "countrycode",
            "land",
            "landcode",
            "pays",
            "pais",
            "paese",
            "nation",
        ],
    ),
    (
        Kind::BirthDate,
        &[
            "birthdate",
            "dateofbirth",
            "dob",
            "birthday",
            "geboortedatum",
            "geburtsdatum",
            "geburtstag",
            "datedenaissance",
            "datenaissance",
            "fechanacimiento",
            "fechadenacimiento",
            "datadinascita",
            "bdate",
            "born",
        ],
    ),
    (
        Kind::BirthYear,
        &[
            "birthyear",
            "yearofbirth",
            "yob",
            "geboortejaar",
            "anionacimiento",
            "anonacimiento",
            "annonascita",
            "annodinascita",
            "anneedenaissance",
            "geburtsjahr",
            "anneenaissance",
            "by",
        ],
    ),
    (
        Kind::BirthMonth,
        &[
            "birthmonth",
            "monthofbirth",
            "geboortemaand",
            "mesnacimiento",
            "mesedinascita",
            "mesenascita",
            "moisdenaissance",
            "geburtsmonat",
            "bm",
        ],
    ),
    (
        Kind::BirthDay,
        &[
            "birthdayofmonth",
            "dayofbirth",
            "geboortedag",
            "dianacimiento",
            "giornodinascita",
            "giornonascita",
            "jourdenaissance",
            "geburtstagimmonat",
            "bd",
        ],
    ),
    (
        Kind::Gender,
        &[
            "gender",
            "sex",
            "geslacht",
            "geschlecht",
            "sexe",
            "genre",
            "sexo",
            "anrede",
            "salutation",
            "aanhef",
            "civilite",
            "title",
        ],
    ),
    (
        Kind::Company,
        &[
            "company",
            "companyname",
            "organisation",
            "organization",
            "firma",
            "firmenname",
            "bedrijf",
            "bedrijfsnaam",
            "entreprise",
            "societe",
            "empresa",
            "employer",
            "account",
        ],
    ),
    (
        Kind::UpdatedAt,
        &[
            "updatedat",
            "lastmodified",
            "modified",
            "modifiedat",
            "lastupdate",
            "lastupdated",
            "changedat",
            "gewijzigd",
            "gewijzigdop",
            "geandertam",
            "aenderungsdatum",
            "lastchanged",
            "updated",
            "datemodification",
        ],
    ),
    (
        Kind::Identifier,
        &[
            "ssn",
            "socsecid",
            "socialsecurity",
            "socialsecuritynumber",
            "nationalid",
            "nationalidnumber",
            "bsn",
            "burgerservicenummer",
            "nin",
            "insee",
            "nir",
            "steuerid",
            "steueridentifikationsnummer",
            "taxid",
            "taxnumber",
            "vat",
            "vatnumber",
            "passport",
            "passportnumber",
            "idnumber",
            "personalnumber",
            "personnummer",
            "loyaltycard",
            "loyaltycardnumber",
            "cardnumber",
            "kaartnummer",
            "tarjeta",
            "numtarjeta",
            "numerotarjeta",
            "tessera",
            "numerotessera",
            "kartennummer",
            "numerocarte",
            "pasnummer",
            "klantenkaart",
            "kundenkarte",
            "membernumber",
            "membershipnumber",
            "klantnummer",
            "kundennummer",
            "customernumber",
            "rijksregisternummer",
            "dni",
            "nif",
            "codicefiscale",
        ],
    ),
    (
        Kind::AnonymousId,
        &[
            "cookie",
            "cookieid",
            "anonymousid",
            "anonid",
            "deviceid",
            "dispositivo",
            "iddispositivo",
            "appareil",
            "geraet",
            "geraetid",
            "visitorid",
            "clientid",
            "browserid",
            "gaclientid",
            "ajsanonymousid",
            "trackingid",
        ],
    ),
    (
        Kind::Timestamp,
        &[
            "ts",
            "timestamp",
            "time",
            "eventtime",
            "eventtimestamp",
            "occurredat",
            "createdat",
            "orderedat",
            "orderdate",
            "orderedon",
            "purchasedat",
            "purchasedate",
            "transactiondate",
            "transactiontime",
            "datetime",
            "momento",
            "fechahora",
            "horodatage",
            "zeitpunkt",
            "tijdstip",
            "date",
            "datum",
            "besteldatum",
            "bestelldatum",
            "bestellzeit",
            "dateachat",
            "fecha",
            "sentat",
            "receivedat",
        ],
    ),
    (
        Kind::Amount,
        &[
            "amount",
            "total",
            "totalamount",
            "ordertotal",
            "grandtotal",
            "price",
            "value",
            "revenue",
            "betrag",
            "gesamtbetrag",
            "bedrag",
            "totaalbedrag",
            "montant",
            "importe",
            "importo",
            "umsatz",
            "spend",
            "sales",
            "netamount",
            "grossamount",
        ],
    ),
    (
        Kind::EventType,
        &[
            "event",
            "eventtype",
            "tipo",
            "tipoevento",
            "typeevenement",
            "eventname",
            "type",
            "action",
            "activity",
            "activitytype",
            "ereignis",
            "gebeurtenis",
            "typeevenement",
        ],
    ),
];

/// Letters with accents to ASCII (ü → u, ß → s, é → e), for names.
pub fn fold_char(c: char) -> char {
    match c {
        'à' | 'á' | 'â' | 'ã' | 'ä' | 'å' | 'À' | 'Á' | 'Â' | 'Ã' | 'Ä' | 'Å' => 'a',
        'è' | 'é' | 'ê' | 'ë' | 'È' | 'É' | 'Ê' | 'Ë' => 'e',
        'ì' | 'í' | 'î' | 'ï' | 'Ì' | 'Í' | 'Î' | 'Ï' => 'i',
        'ò' | 'ó' | 'ô' | 'õ' | 'ö' | 'ø' | 'Ò' | 'Ó' | 'Ô' | 'Õ' | 'Ö' | 'Ø' => 'o',
        'ù' | 'ú' | 'û' | 'ü' | 'Ù' | 'Ú' | 'Û' | 'Ü' => 'u',
        'ç' | 'Ç' => 'c',
        'ñ' | 'Ñ' => 'n',
        'ß' => 's',
        c => c,
    }
}

/// A column name as the dictionary compares it.
pub fn name_key(name: &str) -> String {
    name.chars()
        .map(fold_char)
        .filter(|c| c.is_ascii_alphanumeric())
        .map(|c| c.to_ascii_lowercase())
        .collect()
}

/// The kind a column's name suggests, if any.
pub fn kind_from_name(name: &str) -> Option<Kind> {
    let key = name_key(name);
    if key.is_empty() {
        return None;
    }
    for (kind, names) in NAMES {
        if names.contains(&key.as_str()) {
            return Some(*kind);
        }
    }
    // Longer names: the longest dictionary word (≥ 4 letters) the key contains, so that
    // `customer_email_address` is an e-mail and not an address.
    let mut best: Option<(usize, Kind)> = None;
    for (kind, names) in NAMES {
        for n in names.iter().filter(|n| n.len() >= 4) {
            if key.contains(n) && best.is_none_or(|(len, _)| n.len() > len) {
                best = Some((n.len(), *kind));
            }
        }
    }
    // `event_id`, `order_nr`, `customer_code`: an id *of* the thing, not the thing.
    let id_like = ["id", "nr", "no", "number", "nummer", "code", "key"]
        .iter()
        .any(|suffix| key.ends_with(suffix));
    best.map(|(_, k)| k)
        .filter(|k| !id_like || matches!(k, Kind::Identifier | Kind::AnonymousId | Kind::Phone))
}

/// Counts over a column's sampled values, from which the guesses are made.
#[derive(Debug, Default, Clone)]
pub struct ValueStats {
    pub rows: usize,
    pub filled: usize,
    pub distinct: usize,
    /// Most rows sharing one value.
    pub max_per_value: usize,
    pub email: usize,
    pub phone: usize,
    pub date: usize,
    /// Dates between 1900 and 10 years ago: birth dates.
    pub birth_date: usize,
    /// Values with a time of day.
    pub time_of_day: usize,
    pub number: usize,
    pub integer: usize,
    pub name_like: usize,
    /// Several words with a comma: "Last, First" or a one-string address.
    pub comma: usize,
    pub street_like: usize,
    pub postcode: usize,
    /// Letters and digits, no spaces: codes and ids.
    pub code_like: usize,
    pub examples: Vec<String>,
    pub top_values: Vec<(String, usize)>,
}

impl ValueStats {
    pub fn share(&self, n: usize) -> f64 {
        if self.filled == 0 {
            0.0
        } else {
            n as f64 / self.filled as f64
        }
    }

    pub fn fill(&self) -> f64 {
        if self.rows == 0 {
            0.0
        } else {
            self.filled as f64 / self.rows as f64
        }
    }

    pub fn unique(&self) -> f64 {
        self.share(self.distinct)
    }
}

fn is_email(v: &str) -> bool {
    let mut out = String::new();
    v.matches('@').count() == 1
        && !v.contains(' ')
        && v.rsplit('@')
            .next()
            .is_some_and(|d| d.contains('.') && !d.ends_with('.'))
        && canonical_email(v, false, &mut out)
}

/// A phone number for `region` (national form) or with its country code.
pub fn is_phone(v: &str, region: Option<&str>) -> bool {
    let allowed = v
        .chars()
        .all(|c| c.is_ascii_digit() || " +-()./".contains(c));
    let digits = v.chars().filter(|c| c.is_ascii_digit()).count();
    if !allowed || !(7..=15).contains(&digits) {
        return false;
    }
    let international = v.starts_with('+') || v.starts_with("00");
    if international {
        let plus = match v.strip_prefix("00") {
            Some(rest) => format!("+{rest}"),
            None => v.to_string(),
        };
        return is_valid_phone(&plus, None);
    }
    // National numbers start with a trunk prefix (0) in most of the world; a 9-digit value
    // without one is more often an id. Without a known region, the prefix and length decide.
    if !v.starts_with('0') && !v.starts_with('(') {
        return matches!(region, Some("US" | "CA")) && is_valid_phone(v, region);
    }
    match region {
        Some(r) => is_valid_phone(v, Some(r)),
        None => (9..=11).contains(&digits),
    }
}

/// Postcode shapes of the countries Panorama's users mostly have: NL `1234 AB`, UK `SW1A 1AA`,
/// CA `K1A 0B1`, PL `00-950`, PT `1000-001`, and 4–5 digits (DE, FR, ES, IT, US, BE, AT, CH,
/// DK, NO). Digits alone are only counted when the column's name or neighbours say postcode.
fn is_postcode(v: &str, digits_ok: bool) -> bool {
    let s: String = v
        .chars()
        .filter(|c| !c.is_whitespace())
        .collect::<String>()
        .to_ascii_uppercase();
    let b = s.as_bytes();
    let d = |i: usize| b.get(i).is_some_and(u8::is_ascii_digit);
    let l = |i: usize| b.get(i).is_some_and(u8::is_ascii_uppercase);
    let nl = s.len() == 6 && (0..4).all(d) && l(4) && l(5);
    let uk = (5..=7).contains(&s.len())
        && l(0)
        && d(s.len() - 3)
        && l(s.len() - 2)
        && l(s.len() - 1)
        && s.bytes().all(|c| c.is_ascii_alphanumeric());
    let ca = s.len() == 6 && l(0) && d(1) && l(2) && d(3) && l(4) && d(5);
    let dashed = (s.len() == 6 && d(0) && d(1) && b[2] == b'-' && (3..6).all(d))
        || (s.len() == 8 && (0..4).all(d) && b[4] == b'-' && (5..8).all(d));
    let digits = (4..=5).contains(&s.len()) && s.bytes().all(|c| c.is_ascii_digit());
    nl || uk || ca || dashed || (digits_ok && digits)
}

fn is_name_like(v: &str) -> bool {
    let words = v.split_whitespace().count();
    (1..=5).contains(&words)
        && v.chars().any(char::is_alphabetic)
        && v.chars().all(|c| c.is_alphabetic() || " '-.,’".contains(c))
}

/// "Kerkstraat 12", "12 Main St", "Hauptstr. 5a": words and a house number.
fn is_street_like(v: &str) -> bool {
    let has_letters = v.chars().filter(|c| c.is_alphabetic()).count() >= 3;
    let has_number = v
        .split(|c: char| c.is_whitespace() || c == ',')
        .any(|w| w.chars().next().is_some_and(|c| c.is_ascii_digit()) && w.len() <= 6);
    has_letters && has_number
}

/// Birth dates: between 1900 and ten years before the sample's latest plausible date.
fn birth_range(days: i32) -> bool {
    // 1900-01-01 = -25567; 2016-01-01 = 16801 (ten years before 2026).
    (-25567..16801).contains(&days)
}

/// Count what the values look like. `region` is the phone region of the data, if known.
pub fn value_stats(col: &SampledColumn, region: Option<&str>) -> ValueStats {
    let mut s = ValueStats {
        rows: col.values.len(),
        ..Default::default()
    };
    let mut counts: HashMap<&str, usize> = HashMap::new();
    let temporal = matches!(
        col.data_type,
        arrow::datatypes::DataType::Date32
            | arrow::datatypes::DataType::Date64
            | arrow::datatypes::DataType::Timestamp(..)
    );
    for v in col.values.iter().flatten() {
        s.filled += 1;
        *counts.entry(v.as_str()).or_default() += 1;
        if s.examples.len() < 3 && !s.examples.contains(v) {
            s.examples.push(v.clone());
        }
        if is_email(v) {
            s.email += 1;
        }
        if is_phone(v, region) {
            s.phone += 1;
        }
        let has_time = v.len() > 10 && (v.contains(':'));
        if has_time {
            s.time_of_day += 1;
        }
        let date_part = if temporal || has_time {
            v.split(['T', ' ']).next().unwrap_or(v)
        } else {
            v.as_str()
        };
        // Digit-only values are dates only as YYYYMMDD (8 digits).
        let digits_only = date_part.bytes().all(|b| b.is_ascii_digit());
        if !digits_only || date_part.len() == 8 {
            if let Some(days) = parse_date_days(date_part, Order::DayMonth) {
                s.date += 1;
                if birth_range(days) && !has_time {
                    s.birth_date += 1;
                }
            }
        }
        if let Ok(x) = v.parse::<f64>() {
            if x.is_finite() {
                s.number += 1;
                if !v.contains(['.', 'e', 'E']) {
                    s.integer += 1;
                }
            }
        }
        if is_name_like(v) {
            s.name_like += 1;
        }
        if v.contains(',') && v.split_whitespace().count() >= 2 {
            s.comma += 1;
        }
        if is_street_like(v) {
            s.street_like += 1;
        }
        if is_postcode(v, false) {
            s.postcode += 1;
        }
        if !v.contains(char::is_whitespace)
            && v.chars()
                .all(|c| c.is_ascii_alphanumeric() || "-./".contains(c))
            && v.chars().any(|c| c.is_ascii_digit())
        {
            s.code_like += 1;
        }
    }
    s.distinct = counts.len();
    s.max_per_value = counts.values().copied().max().unwrap_or(0);
    let mut top: Vec<(&str, usize)> = counts.into_iter().collect();
    top.sort_by(|a, b| b.1.cmp(&a.1).then(a.0.cmp(b.0)));
    s.top_values = top
        .into_iter()
        .take(12)
        .map(|(v, n)| (v.to_string(), n))
        .collect();
    s
}

/// Share of values that are postcodes when plain 4–5 digit numbers count too.
pub fn digit_postcode_share(col: &SampledColumn) -> f64 {
    let filled: Vec<&String> = col.values.iter().flatten().collect();
    if filled.is_empty() {
        return 0.0;
    }
    filled.iter().filter(|v| is_postcode(v, true)).count() as f64 / filled.len() as f64
}

/// A guess for one column, with the evidence that supports it.
#[derive(Debug, Clone)]
pub struct Guess {
    pub kind: Kind,
    pub evidence: String,
    /// 0–1: how sure the guess is.
    pub confidence: f64,
}

fn pct(x: f64) -> String {
    let p = x * 100.0;
    if !(0.05..99.95).contains(&p) {
        format!("{p:.0}%")
    } else {
        format!("{p:.1}%")
    }
}

/// Gender values Panorama maps to `M`/`F` (upper-cased, without a trailing dot).
pub const GENDER_VALUES: &[(&str, &str)] = &[
    ("M", "M"),
    ("MALE", "M"),
    ("MAN", "M"),
    ("MR", "M"),
    ("HERR", "M"),
    ("HR", "M"),
    ("DHR", "M"),
    ("DE HEER", "M"),
    ("MONSIEUR", "M"),
    ("H", "M"),
    ("HOMBRE", "M"),
    ("MANNLICH", "M"),
    ("MÄNNLICH", "M"),
    ("F", "F"),
    ("FEMALE", "F"),
    ("WOMAN", "F"),
    ("MRS", "F"),
    ("MS", "F"),
    ("MISS", "F"),
    ("FRAU", "F"),
    ("FR", "F"),
    ("MEVR", "F"),
    ("MEVROUW", "F"),
    ("MW", "F"),
    ("V", "F"),
    ("VROUW", "F"),
    ("W", "F"),
    ("WEIBLICH", "F"),
    ("MME", "F"),
    ("MADAME", "F"),
    ("MUJER", "F"),
];

pub fn gender_code(v: &str) -> Option<&'static str> {
    let key = v.trim().trim_end_matches('.').to_uppercase();
    GENDER_VALUES
        .iter()
        .find(|(k, _)| *k == key)
        .map(|(_, g)| *g)
}

fn gender_share(s: &ValueStats) -> f64 {
    let known: usize = s
        .top_values
        .iter()
        .filter(|(v, _)| gender_code(v).is_some())
        .map(|(_, n)| n)
        .sum();
    s.share(known)
}

/// Country values: ISO 3166 alpha-2 codes (any case) or a few names.
fn country_share(s: &ValueStats) -> f64 {
    let known: usize = s
        .top_values
        .iter()
        .filter(|(v, _)| {
            (v.len() == 2 && v.chars().all(|c| c.is_ascii_alphabetic()))
                || (v.len() == 3 && v.chars().all(|c| c.is_ascii_uppercase()))
        })
        .map(|(_, n)| n)
        .sum();
    if s.distinct > 250 {
        return 0.0;
    }
    s.share(known)
}

/// Decide what a column is. `None`: not something Panorama maps (kept as a plain column).
pub fn guess(col: &SampledColumn, s: &ValueStats) -> Option<Guess> {
    if s.filled == 0 {
        return None;
    }
    let by_name = kind_from_name(&col.name);
    // Values first where they are unmistakable, whatever the name says.
    let email = s.share(s.email);
    if email >= 0.8 {
        let named = if by_name == Some(Kind::Email) {
            "named like an e-mail, "
        } else {
            ""
        };
        return Some(Guess {
            kind: Kind::Email,
            evidence: format!("{named}{} parse as e-mail", pct(email)),
            confidence: email,
        });
    }
    // Then the name, if the values agree with it.
    if let Some(kind) = by_name {
        if let Some((evidence, confidence)) = name_confirmed_by_values(kind, col, s) {
            return Some(Guess {
                kind,
                evidence,
                confidence,
            });
        }
    }
    guess_from_values(col, s)
}

/// Whether the column's type is a date or a time.
fn is_temporal(col: &SampledColumn) -> bool {
    matches!(
        col.data_type,
        arrow::datatypes::DataType::Date32
            | arrow::datatypes::DataType::Date64
            | arrow::datatypes::DataType::Timestamp(..)
    )
}

/// The evidence and confidence for `kind`, the kind the column's name says, when its values
/// agree with it; `None` when they do not.
fn name_confirmed_by_values(
    kind: Kind,
    col: &SampledColumn,
    s: &ValueStats,
) -> Option<(String, f64)> {
    let temporal = is_temporal(col);
    let numeric_type = col.data_type.is_numeric();
    let named = format!("column name `{}`", col.name);
    match kind {
        Kind::Email => None, // fewer than 80% e-mails: not one
        Kind::Phone => {
            let p = s.share(s.phone);
            (p >= 0.5).then(|| (format!("{named}; {} parse as phone numbers", pct(p)), p))
        }
        Kind::BirthDate => {
            let b = if temporal {
                s.share(s.date)
            } else {
                s.share(s.birth_date)
            };
            (b >= 0.6).then(|| {
                (
                    format!("{named}; {} are dates between 1900 and 2015", pct(b)),
                    b,
                )
            })
        }
        Kind::Timestamp | Kind::UpdatedAt => {
            let d = s.share(s.date);
            (temporal || d >= 0.8).then(|| {
                (
                    format!("{named}; {} parse as dates or times", pct(d)),
                    d.max(0.9),
                )
            })
        }
        Kind::Postcode => {
            let p = digit_postcode_share(col);
            (p >= 0.6).then(|| (format!("{named}; {} look like postcodes", pct(p)), p))
        }
        Kind::Amount => {
            let n = s.share(s.number);
            (numeric_type || n >= 0.9).then(|| (format!("{named}; numeric"), 0.9))
        }
        Kind::BirthYear | Kind::BirthMonth | Kind::BirthDay => {
            let n = s.share(s.integer);
            (n >= 0.9).then(|| (format!("{named}; whole numbers"), 0.8))
        }
        Kind::Gender => {
            let known = gender_share(s);
            (s.distinct <= 12 && known >= 0.7).then(|| {
                (
                    format!("{named}; {} are gender words or salutations", pct(known)),
                    known,
                )
            })
        }
        Kind::Country => {
            let c = country_share(s);
            (s.distinct <= 250).then(|| {
                (
                    format!("{named}; {} distinct values", s.distinct),
                    0.7 + 0.3 * c,
                )
            })
        }
        Kind::FirstName | Kind::LastName | Kind::FullName | Kind::City | Kind::NameParticle => {
            let n = s.share(s.name_like);
            (n >= 0.7 && !numeric_type)
                .then(|| (format!("{named}; {} are name-like words", pct(n)), n))
        }
        Kind::Street => {
            let n = s.share(s.street_like.max(s.name_like));
            (n >= 0.6).then(|| (format!("{named}; text"), n))
        }
        Kind::Address => {
            let a = s.share(s.street_like);
            (a >= 0.5).then(|| (format!("{named}; {} hold a street and number", pct(a)), a))
        }
        Kind::HouseNumber => {
            let c = s.share(s.code_like);
            (c >= 0.7).then(|| (format!("{named}; short codes with digits"), c))
        }
        Kind::Identifier => {
            // Few rows per value: one person's records (duplicates share their id), not a
            // category. A dedupe source holds a person several times, so distinctness
            // alone would refuse the very data an identifier helps with.
            let u = s.unique();
            (u >= 0.1 && s.max_per_value <= 20).then(|| {
                (
                    format!(
                        "{named}; {} of values distinct, at most {} rows share one",
                        pct(u),
                        s.max_per_value
                    ),
                    0.9,
                )
            })
        }
        Kind::AnonymousId => {
            let per = s.filled as f64 / s.distinct.max(1) as f64;
            (per >= 1.2).then(|| (format!("{named}; {per:.1} rows per value"), 0.9))
        }
        Kind::Company | Kind::EventType => Some((named.clone(), 0.7)),
    }
}

/// Values alone: names that say nothing ("field_3") or mislead.
fn guess_from_values(col: &SampledColumn, s: &ValueStats) -> Option<Guess> {
    let temporal = is_temporal(col);
    let numeric_type = col.data_type.is_numeric();
    let g = |kind, evidence: String, confidence| {
        Some(Guess {
            kind,
            evidence,
            confidence,
        })
    };
    let phone = s.share(s.phone);
    if phone >= 0.8 && !numeric_type {
        return g(
            Kind::Phone,
            format!("{} parse as phone numbers", pct(phone)),
            phone,
        );
    }
    let birth = s.share(s.birth_date);
    if !temporal && birth >= 0.8 && s.time_of_day == 0 && s.distinct > 1 {
        return g(
            Kind::BirthDate,
            format!("{} are dates between 1900 and 2015", pct(birth)),
            birth * 0.9,
        );
    }
    if (temporal || s.share(s.date) >= 0.9) && s.distinct > 1 {
        return g(Kind::Timestamp, "dates or times".into(), 0.6);
    }
    let postcode = s.share(s.postcode);
    if postcode >= 0.9 && s.distinct > 5 {
        return g(
            Kind::Postcode,
            format!("{} look like postcodes", pct(postcode)),
            postcode * 0.9,
        );
    }
    let gender = gender_share(s);
    if s.distinct <= 8 && gender >= 0.9 && s.filled >= 10 {
        return g(
            Kind::Gender,
            format!("{} are gender words or salutations", pct(gender)),
            gender,
        );
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_in_several_languages() {
        for (name, kind) in [
            ("E-Mail", Kind::Email),
            ("courriel", Kind::Email),
            ("Telefoon", Kind::Phone),
            ("Telefon", Kind::Phone),
            ("mobile", Kind::Phone),
            ("Geburtsdatum", Kind::BirthDate),
            ("date_de_naissance", Kind::BirthDate),
            ("PLZ", Kind::Postcode),
            ("code_postal", Kind::Postcode),
            ("woonplaats", Kind::City),
            ("Vorname", Kind::FirstName),
            ("prénom", Kind::FirstName),
            ("achternaam", Kind::LastName),
            ("customer_email_address", Kind::Email),
            ("soc_sec_id", Kind::Identifier),
            ("cookie_id", Kind::AnonymousId),
        ] {
            assert_eq!(kind_from_name(name), Some(kind), "{name}");
        }
        assert_eq!(kind_from_name("notes"), None);
    }

    #[test]
    fn phones_and_ids_are_told_apart() {
        assert!(is_phone("+31 6 1234 5678", None));
        assert!(is_phone("06-12345678", Some("NL")));
        assert!(is_phone("0031612345678", None));
        assert!(!is_phone("123456789", Some("NL")));
        assert!(!is_phone("1234", Some("NL")));
        assert_eq!(phone_region("+49 30 1234567").as_deref(), Some("DE"));
    }

    #[test]
    fn postcodes() {
        assert!(is_postcode("1234 AB", false));
        assert!(is_postcode("SW1A 1AA", false));
        assert!(is_postcode("10115", true));
        assert!(!is_postcode("10115", false));
        assert!(!is_postcode("hello", true));
    }
}
