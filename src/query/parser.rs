//! Subscription SQL: `SELECT col, ... | * FROM [namespace.]table [WHERE expr]`, parsed with
//! the `sqlparser` crate into livecore's filter tree and projection.
//!
//! The WHERE clause may use comparisons (`= != <> < <= > >=`) between columns and literals,
//! `AND`, `OR`, `NOT`, parentheses, `[NOT] IN (...)` (an empty list too), `IS [NOT] NULL`
//! (and SQLite's `ISNULL`, `NOTNULL`, postfix `NOT NULL`), `x IS [NOT] y` and `IS [NOT]
//! DISTINCT FROM` between operands, `IS [NOT] TRUE` / `FALSE` (truth tests), `[NOT] BETWEEN`,
//! `[NOT] LIKE` (with `%`, `_` and `ESCAPE`, case-sensitive), `[NOT] ILIKE`
//! (case-insensitive), SQLite's `[NOT] GLOB` (`*`, `?`, `[...]` sets), and literals of
//! every value type: integers, floats, `'text'`, `X'0a1b'` bytes, `TRUE`, `FALSE` and
//! `NULL`, with unary minus or plus on numbers. A bare column or literal is a condition
//! (true when it is a non-zero number). Columns may be qualified with the table's name
//! (`messages.room`, `chat.messages.room`).
//!
//! Numbers are read as SQLite reads them: `7`, `007` and `+7` are integers; `7.5`, `.5`,
//! `5.`, `1e3`, `1E-2` are floats; a decimal integer beyond 64 bits is a float; `0x10` and
//! `0X10` are the integer 16, and a hex literal is the 64-bit two's complement of its digits
//! (`0xFFFFFFFFFFFFFFFF` is -1). Hex literals beyond 64 bits, and minus on the hex literal of
//! the smallest integer (`-0x8000000000000000`), are refused as SQLite refuses them. A number
//! glued to the word after it (`2OR`, `1e`, `0x10z`, `5L`) is refused, as are SQLite's digit
//! separators (`1_000`).
//!
//! Comments and whitespace are read as SQLite reads them: `--` to the end of the line;
//! `/* ... */` ending at its first `*/` (no nesting), possibly at the end of the text, and
//! `/*! ... */` a comment like any other; whitespace is space, tab, newline, form feed and
//! carriage return, and any other character Unicode calls whitespace, outside quotes and
//! comments, is refused, as is a NUL anywhere (see `sqlite_lexis`).
//!
//! Everything else — joins, subqueries, function calls, arithmetic, CASE, CAST, aliases,
//! DISTINCT, GROUP BY, HAVING, ORDER BY, LIMIT, set operations, several statements — is
//! refused with [`LiveError::Sql`], whose message names the construct and whose line and
//! column point at it (both 0, and the message says so, where the parser keeps no position).
//! Only `;`, whitespace and comments may follow the statement: sqlparser ends a statement at
//! the word END, and what follows END is refused, never dropped.
//!
//! Limits hold before anything is built, and the cheap ones first: the text's length
//! (at most [`MAX_SUBSCRIPTION_SQL_LEN`] bytes) before it is tokenized; the count of
//! operators (against [`FilterLimits::max_nodes`]) and the length of every IN list (against
//! [`FilterLimits::max_in_list`]) on the tokens, before they are parsed; the parser's nesting
//! in proportion to [`FilterLimits::max_depth`]; and the filter's depth, node count and LIKE
//! pattern lengths as it is converted. Each refusal is its own typed error.

use sqlparser::ast::{
    self as sql, BinaryOperator, GroupByExpr, ObjectNamePart, SelectFlavor, SelectItem,
    SelectItemQualifiedWildcardKind, SetExpr, Spanned, Statement, TableFactor, UnaryOperator,
    WildcardAdditionalOptions,
};
use sqlparser::dialect::GenericDialect;
use sqlparser::keywords::Keyword;
use sqlparser::parser::{Parser, ParserError};
use sqlparser::tokenizer::{Location, Span, Token, TokenWithSpan, Tokenizer};

use crate::config::FilterLimits;
use crate::config::MAX_SUBSCRIPTION_SQL_LEN;
use crate::error::LiveError;
use crate::query::expr::{CompareOp, Expr};
use crate::query::operator_words::is_operator;
use crate::query::projection::Projection;
use crate::query::sql_text::with_text;
use crate::query::sqlite_decimal::read_decimal;
use crate::query::sqlite_forms::{is_glob, read_sqlite_forms, EMPTY_LIST_MARK};
use crate::query::sqlite_lexis::{as_sqlite_reads, is_reserved};
use crate::query::QuerySpec;
use crate::types::ids::TableId;
use crate::types::schema::TableSchema;
use crate::types::value::Value;

/// A parsed subscription query, not yet bound to a registered table.
#[derive(Clone, Debug, PartialEq)]
pub struct ParsedQuery {
    /// The namespace as written (`chat` in `chat.messages`), or `None` when the query names
    /// the table alone.
    pub namespace: Option<String>,
    /// The table's name as written.
    pub table: String,
    /// The WHERE clause, if any.
    pub filter: Option<Expr>,
    /// The selected columns.
    pub projection: Projection,
}

impl ParsedQuery {
    /// The table, with `default_namespace` when the query names no namespace.
    pub fn table_id(&self, default_namespace: &str) -> TableId {
        TableId::new(
            self.namespace.as_deref().unwrap_or(default_namespace),
            self.table.as_str(),
        )
    }

    /// The query as a [`QuerySpec`], with `default_namespace` when the query names no
    /// namespace.
    pub fn into_spec(self, default_namespace: &str) -> QuerySpec {
        QuerySpec {
            table_id: self.table_id(default_namespace),
            filter: self.filter,
            projection: self.projection,
        }
    }
}

/// Refuses text longer than [`MAX_SUBSCRIPTION_SQL_LEN`], in O(1): callers check this before
/// they hash, copy or read the text.
pub(crate) fn check_sql_len(sql: &str) -> Result<(), LiveError> {
    check_sql_len_within(
        sql,
        "subscription SQL length (bytes)",
        MAX_SUBSCRIPTION_SQL_LEN,
    )
}

/// Refuses SQL text longer than `max` bytes, naming it `what`.
pub(crate) fn check_sql_len_within(
    sql: &str,
    what: &'static str,
    max: usize,
) -> Result<(), LiveError> {
    if sql.len() > max {
        return Err(LiveError::OutOfBounds {
            what,
            value: sql.len() as u64,
            min: 0,
            max: max as u64,
        });
    }
    Ok(())
}

/// Parses subscription SQL (see the module documentation), enforcing `limits` (their depth
/// and node count held to [`MAX_FILTER_DEPTH`](crate::MAX_FILTER_DEPTH) and
/// [`MAX_FILTER_NODES`](crate::MAX_FILTER_NODES), as a manager's configuration is).
pub fn parse_subscription_sql(sql: &str, limits: &FilterLimits) -> Result<ParsedQuery, LiveError> {
    parse_with_boolean_columns(sql, limits, BooleanColumns::default())
}

/// Which of the words TRUE and FALSE name a column of the table a query reads: SQLite
/// reads a bare `TRUE` or `FALSE` as the column of that name when the table has one, and
/// as the boolean otherwise.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub(crate) struct BooleanColumns {
    /// The table has a column named `true` (in any case).
    pub(crate) true_column: bool,
    /// The table has a column named `false` (in any case).
    pub(crate) false_column: bool,
}

impl BooleanColumns {
    /// The words of `schema`'s columns.
    pub(crate) fn of(schema: &TableSchema) -> Self {
        Self {
            true_column: schema.column_position("true").is_some(),
            false_column: schema.column_position("false").is_some(),
        }
    }

    /// True when neither word names a column.
    pub(crate) fn is_none(self) -> bool {
        !self.true_column && !self.false_column
    }
}

/// True when `sql` may hold the word TRUE or FALSE (in any case): a cheap test before a
/// query is parsed again for [`BooleanColumns`].
pub(crate) fn may_name_a_boolean(sql: &str) -> bool {
    let bytes = sql.as_bytes();
    ["true", "false"].iter().any(|word| {
        bytes
            .windows(word.len())
            .any(|window| window.eq_ignore_ascii_case(word.as_bytes()))
    })
}

/// [`parse_subscription_sql`] for a table some of whose columns are named TRUE or FALSE:
/// those words, unquoted, name the columns.
pub(crate) fn parse_with_boolean_columns(
    sql: &str,
    limits: &FilterLimits,
    columns: BooleanColumns,
) -> Result<ParsedQuery, LiveError> {
    let limits = &limits.bounded();
    check_sql_len(sql)?;
    let sql = &*as_sqlite_reads(sql)?;
    let dialect = GenericDialect {};
    let mut tokens = Tokenizer::new(&dialect, sql)
        .tokenize_with_location()
        .map_err(|error| LiveError::Sql {
            message: error.message,
            line: error.location.line,
            column: error.location.column,
        })?;
    if !columns.is_none() {
        read_booleans_as_columns(&mut tokens, columns);
    }
    check_operator_count(&tokens, limits)?;
    refuse_parameter_words(&tokens)?;
    check_in_lists(&tokens, limits)?;
    check_not_runs(&tokens, limits)?;
    let recursion_limit = limits.max_depth.saturating_mul(3).saturating_add(16);
    let nesting = check_parenthesis_nesting(&tokens, recursion_limit, limits)?;
    // After the numbers are read, so a number glued to a word (`1ISNULL`) is refused first.
    let tokens = read_sqlite_forms(read_numbers(tokens)?);
    let mut parser = Parser::new(&dialect)
        .with_recursion_limit(recursion_limit)
        .with_tokens_with_locations(tokens.clone());
    let statements = parser.parse_statements().map_err(|error| {
        // Each parenthesis after an operator (`AND (`, `NOT (`) costs the parser two
        // levels or more, and inside a NOT it reports running out as a syntax error:
        // past half the parser's depth in parentheses, any error is that one.
        // The operands' nesting is read only then: most filters never need it.
        let out_of_depth = nesting
            >= recursion_limit.saturating_sub(PARSER_LEVELS_OUTSIDE_PARENTHESES) / 2
            || error == ParserError::RecursionLimitExceeded;
        if out_of_depth && operand_nesting(&tokens) > limits.max_depth.saturating_add(1) {
            // Deeper than the filter may be: the limit the subscriber can act on.
            too_deep_for_filter(limits)
        } else if nesting >= recursion_limit.saturating_sub(PARSER_LEVELS_OUTSIDE_PARENTHESES) / 2 {
            unplaced(too_deep_for_parser(limits))
        } else {
            parser_error(error, limits, sql)
        }
    })?;
    // sqlparser ends a statement at the word END as at a `;` (END closes a BEGIN ... END
    // block) and returns without reading on, so what follows would be dropped unread:
    // `WHERE a = 1 END OR b = 2` would lose its OR, `FROM t END WHERE a = 2` its WHERE. Only
    // `;`, whitespace and comments may follow the statement (the parser skips those);
    // anything else is refused, as SQLite refuses it.
    let rest = parser.peek_token_ref();
    if rest.token != Token::EOF {
        return Err(unread_rest(&statements, &tokens, rest));
    }
    let context = Context::new(&tokens);
    let mut statements = statements.into_iter();
    let Some(statement) = statements.next() else {
        return Err(unplaced(
            "the query is empty: expected SELECT ... FROM table".into(),
        ));
    };
    if let Some(second) = statements.next() {
        return Err(at(
            "several statements are not supported: send one SELECT".into(),
            second.span().start,
        ));
    }
    let Statement::Query(query) = statement else {
        let (keyword, location) = context.first_word();
        return Err(at(
            format!("only SELECT is supported, not {keyword}"),
            location,
        ));
    };
    convert_query(&context, *query, limits)
}

