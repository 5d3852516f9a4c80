//! The words that are operators in a filter, shared by the operator count (a limit checked
//! on the tokens before they are parsed) and the SQLite-forms pass (which must know where
//! an operand ends).

use sqlparser::keywords::Keyword;
use sqlparser::tokenizer::Word;

/// Binary and postfix operators spelled as words (symbols such as `=` are their own
/// tokens).
const OPERATORS: [Keyword; 19] = [
    Keyword::AND,
    Keyword::OR,
    Keyword::NOT,
    Keyword::XOR,
    Keyword::IS,
    Keyword::LIKE,
    Keyword::ILIKE,
    Keyword::BETWEEN,
    Keyword::IN,
    Keyword::SIMILAR,
    Keyword::GLOB,
    Keyword::REGEXP,
    Keyword::RLIKE,
    Keyword::DIV,
    Keyword::MOD,
    Keyword::COLLATE,
    Keyword::AT,
    Keyword::ESCAPE,
    Keyword::NOTNULL,
];

/// Whether `word`, unquoted, is an operator: each is at least one node of a filter.
/// SQLite's postfix ISNULL is one, though sqlparser knows it as no keyword.
pub(crate) fn is_operator(word: &Word) -> bool {
    word.quote_style.is_none()
        && (OPERATORS.contains(&word.keyword) || word.value.eq_ignore_ascii_case("isnull"))
}
