//! Character encodings of text sources (CSV, JSON lines), below the config and the sources
//! that both use them: a file in Windows-1252, Latin-1,
//! UTF-16 or a legacy Asian encoding is transcoded to UTF-8 before it is parsed, so the readers
//! see UTF-8 only. `encoding = "auto"` finds the encoding itself: a byte-order mark, else valid
//! UTF-8, else the zero-byte pattern of BOM-less UTF-16, else [`chardetng`] (Firefox's detector
//! for unlabelled legacy text).
//!
//! Bytes that are not valid in the encoding are not replaced silently: each malformed sequence
//! becomes the byte `0xFF` — never valid UTF-8 — in the transcoded text, so the reader rejects
//! the value holding it with its line number and the encoding's name, as it rejects invalid
//! UTF-8 in a UTF-8 file.

use bytes::Bytes;
use encoding_rs::{DecoderResult, Encoding, UTF_16BE, UTF_16LE, UTF_8};

/// An `encoding` setting: a fixed encoding, or `auto`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Declared {
    Fixed(&'static Encoding),
    Auto,
}

impl Declared {
    /// Parse an `encoding` value: `auto` or a WHATWG label (`utf-8`, `windows-1252`,
    /// `iso-8859-1`, `latin1`, `utf-16`, `utf-16le`, `utf-16be`, `shift_jis`, `gbk`, ...).
    /// `None` when the label is unknown or names no real encoding (`replacement`).
    pub fn parse(label: &str) -> Option<Declared> {
        if label.eq_ignore_ascii_case("auto") {
            return Some(Declared::Auto);
        }
        match Encoding::for_label(label.trim().as_bytes()) {
            Some(e) if e != encoding_rs::REPLACEMENT => Some(Declared::Fixed(e)),
            _ => None,
        }
    }

    /// The setting of a source: absent means UTF-8.
    pub fn of(setting: Option<&str>) -> Declared {
        setting
            .and_then(Declared::parse)
            .unwrap_or(Declared::Fixed(UTF_8))
    }
}

/// How the encoding of a file was settled.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Found {
    /// As configured.
    Declared,
    /// The file starts with a byte-order mark (it overrides a declared encoding: a BOM cannot
    /// start text of another encoding).
    ByteOrderMark,
    /// Found by `auto`.
    Detected,
}

/// A file's text in UTF-8 and what it was read as.
#[derive(Debug, Clone)]
pub struct Decoded {
    /// UTF-8, except `0xFF` where the input held a sequence malformed in `encoding`.
    pub data: Bytes,
    pub encoding: &'static Encoding,
    pub found: Found,
    /// Malformed sequences (each one `0xFF` in `data`).
    pub malformed: u64,
}

impl Decoded {
    /// Bytes taken as they are (binary formats).
    pub fn utf8(data: Bytes) -> Decoded {
        Decoded {
            data,
            encoding: UTF_8,
            found: Found::Declared,
            malformed: 0,
        }
    }

    /// `windows-1252`, `windows-1252 (detected)`, `UTF-16LE (byte-order mark)`.
    pub fn describe(&self) -> String {
        let name = self.encoding.name().to_ascii_lowercase();
        match self.found {
            Found::Declared => name,
            Found::ByteOrderMark => format!("{name} (byte-order mark)"),
            Found::Detected => format!("{name} (detected)"),
        }
    }
}

/// How much of a file `auto` looks at. chardetng's guess settles within a few kilobytes of
/// non-ASCII text; 1 MiB keeps detection under a millisecond per file while reaching past
/// an ASCII-only head of a large export.
const DETECT_BYTES: usize = 1 << 20;

/// Transcode `data` to UTF-8 as `declared` says.
pub fn decode(data: Bytes, declared: Declared) -> Decoded {
    if let Some((bom_encoding, bom_len)) = Encoding::for_bom(&data) {
        // UTF-8 with a BOM stays as it is: the readers skip a UTF-8 BOM themselves.
        if bom_encoding == UTF_8 {
            let found = match declared {
                Declared::Fixed(e) if e == UTF_8 => Found::Declared,
                _ => Found::ByteOrderMark,
            };
            return Decoded {
                data,
                encoding: UTF_8,
                found,
                malformed: 0,
            };
        }
        let (text, malformed) = transcode(&data[bom_len..], bom_encoding);
        return Decoded {
            data: text,
            encoding: bom_encoding,
            found: Found::ByteOrderMark,
            malformed,
        };
    }
    let (encoding, found) = match declared {
        Declared::Fixed(e) => (e, Found::Declared),
        Declared::Auto => (detect(&data), Found::Detected),
    };
    if encoding == UTF_8 {
        // Invalid UTF-8 is found by the readers, per value, as it always was.
        return Decoded {
            data,
            encoding,
            found,
            malformed: 0,
        };
    }
    let (text, malformed) = transcode(&data, encoding);
    Decoded {
        data: text,
        encoding,
        found,
        malformed,
    }
}

/// The encoding of BOM-less text.
fn detect(data: &[u8]) -> &'static Encoding {
    if std::str::from_utf8(data).is_ok() {
        return UTF_8;
    }
    let sample = &data[..data.len().min(DETECT_BYTES)];
    if let Some(e) = utf16_without_bom(sample) {
        return e;
    }
    let mut detector = chardetng::EncodingDetector::new(chardetng::Iso2022JpDetection::Deny);
    detector.feed(sample, sample.len() == data.len());
    detector.guess(None, chardetng::Utf8Detection::Allow)
}

