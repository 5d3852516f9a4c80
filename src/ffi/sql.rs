//! The one place `lc_subscribe_sql` reaches the SQL front end.
//!
//! TEMPORARY, until the SQL front end (issue 3) lands `ConnectionsManager::subscribe_sql`:
//! then [`subscribe_sql`] becomes a call of it and everything below it in this file goes.
//! Until then, a deliberately small parser covers what the C examples and tests use:
//!
//! ```text
//! SELECT * | col [, col]* FROM namespace.table
//!     [WHERE cond [AND cond]*]
//! cond    := col op literal | col [NOT] IN (literal [, literal]*) | col IS [NOT] NULL
//! op      := = | <> | != | < | <= | > | >=
//! literal := integer | decimal | 'text' ('' inside for a quote) | TRUE | FALSE | NULL
//! ```

use crate::connections_manager::ConnectionsManager;
use crate::error::{LiveError, LiveResult};
use crate::models::ids::{ConnectionId, TableId};
use crate::models::subscription::{SubscriptionOptions, SubscriptionResult};
use crate::models::value::Value;
use crate::query::{CompareOp, Expr, Projection, QuerySpec};
use crate::sync::DataArc;

/// Subscribes `connection_id` to the live query `sql`.
pub(crate) fn subscribe_sql(
    manager: &ConnectionsManager,
    connection_id: ConnectionId,
    sql: &str,
    options: SubscriptionOptions,
) -> LiveResult<SubscriptionResult> {
    let spec = parse(sql)?;
    manager.subscribe_with_text(connection_id, spec, Some(DataArc::from(sql)), options)
}

#[derive(Clone, Debug, PartialEq)]
enum Token {
    Word(String),
    Quoted(String),
    Text(String),
    Number(String),
    Symbol(&'static str),
}

fn sql_error(message: impl Into<String>) -> LiveError {
    LiveError::Sql {
        message: message.into(),
        line: 0,
        column: 0,
    }
}

fn tokenize(sql: &str) -> LiveResult<Vec<Token>> {
    let chars: Vec<char> = sql.chars().collect();
    let mut tokens = Vec::new();
    let mut at = 0;
    while at < chars.len() {
        let c = chars[at];
        if c.is_whitespace() {
            at += 1;
        } else if c.is_ascii_alphabetic() || c == '_' {
            let start = at;
            while at < chars.len() && (chars[at].is_ascii_alphanumeric() || chars[at] == '_') {
                at += 1;
            }
            tokens.push(Token::Word(chars[start..at].iter().collect()));
        } else if c.is_ascii_digit()
            || (c == '-' && chars.get(at + 1).is_some_and(|d| d.is_ascii_digit()))
        {
            let start = at;
            at += 1;
            while at < chars.len() && (chars[at].is_ascii_digit() || chars[at] == '.') {
                at += 1;
            }
            tokens.push(Token::Number(chars[start..at].iter().collect()));
        } else if c == '\'' || c == '"' {
            let mut text = String::new();
            at += 1;
            loop {
                match chars.get(at) {
                    None => return Err(sql_error("unterminated quoted string")),
                    Some(&q) if q == c && chars.get(at + 1) == Some(&c) => {
                        text.push(c);
                        at += 2;
                    }
                    Some(&q) if q == c => {
                        at += 1;
                        break;
                    }
                    Some(&other) => {
                        text.push(other);
                        at += 1;
                    }
                }
            }
            tokens.push(if c == '\'' {
                Token::Text(text)
            } else {
                Token::Quoted(text)
            });
        } else {
            let two: String = chars[at..(at + 2).min(chars.len())].iter().collect();
            let symbol = ["<=", ">=", "<>", "!="]
                .into_iter()
                .find(|symbol| *symbol == two)
                .or_else(|| {
                    ["*", ",", ".", "(", ")", "=", "<", ">"]
                        .into_iter()
                        .find(|symbol| symbol.starts_with(c))
                })
                .ok_or_else(|| sql_error(format!("unexpected character '{c}'")))?;
            at += symbol.len();
            tokens.push(Token::Symbol(symbol));
        }
    }
    Ok(tokens)
}

struct Parser {
    tokens: Vec<Token>,
    at: usize,
}

impl Parser {
    fn peek(&self) -> Option<&Token> {
        self.tokens.get(self.at)
    }

    fn next(&mut self) -> Option<Token> {
        let token = self.tokens.get(self.at).cloned();
        self.at += 1;
        token
    }

    fn keyword(&mut self, word: &str) -> bool {
        match self.peek() {
            Some(Token::Word(found)) if found.eq_ignore_ascii_case(word) => {
                self.at += 1;
                true
            }
            _ => false,
        }
    }

    fn expect_keyword(&mut self, word: &str) -> LiveResult<()> {
        if self.keyword(word) {
            Ok(())
        } else {
            Err(sql_error(format!("expected {word}")))
        }
    }

    fn symbol(&mut self, symbol: &str) -> bool {
        let found = matches!(self.peek(), Some(Token::Symbol(found)) if *found == symbol);
        if found {
            self.at += 1;
        }
        found
    }