/// The error for `rest`, the first token the parser left unread after `statements` (only
/// the word END stops it there). SQLite reads END right after the FROM table's name as the
/// table's alias (`FROM t END WHERE ...`), and right after a select item as the column's
/// alias (`SELECT a END FROM t`): those are refused as aliases written otherwise are;
/// anywhere else END is a syntax error, in SQLite too.
fn unread_rest(
    statements: &[Statement],
    tokens: &[TokenWithSpan],
    rest: &TokenWithSpan,
) -> LiveError {
    let start = rest.span.start;
    let before =
        |location: Location| (location.line, location.column) <= (start.line, start.column);
    // Where the significant token in front of `rest` ends.
    let previous_end = tokens
        .iter()
        .filter(|token| !matches!(token.token, Token::Whitespace(_) | Token::EOF))
        .take_while(|token| before(token.span.end) && token.span.start != start)
        .last()
        .map(|token| token.span.end);
    let select = match statements.last() {
        Some(Statement::Query(query)) => match query.body.as_ref() {
            SetExpr::Select(select) => Some(select),
            _ => None,
        },
        _ => None,
    };
    if let (Some(select), Some(previous_end)) = (select, previous_end) {
        let ends_there = |span: Span| span.end == previous_end;
        let after_table = select.selection.is_none()
            && select
                .from
                .last()
                .is_some_and(|table| table.joins.is_empty() && ends_there(table.relation.span()));
        if after_table {
            return at(
                "a table alias is not supported in a subscription".into(),
                start,
            );
        }
        let after_item = select.from.is_empty()
            && select.projection.last().is_some_and(|item| {
                matches!(item, SelectItem::UnnamedExpr(_)) && ends_there(item.span())
            });
        if after_item {
            return at(
                "column aliases (AS) are not supported in a subscription".into(),
                start,
            );
        }
    }
    at(
        format!(
            "syntax error: expected the end of the query, found {}",
            rest.token
        ),
        start,
    )
}

/// Turns each unquoted TRUE or FALSE that names a column into that column's name, quoted,
/// as the parser reads a column; except as the one item of an IN list (`x IN (TRUE)`),
/// which SQLite turns into `x = TRUE` while it parses, reading the word as the boolean.
fn read_booleans_as_columns(tokens: &mut [TokenWithSpan], columns: BooleanColumns) {
    let significant: Vec<usize> = (0..tokens.len())
        .filter(|&index| !matches!(tokens[index].token, Token::Whitespace(_)))
        .collect();
    for (place, &index) in significant.iter().enumerate() {
        let Token::Word(word) = &tokens[index].token else {
            continue;
        };
        let is_column = word.quote_style.is_none()
            && match word.keyword {
                Keyword::TRUE => columns.true_column,
                Keyword::FALSE => columns.false_column,
                _ => false,
            };
        if !is_column || sole_in_item(tokens, &significant, place) {
            continue;
        }
        if let Token::Word(word) = &mut tokens[index].token {
            word.value.make_ascii_lowercase();
            word.quote_style = Some('"');
            word.keyword = Keyword::NoKeyword;
        }
    }
}

/// Whether the significant token at `place` is alone in an IN list's parentheses, however
/// many: `IN (x)`, `IN ((x))`.
fn sole_in_item(tokens: &[TokenWithSpan], significant: &[usize], place: usize) -> bool {
    let token = |place: usize| &tokens[significant[place]].token;
    let mut depth = 0;
    let mut before = place;
    while before > 0 && *token(before - 1) == Token::LParen {
        before -= 1;
        depth += 1;
    }
    let after_in = before > 0
        && matches!(token(before - 1), Token::Word(word)
            if word.keyword == Keyword::IN && word.quote_style.is_none());
    let closes = (1..=depth).all(|step| {
        significant
            .get(place + step)
            .map(|&index| &tokens[index].token)
            == Some(&Token::RParen)
    });
    depth > 0 && after_in && closes
}

/// Refuses, before it is parsed, a query with more than twice as many operator tokens as
/// the node limit allows nodes (and one more, for `SELECT *`). A filter within the limit
/// never has that many: an operator spelled in several words (`IS NOT`, `NOT LIKE ...
/// ESCAPE`) is one node over at least as many operands, and an AND or OR joins operands
/// that are nodes of their own. The exact count is made on the tree; this bounds the length
/// of left-nested operator chains, which the parser builds without recursion but which
/// recursive code (dropping, spans) would walk.
fn check_operator_count(tokens: &[TokenWithSpan], limits: &FilterLimits) -> Result<(), LiveError> {
    let operators = tokens
        .iter()
        .filter(|token| match &token.token {
            Token::Word(word) => is_operator(word),
            Token::Whitespace(_)
            | Token::Number(..)
            | Token::Char(_)
            | Token::SingleQuotedString(_)
            | Token::DoubleQuotedString(_)
            | Token::NationalStringLiteral(_)
            | Token::EscapedStringLiteral(_)
            | Token::HexStringLiteral(_)
            | Token::Comma
            | Token::LParen
            | Token::RParen
            | Token::Period
            | Token::SemiColon
            | Token::EOF => false,
            _ => true,
        })
        .count();
    if operators > limits.max_nodes.saturating_mul(2).saturating_add(1) {
        // Measuring stopped before the tree: it has more nodes than the limit.
        return Err(LiveError::FilterTooLarge {
            nodes: limits.max_nodes.saturating_add(1),
            max: limits.max_nodes,
        });
    }
    Ok(())
}

/// Refuses a run of prefix NOTs deeper than the depth limit from the tokens: each NOT of a
/// run (parentheses between them change nothing) is a level above its operand's. The
/// parser would refuse a long run by its recursion limit, but reports it as a syntax error
/// past some length; this names the limit instead.
fn check_not_runs(tokens: &[TokenWithSpan], limits: &FilterLimits) -> Result<(), LiveError> {
    let mut run = 0usize;
    for token in tokens {
        match &token.token {
            Token::Word(word) if word.keyword == Keyword::NOT && word.quote_style.is_none() => {
                run += 1;
                // The run's NOTs and at least one level beneath them.
                if run + 1 > limits.max_depth {
                    return Err(LiveError::FilterTooDeep {
                        depth: limits.max_depth + 1,
                        max: limits.max_depth,
                    });
                }
            }
            Token::Whitespace(_) | Token::LParen => {}
            _ => run = 0,
        }
    }
    Ok(())
}

/// Parentheses the parser's recursion limit leaves room for, with a margin for the
/// levels an expression takes around them.
const PARSER_LEVELS_OUTSIDE_PARENTHESES: usize = 8;

/// Refuses parentheses nested deeper than the parser can read, naming the `(` that goes
/// too deep, and returns the deepest nesting. Redundant parentheses add no depth to a
/// filter, so the filter's depth limit does not refuse them; the parser's recursion limit
/// does, but inside a `NOT` it gives up on the operator and reports a misleading syntax
/// error instead ("expected ), found a").
fn check_parenthesis_nesting(
    tokens: &[TokenWithSpan],
    recursion_limit: usize,
    limits: &FilterLimits,
) -> Result<usize, LiveError> {
    let max_open = recursion_limit.saturating_sub(PARSER_LEVELS_OUTSIDE_PARENTHESES);
    let (mut open, mut deepest) = (0usize, 0usize);
    for token in tokens {
        match token.token {
            Token::LParen => {
                open += 1;
                deepest = deepest.max(open);
                if open > max_open {
                    if operand_nesting(tokens) > limits.max_depth.saturating_add(1) {
                        return Err(too_deep_for_filter(limits));
                    }
                    return Err(at(too_deep_for_parser(limits), token.span.start));
                }
            }
            Token::RParen => open = open.saturating_sub(1),
            _ => {}
        }
    }
    Ok(deepest)
}

/// The deepest nesting of parentheses that open an operand (after an operator, a keyword,
/// a function's name or a comma, rather than right inside another parenthesis): each such
/// one is a level of the filter or more, but for the first (`WHERE (`). Read when the
/// parser runs out of depth, to tell a filter deeper than its limit (which the limit
/// names) from redundant parentheses (which only the parser refuses).
fn operand_nesting(tokens: &[TokenWithSpan]) -> usize {
    // Per open parenthesis, whether it opens an operand.
    let mut open: Vec<bool> = Vec::new();
    let (mut operands, mut deepest) = (0usize, 0usize);
    let mut after_parenthesis = false;
    for token in tokens {
        match token.token {
            Token::Whitespace(_) => continue,
            Token::LParen => {
                let operand = !after_parenthesis;
                open.push(operand);
                operands += usize::from(operand);
                deepest = deepest.max(operands);
            }
            Token::RParen if open.pop() == Some(true) => operands -= 1,
            _ => {}
        }
        after_parenthesis = token.token == Token::LParen;
    }
    deepest
}

/// A filter the tokens show to nest deeper than the depth limit: measuring stopped there.
fn too_deep_for_filter(limits: &FilterLimits) -> LiveError {
    LiveError::FilterTooDeep {
        depth: limits.max_depth.saturating_add(1),
        max: limits.max_depth,
    }
}

fn too_deep_for_parser(limits: &FilterLimits) -> String {
    format!(
        "the query nests too deeply for the parser (the filter depth limit is {})",
        limits.max_depth
    )
}

/// Refuses a bare word holding `@` or `#`: sqlparser reads `@name`, `#name` and `a@b` as
/// column names, SQLite reads `@name` and `#name` as parameters (a value bound at run
/// time, NULL when none is) and `a@b` as a column followed by one (a syntax error).
/// Neither reading is what a subscriber could mean, so they are refused as `$1` and `?`
/// are. A column so named is still reachable quoted (`"@name"`).
fn refuse_parameter_words(tokens: &[TokenWithSpan]) -> Result<(), LiveError> {
    for token in tokens {
        let Token::Word(word) = &token.token else {
            continue;
        };
        if word.quote_style.is_some() {
            continue;
        }
        if let Some(at_char) = word.value.chars().position(|c| c == '@' || c == '#') {
            let mut location = token.span.start;
            location.column += at_char as u64;
            return Err(at(
                format!(
                    "placeholders ({}) are not supported: SQLite reads {} as a parameter; \
                     write the value, or quote a name holding @ or #",
                    word.value,
                    &word.value[word.value.char_indices().nth(at_char).map_or(0, |(i, _)| i)..]
                ),
                location,
            ));
        }
    }
    Ok(())
}

