//! Normalizers: turn the many spellings of one value into one comparable form.

use datafusion::arrow::datatypes::DataType;
use datafusion::common::{exec_err, Result, ScalarValue};
use datafusion::logical_expr::{
    ColumnarValue, ScalarFunctionArgs, ScalarUDFImpl, Signature, TypeSignature, Volatility,
};
use unicode_normalization::UnicodeNormalization;

use crate::string_map::{map_strings, string_return_type};

/// Canonical e-mail: trimmed, lower-case; NULL when it is not shaped like an address.
/// With `provider_rules = true`, Gmail dots and `+tags` are removed (they reach the same inbox).
pub fn canonical_email(raw: &str, provider_rules: bool, out: &mut String) -> bool {
    let s = raw.trim().trim_matches(|c| c == '<' || c == '>');
    let Some((local, domain)) = s.rsplit_once('@') else {
        return false;
    };
    if local.is_empty() || domain.is_empty() || !domain.contains('.') || local.contains('@') {
        return false;
    }
    if s.chars().any(char::is_whitespace) {
        return false;
    }
    let mut domain = domain.to_lowercase();
    let mut local = local.to_lowercase();
    if provider_rules && (domain == "gmail.com" || domain == "googlemail.com") {
        domain = "gmail.com".into();
        if let Some(p) = local.find('+') {
            local.truncate(p);
        }
        local.retain(|c| c != '.');
        if local.is_empty() {
            return false;
        }
    }
    out.push_str(&local);
    out.push('@');
    out.push_str(&domain);
    true
}

/// Latin letters that do not decompose under NFKD.
fn fold_special(c: char, out: &mut String) -> bool {
    let s = match c {
        'ß' => "ss",
        'æ' | 'Æ' => "ae",
        'œ' | 'Œ' => "oe",
        'ø' | 'Ø' => "o",
        'ł' | 'Ł' => "l",
        'đ' | 'Đ' | 'ð' | 'Ð' => "d",
        'þ' | 'Þ' => "th",
        'ı' => "i",
        _ => return false,
    };
    out.push_str(s);
    true
}

/// Name in comparable form: ASCII, lower-case, punctuation as single spaces, trimmed.
/// `"  MÜLLER-Lüdenscheidt, Jürgen "` → `"muller ludenscheidt jurgen"`.
pub fn normalize_name_into(raw: &str, out: &mut String) -> bool {
    let mut pending_space = false;
    if raw.is_ascii() {
        // ASCII is its own NFKD form and holds no combining marks: `normalize_name_unicode`
        // without decomposing, folding or re-checking each letter (most names and cities in
        // the data seen so far), with the same result (`ascii_names_skip_decomposition`
        // checks). Staging the 1M demo's 1.46 M records, the decomposition's lookups alone
        // were ~7% of the step's CPU samples (perf), beside a string allocated per letter.
        for c in raw.chars() {
            if c.is_ascii_alphanumeric() {
                if pending_space && !out.is_empty() {
                    out.push(' ');
                }
                pending_space = false;
                out.push(c.to_ascii_lowercase());
            } else if c != '\'' {
                pending_space = true;
            }
        }
        return !out.is_empty();
    }
    normalize_name_unicode(raw, out)
}

/// [`normalize_name_into`] for any text: decomposed (NFKD), marks dropped, letters folded.
fn normalize_name_unicode(raw: &str, out: &mut String) -> bool {
    let mut pending_space = false;
    for c in raw.nfkd() {
        if unicode_normalization::char::is_combining_mark(c) {
            continue;
        }
        let start = out.len();
        if c.is_alphanumeric() {
            if pending_space && !out.is_empty() {
                out.push(' ');
            }
            pending_space = false;
            if c.is_ascii() {
                out.push(c.to_ascii_lowercase());
                continue;
            }
            if !fold_special(c, out) {
                out.extend(c.to_lowercase());
            }
            // Lower-casing may itself produce marks (e.g. İ): drop them.
            let tail: String = out[start..]
                .chars()
                .filter(|c| !unicode_normalization::char::is_combining_mark(*c))
                .collect();
            out.truncate(start);
            out.push_str(&tail);
        } else if c == '\'' || c == '’' {
            // O'Brien and OBrien are the same name.
        } else {
            pending_space = true;
        }
    }
    !out.is_empty()
}

macro_rules! string_udf {
    ($ty:ident) => {
        #[derive(Debug, PartialEq, Eq, Hash)]
        pub struct $ty {
            signature: Signature,
        }
        impl Default for $ty {
            fn default() -> Self {
                Self::new()
            }
        }
    };
}

string_udf!(NormalizeEmail);

