//! PostgreSQL types to livecore values.
//!
//! Values arrive as PostgreSQL's own text output (pgoutput's text format, and the snapshot
//! read with the simple query protocol), in sessions that pin the settings the text
//! depends on (see [`SESSION_SETTINGS`]). Each column's type decides how that text becomes
//! a [`Value`]:
//!
//! | PostgreSQL | livecore value | notes |
//! | --- | --- | --- |
//! | `smallint`, `integer`, `bigint`, `oid` | `Int` | exact |
//! | `real` | `Float` | the `real` widened exactly to 64 bits (`1.1::real` is 1.100000023841858) |
//! | `double precision` | `Float` | exact; `NaN`, `Infinity`, `-Infinity` included |
//! | `numeric` | `Text` | PostgreSQL's exact decimal text (`12.50`, `NaN`, `Infinity`); never through a float; in filters it is text, not a number (below) |
//! | `boolean` | `Bool` | |
//! | `text`, `varchar`, `char(n)`, `name`, `"char"`, `citext` | `Text` | `char(n)` keeps its padding; `citext` its case; `"char"` as PostgreSQL prints it (a byte above 127 in octal, `\303`) |
//! | `bytea` | `Bytes` | |
//! | `uuid` | `Text` | lower-case canonical form |
//! | `json`, `jsonb` | `Text` | PostgreSQL's text output (`jsonb` normalised by PostgreSQL) |
//! | `date`, `time`, `timetz`, `timestamp`, `timestamptz`, `interval` | `Text` | ISO output, `timestamptz` in UTC (`2024-05-01 12:00:00.25+00`), `timetz` with its own offset; text order is time order for years 1000-9999 |
//! | `inet`, `cidr`, `macaddr` | `Text` | PostgreSQL's output (`10.1.0.0/16`, `08:00:2b:01:02:03`) |
//! | enums | `Text` | the label |
//! | domains | as their base type | |
//! | NULL of any type | `Null` | |
//!
//! Anything else (arrays, ranges, composites, `money`, bit strings, geometric types, `xml`,
//! text search types, ...) is refused with [`PgError::UnsupportedType`] when the table is
//! registered or its relation message arrives, unless
//! [`SourceConfig::unsupported_as_text`](crate::SourceConfig::unsupported_as_text) is set,
//! in which case such columns carry PostgreSQL's text output as `Text`. No value is ever
//! guessed: text that does not read as its type is a [`PgError::BadValue`].
//!
//! **Filters on `numeric` columns do not compare numbers.** livecore orders values of
//! different kinds by kind, and every text is greater than every number: against a number
//! literal, `price > 10` holds for every non-NULL row and `price = 10` or `price < 10` for
//! none. Compare with a string literal in PostgreSQL's canonical text (`price = '12.50'`
//! in a `numeric(10,2)` column; `<` and `>` then compare bytes, not numbers), or keep the
//! value in a `bigint` / `double precision` column for numeric comparisons.

use livecore::Value;

use crate::error::PgError;

/// Session settings pinned on every connection the source opens, so PostgreSQL's text
/// output is the form the decoder reads.
pub const SESSION_SETTINGS: &str =
    "-c DateStyle=ISO,MDY -c IntervalStyle=postgres -c TimeZone=UTC \
     -c extra_float_digits=1 -c bytea_output=hex -c client_encoding=UTF8";

/// How a column's text output becomes a value.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Kind {
    /// `t` / `f`.
    Bool,
    /// A 64-bit integer.
    Int,
    /// A `real`: read at 32 bits, widened exactly.
    Float4,
    /// A `double precision`.
    Float8,
    /// `\x` hex bytes.
    Bytes,
    /// The text as it is.
    Text,
}