/// Refuses an IN list longer than the limit from the tokens, before the parser builds an
/// expression for each item. The scan is one pass over tokens already in memory, with a
/// stack of the open parentheses; it allocates nothing per item.
fn check_in_lists(tokens: &[TokenWithSpan], limits: &FilterLimits) -> Result<(), LiveError> {
    let is_keyword = |token: &Token, keyword: Keyword| matches!(token, Token::Word(word) if word.keyword == keyword && word.quote_style.is_none());
    // For each open parenthesis: the items counted so far when it opens an IN list.
    let mut open: Vec<Option<usize>> = Vec::new();
    let mut previous: Option<&Token> = None;
    let mut significant = tokens
        .iter()
        .map(|token| &token.token)
        .filter(|token| !matches!(token, Token::Whitespace(_)))
        .peekable();
    while let Some(token) = significant.next() {
        match token {
            Token::LParen => {
                let after_in = previous.is_some_and(|previous| is_keyword(previous, Keyword::IN));
                // `IN (SELECT ...)` is a subquery, refused later with its own message.
                let subquery = significant.peek().is_some_and(|next| {
                    is_keyword(next, Keyword::SELECT) || is_keyword(next, Keyword::WITH)
                });
                open.push((after_in && !subquery).then_some(1));
            }
            Token::RParen => {
                open.pop();
            }
            Token::Comma => {
                if let Some(Some(items)) = open.last_mut() {
                    *items += 1;
                    if *items > limits.max_in_list {
                        // Count the rest of this list (commas at its own depth) to report
                        // its length; nothing is parsed.
                        let mut depth = 0usize;
                        for token in significant.by_ref() {
                            match token {
                                Token::LParen => depth += 1,
                                Token::RParen if depth == 0 => break,
                                Token::RParen => depth -= 1,
                                Token::Comma if depth == 0 => *items += 1,
                                _ => {}
                            }
                        }
                        return Err(LiveError::InListTooLong {
                            len: *items,
                            max: limits.max_in_list,
                        });
                    }
                }
            }
            _ => {}
        }
        previous = Some(token);
    }
    Ok(())
}

/// Checks the spelling of every number, as SQLite's tokenizer does, and gives hex integers a
/// token of their own.
///
/// sqlparser's generic dialect reads `0x10` as the bytes literal `X'10'`, `0X10` as the
/// number 0 followed by the word `X10`, and `2OR` as `2 OR`. SQLite reads `0x10` and `0X10`
/// as the integer 16 and refuses any number followed directly by a letter, digit, `_` or
/// `$` (`2OR`, `1e`, `0x10z`, `5L`, `1_000`). Hex integers become number tokens spelled
/// `0x..`, which [`number`] reads.
fn read_numbers(tokens: Vec<TokenWithSpan>) -> Result<Vec<TokenWithSpan>, LiveError> {
    let mut out: Vec<TokenWithSpan> = Vec::with_capacity(tokens.len());
    let mut tokens = tokens.into_iter().peekable();
    while let Some(mut current) = tokens.next() {
        let spelling = match &current.token {
            Token::Number(digits, true) => {
                return Err(glued(&format!("{digits}L"), false, current.span.start))
            }
            Token::Number(digits, false) => {
                let hex_tail = tokens.peek().and_then(|next| match &next.token {
                    Token::Word(word)
                        if digits == "0"
                            && next.span.start == current.span.end
                            && word.quote_style.is_none()
                            && is_hex_tail(&word.value) =>
                    {
                        Some((word.value.clone(), next.span.end))
                    }
                    _ => None,
                });
                match hex_tail {
                    // `0X10`: the number 0 and the word `X10`, one hex integer to SQLite.
                    Some((tail, end)) => {
                        tokens.next();
                        current = TokenWithSpan::new(
                            Token::Number(format!("0{tail}"), false),
                            Span::new(current.span.start, end),
                        );
                        format!("0{tail}")
                    }
                    None => digits.clone(),
                }
            }
            Token::HexStringLiteral(digits) if is_hex_integer(digits, current.span) => {
                if digits.is_empty() {
                    return Err(at(
                        "a hex integer needs hex digits after 0x".into(),
                        current.span.start,
                    ));
                }
                let spelling = format!("0x{digits}");
                current = TokenWithSpan::new(Token::Number(spelling.clone(), false), current.span);
                spelling
            }
            _ => {
                out.push(current);
                continue;
            }
        };
        if let Some(next) = tokens.peek() {
            if next.span.start == current.span.end {
                let text = next.token.to_string();
                if text.starts_with(is_identifier_char) {
                    let first_word: String = text
                        .chars()
                        .take_while(|c| is_identifier_char(*c))
                        .take(40)
                        .collect();
                    return Err(glued(
                        &format!("{spelling}{first_word}"),
                        first_word.starts_with('_'),
                        current.span.start,
                    ));
                }
            }
        }
        out.push(current);
    }
    Ok(out)
}

/// True when `0` + `word` is a hex integer (`X10` after `0`).
fn is_hex_tail(word: &str) -> bool {
    let mut chars = word.chars();
    matches!(chars.next(), Some('x' | 'X'))
        && !word[1..].is_empty()
        && word[1..].bytes().all(|byte| byte.is_ascii_hexdigit())
}

/// True when a bytes-literal token is really sqlparser's reading of `0x..` (two characters
/// before the digits) rather than `X'..'` (three characters around them).
fn is_hex_integer(digits: &str, span: Span) -> bool {
    span.start.line == span.end.line
        && digits.bytes().all(|byte| byte.is_ascii_hexdigit())
        && span.end.column.checked_sub(span.start.column) == Some(digits.len() as u64 + 2)
}

/// The characters SQLite's tokenizer takes as part of a word (and so refuses right after a
/// number).
fn is_identifier_char(c: char) -> bool {
    c.is_ascii_alphanumeric() || c == '_' || c == '$' || !c.is_ascii()
}

/// The error for a number glued to the word after it (`separator`: to an underscore, which
/// newer SQLite takes as a digit separator).
fn glued(text: &str, separator: bool, location: Location) -> LiveError {
    let message = if separator {
        format!(
            "'{text}' is not a number: digit separators (_) are not supported; write the \
             digits together"
        )
    } else {
        format!("'{text}' is not a number: put a space between a number and the word after it")
    };
    at(message, location)
}

fn parser_error(error: ParserError, limits: &FilterLimits, sql: &str) -> LiveError {
    match error {
        ParserError::RecursionLimitExceeded => unplaced(too_deep_for_parser(limits)),
        ParserError::TokenizerError(message) | ParserError::ParserError(message) => {
            // sqlparser appends " at Line: L, Column: C" to positioned messages, and leaves
            // it off at the end of the input: there the position is just past the text.
            let (text, line, column) = match message.rsplit_once(" at Line: ") {
                Some((text, position)) => {
                    let mut numbers = position
                        .split(", Column: ")
                        .map(|part| part.trim().parse::<u64>().unwrap_or(0));
                    let line = numbers.next().unwrap_or(0);
                    let column = numbers.next().unwrap_or(0);
                    (text, line, column)
                }
                None => {
                    let (line, column) = end_of(sql);
                    (message.as_str(), line, column)
                }
            };
            LiveError::Sql {
                message: human_syntax_error(text),
                line,
                column,
            }
        }
    }
}

/// The 1-based line and column just past the end of `sql`.
fn end_of(sql: &str) -> (u64, u64) {
    let line = sql.split('\n').count() as u64;
    let last = sql.rsplit('\n').next().unwrap_or("");
    (line, last.chars().count() as u64 + 1)
}

/// sqlparser's "Expected: A | B | [NOT] C ... after X, found: Y" as a short sentence: at
/// most four alternatives, without the grammar's brackets, and "the query ends" for EOF.
fn human_syntax_error(text: &str) -> String {
    let Some(rest) = text.strip_prefix("Expected: ") else {
        return format!("syntax error: {text}");
    };
    let (expected, found) = rest.rsplit_once(", found: ").unwrap_or((rest, ""));
    let (alternatives, after) = match expected.split_once(" after ") {
        Some((alternatives, after)) => (alternatives, Some(after)),
        None => (expected, None),
    };
    let mut shown: Vec<String> = Vec::new();
    for alternative in alternatives.split(" | ") {
        // "[NOT] NULL" -> "NULL": the optional words only lengthen the list.
        let mut plain = String::new();
        let mut depth = 0u32;
        for c in alternative.chars() {
            match c {
                '[' => depth += 1,
                ']' => depth = depth.saturating_sub(1),
                _ if depth == 0 => plain.push(c),
                _ => {}
            }
        }
        let plain = plain.split_whitespace().collect::<Vec<_>>().join(" ");
        if !plain.is_empty() && !shown.contains(&plain) {
            shown.push(plain);
        }
    }
    let more = shown.len() > 4;
    shown.truncate(4);
    let mut list = match shown.len() {
        0 => "more".to_string(),
        1 => shown[0].clone(),
        n if more => format!("{}, ...", shown[..n].join(", ")),
        n => format!("{} or {}", shown[..n - 1].join(", "), shown[n - 1]),
    };
    if let Some(after) = after {
        list = format!("{list} after {after}");
    }
    match found {
        "" => format!("syntax error: expected {list}"),
        "EOF" => format!("syntax error: the query ends where {list} was expected"),
        found => format!("syntax error: expected {list}, found {found}"),
    }
}

/// Whether `tokens` spell the operator SIMILAR TO themselves (a SIMILAR the GLOB rewriting
/// made is not one, nor a column named `similar`).
fn spells_similar_to(tokens: &[TokenWithSpan]) -> bool {
    let words = tokens
        .iter()
        .filter(|token| !matches!(token.token, Token::Whitespace(_)))
        .map(|token| &token.token);
    words.clone().zip(words.skip(1)).any(|(word, next)| {
        matches!(word, Token::Word(similar)
            if similar.keyword == Keyword::SIMILAR && similar.quote_style.is_none())
            && !is_glob(word)
            && matches!(next, Token::Word(to)
                if to.keyword == Keyword::TO && to.quote_style.is_none())
    })
}

/// An error at a known place.
fn at(message: String, location: Location) -> LiveError {
    if location.line == 0 {
        return unplaced(message);
    }
    LiveError::Sql {
        message,
        line: location.line,
        column: location.column,
    }
}

/// An error for which the parser kept no position; the message says so.
fn unplaced(message: String) -> LiveError {
    LiveError::Sql {
        message: if message.ends_with("(position unknown)") {
            message
        } else {
            format!("{message} (position unknown)")
        },
        line: 0,
        column: 0,
    }
}

/// What the converter can look up in the query's tokens.
struct Context<'a> {
    tokens: &'a [TokenWithSpan],
    /// Whether the query spells the operator SIMILAR TO itself (see `wrote_similar`),
    /// read once: every GLOB asks.
    similar: bool,
}

