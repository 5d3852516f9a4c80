//! The SQL filter generator shared by the differential tests (tests/sql_differential.rs,
//! tests/sql_routing_differential.rs): random values of every type, random filters over the
//! six columns `c0`..`c5` of table `app.t` rendered to SQL text, and the SQLite side of the
//! comparison. Included with `#[path = "common/sql_gen.rs"] mod sql_gen;`.
#![allow(dead_code)]

use std::collections::BTreeMap;
use std::fmt::Write as _;

use livecore::{parse_subscription_sql, Filter};
use livecore::{FilterLimits, TableId, TableSchema, TableScope, Value};
use rusqlite::types::Value as SqliteValue;
pub const COLUMNS: [&str; 6] = ["c0", "c1", "c2", "c3", "c4", "c5"];

pub use crate::rng::Rng;

/// Floats with the text both engines read back exactly. (Infinity is written 1e999.)
pub const FLOATS: [(f64, &str); 20] = [
    (1000.0, "1000.0"),
    (0.01, "0.01"),
    (5.0, "5.0"),
    (0.5, "0.5"),
    (-2.5, "-2.5"),
    (7.0, "7.0"),
    (1.0, "1.0"),
    (0.0, "0.0"),
    (-0.0, "-0.0"),
    (0.1, "0.1"),
    (1e20, "1e20"),
    (1.5e-7, "1.5e-7"),
    (9_223_372_036_854_775_808.0, "9223372036854775808.0"),
    (-9_223_372_036_854_775_808.0, "-9223372036854775808.0"),
    (9_007_199_254_740_992.0, "9007199254740992.0"),
    (f64::INFINITY, "1e999"),
    (f64::NEG_INFINITY, "-1e999"),
    (0.30000000000000004, "0.30000000000000004"),
    (1e-5, "1e-5"),
    (12.0, "12.0"),
];

pub const INTS: [i64; 14] = [
    0,
    1,
    -1,
    2,
    3,
    7,
    8,
    12,
    100,
    -3,
    i64::MAX,
    i64::MIN,
    9_007_199_254_740_993,
    1_000_000,
];

/// Other spellings of some floats that SQLite reads as the same value: exponents of either
/// case, a leading or trailing decimal point, a unary plus, a decimal integer beyond 64 bits,
/// and the negation of the smallest integer.
pub const FLOAT_SPELLINGS: [(f64, &[&str]); 18] = [
    (1000.0, &["1E3", "1e3", "1000.", "+1E+3"]),
    (0.01, &["1e-2", ".01", "1E-2"]),
    (5.0, &["5.", "5E0", "+5."]),
    (0.5, &[".5", "5e-1", "0.5E0"]),
    (-2.5, &["-25e-1", "-2.5E0", "-(+2.5)"]),
    (7.0, &["7.", "7E0", "700e-2"]),
    (1.0, &["1.", "1E0", ".1e1"]),
    (0.0, &["0.", ".0", "0e5"]),
    (-0.0, &["-0.", "-.0", "-0E0"]),
    (0.1, &[".1", "1e-1", "1E-1"]),
    (1e20, &["1E20", "1E+20", "100000000000000000000"]),
    (1.5e-7, &["1.5E-7", ".15e-6"]),
    (
        9_223_372_036_854_775_808.0,
        &["9223372036854775808", "- -9223372036854775808"],
    ),
    (
        9_007_199_254_740_992.0,
        &["9007199254740992.", "9.007199254740992E15"],
    ),
    (f64::INFINITY, &["1E999", "+1e+999"]),
    (f64::NEG_INFINITY, &["-1E999"]),
    (1e-5, &["1E-5", ".00001", "1e-05"]),
    (12.0, &["12.", "1.2E1", "+12.0"]),
];