impl NormalizeEmail {
    pub fn new() -> Self {
        let strings = [DataType::Utf8, DataType::LargeUtf8, DataType::Utf8View];
        let mut sigs: Vec<TypeSignature> = strings
            .iter()
            .map(|t| TypeSignature::Exact(vec![t.clone()]))
            .collect();
        sigs.extend(
            strings
                .iter()
                .map(|t| TypeSignature::Exact(vec![t.clone(), DataType::Boolean])),
        );
        Self {
            signature: Signature::one_of(sigs, Volatility::Immutable),
        }
    }
}

impl ScalarUDFImpl for NormalizeEmail {
    fn name(&self) -> &str {
        "normalize_email"
    }
    fn signature(&self) -> &Signature {
        &self.signature
    }
    fn return_type(&self, arg_types: &[DataType]) -> Result<DataType> {
        string_return_type(self.name(), &arg_types[0])
    }
    fn invoke_with_args(&self, args: ScalarFunctionArgs) -> Result<ColumnarValue> {
        let provider_rules = match args.args.get(1) {
            None => false,
            Some(ColumnarValue::Scalar(ScalarValue::Boolean(b))) => b.unwrap_or(false),
            Some(_) => {
                return exec_err!("normalize_email: provider_rules must be a constant true/false")
            }
        };
        map_strings(self.name(), &args.args[0], |s, out| {
            canonical_email(s, provider_rules, out)
        })
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn ascii_names_skip_decomposition() {
        // Every printable ASCII character, alone and in names, through both paths.
        let mut inputs: Vec<String> = (32u8..127).map(|b| (b as char).to_string()).collect();
        inputs.extend(
            [
                "  MULLER-Ludenscheidt, Jurgen ",
                "O'Brien",
                "o brien",
                "'' --  ''",
                "Jean-Luc  d'Artagnan Jr.",
                "ACME & Co. (NL) B.V.",
                "12 Main St., Apt #4",
                "",
                "   ",
                "a'b'c",
                "'leading",
                "trailing-",
            ]
            .map(String::from),
        );
        for s in &inputs {
            let (mut fast, mut general) = (String::new(), String::new());
            let a = super::normalize_name_into(s, &mut fast);
            let b = super::normalize_name_unicode(s, &mut general);
            assert_eq!((a, &fast), (b, &general), "{s:?}");
        }
    }

    use super::*;

    #[test]
    fn identifiers_lose_their_separators() {
        let id = |s: &str| {
            let mut out = String::new();
            normalize_identifier_into(s, &mut out).then_some(out)
        };
        assert_eq!(id(" 123-45 678 ").as_deref(), Some("12345678"));
        assert_eq!(id("nl.91/b01").as_deref(), Some("NL91B01"));
        assert_eq!(id(" - "), None);
    }

    #[test]
    fn phone_digits_are_the_last_nine() {
        let digits = |s: &str| {
            let mut out = String::new();
            phone_digits_into(s, &mut out).then_some(out)
        };
        assert_eq!(digits("+31 (0)6-1234 5678").as_deref(), Some("612345678"));
        assert_eq!(digits("06 12345678").as_deref(), Some("612345678"));
        assert_eq!(digits("1234567").as_deref(), Some("1234567"));
        assert_eq!(digits("12-34-56"), None);
        assert_eq!(digits("no phone"), None);
    }

    fn email(s: &str, rules: bool) -> Option<String> {
        let mut out = String::new();
        canonical_email(s, rules, &mut out).then_some(out)
    }

    fn name(s: &str) -> Option<String> {
        let mut out = String::new();
        normalize_name_into(s, &mut out).then_some(out)
    }

    #[test]
    fn emails() {
        assert_eq!(
            email(" Jon.Smith@X.com ", false).as_deref(),
            Some("jon.smith@x.com")
        );
        assert_eq!(
            email("J.o.n+shop@GoogleMail.com", true).as_deref(),
            Some("jon@gmail.com")
        );
        assert_eq!(
            email("J.o.n+shop@GoogleMail.com", false).as_deref(),
            Some("j.o.n+shop@googlemail.com")
        );
        assert_eq!(email("not an email", false), None);
        assert_eq!(email("a@b", false), None);
        assert_eq!(email("", false), None);
    }

    #[test]
    fn names() {
        assert_eq!(
            name("  MÜLLER-Lüdenscheidt, Jürgen ").as_deref(),
            Some("muller ludenscheidt jurgen")
        );
        assert_eq!(name("Straße").as_deref(), Some("strasse"));
        assert_eq!(name("O'Brien").as_deref(), Some("obrien"));
        assert_eq!(name("Łukasz Żółć").as_deref(), Some("lukasz zolc"));
        assert_eq!(name(" ,. "), None);
    }
}

/// Formal first name in normalized form: `Bob` → `robert`, `Hans` → `johannes`.
/// Only the first token counts (`Jean-Baptiste` → `jean`, unless the pair is listed).
pub fn canonical_first_name_into(raw: &str, out: &mut String) -> bool {
    let mut norm = String::new();
    if !normalize_name_into(raw, &mut norm) {
        return false;
    }
    let whole = crate::nicknames::canonical(&norm);
    if whole != norm {
        out.push_str(whole);
        return true;
    }
    let first = norm.split(' ').next().unwrap_or(&norm);
    out.push_str(crate::nicknames::canonical(first));
    true
}

/// Whether `name` (a canonical first name, as [`canonical_first_name_into`] makes it) is one
/// of the given names written in `given_names`, each token read as a first name (`Maria` is
/// one of `Anna-Maria`'s; `robert` is one of `Peter Bob`'s). A person registered with every
/// given name often goes by the second: the independent generator's shop used it as the
/// call name for 859 of its registry's people, and only the first token is staged.
pub fn is_given_name_of(name: &str, given_names: &str) -> bool {
    let mut norm = String::new();
    if name.is_empty() || !normalize_name_into(given_names, &mut norm) {
        return false;
    }
    norm.split(' ')
        .any(|token| crate::nicknames::canonical(token) == name)
}

/// Street types and their short forms; a token equal to any form becomes the first one.
const ADDRESS_TOKENS: &[&[&str]] = &[
    &["st", "street", "str", "strasse", "strase"],
    &["ave", "avenue", "av", "avda", "avenida"],
    &["rd", "road"],
    &["ln", "lane"],
    &["blvd", "boulevard", "bd", "bvd"],
    &["pl", "place", "plaza", "platz", "plein"],
    &["sq", "square"],
    &["dr", "drive"],
    &["ct", "court"],
    &["hwy", "highway"],
    &["c", "calle", "cl"],
    &["r", "rue"],
    &["wg", "weg"],
    &["ln", "laan"],
    &["n", "north", "nord", "noord"],
    &["s", "south", "sud", "zuid"],
    &["e", "east", "ost", "oost"],
    &["w", "west"],
];

/// German and Dutch compounds carry the street type as a suffix (`Hauptstraße`, `Kerkstraat`).
const ADDRESS_SUFFIXES: &[(&str, &str)] = &[
    ("strasse", "str"),
    ("strase", "str"),
    ("str", "str"),
    ("straat", "str"),
    ("weg", "wg"),
    ("laan", "ln"),
    ("platz", "pl"),
    ("plein", "pl"),
    ("gasse", "g"),
    ("allee", "ave"),
];

/// Address in comparable form: ASCII, lower-case, street types abbreviated one way.
/// `Hauptstraße 12` → `hauptstr 12`; `12 Main Street` → `12 main st`.
pub fn normalize_address_into(raw: &str, out: &mut String) -> bool {
    let mut norm = String::new();
    if !normalize_name_into(raw, &mut norm) {
        return false;
    }
    for (i, token) in norm.split(' ').enumerate() {
        if i > 0 {
            out.push(' ');
        }
        if let Some(group) = ADDRESS_TOKENS.iter().find(|g| g.contains(&token)) {
            out.push_str(group[0]);
            continue;
        }
        match ADDRESS_SUFFIXES
            .iter()
            .find(|(suffix, _)| token.len() > suffix.len() + 2 && token.ends_with(suffix))
        {
            Some((suffix, short)) => {
                out.push_str(&token[..token.len() - suffix.len()]);
                out.push_str(short);
            }
            None => out.push_str(token),
        }
    }
    true
}

/// Legal-form tokens dropped from company names (after normalization, so `B.V.` is `b v`).
const LEGAL_FORMS: &[&str] = &[
    "gmbh",
    "mbh",
    "ag",
    "kg",
    "ohg",
    "ug",
    "bv",
    "nv",
    "vof",
    "ltd",
    "limited",
    "plc",
    "llp",
    "inc",
    "incorporated",
    "corp",
    "corporation",
    "co",
    "company",
    "llc",
    "oy",
    "oyj",
    "ab",
    "as",
    "srl",
    "sarl",
    "sas",
    "sa",
    "sl",
    "spa",
    "se",
    "pty",
    "the",
];

/// Company name without legal form: `Acme B.V.` → `acme`, `Nordwind GmbH & Co. KG` → `nordwind`.
pub fn normalize_company_into(raw: &str, out: &mut String) -> bool {
    let mut norm = String::new();
    if !normalize_name_into(&raw.replace('&', " "), &mut norm) {
        return false;
    }
    // Join single letters so `b v` and `s a r l` read as `bv` and `sarl`.
    let mut tokens: Vec<String> = Vec::new();
    let mut letters = String::new();
    for t in norm.split(' ') {
        if t.len() == 1 {
            letters.push_str(t);
        } else {
            if !letters.is_empty() {
                tokens.push(std::mem::take(&mut letters));
            }
            tokens.push(t.to_string());
        }
    }
    if !letters.is_empty() {
        tokens.push(letters);
    }
    let core: Vec<&str> = tokens
        .iter()
        .map(String::as_str)
        .filter(|t| !LEGAL_FORMS.contains(t))
        .collect();
    // A name that is only a legal form keeps it rather than vanishing.
    let kept = if core.is_empty() {
        tokens.iter().map(String::as_str).collect()
    } else {
        core
    };
    out.push_str(&kept.join(" "));
    !out.is_empty()
}

/// Name particles that begin a surname ("van den Berg", "de la Fontaine", "von Bauer",
/// "op den Beek", "in 't Veld", "El Amrani"). Not "ben" or "bin": given names too.
const PARTICLES: &[&str] = &[
    "van", "von", "de", "der", "den", "del", "della", "di", "da", "du", "la", "le", "ter", "ten",
    "zu", "y", "dos", "das", "op", "in", "het", "te", "'t", "’t", "el", "al", "ait", "des", "vom",
    "zum", "zur", "dei", "degli",
];

/// Whether a token of a *normalized* surname is a particle: as [`PARTICLES`], and `t`, which
/// is "'t" once normalization has dropped the apostrophe (in a raw full name a lone "T" is an
/// initial, so [`split_full_name`] does not take it).
fn is_normalized_particle(token: &str) -> bool {
    token == "t" || PARTICLES.contains(&token)
}

/// A surname in comparable form ([`normalize_name_into`]) with particles written after the
/// name moved to its front, as sorted lists and some forms write them: `Vries de` →
/// `de vries`, `Wal, van der` → `van der wal`. A name of particles only stays as it is.
pub fn normalize_surname_into(raw: &str, out: &mut String) -> bool {
    if !normalize_name_into(raw, out) {
        return false;
    }
    let tokens: Vec<&str> = out.split(' ').collect();
    let trailing = tokens
        .iter()
        .rev()
        .take_while(|t| is_normalized_particle(t))
        .count();
    if trailing == 0 || trailing == tokens.len() {
        return true;
    }
    let (name, particles) = tokens.split_at(tokens.len() - trailing);
    let moved = [particles, name].concat().join(" ");
    out.clear();
    out.push_str(&moved);
    true
}

/// A surname without its particles (`van der Wal` → `wal`, `El Kaddouri` → `kaddouri`): one
/// family name whether a source wrote the particles, dropped them, or moved them into the
/// given names. A name of particles only keeps them.
pub fn surname_core_into(raw: &str, out: &mut String) -> bool {
    // Matching calls this on staged surnames, already normalized, for millions of pairs:
    // those skip the Unicode decomposition.
    let normalized = !raw.is_empty()
        && !raw.starts_with(' ')
        && !raw.ends_with(' ')
        && !raw.contains("  ")
        && raw
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b' ');
    if normalized {
        out.push_str(raw);
    } else if !normalize_name_into(raw, out) {
        return false;
    }
    let core: Vec<&str> = out
        .split(' ')
        .filter(|t| !is_normalized_particle(t))
        .collect();
    if !core.is_empty() && core.len() < out.split(' ').count() {
        let core = core.join(" ");
        out.clear();
        out.push_str(&core);
    }
    true
}