impl<'a> Context<'a> {
    fn new(tokens: &'a [TokenWithSpan]) -> Self {
        Self {
            tokens,
            similar: spells_similar_to(tokens),
        }
    }

    /// The first unquoted occurrence of `keyword`, if any.
    fn keyword(&self, keyword: Keyword) -> Location {
        self.tokens
            .iter()
            .find_map(|token| match &token.token {
                Token::Word(word) if word.keyword == keyword && word.quote_style.is_none() => {
                    Some(token.span.start)
                }
                _ => None,
            })
            .unwrap_or(Location { line: 0, column: 0 })
    }

    /// Whether the query itself spells the operator SIMILAR TO (GLOB is read as SIMILAR TO,
    /// so a query that wrote SIMILAR TO cannot be told from one that wrote GLOB by its
    /// tree).
    fn wrote_similar(&self) -> bool {
        self.similar
    }

    /// The first word of the query, upper-cased, and where it is.
    fn first_word(&self) -> (String, Location) {
        self.tokens
            .iter()
            .find_map(|token| match &token.token {
                Token::Word(word) => Some((word.value.to_uppercase(), token.span.start)),
                _ => None,
            })
            .unwrap_or_else(|| ("this statement".into(), Location { line: 0, column: 0 }))
    }

    /// Where an expression starts. sqlparser's spans of keyword-led constructs (CAST(..),
    /// CASE, EXISTS, unary operators) start at their first operand; this moves back to the
    /// keyword or operator token in front of it.
    fn start_of(&self, expr: &sql::Expr) -> Location {
        use sql::Expr as E;
        let start = expr.span().start;
        match expr {
            E::RLike {
                expr: tested,
                pattern,
                ..
            } => return self.regexp_word(tested, pattern),
            E::Array(array) => return self.array_start(array, start),
            _ => {}
        }
        let leading = |token: &Token| match (expr, token) {
            (E::Cast { .. }, Token::Word(word)) => {
                matches!(
                    word.keyword,
                    Keyword::CAST | Keyword::TRY_CAST | Keyword::SAFE_CAST
                )
            }
            (E::Case { .. }, Token::Word(word)) => word.keyword == Keyword::CASE,
            (E::Exists { .. }, Token::Word(word)) => word.keyword == Keyword::EXISTS,
            (E::Extract { .. }, Token::Word(word)) => word.keyword == Keyword::EXTRACT,
            (E::UnaryOp { op, .. }, token) => match op {
                UnaryOperator::Minus => *token == Token::Minus,
                UnaryOperator::Plus => *token == Token::Plus,
                UnaryOperator::Not => {
                    matches!(token, Token::Word(word) if word.keyword == Keyword::NOT)
                }
                _ => false,
            },
            _ => false,
        };
        let before = |token: &TokenWithSpan| {
            (token.span.start.line, token.span.start.column) <= (start.line, start.column)
        };
        self.tokens
            .iter()
            .rev()
            .filter(|token| before(token))
            .find(|token| leading(&token.token))
            .map(|token| token.span.start)
            .unwrap_or(start)
    }

    /// Where the REGEXP or RLIKE of `tested REGEXP pattern` is: sqlparser keeps no span for
    /// that expression. The first such word after the tested operand, or failing that (an
    /// operand without a span) the last one before the pattern, or the query's first one.
    fn regexp_word(&self, tested: &sql::Expr, pattern: &sql::Expr) -> Location {
        let is_regexp = |token: &&TokenWithSpan| {
            matches!(&token.token, Token::Word(word)
                if word.quote_style.is_none()
                    && matches!(word.keyword, Keyword::REGEXP | Keyword::RLIKE))
        };
        let key = |location: Location| (location.line, location.column);
        let after = tested.span().end;
        let before = pattern.span().start;
        let found = if after.line != 0 {
            self.tokens
                .iter()
                .filter(is_regexp)
                .find(|token| key(token.span.start) >= key(after))
        } else if before.line != 0 {
            self.tokens
                .iter()
                .filter(is_regexp)
                .rfind(|token| key(token.span.start) < key(before))
        } else {
            None
        };
        found
            .or_else(|| self.tokens.iter().find(is_regexp))
            .map_or(Location { line: 0, column: 0 }, |token| token.span.start)
    }

    /// Where an array (`[..]`, `ARRAY[..]`) starts: at its `[`, or its ARRAY. sqlparser's
    /// span of one starts at its first element (inside every array nested first in it) and
    /// is empty for an empty array, which is then the query's first `[]`.
    fn array_start(&self, array: &sql::Array, start: Location) -> Location {
        let solid: Vec<&TokenWithSpan> = self
            .tokens
            .iter()
            .filter(|token| !matches!(token.token, Token::Whitespace(_)))
            .collect();
        let is_array_word = |index: usize| {
            matches!(&solid[index].token, Token::Word(word)
                if word.keyword == Keyword::ARRAY && word.quote_style.is_none())
        };
        // The position of the `[` at `open` in `solid`, or of the ARRAY before it.
        let opening = |open: usize| {
            if array.named && open > 0 && is_array_word(open - 1) {
                solid[open - 1].span.start
            } else {
                solid[open].span.start
            }
        };
        if start.line == 0 {
            return solid
                .windows(2)
                .position(|pair| {
                    pair[0].token == Token::LBracket && pair[1].token == Token::RBracket
                })
                .map_or(start, opening);
        }
        // The brackets opened before the first element: this array's and those of the
        // arrays nested first in it.
        let mut open = 1;
        let mut first = array.elem.first();
        while let Some(sql::Expr::Array(inner)) = first {
            open += 1;
            first = inner.elem.first();
        }
        let key = |location: Location| (location.line, location.column);
        let Some(at) = solid
            .iter()
            .position(|token| key(token.span.start) >= key(start))
        else {
            return start;
        };
        for index in (0..at).rev() {
            match solid[index].token {
                Token::LBracket => {
                    open -= 1;
                    if open == 0 {
                        return opening(index);
                    }
                }
                // An inner ARRAY[, or a parenthesis around the first element.
                Token::LParen => {}
                _ if is_array_word(index) => {}
                _ => break,
            }
        }
        start
    }

    /// An error for an unsupported clause introduced by `keyword`.
    fn clause(&self, construct: &str, keyword: Keyword) -> LiveError {
        at(
            format!("{construct} is not supported in a subscription"),
            self.keyword(keyword),
        )
    }
}

fn convert_query(
    context: &Context<'_>,
    query: sql::Query,
    limits: &FilterLimits,
) -> Result<ParsedQuery, LiveError> {
    let sql::Query {
        with,
        body,
        order_by,
        limit_clause,
        fetch,
        locks,
        for_clause,
        settings,
        format_clause,
        pipe_operators,
    } = query;
    if with.is_some() {
        return Err(context.clause("WITH (a common table expression)", Keyword::WITH));
    }
    if order_by.is_some() {
        return Err(context.clause("ORDER BY", Keyword::ORDER));
    }
    // `LIMIT ALL` limits nothing and leaves no clause in the tree, yet SQLite refuses it:
    // the word itself is looked for too.
    if limit_clause.is_some() || context.keyword(Keyword::LIMIT).line != 0 {
        let keyword = match context.keyword(Keyword::LIMIT) {
            Location { line: 0, .. } => Keyword::OFFSET,
            _ => Keyword::LIMIT,
        };
        return Err(context.clause("LIMIT / OFFSET", keyword));
    }
    if fetch.is_some() {
        return Err(context.clause("FETCH", Keyword::FETCH));
    }
    if !locks.is_empty() || for_clause.is_some() {
        return Err(context.clause("FOR UPDATE / FOR ...", Keyword::FOR));
    }
    if settings.is_some() {
        return Err(context.clause("SETTINGS", Keyword::SETTINGS));
    }
    if format_clause.is_some() {
        return Err(context.clause("FORMAT", Keyword::FORMAT));
    }
    if !pipe_operators.is_empty() {
        return Err(unplaced(
            "pipe operators (|>) are not supported in a subscription".into(),
        ));
    }
    let select = match *body {
        SetExpr::Select(select) => select,
        SetExpr::SetOperation { op, .. } => {
            let keyword = match op {
                sql::SetOperator::Union => Keyword::UNION,
                sql::SetOperator::Except => Keyword::EXCEPT,
                sql::SetOperator::Intersect => Keyword::INTERSECT,
                sql::SetOperator::Minus => Keyword::MINUS,
            };
            return Err(context.clause(&format!("{op} (a set operation)"), keyword));
        }
        SetExpr::Query(inner) => {
            return Err(at(
                "a parenthesized query is not supported: write SELECT ... FROM table".into(),
                inner.span().start,
            ))
        }
        SetExpr::Values(_) => return Err(context.clause("VALUES", Keyword::VALUES)),
        SetExpr::Table(_) => return Err(context.clause("TABLE (as a query)", Keyword::TABLE)),
        SetExpr::Insert(_) | SetExpr::Update(_) | SetExpr::Delete(_) | SetExpr::Merge(_) => {
            let (keyword, location) = context.first_word();
            return Err(at(
                format!("only SELECT is supported, not {keyword}"),
                location,
            ));
        }
    };
    convert_select(context, *select, limits)
}

