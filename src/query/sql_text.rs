//! How a value reads as text or as a truth value, the way SQL engines with dynamic types
//! (SQLite) read it. Used where SQL converts implicitly: the operands of LIKE, and a bare
//! value used as a condition (`WHERE col`, `NOT col`).
//!
//! - Integers read as their decimal digits.
//! - Floats read as SQLite renders them (`%!.17g`: up to 17 significant digits, shortened
//!   when a shorter form reads back to the same float, always with a fraction or an exponent:
//!   `7.0`, `0.1`, `1.0e+20`, `1.5e-07`, `Inf`).
//! - Booleans read as `1` and `0`.
//! - Bytes read as UTF-8; a malformed sequence reads as SQLite's reader reads it: a lead byte
//!   takes every continuation byte after it as one character (U+FFFD when the result is an
//!   overlong ASCII form, a surrogate, or beyond U+10FFFF), and a stray continuation byte is
//!   the character of its value.
//! - As a condition, text and bytes are true when the number they start with (after ASCII
//!   white space) is non-zero: `'12abc'` is true, `'abc'` and `'0.0e5'` are false.
//!
//! Nothing here allocates for text operands; numbers render into a small stack buffer.

use std::borrow::Cow;
use std::fmt::{self, Write as _};

use crate::query::sqlite_decimal;
use crate::types::value::Value;

/// A short string built on the stack.
pub(crate) struct StackText {
    bytes: [u8; 64],
    len: usize,
}

impl StackText {
    fn new() -> Self {
        Self {
            bytes: [0; 64],
            len: 0,
        }
    }

    pub(crate) fn as_str(&self) -> &str {
        // Only whole `&str`s are ever appended, so the bytes are valid UTF-8.
        std::str::from_utf8(&self.bytes[..self.len]).expect("appended as str")
    }

    fn push(&mut self, byte: u8) {
        self.bytes[self.len] = byte;
        self.len += 1;
    }
}

impl fmt::Write for StackText {
    fn write_str(&mut self, text: &str) -> fmt::Result {
        let end = self.len + text.len();
        if end > self.bytes.len() {
            return Err(fmt::Error);
        }
        self.bytes[self.len..end].copy_from_slice(text.as_bytes());
        self.len = end;
        Ok(())
    }
}

/// An integer as text.
pub(crate) fn int_text(value: i64) -> StackText {
    let mut text = StackText::new();
    write!(text, "{value}").expect("an i64 fits in 64 bytes");
    text
}

/// A float as SQLite renders it with `%!.17g` (see the module documentation).
pub(crate) fn float_text(value: f64) -> StackText {
    let mut text = StackText::new();
    if value.is_nan() {
        text.write_str("NaN").expect("fits");
        return text;
    }
    if value == 0.0 {
        // Both zeros render without a sign.
        text.write_str("0.0").expect("fits");
        return text;
    }
    if value.is_infinite() {
        text.write_str(if value > 0.0 { "Inf" } else { "-Inf" })
            .expect("fits");
        return text;
    }
    let magnitude = value.abs();
    let (digits, point) = significant_digits(magnitude);
    if value < 0.0 {
        text.push(b'-');
    }
    let exponent = point - 1;
    let digits = &digits[..];
    if !(-4..=16).contains(&exponent) {
        text.push(digits[0]);
        text.push(b'.');
        if digits.len() > 1 {
            digits[1..].iter().for_each(|&digit| text.push(digit));
        } else {
            text.push(b'0');
        }
        write!(
            text,
            "e{}{:02}",
            if exponent < 0 { '-' } else { '+' },
            exponent.unsigned_abs()
        )
        .expect("fits");
    } else if point <= 0 {
        text.write_str("0.").expect("fits");
        (0..-point).for_each(|_| text.push(b'0'));
        digits.iter().for_each(|&digit| text.push(digit));
    } else {
        let point = point as usize;
        for index in 0..point {
            text.push(digits.get(index).copied().unwrap_or(b'0'));
        }
        text.push(b'.');
        if digits.len() > point {
            digits[point..].iter().for_each(|&digit| text.push(digit));
        } else {
            text.push(b'0');
        }
    }
    text
}