/// Salutations and titles written before a name in contact exports (English, Dutch, German,
/// French, Spanish, Italian), compared lower-case without a trailing dot. Left in, "Dhr. Jan
/// de Vries" would have the first name "Dhr.", and every record so written would disagree on
/// the first name with the person's other records.
const SALUTATIONS: &[&str] = &[
    "mr", "mrs", "ms", "miss", "mx", "dr", "prof", "sir", "dame", "dhr", "mevr", "mw", "mej",
    "drs", "ir", "ing", "herr", "frau", "fr", "hr", "dipl", "mme", "mlle", "monsieur", "madame",
    "sr", "sra", "srta", "sig", "sigra",
];

/// `raw` without leading salutations ("Dhr.", "Frau", "Dr."), as long as two words are left
/// ("Herr Müller" keeps its salutation: the one word left would be taken for a first name).
fn strip_salutations(raw: &str) -> &str {
    let mut rest = raw.trim_start();
    loop {
        let Some((token, after)) = rest.split_once(char::is_whitespace) else {
            return rest;
        };
        let word = token.trim_end_matches('.').to_lowercase();
        // Not "M.": in contact exports it is far more often an initial ("M. de Boer") than
        // Monsieur, and taking an initial away makes the particle the first name.
        let salutation = SALUTATIONS.contains(&word.as_str());
        let after = after.trim_start();
        if !salutation || after.split_whitespace().nth(1).is_none() || after.starts_with(',') {
            return rest;
        }
        rest = after;
    }
}

