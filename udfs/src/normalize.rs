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
            } else if !fold_special(c, out) {
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
string_udf!(NormalizeName);

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

impl NormalizeName {
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

impl ScalarUDFImpl for NormalizeName {
    fn name(&self) -> &str {
        "normalize_name"
    }
    fn signature(&self) -> &Signature {
        &self.signature
    }
    fn return_type(&self, arg_types: &[DataType]) -> Result<DataType> {
        string_return_type(self.name(), &arg_types[0])
    }
    fn invoke_with_args(&self, args: ScalarFunctionArgs) -> Result<ColumnarValue> {
        map_strings(self.name(), &args.args[0], normalize_name_into)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

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