/// Another spelling of an integer that SQLite reads as the same value: hex with either prefix
/// (the 64-bit two's complement, so -1 is `0xFFFFFFFFFFFFFFFF`), minus on hex (`-0x10`, and
/// `-0xFFFFFFFFFFFFFFFF` for 1), leading zeros, a unary plus, parentheses.
pub fn int_spelling(rng: &mut Rng, int: i64) -> String {
    let bits = int as u64;
    match rng.below(8) {
        0 => format!("0x{bits:x}"),
        1 => format!("0X{bits:X}"),
        2 => format!("0x000{bits:X}"),
        // SQLite refuses minus on the hex spelling of the smallest integer.
        3 if int != i64::MIN => format!("-0x{:X}", int.wrapping_neg() as u64),
        4 if int >= 0 => format!("00{int}"),
        5 => format!("+{int}"),
        6 if int != i64::MIN => format!("-(+0x{:x})", int.wrapping_neg() as u64),
        _ => format!("(0X{bits:x})"),
    }
}

/// Text pieces: letters of both cases, digits and number-like strings, LIKE wildcards and
/// the escape character as data, spaces, and non-ASCII letters.
pub const TEXT_PIECES: [&str; 22] = [
    "a", "A", "b", "B", "ab", "7", "12", "0", "1e3", " ", "%", "_", "\\", "!", "é", "É", "ß", "€",
    "x", "-", ".5", "0.0",
];

/// Bytes pieces, including malformed UTF-8 (but never a NUL byte).
pub const BYTE_PIECES: [&[u8]; 12] = [
    b"a",
    b"A",
    b"7",
    b"12",
    b"%",
    b"_",
    &[0x80],
    &[0xc3],
    &[0xff],
    &[0xe2, 0x82, 0xac],
    &[0xf0, 0x80, 0x80],
    b" ",
];

#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub enum Kind {
    Null,
    Bool,
    Int,
    Float,
    Text,
    Bytes,
}

pub const KINDS: [Kind; 6] = [
    Kind::Null,
    Kind::Bool,
    Kind::Int,
    Kind::Float,
    Kind::Text,
    Kind::Bytes,
];

pub fn kind(value: &Value) -> Kind {
    match value {
        Value::Null => Kind::Null,
        Value::Bool(_) => Kind::Bool,
        Value::Int(_) => Kind::Int,
        Value::Float(_) => Kind::Float,
        Value::Text(_) => Kind::Text,
        Value::Bytes(_) => Kind::Bytes,
    }
}

/// A generated value with its SQL literal.
#[derive(Clone, Debug)]
pub struct Lit {
    pub value: Value,
    pub sql: String,
}

pub fn text_value(rng: &mut Rng) -> String {
    let pieces = rng.below(4);
    (0..pieces).map(|_| rng.pick(&TEXT_PIECES)).collect()
}

pub fn bytes_value(rng: &mut Rng) -> Vec<u8> {
    let pieces = rng.below(4);
    let mut bytes: Vec<u8> = (0..pieces)
        .flat_map(|_| rng.pick(&BYTE_PIECES).iter().copied())
        .collect();
    keep_within_unicode(&mut bytes);
    bytes
}

/// Drops continuation bytes that would make SQLite's reader decode a character beyond
/// U+10FFFF (pieces such as the euro sign followed by stray continuation bytes): that is a
/// deliberate difference (`deliberate_differences`), which the generator must never
/// produce. Done after drawing, so the random stream is the same for every seed.
fn keep_within_unicode(bytes: &mut Vec<u8>) {
    let mut index = 0;
    while index < bytes.len() {
        let lead = bytes[index];
        index += 1;
        if lead < 0xc0 {
            continue;
        }
        let payload = match lead {
            0xc0..=0xdf => lead - 0xc0,
            0xe0..=0xef => lead - 0xe0,
            0xf0..=0xf7 => lead - 0xf0,
            0xf8..=0xfb => lead - 0xf8,
            0xfc..=0xfd => lead - 0xfc,
            _ => 0,
        };
        let mut code = u64::from(payload);
        while index < bytes.len() && bytes[index] & 0xc0 == 0x80 {
            let next = (code << 6) | u64::from(bytes[index] & 0x3f);
            if next > 0x10ffff {
                bytes.remove(index);
                continue;
            }
            code = next;
            index += 1;
        }
    }
}

