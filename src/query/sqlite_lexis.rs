//! SQLite's lexical rules where sqlparser's generic tokenizer reads the text another way,
//! applied to the query's text before it is tokenized:
//!
//! - a block comment ends at the first `*/`: the generic dialect nests `/* ... */`, so
//!   `0 /* /* */ OR 1 --*/` lost its `OR 1` to the comment;
//! - `/*! ... */` is an ordinary comment: the generic dialect reads MySQL's hints inside
//!   it as SQL, so `c0 = 1 /*!AND 0*/` gained an `AND 0`;
//! - a block comment may run to the end of the text, as SQLite allows, but a `/*` that
//!   ends the text is no comment (SQLite reads a slash and a star, a syntax error);
//! - whitespace is space, tab, newline, form feed and carriage return only: any other
//!   character Unicode calls whitespace (a no-break space, a vertical tab) is refused here,
//!   where the generic tokenizer skipped it and SQLite reads it as part of a name or
//!   refuses it;
//! - a NUL is refused: SQLite stops reading at it, so the text after it would be read one
//!   way by SQLite and another here.
//!
//! The comment rules are applied by rewriting comment text only, character for character
//! (an opening `/*` inside a comment loses its `/`, a hint's `!` becomes a space), so every
//! token keeps its line and column. Quoted text is skipped as SQLite quotes it: `'...'`,
//! `"..."` and `` `...` `` with the quote doubled inside, `[...]` with no escape.
//!
//! Hand-written: no crate reads SQLite's lexis, and sqlparser's dialect settings for
//! comments cannot be changed without a dialect delegating all of the generic one's
//! settings (see `sqlite_forms`).

use std::borrow::Cow;

use crate::error::LiveError;

/// The text as SQLite's comment rules read it (see the module header), or the refusal of a
/// character SQLite reads another way.
pub(crate) fn as_sqlite_reads(sql: &str) -> Result<Cow<'_, str>, LiveError> {
    let bytes = sql.as_bytes();
    // Byte offsets of the characters to turn into spaces, and whether a comment is left
    // open at the end.
    let mut blanked: Vec<usize> = Vec::new();
    let mut open_comment = false;
    let mut at = 0;
    while at < bytes.len() {
        match bytes[at] {
            quote @ (b'\'' | b'"' | b'`') => at = after_quoted(bytes, at, quote, quote),
            b'[' => at = after_quoted(bytes, at, b'[', b']'),
            b'-' if bytes.get(at + 1) == Some(&b'-') => {
                at = bytes[at..]
                    .iter()
                    .position(|&byte| byte == b'\n')
                    .map_or(bytes.len(), |newline| at + newline);
            }
            // SQLite reads `/*` as a slash and a star when nothing follows it (a syntax
            // error, which the tokenizer reports for the unclosed comment it sees).
            b'/' if bytes.get(at + 1) == Some(&b'*') && at + 2 < bytes.len() => {
                let body = at + 2;
                if bytes.get(body) == Some(&b'!') {
                    blanked.push(body);
                }
                let end = bytes[body..]
                    .windows(2)
                    .position(|pair| pair == b"*/")
                    .map(|offset| body + offset);
                // Every `/` the generic tokenizer would read as opening a nested comment
                // is blanked, including one whose `*` begins the closing `*/` (`/*/*/` is
                // one comment).
                let body_end = end.unwrap_or(bytes.len());
                for inner in body..body_end {
                    if bytes[inner] == b'/' && bytes.get(inner + 1) == Some(&b'*') {
                        blanked.push(inner);
                    }
                }
                match end {
                    Some(end) => at = end + 2,
                    None => {
                        open_comment = true;
                        at = bytes.len();
                    }
                }
            }
            _ => {
                // Outside quotes and comments: characters are checked one by one (the
                // bytes of a multi-byte character never match the ASCII arms above).
                let ch = sql[at..].chars().next().unwrap_or('\0');
                refuse_unless_sqlite_reads(sql, at, ch)?;
                at += ch.len_utf8();
            }
        }
    }
    if let Some(nul) = bytes.iter().position(|&byte| byte == 0) {
        return Err(refusal(
            sql,
            nul,
            "a NUL character in the query (SQLite stops reading at it)".to_string(),
        ));
    }
    if blanked.is_empty() && !open_comment {
        return Ok(Cow::Borrowed(sql));
    }
    let mut text = bytes.to_vec();
    for offset in blanked {
        text[offset] = b' ';
    }
    if open_comment {
        // The space keeps a `/` that ends the text from opening a comment with the `*`.
        text.extend_from_slice(b" */");
    }
    // Only ASCII bytes were replaced by ASCII bytes, and ASCII appended.
    Ok(Cow::Owned(
        String::from_utf8(text).expect("ASCII replaced by ASCII keeps the text UTF-8"),
    ))
}

/// The offset just past the quoted text opened at `start` (the end of the text if the
/// quote is never closed: the tokenizer then reports it). A closing quote doubled is part
/// of the text, except for brackets, which have no escape.
fn after_quoted(bytes: &[u8], start: usize, open: u8, close: u8) -> usize {
    let mut at = start + 1;
    while at < bytes.len() {
        if bytes[at] == close {
            if open != b'[' && bytes.get(at + 1) == Some(&close) {
                at += 2;
                continue;
            }
            return at + 1;
        }
        at += 1;
    }
    bytes.len()
}

