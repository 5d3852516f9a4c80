//! The subscription SQL parser: every supported construct, every refusal with its message
//! and position, and the limits against hostile filters.

use livecore::{parse_subscription_sql, ParsedQuery, MAX_SUBSCRIPTION_SQL_LEN};
use livecore::{CompareOp, Expr, FilterLimits, LiveError, Projection, Value};

fn parse(sql: &str) -> Result<ParsedQuery, LiveError> {
    parse_subscription_sql(sql, &FilterLimits::default())
}

fn filter(where_clause: &str) -> Expr {
    parse(&format!("SELECT * FROM t WHERE {where_clause}"))
        .unwrap_or_else(|error| panic!("{where_clause}: {error}"))
        .filter
        .expect("a filter")
}

fn col(name: &str) -> Expr {
    Expr::col(name)
}

fn lit(value: impl Into<Value>) -> Expr {
    Expr::lit(value)
}

/// Asserts a refusal: `LiveError::Sql` whose message contains `needle`, at (line, column).
#[track_caller]
fn refused(sql: &str, needle: &str, line: u64, column: u64) {
    match parse(sql) {
        Err(LiveError::Sql {
            message,
            line: got_line,
            column: got_column,
        }) => {
            assert!(
                message.contains(needle),
                "{sql}: message {message:?} does not name {needle:?}"
            );
            assert_eq!((got_line, got_column), (line, column), "{sql}: {message}");
            if line == 0 {
                assert!(message.contains("position unknown"), "{message}");
            }
        }
        other => panic!("{sql}: expected a refusal naming {needle:?}, got {other:?}"),
    }
}

#[test]
fn table_namespace_and_projection() {
    let parsed = parse("SELECT * FROM messages").unwrap();
    assert_eq!(parsed.namespace, None);
    assert_eq!(parsed.table, "messages");
    assert_eq!(parsed.filter, None);
    assert_eq!(parsed.projection, Projection::All);
    assert_eq!(
        parsed.clone().into_spec("app").table_id.to_string(),
        "app.messages"
    );

    let parsed = parse("select id, \"Body\" from chat.messages;").unwrap();
    assert_eq!(parsed.namespace.as_deref(), Some("chat"));
    assert_eq!(parsed.projection, Projection::columns(["id", "Body"]));

    let parsed = parse("SELECT messages.id, chat.messages.body FROM chat.messages").unwrap();
    assert_eq!(parsed.projection, Projection::columns(["id", "body"]));
    assert_eq!(
        parse("SELECT messages.* FROM chat.messages")
            .unwrap()
            .projection,
        Projection::All
    );
    assert_eq!(
        parse("SELECT chat.messages.* FROM chat.messages")
            .unwrap()
            .projection,
        Projection::All
    );
}

#[test]
fn comparisons_between_columns_and_literals() {
    for (sql, op) in [
        ("=", CompareOp::Eq),
        ("!=", CompareOp::NotEq),
        ("<>", CompareOp::NotEq),
        ("<", CompareOp::Lt),
        ("<=", CompareOp::LtEq),
        (">", CompareOp::Gt),
        (">=", CompareOp::GtEq),
    ] {
        assert_eq!(filter(&format!("a {sql} 1")), col("a").compare(op, lit(1)));
        assert_eq!(filter(&format!("1 {sql} a")), lit(1).compare(op, col("a")));
        assert_eq!(
            filter(&format!("a {sql} b")),
            col("a").compare(op, col("b"))
        );
    }
    assert_eq!(filter("t.a = \"B\""), col("a").eq(col("B")));
    // Quoted, such a name is a column like any other.
    assert_eq!(filter("\"@x\" = 1"), col("@x").eq(lit(1)));
}

#[test]
fn logic_and_parentheses() {
    let (a, b, c) = (
        col("a").eq(lit(1)),
        col("b").eq(lit(2)),
        col("c").eq(lit(3)),
    );
    // AND binds tighter than OR; chains flatten.
    assert_eq!(
        filter("a = 1 OR b = 2 AND c = 3"),
        Expr::Or(vec![a.clone(), Expr::And(vec![b.clone(), c.clone()])])
    );
    assert_eq!(
        filter("(a = 1 OR b = 2) AND c = 3"),
        Expr::And(vec![Expr::Or(vec![a.clone(), b.clone()]), c.clone()])
    );
    assert_eq!(
        filter("a = 1 AND b = 2 AND c = 3"),
        Expr::And(vec![a.clone(), b.clone(), c.clone()])
    );
    assert_eq!(filter("NOT a = 1"), a.clone().not());
    assert_eq!(filter("NOT (a = 1 OR b = 2)"), Expr::Or(vec![a, b]).not());
    // Bare values are conditions.
    assert_eq!(filter("flag"), col("flag"));
    assert_eq!(
        filter("NOT flag AND 1"),
        Expr::And(vec![col("flag").not(), lit(1)])
    );
    assert_eq!(filter("((((flag))))"), col("flag"));
}

#[test]
fn in_lists() {
    assert_eq!(
        filter("a IN (1, 'x', NULL)"),
        Expr::InList {
            expr: Box::new(col("a")),
            list: vec![lit(1), lit("x"), lit(Value::Null)],
            negated: false,
        }
    );
    assert_eq!(
        filter("a NOT IN (2)"),
        Expr::InList {
            expr: Box::new(col("a")),
            list: vec![lit(2)],
            negated: true,
        }
    );
    // Columns in the list: `a IN (1, b)` is `a IN (1) OR a = b`.
    assert_eq!(
        filter("a IN (1, b)"),
        Expr::Or(vec![col("a").in_list([1]), col("a").eq(col("b"))])
    );
    assert_eq!(
        filter("a NOT IN (b, c)"),
        Expr::Or(vec![col("a").eq(col("b")), col("a").eq(col("c"))]).not()
    );
}

#[test]
fn null_tests_between_like_ilike() {
    assert_eq!(filter("a IS NULL"), col("a").is_null());
    assert_eq!(filter("a IS NOT NULL"), col("a").is_not_null());
    assert_eq!(
        filter("a BETWEEN 1 AND b"),
        col("a").between(lit(1), col("b"))
    );
    assert_eq!(
        filter("a NOT BETWEEN -1 AND 2.5"),
        Expr::Between {
            expr: Box::new(col("a")),
            low: Box::new(lit(-1)),
            high: Box::new(lit(2.5)),
            negated: true,
        }
    );
    assert_eq!(filter("a LIKE 'h%_'"), col("a").like("h%_"));
    let like =
        |pattern: &str, escape: Option<char>, case_insensitive: bool, negated: bool| Expr::Like {
            expr: Box::new(col("a")),
            pattern: Box::new(lit(pattern)),
            escape,
            case_insensitive,
            negated,
        };
    assert_eq!(
        filter(r"a NOT LIKE '50\%' ESCAPE '\'"),
        like(r"50\%", Some('\\'), false, true)
    );
    assert_eq!(filter("a ILIKE 'H%'"), like("H%", None, true, false));
    assert_eq!(
        filter("a NOT ILIKE 'x!_' ESCAPE '!'"),
        like("x!_", Some('!'), true, true)
    );
    // A numeric pattern is read as text, as SQL does.
    assert!(matches!(filter("a LIKE 12"), Expr::Like { .. }));
    // ESCAPE NULL makes the whole LIKE NULL.
    assert_eq!(filter("a LIKE 'x' ESCAPE NULL"), lit(Value::Null));
}