/// Parts of a full name: (first, middle, last). Handles "Last, First Middle" and
/// "First Middle Last" with surname particles; initials keep their letter; leading
/// salutations and titles ("Dhr.", "Frau", "Dr.") are dropped.
pub fn split_full_name(raw: &str) -> Option<(String, Option<String>, Option<String>)> {
    let clean = |s: &str| {
        s.trim()
            .trim_matches(|c: char| c == ',' || c == ';')
            .trim()
            .to_string()
    };
    let raw = strip_salutations(raw.trim());
    if raw.is_empty() {
        return None;
    }
    if let Some((last, rest)) = raw.split_once(',') {
        let mut given = rest.split_whitespace();
        let first = given.next().map(clean)?;
        let mut middle: Vec<&str> = given.collect();
        // "Vries, Jan de": particles after the given names belong in front of the surname,
        // as sorted lists write Dutch and Flemish names.
        let particles = middle
            .iter()
            .rev()
            .take_while(|t| PARTICLES.contains(&t.to_lowercase().as_str()))
            .count();
        let moved = middle.split_off(middle.len() - particles);
        let last = clean(last);
        let last = if moved.is_empty() || last.is_empty() {
            last
        } else {
            format!("{} {last}", moved.join(" "))
        };
        return Some((
            first,
            (!middle.is_empty()).then(|| middle.join(" ")),
            (!last.is_empty()).then_some(last),
        ));
    }
    let tokens: Vec<&str> = raw.split_whitespace().collect();
    if tokens.len() == 1 {
        return Some((clean(tokens[0]), None, None));
    }
    // The surname starts at the first particle after the first name, else it is the last token.
    let start = (1..tokens.len() - 1)
        .find(|&i| PARTICLES.contains(&tokens[i].to_lowercase().as_str()))
        .unwrap_or(tokens.len() - 1);
    let middle = &tokens[1..start];
    Some((
        clean(tokens[0]),
        (!middle.is_empty()).then(|| middle.join(" ")),
        Some(tokens[start..].join(" ")),
    ))
}