fn convert_select(
    context: &Context<'_>,
    select: sql::Select,
    limits: &FilterLimits,
) -> Result<ParsedQuery, LiveError> {
    // Every field is named, so a new sqlparser field cannot slip through unchecked.
    let sql::Select {
        select_token: _,
        optimizer_hints,
        distinct,
        select_modifiers,
        top,
        top_before_distinct: _,
        projection,
        exclude,
        into,
        from,
        lateral_views,
        prewhere,
        selection,
        connect_by,
        group_by,
        cluster_by,
        distribute_by,
        sort_by,
        having,
        named_window,
        qualify,
        window_before_qualify: _,
        value_table_mode,
        flavor,
    } = select;
    if !optimizer_hints.is_empty() {
        return Err(unplaced(
            "optimizer hints are not supported in a subscription".into(),
        ));
    }
    // `SELECT ALL` is SQL's default, spelled out: accepted, as SQLite accepts it.
    if distinct.is_some_and(|distinct| distinct != sql::Distinct::All) {
        return Err(context.clause("DISTINCT", Keyword::DISTINCT));
    }
    if select_modifiers.is_some() {
        return Err(unplaced(
            "SELECT modifiers are not supported in a subscription".into(),
        ));
    }
    if top.is_some() {
        return Err(context.clause("TOP", Keyword::TOP));
    }
    if exclude.is_some() {
        return Err(context.clause("EXCLUDE", Keyword::EXCLUDE));
    }
    if into.is_some() {
        return Err(context.clause("SELECT INTO", Keyword::INTO));
    }
    if !lateral_views.is_empty() {
        return Err(context.clause("LATERAL VIEW", Keyword::LATERAL));
    }
    if prewhere.is_some() {
        return Err(context.clause("PREWHERE", Keyword::PREWHERE));
    }
    if !connect_by.is_empty() {
        return Err(context.clause("CONNECT BY", Keyword::CONNECT));
    }
    let grouped = match &group_by {
        GroupByExpr::All(_) => true,
        GroupByExpr::Expressions(expressions, modifiers) => {
            !expressions.is_empty() || !modifiers.is_empty()
        }
    };
    if grouped {
        return Err(context.clause("GROUP BY", Keyword::GROUP));
    }
    if !cluster_by.is_empty() {
        return Err(context.clause("CLUSTER BY", Keyword::CLUSTER));
    }
    if !distribute_by.is_empty() {
        return Err(context.clause("DISTRIBUTE BY", Keyword::DISTRIBUTE));
    }
    if !sort_by.is_empty() {
        return Err(context.clause("SORT BY", Keyword::SORT));
    }
    if having.is_some() {
        return Err(context.clause("HAVING", Keyword::HAVING));
    }
    if !named_window.is_empty() {
        return Err(context.clause("WINDOW", Keyword::WINDOW));
    }
    if qualify.is_some() {
        return Err(context.clause("QUALIFY", Keyword::QUALIFY));
    }
    if value_table_mode.is_some() {
        return Err(unplaced(
            "SELECT AS VALUE / STRUCT is not supported in a subscription".into(),
        ));
    }
    if flavor != SelectFlavor::Standard {
        return Err(context.clause("FROM-first SELECT syntax", Keyword::FROM));
    }
    let table = convert_from(context, from)?;
    let projection = convert_projection(context, projection, &table)?;
    let filter = selection
        .map(|selection| {
            let mut converter = Converter {
                context,
                limits,
                nodes: 0,
                table: &table,
            };
            converter.condition(&selection, 1)
        })
        .transpose()?;
    Ok(ParsedQuery {
        namespace: table.namespace,
        table: table.name,
        filter,
        projection,
    })
}

/// The table a query reads, as written.
struct TableName {
    namespace: Option<String>,
    name: String,
}

impl TableName {
    /// True when `qualifier` (the parts before a column name) names this table.
    fn is_named_by(&self, qualifier: &[&sql::Ident]) -> bool {
        let same = |ident: &sql::Ident, name: &str| ident.value.eq_ignore_ascii_case(name);
        match qualifier {
            [table] => same(table, &self.name),
            [namespace, table] => {
                same(table, &self.name)
                    && self
                        .namespace
                        .as_deref()
                        .is_some_and(|expected| same(namespace, expected))
            }
            _ => false,
        }
    }
}

fn convert_from(
    context: &Context<'_>,
    from: Vec<sql::TableWithJoins>,
) -> Result<TableName, LiveError> {
    let mut tables = from.into_iter();
    let Some(first) = tables.next() else {
        let select = context.keyword(Keyword::SELECT);
        return Err(at("a subscription needs FROM table".into(), select));
    };
    if let Some(second) = tables.next() {
        return Err(at(
            "several tables in FROM (a join) are not supported".into(),
            second.relation.span().start,
        ));
    }
    if !first.joins.is_empty() {
        return Err(context.clause("JOIN", Keyword::JOIN));
    }
    let relation_start = first.relation.span().start;
    let TableFactor::Table {
        name,
        alias,
        args,
        with_hints,
        version,
        with_ordinality,
        partitions,
        json_path,
        sample,
        index_directives,
        inheritance,
    } = first.relation
    else {
        let construct = match &first.relation {
            TableFactor::Derived { .. } => "a subquery in FROM",
            TableFactor::TableFunction { .. } | TableFactor::Function { .. } => {
                "a table function in FROM"
            }
            TableFactor::NestedJoin { .. } => "a join",
            _ => "this kind of FROM item",
        };
        return Err(at(
            format!("{construct} is not supported: name one table"),
            relation_start,
        ));
    };
    if let Some(alias) = alias {
        return Err(at(
            "a table alias is not supported in a subscription".into(),
            alias.name.span.start,
        ));
    }
    if args.is_some() {
        return Err(at(
            "a table function is not supported: name one table".into(),
            relation_start,
        ));
    }
    if !with_hints.is_empty()
        || version.is_some()
        || with_ordinality
        || !partitions.is_empty()
        || json_path.is_some()
        || sample.is_some()
        || !index_directives.is_empty()
        || inheritance.is_some()
    {
        return Err(at(
            "table modifiers (hints, versions, partitions, samples) are not supported".into(),
            relation_start,
        ));
    }
    let mut parts = Vec::with_capacity(name.0.len());
    for part in name.0 {
        match part {
            ObjectNamePart::Identifier(ident) => parts.push(ident),
            ObjectNamePart::Function(_) => {
                return Err(at(
                    "a computed table name is not supported".into(),
                    relation_start,
                ))
            }
        }
    }
    match parts.len() {
        1 => Ok(TableName {
            namespace: None,
            name: parts.remove(0).value,
        }),
        2 => {
            let table = parts.remove(1).value;
            Ok(TableName {
                namespace: Some(parts.remove(0).value),
                name: table,
            })
        }
        _ => Err(at(
            "a table is named as [namespace.]table".into(),
            relation_start,
        )),
    }
}

fn convert_projection(
    context: &Context<'_>,
    items: Vec<SelectItem>,
    table: &TableName,
) -> Result<Projection, LiveError> {
    let check_wildcard = |options: &WildcardAdditionalOptions| {
        let WildcardAdditionalOptions {
            wildcard_token,
            opt_ilike,
            opt_exclude,
            opt_except,
            opt_replace,
            opt_rename,
            opt_alias,
        } = options;
        if opt_ilike.is_some()
            || opt_exclude.is_some()
            || opt_except.is_some()
            || opt_replace.is_some()
            || opt_rename.is_some()
            || opt_alias.is_some()
        {
            return Err(at(
                "options after * (EXCLUDE, EXCEPT, REPLACE, RENAME, ILIKE, AS) are not supported"
                    .into(),
                wildcard_token.0.span.start,
            ));
        }
        Ok(())
    };
    let mut columns = Vec::with_capacity(items.len());
    let mut wildcard = None;
    let count = items.len();
    for item in items {
        match item {
            SelectItem::Wildcard(options) => {
                check_wildcard(&options)?;
                wildcard = Some(options.wildcard_token.0.span.start);
            }
            SelectItem::QualifiedWildcard(kind, options) => {
                check_wildcard(&options)?;
                let SelectItemQualifiedWildcardKind::ObjectName(name) = &kind else {
                    return Err(at(
                        "expr.* is not supported: select columns or *".into(),
                        kind.span().start,
                    ));
                };
                let qualifier: Vec<&sql::Ident> =
                    name.0.iter().filter_map(ObjectNamePart::as_ident).collect();
                if qualifier.len() != name.0.len() || !table.is_named_by(&qualifier) {
                    return Err(at(
                        format!("{name}.* does not name the subscribed table"),
                        name.span().start,
                    ));
                }
                wildcard = Some(name.span().start);
            }
            SelectItem::UnnamedExpr(expr) => {
                columns.push(column_name(context, &expr, table, "select")?.to_string())
            }
            SelectItem::ExprWithAlias { alias, .. } => {
                return Err(at(
                    "column aliases (AS) are not supported in a subscription".into(),
                    alias.span.start,
                ))
            }
            SelectItem::ExprWithAliases { expr, .. } => {
                return Err(at(
                    "column aliases (AS) are not supported in a subscription".into(),
                    expr.span().start,
                ))
            }
        }
    }
    match wildcard {
        Some(_) if count == 1 => Ok(Projection::All),
        Some(location) => Err(at(
            "* cannot be combined with other columns in a subscription".into(),
            location,
        )),
        None if columns.is_empty() => Err(at(
            "a subscription selects * or at least one column".into(),
            context.keyword(Keyword::SELECT),
        )),
        None => Ok(Projection::Columns(columns)),
    }
}

/// The column a select-list item or an operand names; anything else is refused.
fn column_name<'e>(
    context: &Context<'_>,
    expr: &'e sql::Expr,
    table: &TableName,
    place: &str,
) -> Result<&'e str, LiveError> {
    if let Some(ident) = bare_word_column(expr) {
        return Ok(&ident.value);
    }
    match expr {
        sql::Expr::Identifier(ident) => unreserved(ident).map(|()| ident.value.as_str()),
        sql::Expr::CompoundIdentifier(parts) => {
            let (column, qualifier) = parts.split_last().expect("compound names have parts");
            unreserved(column)?;
            let qualifier: Vec<&sql::Ident> = qualifier.iter().collect();
            if table.is_named_by(&qualifier) {
                Ok(&column.value)
            } else {
                let written: Vec<&str> =
                    qualifier.iter().map(|ident| ident.value.as_str()).collect();
                Err(at(
                    format!("'{}' does not name the subscribed table", written.join(".")),
                    expr.span().start,
                ))
            }
        }
        sql::Expr::Nested(inner) if place == "select" => column_name(context, inner, table, place),
        other => Err(at(
            format!(
                "{} in the select list is not supported: select columns or *",
                describe(context, other)
            ),
            context.start_of(other),
        )),
    }
}

/// True when `expr` names a column: a name, qualified or not, or a [`bare_word_column`].
fn names_column(expr: &sql::Expr) -> bool {
    matches!(
        expr,
        sql::Expr::Identifier(_) | sql::Expr::CompoundIdentifier(_)
    ) || bare_word_column(expr).is_some()
}

/// A column named by one of the words the parser reads, unquoted and without parentheses,
/// as a call of a function of the SQL standard (`USER`, `CURRENT_USER`, `SESSION_USER`,
/// `CURRENT_CATALOG`, `LOCALTIME`, `LOCALTIMESTAMP`): SQLite reserves none of them, so
/// there they name a column, as they do here. (`CURRENT_DATE`, `CURRENT_TIME` and
/// `CURRENT_TIMESTAMP` are SQLite's own keywords for the clock: refused as calls.)
fn bare_word_column(expr: &sql::Expr) -> Option<&sql::Ident> {
    let sql::Expr::Function(function) = expr else {
        return None;
    };
    let bare = matches!(function.args, sql::FunctionArguments::None)
        && matches!(function.parameters, sql::FunctionArguments::None)
        && function.filter.is_none()
        && function.over.is_none()
        && function.null_treatment.is_none()
        && function.within_group.is_empty()
        && !function.uses_odbc_syntax;
    let [part] = function.name.0.as_slice() else {
        return None;
    };
    let ident = part.as_ident()?;
    let word = ident.value.to_ascii_uppercase();
    (bare
        && ident.quote_style.is_none()
        && matches!(
            word.as_str(),
            "USER"
                | "CURRENT_USER"
                | "SESSION_USER"
                | "CURRENT_CATALOG"
                | "LOCALTIME"
                | "LOCALTIMESTAMP"
        ))
    .then_some(ident)
}