#[test]
fn literals_of_every_type() {
    let value = |sql: &str| match filter(&format!("a = {sql}")) {
        Expr::Compare { right, .. } => match *right {
            Expr::Literal(value) => value,
            other => panic!("{other:?}"),
        },
        other => panic!("{other:?}"),
    };
    assert_eq!(value("42"), Value::Int(42));
    assert_eq!(value("-42"), Value::Int(-42));
    assert_eq!(value("+42"), Value::Int(42));
    assert_eq!(value("-(-42)"), Value::Int(42));
    assert_eq!(value("9223372036854775807"), Value::Int(i64::MAX));
    assert_eq!(value("-9223372036854775808"), Value::Int(i64::MIN));
    // Beyond 64 bits an integer literal is a float, as in SQLite.
    assert_eq!(
        value("9223372036854775808"),
        Value::Float(9.223_372_036_854_776e18)
    );
    assert_eq!(value("7.0"), Value::Float(7.0));
    assert_eq!(value(".5"), Value::Float(0.5));
    assert_eq!(value("1e3"), Value::Float(1000.0));
    assert_eq!(value("-2.5E-3"), Value::Float(-0.0025));
    assert_eq!(value("1e999"), Value::Float(f64::INFINITY));
    assert_eq!(value("'it''s'"), Value::text("it's"));
    assert_eq!(value("''"), Value::text(""));
    assert_eq!(value("'é€'"), Value::text("é€"));
    assert_eq!(value("X'00fF'"), Value::bytes(&[0, 255]));
    assert_eq!(value("x''"), Value::bytes(&[]));
    assert_eq!(value("TRUE"), Value::Bool(true));
    assert_eq!(value("false"), Value::Bool(false));
    assert_eq!(value("NULL"), Value::Null);
    assert_eq!(value("-NULL"), Value::Null);
    assert_eq!(value("-TRUE"), Value::Int(-1));
}

#[test]
fn unsupported_clauses_are_named_with_their_position() {
    refused("SELECT * FROM a JOIN b ON a.x = b.x", "JOIN", 1, 17);
    refused("SELECT * FROM a LEFT JOIN b ON a.x = b.x", "JOIN", 1, 22);
    refused("SELECT * FROM a, b", "several tables", 1, 18);
    refused("SELECT * FROM (SELECT * FROM t)", "subquery in FROM", 1, 16);
    refused("SELECT * FROM t AS x", "alias", 1, 20);
    refused("SELECT * FROM t GROUP BY a", "GROUP BY", 1, 17);
    refused("SELECT * FROM t WHERE a = 1 ORDER BY a", "ORDER BY", 1, 29);
    refused("SELECT * FROM t LIMIT 5", "LIMIT", 1, 17);
    // LIMIT ALL limits nothing, yet SQLite refuses it in a subscription's place as well.
    refused("SELECT * FROM t WHERE a = 2 LIMIT ALL", "LIMIT", 1, 29);
    refused("SELECT a FROM t GROUP BY a HAVING a > 1", "GROUP BY", 1, 17);
    refused("SELECT DISTINCT a FROM t", "DISTINCT", 1, 8);
    // SELECT ALL is the default spelled out, which SQLite accepts.
    assert_eq!(
        parse("SELECT ALL * FROM t WHERE a = 2"),
        parse("SELECT * FROM t WHERE a = 2")
    );
    refused("WITH x AS (SELECT 1) SELECT * FROM x", "WITH", 1, 1);
    refused("SELECT * FROM t UNION SELECT * FROM u", "UNION", 1, 17);
    refused(
        "SELECT * FROM t; SELECT * FROM u",
        "several statements",
        1,
        18,
    );
    refused("INSERT INTO t VALUES (1)", "only SELECT", 1, 1);
    refused("DELETE FROM t", "not DELETE", 1, 1);
    refused("SELECT 1", "FROM", 1, 1);
    refused(
        "SELECT *\nFROM t\nWHERE a = 1\nORDER BY a",
        "ORDER BY",
        4,
        1,
    );
    refused("", "empty", 0, 0);
}

#[test]
fn unsupported_expressions_are_named_with_their_position() {
    refused("SELECT * FROM t WHERE lower(a) = 'x'", "lower()", 1, 23);
    refused("SELECT * FROM t WHERE coalesce(a, 1)", "coalesce()", 1, 23);
    refused(
        "SELECT * FROM t WHERE a IN (SELECT x FROM u)",
        "IN (subquery)",
        1,
        23,
    );
    refused("SELECT * FROM t WHERE a = (SELECT 1)", "subqueries", 1, 28);
    refused(
        "SELECT * FROM t WHERE EXISTS (SELECT 1)",
        "subqueries",
        1,
        23,
    );
    refused("SELECT * FROM t WHERE a + 1 = 2", "operator +", 1, 23);
    refused("SELECT * FROM t WHERE a || 'x' = 'y'", "operator ||", 1, 23);
    refused("SELECT * FROM t WHERE -a = 1", "unary operator -", 1, 23);
    refused(
        "SELECT * FROM t WHERE CASE WHEN a THEN 1 END",
        "CASE",
        1,
        23,
    );
    refused("SELECT * FROM t WHERE CAST(a AS INT) = 1", "CAST", 1, 23);
    refused(
        "SELECT * FROM t WHERE (a = 1) IS TRUE",
        "IS TRUE takes a column",
        1,
        24,
    );
    refused(
        "SELECT * FROM t WHERE a IS DISTINCT FROM (b = 1)",
        "IS takes a column",
        1,
        43,
    );
    // After IS, UNKNOWN is a column's name, as in SQLite.
    let unknown = parse("SELECT * FROM t WHERE a IS UNKNOWN").unwrap();
    assert!(format!("{:?}", unknown.filter).contains("Column(\"UNKNOWN\")"));
    refused(
        "SELECT * FROM t WHERE (a = 1) = (b = 2)",
        "not a condition",
        1,
        24,
    );
    refused(
        "SELECT * FROM t WHERE a LIKE b",
        "pattern must be a literal",
        1,
        30,
    );
    refused(
        "SELECT * FROM t WHERE a LIKE 'x' ESCAPE '!!'",
        "single character",
        1,
        41,
    );
    // A pattern ending with its ESCAPE character (text, or bytes, a number or a boolean,
    // matched as their text) is read: as in SQLite, it matches nothing
    // (`sql_differential.rs` holds the verdicts to SQLite's).
    for (pattern, escape) in [
        ("'x!'", '!'),
        ("X'5C'", '\\'),
        ("92", '2'),
        ("1e20", '0'),
        ("TRUE", '1'),
    ] {
        let sql = format!("SELECT * FROM t WHERE a LIKE {pattern} ESCAPE '{escape}'");
        assert!(
            parse_subscription_sql(&sql, &FilterLimits::default()).is_ok(),
            "{sql}"
        );
    }
    refused("SELECT * FROM t WHERE a = $1", "placeholders", 1, 27);
    refused("SELECT * FROM t WHERE a = ?", "placeholders", 1, 27);
    // SQLite reads `@x` and `#x` as parameters, sqlparser as columns: refused bare.
    refused("SELECT * FROM t WHERE a = @x", "placeholders (@x)", 1, 27);
    refused("SELECT * FROM t WHERE #x = 1", "placeholders (#x)", 1, 23);
    refused(
        "SELECT * FROM t WHERE a@b = 1",
        "reads @b as a parameter",
        1,
        24,
    );
    refused("SELECT * FROM t WHERE u.a = 1", "'u' does not name", 1, 23);
    refused("SELECT * FROM t WHERE a = X'ABC'", "even number", 1, 27);
    refused("SELECT * FROM t WHERE a = -'x'", "numbers only", 1, 27);
    refused("SELECT a AS b FROM t", "aliases", 1, 13);
    refused("SELECT a + 1 FROM t", "select list", 1, 8);
    refused("SELECT count(*) FROM t", "select list", 1, 8);
    refused("SELECT *, a FROM t", "combined", 1, 8);
    refused("SELECT u.* FROM t", "does not name", 1, 8);
}