/// E.164 form of a phone number (`+31612345678`), reading national numbers in `region`
/// (ISO 3166 alpha-2). `None` when it cannot be parsed as a number.
pub fn e164(raw: &str, region: Option<&str>) -> Option<String> {
    use phonenumber::country::Id;
    let raw = raw.trim();
    if raw.chars().filter(|c| c.is_ascii_digit()).count() < 5 {
        return None;
    }
    let region: Option<Id> = region.and_then(|r| r.trim().to_ascii_uppercase().parse().ok());
    let number = phonenumber::parse(region, raw).ok()?;
    Some(number.format().mode(phonenumber::Mode::E164).to_string())
}

/// Whether `raw` is a valid phone number: with its country code, or in national form for
/// `region` (ISO 3166 alpha-2). Used to tell phone columns from other digit columns.
pub fn is_valid_phone(raw: &str, region: Option<&str>) -> bool {
    use phonenumber::country::Id;
    let region: Option<Id> = region.and_then(|r| r.trim().to_ascii_uppercase().parse().ok());
    phonenumber::parse(region, raw.trim()).is_ok_and(|n| phonenumber::is_valid(&n))
}

/// The region (ISO 3166 alpha-2) of a phone number written with its country code
/// (`+31 6 …` or `0031 6 …` → `NL`).
pub fn phone_region(raw: &str) -> Option<String> {
    let raw = raw.trim();
    let international = match raw.strip_prefix("00") {
        Some(rest) => format!("+{rest}"),
        None if raw.starts_with('+') => raw.to_string(),
        None => return None,
    };
    let number = phonenumber::parse(None, &international).ok()?;
    number.country().id().map(|id| format!("{id:?}"))
}

/// The last nine digits of a phone number, the same whatever its format or country prefix;
/// false (NULL) with fewer than seven digits. Only ASCII digits count.
pub fn phone_digits_into(raw: &str, out: &mut String) -> bool {
    let digits: Vec<char> = raw.chars().filter(|c| c.is_ascii_digit()).collect();
    if digits.len() < 7 {
        return false;
    }
    out.extend(&digits[digits.len().saturating_sub(9)..]);
    true
}

/// An identifier (national id, customer or card number, tax id) in one spelling: ASCII
/// letters upper-cased and digits kept, everything else (spaces, dashes, dots, slashes)
/// dropped; false (NULL) when nothing is left. "123-45 678" and "12345678" are one id.
pub fn normalize_identifier_into(raw: &str, out: &mut String) -> bool {
    out.extend(
        raw.chars()
            .filter(|c| c.is_alphanumeric())
            .flat_map(|c| c.to_uppercase()),
    );
    !out.is_empty()
}