/// The mapping of built-in types by OID, with their names.
pub fn builtin(oid: u32) -> Option<(Kind, &'static str)> {
    Some(match oid {
        16 => (Kind::Bool, "boolean"),
        17 => (Kind::Bytes, "bytea"),
        18 => (Kind::Text, "\"char\""),
        19 => (Kind::Text, "name"),
        20 => (Kind::Int, "bigint"),
        21 => (Kind::Int, "smallint"),
        23 => (Kind::Int, "integer"),
        25 => (Kind::Text, "text"),
        26 => (Kind::Int, "oid"),
        114 => (Kind::Text, "json"),
        650 => (Kind::Text, "cidr"),
        700 => (Kind::Float4, "real"),
        701 => (Kind::Float8, "double precision"),
        829 => (Kind::Text, "macaddr"),
        869 => (Kind::Text, "inet"),
        1042 => (Kind::Text, "character"),
        1043 => (Kind::Text, "character varying"),
        1082 => (Kind::Text, "date"),
        1083 => (Kind::Text, "time"),
        1114 => (Kind::Text, "timestamp"),
        1184 => (Kind::Text, "timestamptz"),
        1186 => (Kind::Text, "interval"),
        1266 => (Kind::Text, "timetz"),
        1700 => (Kind::Text, "numeric"),
        2950 => (Kind::Text, "uuid"),
        3802 => (Kind::Text, "jsonb"),
        _ => return None,
    })
}

/// Reads one column's text output as a value of `kind`. `Err` holds the reason.
pub fn decode(kind: Kind, text: &str) -> Result<Value, String> {
    match kind {
        Kind::Text => Ok(Value::text(text)),
        Kind::Bool => match text {
            "t" => Ok(Value::Bool(true)),
            "f" => Ok(Value::Bool(false)),
            other => Err(format!("'{other}' is not a boolean")),
        },
        Kind::Int => text
            .parse::<i64>()
            .map(Value::Int)
            .map_err(|_| format!("'{text}' is not a 64-bit integer")),
        Kind::Float4 => parse_float(text)
            .map(|wide| match special(text) {
                Some(special) => special,
                // PostgreSQL prints the shortest text that reads back as the same `real`:
                // read it at 32 bits, then widen exactly.
                None => f64::from(text.parse::<f32>().unwrap_or(wide as f32)),
            })
            .map(Value::Float)
            .ok_or_else(|| format!("'{text}' is not a real")),
        Kind::Float8 => parse_float(text)
            .map(Value::Float)
            .ok_or_else(|| format!("'{text}' is not a double precision")),
        Kind::Bytes => decode_hex(text).map(|bytes| Value::bytes(&bytes)),
    }
}

fn special(text: &str) -> Option<f64> {
    match text {
        "NaN" => Some(f64::NAN),
        "Infinity" => Some(f64::INFINITY),
        "-Infinity" => Some(f64::NEG_INFINITY),
        _ => None,
    }
}

fn parse_float(text: &str) -> Option<f64> {
    if let Some(value) = special(text) {
        return Some(value);
    }
    // Rust would also accept "inf" and "nan", which PostgreSQL never prints: refuse them.
    if text
        .bytes()
        .any(|b| b.is_ascii_alphabetic() && b != b'e' && b != b'E')
    {
        return None;
    }
    text.parse::<f64>().ok()
}

/// `bytea_output = hex`: `\x` then two hex digits a byte.
fn decode_hex(text: &str) -> Result<Vec<u8>, String> {
    let digits = text
        .strip_prefix("\\x")
        .ok_or_else(|| "bytea text does not start with \\x".to_string())?;
    if digits.len() % 2 != 0 {
        return Err("bytea hex has an odd number of digits".into());
    }
    let nibble = |b: u8| -> Result<u8, String> {
        match b {
            b'0'..=b'9' => Ok(b - b'0'),
            b'a'..=b'f' => Ok(b - b'a' + 10),
            b'A'..=b'F' => Ok(b - b'A' + 10),
            _ => Err(format!("'{}' is not a hex digit", b as char)),
        }
    };
    digits
        .as_bytes()
        .chunks(2)
        .map(|pair| Ok(nibble(pair[0])? << 4 | nibble(pair[1])?))
        .collect()
}

