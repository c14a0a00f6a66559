//! String similarity functions for field comparisons: edit distances (raw and normalized to
//! 0..1), Jaro-Winkler, token Jaccard, q-gram overlap, and a phonetic code.
//!
//! Edit distances come from `strsim`; the normalized forms follow the convention users know
//! from Dynamics 365 precision levels: `(max_len - distance) / max_len`.

use std::collections::HashSet;
use std::sync::Arc;

use datafusion::arrow::array::{ArrayRef, Float64Builder, Int64Builder};
use datafusion::arrow::datatypes::DataType;
use datafusion::common::{exec_err, Result, ScalarValue};
use datafusion::logical_expr::{
    ColumnarValue, ScalarFunctionArgs, ScalarUDFImpl, Signature, Volatility,
};

use crate::strings::{all_scalars, arg_arrays, columnar, string_pairs, Strs};

/// Whether `a` and `b` are at most one edit apart: equal, or one character changed, dropped,
/// added, or two neighbours swapped (Damerau-Levenshtein <= 1). Linear, without the
/// distance's table: matching asks it of millions of candidate pairs.
pub fn within_one_edit(a: &str, b: &str) -> bool {
    if a == b {
        return true;
    }
    if a.is_ascii() && b.is_ascii() {
        one_edit(a.as_bytes(), b.as_bytes())
    } else {
        let (a, b): (Vec<char>, Vec<char>) = (a.chars().collect(), b.chars().collect());
        one_edit(&a, &b)
    }
}

fn one_edit<T: PartialEq>(a: &[T], b: &[T]) -> bool {
    if a.len().abs_diff(b.len()) > 1 {
        return false;
    }
    let p = a.iter().zip(b).take_while(|(x, y)| x == y).count();
    match a.len().cmp(&b.len()) {
        std::cmp::Ordering::Less => a[p..] == b[p + 1..],
        std::cmp::Ordering::Greater => a[p + 1..] == b[p..],
        std::cmp::Ordering::Equal if p == a.len() => true,
        std::cmp::Ordering::Equal => {
            a[p + 1..] == b[p + 1..]
                || (p + 1 < a.len()
                    && a[p] == b[p + 1]
                    && a[p + 1] == b[p]
                    && a[p + 2..] == b[p + 2..])
        }
    }
}

/// `(max_len - distance) / max_len`, in characters; two empty strings are identical.
pub fn normalized(distance: usize, a: &str, b: &str) -> f64 {
    let len = a.chars().count().max(b.chars().count());
    if len == 0 {
        1.0
    } else {
        (len - distance.min(len)) as f64 / len as f64
    }
}

/// Jaccard similarity of the sets of whitespace-separated tokens.
pub fn token_jaccard(a: &str, b: &str) -> f64 {
    let ta: HashSet<&str> = a.split_whitespace().collect();
    let tb: HashSet<&str> = b.split_whitespace().collect();
    if ta.is_empty() && tb.is_empty() {
        return 1.0;
    }
    let inter = ta.intersection(&tb).count();
    inter as f64 / (ta.len() + tb.len() - inter) as f64
}

/// Dice overlap of character q-grams (padded, so short strings still have q-grams).
pub fn qgram_similarity(a: &str, b: &str, q: usize) -> f64 {
    fn grams(s: &str, q: usize) -> Vec<String> {
        let pad: String = std::iter::repeat_n('#', q.saturating_sub(1)).collect();
        let chars: Vec<char> = format!("{pad}{s}{pad}").chars().collect();
        if chars.len() < q {
            return vec![chars.iter().collect()];
        }
        let mut g: Vec<String> = chars.windows(q).map(|w| w.iter().collect()).collect();
        g.sort_unstable();
        g
    }
    if a == b {
        return 1.0;
    }
    let (ga, gb) = (grams(a, q), grams(b, q));
    // Multiset intersection of two sorted lists.
    let (mut i, mut j, mut common) = (0, 0, 0);
    while i < ga.len() && j < gb.len() {
        match ga[i].cmp(&gb[j]) {
            std::cmp::Ordering::Equal => {
                common += 1;
                i += 1;
                j += 1;
            }
            std::cmp::Ordering::Less => i += 1,
            std::cmp::Ordering::Greater => j += 1,
        }
    }
    2.0 * common as f64 / (ga.len() + gb.len()) as f64
}