#[test]
fn syntax_errors_never_become_no_filter() {
    for sql in [
        "SELECT * FROM t WHERE",
        "SELECT * FROM t WHERE a = ",
        "SELECT * FROM t WHERE a = 1 garbage",
        "SELECT * FROM t WHERE (a = 1",
        "SELECT * FROM t WHERE 'unterminated",
        "SELECT * FROM",
        "SELEC * FROM t",
    ] {
        match parse(sql) {
            Err(LiveError::Sql { message, line, .. }) => {
                assert!(!message.is_empty());
                assert!(line <= 1, "{sql}: {message}");
            }
            other => panic!("{sql}: expected a syntax error, got {other:?}"),
        }
    }
    match parse("SELECT * FROM t WHERE a = 1 garbage") {
        Err(LiveError::Sql {
            message,
            line,
            column,
        }) => {
            assert!(message.starts_with("syntax error"), "{message}");
            assert_eq!((line, column), (1, 29), "{message}");
        }
        other => panic!("{other:?}"),
    }
}

#[test]
fn limits_are_typed_errors() {
    let limits = FilterLimits::default();
    // Depth: 40 nested NOTs.
    let deep = format!("SELECT * FROM t WHERE {}a", "NOT ".repeat(40));
    assert_eq!(
        parse(&deep),
        Err(LiveError::FilterTooDeep {
            depth: limits.max_depth + 1,
            max: limits.max_depth
        })
    );
    // However long the run (the parser itself would call a long one a syntax error).
    for nots in [120, 900] {
        let deeper = format!("SELECT * FROM t WHERE {}a = 1", "NOT (".repeat(nots));
        let deeper = format!("{deeper}{}", ")".repeat(nots));
        assert_eq!(
            parse(&deeper),
            Err(LiveError::FilterTooDeep {
                depth: limits.max_depth + 1,
                max: limits.max_depth
            }),
            "{nots} NOTs"
        );
    }
    let run = format!("SELECT * FROM t WHERE {}a", "NOT ".repeat(120));
    assert!(matches!(parse(&run), Err(LiveError::FilterTooDeep { .. })));
    // Redundant parentheses add no depth, but the parser reads only so many: past that,
    // the same error whatever they enclose (inside a NOT the parser itself would report a
    // syntax error), placed at the first `(` too many.
    // Parentheses after operators are levels of the filter: past the depth limit, however
    // many (the parser runs out of depth at about 53 and would call it a parser limit),
    // the filter's depth limit is the error.
    for (run, n) in [
        ("a = 1 AND (", 33),
        ("a = 1 AND (", 52),
        ("a = 1 AND (", 54),
        ("NOT a = 1 OR (", 55),
        ("a = 1 OR (", 80),
        ("a = 1 AND (", 300),
    ] {
        let sql = format!(
            "SELECT * FROM t WHERE {}NOT a = 1{}",
            run.repeat(n),
            ")".repeat(n)
        );
        assert_eq!(
            parse(&sql),
            Err(LiveError::FilterTooDeep {
                depth: limits.max_depth + 1,
                max: limits.max_depth
            }),
            "{run} x {n}"
        );
    }
    for shape in ["a = 1", "NOT a", "NOT a = 1", "a IN (1)"] {
        let nested = |n: usize| {
            format!(
                "SELECT * FROM t WHERE {}{shape}{}",
                "(".repeat(n),
                ")".repeat(n)
            )
        };
        assert!(parse(&nested(100)).is_ok(), "{shape}");
        for n in [110, 2000] {
            match parse(&nested(n)) {
                Err(LiveError::Sql {
                    message,
                    line: 1,
                    column,
                }) => {
                    assert!(
                        message.contains("nests too deeply"),
                        "{shape} {n}: {message}"
                    );
                    assert!((110..=128).contains(&column), "{shape} {n}: {column}");
                }
                other => panic!("{shape} {n}: {other:?}"),
            }
        }
    }
    // Exactly at the limit is fine: 31 NOTs over a column is 32 levels.
    let at_limit = format!("SELECT * FROM t WHERE {}a", "NOT ".repeat(31));
    assert_eq!(parse(&at_limit).unwrap().filter.unwrap().depth(), 32);
    // Nodes.
    let wide = (0..600)
        .map(|index| format!("a = {index}"))
        .collect::<Vec<_>>()
        .join(" OR ");
    assert!(matches!(
        parse(&format!("SELECT * FROM t WHERE {wide}")),
        Err(LiveError::FilterTooLarge { max: 1024, .. })
    ));
    // IN-list length: a list at the default limit fits the default node limit with room
    // for more conditions (each item is a node); one item more is refused by its length.
    let list = |items: usize| {
        (0..items)
            .map(|i| format!("'{i:036}'"))
            .collect::<Vec<_>>()
            .join(", ")
    };
    let max_in_list = FilterLimits::default().max_in_list;
    assert!(parse(&format!(
        "SELECT * FROM t WHERE a IN ({}) AND b = 1 AND c IS NOT NULL",
        list(max_in_list)
    ))
    .is_ok());
    assert_eq!(
        parse(&format!(
            "SELECT * FROM t WHERE a IN ({})",
            list(max_in_list + 1)
        )),
        Err(LiveError::InListTooLong {
            len: max_in_list + 1,
            max: max_in_list
        })
    );
    // LIKE pattern length, in bytes.
    let pattern = "é".repeat(513);
    assert_eq!(
        parse(&format!("SELECT * FROM t WHERE a LIKE '{pattern}'")),
        Err(LiveError::LikePatternTooLong {
            len: 1026,
            max: 1024
        })
    );
    // Tighter limits apply as configured.
    let tight = FilterLimits {
        max_depth: 3,
        max_nodes: 5,
        max_in_list: 2,
        max_like_pattern: 3,
    };
    let parse_tight = |sql: &str| parse_subscription_sql(sql, &tight);
    assert!(parse_tight("SELECT * FROM t WHERE a = 1 AND b = 2").is_err());
    assert!(parse_tight("SELECT * FROM t WHERE NOT a = 1").is_ok());
    assert!(matches!(
        parse_tight("SELECT * FROM t WHERE NOT NOT a = 1"),
        Err(LiveError::FilterTooDeep { depth: 4, max: 3 })
    ));
    assert!(matches!(
        parse_tight("SELECT * FROM t WHERE a IN (1, 2, 3)"),
        Err(LiveError::InListTooLong { len: 3, max: 2 })
    ));
    assert!(matches!(
        parse_tight("SELECT * FROM t WHERE a LIKE 'abcd'"),
        Err(LiveError::LikePatternTooLong { len: 4, max: 3 })
    ));
}

