//! JSON rendering of values and rows, defined for every value:
//!
//! | value | JSON |
//! |---|---|
//! | NULL | `null` |
//! | bool | `true` / `false` |
//! | integer within ±2^53 | a number: `42` |
//! | integer beyond ±2^53 | a string of its digits: `"9007199254740993"` (JavaScript clients would round a number) |
//! | finite float | a number that reads back exactly: `7.0`, `0.1`, `1e300` |
//! | NaN, ±infinity | the strings `"NaN"`, `"Infinity"`, `"-Infinity"` |
//! | text | a string |
//! | bytes | a string in standard base64 with padding |
//!
//! This is the mapping protobuf's JSON format uses for the same types.

use std::io::Write as _;

use crate::types::value::Value;

/// The largest integer a JSON number carries exactly in every client (2^53).
const MAX_SAFE_INTEGER: i64 = 1 << 53;

/// Appends the JSON form of `value` to `out`.
pub fn write_value(out: &mut Vec<u8>, value: &Value) {
    match value {
        Value::Null => out.extend_from_slice(b"null"),
        Value::Bool(b) => out.extend_from_slice(if *b { b"true" } else { b"false" }),
        Value::Int(i) if (-MAX_SAFE_INTEGER..=MAX_SAFE_INTEGER).contains(i) => {
            let _ = write!(out, "{i}");
        }
        Value::Int(i) => {
            let _ = write!(out, "\"{i}\"");
        }
        Value::Float(f) if f.is_nan() => out.extend_from_slice(b"\"NaN\""),
        Value::Float(f) if f.is_infinite() => out.extend_from_slice(if *f > 0.0 {
            b"\"Infinity\""
        } else {
            b"\"-Infinity\""
        }),
        Value::Float(f) => serde_json::to_writer(&mut *out, f).expect("writing to a Vec"),
        Value::Text(text) => write_string(out, text),
        Value::Bytes(bytes) => {
            out.push(b'"');
            write_base64(out, bytes);
            out.push(b'"');
        }
    }
}

/// Appends `text` as a JSON string, escaped.
///
/// U+2028 and U+2029 are escaped too: JSON allows them raw, but JavaScript before ES2019
/// does not accept them inside string literals.
pub fn write_string(out: &mut Vec<u8>, text: &str) {
    let start = out.len();
    serde_json::to_writer(&mut *out, text).expect("writing to a Vec");
    if text.contains(['\u{2028}', '\u{2029}']) {
        let escaped = String::from_utf8(out.split_off(start))
            .expect("serde_json writes UTF-8")
            .replace('\u{2028}', "\\u2028")
            .replace('\u{2029}', "\\u2029");
        out.extend_from_slice(escaped.as_bytes());
    }
}

/// Appends a JSON object of `(name, value)` pairs.
pub fn write_object<'a>(out: &mut Vec<u8>, fields: impl IntoIterator<Item = (&'a str, &'a Value)>) {
    out.push(b'{');
    for (index, (name, value)) in fields.into_iter().enumerate() {
        if index > 0 {
            out.push(b',');
        }
        write_string(out, name);
        out.push(b':');
        write_value(out, value);
    }
    out.push(b'}');
}

fn write_base64(out: &mut Vec<u8>, bytes: &[u8]) {
    const ALPHABET: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    for chunk in bytes.chunks(3) {
        let b = [
            chunk[0],
            chunk.get(1).copied().unwrap_or(0),
            chunk.get(2).copied().unwrap_or(0),
        ];
        let n = (u32::from(b[0]) << 16) | (u32::from(b[1]) << 8) | u32::from(b[2]);
        for (index, shift) in [18, 12, 6, 0].into_iter().enumerate() {
            if index <= chunk.len() {
                out.push(ALPHABET[((n >> shift) & 63) as usize]);
            } else {
                out.push(b'=');
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn json(value: Value) -> String {
        let mut out = Vec::new();
        write_value(&mut out, &value);
        String::from_utf8(out).unwrap()
    }

    #[test]
    fn every_value_has_a_defined_form() {
        assert_eq!(json(Value::Null), "null");
        assert_eq!(json(Value::Bool(true)), "true");
        assert_eq!(json(Value::Int(1 << 53)), "9007199254740992");
        assert_eq!(json(Value::Int((1 << 53) + 1)), "\"9007199254740993\"");
        assert_eq!(json(Value::Int(i64::MIN)), "\"-9223372036854775808\"");
        assert_eq!(json(Value::Float(7.0)), "7.0");
        assert_eq!(json(Value::Float(0.1)), "0.1");
        assert_eq!(json(Value::Float(f64::NAN)), "\"NaN\"");
        assert_eq!(json(Value::Float(f64::NEG_INFINITY)), "\"-Infinity\"");
        assert_eq!(
            json(Value::text("a\"b\\\n\u{1}é")),
            "\"a\\\"b\\\\\\n\\u0001é\""
        );
        assert_eq!(json(Value::bytes(b"")), "\"\"");
        assert_eq!(json(Value::bytes(b"f")), "\"Zg==\"");
        assert_eq!(json(Value::bytes(b"fo")), "\"Zm8=\"");
        assert_eq!(json(Value::bytes(b"foobar")), "\"Zm9vYmFy\"");
    }

    #[test]
    fn line_and_paragraph_separators_are_escaped_for_javascript() {
        assert_eq!(
            json(Value::text("a\u{2028}b\u{2029}")),
            "\"a\\u2028b\\u2029\""
        );
        let parsed: serde_json::Value =
            serde_json::from_str(&json(Value::text("a\u{2028}b"))).unwrap();
        assert_eq!(parsed, "a\u{2028}b");
    }

    #[test]
    fn output_is_valid_json() {
        let mut out = Vec::new();
        let values = [
            Value::text("x\u{7f}\u{2028}"),
            Value::Float(-1e300),
            Value::Int(-5),
        ];
        write_object(
            &mut out,
            [("a", &values[0]), ("b", &values[1]), ("c", &values[2])],
        );
        let parsed: serde_json::Value = serde_json::from_slice(&out).unwrap();
        assert_eq!(parsed["a"], "x\u{7f}\u{2028}");
        assert_eq!(parsed["c"], -5);
    }
}
