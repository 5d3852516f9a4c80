//! Column values and rows.
//!
//! Values are dynamically typed, as in SQLite: a column holds whatever the engine publishes.
//! Comparisons across types never fail: they follow SQLite's order of storage classes
//! (NULL is handled by three-valued logic before any comparison; then numbers < text < bytes,
//! with booleans counted as the numbers 0 and 1). Integers and floats compare numerically and
//! exactly (7 = 7.0, and 2^63 - 1 < 9223372036854775808.0). A float NaN is equal to itself and
//! greater than every other number, as in PostgreSQL.

use std::cmp::Ordering;
use std::fmt;
use std::hash::{BuildHasher, Hash, Hasher};
use std::ops::Deref;

use crate::sync::DataArc;

/// One column value.
#[derive(Clone, Debug)]
#[cfg_attr(feature = "serde", derive(serde::Serialize, serde::Deserialize))]
pub enum Value {
    /// SQL NULL.
    Null,
    /// A boolean; compares as the number 0 or 1.
    Bool(bool),
    /// A 64-bit signed integer.
    Int(i64),
    /// A 64-bit float.
    Float(f64),
    /// UTF-8 text; compares bytewise.
    Text(DataArc<str>),
    /// Raw bytes; compares bytewise, after all text.
    Bytes(DataArc<[u8]>),
}

/// The storage classes in their cross-type order.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
enum StorageClass {
    Number,
    Text,
    Bytes,
}

impl Value {
    /// Creates a text value.
    pub fn text(text: &str) -> Self {
        Value::Text(DataArc::from(text))
    }

    /// Creates a bytes value.
    pub fn bytes(bytes: &[u8]) -> Self {
        Value::Bytes(DataArc::from(bytes))
    }

    /// The bytes the value counts for wherever livecore sizes data (topic retention, a
    /// message's size): text and bytes their length, any other value 8.
    pub fn size_bytes(&self) -> usize {
        match self {
            Value::Text(text) => text.len(),
            Value::Bytes(bytes) => bytes.len(),
            _ => 8,
        }
    }

    /// True for SQL NULL.
    pub fn is_null(&self) -> bool {
        matches!(self, Value::Null)
    }

    /// The name of the value's type, for messages.
    pub fn type_name(&self) -> &'static str {
        match self {
            Value::Null => "null",
            Value::Bool(_) => "bool",
            Value::Int(_) => "int",
            Value::Float(_) => "float",
            Value::Text(_) => "text",
            Value::Bytes(_) => "bytes",
        }
    }

    fn storage_class(&self) -> Option<StorageClass> {
        match self {
            Value::Null => None,
            Value::Bool(_) | Value::Int(_) | Value::Float(_) => Some(StorageClass::Number),
            Value::Text(_) => Some(StorageClass::Text),
            Value::Bytes(_) => Some(StorageClass::Bytes),
        }
    }

    /// SQL comparison: `None` when either side is NULL (the comparison is UNKNOWN),
    /// otherwise the total order described in the module documentation.
    pub fn sql_cmp(&self, other: &Value) -> Option<Ordering> {
        let (left_class, right_class) = (self.storage_class()?, other.storage_class()?);
        if left_class != right_class {
            return Some(left_class.cmp(&right_class));
        }
        Some(match (self, other) {
            (Value::Text(a), Value::Text(b)) => a.as_bytes().cmp(b.as_bytes()),
            (Value::Bytes(a), Value::Bytes(b)) => a.cmp(b),
            _ => compare_numbers(self.as_number(), other.as_number()),
        })
    }

    /// SQL equality: `None` when either side is NULL.
    pub fn sql_eq(&self, other: &Value) -> Option<bool> {
        self.sql_cmp(other)
            .map(|ordering| ordering == Ordering::Equal)
    }

    fn as_number(&self) -> Number {
        match self {
            Value::Bool(b) => Number::Int(i64::from(*b)),
            Value::Int(i) => Number::Int(*i),
            Value::Float(f) => Number::Float(*f),
            _ => Number::Int(0),
        }
    }

    /// A 64-bit key for hash routing. Values that are SQL-equal get the same key (7, 7.0 and
    /// TRUE-as-1 meet), so a subscription pinned to a constant is found from a row's value.
    /// NULL never equals anything and gets no key.
    pub(crate) fn route_key(&self, hasher: &impl BuildHasher) -> Option<u64> {
        let mut state = hasher.build_hasher();
        match self {
            Value::Null => return None,
            Value::Bool(b) => hash_int(&mut state, i64::from(*b)),
            Value::Int(i) => hash_int(&mut state, *i),
            Value::Float(f) => match exact_int(*f) {
                Some(i) => hash_int(&mut state, i),
                None if f.is_nan() => (1u8, u64::MAX).hash(&mut state),
                None => (1u8, f.to_bits()).hash(&mut state),
            },
            Value::Text(text) => (2u8, text.as_bytes()).hash(&mut state),
            Value::Bytes(bytes) => (3u8, &bytes[..]).hash(&mut state),
        }
        Some(state.finish())
    }
}