#[test]
fn hostile_inputs_fail_fast_without_overflowing_the_stack() {
    // Ten thousand nested parentheses: the parser's recursion limit refuses them.
    let parens = format!(
        "SELECT * FROM t WHERE {}a = 1{}",
        "(".repeat(10_000),
        ")".repeat(10_000)
    );
    match parse(&parens) {
        Err(LiveError::Sql { message, .. }) => assert!(message.contains("nests too deeply")),
        other => panic!("{other:?}"),
    }
    // Five thousand ORed comparisons (within the text length limit): refused by counting
    // operators before parsing.
    let chain = (0..5_000).map(|_| "a = 1").collect::<Vec<_>>().join(" OR ");
    assert!(matches!(
        parse(&format!("SELECT * FROM t WHERE {chain}")),
        Err(LiveError::FilterTooLarge { .. })
    ));
    // A long arithmetic chain (never a valid filter) is bounded the same way.
    let sum = format!(
        "SELECT * FROM t WHERE a = {}",
        vec!["1"; 10_000].join(" + ")
    );
    assert!(matches!(parse(&sum), Err(LiveError::FilterTooLarge { .. })));
    // Deep NOT chains stop at the depth limit.
    let nots = format!("SELECT * FROM t WHERE {}a", "NOT ".repeat(5_000));
    assert!(parse(&nots).is_err());
    // Oversized text is refused before tokenizing.
    let huge = format!(
        "SELECT * FROM t WHERE a = '{}'",
        "x".repeat(MAX_SUBSCRIPTION_SQL_LEN)
    );
    match parse(&huge) {
        Err(LiveError::OutOfBounds { value, max, .. }) => {
            assert_eq!(value, huge.len() as u64);
            assert_eq!(max, MAX_SUBSCRIPTION_SQL_LEN as u64);
        }
        other => panic!("{other:?}"),
    }
}

/// The value and SQLite storage class of `expr` by the bundled SQLite, or its refusal.
fn sqlite_literal(db: &rusqlite::Connection, expr: &str) -> Result<Value, String> {
    use rusqlite::types::Value as V;
    db.query_row(&format!("SELECT {expr}"), [], |row| row.get::<_, V>(0))
        .map(|value| match value {
            V::Null => Value::Null,
            V::Integer(int) => Value::Int(int),
            V::Real(float) => Value::Float(float),
            V::Text(text) => Value::text(&text),
            V::Blob(bytes) => Value::bytes(&bytes),
        })
        .map_err(|error| error.to_string())
}

/// The literal livecore reads for `expr` (as the right side of `a = expr`), or its refusal.
fn livecore_literal(expr: &str) -> Result<Value, LiveError> {
    let parsed = parse(&format!("SELECT * FROM t WHERE a = {expr}"))?;
    match parsed.filter {
        Some(Expr::Compare { right, .. }) => match *right {
            Expr::Literal(value) => Ok(value),
            other => panic!("{expr}: not a literal: {other:?}"),
        },
        other => panic!("{expr}: {other:?}"),
    }
}

/// Same value and same type; floats bit for bit (so `-0.0` is not `0.0`).
fn same_literal(a: &Value, b: &Value) -> bool {
    match (a, b) {
        (Value::Float(x), Value::Float(y)) => x.to_bits() == y.to_bits(),
        _ => a == b,
    }
}

#[test]
fn numeric_spellings_agree_with_sqlite() {
    let db = rusqlite::Connection::open_in_memory().unwrap();
    let spellings = [
        // Hex integers: both prefixes, signs, parentheses, two's complement, leading zeros.
        "0x10",
        "0X10",
        "0xff",
        "0XaB",
        "0x0",
        "-0x10",
        "+0x10",
        "-0X10",
        "- 0x10",
        "-(0x10)",
        "+-0x10",
        "-+0x10",
        "- -0x10",
        "-(-(0x10))",
        "0x1e5",
        "0x7FFFFFFFFFFFFFFF",
        "-0x7FFFFFFFFFFFFFFF",
        "0x8000000000000000",
        "0xFFFFFFFFFFFFFFFF",
        "-0xFFFFFFFFFFFFFFFF",
        "0x00000000000000001",
        "0x0FFFFFFFFFFFFFFFF",
        "0x0000000000000010",
        // Refused by both: too big, minus on the smallest integer's hex, no digits, glued.
        "0x10000000000000000",
        "0xFFFFFFFFFFFFFFFFF",
        "-0x8000000000000000",
        "- 0x8000000000000000",
        "-(0x8000000000000000)",
        "-(+0x8000000000000000)",
        "- -0x8000000000000000",
        "0x",
        "0X",
        "0xg",
        "0x10z",
        "0X10z",
        "0x_10",
        "00x1",
        "0b1",
        // Decimal spellings.
        "7",
        "+7",
        "007",
        "-0",
        "-0.0",
        "1E3",
        "1e3",
        "1e-2",
        "1E+2",
        ".5",
        "-.5",
        "5.",
        "-5.",
        "1.e5",
        ".5e1",
        "1.5",
        "9223372036854775807",
        "9223372036854775808",
        "-9223372036854775808",
        "- 9223372036854775808",
        "-(9223372036854775808)",
        "-(+9223372036854775808)",
        "-+9223372036854775808",
        "+-9223372036854775808",
        "- -9223372036854775808",
        "-(-9223372036854775808)",
        "1e999",
        "-1e999",
        "99999999999999999999",
        // Refused by both: glued letters, a dangling exponent, SQLite's size suffix.
        "1e",
        "1E",
        "1.e",
        "1.5e",
        "5L",
        "2a",
        "1x'10'",
        "1$",
        // Digit separators: SQLite takes them, livecore refuses them (see below).
    ];
    for spelling in spellings {
        let expected = sqlite_literal(&db, spelling);
        let got = livecore_literal(spelling);
        match (&expected, &got) {
            (Ok(expected), Ok(got)) => assert!(
                same_literal(expected, got),
                "{spelling}: SQLite reads {expected:?}, livecore {got:?}"
            ),
            (Err(_), Err(LiveError::Sql { .. })) => {}
            _ => panic!("{spelling}: SQLite gives {expected:?}, livecore {got:?}"),
        }
    }
    // The spellings of the issue, by value and type.
    assert_eq!(livecore_literal("0x10"), Ok(Value::Int(16)));
    assert_eq!(livecore_literal("0X10"), Ok(Value::Int(16)));
    assert_eq!(livecore_literal("-0x10"), Ok(Value::Int(-16)));
    assert_eq!(livecore_literal("0xFFFFFFFFFFFFFFFF"), Ok(Value::Int(-1)));
    assert_eq!(livecore_literal("1E3"), Ok(Value::Float(1000.0)));
    assert_eq!(livecore_literal("1e-2"), Ok(Value::Float(0.01)));
    assert_eq!(livecore_literal(".5"), Ok(Value::Float(0.5)));
    assert_eq!(livecore_literal("5."), Ok(Value::Float(5.0)));
    assert_eq!(livecore_literal("+7"), Ok(Value::Int(7)));
    // X'..' stays a bytes literal.
    assert_eq!(livecore_literal("X'10'"), Ok(Value::bytes(&[0x10])));
    assert_eq!(livecore_literal("x''"), Ok(Value::bytes(&[])));
    // Too-big hex literals are named as such, at the literal.
    match livecore_literal("0x10000000000000000") {
        Err(LiveError::Sql {
            message,
            line,
            column,
        }) => {
            assert!(message.contains("hex literal too big"), "{message}");
            assert_eq!((line, column), (1, 27));
        }
        other => panic!("{other:?}"),
    }
    match livecore_literal("-0x8000000000000000") {
        Err(LiveError::Sql { message, .. }) => {
            assert!(message.contains("hex literal too big"), "{message}")
        }
        other => panic!("{other:?}"),
    }
    // SQLite takes `_` between digits; livecore refuses it with a clear message rather than
    // read another number (a deliberate difference).
    for spelling in ["1_000", "1.5_0", "1e1_0", "0x1_0", "0xF_F"] {
        assert!(sqlite_literal(&db, spelling).is_ok(), "{spelling}");
        refused(
            &format!("SELECT * FROM t WHERE a = {spelling}"),
            "digit separators (_) are not supported",
            1,
            27,
        );
    }
}

