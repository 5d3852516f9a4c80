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

use livecore::parse_subscription_sql;
use livecore::{FilterLimits, Row, Value};
use rusqlite::types::Value as SqliteValue;

#[path = "common/rng.rs"]
mod rng;
#[path = "common/sql_gen.rs"]
mod sql_gen;

use sql_gen::*;

const ROWS_PER_BATCH: usize = 40;
const FILTERS_PER_BATCH: usize = 100;
const BATCHES: usize = 40;

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
    /// Numeric literals in the filters, by spelling (hex, exponent, ...).
    spellings: BTreeMap<&'static str, u64>,
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
            match (*negated, list.is_empty()) {
                (false, false) => "IN",
                (true, false) => "NOT IN",
                (false, true) => "IN ()",
                (true, true) => "NOT IN ()",
            }
        }
        Gen::IsNull(_, negated, spelling) => match (*negated, *spelling) {
            (false, 0) => "IS NULL",
            (false, _) => "ISNULL",
            (true, 0) => "IS NOT NULL",
            (true, 1) => "NOTNULL",
            (true, _) => "NOT NULL",
        },
        Gen::Is(left, right, negated, distinct) => {
            pair(value_of(left, row), value_of(right, row));
            match (*negated, *distinct) {
                (false, false) => "IS",
                (true, false) => "IS NOT",
                (false, true) => "IS NOT DISTINCT FROM",
                (true, true) => "IS DISTINCT FROM",
            }
        }
        Gen::IsTruth(_, wanted, negated) => match (*wanted, *negated) {
            (true, false) => "IS TRUE",
            (true, true) => "IS NOT TRUE",
            (false, false) => "IS FALSE",
            (false, true) => "IS NOT FALSE",
        },
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
            if let Some(escape) = escape {
                *coverage.like_features.entry("with ESCAPE").or_default() += 1;
                if matches!(&pattern.value, Value::Text(text) if ends_with_lone(text, *escape)) {
                    *coverage
                        .like_features
                        .entry("pattern ending with its ESCAPE")
                        .or_default() += 1;
                }
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
        Gen::Glob {
            operand,
            pattern,
            negated,
        } => {
            pair(value_of(operand, row), &pattern.value);
            if let Value::Text(text) = &pattern.value {
                for (piece, feature) in [
                    ("[", "GLOB set"),
                    ("[^", "GLOB inverted set"),
                    ("*", "GLOB *"),
                    ("?", "GLOB ?"),
                ] {
                    if text.contains(piece) {
                        *coverage.like_features.entry(feature).or_default() += 1;
                    }
                }
            }
            if *negated {
                "NOT GLOB"
            } else {
                "GLOB"
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
            spellings(&gen, &mut coverage.spellings);
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
    println!("numeric literal spellings in filters:");
    for (name, count) in &coverage.spellings {
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
        "ISNULL",
        "NOTNULL",
        "NOT NULL",
        "IS",
        "IS NOT",
        "IS DISTINCT FROM",
        "IS NOT DISTINCT FROM",
        "IS TRUE",
        "IS NOT TRUE",
        "IS FALSE",
        "IS NOT FALSE",
        "IN ()",
        "NOT IN ()",
        "BETWEEN",
        "NOT BETWEEN",
        "LIKE",
        "NOT LIKE",
        "GLOB",
        "NOT GLOB",
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
    // A handful per form proves it exercised: how many varies with the seed (as few as 16
    // over 400 seeds an outside run tried), so a floor near the mean failed healthy seeds.
    assert_spellings_covered(&coverage.spellings, 5);
    for feature in [
        "pattern with %",
        "pattern with _",
        "with ESCAPE",
        "non-text operand",
        "GLOB set",
        "GLOB inverted set",
        "GLOB *",
        "GLOB ?",
    ] {
        assert!(
            coverage.like_features.get(feature).copied().unwrap_or(0) > 100,
            "{feature} was barely covered"
        );
    }
    // Rarer (the last piece must be a lone escape: 200 verdicts with the default seed, a
    // count that varies with the seed), so reported rather than held to a floor;
    // `a_pattern_ending_with_its_escape_matches_nothing_as_in_sqlite` covers it always.
    println!(
        "patterns ending with their ESCAPE: {} verdicts",
        coverage
            .like_features
            .get("pattern ending with its ESCAPE")
            .copied()
            .unwrap_or(0)
    );
}

/// True when `pattern` ends with an `escape` that escapes nothing.
fn ends_with_lone(pattern: &str, escape: char) -> bool {
    let mut chars = pattern.chars();
    let mut lone = false;
    while let Some(c) = chars.next() {
        if c == escape {
            lone = chars.next().is_none();
        }
    }
    lone
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
/// never produces their inputs (no NUL, no U+FFFD in patterns, no GLOB range reaching
/// U+FFFD, no NaN; nor a pattern ending in a lone escape character, whose verdicts
/// `a_pattern_ending_with_its_escape_matches_nothing_as_in_sqlite` compares).
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
            why: "the same bytes under GLOB: U+FFFD is inside a set's range that reaches it; \
                  SQLite's number is above every range",
            filter: "c0 GLOB '[a-\u{1f600}]'",
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
}

/// A LIKE pattern ending with its escape character, which escapes nothing: SQLite matches
/// nothing with it (NULL for a NULL operand), and so does livecore (it refused it once).
#[test]
fn a_pattern_ending_with_its_escape_matches_nothing_as_in_sqlite() {
    let patterns = [
        "'a!' ESCAPE '!'",
        "'%!' ESCAPE '!'",
        "'!' ESCAPE '!'",
        "'_!' ESCAPE '!'",
        "'a!!!' ESCAPE '!'",
        "'a!!' ESCAPE '!'",
        "'%é%' ESCAPE '%'",
        "92 ESCAPE '2'",
        "X'5C' ESCAPE '\\'",
    ];
    let rows = [
        Value::text("a!"),
        Value::text("a"),
        Value::text("!"),
        Value::text("xé"),
        Value::text("9"),
        Value::text("\\"),
        Value::Int(9),
        Value::Null,
    ];
    let mut compared = 0;
    for pattern in patterns {
        for operator in ["LIKE", "NOT LIKE"] {
            let filter = format!("c0 {operator} {pattern}");
            for row in &rows {
                let row = [row.clone()];
                assert_eq!(
                    livecore_verdict(&filter, &row),
                    sqlite_verdict(&filter, &row, true),
                    "{filter} on {row:?}"
                );
                compared += 1;
            }
        }
    }
    // `'a!!' ESCAPE '!'` ends with an escaped escape, not a lone one: it matches `a!`.
    assert_eq!(
        livecore_verdict("c0 LIKE 'a!!' ESCAPE '!'", &[Value::text("a!")]),
        Some(true)
    );
    assert_eq!(compared, patterns.len() * 2 * rows.len());
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
        // It may end with its escape character, which makes it match nothing in both.
        let pattern: String = (0..rng.below(5)).map(|_| rng.pick(&ASCII_PIECES)).collect();
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

/// Floats read as text (the operand of LIKE) and long decimal literals, against SQLite:
/// SQLite computes a float's digits and a literal's value with approximations of its own
/// (src/query/sqlite_decimal.rs), which differ from correctly rounded conversions for
/// about one float in 200 and for literals of more than 19 significant digits.
#[test]
fn floats_as_text_and_long_literals_agree_with_sqlite() {
    let db = sqlite();
    let mut rng = Rng(0x5eed_f10a7);
    let mut floats: Vec<f64> = (0..4000)
        .map(|_| f64::from_bits(rng.next()))
        .filter(|float| float.is_finite() && *float != 0.0)
        .collect();
    // Everyday values, among which the approximations also show (1/9, 72/7, 1/65).
    for k in 1..=400 {
        floats.extend([
            1.0 / k as f64,
            k as f64 / 7.0,
            (k as f64).sqrt(),
            k as f64 * 0.1,
        ]);
    }
    floats.extend([1.0 / 9.0, 72.0 / 7.0, f64::from_bits(0x40f8_6a00_0000_0001)]);
    floats.extend([
        f64::MIN_POSITIVE,
        5e-324,
        f64::MAX,
        1e-310,
        123_456.789e-300,
    ]);
    for float in floats {
        let text: String = db
            .query_row("SELECT CAST(?1 AS TEXT)", [float], |row| row.get(0))
            .unwrap();
        let filter = format!("c0 LIKE '{text}'");
        assert_eq!(
            livecore_verdict(&filter, &[Value::Float(float)]),
            Some(true),
            "SQLite reads {float:e} ({:#018x}) as '{text}'",
            float.to_bits()
        );
    }
    for case in 0..3000 {
        let digits = 17 + rng.below(9);
        let mut literal: String = (0..digits)
            .map(|place| {
                let digit = rng.below(10) as u8 + u8::from(place == 0 && rng.chance(90));
                char::from(b'0' + digit.min(9))
            })
            .collect();
        if rng.chance(40) {
            literal.insert(1 + rng.below(digits - 1), '.');
        }
        if rng.chance(30) {
            write!(literal, "e{}", rng.below(80) as i64 - 40).unwrap();
        } else if literal.parse::<i64>().is_ok() {
            // An integer literal: a float only when a point makes it one.
            literal.push('.');
        }
        let value: f64 = db
            .query_row(&format!("SELECT {literal} + 0.0"), [], |row| row.get(0))
            .unwrap();
        assert_eq!(
            livecore_verdict(&format!("c0 = {literal}"), &[Value::Float(value)]),
            Some(true),
            "case {case}: SQLite reads {literal} as {value:e}"
        );
    }
}

/// SQLite's own spellings (ISNULL, NOTNULL, postfix NOT NULL, IS and IS NOT between any
/// operands, IS TRUE and IS FALSE, empty IN lists) without the generator's parentheses, among
/// other operators: each filter livecore takes agrees with SQLite on every row; each it
/// refuses is a comparison's result used as an operand, refused as SQL.
#[test]
fn sqlite_spellings_agree_without_parentheses() {
    let agreed = [
        "c0 ISNULL",
        "c0 NOTNULL AND c1 ISNULL",
        "c0 NOT NULL OR c1 NOT NULL",
        "NOT c0 NOT NULL",
        "NOT c0 ISNULL",
        "c0 IS c1",
        "c0 IS NOT c1 AND c2 IS 3",
        "NOT c0 IS c1",
        "c0 IS -3 OR c1 IS 'a'",
        "c0 IS TRUE OR c1 IS NOT FALSE",
        "NOT c0 IS FALSE",
        "c0 IS (TRUE)",
        "c0 IS +TRUE",
        "c0 IS NOT +FALSE",
        "c0 IS (+TRUE)",
        "c0 IS DISTINCT FROM +FALSE",
        "c0 IS NOT DISTINCT FROM (FALSE)",
        "c0 IS NOT DISTINCT FROM FALSE",
        "c0 IS DISTINCT FROM NULL",
        "NULL IS c0",
        "TRUE IS c0",
        "c0 IN () OR c1 NOT IN ( )",
        "NOT c0 IN ()",
        "c0 NOT IN () AND c1 IS NOT NULL",
        "c0 IN (/* nothing */)",
        "c0 = 1 AND c1 NOTNULL",
        "c0 IS c1 AND c1 IS c2",
        "c0 GLOB 'a*' OR c1 NOT GLOB '[0-9]*'",
        "NOT c0 GLOB '?' AND c1 glob '[^]a]*'",
        "c0 GLOB 12 OR c1 GLOB NULL",
        // A block comment ends at its first */ (no nesting), and MySQL's /*! is a comment.
        "c0 = 2 /* /* */ OR c0 = 1",
        "0 /* /* /* */ OR c1 ISNULL",
        "c0 = 1 /*!AND 0*/",
        "c0 NOTNULL /*! OR 1 */",
        "c0 = '/*' OR c1 /* '*/ = 1",
        // A `/*` whose star begins the close is one comment (the newline ends the line
        // comment before the verdict's wrapping).
        "c0 = 2 /*/*/ OR c0 = 1 -- */ */\n",
        "c0 = 2 /*/*/ OR c0 = '*/*/ OR c0 = 1 --'",
        "c0 = 1 /* see http://x/*/",
        "c0 = 2 /*!/*/ OR c1 ISNULL",
    ];
    let refused = [
        "c0 = 1 IS NULL",
        "c0 = c1 IS c2",
        "c0 IS c1 = 1",
        "(c0 = 1) IS TRUE",
        "c0 IS c1 IS c2",
        "c0 < 1 NOTNULL",
        "c0 IS NULL IS NOT c1",
        "c0 BETWEEN 1 AND 3 ISNULL",
        "c0 ISNULL = 0",
        "c0 IN () IS NULL",
        "1ISNULL",
        "c0 = 1NOTNULL",
        "0x1ISNULL",
        "c0 GLOB 'a' ESCAPE 'x'",
        "c0 SIMILAR TO 'a'",
        "c0 GLOB 'a' AND c1 SIMILAR TO 'b'",
        "(c0 GLOB 'a') = 1",
        "c0 GLOB c1",
        "c0 = 1 /* /**/ tail */",
        // A `/*` that ends the text is a slash and a star to SQLite.
        "c0 = 2 /*",
        "c0 = 2 OR c1 /*",
        // Whitespace to Unicode, not to SQLite; a NUL, where SQLite stops reading.
        "c0\u{a0}= 1",
        "c0\u{b}= 1",
        "c0 = 'a\0b' OR c0 = 1",
    ];
    let mut rng = Rng(0x15_0000_0001);
    let rows: Vec<Vec<Value>> = (0..200)
        .map(|_| {
            (0..COLUMNS.len())
                .map(|_| random_value(&mut rng).value)
                .collect()
        })
        .collect();
    for filter in agreed {
        for row in &rows {
            let sqlite = sqlite_verdict(filter, row, true);
            let livecore = livecore_verdict(filter, row);
            assert_eq!(livecore, sqlite, "WHERE {filter} on {row:?}");
        }
    }
    for filter in refused {
        let sql = format!("SELECT * FROM t WHERE {filter}");
        match parse_subscription_sql(&sql, &FilterLimits::default()) {
            // Messages quote what was written, not the parser's rewriting of it.
            Err(livecore::LiveError::Sql { message, .. }) => {
                assert!(!message.contains('\0'), "{filter}: {message:?}")
            }
            other => panic!("{filter}: expected an SQL refusal, got {other:?}"),
        }
    }
}

/// SQLite reads a bare TRUE or FALSE as the column of that name when the table has one;
/// livecore's subscriptions agree, row by row, on such a table and on one without.
#[test]
fn true_and_false_name_columns_where_a_table_has_them() {
    use livecore::{SeqId, SubscriptionOptions};
    let filters = [
        "true",
        "false",
        "NOT false",
        "TRUE = 1",
        "\"true\" = 0",
        "True IN (1, 2)",
        "id = 3 OR false",
        "true BETWEEN 0 AND 1",
        "false IS NULL",
        "id IS true",
        "id IS NOT false",
        "false ISNULL",
        "id IS NOT DISTINCT FROM true",
        "id IN (true)",
        "id NOT IN ((false))",
        "id IN (true, 3)",
        "id IN (0, false)",
    ];
    let rows: Vec<[i64; 3]> = vec![[0, 0, 1], [1, 1, 0], [2, 5, 5], [3, 0, 0]];
    for columns in [
        ["id", "true", "false"],
        ["id", "True", "other"],
        ["id", "a", "b"],
    ] {
        let sqlite = rusqlite::Connection::open_in_memory().unwrap();
        sqlite
            .execute(
                &format!(
                    "CREATE TABLE t(\"{}\", \"{}\", \"{}\")",
                    columns[0], columns[1], columns[2]
                ),
                [],
            )
            .unwrap();
        let (manager, table, mut connection) = shared_table_t(&columns);
        let mut subscriptions = Vec::new();
        let has_true = columns.iter().any(|name| name.eq_ignore_ascii_case("true"));
        // SQLite reads a quoted name no column has as text (a deliberate difference).
        for filter in filters
            .iter()
            .filter(|filter| has_true || !filter.contains('"'))
        {
            let sql = format!("SELECT * FROM t WHERE {filter}");
            match sqlite.prepare(&sql) {
                Ok(_) => {
                    let result = manager
                        .subscribe_sql(
                            connection.connection_id,
                            &sql,
                            SubscriptionOptions::default(),
                        )
                        .unwrap_or_else(|error| panic!("{columns:?} {filter}: {error}"));
                    subscriptions.push((result.live_query_id, *filter));
                }
                // No such column in SQLite: livecore refuses it too.
                Err(_) => assert!(manager
                    .subscribe_sql(
                        connection.connection_id,
                        &sql,
                        SubscriptionOptions::default()
                    )
                    .is_err()),
            }
        }
        for (seq, row) in rows.iter().enumerate() {
            let values = row.iter().map(|&value| Value::Int(value)).collect();
            insert_in_both(&sqlite, &manager, &table, SeqId(seq as u64 + 1), values);
        }
        let delivered = delivered_ids(&mut connection.notifications, &subscriptions);
        for (_, filter) in &subscriptions {
            let got = delivered.get(filter).cloned().unwrap_or_default();
            assert_eq!(
                got,
                sqlite_ids(&sqlite, filter),
                "{columns:?}: WHERE {filter}"
            );
        }
    }
}

/// USER, CURRENT_USER, SESSION_USER, CURRENT_CATALOG, LOCALTIME and LOCALTIMESTAMP, which
/// SQLite does not reserve,
/// name columns unquoted, in the select list and the filter, and select what SQLite
/// selects (the parser reads them as calls of the SQL standard's functions).
#[test]
fn standard_function_words_name_columns_as_in_sqlite() {
    use livecore::{SeqId, SubscriptionOptions};
    let columns = [
        "id",
        "user",
        "current_user",
        "session_user",
        "current_catalog",
        "localtime",
        "localtimestamp",
    ];
    let filters = [
        "user = 1",
        "USER > current_user",
        "current_user IS NULL",
        "session_user = 0 OR user",
        "user IN (1, 5) AND NOT current_catalog",
        "current_catalog BETWEEN user AND session_user",
        "t.user = 5",
        "localtime < localtimestamp OR LocalTime IS NULL",
    ];
    let rows: Vec<[Option<i64>; 7]> = vec![
        [
            Some(0),
            Some(1),
            Some(0),
            Some(0),
            Some(0),
            Some(1),
            Some(2),
        ],
        [Some(1), Some(5), None, Some(7), Some(6), Some(3), Some(3)],
        [Some(2), Some(0), Some(3), Some(0), Some(1), None, Some(0)],
        [Some(3), None, Some(2), Some(1), None, Some(5), Some(1)],
    ];
    let sqlite = rusqlite::Connection::open_in_memory().unwrap();
    sqlite
        .execute(
            "CREATE TABLE t(id, user, current_user, session_user, current_catalog, \
             localtime, localtimestamp)",
            [],
        )
        .unwrap();
    let (manager, table, mut connection) = shared_table_t(&columns);
    let mut subscriptions = Vec::new();
    for filter in filters {
        let sql = format!("SELECT id, user, current_user FROM t WHERE {filter}");
        sqlite
            .prepare(&sql)
            .unwrap_or_else(|error| panic!("SQLite: {sql}: {error}"));
        let result = manager
            .subscribe_sql(
                connection.connection_id,
                &sql,
                SubscriptionOptions::default(),
            )
            .unwrap_or_else(|error| panic!("{filter}: {error}"));
        assert_eq!(
            result
                .columns
                .iter()
                .map(|name| name.as_ref())
                .collect::<Vec<&str>>(),
            ["id", "user", "current_user"],
            "{filter}"
        );
        subscriptions.push((result.live_query_id, filter));
    }
    for (seq, row) in rows.iter().enumerate() {
        let values = row
            .iter()
            .map(|value| value.map_or(Value::Null, Value::Int))
            .collect();
        insert_in_both(&sqlite, &manager, &table, SeqId(seq as u64 + 1), values);
    }
    let delivered = delivered_ids(&mut connection.notifications, &subscriptions);
    let mut selected = 0;
    for (_, filter) in &subscriptions {
        let expected = sqlite_ids(&sqlite, filter);
        selected += expected.len();
        assert_eq!(
            delivered.get(filter).cloned().unwrap_or_default(),
            expected,
            "WHERE {filter}"
        );
    }
    assert!(selected > 0, "the filters select some rows");
}

/// A table that gains a column named TRUE (ALTER TABLE ADD COLUMN), and loses it again:
/// the subscriptions and the topic route made before read the word as SQLite, which
/// prepares its statements again, reads it in each schema — the column while the table has
/// one, the boolean otherwise — and none of them is closed.
#[test]
fn a_table_gaining_and_losing_a_true_column_reads_the_word_again() {
    use livecore::{
        ConnectionsManager, GroupConfig, ManagerConfig, SeqId, SubscriptionOptions, TableId,
        TableSchema, TableScope, TopicConfig, TopicPayload, TopicRouteSpec, UserId,
    };
    let filters = [
        "c1 = TRUE",
        "c1 = true OR id = 4",
        "c1 IN (TRUE, 7)",
        "NOT c1 > true",
    ];
    let table = TableId::new("default", "t");
    let manager = ConnectionsManager::new(ManagerConfig::default()).unwrap();
    let schema = |columns: &[&str]| TableSchema::new(table.clone(), TableScope::Shared, columns);
    manager.register_table(schema(&["id", "c1"])).unwrap();
    let mut connection = manager.register_connection().unwrap();
    let me = connection.connection_id;
    manager.authenticate(me, UserId::from("u"), None).unwrap();
    let subscriptions: Vec<_> = filters
        .iter()
        .map(|filter| {
            let sql = format!("SELECT * FROM t WHERE {filter}");
            let result = manager
                .subscribe_sql(me, &sql, SubscriptionOptions::default())
                .unwrap();
            (result.live_query_id, *filter)
        })
        .collect();
    manager
        .create_topic("routed", TopicConfig::default())
        .unwrap();
    manager
        .create_consumer_group("routed", "g", GroupConfig::default())
        .unwrap();
    manager
        .add_topic_route(TopicRouteSpec::new("routed", table.clone()).filter_sql(filters[0]))
        .unwrap();
    let mut seq = 0;
    for columns in [&["id", "c1"][..], &["id", "c1", "true"], &["id", "c1"]] {
        manager.register_table(schema(columns)).unwrap();
        let sqlite = rusqlite::Connection::open_in_memory().unwrap();
        let quoted: Vec<String> = columns.iter().map(|name| format!("\"{name}\"")).collect();
        sqlite
            .execute(&format!("CREATE TABLE t({})", quoted.join(", ")), [])
            .unwrap();
        for row in [[1, 1, 5], [2, 5, 5], [3, 0, 0], [4, 7, 1], [5, 2, 3]] {
            seq += 1;
            let values = row[..columns.len()]
                .iter()
                .map(|&value| Value::Int(value))
                .collect();
            insert_in_both(&sqlite, &manager, &table, SeqId(seq), values);
        }
        let expected = |filter: &str| sqlite_ids(&sqlite, filter);
        let delivered = delivered_ids(&mut connection.notifications, &subscriptions);
        for filter in filters {
            let got = delivered.get(filter).cloned().unwrap_or_default();
            assert_eq!(got, expected(filter), "{columns:?}: WHERE {filter}");
        }
        let batch = manager
            .consume(me, "routed", "g", 100, std::time::Duration::ZERO)
            .unwrap();
        let routed: Vec<i64> = batch
            .messages
            .iter()
            .map(|message| {
                let TopicPayload::Change(change) = &message.payload else {
                    panic!("a row change");
                };
                let Value::Int(id) = change.row.value(0).clone() else {
                    panic!("an integer id");
                };
                id
            })
            .collect();
        assert_eq!(routed, expected(filters[0]), "{columns:?}: route");
        manager.commit_batch(me, &batch).unwrap();
    }
}

/// A subscribe racing an ALTER that gives the table a column named TRUE reads the word
/// for the schema it compiles against, whichever goes first.
#[test]
fn a_subscribe_racing_an_alter_reads_true_for_its_schema() {
    use livecore::{
        ChangeNotification, ConnectionsManager, ManagerConfig, SeqId, SubscriptionOptions, TableId,
        TableSchema, TableScope, UserId,
    };
    let table = TableId::new("default", "t");
    for trial in 0..20 {
        let manager =
            std::sync::Arc::new(ConnectionsManager::new(ManagerConfig::default()).unwrap());
        let schema =
            |columns: &[&str]| TableSchema::new(table.clone(), TableScope::Shared, columns);
        manager.register_table(schema(&["id", "c1"])).unwrap();
        let mut connection = manager.register_connection().unwrap();
        let me = connection.connection_id;
        manager.authenticate(me, UserId::from("u"), None).unwrap();
        let subscriber = {
            let manager = manager.clone();
            std::thread::spawn(move || {
                for _ in 0..100 {
                    manager
                        .subscribe_sql(
                            me,
                            "SELECT * FROM t WHERE c1 = TRUE",
                            SubscriptionOptions::default(),
                        )
                        .unwrap();
                }
                100
            })
        };
        manager
            .register_table(schema(&["id", "c1", "true"]))
            .unwrap();
        let subscribed = subscriber.join().unwrap();
        // Read as the column: c1 = "true".
        manager
            .publish(
                SeqId(1),
                ChangeNotification::insert(
                    table.clone(),
                    Row::new(vec![Value::Int(1), Value::Int(5), Value::Int(5)]),
                ),
            )
            .unwrap();
        let mut matched = 0;
        while connection.notifications.try_recv().is_ok() {
            matched += 1;
        }
        assert_eq!(matched, subscribed, "trial {trial}");
    }
}

/// The ids (column 0) of the rows each subscription's changes carried, by its filter; every
/// notification waiting must be a change of one of `subscriptions`.
/// A manager with the shared table `default.t` of `columns`, and an authenticated
/// connection.
fn shared_table_t(
    columns: &[&str],
) -> (
    livecore::ConnectionsManager,
    livecore::TableId,
    livecore::ConnectionRegistration,
) {
    use livecore::{ConnectionsManager, ManagerConfig, TableId, TableSchema, TableScope, UserId};
    let manager = ConnectionsManager::new(ManagerConfig::default()).unwrap();
    let table = TableId::new("default", "t");
    manager
        .register_table(TableSchema::new(
            table.clone(),
            TableScope::Shared,
            columns.iter().copied(),
        ))
        .unwrap();
    let connection = manager.register_connection().unwrap();
    manager
        .authenticate(connection.connection_id, UserId::from("u"), None)
        .unwrap();
    (manager, table, connection)
}

/// Inserts one row into SQLite's `t` and publishes it to `table` as commit `seq`.
fn insert_in_both(
    sqlite: &rusqlite::Connection,
    manager: &livecore::ConnectionsManager,
    table: &livecore::TableId,
    seq: livecore::SeqId,
    values: Vec<Value>,
) {
    let marks = vec!["?"; values.len()].join(", ");
    sqlite
        .execute(
            &format!("INSERT INTO t VALUES ({marks})"),
            rusqlite::params_from_iter(values.iter().map(sqlite_value)),
        )
        .unwrap();
    manager
        .publish(
            seq,
            livecore::ChangeNotification::insert(table.clone(), Row::new(values)),
        )
        .unwrap();
}

fn delivered_ids<'a>(
    notifications: &mut livecore::NotificationReceiver,
    subscriptions: &[(livecore::LiveQueryId, &'a str)],
) -> BTreeMap<&'a str, Vec<i64>> {
    let mut delivered: BTreeMap<&str, Vec<i64>> = BTreeMap::new();
    while let Ok(notification) = notifications.try_recv() {
        let livecore::Notification::Changes(changes) = &notification else {
            panic!("{notification:?}");
        };
        let filter = subscriptions
            .iter()
            .find(|(id, _)| *id == notification.live_query_id())
            .unwrap()
            .1;
        for change in changes.changes() {
            let Value::Int(id) = change.row().value(0).clone() else {
                panic!("an integer id");
            };
            delivered.entry(filter).or_default().push(id);
        }
    }
    delivered
}

/// The ids of the rows of SQLite's `t` that `filter` selects, in order.
fn sqlite_ids(sqlite: &rusqlite::Connection, filter: &str) -> Vec<i64> {
    let mut statement = sqlite
        .prepare(&format!("SELECT id FROM t WHERE {filter} ORDER BY id"))
        .unwrap();
    statement
        .query_map([], |row| row.get(0))
        .unwrap()
        .map(Result::unwrap)
        .collect()
}
