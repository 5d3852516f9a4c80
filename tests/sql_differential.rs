//! Differential test: random filters over random rows, evaluated by livecore (parsed from the
//! same SQL text) and by SQLite, must give identical three-valued verdicts.
//!
//! SQLite's table declares its columns without a type, so no affinity converts values, and
//! `PRAGMA case_sensitive_like = ON` makes LIKE case-sensitive as livecore's is. Each filter
//! is evaluated on every row as `CASE WHEN (f) THEN 1 WHEN NOT (f) THEN 0 END` (TRUE, FALSE,
//! NULL) and compared with livecore's `Filter::eval`.
//!
//! The generator never produces the inputs of the deliberate differences listed in
//! `deliberate_differences` (which asserts each of them, case by case), so no mismatch is
//! ever filtered out.

use std::collections::BTreeMap;
use std::fmt::Write as _;

use livecore::query::{parse_subscription_sql, Filter};
use livecore::{FilterLimits, Row, TableId, TableSchema, TableScope, Value};
use rusqlite::types::Value as SqliteValue;

const COLUMNS: [&str; 6] = ["c0", "c1", "c2", "c3", "c4", "c5"];
const ROWS_PER_BATCH: usize = 40;
const FILTERS_PER_BATCH: usize = 100;
const BATCHES: usize = 40;

/// A small deterministic generator (SplitMix64).
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }

    fn below(&mut self, n: usize) -> usize {
        (self.next() % n as u64) as usize
    }

    fn chance(&mut self, percent: u64) -> bool {
        self.next() % 100 < percent
    }

    fn pick<T: Copy>(&mut self, items: &[T]) -> T {
        items[self.below(items.len())]
    }
}