pub fn literal_of(value: Value, float_sql: Option<&str>) -> Lit {
    let sql = match &value {
        Value::Null => "NULL".to_string(),
        Value::Bool(b) => if *b { "TRUE" } else { "FALSE" }.to_string(),
        Value::Int(i) => i.to_string(),
        Value::Float(_) => float_sql.expect("floats come from the pool").to_string(),
        Value::Text(text) => format!("'{}'", text.replace('\'', "''")),
        Value::Bytes(bytes) => {
            let mut hex = String::from("X'");
            for byte in bytes.iter() {
                write!(hex, "{byte:02X}").unwrap();
            }
            hex.push('\'');
            hex
        }
    };
    Lit { value, sql }
}

/// A random value; NULL one time in four. Numbers are written in one of their other
/// spellings ([`int_spelling`], [`FLOAT_SPELLINGS`]) now and then.
pub fn random_value(rng: &mut Rng) -> Lit {
    if rng.chance(25) {
        return literal_of(Value::Null, None);
    }
    match rng.below(5) {
        0 => literal_of(Value::Bool(rng.chance(50)), None),
        1 => {
            let int = if rng.chance(60) {
                rng.below(14) as i64 - 3
            } else {
                rng.pick(&INTS)
            };
            let mut lit = literal_of(Value::Int(int), None);
            if rng.chance(33) {
                lit.sql = int_spelling(rng, int);
            }
            lit
        }
        2 => {
            let (float, sql) = rng.pick(&FLOATS);
            let mut lit = literal_of(Value::Float(float), Some(sql));
            let others = FLOAT_SPELLINGS
                .iter()
                .find(|(value, _)| value.to_bits() == float.to_bits());
            if let Some((_, others)) = others.filter(|_| rng.chance(50)) {
                lit.sql = rng.pick(others).to_string();
            }
            lit
        }
        3 => literal_of(Value::text(&text_value(rng)), None),
        _ => literal_of(Value::Bytes(bytes_value(rng).into()), None),
    }
}