/// The value's text as PostgreSQL would print it for a column of `kind` (used by tests and
/// examples to compare against PostgreSQL's own output).
pub fn to_pg_text(kind: Kind, value: &Value) -> Option<String> {
    Some(match (kind, value) {
        (_, Value::Null) => return None,
        (Kind::Bool, Value::Bool(b)) => if *b { "t" } else { "f" }.to_string(),
        (Kind::Int, Value::Int(i)) => i.to_string(),
        (Kind::Float4 | Kind::Float8, Value::Float(f)) if f.is_nan() => "NaN".into(),
        (Kind::Float4 | Kind::Float8, Value::Float(f)) if f.is_infinite() => {
            if *f > 0.0 { "Infinity" } else { "-Infinity" }.into()
        }
        // Display only: floats are compared by value (`same_as_pg_text`), since Rust and
        // PostgreSQL spell exponents differently.
        (Kind::Float4 | Kind::Float8, Value::Float(f)) => format!("{f:?}"),
        (Kind::Bytes, Value::Bytes(b)) => {
            let mut out = String::from("\\x");
            for byte in b.iter() {
                out.push_str(&format!("{byte:02x}"));
            }
            out
        }
        (Kind::Text, Value::Text(t)) => t.to_string(),
        (_, other) => format!("<{} in a {kind:?} column>", other.type_name()),
    })
}

/// Values that should be equal after a round trip through text: floats compare by their
/// bits' meaning (NaN equals NaN), everything else by its PostgreSQL text.
pub fn same_as_pg_text(kind: Kind, value: &Value, pg_text: Option<&str>) -> bool {
    match (pg_text, value) {
        (None, Value::Null) => true,
        (None, _) | (Some(_), Value::Null) => false,
        (Some(text), Value::Float(f)) => match decode(kind, text) {
            Ok(Value::Float(g)) => (f.is_nan() && g.is_nan()) || f.to_bits() == g.to_bits(),
            _ => false,
        },
        (Some(text), _) => to_pg_text(kind, value).as_deref() == Some(text),
    }
}

/// An unsupported type, as the typed error for `table.column`.
pub(crate) fn unsupported(table: &str, column: &str, type_name: &str) -> PgError {
    PgError::UnsupportedType {
        table: table.to_string(),
        column: column.to_string(),
        type_name: type_name.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn texts_read_as_their_types() {
        assert!(matches!(decode(Kind::Bool, "t"), Ok(Value::Bool(true))));
        assert!(decode(Kind::Bool, "true").is_err());
        assert!(matches!(
            decode(Kind::Int, "-9223372036854775808"),
            Ok(Value::Int(i64::MIN))
        ));
        assert!(decode(Kind::Int, "1.5").is_err());
        assert!(matches!(decode(Kind::Float8, "1e+300"), Ok(Value::Float(f)) if f == 1e300));
        assert!(matches!(decode(Kind::Float8, "NaN"), Ok(Value::Float(f)) if f.is_nan()));
        assert!(decode(Kind::Float8, "inf").is_err());
        assert!(
            matches!(decode(Kind::Float4, "1.1"), Ok(Value::Float(f)) if f == f64::from(1.1f32))
        );
        assert!(matches!(
            decode(Kind::Bytes, "\\x00ff10"),
            Ok(Value::Bytes(b)) if *b == [0, 255, 16]
        ));
        assert!(decode(Kind::Bytes, "\\x0").is_err());
        assert!(decode(Kind::Bytes, "00").is_err());
        assert!(matches!(decode(Kind::Text, "12.50"), Ok(Value::Text(t)) if &*t == "12.50"));
    }

    #[test]
    fn values_print_back_as_postgres_does() {
        for (kind, text) in [
            (Kind::Bool, "f"),
            (Kind::Int, "-42"),
            (Kind::Float8, "1e+300"),
            (Kind::Float8, "0.1"),
            (Kind::Float4, "1.1"),
            (Kind::Float8, "-Infinity"),
            (Kind::Bytes, "\\xdeadbeef"),
            (Kind::Text, "héllo"),
        ] {
            let value = decode(kind, text).unwrap();
            assert!(same_as_pg_text(kind, &value, Some(text)), "{kind:?} {text}");
        }
        assert!(!same_as_pg_text(Kind::Int, &Value::Int(1), Some("2")));
        assert!(same_as_pg_text(Kind::Int, &Value::Null, None));
    }
}