/// The comparisons offered in SQL, each a function of two strings.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Measure {
    JaroWinkler,
    Levenshtein,
    LevenshteinSim,
    DamerauLevenshtein,
    DamerauLevenshteinSim,
    TokenJaccard,
    QgramSim,
}

impl Measure {
    fn name(&self) -> &'static str {
        match self {
            Measure::JaroWinkler => "jaro_winkler",
            Measure::Levenshtein => "levenshtein_distance",
            Measure::LevenshteinSim => "levenshtein_sim",
            Measure::DamerauLevenshtein => "damerau_levenshtein",
            Measure::DamerauLevenshteinSim => "damerau_levenshtein_sim",
            Measure::TokenJaccard => "token_jaccard",
            Measure::QgramSim => "qgram_sim",
        }
    }

    fn is_distance(&self) -> bool {
        matches!(self, Measure::Levenshtein | Measure::DamerauLevenshtein)
    }

    /// Similarity (0..1) or distance (edits) of two present values.
    pub fn eval(&self, a: &str, b: &str, q: usize) -> f64 {
        match self {
            Measure::JaroWinkler => strsim::jaro_winkler(a, b),
            Measure::Levenshtein => strsim::levenshtein(a, b) as f64,
            Measure::LevenshteinSim => normalized(strsim::levenshtein(a, b), a, b),
            Measure::DamerauLevenshtein => strsim::damerau_levenshtein(a, b) as f64,
            Measure::DamerauLevenshteinSim => normalized(strsim::damerau_levenshtein(a, b), a, b),
            Measure::TokenJaccard => token_jaccard(a, b),
            Measure::QgramSim => qgram_similarity(a, b, q),
        }
    }
}

/// A two-string comparison as a scalar UDF; NULL on either side gives NULL.
#[derive(Debug, PartialEq, Eq, Hash)]
pub struct Similarity {
    measure: Measure,
    signature: Signature,
}

impl Similarity {
    pub fn new(measure: Measure) -> Self {
        let mut sigs = string_pairs(&[]);
        if measure == Measure::QgramSim {
            sigs.extend(string_pairs(&[DataType::Int64]));
        }
        Similarity {
            measure,
            signature: Signature::one_of(sigs, Volatility::Immutable),
        }
    }
}

impl ScalarUDFImpl for Similarity {
    fn name(&self) -> &str {
        self.measure.name()
    }
    fn signature(&self) -> &Signature {
        &self.signature
    }
    fn return_type(&self, _: &[DataType]) -> Result<DataType> {
        Ok(if self.measure.is_distance() {
            DataType::Int64
        } else {
            DataType::Float64
        })
    }
    fn invoke_with_args(&self, args: ScalarFunctionArgs) -> Result<ColumnarValue> {
        let q = match args.args.get(2) {
            None => 2,
            Some(ColumnarValue::Scalar(ScalarValue::Int64(Some(q)))) if (1..=5).contains(q) => {
                *q as usize
            }
            Some(_) => return exec_err!("qgram_sim: q must be a constant from 1 to 5"),
        };
        let scalar = all_scalars(&args.args[..2]);
        let arrays = arg_arrays(&args.args[..2], args.number_rows)?;
        let (a, b) = (
            Strs::new(self.name(), &arrays[0])?,
            Strs::new(self.name(), &arrays[1])?,
        );
        let n = arrays[0].len();
        let out: ArrayRef = if self.measure.is_distance() {
            let mut bld = Int64Builder::with_capacity(n);
            for i in 0..n {
                match (a.get(i), b.get(i)) {
                    (Some(x), Some(y)) => bld.append_value(self.measure.eval(x, y, q) as i64),
                    _ => bld.append_null(),
                }
            }
            Arc::new(bld.finish())
        } else {
            let mut bld = Float64Builder::with_capacity(n);
            for i in 0..n {
                match (a.get(i), b.get(i)) {
                    (Some(x), Some(y)) => bld.append_value(self.measure.eval(x, y, q)),
                    _ => bld.append_null(),
                }
            }
            Arc::new(bld.finish())
        };
        columnar(out, scalar)
    }
}

/// Double Metaphone primary code: names that sound alike get the same code
/// (`Smith` and `Smyth` → `SM0`).
#[derive(Debug, PartialEq, Eq, Hash)]
pub struct DoubleMetaphone {
    signature: Signature,
}