/// Refuses a column named, unquoted, by a word SQLite reserves (`WHERE all = 1`), as
/// SQLite does: sqlparser's dialect takes such words as names.
fn unreserved(ident: &sql::Ident) -> Result<(), LiveError> {
    if ident.quote_style.is_none() && is_reserved(&ident.value) {
        return Err(at(
            format!(
                "{} is a reserved word: quote it (\"{}\") to name a column",
                ident.value.to_ascii_uppercase(),
                ident.value
            ),
            ident.span.start,
        ));
    }
    Ok(())
}

/// Converts the WHERE clause, counting nodes and levels as it goes.
struct Converter<'a> {
    context: &'a Context<'a>,
    limits: &'a FilterLimits,
    nodes: usize,
    table: &'a TableName,
}

impl Converter<'_> {
    /// Accounts for one node at `level` (the root is level 1).
    fn node(&mut self, level: usize) -> Result<(), LiveError> {
        self.count(1, level)
    }

    /// Counts `nodes` nodes, the deepest at `deepest`, against the limits.
    fn count(&mut self, nodes: usize, deepest: usize) -> Result<(), LiveError> {
        if deepest > self.limits.max_depth {
            return Err(LiveError::FilterTooDeep {
                depth: deepest,
                max: self.limits.max_depth,
            });
        }
        self.nodes += nodes;
        if self.nodes > self.limits.max_nodes {
            return Err(LiveError::FilterTooLarge {
                nodes: self.nodes,
                max: self.limits.max_nodes,
            });
        }
        Ok(())
    }

    /// A condition: anything that is TRUE, FALSE or UNKNOWN.
    fn condition(&mut self, expr: &sql::Expr, level: usize) -> Result<Expr, LiveError> {
        use sql::Expr as E;
        match expr {
            E::Nested(inner) => self.condition(inner, level),
            E::BinaryOp { op, .. } if matches!(op, BinaryOperator::And | BinaryOperator::Or) => {
                self.node(level)?;
                let is_and = *op == BinaryOperator::And;
                // Walk the left-nested chain `a AND b AND c` without recursion.
                let mut operands = Vec::new();
                let mut current = expr;
                loop {
                    match current {
                        E::BinaryOp {
                            left,
                            op: chained,
                            right,
                        } if chained == op => {
                            operands.push(&**right);
                            current = left;
                        }
                        _ => {
                            operands.push(current);
                            break;
                        }
                    }
                }
                operands.reverse();
                let items = operands
                    .into_iter()
                    .map(|operand| self.condition(operand, level + 1))
                    .collect::<Result<Vec<_>, _>>()?;
                Ok(if is_and {
                    Expr::And(items)
                } else {
                    Expr::Or(items)
                })
            }
            E::BinaryOp { left, op, right } => {
                let Some(op) = compare_op(op) else {
                    return Err(at(
                        format!("the operator {op} is not supported in a filter"),
                        self.context.start_of(expr),
                    ));
                };
                self.node(level)?;
                Ok(Expr::Compare {
                    op,
                    left: Box::new(self.operand(left, level + 1, "a comparison")?),
                    right: Box::new(self.operand(right, level + 1, "a comparison")?),
                })
            }
            E::UnaryOp {
                op: UnaryOperator::Not,
                expr: inner,
            } => {
                self.node(level)?;
                Ok(Expr::Not(Box::new(self.condition(inner, level + 1)?)))
            }
            E::IsDistinctFrom(left, right) | E::IsNotDistinctFrom(left, right) => {
                let negated = matches!(expr, E::IsDistinctFrom(..));
                self.is_same(left, right, negated, level)
            }
            E::IsTrue(inner) | E::IsNotTrue(inner) | E::IsFalse(inner) | E::IsNotFalse(inner) => {
                let wanted = matches!(expr, E::IsTrue(_) | E::IsNotTrue(_));
                let negated = matches!(expr, E::IsNotTrue(_) | E::IsNotFalse(_));
                self.is_truth(inner, wanted, negated, level)
            }
            E::IsNull(inner) | E::IsNotNull(inner) => {
                self.node(level)?;
                Ok(Expr::IsNull {
                    expr: Box::new(self.operand(inner, level + 1, "IS NULL")?),
                    negated: matches!(expr, E::IsNotNull(_)),
                })
            }
            E::In {
                expr: tested,
                target,
                negated,
                global,
            } => {
                let sql::InTarget::List(list) = target else {
                    let construct = match target {
                        sql::InTarget::Subquery(_) => "IN (subquery)",
                        sql::InTarget::Unnest(_) => "IN UNNEST(...)",
                        _ => "IN table",
                    };
                    return Err(at(
                        format!("{construct} is not supported: list the values"),
                        self.context.start_of(expr),
                    ));
                };
                if *global {
                    return Err(at(
                        "GLOBAL IN is not supported".into(),
                        self.context.start_of(expr),
                    ));
                }
                self.in_list(tested, list, *negated, level)
            }
            E::Between {
                expr: tested,
                negated,
                low,
                high,
            } => {
                self.node(level)?;
                Ok(Expr::Between {
                    expr: Box::new(self.operand(tested, level + 1, "BETWEEN")?),
                    low: Box::new(self.operand(low, level + 1, "BETWEEN")?),
                    high: Box::new(self.operand(high, level + 1, "BETWEEN")?),
                    negated: *negated,
                })
            }
            E::Like {
                negated,
                any,
                expr: tested,
                pattern,
                escape_char,
            }
            | E::ILike {
                negated,
                any,
                expr: tested,
                pattern,
                escape_char,
            } => {
                let case_insensitive = matches!(expr, E::ILike { .. });
                let keyword = if case_insensitive { "ILIKE" } else { "LIKE" };
                if *any {
                    return Err(at(
                        format!("{keyword} ANY is not supported"),
                        self.context.start_of(expr),
                    ));
                }
                self.like(
                    tested,
                    pattern,
                    escape_char.as_deref(),
                    *negated,
                    case_insensitive,
                    level,
                )
            }
            E::SimilarTo {
                negated,
                expr: tested,
                pattern,
                escape_char,
            } if !self.context.wrote_similar() => {
                if let Some(escape) = escape_char {
                    return Err(at(
                        "GLOB takes no ESCAPE".into(),
                        self.context.start_of(escape),
                    ));
                }
                self.glob(tested, pattern, *negated, level)
            }
            E::Value(_) | E::UnaryOp { .. } => self.operand(expr, level, "a condition"),
            _ if names_column(expr) => self.operand(expr, level, "a condition"),
            other => Err(unsupported(self.context, other)),
        }
    }

    /// An operand: a column, or a literal (with unary minus or plus folded in).
    fn operand(&mut self, expr: &sql::Expr, level: usize, place: &str) -> Result<Expr, LiveError> {
        use sql::Expr as E;
        match expr {
            E::Nested(inner) => self.operand(inner, level, place),
            _ if names_column(expr) => {
                self.node(level)?;
                Ok(Expr::Column(
                    column_name(self.context, expr, self.table, "filter")?.into(),
                ))
            }
            E::Value(_) | E::UnaryOp { .. } => {
                let value = literal(self.context, expr)?;
                self.node(level)?;
                Ok(Expr::Literal(value))
            }
            E::BinaryOp { op, .. } if compare_op(op).is_some() || is_logical(op) => Err(at(
                format!(
                    "{place} takes a column or a literal here, not a condition; \
                     comparing the results of conditions is not supported"
                ),
                self.context.start_of(expr),
            )),
            other => Err(unsupported_operand(self.context, other, place)),
        }
    }

    /// `left IS right` (`negated`: `IS NOT`), never UNKNOWN: equal, or both NULL. Built from
    /// the filter's own nodes, so routing and the enter/leave rule read it as they read
    /// `=`: `a IS 5` is `a = 5 AND a IS NOT NULL`.
    fn is_same(
        &mut self,
        left: &sql::Expr,
        right: &sql::Expr,
        negated: bool,
        level: usize,
    ) -> Result<Expr, LiveError> {
        // SQLite reads `x IS TRUE` (and `x IS NOT DISTINCT FROM (TRUE)`) as a truth test,
        // not as `x IS 1`: only for the bare keyword on the right, not for `+TRUE`.
        let mut bare = right;
        while let sql::Expr::Nested(inner) = bare {
            bare = inner;
        }
        let truth = match bare {
            sql::Expr::Value(value) => match value.value {
                sql::Value::Boolean(wanted) => Some(wanted),
                _ => None,
            },
            _ => None,
        };
        let left = self.uncounted_operand(left, level + 1, "IS")?;
        let right = self.uncounted_operand(right, level + 1, "IS")?;
        if let Some(wanted) = truth {
            return self.truth_test(left, wanted, negated, level);
        }
        let equal = |left: &Expr, right: &Expr| Expr::Compare {
            op: CompareOp::Eq,
            left: Box::new(left.clone()),
            right: Box::new(right.clone()),
        };
        let same = match (&left, &right) {
            (Expr::Literal(Value::Null), other) | (other, Expr::Literal(Value::Null)) => {
                is_null(other, false)
            }
            (Expr::Literal(_), Expr::Literal(_)) => equal(&left, &right),
            (Expr::Literal(_), column) | (column, Expr::Literal(_)) => {
                Expr::And(vec![equal(&left, &right), is_null(column, true)])
            }
            // Equal and neither NULL, or both NULL.
            _ => Expr::Or(vec![
                Expr::And(vec![
                    equal(&left, &right),
                    is_null(&left, true),
                    is_null(&right, true),
                ]),
                Expr::And(vec![is_null(&left, false), is_null(&right, false)]),
            ]),
        };
        self.counted(same, negated, level)
    }

    /// `tested IS TRUE` (`wanted` false: `IS FALSE`; `negated`: `IS NOT`), never UNKNOWN:
    /// SQLite's truth test, `tested` read as a condition, NULL as neither.
    fn is_truth(
        &mut self,
        tested: &sql::Expr,
        wanted: bool,
        negated: bool,
        level: usize,
    ) -> Result<Expr, LiveError> {
        let place = match (wanted, negated) {
            (true, false) => "IS TRUE",
            (true, true) => "IS NOT TRUE",
            (false, false) => "IS FALSE",
            (false, true) => "IS NOT FALSE",
        };
        let tested = self.uncounted_operand(tested, level + 1, place)?;
        self.truth_test(tested, wanted, negated, level)
    }

    /// [`Converter::is_truth`] of an operand already converted (and not yet counted).
    fn truth_test(
        &mut self,
        tested: Expr,
        wanted: bool,
        negated: bool,
        level: usize,
    ) -> Result<Expr, LiveError> {
        let truth = if wanted {
            tested.clone()
        } else {
            Expr::Not(Box::new(tested.clone()))
        };
        let holds = Expr::And(vec![truth, is_null(&tested, true)]);
        self.counted(holds, negated, level)
    }

    /// `built` (under a NOT when `negated`), a tree made here whose root sits at `level`,
    /// with its nodes counted against the limits.
    fn counted(&mut self, built: Expr, negated: bool, level: usize) -> Result<Expr, LiveError> {
        let built = if negated {
            Expr::Not(Box::new(built))
        } else {
            built
        };
        let size = built.measure(usize::MAX, usize::MAX);
        self.count(size.nodes, level + size.depth - 1)?;
        Ok(built)
    }

    /// An operand checked as [`Converter::operand`] checks it, for a tree [`Converter::counted`]
    /// counts whole: its own node is not counted here.
    fn uncounted_operand(
        &mut self,
        expr: &sql::Expr,
        level: usize,
        place: &str,
    ) -> Result<Expr, LiveError> {
        let before = self.nodes;
        let operand = self.operand(expr, level, place);
        self.nodes = before;
        operand
    }

    fn in_list(
        &mut self,
        tested: &sql::Expr,
        list: &[sql::Expr],
        negated: bool,
        level: usize,
    ) -> Result<Expr, LiveError> {
        // `x IN ()`: the token pass put a mark in the empty parentheses so that they parse.
        let list = match list {
            [sql::Expr::Value(value)] if matches!(&value.value, sql::Value::Placeholder(mark) if mark == EMPTY_LIST_MARK) => {
                &[][..]
            }
            list => list,
        };
        if list.len() > self.limits.max_in_list {
            return Err(LiveError::InListTooLong {
                len: list.len(),
                max: self.limits.max_in_list,
            });
        }
        let is_literal = |item: &sql::Expr| literal(self.context, item).is_ok();
        if list.iter().all(is_literal) {
            self.node(level)?;
            let tested = self.operand(tested, level + 1, "IN")?;
            let items = list
                .iter()
                .map(|item| self.operand(item, level + 1, "an IN list"))
                .collect::<Result<Vec<_>, _>>()?;
            return Ok(Expr::InList {
                expr: Box::new(tested),
                list: items,
                negated,
            });
        }
        // Columns in the list: `x IN (1, 2, c)` is `x IN (1, 2) OR x = c`, in three-valued
        // logic too; NOT IN is the negation of that.
        let mut level = level;
        if negated {
            self.node(level)?;
            level += 1;
        }
        self.node(level)?;
        let (literals, columns): (Vec<&sql::Expr>, Vec<&sql::Expr>) =
            list.iter().partition(|item| is_literal(item));
        let mut alternatives = Vec::with_capacity(columns.len() + 1);
        if !literals.is_empty() {
            self.node(level + 1)?;
            let tested = self.operand(tested, level + 2, "IN")?;
            let items = literals
                .into_iter()
                .map(|item| self.operand(item, level + 2, "an IN list"))
                .collect::<Result<Vec<_>, _>>()?;
            alternatives.push(Expr::InList {
                expr: Box::new(tested),
                list: items,
                negated: false,
            });
        }
        for column in columns {
            self.node(level + 1)?;
            alternatives.push(Expr::Compare {
                op: CompareOp::Eq,
                left: Box::new(self.operand(tested, level + 2, "IN")?),
                right: Box::new(self.operand(column, level + 2, "an IN list")?),
            });
        }
        let any = Expr::Or(alternatives);
        Ok(if negated {
            Expr::Not(Box::new(any))
        } else {
            any
        })
    }

    /// SQLite's `tested [NOT] GLOB pattern` (read as SIMILAR TO, see `sqlite_forms`).
    fn glob(
        &mut self,
        tested: &sql::Expr,
        pattern: &sql::Expr,
        negated: bool,
        level: usize,
    ) -> Result<Expr, LiveError> {
        self.node(level)?;
        let tested = self.operand(tested, level + 1, "GLOB")?;
        let pattern_value = self.pattern_literal(pattern, "GLOB")?;
        self.node(level + 1)?;
        Ok(Expr::Glob {
            expr: Box::new(tested),
            pattern: Box::new(Expr::Literal(pattern_value)),
            negated,
        })
    }

    /// A LIKE or GLOB pattern: a literal, within the pattern length limit.
    fn pattern_literal(&self, pattern: &sql::Expr, keyword: &str) -> Result<Value, LiveError> {
        let value = literal(self.context, pattern).map_err(|_| {
            // `x GLOB 'p' = 1` reads as `x GLOB ('p' = 1)` here, where SQLite compares the
            // match's result: refused either way, and the message says what SQLite reads.
            let hint = if starts_with_literal(self.context, pattern) {
                format!(
                    " (SQLite compares the {keyword}'s result with what follows the \
                     pattern, which is not supported)"
                )
            } else {
                String::new()
            };
            at(
                format!("a {keyword} pattern must be a literal{hint}"),
                self.context.start_of(pattern),
            )
        })?;
        let len = with_text(&value, str::len).unwrap_or(0);
        if len > self.limits.max_like_pattern {
            return Err(LiveError::LikePatternTooLong {
                len,
                max: self.limits.max_like_pattern,
            });
        }
        Ok(value)
    }

    fn like(
        &mut self,
        tested: &sql::Expr,
        pattern: &sql::Expr,
        escape: Option<&sql::Expr>,
        negated: bool,
        case_insensitive: bool,
        level: usize,
    ) -> Result<Expr, LiveError> {
        let keyword = if case_insensitive { "ILIKE" } else { "LIKE" };
        self.node(level)?;
        let tested = self.operand(tested, level + 1, keyword)?;
        let pattern_value = self.pattern_literal(pattern, keyword)?;
        self.node(level + 1)?;
        let escape = match escape {
            None => None,
            Some(escape_expr) => match literal(self.context, escape_expr) {
                Ok(Value::Null) => {
                    // `x LIKE p ESCAPE NULL` is NULL whatever x and p are.
                    return Ok(Expr::Literal(Value::Null));
                }
                Ok(Value::Text(text)) if text.chars().count() == 1 => text.chars().next(),
                _ => {
                    return Err(at(
                        "the ESCAPE of LIKE must be a single character in quotes".into(),
                        self.context.start_of(escape_expr),
                    ))
                }
            },
        };
        // A pattern ending with its ESCAPE character matches nothing, as in SQLite (see
        // `LikePattern::compile`).
        Ok(Expr::Like {
            expr: Box::new(tested),
            pattern: Box::new(Expr::Literal(pattern_value)),
            escape,
            case_insensitive,
            negated,
        })
    }
}