/// The generator's own filter tree, rendered to SQL text for both engines and walked to
/// record coverage.
#[derive(Clone, Debug)]
pub enum Gen {
    Column(usize),
    Literal(Lit),
    Compare(&'static str, Box<Gen>, Box<Gen>),
    And(Vec<Gen>),
    Or(Vec<Gen>),
    Not(Box<Gen>),
    In(Box<Gen>, Vec<Gen>, bool),
    /// `x IS [NOT] NULL` in one of SQLite's spellings (an index into [`NULL_TESTS`] or
    /// [`NOT_NULL_TESTS`]).
    IsNull(Box<Gen>, bool, usize),
    /// `x IS [NOT] y`, or (the last flag) `x IS [NOT] DISTINCT FROM y`.
    Is(Box<Gen>, Box<Gen>, bool, bool),
    /// `x IS [NOT] TRUE` (the first flag) or `x IS [NOT] FALSE`.
    IsTruth(Box<Gen>, bool, bool),
    Between(Box<Gen>, Box<Gen>, Box<Gen>, bool),
    Like {
        operand: Box<Gen>,
        pattern: Lit,
        escape: Option<char>,
        negated: bool,
    },
    /// `operand [NOT] GLOB pattern`.
    Glob {
        operand: Box<Gen>,
        pattern: Lit,
        negated: bool,
    },
}

pub const COMPARE_OPS: [&str; 7] = ["=", "!=", "<>", "<", "<=", ">", ">="];

/// SQLite's spellings of `x IS NULL`.
pub const NULL_TESTS: [&str; 2] = [" IS NULL", " ISNULL"];
/// SQLite's spellings of `x IS NOT NULL`.
pub const NOT_NULL_TESTS: [&str; 3] = [" IS NOT NULL", " NOTNULL", " NOT NULL"];

pub fn operand(rng: &mut Rng) -> Gen {
    if rng.chance(55) {
        Gen::Column(rng.below(COLUMNS.len()))
    } else {
        Gen::Literal(random_value(rng))
    }
}

/// A LIKE pattern built from data-like pieces and wildcards; with an escape character, some
/// wildcards and the escape itself are escaped.
pub fn like_pattern(rng: &mut Rng, escape: Option<char>) -> String {
    let mut pattern = String::new();
    for _ in 0..rng.below(5) {
        match rng.below(6) {
            0 => pattern.push('%'),
            1 => pattern.push('_'),
            2 => {
                if let Some(escape) = escape {
                    pattern.push(escape);
                    pattern.push(rng.pick(&['%', '_', escape]));
                } else {
                    pattern.push_str(rng.pick(&TEXT_PIECES));
                }
            }
            _ => pattern.push_str(rng.pick(&TEXT_PIECES)),
        }
    }
    // A pattern may end with its escape character, which escapes nothing: SQLite matches
    // nothing with it, and neither does livecore (a verdict compared like any other).
    pattern
}

/// GLOB's pieces: wildcards, sets in SQLite's corner spellings (`]` and `-` as members, a
/// backwards range, an unterminated set), and plain text.
pub const GLOB_PIECES: [&str; 14] = [
    "*", "?", "[a-c]", "[^a]", "[]]", "[a-]", "[-a]", "[z-a]", "[^]a]", "[ab", "[*?]", "]",
    "[0-9]", "[é-ë]",
];

pub fn glob_pattern(rng: &mut Rng) -> String {
    let mut pattern = String::new();
    for _ in 0..rng.below(5) {
        if rng.chance(50) {
            pattern.push_str(rng.pick(&GLOB_PIECES));
        } else {
            pattern.push_str(rng.pick(&TEXT_PIECES));
        }
    }
    pattern
}

pub fn condition(rng: &mut Rng, depth: usize) -> Gen {
    let leaf_only = depth <= 1;
    let choice = if leaf_only {
        3 + rng.below(10)
    } else {
        rng.below(13)
    };
    match choice {
        0 => Gen::And(
            (0..2 + rng.below(2))
                .map(|_| condition(rng, depth - 1))
                .collect(),
        ),
        1 => Gen::Or(
            (0..2 + rng.below(2))
                .map(|_| condition(rng, depth - 1))
                .collect(),
        ),
        2 => Gen::Not(Box::new(condition(rng, depth - 1))),
        3 | 4 => Gen::Compare(
            rng.pick(&COMPARE_OPS),
            Box::new(operand(rng)),
            Box::new(operand(rng)),
        ),
        5 => {
            let len = if rng.chance(8) { 0 } else { 1 + rng.below(4) };
            let list = (0..len)
                .map(|_| {
                    if rng.chance(15) {
                        Gen::Column(rng.below(COLUMNS.len()))
                    } else {
                        Gen::Literal(random_value(rng))
                    }
                })
                .collect();
            Gen::In(Box::new(operand(rng)), list, rng.chance(40))
        }
        6 => {
            let negated = rng.chance(50);
            let spelling = if negated {
                rng.below(NOT_NULL_TESTS.len())
            } else {
                rng.below(NULL_TESTS.len())
            };
            Gen::IsNull(Box::new(operand(rng)), negated, spelling)
        }
        7 => Gen::Between(
            Box::new(operand(rng)),
            Box::new(operand(rng)),
            Box::new(operand(rng)),
            rng.chance(40),
        ),
        8 | 9 => {
            let escape = if rng.chance(35) {
                Some(rng.pick(&['\\', '!', 'x']))
            } else {
                None
            };
            let pattern = if rng.chance(90) {
                literal_of(Value::text(&like_pattern(rng, escape)), None)
            } else {
                // A number or bytes as the pattern: SQLite reads it as text.
                let mut lit = random_value(rng);
                while matches!(lit.value, Value::Null | Value::Text(_)) {
                    lit = random_value(rng);
                }
                lit
            };
            if rng.chance(30) {
                let pattern = match pattern.value {
                    Value::Text(_) => literal_of(Value::text(&glob_pattern(rng)), None),
                    _ => pattern,
                };
                return Gen::Glob {
                    operand: Box::new(operand(rng)),
                    pattern,
                    negated: rng.chance(40),
                };
            }
            Gen::Like {
                operand: Box::new(operand(rng)),
                pattern,
                escape,
                negated: rng.chance(40),
            }
        }
        11 => Gen::Is(
            Box::new(operand(rng)),
            Box::new(operand(rng)),
            rng.chance(50),
            rng.chance(30),
        ),
        12 => Gen::IsTruth(Box::new(operand(rng)), rng.chance(50), rng.chance(50)),
        _ => operand(rng),
    }
}

pub fn render(gen: &Gen, out: &mut String) {
    match gen {
        Gen::Column(index) => out.push_str(COLUMNS[*index]),
        Gen::Literal(lit) => out.push_str(&lit.sql),
        Gen::Compare(op, left, right) => {
            out.push('(');
            render(left, out);
            write!(out, " {op} ").unwrap();
            render(right, out);
            out.push(')');
        }
        Gen::And(items) | Gen::Or(items) => {
            let joiner = if matches!(gen, Gen::And(_)) {
                " AND "
            } else {
                " OR "
            };
            out.push('(');
            for (index, item) in items.iter().enumerate() {
                if index > 0 {
                    out.push_str(joiner);
                }
                render(item, out);
            }
            out.push(')');
        }
        Gen::Not(inner) => {
            out.push_str("(NOT ");
            render(inner, out);
            out.push(')');
        }
        Gen::In(tested, list, negated) => {
            out.push('(');
            render(tested, out);
            out.push_str(if *negated { " NOT IN (" } else { " IN (" });
            for (index, item) in list.iter().enumerate() {
                if index > 0 {
                    out.push_str(", ");
                }
                render(item, out);
            }
            out.push_str("))");
        }
        Gen::IsNull(tested, negated, spelling) => {
            out.push('(');
            render(tested, out);
            out.push_str(if *negated {
                NOT_NULL_TESTS[*spelling]
            } else {
                NULL_TESTS[*spelling]
            });
            out.push(')');
        }
        Gen::Is(left, right, negated, distinct) => {
            out.push('(');
            render(left, out);
            out.push_str(match (*negated, *distinct) {
                (false, false) => " IS ",
                (true, false) => " IS NOT ",
                (false, true) => " IS NOT DISTINCT FROM ",
                (true, true) => " IS DISTINCT FROM ",
            });
            render(right, out);
            out.push(')');
        }
        Gen::IsTruth(tested, wanted, negated) => {
            out.push('(');
            render(tested, out);
            out.push_str(match (*wanted, *negated) {
                (true, false) => " IS TRUE)",
                (true, true) => " IS NOT TRUE)",
                (false, false) => " IS FALSE)",
                (false, true) => " IS NOT FALSE)",
            });
        }
        Gen::Between(tested, low, high, negated) => {
            out.push('(');
            render(tested, out);
            out.push_str(if *negated {
                " NOT BETWEEN "
            } else {
                " BETWEEN "
            });
            render(low, out);
            out.push_str(" AND ");
            render(high, out);
            out.push(')');
        }
        Gen::Like {
            operand,
            pattern,
            escape,
            negated,
        } => {
            out.push('(');
            render(operand, out);
            out.push_str(if *negated { " NOT LIKE " } else { " LIKE " });
            out.push_str(&pattern.sql);
            if let Some(escape) = escape {
                write!(out, " ESCAPE '{escape}'").unwrap();
            }
            out.push(')');
        }
        Gen::Glob {
            operand,
            pattern,
            negated,
        } => {
            out.push('(');
            render(operand, out);
            out.push_str(if *negated { " NOT GLOB " } else { " GLOB " });
            out.push_str(&pattern.sql);
            out.push(')');
        }
    }
}

pub fn sqlite_value(value: &Value) -> SqliteValue {
    match value {
        Value::Null => SqliteValue::Null,
        Value::Bool(b) => SqliteValue::Integer(i64::from(*b)),
        Value::Int(i) => SqliteValue::Integer(*i),
        Value::Float(f) => SqliteValue::Real(*f),
        Value::Text(text) => SqliteValue::Text(text.to_string()),
        Value::Bytes(bytes) => SqliteValue::Blob(bytes.to_vec()),
    }
}

pub fn sqlite() -> rusqlite::Connection {
    let db = rusqlite::Connection::open_in_memory().unwrap();
    db.execute_batch(&format!(
        "PRAGMA case_sensitive_like = ON; CREATE TABLE t({});",
        COLUMNS.join(", ")
    ))
    .unwrap();
    db
}

pub fn schema() -> TableSchema {
    TableSchema::new(TableId::new("app", "t"), TableScope::Shared, COLUMNS)
}

/// The three-valued verdict of `filter` on each row of `t`, by SQLite, in rowid order.
pub fn sqlite_verdicts(db: &rusqlite::Connection, filter: &str) -> Vec<Option<bool>> {
    let query = format!(
        "SELECT CASE WHEN ({filter}) THEN 1 WHEN NOT ({filter}) THEN 0 END FROM t ORDER BY rowid"
    );
    let mut statement = db
        .prepare(&query)
        .unwrap_or_else(|error| panic!("SQLite refused {query}: {error}"));
    statement
        .query_map([], |row| row.get::<_, Option<i64>>(0))
        .unwrap()
        .map(|verdict| verdict.unwrap().map(|v| v == 1))
        .collect()
}

pub fn livecore_filter(filter_sql: &str) -> Filter {
    let sql = format!("SELECT * FROM app.t WHERE {filter_sql}");
    let parsed = parse_subscription_sql(&sql, &FilterLimits::default())
        .unwrap_or_else(|error| panic!("livecore refused {sql}: {error}"));
    let expr = parsed.filter.expect("a WHERE clause");
    Filter::compile(&expr, &schema(), &FilterLimits::default())
        .unwrap_or_else(|error| panic!("livecore could not compile {sql}: {error}"))
}

/// The literal spellings a generated filter uses, by form, for coverage counts.
pub fn spellings(gen: &Gen, out: &mut BTreeMap<&'static str, u64>) {
    let mut lit = |lit: &Lit| {
        let sql = lit.sql.as_str();
        let digits = sql.trim_start_matches(['-', '+', '(']);
        let form = if !matches!(lit.value, Value::Int(_) | Value::Float(_)) {
            return;
        } else if digits.starts_with("0x") {
            "hex 0x"
        } else if digits.starts_with("0X") {
            "hex 0X"
        } else if digits.contains(['e', 'E']) {
            "exponent"
        } else if digits.starts_with('.') {
            "leading point"
        } else if digits.ends_with('.') {
            "trailing point"
        } else {
            "plain"
        };
        *out.entry(form).or_default() += 1;
        if sql.starts_with('+') {
            *out.entry("unary plus").or_default() += 1;
        }
        if sql.starts_with("-0x") || sql.starts_with("-0X") || sql.starts_with("-(+0x") {
            *out.entry("minus on hex").or_default() += 1;
        }
    };
    let mut stack = vec![gen];
    while let Some(gen) = stack.pop() {
        match gen {
            Gen::Column(_) => {}
            Gen::Literal(value) => lit(value),
            Gen::Compare(_, left, right) => stack.extend([&**left, &**right]),
            Gen::And(items) | Gen::Or(items) => stack.extend(items),
            Gen::Not(inner) => stack.push(inner),
            Gen::In(tested, list, _) => {
                stack.push(tested);
                stack.extend(list);
            }
            Gen::IsNull(tested, ..) | Gen::IsTruth(tested, ..) => stack.push(tested),
            Gen::Is(left, right, ..) => stack.extend([&**left, &**right]),
            Gen::Between(tested, low, high, _) => stack.extend([&**tested, &**low, &**high]),
            Gen::Like {
                operand, pattern, ..
            }
            | Gen::Glob {
                operand, pattern, ..
            } => {
                stack.push(operand);
                lit(pattern);
            }
        }
    }
}

/// Asserts that every literal form the generator writes was used in at least `min` places.
pub fn assert_spellings_covered(counts: &BTreeMap<&'static str, u64>, min: u64) {
    for form in [
        "plain",
        "hex 0x",
        "hex 0X",
        "exponent",
        "leading point",
        "trailing point",
        "unary plus",
        "minus on hex",
    ] {
        let count = counts.get(form).copied().unwrap_or(0);
        assert!(count >= min, "literal form {form} was used {count} times");
    }
}

pub fn verdict_name(verdict: Option<bool>) -> &'static str {
    match verdict {
        Some(true) => "TRUE",
        Some(false) => "FALSE",
        None => "NULL",
    }
}