/// The significant digits SQLite's `%!.17g` keeps for a positive finite float, without
/// trailing zeros, and the position of the decimal point relative to the first digit (the
/// value is `0.DIGITS x 10^point`).
///
/// SQLite takes the float's 18 or 19 leading digits as it computes them (not always the
/// exact ones: see [`sqlite_decimal`]), then rounds them to 17 (half up) — unless the
/// 17-digit form ends in a run of 9s or 0s that a shorter form, reading back to the same
/// float, avoids: then it keeps the shorter form.
fn significant_digits(magnitude: f64) -> (SmallDigits, i32) {
    let (leading, exponent) = sqlite_decimal::leading_digits(magnitude);
    let mut written = StackText::new();
    write!(written, "{leading}").expect("fits");
    // One spare slot in front for a carry out of the first digit.
    let mut z = [b'0'; 20];
    let n = written.len;
    debug_assert!((18..=19).contains(&n), "18 or 19 leading digits, not {n}");
    z[1..=n].copy_from_slice(&written.bytes[..n]);
    let mut first = 1;
    let mut point = n as i32 + exponent;
    let mut round_at = 17;
    if z[first + 15] == b'9' && z[first + 14] == b'9' {
        let mut keep = 14;
        while keep > 0 && z[first + keep - 1] == b'9' {
            keep -= 1;
        }
        let shorter = if keep == 0 {
            1
        } else {
            digits_value(&z[first..first + keep]) + 1
        };
        if reads_back(shorter, point - keep as i32, magnitude) {
            round_at = keep + 1;
        }
    } else if point >= n as i32 || z[first + 13..first + 16] == *b"000" {
        let mut keep = 13;
        while z[first + keep - 1] == b'0' {
            keep -= 1;
        }
        let shorter = digits_value(&z[first..first + keep]);
        if reads_back(shorter, point - keep as i32, magnitude) {
            round_at = keep + 1;
        }
    }
    let mut len = round_at;
    if z[first + round_at] >= b'5' {
        let mut index = round_at - 1;
        loop {
            z[first + index] += 1;
            if z[first + index] <= b'9' {
                break;
            }
            z[first + index] = b'0';
            if index == 0 {
                first -= 1;
                z[first] = b'1';
                len += 1;
                point += 1;
                break;
            }
            index -= 1;
        }
    }
    while len > 1 && z[first + len - 1] == b'0' {
        len -= 1;
    }
    let mut digits = SmallDigits::default();
    z[first..first + len]
        .iter()
        .for_each(|&byte| digits.push(byte));
    (digits, point)
}

/// At most 19 decimal digits.
#[derive(Default)]
struct SmallDigits {
    bytes: [u8; 19],
    len: usize,
}

impl SmallDigits {
    fn push(&mut self, byte: u8) {
        self.bytes[self.len] = byte;
        self.len += 1;
    }
}

impl std::ops::Deref for SmallDigits {
    type Target = [u8];
    fn deref(&self) -> &[u8] {
        &self.bytes[..self.len]
    }
}

fn digits_value(digits: &[u8]) -> u64 {
    digits
        .iter()
        .fold(0, |value, digit| value * 10 + u64::from(digit - b'0'))
}

/// True when `mantissa x 10^exponent`, read as the nearest float, is `target`.
fn reads_back(mantissa: u64, exponent: i32, target: f64) -> bool {
    let mut text = StackText::new();
    write!(text, "{mantissa}e{exponent}").expect("fits");
    text.as_str().parse::<f64>() == Ok(target)
}

/// Bytes read as text, SQLite's way (see the module documentation). Borrows well-formed
/// UTF-8; decodes anything else into a new string.
pub(crate) fn bytes_text(bytes: &[u8]) -> Cow<'_, str> {
    if let Ok(text) = std::str::from_utf8(bytes) {
        return Cow::Borrowed(text);
    }
    let mut text = String::with_capacity(bytes.len());
    let mut index = 0;
    while index < bytes.len() {
        let lead = bytes[index];
        index += 1;
        if lead < 0xc0 {
            // ASCII, or a continuation byte with no lead: the character of its value.
            text.push(char::from(lead));
            continue;
        }
        let mut code = u32::from(lead_payload(lead));
        while index < bytes.len() && bytes[index] & 0xc0 == 0x80 {
            code = code
                .wrapping_shl(6)
                .wrapping_add(u32::from(bytes[index] & 0x3f));
            index += 1;
        }
        // Overlong forms of ASCII and surrogates read as U+FFFD, as in SQLite; so does a
        // code beyond U+10FFFF, which SQLite keeps as a number no character equals and no
        // GLOB range holds (a deliberate difference: U+FFFD is in a range reaching it).
        let decoded = if code < 0x80 {
            None
        } else {
            char::from_u32(code)
        };
        text.push(decoded.unwrap_or(char::REPLACEMENT_CHARACTER));
    }
    Cow::Owned(text)
}

/// The payload bits of a UTF-8 lead byte (0xc0 and above), as SQLite's decoder takes them.
fn lead_payload(lead: u8) -> u8 {
    match lead {
        0xc0..=0xdf => lead - 0xc0,
        0xe0..=0xef => lead - 0xe0,
        0xf0..=0xf7 => lead - 0xf0,
        0xf8..=0xfb => lead - 0xf8,
        0xfc..=0xfd => lead - 0xfc,
        _ => 0,
    }
}