fn compare_op(op: &BinaryOperator) -> Option<CompareOp> {
    Some(match op {
        BinaryOperator::Eq => CompareOp::Eq,
        BinaryOperator::NotEq => CompareOp::NotEq,
        BinaryOperator::Lt => CompareOp::Lt,
        BinaryOperator::LtEq => CompareOp::LtEq,
        BinaryOperator::Gt => CompareOp::Gt,
        BinaryOperator::GtEq => CompareOp::GtEq,
        _ => return None,
    })
}

fn is_logical(op: &BinaryOperator) -> bool {
    matches!(op, BinaryOperator::And | BinaryOperator::Or)
}

/// A literal, with unary minus and plus folded in as SQLite folds them: parentheses and
/// unary plus are transparent, and a minus on a numeric literal is part of it, so
/// `-9223372036854775808` and `-(+9223372036854775808)` are the smallest integer, while an
/// integer literal beyond 64 bits is a float.
/// True when `expr` is an operation whose leftmost operand is a literal (`'p' = 1`,
/// `'p' IS NULL`): what a pattern written before a comparison parses as.
fn starts_with_literal(context: &Context<'_>, expr: &sql::Expr) -> bool {
    use sql::Expr as E;
    let left = match expr {
        E::BinaryOp { left, .. } => left,
        E::IsNull(left) | E::IsNotNull(left) => left,
        E::Between { expr, .. } => expr,
        _ => return false,
    };
    literal(context, left).is_ok() || starts_with_literal(context, left)
}

fn literal(context: &Context<'_>, expr: &sql::Expr) -> Result<Value, LiveError> {
    use sql::Expr as E;
    match expr {
        E::Nested(inner) => literal(context, inner),
        E::Value(value) => literal_value(&value.value, value.span),
        E::UnaryOp {
            op: op @ (UnaryOperator::Minus | UnaryOperator::Plus),
            expr: inner,
        } => {
            let negate = *op == UnaryOperator::Minus;
            if negate {
                if let Some((digits, span)) = bare_number(inner) {
                    return match hex_digits(digits) {
                        Some(hex) => match hex_integer(hex, digits, span)? {
                            // SQLite refuses this one hex form rather than make it a float.
                            i64::MIN => {
                                Err(at(format!("hex literal too big: -{digits}"), span.start))
                            }
                            int => Ok(Value::Int(-int)),
                        },
                        None => number(&format!("-{digits}"), span),
                    };
                }
            }
            if !matches!(&**inner, E::Value(_) | E::Nested(_) | E::UnaryOp { .. }) {
                return Err(at(
                    format!(
                        "the unary operator {op} applies to numeric literals only, not to {} \
                         (arithmetic is not supported)",
                        describe(context, inner)
                    ),
                    context.start_of(expr),
                ));
            }
            let value = literal(context, inner)?;
            if !negate {
                return match value {
                    Value::Text(_) | Value::Bytes(_) => Err(at(
                        "unary + applies to numbers only".into(),
                        context.start_of(expr),
                    )),
                    other => Ok(other),
                };
            }
            match value {
                Value::Null => Ok(Value::Null),
                Value::Bool(b) => Ok(Value::Int(-i64::from(b))),
                Value::Int(i) => Ok(i
                    .checked_neg()
                    .map_or(Value::Float(-(i as f64)), Value::Int)),
                Value::Float(f) => Ok(Value::Float(-f)),
                Value::Text(_) | Value::Bytes(_) => Err(at(
                    "unary - applies to numbers only".into(),
                    context.start_of(expr),
                )),
            }
        }
        other => Err(unsupported_operand(context, other, "a literal")),
    }
}

/// The spelling of the numeric literal `expr` is, seen through parentheses and unary plus.
fn bare_number(expr: &sql::Expr) -> Option<(&str, Span)> {
    use sql::Expr as E;
    match expr {
        E::Nested(inner)
        | E::UnaryOp {
            op: UnaryOperator::Plus,
            expr: inner,
        } => bare_number(inner),
        E::Value(sql::ValueWithSpan {
            value: sql::Value::Number(digits, false),
            span,
        }) => Some((digits, *span)),
        _ => None,
    }
}

fn literal_value(value: &sql::Value, span: Span) -> Result<Value, LiveError> {
    use sql::Value as V;
    match value {
        V::Number(digits, false) => number(digits, span),
        V::SingleQuotedString(text) => Ok(Value::text(text)),
        V::HexStringLiteral(hex) => {
            let bytes = hex.as_bytes();
            if bytes.len() % 2 != 0 {
                return Err(at(
                    "a bytes literal X'..' needs an even number of hex digits".into(),
                    span.start,
                ));
            }
            bytes
                .chunks(2)
                .map(|pair| {
                    std::str::from_utf8(pair)
                        .ok()
                        .and_then(|pair| u8::from_str_radix(pair, 16).ok())
                })
                .collect::<Option<Vec<u8>>>()
                .map(Value::from)
                .ok_or_else(|| {
                    at(
                        "a bytes literal X'..' holds hex digits only".into(),
                        span.start,
                    )
                })
        }
        V::Boolean(b) => Ok(Value::Bool(*b)),
        V::Null => Ok(Value::Null),
        V::Placeholder(name) => Err(at(
            format!("placeholders ({name}) are not supported: write the value"),
            span.start,
        )),
        V::DoubleQuotedString(_) => Err(at(
            "a double-quoted string is an identifier; write text in single quotes".into(),
            span.start,
        )),
        other => Err(at(
            format!("this literal form ({other}) is not supported; use 'text', numbers, X'..', TRUE, FALSE or NULL"),
            span.start,
        )),
    }
}