fn hash_int(state: &mut impl Hasher, value: i64) {
    (0u8, value).hash(state);
}

/// The integer a float equals exactly, if any (-0.0 counts as 0).
pub(crate) fn exact_int(value: f64) -> Option<i64> {
    // 2^63 as a float: every float in [-2^63, 2^63) with no fraction is an exact i64.
    const TWO_POW_63: f64 = 9_223_372_036_854_775_808.0;
    if value.fract() == 0.0 && (-TWO_POW_63..TWO_POW_63).contains(&value) {
        Some(value as i64)
    } else {
        None
    }
}

#[derive(Clone, Copy)]
enum Number {
    Int(i64),
    Float(f64),
}

fn compare_numbers(left: Number, right: Number) -> Ordering {
    match (left, right) {
        (Number::Int(a), Number::Int(b)) => a.cmp(&b),
        (Number::Float(a), Number::Float(b)) => compare_floats(a, b),
        (Number::Int(a), Number::Float(b)) => compare_int_float(a, b),
        (Number::Float(a), Number::Int(b)) => compare_int_float(b, a).reverse(),
    }
}

/// Floats in a total order: NaN equals NaN and is above every other number.
fn compare_floats(a: f64, b: f64) -> Ordering {
    match (a.is_nan(), b.is_nan()) {
        (true, true) => Ordering::Equal,
        (true, false) => Ordering::Greater,
        (false, true) => Ordering::Less,
        (false, false) => a.partial_cmp(&b).unwrap_or(Ordering::Equal),
    }
}

/// Exact comparison of an integer with a float, without rounding the integer.
fn compare_int_float(int: i64, float: f64) -> Ordering {
    if float.is_nan() {
        return Ordering::Less;
    }
    const TWO_POW_63: f64 = 9_223_372_036_854_775_808.0;
    if float >= TWO_POW_63 {
        return Ordering::Less;
    }
    if float < -TWO_POW_63 {
        return Ordering::Greater;
    }
    // Now float is within i64's range: compare integer parts, then the fraction.
    let whole = float.trunc();
    let whole_int = whole as i64;
    match int.cmp(&whole_int) {
        Ordering::Equal => {
            let fraction = float - whole;
            if fraction > 0.0 {
                Ordering::Less
            } else if fraction < 0.0 {
                Ordering::Greater
            } else {
                Ordering::Equal
            }
        }
        other => other,
    }
}

impl PartialEq for Value {
    /// Structural equality (NULL equals NULL here); use [`Value::sql_eq`] for SQL's.
    fn eq(&self, other: &Self) -> bool {
        match (self, other) {
            (Value::Null, Value::Null) => true,
            (Value::Bool(a), Value::Bool(b)) => a == b,
            (Value::Int(a), Value::Int(b)) => a == b,
            (Value::Float(a), Value::Float(b)) => a.to_bits() == b.to_bits(),
            (Value::Text(a), Value::Text(b)) => a == b,
            (Value::Bytes(a), Value::Bytes(b)) => a == b,
            _ => false,
        }
    }
}

impl From<i64> for Value {
    fn from(value: i64) -> Self {
        Value::Int(value)
    }
}

impl From<i32> for Value {
    fn from(value: i32) -> Self {
        Value::Int(i64::from(value))
    }
}

impl From<f64> for Value {
    fn from(value: f64) -> Self {
        Value::Float(value)
    }
}

impl From<bool> for Value {
    fn from(value: bool) -> Self {
        Value::Bool(value)
    }
}

impl From<&str> for Value {
    fn from(value: &str) -> Self {
        Value::text(value)
    }
}

impl From<String> for Value {
    fn from(value: String) -> Self {
        Value::Text(DataArc::from(value))
    }
}

impl From<Vec<u8>> for Value {
    fn from(value: Vec<u8>) -> Self {
        Value::Bytes(DataArc::from(value))
    }
}

impl<T: Into<Value>> From<Option<T>> for Value {
    fn from(value: Option<T>) -> Self {
        value.map_or(Value::Null, Into::into)
    }
}