macro_rules! unary_string_udf {
    ($ty:ident, $name:literal, $f:path) => {
        #[derive(Debug, PartialEq, Eq, Hash)]
        pub struct $ty {
            signature: Signature,
        }
        impl Default for $ty {
            fn default() -> Self {
                Self::new()
            }
        }
        impl $ty {
            pub fn new() -> Self {
                Self {
                    signature: Signature::uniform(
                        1,
                        vec![DataType::Utf8, DataType::LargeUtf8, DataType::Utf8View],
                        Volatility::Immutable,
                    ),
                }
            }
        }
        impl ScalarUDFImpl for $ty {
            fn name(&self) -> &str {
                $name
            }
            fn signature(&self) -> &Signature {
                &self.signature
            }
            fn return_type(&self, arg_types: &[DataType]) -> Result<DataType> {
                string_return_type(self.name(), &arg_types[0])
            }
            fn invoke_with_args(&self, args: ScalarFunctionArgs) -> Result<ColumnarValue> {
                map_strings(self.name(), &args.args[0], $f)
            }
        }
    };
}

unary_string_udf!(NormalizeName, "normalize_name", normalize_name_into);
unary_string_udf!(
    NormalizeSurname,
    "normalize_surname",
    normalize_surname_into
);
unary_string_udf!(SurnameCore, "surname_core", surname_core_into);
unary_string_udf!(PhoneDigits, "phone_digits", phone_digits_into);
unary_string_udf!(
    NormalizeIdentifier,
    "normalize_identifier",
    normalize_identifier_into
);
unary_string_udf!(
    CanonicalFirstName,
    "canonical_first_name",
    canonical_first_name_into
);
unary_string_udf!(
    NormalizeAddress,
    "normalize_address",
    normalize_address_into
);
unary_string_udf!(
    NormalizeCompany,
    "normalize_company",
    normalize_company_into
);

/// `normalize_phone(text, default_region)`: E.164, or NULL when not a phone number.
#[derive(Debug, PartialEq, Eq, Hash)]
pub struct NormalizePhone {
    signature: Signature,
}

impl Default for NormalizePhone {
    fn default() -> Self {
        Self::new()
    }
}

impl NormalizePhone {
    pub fn new() -> Self {
        let one = [DataType::Utf8, DataType::LargeUtf8, DataType::Utf8View]
            .map(|a| TypeSignature::Exact(vec![a]));
        let mut sigs = one.to_vec();
        sigs.extend(crate::strings::string_pairs(&[]));
        Self {
            signature: Signature::one_of(sigs, Volatility::Immutable),
        }
    }
}

impl ScalarUDFImpl for NormalizePhone {
    fn name(&self) -> &str {
        "normalize_phone"
    }
    fn signature(&self) -> &Signature {
        &self.signature
    }
    fn return_type(&self, _: &[DataType]) -> Result<DataType> {
        Ok(DataType::Utf8)
    }
    fn invoke_with_args(&self, args: ScalarFunctionArgs) -> Result<ColumnarValue> {
        use crate::strings::{all_scalars, arg_arrays, Strs};
        let scalar = all_scalars(&args.args);
        let arrays = arg_arrays(&args.args, args.number_rows)?;
        let text = Strs::new(self.name(), &arrays[0])?;
        let region = match arrays.get(1) {
            Some(a) => Some(Strs::new(self.name(), a)?),
            None => None,
        };
        let mut b = datafusion::arrow::array::StringBuilder::with_capacity(
            arrays[0].len(),
            arrays[0].len() * 13,
        );
        // Numbers repeat (households, duplicates): cache the last parse per distinct input.
        let mut cache: std::collections::HashMap<(&str, Option<&str>), Option<String>> =
            std::collections::HashMap::new();
        for i in 0..arrays[0].len() {
            let r = region.as_ref().and_then(|r| r.get(i));
            match text.get(i) {
                Some(t) => {
                    let v = cache.entry((t, r)).or_insert_with(|| e164(t, r));
                    b.append_option(v.as_deref());
                }
                None => b.append_null(),
            }
        }
        let out: datafusion::arrow::array::ArrayRef = std::sync::Arc::new(b.finish());
        crate::strings::columnar(out, scalar)
    }
}

/// `split_full_name(text)`: a struct of `first`, `middle`, `last`.
#[derive(Debug, PartialEq, Eq, Hash)]
pub struct SplitFullName {
    signature: Signature,
}

impl Default for SplitFullName {
    fn default() -> Self {
        Self::new()
    }
}