#[test]
fn numbers_glued_to_words_are_refused_as_sqlite_refuses_them() {
    let db = rusqlite::Connection::open_in_memory().unwrap();
    db.execute_batch("CREATE TABLE t(a, e);").unwrap();
    let cases = [
        ("a = 2OR e = 'q'", "'2OR'", 27),
        ("a = 1AND e = 'q'", "'1AND'", 27),
        ("a = 0x10z", "'0x10z'", 27),
        ("a = 0X10OR e = 1", "'0X10OR'", 27),
        ("a = 1.5e OR e = 1", "'1.5e'", 27),
        ("a IN (1, 2OR)", "'2OR'", 32),
        ("a = 5L", "'5L'", 27),
        ("a = 1is NULL", "'1is'", 27),
        ("2OR a", "'2OR'", 23),
        ("a = 1é", "'1é'", 27),
        ("a = 2a_b", "'2a_b'", 27),
    ];
    for (filter, needle, column) in cases {
        let sql = format!("SELECT * FROM t WHERE {filter}");
        assert!(db.prepare(&sql).is_err(), "SQLite takes {sql}");
        refused(&sql, needle, 1, column);
        refused(
            &sql,
            "put a space between a number and the word after it",
            1,
            column,
        );
    }
    // Separated, or next to punctuation, a number is fine in both.
    for filter in [
        "a = 2 OR e = 'q'",
        "(a = 2)OR e = 'q'",
        "a IN(1,2)",
        "a=0x10",
        "a = 0x10 OR e = 1",
        "a = 'x'OR e = 1",
        "a = -1",
    ] {
        let sql = format!("SELECT * FROM t WHERE {filter}");
        assert!(db.prepare(&sql).is_ok(), "SQLite refuses {sql}");
        assert!(parse(&sql).is_ok(), "livecore refuses {sql}");
    }
}

#[test]
fn oversized_text_is_refused_by_its_length_before_tokenizing() {
    // The limit is 64 KiB; one byte more is refused with the typed length error...
    assert_eq!(MAX_SUBSCRIPTION_SQL_LEN, 64 * 1024);
    let prefix = "SELECT * FROM t WHERE a = '";
    let fits = format!(
        "{prefix}{}'",
        "x".repeat(MAX_SUBSCRIPTION_SQL_LEN - prefix.len() - 1)
    );
    assert_eq!(fits.len(), MAX_SUBSCRIPTION_SQL_LEN);
    assert!(parse(&fits).is_ok());
    let over = format!("{fits} ");
    assert_eq!(
        parse(&over),
        Err(LiveError::OutOfBounds {
            what: "subscription SQL length (bytes)",
            value: MAX_SUBSCRIPTION_SQL_LEN as u64 + 1,
            min: 0,
            max: MAX_SUBSCRIPTION_SQL_LEN as u64,
        })
    );
    // ...even when the text would not tokenize (an unterminated string): the length is
    // checked first, so nothing of it was read.
    let unterminated = format!("{prefix}{}", "x".repeat(MAX_SUBSCRIPTION_SQL_LEN));
    assert!(matches!(
        parse(&unterminated),
        Err(LiveError::OutOfBounds { .. })
    ));
    assert!(matches!(
        parse(&unterminated[..MAX_SUBSCRIPTION_SQL_LEN]),
        Err(LiveError::Sql { .. })
    ));
}

#[test]
fn long_in_lists_are_refused_before_parsing() {
    let limits = FilterLimits {
        max_in_list: 3,
        ..FilterLimits::default()
    };
    let parse_with = |sql: &str| parse_subscription_sql(sql, &limits);
    assert!(parse_with("SELECT * FROM t WHERE a IN (1, 2, 3)").is_ok());
    assert_eq!(
        parse_with("SELECT * FROM t WHERE a IN (1, 2, 3, 4, 5)"),
        Err(LiveError::InListTooLong { len: 5, max: 3 })
    );
    // Nested parentheses in the list and after it are counted at their own depth.
    assert_eq!(
        parse_with("SELECT * FROM t WHERE a NOT IN ((1), (2), 3, (4)) AND b IN (1, 2)"),
        Err(LiveError::InListTooLong { len: 4, max: 3 })
    );
    assert_eq!(
        parse_with("SELECT * FROM t WHERE b IN (1, 2) OR a IN (1, (2), 3, 4)"),
        Err(LiveError::InListTooLong { len: 4, max: 3 })
    );
    // Parentheses that do not follow IN hold no list.
    assert!(parse_with("SELECT a, b, c, d FROM t WHERE (a = 1) AND (b = 2)").is_ok());
    // The list is refused from the tokens: a syntax error after it, which the parser would
    // report first, is never reached.
    assert_eq!(
        parse_with("SELECT * FROM t WHERE a IN (1, 2, 3, 4) AND )))"),
        Err(LiveError::InListTooLong { len: 4, max: 3 })
    );
    assert!(matches!(
        parse_with("SELECT * FROM t WHERE a IN (1, 2, 3) AND )))"),
        Err(LiveError::Sql { .. })
    ));
    // The issue's case: a list of 100k items under the default limits, inside the length
    // limit only because the limit was the old 1 MiB... now refused by its length; a list
    // that fits the length but not the IN limit is refused by the IN limit, unparsed.
    let list = vec!["1"; 20_000].join(",");
    let sql = format!("SELECT * FROM t WHERE a IN ({list}) AND )");
    assert!(sql.len() <= MAX_SUBSCRIPTION_SQL_LEN);
    assert_eq!(
        parse(&sql),
        Err(LiveError::InListTooLong {
            len: 20_000,
            max: FilterLimits::default().max_in_list
        })
    );
    let huge_list = vec!["1"; 100_000].join(", ");
    assert!(matches!(
        parse(&format!("SELECT * FROM t WHERE a IN ({huge_list})")),
        Err(LiveError::OutOfBounds { .. })
    ));
    // A subquery after IN is not a list: it is refused for what it is.
    let subquery = parse_with("SELECT * FROM t WHERE a IN (SELECT a, b, c, d FROM u)");
    assert!(
        matches!(&subquery, Err(LiveError::Sql { message, .. }) if message.contains("subquer")),
        "{subquery:?}"
    );
}