/// Calls `visit` with the value read as text (see the module documentation); NULL has no
/// text and gives `None`.
#[inline]
pub(crate) fn with_text<R>(value: &Value, visit: impl FnOnce(&str) -> R) -> Option<R> {
    match value {
        Value::Null => None,
        Value::Text(text) => Some(visit(text)),
        Value::Bool(b) => Some(visit(if *b { "1" } else { "0" })),
        Value::Int(i) => Some(visit(int_text(*i).as_str())),
        Value::Float(f) => Some(visit(float_text(*f).as_str())),
        Value::Bytes(bytes) => Some(visit(&bytes_text(bytes))),
    }
}

/// A value as a condition: numbers are true when non-zero; text and bytes when the number
/// they start with is non-zero. NULL is UNKNOWN.
#[inline]
pub(crate) fn truth(value: &Value) -> Option<bool> {
    match value {
        Value::Null => None,
        Value::Bool(b) => Some(*b),
        Value::Int(i) => Some(*i != 0),
        Value::Float(f) => Some(*f != 0.0),
        Value::Text(text) => Some(leading_number(text.as_bytes()) != 0.0),
        Value::Bytes(bytes) => Some(leading_number(bytes) != 0.0),
    }
}

/// The number a string starts with, after ASCII white space (`[+-]digits[.digits][e[+-]digits]`,
/// where either digit run before the exponent may be empty but not both), or 0. Read in
/// one pass, as SQLite reads it.
fn leading_number(bytes: &[u8]) -> f64 {
    let start = bytes
        .iter()
        .position(|byte| !matches!(byte, b' ' | b'\t' | b'\n' | 0x0b | 0x0c | b'\r'))
        .unwrap_or(bytes.len());
    sqlite_decimal::read_leading_decimal(&bytes[start..]).map_or(0.0, |(value, _)| value)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn float(value: f64) -> String {
        float_text(value).as_str().to_string()
    }

    #[test]
    fn floats_render_as_sqlite_does() {
        for (value, expected) in [
            (0.1, "0.1"),
            (0.1 + 0.2, "0.30000000000000004"),
            (1e20, "1.0e+20"),
            (1.5e-7, "1.5e-07"),
            (9_223_372_036_854_775_808.0, "9.2233720368547758e+18"),
            (7.0, "7.0"),
            (-0.0, "0.0"),
            (f64::INFINITY, "Inf"),
            (f64::NEG_INFINITY, "-Inf"),
            (1.0 / 3.0, "0.33333333333333332"),
            // Where SQLite's approximate digits differ from the exact ones in the last place.
            (1.0 / 9.0, "0.1111111111111111"),
            (72.0 / 7.0, "10.285714285714286"),
            (f64::from_bits(0x40f8_6a00_0000_0001), "100000.00000000001"),
            (123_456_789_012_345_678.0, "1.2345678901234568e+17"),
            (2.5, "2.5"),
            (1e15, "1000000000000000.0"),
            (1e16, "10000000000000000.0"),
            (1e-5, "1.0e-05"),
            (0.0001, "0.0001"),
            (100.0, "100.0"),
            (-49.47, "-49.47"),
            (1e300, "1.0e+300"),
        ] {
            assert_eq!(float(value), expected, "{value:?}");
        }
    }

    #[test]
    fn malformed_bytes_read_as_sqlite_reads_them() {
        assert_eq!(bytes_text(b"abc"), "abc");
        assert_eq!(bytes_text(&[0x80, b'a']), "\u{80}a");
        assert_eq!(bytes_text(&[0xc3, b'a']), "\u{fffd}a");
        assert_eq!(bytes_text(&[0xf0, 0x80, 0x80, 0x80, b'x']), "\u{fffd}x");
        assert_eq!(bytes_text(&[0xff, 0xfe]), "\u{fffd}\u{fffd}");
    }

    #[test]
    fn text_truth_reads_the_leading_number() {
        for (text, expected) in [
            ("  12abc", true),
            (" 0.0e5x", false),
            ("1.e5", true),
            (".5", true),
            (".", false),
            ("-", false),
            ("\u{3000}5", false),
            ("\t7", true),
            ("1e", true),
            ("0x10", false),
            ("+.5e-1x", true),
            ("inf", false),
            ("1e999", true),
            ("1e-999", false),
            ("", false),
        ] {
            assert_eq!(truth(&Value::text(text)), Some(expected), "{text:?}");
        }
        assert_eq!(truth(&Value::bytes(b"12")), Some(true));
        assert_eq!(truth(&Value::Null), None);
    }
}