impl SplitFullName {
    pub fn new() -> Self {
        Self {
            signature: Signature::uniform(
                1,
                vec![DataType::Utf8, DataType::LargeUtf8, DataType::Utf8View],
                Volatility::Immutable,
            ),
        }
    }

    fn fields() -> datafusion::arrow::datatypes::Fields {
        use datafusion::arrow::datatypes::Field;
        vec![
            Field::new("first", DataType::Utf8, true),
            Field::new("middle", DataType::Utf8, true),
            Field::new("last", DataType::Utf8, true),
        ]
        .into()
    }
}

impl ScalarUDFImpl for SplitFullName {
    fn name(&self) -> &str {
        "split_full_name"
    }
    fn signature(&self) -> &Signature {
        &self.signature
    }
    fn return_type(&self, _: &[DataType]) -> Result<DataType> {
        Ok(DataType::Struct(Self::fields()))
    }
    fn invoke_with_args(&self, args: ScalarFunctionArgs) -> Result<ColumnarValue> {
        use crate::strings::{all_scalars, arg_arrays, Strs};
        use datafusion::arrow::array::{ArrayRef, StringBuilder, StructArray};
        use datafusion::arrow::buffer::NullBuffer;
        let scalar = all_scalars(&args.args);
        let arrays = arg_arrays(&args.args, args.number_rows)?;
        let text = Strs::new(self.name(), &arrays[0])?;
        let n = arrays[0].len();
        let (mut f, mut m, mut l) = (
            StringBuilder::new(),
            StringBuilder::new(),
            StringBuilder::new(),
        );
        let mut valid = Vec::with_capacity(n);
        for i in 0..n {
            match text.get(i).and_then(split_full_name) {
                Some((first, middle, last)) => {
                    f.append_value(first);
                    m.append_option(middle);
                    l.append_option(last);
                    valid.push(true);
                }
                None => {
                    f.append_null();
                    m.append_null();
                    l.append_null();
                    valid.push(false);
                }
            }
        }
        let cols: Vec<ArrayRef> = vec![
            std::sync::Arc::new(f.finish()),
            std::sync::Arc::new(m.finish()),
            std::sync::Arc::new(l.finish()),
        ];
        let out: ArrayRef = std::sync::Arc::new(StructArray::try_new(
            Self::fields(),
            cols,
            Some(NullBuffer::from(valid)),
        )?);
        crate::strings::columnar(out, scalar)
    }
}

#[cfg(test)]
mod more_tests {
    use super::*;

    fn apply(f: fn(&str, &mut String) -> bool, s: &str) -> Option<String> {
        let mut out = String::new();
        f(s, &mut out).then_some(out)
    }

    #[test]
    fn nicknames_resolve_to_formal_names() {
        assert_eq!(
            apply(canonical_first_name_into, "Bob").as_deref(),
            Some("robert")
        );
        assert_eq!(
            apply(canonical_first_name_into, " HANS ").as_deref(),
            Some("johannes")
        );
        assert_eq!(
            apply(canonical_first_name_into, "Pepe").as_deref(),
            Some("jose")
        );
        assert_eq!(
            apply(canonical_first_name_into, "Jürgen").as_deref(),
            Some("jurgen")
        );
        assert_eq!(apply(canonical_first_name_into, ""), None);
    }

    #[test]
    fn addresses() {
        assert_eq!(
            apply(normalize_address_into, "Hauptstraße 12").as_deref(),
            Some("hauptstr 12")
        );
        assert_eq!(
            apply(normalize_address_into, "Hauptstr. 12").as_deref(),
            Some("hauptstr 12")
        );
        assert_eq!(
            apply(normalize_address_into, "12 Main Street").as_deref(),
            Some("12 main st")
        );
        assert_eq!(
            apply(normalize_address_into, "12 MAIN ST.").as_deref(),
            Some("12 main st")
        );
        assert_eq!(
            apply(normalize_address_into, "Kerkstraat 5").as_deref(),
            Some("kerkstr 5")
        );
        assert_eq!(
            apply(normalize_address_into, "Avenida de la Constitución 3").as_deref(),
            Some("ave de la constitucion 3")
        );
    }

    #[test]
    fn companies() {
        assert_eq!(
            apply(normalize_company_into, "Acme B.V.").as_deref(),
            Some("acme")
        );
        assert_eq!(
            apply(normalize_company_into, "ACME BV").as_deref(),
            Some("acme")
        );
        assert_eq!(
            apply(normalize_company_into, "Nordwind GmbH & Co. KG").as_deref(),
            Some("nordwind")
        );
        assert_eq!(
            apply(normalize_company_into, "Blue Harbor Ltd").as_deref(),
            Some("blue harbor")
        );
        assert_eq!(
            apply(normalize_company_into, "Rivière S.A.R.L.").as_deref(),
            Some("riviere")
        );
    }