/// SQLite's postfix ISNULL and NOTNULL count against the node limit before the text is
/// parsed, like every other operator: a long chain of them is refused, not parsed into a
/// tree as deep as the chain.
#[test]
fn chains_of_postfix_null_tests_are_refused_before_parsing() {
    for word in [" ISNULL", " NOTNULL", " isnull"] {
        let sql = format!("SELECT * FROM t WHERE a{}", word.repeat(5_000));
        assert!(
            matches!(parse(&sql), Err(LiveError::FilterTooLarge { .. })),
            "{word}: {:?}",
            parse(&sql)
        );
    }
}

#[test]
fn syntax_errors_are_short_sentences_with_a_position() {
    // The end of the input has a position (just past the text), and the parser's grammar
    // lists ("[NOT] NULL | TRUE | ...") come out as a few plain alternatives.
    for (sql, needle, line, column) in [
        ("SELECT * FROM t WHERE a IS", "the query ends", 1, 27),
        (
            "SELECT * FROM t WHERE a IS NOT DISTINCT 5",
            "after IS, found DISTINCT",
            1,
            32,
        ),
        ("SELECT * FROM t WHERE", "the query ends", 1, 22),
        ("SELECT * FROM t\nWHERE a =", "the query ends", 2, 10),
        (
            "SELECT * FROM t WHERE a IS NOT NULL NULL",
            "found NULL",
            1,
            37,
        ),
    ] {
        match parse(sql) {
            Err(LiveError::Sql {
                message,
                line: got_line,
                column: got_column,
            }) => {
                assert!(message.starts_with("syntax error"), "{sql}: {message}");
                assert!(message.contains(needle), "{sql}: {message}");
                assert!(!message.contains('|'), "{sql}: {message}");
                assert!(!message.contains('['), "{sql}: {message}");
                assert!(!message.contains("position unknown"), "{sql}: {message}");
                assert!(!message.contains("Expected:"), "{sql}: {message}");
                assert!(message.len() < 120, "{sql}: {message}");
                assert_eq!((got_line, got_column), (line, column), "{sql}: {message}");
            }
            other => panic!("{sql}: expected a syntax error, got {other:?}"),
        }
    }
}

#[test]
fn glob_reads_as_sqlite_and_similar_to_is_refused() {
    assert_eq!(filter("a GLOB 'x*'"), col("a").glob("x*"));
    assert_eq!(
        filter("a NOT glob '[0-9]?'"),
        Expr::Glob {
            expr: Box::new(col("a")),
            pattern: Box::new(lit("[0-9]?")),
            negated: true,
        }
    );
    assert!(matches!(filter("a GLOB 12"), Expr::Glob { .. }));
    // GLOB binds as LIKE does: tighter than AND and NOT.
    assert_eq!(
        filter("NOT a GLOB 'x' AND b = 1"),
        Expr::And(vec![
            Expr::Not(Box::new(col("a").glob("x"))),
            Expr::Compare {
                left: Box::new(col("b")),
                op: CompareOp::Eq,
                right: Box::new(lit(1)),
            },
        ])
    );
    refused(
        "SELECT * FROM t WHERE a GLOB 'x' ESCAPE '!'",
        "GLOB takes no ESCAPE",
        1,
        41,
    );
    refused(
        "SELECT * FROM t WHERE a GLOB b",
        "a GLOB pattern must be a literal",
        1,
        30,
    );
    // SQLite compares the match's result; here the comparison is the pattern: refused,
    // and the message says what SQLite reads (a comparison's result is not an operand).
    refused(
        "SELECT * FROM t WHERE a GLOB 'x*' = 1",
        "SQLite compares the GLOB's result with what follows the pattern",
        1,
        30,
    );
    refused(
        "SELECT * FROM t WHERE a GLOB 'x*' <> 0",
        "which is not supported",
        1,
        30,
    );
    assert!(parse("SELECT * FROM t WHERE (a GLOB 'x*') = 1").is_err());
    // SQLite's comments: a line comment may follow a block comment's false close, and a
    // block comment may run to the end of the text.
    let nested = parse("SELECT * FROM t WHERE a = 1 /* /* */ OR b = 2 --*/").unwrap();
    assert!(format!("{:?}", nested.filter).contains("Or"), "{nested:?}");
    let open = parse("SELECT * FROM t WHERE a = 1 /* to the end").unwrap();
    assert!(format!("{:?}", open.filter).contains("Column(\"a\")"));
    refused(
        "SELECT * FROM t WHERE a SIMILAR TO 'x'",
        "SIMILAR TO is not supported",
        1,
        23,
    );
    let limits = FilterLimits {
        max_like_pattern: 4,
        ..FilterLimits::default()
    };
    assert_eq!(
        parse_subscription_sql("SELECT * FROM t WHERE a GLOB 'abcde'", &limits).err(),
        Some(LiveError::LikePatternTooLong { len: 5, max: 4 })
    );
    // A query that spells SIMILAR TO is refused even beside a GLOB.
    assert!(parse("SELECT * FROM t WHERE a GLOB 'x' AND b SIMILAR TO 'y'").is_err());
    // A column named similar is no SIMILAR TO; a column named glob is a column.
    assert!(matches!(
        filter("similar = 1 AND c0 GLOB 'a'"),
        Expr::And(_)
    ));
    assert_eq!(filter("glob GLOB 'a'"), col("glob").glob("a"));
    // Refusals name GLOB, not the form it is read as.
    for (sql, place) in [
        ("(c0 GLOB 'a') = 1", "comparison"),
        ("c0 IN (c1 GLOB 'a')", "IN list"),
        ("c0 GLOB 'a' IS NULL", "IS NULL"),
    ] {
        match parse(&format!("SELECT * FROM t WHERE {sql}")) {
            Err(LiveError::Sql { message, .. }) => {
                assert!(
                    message.contains("GLOB") && !message.contains("SIMILAR"),
                    "{sql}: {message}"
                );
                assert!(message.contains(place), "{sql}: {message}");
            }
            other => panic!("{sql}: {other:?}"),
        }
    }
    // A placeholder before GLOB is refused as a placeholder.
    refused("SELECT * FROM t WHERE ? GLOB 'a'", "placeholder", 1, 23);
    // It prints as GLOB, and what it prints reads back as the same filter.
    let printed = col("a").glob("x*").to_string();
    assert_eq!(printed, "(\"a\" GLOB 'x*')");
    assert_eq!(filter(&printed), col("a").glob("x*"));
}