/// UTF-16 without a BOM: text in Latin script has a zero in (nearly) every other byte. Taken
/// when at least 30% of the bytes on one side are zero and under 2% on the other — text in
/// any 8-bit encoding has no zero bytes at all.
fn utf16_without_bom(sample: &[u8]) -> Option<&'static Encoding> {
    let pairs = sample.len() / 2;
    if pairs < 8 {
        return None;
    }
    let (mut even, mut odd) = (0usize, 0usize);
    for pair in sample.chunks_exact(2) {
        even += usize::from(pair[0] == 0);
        odd += usize::from(pair[1] == 0);
    }
    let share = |n: usize| n as f64 / pairs as f64;
    match (share(even), share(odd)) {
        (e, o) if o >= 0.3 && e < 0.02 => Some(UTF_16LE),
        (e, o) if e >= 0.3 && o < 0.02 => Some(UTF_16BE),
        _ => None,
    }
}

/// Decode `input` to UTF-8, each malformed sequence as one `0xFF` byte.
fn transcode(input: &[u8], encoding: &'static Encoding) -> (Bytes, u64) {
    let mut decoder = encoding.new_decoder_without_bom_handling();
    // Latin text grows by its accented letters only (two UTF-8 bytes for one); UTF-16 shrinks.
    let mut out: Vec<u8> = Vec::with_capacity(input.len() + input.len() / 16 + 16);
    let mut buf = vec![0u8; 64 * 1024];
    let mut rest = input;
    let mut malformed = 0u64;
    loop {
        let (result, read, written) =
            decoder.decode_to_utf8_without_replacement(rest, &mut buf, true);
        out.extend_from_slice(&buf[..written]);
        rest = &rest[read..];
        match result {
            DecoderResult::InputEmpty => break,
            DecoderResult::OutputFull => {}
            DecoderResult::Malformed(_, _) => {
                out.push(0xFF);
                malformed += 1;
            }
        }
    }
    (Bytes::from(out), malformed)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn latin1(s: &str) -> Vec<u8> {
        let (bytes, _, unmappable) = encoding_rs::WINDOWS_1252.encode(s);
        assert!(!unmappable);
        bytes.into_owned()
    }

    #[test]
    fn labels() {
        assert_eq!(Declared::parse("auto"), Some(Declared::Auto));
        assert_eq!(
            Declared::parse("latin1"),
            Some(Declared::Fixed(encoding_rs::WINDOWS_1252))
        );
        assert_eq!(
            Declared::parse("UTF-16"),
            Some(Declared::Fixed(encoding_rs::UTF_16LE))
        );
        assert_eq!(Declared::parse("klingon"), None);
        assert_eq!(
            Declared::parse("iso-2022-kr"),
            None,
            "the replacement encoding"
        );
        assert_eq!(Declared::of(None), Declared::Fixed(UTF_8));
    }

    #[test]
    fn windows_1252_declared_and_detected() {
        let text =
            "id;name;city\n1;Zoë Müller;Köln\n2;François Lefèvre;Besançon\n3;Ann;Øresund €5\n";
        let raw = Bytes::from(latin1(text));
        let d = decode(raw.clone(), Declared::parse("windows-1252").unwrap());
        assert_eq!(std::str::from_utf8(&d.data).unwrap(), text);
        assert_eq!(d.describe(), "windows-1252");
        let d = decode(raw, Declared::Auto);
        assert_eq!(std::str::from_utf8(&d.data).unwrap(), text);
        assert_eq!(d.describe(), "windows-1252 (detected)");
        // Valid UTF-8 is left as it is.
        let d = decode(Bytes::from(text), Declared::Auto);
        assert_eq!(d.describe(), "utf-8 (detected)");
    }

    #[test]
    fn utf16_with_and_without_bom() {
        let text = "id,name\n1,Zoë\n2,Łukasz\n";
        let le: Vec<u8> = text.encode_utf16().flat_map(|u| u.to_le_bytes()).collect();
        let be: Vec<u8> = text.encode_utf16().flat_map(|u| u.to_be_bytes()).collect();
        let d = decode(Bytes::from(le.clone()), Declared::Auto);
        assert_eq!(std::str::from_utf8(&d.data).unwrap(), text);
        assert_eq!(d.describe(), "utf-16le (detected)");
        let d = decode(Bytes::from(be), Declared::Auto);
        assert_eq!(std::str::from_utf8(&d.data).unwrap(), text);
        let mut bom = vec![0xFF, 0xFE];
        bom.extend_from_slice(&le);
        // A BOM wins over a declared encoding.
        let d = decode(Bytes::from(bom), Declared::parse("windows-1252").unwrap());
        assert_eq!(std::str::from_utf8(&d.data).unwrap(), text);
        assert_eq!(d.describe(), "utf-16le (byte-order mark)");
    }

    #[test]
    fn malformed_sequences_are_marked_not_replaced() {
        // An unpaired surrogate (0xD800) in line 2 of UTF-16LE text.
        let mut le: Vec<u8> = "a\nb"
            .encode_utf16()
            .flat_map(|u| u.to_le_bytes())
            .collect();
        le.extend_from_slice(&[0x00, 0xD8]);
        le.extend("c\nd".encode_utf16().flat_map(|u| u.to_le_bytes()));
        let d = decode(Bytes::from(le), Declared::parse("utf-16le").unwrap());
        assert_eq!(d.malformed, 1);
        assert_eq!(&d.data[..], b"a\nb\xFFc\nd");
    }
}