/// A numeric literal: a hex integer (`0x..`, see [`hex_integer`]); an integer when it has
/// no fraction or exponent and fits in 64 bits; otherwise a float.
fn number(digits: &str, span: Span) -> Result<Value, LiveError> {
    if let Some(hex) = hex_digits(digits) {
        return hex_integer(hex, digits, span).map(Value::Int);
    }
    let unsigned = digits.trim_start_matches(['-', '+']);
    if !unsigned.is_empty() && unsigned.bytes().all(|byte| byte.is_ascii_digit()) {
        if let Ok(int) = digits.parse::<i64>() {
            return Ok(Value::Int(int));
        }
    }
    // Read as SQLite reads it: a literal of more than about 19 significant digits can
    // differ from the nearest float.
    read_decimal(digits)
        .map(Value::Float)
        .ok_or_else(|| at(format!("'{digits}' is not a number"), span.start))
}

/// The digits of a hex integer spelled `0x..` or `0X..`.
fn hex_digits(spelling: &str) -> Option<&str> {
    spelling
        .strip_prefix("0x")
        .or_else(|| spelling.strip_prefix("0X"))
}

/// A hex integer as SQLite reads it: the 64-bit two's complement of its digits
/// (`0xFFFFFFFFFFFFFFFF` is -1), leading zeros ignored; more than 16 significant digits are
/// refused ("hex literal too big").
fn hex_integer(hex: &str, spelling: &str, span: Span) -> Result<i64, LiveError> {
    let significant = hex.trim_start_matches('0');
    if significant.len() > 16 {
        return Err(at(
            format!("hex literal too big: {spelling} (at most 16 hex digits, 64 bits)"),
            span.start,
        ));
    }
    if significant.is_empty() {
        return Ok(0);
    }
    u64::from_str_radix(significant, 16)
        .map(|bits| bits as i64)
        .map_err(|_| at(format!("'{spelling}' is not a hex integer"), span.start))
}

/// `expr IS [NOT] NULL` of a copy of `expr`.
fn is_null(expr: &Expr, negated: bool) -> Expr {
    Expr::IsNull {
        expr: Box::new(expr.clone()),
        negated,
    }
}

/// Names an expression construct for messages.
fn describe(context: &Context<'_>, expr: &sql::Expr) -> String {
    use sql::Expr as E;
    match expr {
        E::Function(_) if bare_word_column(expr).is_some() => "a column".into(),
        E::Function(function) => format!("the function call {}()", function.name),
        E::Subquery(_) => "a subquery".into(),
        E::Exists { .. } => "EXISTS (subquery)".into(),
        E::Case { .. } => "CASE".into(),
        E::Cast { .. } => "CAST".into(),
        E::Convert { .. } => "CONVERT".into(),
        E::Extract { .. } => "EXTRACT".into(),
        E::Substring { .. } => "SUBSTRING".into(),
        E::Trim { .. } => "TRIM".into(),
        E::Position { .. } => "POSITION".into(),
        E::Overlay { .. } => "OVERLAY".into(),
        E::Ceil { .. } => "CEIL".into(),
        E::Floor { .. } => "FLOOR".into(),
        E::Collate { .. } => "COLLATE".into(),
        E::AtTimeZone { .. } => "AT TIME ZONE".into(),
        E::IsTrue(_) => "IS TRUE".into(),
        E::IsNotTrue(_) => "IS NOT TRUE".into(),
        E::IsFalse(_) => "IS FALSE".into(),
        E::IsNotFalse(_) => "IS NOT FALSE".into(),
        E::IsUnknown(_) => "IS UNKNOWN".into(),
        E::IsNotUnknown(_) => "IS NOT UNKNOWN".into(),
        E::IsDistinctFrom(..) => "IS DISTINCT FROM".into(),
        E::IsNotDistinctFrom(..) => "IS NOT DISTINCT FROM".into(),
        // GLOB is read as SIMILAR TO (see `sqlite_forms`).
        E::SimilarTo { .. } if !context.wrote_similar() => "GLOB".into(),
        E::SimilarTo { .. } => "SIMILAR TO".into(),
        E::RLike { .. } => "REGEXP / RLIKE".into(),
        E::AnyOp { .. } => "ANY (...)".into(),
        E::AllOp { .. } => "ALL (...)".into(),
        E::Tuple(_) => "a row value (a, b, ...)".into(),
        E::TypedString { .. } => "a typed literal".into(),
        E::Interval(_) => "INTERVAL".into(),
        E::Array(_) => "an array".into(),
        E::BinaryOp { op, .. } => format!("the operator {op}"),
        E::UnaryOp { op, .. } => format!("the unary operator {op}"),
        E::Wildcard(_) | E::QualifiedWildcard(..) => "*".into(),
        E::Value(_) => "a literal".into(),
        E::Identifier(_) | E::CompoundIdentifier(_) => "a column".into(),
        other => {
            // An empty IN list reads as it was written, without the parser's mark.
            let text = other.to_string().replace(EMPTY_LIST_MARK, "");
            let short: String = text.chars().take(40).collect();
            if short.len() < text.len() {
                format!("the expression '{short}...'")
            } else {
                format!("the expression '{short}'")
            }
        }
    }
}

fn unsupported(context: &Context<'_>, expr: &sql::Expr) -> LiveError {
    let verb = if matches!(
        expr,
        sql::Expr::Function(_) | sql::Expr::Subquery(_) | sql::Expr::Exists { .. }
    ) {
        "are"
    } else {
        "is"
    };
    let what = match expr {
        sql::Expr::Function(function) => {
            format!(
                "function calls ({}()) {verb} not supported in a filter",
                function.name
            )
        }
        sql::Expr::Subquery(_) | sql::Expr::Exists { .. } => {
            format!("subqueries {verb} not supported in a filter")
        }
        other => format!(
            "{} {verb} not supported in a filter",
            describe(context, other)
        ),
    };
    at(what, context.start_of(expr))
}

fn unsupported_operand(context: &Context<'_>, expr: &sql::Expr, place: &str) -> LiveError {
    match expr {
        sql::Expr::Function(_) | sql::Expr::Subquery(_) | sql::Expr::Exists { .. } => {
            unsupported(context, expr)
        }
        other => at(
            format!(
                "{} is not supported in {place}: use a column or a literal",
                describe(context, other)
            ),
            context.start_of(other),
        ),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(sql: &str) -> Result<ParsedQuery, LiveError> {
        parse_subscription_sql(sql, &FilterLimits::default())
    }

    #[test]
    fn plain_select() {
        let parsed = parse("SELECT * FROM chat.messages WHERE room = 7").unwrap();
        assert_eq!(parsed.namespace.as_deref(), Some("chat"));
        assert_eq!(parsed.table, "messages");
        assert_eq!(parsed.projection, Projection::All);
        assert_eq!(parsed.filter, Some(Expr::col("room").eq(Expr::lit(7))));
        assert_eq!(parsed.table_id("default"), TableId::new("chat", "messages"));
    }

    /// USER, CURRENT_USER, SESSION_USER, CURRENT_CATALOG, LOCALTIME and LOCALTIMESTAMP
    /// name columns, as in SQLite,
    /// which reserves none of them (the parser reads them as calls of the SQL standard's
    /// functions); written with parentheses, or as a function's argument, they are refused
    /// as SQLite refuses a call of a function it does not have.
    #[test]
    fn standard_function_words_name_columns() {
        let parsed = parse(
            "SELECT user, Current_User FROM t \
             WHERE user = 'ann' AND current_user IS NULL AND session_user > 1 \
             AND CURRENT_CATALOG AND localtime <> LOCALTIMESTAMP",
        )
        .unwrap();
        assert_eq!(
            parsed.projection,
            Projection::Columns(vec!["user".into(), "Current_User".into()])
        );
        assert_eq!(
            parsed.filter,
            Some(Expr::And(vec![
                Expr::col("user").eq(Expr::lit("ann")),
                Expr::col("current_user").is_null(),
                Expr::col("session_user").gt(Expr::lit(1)),
                Expr::col("CURRENT_CATALOG"),
                Expr::col("localtime").not_eq(Expr::col("LOCALTIMESTAMP")),
            ]))
        );
        assert_eq!(
            parse("SELECT * FROM t WHERE \"user\" = 1").unwrap().filter,
            Some(Expr::col("user").eq(Expr::lit(1)))
        );
        for call in [
            "user()",
            "current_user()",
            "session_user()",
            "upper(user)",
            "localtime()",
            "current_timestamp",
        ] {
            let refused = parse(&format!("SELECT * FROM t WHERE {call} = 1"));
            assert!(
                matches!(&refused, Err(LiveError::Sql { line: 1, .. })),
                "{call}: {refused:?}"
            );
        }
    }

    #[test]
    fn numbers_follow_sqlite() {
        let value = |sql: &str| match parse(&format!("SELECT * FROM t WHERE a = {sql}"))
            .unwrap()
            .filter
        {
            Some(Expr::Compare { right, .. }) => match *right {
                Expr::Literal(value) => value,
                other => panic!("{other:?}"),
            },
            other => panic!("{other:?}"),
        };
        assert_eq!(value("7"), Value::Int(7));
        assert_eq!(value("-9223372036854775808"), Value::Int(i64::MIN));
        assert_eq!(
            value("9223372036854775808"),
            Value::Float(9_223_372_036_854_775_808.0)
        );
        assert_eq!(value("- -3"), Value::Int(3));
        assert_eq!(value("7.5"), Value::Float(7.5));
        assert_eq!(value("1e3"), Value::Float(1000.0));
        assert_eq!(value("1E3"), Value::Float(1000.0));
        assert_eq!(value(".5"), Value::Float(0.5));
        assert_eq!(value("5."), Value::Float(5.0));
        assert_eq!(value("+7"), Value::Int(7));
        assert_eq!(value("0x10"), Value::Int(16));
        assert_eq!(value("0X10"), Value::Int(16));
        assert_eq!(value("-0x10"), Value::Int(-16));
        assert_eq!(value("0xFFFFFFFFFFFFFFFF"), Value::Int(-1));
        assert_eq!(value("-(+9223372036854775808)"), Value::Int(i64::MIN));
        assert_eq!(value("X'0aFF'"), Value::bytes(&[0x0a, 0xff]));
        assert_eq!(value("TRUE"), Value::Bool(true));
        assert_eq!(value("NULL"), Value::Null);
        assert_eq!(value("'it''s'"), Value::text("it's"));
    }
}