#[test]
fn infinite_constants_render_as_sql_that_reads_back_the_same() {
    for value in [f64::INFINITY, f64::NEG_INFINITY] {
        let spec = livecore::QuerySpec::table(livecore::TableId::new("app", "t"))
            .filter(Expr::col("c0").eq(Expr::lit(value)));
        let sql = spec.to_sql();
        let parsed = parse(&sql).unwrap_or_else(|error| panic!("{sql}: {error}"));
        assert_eq!(
            parsed.filter,
            Some(Expr::col("c0").eq(Expr::lit(value))),
            "{sql}"
        );
    }
}

/// An operator spelled in several words is one node: a filter within the node limit is
/// accepted however its operators are spelled, and one past it is refused.
#[test]
fn multi_word_operators_count_as_the_nodes_they_are() {
    let chain = |op: &str| {
        format!(
            "SELECT * FROM t WHERE {}",
            vec![format!("a {op}"); 400].join(" AND ")
        )
    };
    for op in ["NOTNULL", "IS NOT NULL", "NOT NULL"] {
        let parsed = parse(&chain(op)).unwrap_or_else(|error| panic!("{op}: {error}"));
        assert_eq!(parsed.filter.unwrap().measure(10_000, 10_000).nodes, 801);
    }
    for filter in [
        "a NOT LIKE 'a%' ESCAPE '!'",
        "a IS NOT NULL",
        "a IS NOT DISTINCT FROM 1",
        "a NOT BETWEEN 1 AND 2",
        "a NOT IN (1, 2) AND b IS NOT NULL",
    ] {
        let sql = format!("SELECT * FROM t WHERE {filter}");
        let nodes = parse(&sql)
            .unwrap()
            .filter
            .unwrap()
            .measure(1000, 1000)
            .nodes;
        let limits = |max_nodes| FilterLimits {
            max_nodes,
            ..FilterLimits::default()
        };
        assert!(
            parse_subscription_sql(&sql, &limits(nodes)).is_ok(),
            "{filter}: {nodes} nodes"
        );
        assert!(
            matches!(
                parse_subscription_sql(&sql, &limits(nodes - 1)),
                Err(LiveError::FilterTooLarge { .. })
            ),
            "{filter}"
        );
    }
}

/// The examples of [`end_does_not_end_the_query`]: SQL, and the 1-based column of its END.
const END_IN_THE_MIDDLE: [(&str, u64); 6] = [
    ("SELECT * FROM t WHERE c0 = 1 END OR c1 = 2", 30),
    ("SELECT * FROM t WHERE c0 = 1 END AND c1 = 5", 30),
    ("SELECT * FROM t WHERE c0 = 1 END; DROP TABLE t", 30),
    ("SELECT * FROM t WHERE c0 = 1 END LIMIT 0", 30),
    ("SELECT * FROM t WHERE c0 = 1 END ORDER BY nosuchcolumn", 30),
    ("SELECT * FROM t WHERE c0 = 1 end /* c */ OR c1 = 2", 30),
];

/// A table (c0, c1) in SQLite, to check that it refuses what livecore refuses.
fn sqlite_t() -> rusqlite::Connection {
    let db = rusqlite::Connection::open_in_memory().unwrap();
    db.execute_batch("CREATE TABLE t (c0, c1); INSERT INTO t VALUES (1, 2), (2, 5), (3, 3);")
        .unwrap();
    db
}

#[test]
fn end_does_not_end_the_query() {
    // sqlparser ends a statement at END (as it ends a BEGIN ... END block) and stops
    // reading: what followed END was dropped, and `... END OR c1 = 2` lost its OR. SQLite
    // refuses END after a condition with a syntax error; so does livecore, at the END.
    let db = sqlite_t();
    for (sql, column) in END_IN_THE_MIDDLE {
        assert!(db.prepare(sql).is_err(), "SQLite reads {sql}");
        refused(
            sql,
            "syntax error: expected the end of the query",
            1,
            column,
        );
    }
    refused("SELECT * FROM t WHERE c0 = 1 END", "found END", 1, 30);
    refused(
        "SELECT * FROM t WHERE c0 = 1\n  END OR c1 = 2",
        "found END",
        2,
        3,
    );
    // Right after the table's name SQLite reads END as the table's alias, and applies the
    // WHERE; livecore refuses it as it refuses any table alias, never dropping the WHERE.
    let rows: Vec<i64> = db
        .prepare("SELECT c1 FROM t END WHERE c0 = 2")
        .unwrap()
        .query_map([], |row| row.get(0))
        .unwrap()
        .collect::<Result<_, _>>()
        .unwrap();
    assert_eq!(rows, [5]);
    refused("SELECT * FROM t END WHERE c0 = 2", "table alias", 1, 17);
    refused("SELECT * FROM t END", "table alias", 1, 17);
    refused(
        "SELECT * FROM chat.t END WHERE c0 = 2",
        "table alias",
        1,
        22,
    );
    refused("SELECT * FROM t x WHERE c0 = 2", "table alias", 1, 17);
    refused("SELECT * FROM t AS END WHERE c0 = 2", "table alias", 1, 20);
    // And right after a select item, as the column's alias.
    refused("SELECT c0 END FROM t", "column aliases", 1, 11);
    refused("SELECT c0 x FROM t", "column aliases", 1, 11);
    // A `;` (with whitespace and comments around it) still ends the query; a second
    // statement after it is still refused.
    for sql in [
        "SELECT * FROM t WHERE c0 = 1;",
        "SELECT * FROM t WHERE c0 = 1 ; -- done",
        "SELECT * FROM t WHERE c0 = 1 /* a */ ; /* b */",
        "SELECT * FROM t WHERE c0 = 1 -- done",
    ] {
        assert_eq!(
            parse(sql).unwrap().filter,
            Some(col("c0").eq(lit(1))),
            "{sql}"
        );
    }
    // (sqlparser reads a lone END as a statement of its own, and keeps no position for it.)
    assert!(matches!(
        parse("SELECT * FROM t WHERE c0 = 1; END"),
        Err(LiveError::Sql { message, .. }) if message.contains("several statements")
    ));
}