/// Refuses `ch` at byte `at` if the generic tokenizer would skip it as whitespace where
/// SQLite does not (see the module header).
fn refuse_unless_sqlite_reads(sql: &str, at: usize, ch: char) -> Result<(), LiveError> {
    if ch.is_whitespace() && !matches!(ch, ' ' | '\t' | '\n' | '\x0c' | '\r') {
        return Err(refusal(
            sql,
            at,
            format!(
                "the character U+{:04X} is not whitespace in SQL (SQLite reads it as part \
                 of a name, or refuses it)",
                u32::from(ch)
            ),
        ));
    }
    Ok(())
}

/// A refusal placed at byte `at` of `sql`: lines and columns counted from 1, columns in
/// characters, as the tokenizer counts them.
fn refusal(sql: &str, at: usize, message: String) -> LiveError {
    let before = &sql[..at];
    let line = before.matches('\n').count() + 1;
    let line_start = before.rfind('\n').map_or(0, |newline| newline + 1);
    let column = before[line_start..].chars().count() + 1;
    LiveError::Sql {
        message,
        line: line as u64,
        column: column as u64,
    }
}

/// The words SQLite reserves: written bare, none can name a column (SQLite refuses
/// `WHERE all = 1`; quoted, `"all"` names it). Found by trying each of SQLite's keywords
/// as a bare column name in `c = 1`, `c IS NULL` and `1 = c`; the others (`KEY`, `ROWS`,
/// `TEMP`, ...) fall back to being names. Sorted.
const RESERVED: [&str; 59] = [
    "ADD",
    "ALL",
    "ALTER",
    "AND",
    "AS",
    "AUTOINCREMENT",
    "BETWEEN",
    "CASE",
    "CAST",
    "CHECK",
    "COLLATE",
    "COMMIT",
    "CONSTRAINT",
    "CREATE",
    "DEFAULT",
    "DEFERRABLE",
    "DELETE",
    "DISTINCT",
    "DROP",
    "ELSE",
    "ESCAPE",
    "EXCEPT",
    "EXISTS",
    "FOREIGN",
    "FROM",
    "GROUP",
    "HAVING",
    "IN",
    "INDEX",
    "INSERT",
    "INTERSECT",
    "INTO",
    "IS",
    "ISNULL",
    "JOIN",
    "LIMIT",
    "NOT",
    "NOTHING",
    "NOTNULL",
    "ON",
    "OR",
    "ORDER",
    "PRIMARY",
    "RAISE",
    "REFERENCES",
    "RETURNING",
    "SELECT",
    "SET",
    "TABLE",
    "THEN",
    "TO",
    "TRANSACTION",
    "UNION",
    "UNIQUE",
    "UPDATE",
    "USING",
    "VALUES",
    "WHEN",
    "WHERE",
];

/// Whether SQLite reserves `word` (any case), so that it cannot name a column unquoted.
pub(crate) fn is_reserved(word: &str) -> bool {
    RESERVED
        .iter()
        .any(|reserved| reserved.eq_ignore_ascii_case(word))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn read(sql: &str) -> String {
        as_sqlite_reads(sql).unwrap().into_owned()
    }

    #[test]
    fn comments_end_at_the_first_close_and_hints_are_comments() {
        assert_eq!(read("0 /* /* */ OR 1"), "0 /*  * */ OR 1");
        assert_eq!(read("c0 = 1 /*!AND 0*/"), "c0 = 1 /* AND 0*/");
        assert_eq!(read("c0 = 1 /* open"), "c0 = 1 /* open */");
        // A `/*` whose star begins the close: still one comment.
        assert_eq!(read("c0 = 2 /*/*/ OR 1"), "c0 = 2 /* */ OR 1");
        assert_eq!(read("c0 = 2 /*!/*/ OR 1"), "c0 = 2 /*  */ OR 1");
        // A comment left open after a slash.
        assert_eq!(read("c0 = 2 /* a/"), "c0 = 2 /* a/ */");
        assert_eq!(read("c0 = 2 /*/"), "c0 = 2 /*/ */");
        // A `/*` that ends the text is no comment: left for the tokenizer to refuse.
        assert!(matches!(as_sqlite_reads("c0 = 2 /*"), Ok(Cow::Borrowed(_))));
        // Nothing to rewrite: the text itself.
        assert!(matches!(
            as_sqlite_reads("a = 1 /* x */ -- /* y"),
            Ok(Cow::Borrowed(_))
        ));
    }

    #[test]
    fn quoted_text_and_line_comments_hold_no_comment() {
        for sql in [
            "a = '/*' OR b = 1",
            "a = 'it''s /*' OR b = 1",
            "\"x/*\" = 1",
            "`x/*` = 1",
            "[x/*] = 1",
            "a = 1 -- /* \n OR b = 2",
        ] {
            assert_eq!(read(sql), sql, "{sql}");
        }
    }

    #[test]
    fn whitespace_sqlite_does_not_skip_and_nul_are_refused_in_place() {
        for (sql, line, column) in [
            ("c0\u{a0}= 1", 1, 3),
            ("c0 = 1 AND\n\u{b}c1 = 2", 2, 1),
            ("c0 = 'a\0b'", 1, 8),
            ("c0 = 1 /* \0 */", 1, 11),
        ] {
            match as_sqlite_reads(sql) {
                Err(LiveError::Sql {
                    line: l, column: c, ..
                }) => assert_eq!((l, c), (line, column), "{sql:?}"),
                other => panic!("{sql:?}: {other:?}"),
            }
        }
        // Inside quotes and comments, such characters are text.
        assert_eq!(
            read("c0 = '\u{a0}' /* \u{b} */"),
            "c0 = '\u{a0}' /* \u{b} */"
        );
    }
}
