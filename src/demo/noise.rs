//! The ways real source systems garble the same person: typos, case, name order, nicknames,
//! phone formats, stray whitespace.

use rand::rngs::SmallRng;
use rand::Rng;

use super::locales::Locale;

pub fn pick<'a, T>(rng: &mut SmallRng, items: &'a [T]) -> &'a T {
    &items[rng.random_range(0..items.len())]
}

/// One keyboard-style mistake: substitution, deletion, transposition or doubling.
pub fn typo(rng: &mut SmallRng, s: &str) -> String {
    let chars: Vec<char> = s.chars().collect();
    if chars.len() < 3 {
        return s.to_string();
    }
    // Leave the first letter alone: people rarely get that wrong.
    let i = rng.random_range(1..chars.len());
    let mut out = chars.clone();
    match rng.random_range(0..4) {
        0 => {
            const NEAR: &[u8] = b"qwertyuiopasdfghjklzxcvbnm";
            let c = NEAR[rng.random_range(0..NEAR.len())] as char;
            out[i] = if chars[i].is_uppercase() {
                c.to_ascii_uppercase()
            } else {
                c
            };
        }
        1 => {
            out.remove(i);
        }
        2 if i + 1 < chars.len() => out.swap(i, i + 1),
        _ => out.insert(i, chars[i]),
    }
    out.into_iter().collect()
}

/// Strip diacritics the way old systems do (é → e, ü → u, ß → ss).
pub fn ascii_fold(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            'á' | 'à' | 'â' | 'ä' | 'ã' => out.push('a'),
            'Á' | 'À' | 'Â' | 'Ä' => out.push('A'),
            'é' | 'è' | 'ê' | 'ë' => out.push('e'),
            'É' | 'È' | 'Ê' => out.push('E'),
            'í' | 'ì' | 'î' | 'ï' => out.push('i'),
            'Í' => out.push('I'),
            'ó' | 'ò' | 'ô' | 'ö' => out.push('o'),
            'Ó' | 'Ö' => out.push('O'),
            'ú' | 'ù' | 'û' | 'ü' => out.push('u'),
            'Ú' | 'Ü' => out.push('U'),
            'ñ' => out.push('n'),
            'Ñ' => out.push('N'),
            'ç' => out.push('c'),
            'ß' => out.push_str("ss"),
            other => out.push(other),
        }
    }
    out
}

/// German-style transliteration (ü → ue), as some systems store umlauts.
pub fn umlaut_expand(s: &str) -> String {
    s.replace('ü', "ue")
        .replace('ö', "oe")
        .replace('ä', "ae")
        .replace('Ü', "Ue")
        .replace('Ö', "Oe")
        .replace('Ä', "Ae")
        .replace('ß', "ss")
}

/// A nickname for a formal first name, if the locale knows one.
pub fn nickname(rng: &mut SmallRng, locale: &Locale, first: &str) -> Option<&'static str> {
    let options: Vec<&'static str> = locale
        .nicknames
        .iter()
        .filter(|(formal, _)| *formal == first)
        .map(|(_, nick)| *nick)
        .collect();
    (!options.is_empty()).then(|| *pick(rng, &options))
}

/// A phone number as some system would have stored it. `national` has no trunk prefix.
pub fn phone_format(rng: &mut SmallRng, locale: &Locale, national: &str) -> String {
    let cc = locale.calling_code;
    let trunk = locale.trunk;
    let grouped = |n: &str, size: usize| -> String {
        n.as_bytes()
            .chunks(size)
            .map(|c| std::str::from_utf8(c).unwrap_or_default())
            .collect::<Vec<_>>()
            .join(" ")
    };
    if locale.country == "US" && national.len() == 10 {
        let (a, rest) = national.split_at(3);
        let (b, c) = rest.split_at(3);
        return match rng.random_range(0..5) {
            0 => format!("+1{national}"),
            1 => format!("({a}) {b}-{c}"),
            2 => format!("{a}-{b}-{c}"),
            3 => format!("1-{a}-{b}-{c}"),
            _ => format!("+1 {a} {b} {c}"),
        };
    }
    let split = 1 + national.len() / 4;
    // Without a trunk prefix there is nothing to put in brackets.
    let styles = if trunk.is_empty() { 5 } else { 7 };
    match rng.random_range(0..styles) {
        0 => format!("+{cc}{national}"),
        1 => format!("+{cc} {}", grouped(national, 3)),
        2 => format!("00{cc}{national}"),
        3 => format!("{trunk}{national}"),
        4 => format!("{trunk}{}-{}", &national[..split], &national[split..]),
        5 => format!("({trunk}{}) {}", &national[..split], &national[split..]),
        _ => format!("+{cc} ({trunk}){national}"),
    }
}

/// Upper-case, lower-case or as written.
pub fn casing(rng: &mut SmallRng, s: &str, upper_pct: u32) -> String {
    if rng.random_ratio(upper_pct, 100) {
        s.to_uppercase()
    } else {
        s.to_string()
    }
}

/// An e-mail as typed into some form: stray spaces or capitals.
pub fn email_variant(rng: &mut SmallRng, email: &str) -> String {
    match rng.random_range(0..10) {
        0 => format!("{email} "),
        1 => format!(" {email}"),
        2 => {
            let (local, domain) = email.split_once('@').unwrap_or((email, ""));
            let mut l: Vec<char> = local.chars().collect();
            if let Some(c) = l.first_mut() {
                *c = c.to_ascii_uppercase();
            }
            format!("{}@{}", l.into_iter().collect::<String>(), domain)
        }
        3 => email.to_uppercase(),
        _ => email.to_string(),
    }
}

/// Digits for a number with the given prefix and total national length.
pub fn digits(rng: &mut impl Rng, prefix: &str, len: usize) -> String {
    let mut s = String::with_capacity(prefix.len() + len);
    s.push_str(prefix);
    for _ in 0..len {
        s.push((b'0' + rng.random_range(0..10u8)) as char);
    }
    s
}