impl fmt::Display for Value {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Value::Null => f.write_str("NULL"),
            Value::Bool(b) => write!(f, "{}", if *b { "TRUE" } else { "FALSE" }),
            Value::Int(i) => write!(f, "{i}"),
            // Infinities as SQLite reads them back (a literal beyond the float range).
            Value::Float(x) if x.is_infinite() => {
                f.write_str(if *x > 0.0 { "1e999" } else { "-1e999" })
            }
            Value::Float(x) => write!(f, "{x:?}"),
            Value::Text(text) => write!(f, "'{}'", text.replace('\'', "''")),
            Value::Bytes(bytes) => {
                f.write_str("X'")?;
                for byte in bytes.iter() {
                    write!(f, "{byte:02X}")?;
                }
                f.write_str("'")
            }
        }
    }
}

/// One row: the values of a table's columns, in the schema's column order.
#[derive(Clone, Debug, PartialEq, Default)]
#[cfg_attr(feature = "serde", derive(serde::Serialize, serde::Deserialize))]
pub struct Row(Vec<Value>);

impl Row {
    /// Creates a row from its values in column order.
    pub fn new(values: Vec<Value>) -> Self {
        Self(values)
    }

    /// The value at a column position, or NULL past the end.
    pub fn value(&self, position: usize) -> &Value {
        const NULL: Value = Value::Null;
        self.0.get(position).unwrap_or(&NULL)
    }

    /// The row's values.
    pub fn values(&self) -> &[Value] {
        &self.0
    }

    /// Takes the values out.
    pub fn into_values(self) -> Vec<Value> {
        self.0
    }
}

impl Deref for Row {
    type Target = [Value];
    fn deref(&self) -> &[Value] {
        &self.0
    }
}

impl From<Vec<Value>> for Row {
    fn from(values: Vec<Value>) -> Self {
        Self(values)
    }
}

impl FromIterator<Value> for Row {
    fn from_iter<I: IntoIterator<Item = Value>>(iter: I) -> Self {
        Self(iter.into_iter().collect())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key(value: &Value) -> Option<u64> {
        value.route_key(&ahash::RandomState::with_seeds(1, 2, 3, 4))
    }

    #[test]
    fn numbers_compare_exactly_across_int_and_float() {
        assert_eq!(
            Value::Int(7).sql_cmp(&Value::Float(7.0)),
            Some(Ordering::Equal)
        );
        assert_eq!(
            Value::Int(7).sql_cmp(&Value::Float(7.5)),
            Some(Ordering::Less)
        );
        assert_eq!(
            Value::Int(-7).sql_cmp(&Value::Float(-7.5)),
            Some(Ordering::Greater)
        );
        assert_eq!(
            Value::Int(i64::MAX).sql_cmp(&Value::Float(9_223_372_036_854_775_808.0)),
            Some(Ordering::Less)
        );
        assert_eq!(
            Value::Int(9_007_199_254_740_993).sql_cmp(&Value::Float(9_007_199_254_740_992.0)),
            Some(Ordering::Greater)
        );
        assert_eq!(
            Value::Bool(true).sql_cmp(&Value::Int(1)),
            Some(Ordering::Equal)
        );
    }

    #[test]
    fn storage_classes_order_numbers_text_bytes() {
        assert_eq!(
            Value::Int(1_000).sql_cmp(&Value::text("1")),
            Some(Ordering::Less)
        );
        assert_eq!(
            Value::text("zzz").sql_cmp(&Value::bytes(b"a")),
            Some(Ordering::Less)
        );
        assert_eq!(
            Value::text("B").sql_cmp(&Value::text("a")),
            Some(Ordering::Less)
        );
        assert_eq!(Value::Null.sql_cmp(&Value::Null), None);
        assert_eq!(Value::Int(1).sql_eq(&Value::Null), None);
    }

    #[test]
    fn nan_is_above_every_number_and_equal_to_itself() {
        let nan = Value::Float(f64::NAN);
        assert_eq!(
            nan.sql_cmp(&Value::Float(f64::INFINITY)),
            Some(Ordering::Greater)
        );
        assert_eq!(nan.sql_cmp(&Value::Float(f64::NAN)), Some(Ordering::Equal));
        assert_eq!(Value::Int(i64::MAX).sql_cmp(&nan), Some(Ordering::Less));
    }

    #[test]
    fn route_keys_meet_for_equal_numbers() {
        assert_eq!(key(&Value::Int(7)), key(&Value::Float(7.0)));
        assert_eq!(key(&Value::Int(0)), key(&Value::Float(-0.0)));
        assert_eq!(key(&Value::Int(1)), key(&Value::Bool(true)));
        assert_ne!(key(&Value::Int(7)), key(&Value::Float(7.5)));
        assert_ne!(key(&Value::Int(7)), key(&Value::text("7")));
        assert_eq!(key(&Value::Null), None);
    }
}