/// Floats with the text both engines read back exactly. (Infinity is written 1e999.)
const FLOATS: [(f64, &str); 17] = [
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

const INTS: [i64; 14] = [
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

/// Text pieces: letters of both cases, digits and number-like strings, LIKE wildcards and
/// the escape character as data, spaces, and non-ASCII letters.
const TEXT_PIECES: [&str; 22] = [
    "a", "A", "b", "B", "ab", "7", "12", "0", "1e3", " ", "%", "_", "\\", "!", "é", "É", "ß", "€",
    "x", "-", ".5", "0.0",
];

/// Bytes pieces, including malformed UTF-8 (but never a NUL byte).
const BYTE_PIECES: [&[u8]; 12] = [
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
enum Kind {
    Null,
    Bool,
    Int,
    Float,
    Text,
    Bytes,
}

const KINDS: [Kind; 6] = [
    Kind::Null,
    Kind::Bool,
    Kind::Int,
    Kind::Float,
    Kind::Text,
    Kind::Bytes,
];

fn kind(value: &Value) -> Kind {
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
struct Lit {
    value: Value,
    sql: String,
}

fn text_value(rng: &mut Rng) -> String {
    let pieces = rng.below(4);
    (0..pieces).map(|_| rng.pick(&TEXT_PIECES)).collect()
}

fn bytes_value(rng: &mut Rng) -> Vec<u8> {
    let pieces = rng.below(4);
    (0..pieces)
        .flat_map(|_| rng.pick(&BYTE_PIECES).iter().copied())
        .collect()
}

fn literal_of(value: Value, float_sql: Option<&str>) -> Lit {
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

/// A random value; NULL one time in four.
fn random_value(rng: &mut Rng) -> Lit {
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
            literal_of(Value::Int(int), None)
        }
        2 => {
            let (float, sql) = rng.pick(&FLOATS);
            literal_of(Value::Float(float), Some(sql))
        }
        3 => literal_of(Value::text(&text_value(rng)), None),
        _ => literal_of(Value::Bytes(bytes_value(rng).into()), None),
    }
}

/// The generator's own filter tree, rendered to SQL text for both engines and walked to
/// record coverage.
#[derive(Clone, Debug)]
enum Gen {
    Column(usize),
    Literal(Lit),
    Compare(&'static str, Box<Gen>, Box<Gen>),
    And(Vec<Gen>),
    Or(Vec<Gen>),
    Not(Box<Gen>),
    In(Box<Gen>, Vec<Gen>, bool),
    IsNull(Box<Gen>, bool),
    Between(Box<Gen>, Box<Gen>, Box<Gen>, bool),
    Like {
        operand: Box<Gen>,
        pattern: Lit,
        escape: Option<char>,
        negated: bool,
    },
}

const COMPARE_OPS: [&str; 7] = ["=", "!=", "<>", "<", "<=", ">", ">="];

fn operand(rng: &mut Rng) -> Gen {
    if rng.chance(55) {
        Gen::Column(rng.below(COLUMNS.len()))
    } else {
        Gen::Literal(random_value(rng))
    }
}

/// A LIKE pattern built from data-like pieces and wildcards; with an escape character, some
/// wildcards and the escape itself are escaped.
fn like_pattern(rng: &mut Rng, escape: Option<char>) -> String {
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
    close_lone_escape(&mut pattern, escape);
    pattern
}

/// A trailing escape character would escape nothing; livecore refuses such a pattern at
/// subscribe time, so none is generated: it is doubled.
fn close_lone_escape(pattern: &mut String, escape: Option<char>) {
    if let Some(escape) = escape {
        let mut lone = false;
        let mut chars = pattern.chars();
        while let Some(c) = chars.next() {
            if c == escape {
                lone = chars.next().is_none();
            }
        }
        if lone {
            pattern.push(escape);
        }
    }
}

fn condition(rng: &mut Rng, depth: usize) -> Gen {
    let leaf_only = depth <= 1;
    let choice = if leaf_only {
        3 + rng.below(8)
    } else {
        rng.below(11)
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
            let len = 1 + rng.below(4);
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
        6 => Gen::IsNull(Box::new(operand(rng)), rng.chance(50)),
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
            Gen::Like {
                operand: Box::new(operand(rng)),
                pattern,
                escape,
                negated: rng.chance(40),
            }
        }
        _ => operand(rng),
    }
}

fn render(gen: &Gen, out: &mut String) {
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
        Gen::IsNull(tested, negated) => {
            out.push('(');
            render(tested, out);
            out.push_str(if *negated {
                " IS NOT NULL)"
            } else {
                " IS NULL)"
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
    }
}

/// What the generated cases covered.
#[derive(Default)]
struct Coverage {
    operators: BTreeMap<&'static str, u64>,
    compared_kinds: BTreeMap<(Kind, Kind), u64>,
    depths: BTreeMap<usize, u64>,
    values: u64,
    null_values: u64,
    like_features: BTreeMap<&'static str, u64>,
    verdicts: BTreeMap<&'static str, u64>,
}

fn value_of<'a>(gen: &'a Gen, row: &'a [Lit]) -> &'a Value {
    match gen {
        Gen::Column(index) => &row[*index].value,
        Gen::Literal(lit) => &lit.value,
        _ => unreachable!("operands are columns or literals"),
    }
}

/// Records, for one filter on one row, the operators it evaluates and the kinds of the
/// values each comparison meets.
fn record(gen: &Gen, row: &[Lit], coverage: &mut Coverage) {
    let mut pair = |a: &Value, b: &Value| {
        *coverage
            .compared_kinds
            .entry((kind(a), kind(b)))
            .or_default() += 1;
    };
    let name = match gen {
        Gen::Column(_) | Gen::Literal(_) => "value as condition",
        Gen::Compare(op, left, right) => {
            pair(value_of(left, row), value_of(right, row));
            match *op {
                "=" => "=",
                "!=" => "!=",
                "<>" => "<>",
                "<" => "<",
                "<=" => "<=",
                ">" => ">",
                _ => ">=",
            }
        }
        Gen::And(_) => "AND",
        Gen::Or(_) => "OR",
        Gen::Not(_) => "NOT",
        Gen::In(tested, list, negated) => {
            for item in list {
                pair(value_of(tested, row), value_of(item, row));
            }
            if *negated {
                "NOT IN"
            } else {
                "IN"
            }
        }
        Gen::IsNull(_, negated) => {
            if *negated {
                "IS NOT NULL"
            } else {
                "IS NULL"
            }
        }
        Gen::Between(tested, low, high, negated) => {
            pair(value_of(tested, row), value_of(low, row));
            pair(value_of(tested, row), value_of(high, row));
            if *negated {
                "NOT BETWEEN"
            } else {
                "BETWEEN"
            }
        }
        Gen::Like {
            operand,
            pattern,
            escape,
            negated,
        } => {
            pair(value_of(operand, row), &pattern.value);
            if let Value::Text(text) = &pattern.value {
                if text.contains('%') {
                    *coverage.like_features.entry("pattern with %").or_default() += 1;
                }
                if text.contains('_') {
                    *coverage.like_features.entry("pattern with _").or_default() += 1;
                }
            } else {
                *coverage
                    .like_features
                    .entry("non-text pattern")
                    .or_default() += 1;
            }
            if escape.is_some() {
                *coverage.like_features.entry("with ESCAPE").or_default() += 1;
            }
            if !matches!(value_of(operand, row), Value::Text(_) | Value::Null) {
                *coverage
                    .like_features
                    .entry("non-text operand")
                    .or_default() += 1;
            }
            if *negated {
                "NOT LIKE"
            } else {
                "LIKE"
            }
        }
    };
    *coverage.operators.entry(name).or_default() += 1;
    match gen {
        Gen::And(items) | Gen::Or(items) => {
            items.iter().for_each(|item| record(item, row, coverage))
        }
        Gen::Not(inner) => record(inner, row, coverage),
        _ => {}
    }
}

fn sqlite_value(value: &Value) -> SqliteValue {
    match value {
        Value::Null => SqliteValue::Null,
        Value::Bool(b) => SqliteValue::Integer(i64::from(*b)),
        Value::Int(i) => SqliteValue::Integer(*i),
        Value::Float(f) => SqliteValue::Real(*f),
        Value::Text(text) => SqliteValue::Text(text.to_string()),
        Value::Bytes(bytes) => SqliteValue::Blob(bytes.to_vec()),
    }
}

fn sqlite() -> rusqlite::Connection {
    let db = rusqlite::Connection::open_in_memory().unwrap();
    db.execute_batch(&format!(
        "PRAGMA case_sensitive_like = ON; CREATE TABLE t({});",
        COLUMNS.join(", ")
    ))
    .unwrap();
    db
}

fn schema() -> TableSchema {
    TableSchema::new(TableId::new("app", "t"), TableScope::Shared, COLUMNS)
}

/// The three-valued verdict of `filter` on each row of `t`, by SQLite, in rowid order.
fn sqlite_verdicts(db: &rusqlite::Connection, filter: &str) -> Vec<Option<bool>> {
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

fn livecore_filter(filter_sql: &str) -> Filter {
    let sql = format!("SELECT * FROM app.t WHERE {filter_sql}");
    let parsed = parse_subscription_sql(&sql, &FilterLimits::default())
        .unwrap_or_else(|error| panic!("livecore refused {sql}: {error}"));
    let expr = parsed.filter.expect("a WHERE clause");
    Filter::compile(&expr, &schema(), &FilterLimits::default())
        .unwrap_or_else(|error| panic!("livecore could not compile {sql}: {error}"))
}

fn verdict_name(verdict: Option<bool>) -> &'static str {
    match verdict {
        Some(true) => "TRUE",
        Some(false) => "FALSE",
        None => "NULL",
    }
}

#[test]
fn livecore_agrees_with_sqlite_on_random_filters() {
    let seed = std::env::var("LIVECORE_DIFF_SEED")
        .ok()
        .and_then(|seed| seed.parse().ok())
        .unwrap_or(0x005e_ed0f_11fe_c0de_u64);
    println!("seed {seed} (set LIVECORE_DIFF_SEED to vary it)");
    let mut rng = Rng(seed);
    let mut coverage = Coverage::default();
    let mut cases = 0u64;
    let mut mismatches = Vec::new();
    for _ in 0..BATCHES {
        let db = sqlite();
        let rows: Vec<Vec<Lit>> = (0..ROWS_PER_BATCH)
            .map(|_| (0..COLUMNS.len()).map(|_| random_value(&mut rng)).collect())
            .collect();
        {
            let mut insert = db
                .prepare(
                    "INSERT INTO t(rowid, c0, c1, c2, c3, c4, c5) VALUES (?, ?, ?, ?, ?, ?, ?)",
                )
                .unwrap();
            for (rowid, row) in rows.iter().enumerate() {
                let mut params = vec![SqliteValue::Integer(rowid as i64)];
                params.extend(row.iter().map(|lit| sqlite_value(&lit.value)));
                insert.execute(rusqlite::params_from_iter(params)).unwrap();
            }
        }
        let livecore_rows: Vec<Row> = rows
            .iter()
            .map(|row| row.iter().map(|lit| lit.value.clone()).collect())
            .collect();
        for row in &rows {
            coverage.values += row.len() as u64;
            coverage.null_values += row.iter().filter(|lit| lit.value.is_null()).count() as u64;
        }
        for _ in 0..FILTERS_PER_BATCH {
            let depth = 1 + rng.below(5);
            let gen = condition(&mut rng, depth);
            let mut text = String::new();
            render(&gen, &mut text);
            let filter = livecore_filter(&text);
            let parsed_depth = parse_subscription_sql(
                &format!("SELECT * FROM t WHERE {text}"),
                &FilterLimits::default(),
            )
            .unwrap()
            .filter
            .unwrap()
            .depth();
            let expected = sqlite_verdicts(&db, &text);
            for (index, row) in livecore_rows.iter().enumerate() {
                cases += 1;
                *coverage.depths.entry(parsed_depth).or_default() += 1;
                record(&gen, &rows[index], &mut coverage);
                let got = filter.eval(row);
                *coverage
                    .verdicts
                    .entry(verdict_name(expected[index]))
                    .or_default() += 1;
                if got != expected[index] && mismatches.len() < 20 {
                    mismatches.push(format!(
                        "WHERE {text}\n  row {:?}\n  livecore {}, SQLite {}",
                        rows[index]
                            .iter()
                            .map(|lit| lit.sql.as_str())
                            .collect::<Vec<_>>(),
                        verdict_name(got),
                        verdict_name(expected[index])
                    ));
                }
            }
        }
    }

    println!("\n=== SQLite differential: {cases} cases ===");
    println!(
        "row values: {} ({} NULL, {:.1}%)",
        coverage.values,
        coverage.null_values,
        100.0 * coverage.null_values as f64 / coverage.values as f64
    );
    println!("operators evaluated:");
    for (name, count) in &coverage.operators {
        println!("  {name:<20} {count}");
    }
    println!("filter depth (cases):");
    for (depth, count) in &coverage.depths {
        println!("  depth {depth:<3} {count}");
    }
    println!("LIKE features:");
    for (name, count) in &coverage.like_features {
        println!("  {name:<20} {count}");
    }
    println!("SQLite verdicts:");
    for (name, count) in &coverage.verdicts {
        println!("  {name:<6} {count}");
    }
    println!("compared value kinds (left x right):");
    for left in KINDS {
        let mut line = format!("  {left:<6?}");
        for right in KINDS {
            let count = coverage
                .compared_kinds
                .get(&(left, right))
                .copied()
                .unwrap_or(0);
            write!(line, " {right:>5?}:{count:<6}").unwrap();
        }
        println!("{line}");
    }

    assert!(
        mismatches.is_empty(),
        "livecore and SQLite disagree:\n{}",
        mismatches.join("\n")
    );
    assert!(cases >= 100_000, "only {cases} cases");
    assert!(
        coverage.null_values * 5 >= coverage.values,
        "fewer than 20% NULLs"
    );
    for op in [
        "=",
        "!=",
        "<>",
        "<",
        "<=",
        ">",
        ">=",
        "AND",
        "OR",
        "NOT",
        "IN",
        "NOT IN",
        "IS NULL",
        "IS NOT NULL",
        "BETWEEN",
        "NOT BETWEEN",
        "LIKE",
        "NOT LIKE",
        "value as condition",
    ] {
        assert!(
            coverage.operators.get(op).copied().unwrap_or(0) > 100,
            "{op} was barely covered"
        );
    }
    for left in KINDS {
        for right in KINDS {
            assert!(
                coverage
                    .compared_kinds
                    .get(&(left, right))
                    .copied()
                    .unwrap_or(0)
                    > 50,
                "{left:?} x {right:?} was barely compared"
            );
        }
    }
    assert!(coverage.depths.keys().any(|&depth| depth >= 5));
    for feature in [
        "pattern with %",
        "pattern with _",
        "with ESCAPE",
        "non-text operand",
    ] {
        assert!(
            coverage.like_features.get(feature).copied().unwrap_or(0) > 100,
            "{feature} was barely covered"
        );
    }
}

/// livecore's verdict for `filter_sql` on one row of the differential table.
fn livecore_verdict(filter_sql: &str, row: &[Value]) -> Option<bool> {
    let mut values = row.to_vec();
    values.resize(COLUMNS.len(), Value::Null);
    livecore_filter(filter_sql).eval(&Row::new(values))
}

/// SQLite's verdict for `filter_sql` on one row.
fn sqlite_verdict(filter_sql: &str, row: &[Value], case_sensitive: bool) -> Option<bool> {
    let db = sqlite();
    if !case_sensitive {
        db.execute_batch("PRAGMA case_sensitive_like = OFF;")
            .unwrap();
    }
    let mut params: Vec<SqliteValue> = row.iter().map(sqlite_value).collect();
    params.resize(COLUMNS.len(), SqliteValue::Null);
    db.execute(
        "INSERT INTO t(c0, c1, c2, c3, c4, c5) VALUES (?, ?, ?, ?, ?, ?)",
        rusqlite::params_from_iter(params),
    )
    .unwrap();
    sqlite_verdicts(&db, filter_sql)[0]
}

/// The deliberate differences from SQLite, each asserted as it is. The random generator
/// never produces their inputs (no NUL, no U+FFFD in patterns, no NaN, no pattern ending in a
/// lone escape character).
#[test]
fn deliberate_differences() {
    struct Difference {
        why: &'static str,
        filter: &'static str,
        row: Vec<Value>,
        livecore: Option<bool>,
        sqlite: Option<bool>,
    }
    let differences = [
        Difference {
            why: "LIKE reads the whole value; SQLite's LIKE stops at the first NUL character",
            filter: "c0 LIKE 'a'",
            row: vec![Value::text("a\0b")],
            livecore: Some(false),
            sqlite: Some(true),
        },
        Difference {
            why: "malformed bytes decoding beyond U+10FFFF read as U+FFFD under LIKE; SQLite \
                  keeps a number that no character equals",
            filter: "c0 LIKE '\u{fffd}'",
            row: vec![Value::bytes(&[0xf4, 0x90, 0x80, 0x80])],
            livecore: Some(true),
            sqlite: Some(false),
        },
        Difference {
            why: "bytes read as text to their end under LIKE; SQLite's LIKE stops at a NUL byte",
            filter: "c0 LIKE 'ab'",
            row: vec![Value::bytes(b"ab\0c")],
            livecore: Some(false),
            sqlite: Some(true),
        },
        Difference {
            why: "a float NaN is a value (equal to itself, above every number); SQLite stores NaN as NULL",
            filter: "c0 = c0",
            row: vec![Value::Float(f64::NAN)],
            livecore: Some(true),
            sqlite: None,
        },
    ];
    for difference in &differences {
        assert_eq!(
            livecore_verdict(difference.filter, &difference.row),
            difference.livecore,
            "livecore: {}",
            difference.why
        );
        assert_eq!(
            sqlite_verdict(difference.filter, &difference.row, true),
            difference.sqlite,
            "SQLite: {}",
            difference.why
        );
    }
    // A pattern ending with its escape character escapes nothing: SQLite never matches it,
    // livecore refuses it when subscribing.
    assert_eq!(
        sqlite_verdict("c0 LIKE 'a!' ESCAPE '!'", &[Value::text("a!")], true),
        Some(false)
    );
    let refused = parse_subscription_sql(
        "SELECT * FROM t WHERE c0 LIKE 'a!' ESCAPE '!'",
        &FilterLimits::default(),
    );
    assert!(
        matches!(&refused, Err(livecore::LiveError::Sql { message, .. }) if message.contains("ESCAPE")),
        "{refused:?}"
    );
}

/// ILIKE, which SQLite lacks: on ASCII data it must agree with SQLite's case-insensitive LIKE
/// (`PRAGMA case_sensitive_like = OFF`, which folds ASCII letters only).
#[test]
fn ilike_agrees_with_sqlite_case_insensitive_like_on_ascii() {
    const ASCII_PIECES: [&str; 12] = ["a", "A", "b", "B", "Zz", "7", " ", "%", "_", "!", "x", "X"];
    let mut rng = Rng(0x11ce);
    let db = sqlite();
    db.execute_batch("PRAGMA case_sensitive_like = OFF;")
        .unwrap();
    let mut rows = Vec::new();
    for rowid in 0..40 {
        let value = match rng.below(6) {
            0 => Value::Null,
            1 => Value::Int(rng.below(100) as i64),
            2 => Value::Float(0.5),
            _ => Value::text(
                &(0..rng.below(5))
                    .map(|_| rng.pick(&ASCII_PIECES))
                    .collect::<String>(),
            ),
        };
        db.execute(
            "INSERT INTO t(rowid, c0) VALUES (?, ?)",
            rusqlite::params![rowid, sqlite_value(&value)],
        )
        .unwrap();
        let mut values = vec![value];
        values.resize(COLUMNS.len(), Value::Null);
        rows.push(Row::new(values));
    }
    let mut cases = 0;
    for _ in 0..400 {
        let escape = rng.chance(30).then_some('!');
        let mut pattern: String = (0..rng.below(5)).map(|_| rng.pick(&ASCII_PIECES)).collect();
        close_lone_escape(&mut pattern, escape);
        let escape_sql = escape.map_or(String::new(), |c| format!(" ESCAPE '{c}'"));
        let negated = if rng.chance(30) { "NOT " } else { "" };
        let ilike = format!("c0 {negated}ILIKE '{pattern}'{escape_sql}");
        let like = format!("c0 {negated}LIKE '{pattern}'{escape_sql}");
        let filter = livecore_filter(&ilike);
        let expected = sqlite_verdicts(&db, &like);
        for (row, expected) in rows.iter().zip(expected) {
            cases += 1;
            assert_eq!(filter.eval(row), expected, "{ilike} on {row:?}");
        }
    }
    assert!(cases >= 10_000);
}

/// ILIKE folds every letter with a one-character lower-case form, not only ASCII.
#[test]
fn ilike_folds_unicode_letters() {
    for (text, pattern, expected) in [
        ("ÉCOLE", "éc%", Some(true)),
        ("école", "ÉCOLE", Some(true)),
        ("ΣΟΦΊΑ", "σοφία", Some(true)),
        ("Straße", "STRASSE", Some(false)),
        ("Straße", "strasse", Some(false)),
        ("Straße", "STRA_E", Some(true)),
        ("ÅNGSTRÖM", "å%m", Some(true)),
        ("abc", "ABD", Some(false)),
    ] {
        assert_eq!(
            livecore_verdict(&format!("c0 ILIKE '{pattern}'"), &[Value::text(text)]),
            expected,
            "{text} ILIKE {pattern}"
        );
    }
    assert_eq!(
        livecore_verdict("c0 ILIKE 'a%'", &[Value::Null]),
        None,
        "NULL ILIKE is UNKNOWN"
    );
    assert_eq!(
        livecore_verdict("c0 NOT ILIKE 'A%'", &[Value::text("abc")]),
        Some(false)
    );
    // LIKE itself stays case-sensitive.
    assert_eq!(
        livecore_verdict("c0 LIKE 'A%'", &[Value::text("abc")]),
        Some(false)
    );
}