    #[test]
    fn surnames_put_particles_first_and_drop_them_for_the_core() {
        let sur = |x: &str| apply(normalize_surname_into, x);
        assert_eq!(sur("Vries de").as_deref(), Some("de vries"));
        assert_eq!(sur("Wal van der").as_deref(), Some("van der wal"));
        assert_eq!(sur("Veld in 't").as_deref(), Some("in t veld"));
        assert_eq!(sur("van der Wal").as_deref(), Some("van der wal"));
        assert_eq!(sur("De La Fontaine").as_deref(), Some("de la fontaine"));
        assert_eq!(sur("Müller").as_deref(), Some("muller"));
        assert_eq!(sur("de").as_deref(), Some("de"));
        assert_eq!(sur(" , "), None);
        let core = |x: &str| apply(surname_core_into, x);
        assert_eq!(core("van der Wal").as_deref(), Some("wal"));
        assert_eq!(core("Wal van der").as_deref(), Some("wal"));
        assert_eq!(core("El Kaddouri").as_deref(), Some("kaddouri"));
        assert_eq!(core("in 't Veld").as_deref(), Some("veld"));
        assert_eq!(core("Ait Ahmed").as_deref(), Some("ahmed"));
        assert_eq!(
            core("Müller-Lüdenscheidt").as_deref(),
            Some("muller ludenscheidt")
        );
        assert_eq!(core("Le").as_deref(), Some("le"));
        assert_eq!(core(""), None);
    }

    #[test]
    fn full_names() {
        let s = |x: &str| split_full_name(x).unwrap();
        assert_eq!(
            s("SMITH, Jonathan Paul"),
            ("Jonathan".into(), Some("Paul".into()), Some("SMITH".into()))
        );
        assert_eq!(
            s("Jan van den Berg"),
            ("Jan".into(), None, Some("van den Berg".into()))
        );
        assert_eq!(
            s("Mary Ann Lee"),
            ("Mary".into(), Some("Ann".into()), Some("Lee".into()))
        );
        assert_eq!(s("J. Smith"), ("J.".into(), None, Some("Smith".into())));
        assert_eq!(s("Cher"), ("Cher".into(), None, None));
        // Particles after the given names of a sorted name go to the surname's front.
        assert_eq!(
            s("Vries, Jan de"),
            ("Jan".into(), None, Some("de Vries".into()))
        );
        assert_eq!(
            s("Wal, Anna Maria van der"),
            (
                "Anna".into(),
                Some("Maria".into()),
                Some("van der Wal".into())
            )
        );
        assert_eq!(
            s("Jan op den Beek"),
            ("Jan".into(), None, Some("op den Beek".into()))
        );
        assert_eq!(
            s("Mohamed El Amrani"),
            ("Mohamed".into(), None, Some("El Amrani".into()))
        );
        // A lone letter is an initial, not "'t".
        assert_eq!(
            s("Jan T Smit"),
            ("Jan".into(), Some("T".into()), Some("Smit".into()))
        );
        assert!(split_full_name("  ").is_none());
        // Salutations and titles go; a name that is only one stays.
        assert_eq!(
            s("Dhr. Jan de Vries"),
            ("Jan".into(), None, Some("de Vries".into()))
        );
        assert_eq!(
            s("Frau Dr. Anna Müller"),
            ("Anna".into(), None, Some("Müller".into()))
        );
        assert_eq!(s("Mevr. DE VRIES, Anna").0, "Anna");
        assert_eq!(s("M. de Boer"), ("M.".into(), None, Some("de Boer".into())));
        assert_eq!(
            s("Herr Müller"),
            ("Herr".into(), None, Some("Müller".into()))
        );
        assert_eq!(s("M Dupont"), ("M".into(), None, Some("Dupont".into())));
        assert_eq!(s("Herr"), ("Herr".into(), None, None));
    }

    #[test]
    fn phones_to_e164() {
        for raw in [
            "+31 6 1234 5678",
            "0031612345678",
            "06-12345678",
            "(06) 12345678",
            "+31 (0)612345678",
        ] {
            assert_eq!(
                e164(raw, Some("NL")).as_deref(),
                Some("+31612345678"),
                "{raw}"
            );
        }
        assert_eq!(
            e164("(212) 555-0134", Some("US")).as_deref(),
            Some("+12125550134")
        );
        assert_eq!(
            e164("1-212-555-0134", Some("us")).as_deref(),
            Some("+12125550134")
        );
        assert_eq!(
            e164("030 1234567", Some("DE")).as_deref(),
            Some("+49301234567")
        );
        assert_eq!(e164("n/a", Some("NL")), None);
        // Without a region, only international forms can be read.
        assert_eq!(e164("0612345678", None), None);
    }
}