    fn identifier(&mut self) -> LiveResult<String> {
        match self.next() {
            Some(Token::Word(word)) | Some(Token::Quoted(word)) => Ok(word),
            _ => Err(sql_error("expected a name")),
        }
    }

    fn literal(&mut self) -> LiveResult<Value> {
        match self.next() {
            Some(Token::Number(number)) => {
                if number.contains('.') {
                    number
                        .parse::<f64>()
                        .map(Value::Float)
                        .map_err(|_| sql_error(format!("bad number {number}")))
                } else {
                    number
                        .parse::<i64>()
                        .map(Value::Int)
                        .map_err(|_| sql_error(format!("bad number {number}")))
                }
            }
            Some(Token::Text(text)) => Ok(Value::from(text)),
            Some(Token::Word(word)) if word.eq_ignore_ascii_case("true") => Ok(Value::Bool(true)),
            Some(Token::Word(word)) if word.eq_ignore_ascii_case("false") => Ok(Value::Bool(false)),
            Some(Token::Word(word)) if word.eq_ignore_ascii_case("null") => Ok(Value::Null),
            _ => Err(sql_error("expected a literal")),
        }
    }

    fn condition(&mut self) -> LiveResult<Expr> {
        let column = Expr::col(self.identifier()?);
        if self.keyword("IS") {
            let negated = self.keyword("NOT");
            self.expect_keyword("NULL")?;
            return Ok(if negated {
                column.is_not_null()
            } else {
                column.is_null()
            });
        }
        let negated = self.keyword("NOT");
        if self.keyword("IN") {
            if !self.symbol("(") {
                return Err(sql_error("expected ( after IN"));
            }
            let mut list = vec![Expr::Literal(self.literal()?)];
            while self.symbol(",") {
                list.push(Expr::Literal(self.literal()?));
            }
            if !self.symbol(")") {
                return Err(sql_error("expected ) to close the IN list"));
            }
            return Ok(Expr::InList {
                expr: Box::new(column),
                list,
                negated,
            });
        }
        if negated {
            return Err(sql_error("expected IN after NOT"));
        }
        let op = match self.next() {
            Some(Token::Symbol("=")) => CompareOp::Eq,
            Some(Token::Symbol("<>")) | Some(Token::Symbol("!=")) => CompareOp::NotEq,
            Some(Token::Symbol("<")) => CompareOp::Lt,
            Some(Token::Symbol("<=")) => CompareOp::LtEq,
            Some(Token::Symbol(">")) => CompareOp::Gt,
            Some(Token::Symbol(">=")) => CompareOp::GtEq,
            _ => return Err(sql_error("expected a comparison operator")),
        };
        Ok(column.compare(op, Expr::Literal(self.literal()?)))
    }
}

fn parse(sql: &str) -> LiveResult<QuerySpec> {
    let mut parser = Parser {
        tokens: tokenize(sql)?,
        at: 0,
    };
    parser.expect_keyword("SELECT")?;
    let projection = if parser.symbol("*") {
        Projection::All
    } else {
        let mut columns = vec![parser.identifier()?];
        while parser.symbol(",") {
            columns.push(parser.identifier()?);
        }
        Projection::Columns(columns)
    };
    parser.expect_keyword("FROM")?;
    let namespace = parser.identifier()?;
    if !parser.symbol(".") {
        return Err(sql_error("name the table as namespace.table"));
    }
    let table = parser.identifier()?;
    let mut spec =
        QuerySpec::table(TableId::new(namespace.as_str(), table.as_str())).project(projection);
    if parser.keyword("WHERE") {
        let mut conditions = vec![parser.condition()?];
        while parser.keyword("AND") {
            conditions.push(parser.condition()?);
        }
        spec = spec.filter(if conditions.len() == 1 {
            conditions.remove(0)
        } else {
            Expr::And(conditions)
        });
    }
    if parser.peek().is_some() {
        return Err(sql_error("unexpected text after the query"));
    }
    Ok(spec)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_the_subset_the_examples_use() {
        let spec = parse("SELECT id, body FROM chat.messages WHERE room = 7 AND id IN (1, 2) AND body IS NOT NULL").unwrap();
        assert_eq!(spec.table_id, TableId::new("chat", "messages"));
        assert_eq!(spec.projection, Projection::columns(["id", "body"]));
        assert_eq!(
            spec.filter.unwrap().to_string(),
            "((\"room\" = 7) AND (\"id\" IN (1, 2)) AND (\"body\" IS NOT NULL))"
        );
        let spec = parse("select * from a.t where price >= -2.5 and name <> 'it''s'").unwrap();
        assert_eq!(
            spec.filter.unwrap().to_string(),
            "((\"price\" >= -2.5) AND (\"name\" <> 'it''s'))"
        );
        for bad in [
            "SELECT * FROM t",
            "SELECT FROM a.t",
            "SELECT * FROM a.t WHERE",
            "SELECT * FROM a.t x",
        ] {
            assert!(matches!(parse(bad), Err(LiveError::Sql { .. })), "{bad}");
        }
    }
}