impl Default for DoubleMetaphone {
    fn default() -> Self {
        Self::new()
    }
}

impl DoubleMetaphone {
    pub fn new() -> Self {
        DoubleMetaphone {
            signature: Signature::uniform(
                1,
                vec![DataType::Utf8, DataType::LargeUtf8, DataType::Utf8View],
                Volatility::Immutable,
            ),
        }
    }
}

/// The primary Double Metaphone code of `s`, or `None` for input without letters.
pub fn metaphone(encoder: &rphonetic::DoubleMetaphone, s: &str) -> Option<String> {
    use rphonetic::Encoder;
    let mut ascii = String::new();
    crate::normalize::normalize_name_into(s, &mut ascii);
    if ascii.is_empty() {
        return None;
    }
    let code = encoder.encode(&ascii);
    (!code.is_empty()).then_some(code)
}

impl ScalarUDFImpl for DoubleMetaphone {
    fn name(&self) -> &str {
        "double_metaphone"
    }
    fn signature(&self) -> &Signature {
        &self.signature
    }
    fn return_type(&self, arg_types: &[DataType]) -> Result<DataType> {
        crate::string_map::string_return_type(self.name(), &arg_types[0])
    }
    fn invoke_with_args(&self, args: ScalarFunctionArgs) -> Result<ColumnarValue> {
        let encoder = rphonetic::DoubleMetaphone::default();
        crate::string_map::map_strings(self.name(), &args.args[0], |s, out| {
            match metaphone(&encoder, s) {
                Some(code) => {
                    out.push_str(&code);
                    true
                }
                None => false,
            }
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn one_edit_apart() {
        for (a, b, want) in [
            ("thomas", "thomas", true),
            ("thomas", "thomaws", true),
            ("thomas", "tomas", true),
            ("thomas", "thonas", true),
            ("thomas", "htomas", true),
            ("thomas", "thomsa", true),
            ("jan", "jna", true),
            ("", "a", true),
            ("jan", "jana", true),
            ("jan", "jaan", true),
            ("thomas", "tohmsa", false),
            ("jan", "jon", true),
            ("jan", "joni", false),
            ("abc", "cba", false),
            ("müller", "muller", true),
            ("müller", "mülelr", true),
            ("maria", "mraie", false),
        ] {
            assert_eq!(within_one_edit(a, b), want, "{a} / {b}");
            assert_eq!(within_one_edit(b, a), want, "{b} / {a}");
            assert_eq!(
                want,
                strsim::damerau_levenshtein(a, b) <= 1,
                "agrees with the distance: {a} / {b}"
            );
        }
    }

    #[test]
    fn edit_similarities() {
        assert_eq!(Measure::Levenshtein.eval("kitten", "sitting", 2), 3.0);
        assert!((Measure::LevenshteinSim.eval("kitten", "sitting", 2) - 4.0 / 7.0).abs() < 1e-12);
        // A transposition is one edit for Damerau, two for Levenshtein.
        assert_eq!(Measure::DamerauLevenshtein.eval("jon", "ojn", 2), 1.0);
        assert_eq!(Measure::Levenshtein.eval("jon", "ojn", 2), 2.0);
        assert_eq!(Measure::LevenshteinSim.eval("", "", 2), 1.0);
        assert!(Measure::JaroWinkler.eval("martha", "marhta", 2) > 0.96);
    }

    #[test]
    fn token_and_qgram() {
        assert_eq!(token_jaccard("van den berg", "berg van den"), 1.0);
        assert_eq!(token_jaccard("a b", "b c"), 1.0 / 3.0);
        assert_eq!(qgram_similarity("abc", "abc", 2), 1.0);
        assert!(qgram_similarity("jonathan", "jonathon", 2) > 0.7);
        assert!(qgram_similarity("jonathan", "xyz", 2) < 0.1);
    }

    #[test]
    fn phonetic_codes() {
        let e = rphonetic::DoubleMetaphone::default();
        assert_eq!(metaphone(&e, "Smith"), metaphone(&e, "Smyth"));
        assert_eq!(metaphone(&e, "Müller"), metaphone(&e, "Muller"));
        assert_eq!(metaphone(&e, "  "), None);
    }
}