#[test]
fn end_does_not_end_a_subscription_or_a_route_filter() {
    use livecore::{
        ConnectionsManager, ManagerConfig, SubscriptionOptions, TableId, TableSchema, TableScope,
        TopicConfig, TopicRouteSpec, UserId,
    };
    let manager = ConnectionsManager::new(ManagerConfig::default()).unwrap();
    let t = TableId::new("app", "t");
    manager
        .register_table(TableSchema::new(
            t.clone(),
            TableScope::Shared,
            ["c0", "c1"],
        ))
        .unwrap();
    let connection = manager.register_connection().unwrap().connection_id;
    manager
        .authenticate(connection, UserId::from("u"), None)
        .unwrap();
    let subscribe = |sql: &str| {
        manager.subscribe_sql(
            connection,
            &sql.replace("FROM t", "FROM app.t"),
            SubscriptionOptions::default(),
        )
    };
    let table_column = "FROM app.t".len() as u64 - "FROM t".len() as u64;
    for (sql, column) in END_IN_THE_MIDDLE {
        match subscribe(sql) {
            Err(LiveError::Sql {
                message,
                line: 1,
                column: got,
            }) if got == column + table_column => {
                assert!(message.starts_with("syntax error"), "{sql}: {message}")
            }
            other => panic!("{sql}: expected a syntax error at END, got {other:?}"),
        }
    }
    assert!(matches!(
        subscribe("SELECT * FROM t END WHERE c0 = 2"),
        Err(LiveError::Sql {
            line: 1,
            column: 21,
            ..
        })
    ));
    subscribe("SELECT * FROM t WHERE c0 = 1;").unwrap();

    // A route's filter text is read as the WHERE of a statement: END in it is refused
    // too, at its place in the text as given.
    manager
        .create_topic("routed", TopicConfig::default())
        .unwrap();
    let route = |filter: &str| {
        manager.add_topic_route(TopicRouteSpec::new("routed", t.clone()).filter_sql(filter))
    };
    for filter in [
        "c0 = 2 END OR c0 = 3",
        "c0 = 1 END AND c1 = 5",
        "c0 = 1 END; DROP TABLE t",
        "c0 = 1 END LIMIT 0",
        "c0 = 1 END ORDER BY nosuchcolumn",
        "c0 = 1 END",
    ] {
        match route(filter) {
            Err(LiveError::Sql {
                message,
                line: 1,
                column: 8,
            }) => assert!(message.starts_with("syntax error"), "{filter}: {message}"),
            other => panic!("{filter}: expected a syntax error at END, got {other:?}"),
        }
    }
    route("c0 = 2 OR c0 = 3").unwrap();
}

/// Words SQLite reserves cannot name a column unquoted, in SQLite and here (an outside
/// differential found `WHERE all = 1` accepted); quoted, they name it.
#[test]
fn reserved_words_name_columns_only_quoted() {
    for word in [
        "all", "Where", "select", "from", "order", "group", "table", "default",
    ] {
        for sql in [
            format!("SELECT * FROM t WHERE {word} = 1"),
            format!("SELECT * FROM t WHERE 1 = {word}"),
            format!("SELECT {word} FROM t"),
            format!("SELECT * FROM t WHERE t.{word} = 1"),
        ] {
            // Refused as SQL; named for the word where the word stands as a column (a bare
            // ALL elsewhere is read as `= ALL (...)` or `SELECT ALL`, refused for that).
            let refused = parse(&sql);
            let named = matches!(&refused, Err(LiveError::Sql { message, .. }) if message.contains("reserved word"));
            let as_column = sql.contains(&format!("{word} = 1"));
            assert!(
                named || (!as_column && matches!(refused, Err(LiveError::Sql { .. }))),
                "{sql}: {refused:?}"
            );
            let db = rusqlite::Connection::open_in_memory().unwrap();
            db.execute(&format!("CREATE TABLE t(\"{word}\")"), [])
                .unwrap();
            assert!(db.prepare(&sql).is_err(), "SQLite accepts {sql}");
        }
        let quoted = parse(&format!("SELECT * FROM t WHERE \"{word}\" = 1")).unwrap();
        assert_eq!(
            quoted.filter,
            Some(Expr::col(word).eq(Expr::lit(1))),
            "{word}"
        );
    }
    // Keywords SQLite lets fall back to names stay names.
    for word in ["key", "rows", "temp", "action"] {
        assert!(
            parse(&format!("SELECT * FROM t WHERE {word} = 1")).is_ok(),
            "{word}"
        );
    }
}

/// REGEXP and RLIKE (refused) are placed at their word, which sqlparser keeps no span for.
#[test]
fn regexp_and_rlike_are_refused_at_their_word() {
    refused(
        "SELECT * FROM t WHERE a REGEXP 'x'",
        "REGEXP / RLIKE",
        1,
        25,
    );
    refused("SELECT * FROM t WHERE a RLIKE 'x'", "REGEXP / RLIKE", 1, 25);
    // The word, not the NOT before it.
    refused(
        "SELECT * FROM t WHERE a NOT REGEXP 'x'",
        "REGEXP / RLIKE",
        1,
        29,
    );
    refused(
        "SELECT * FROM t WHERE (a REGEXP 'x')",
        "REGEXP / RLIKE",
        1,
        26,
    );
    refused(
        "SELECT * FROM t WHERE a REGEXP 'x' = 1",
        "REGEXP / RLIKE",
        1,
        25,
    );
    refused(
        "SELECT * FROM t WHERE a = 1 AND b REGEXP 'y'",
        "REGEXP / RLIKE",
        1,
        35,
    );
    refused(
        "SELECT * FROM t WHERE\n  b RLIKE 'y'",
        "REGEXP / RLIKE",
        2,
        5,
    );
    // A quoted "regexp" earlier in the query is a name, not the operator.
    refused(
        "SELECT * FROM t WHERE \"regexp\" = 1 AND b RLIKE 'y'",
        "REGEXP / RLIKE",
        1,
        42,
    );
}

/// Arrays and brackets (refused) are placed at their `[` (or ARRAY), not at their first
/// element as sqlparser's span is.
#[test]
fn brackets_are_refused_at_the_bracket() {
    refused("SELECT * FROM t WHERE [a] = 1", "an array", 1, 23);
    refused("SELECT * FROM t WHERE [a]", "an array", 1, 23);
    refused("SELECT * FROM t WHERE a = [1]", "an array", 1, 27);
    refused("SELECT * FROM t WHERE a IS [b]", "an array", 1, 28);
    refused(
        "SELECT * FROM t WHERE a BETWEEN [b] AND 2",
        "an array",
        1,
        33,
    );
    refused("SELECT * FROM t WHERE a = 1 OR [a]", "an array", 1, 32);
    refused("SELECT * FROM t WHERE NOT [a]", "an array", 1, 27);
    // The outer bracket of nested ones; ARRAY[..] at its ARRAY.
    refused("SELECT * FROM t WHERE [[a]] = 2", "an array", 1, 23);
    refused("SELECT * FROM t WHERE a = ARRAY[1]", "an array", 1, 27);
    // Empty brackets, which sqlparser keeps no span for.
    refused("SELECT * FROM t WHERE a = []", "an array", 1, 27);
    refused("SELECT * FROM t WHERE [] = a", "an array", 1, 23);
    refused("SELECT * FROM t WHERE\n []", "an array", 2, 2);
    refused("SELECT [a] FROM t", "an array", 1, 8);
    // A subscript is refused at the expression it follows.
    refused("SELECT * FROM t WHERE a = 1 AND a[1] = 1", "'a[1]'", 1, 33);
}
