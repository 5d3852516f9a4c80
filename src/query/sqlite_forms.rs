//! SQLite's spellings that sqlparser's generic dialect does not read, rewritten on the
//! tokens into forms it does, before the query is parsed:
//!
//! - `x ISNULL` and `x NOTNULL`, and the postfix `x NOT NULL`: `x IS NULL`, `x IS NOT NULL`;
//! - `x IS y` and `x IS NOT y` with any right operand but NULL, TRUE and FALSE: `x IS NOT
//!   DISTINCT FROM y` and `x IS DISTINCT FROM y` (a word after IS, such as UNKNOWN, is a
//!   column, as in SQLite);
//! - `x IN ()` and `x NOT IN ()`: an IN list holding one [`EMPTY_LIST_MARK`] placeholder,
//!   which the converter reads as the empty list (FALSE and TRUE, even for a NULL `x`);
//! - `x GLOB p` and `x NOT GLOB p`: `x SIMILAR TO p`, whose SIMILAR keeps the spelling GLOB
//!   (see [`is_glob`]); a SIMILAR TO the query spells itself is refused by the converter.
//!
//! Switching to sqlparser's SQLite dialect would read these too, but it reads other text
//! differently as well (the generic dialect's reading is what the SQLite differential tests
//! hold), and a dialect delegating the generic one's many settings by hand would drift with
//! each sqlparser release; the rewrites here touch nothing else.

use sqlparser::keywords::Keyword;
use sqlparser::tokenizer::{Token, TokenWithSpan, Whitespace};

use crate::query::operator_words::is_operator;

/// The tokens not yet read.
type Tokens = std::iter::Peekable<std::vec::IntoIter<TokenWithSpan>>;

/// The placeholder an empty IN list is given so that it parses. Placeholders from the text
/// always start with their sigil (`?`, `$`, `:` or `@`), so none can spell this.
pub(crate) const EMPTY_LIST_MARK: &str = "\0empty list";

/// Rewrites the SQLite spellings listed in the module's header.
pub(crate) fn read_sqlite_forms(tokens: Vec<TokenWithSpan>) -> Vec<TokenWithSpan> {
    let mut out: Vec<TokenWithSpan> = Vec::with_capacity(tokens.len());
    let mut tokens = tokens.into_iter().peekable();
    // Whether the last token that is not whitespace ends an operand, kept as the tokens
    // go (looking back over a run of whitespace at each token would be quadratic). A
    // rewrite's last token never ends one.
    let mut after_operand = false;
    while let Some(current) = tokens.next() {
        if matches!(current.token, Token::Whitespace(_)) {
            out.push(current);
            continue;
        }
        // A GLOB where no operand ended is a column of that name (as in SQLite).
        let ends = ends_operand(&current.token)
            || (!after_operand && is_word(&current.token, Keyword::GLOB));
        rewrite(current, after_operand, &mut tokens, &mut out);
        after_operand = ends;
    }
    out
}

/// Pushes `current` to `out`, rewritten when it starts one of the module's forms;
/// `after_operand` tells whether the token before it (whitespace aside) ends an operand.
fn rewrite(
    current: TokenWithSpan,
    after_operand: bool,
    tokens: &mut Tokens,
    out: &mut Vec<TokenWithSpan>,
) {
    let span = current.span;
    let Token::Word(word) = &current.token else {
        out.push(current);
        return;
    };
    if word.quote_style.is_some() {
        out.push(current);
        return;
    }
    if word.keyword == Keyword::IN {
        out.push(current);
        if next_closes_empty_list(tokens, out) {
            out.push(TokenWithSpan::new(
                Token::Placeholder(EMPTY_LIST_MARK.into()),
                span,
            ));
        }
        return;
    }
    if !after_operand {
        out.push(current);
        return;
    }
    if word.keyword == Keyword::GLOB {
        push_glob(current, out);
    } else if word.keyword == Keyword::NOT && next_is(tokens, Keyword::GLOB) {
        out.push(current);
        skip_whitespace(tokens);
        if let Some(glob) = tokens.next() {
            push_glob(glob, out);
        }
    } else if word.value.eq_ignore_ascii_case("isnull") {
        push_words(out, &[Keyword::IS, Keyword::NULL], span);
    } else if word.keyword == Keyword::NOTNULL {
        push_words(out, &[Keyword::IS, Keyword::NOT, Keyword::NULL], span);
    } else if word.keyword == Keyword::NOT && next_is(tokens, Keyword::NULL) {
        // The postfix `x NOT NULL`; `WHERE NOT NULL` and `a AND NOT NULL` are the
        // negation of NULL, and no operand ends before them.
        out.push(with_word(Keyword::IS, span));
        out.push(current);
    } else if word.keyword == Keyword::IS {
        out.push(current);
        let negated = next_is(tokens, Keyword::NOT);
        if negated {
            out.extend(tokens.next());
        }
        let predicate = next_is_any(tokens, &[Keyword::NULL, Keyword::TRUE, Keyword::FALSE])
            || next_is(tokens, Keyword::DISTINCT);
        if !predicate {
            if negated {
                // `x IS NOT y`: NOT becomes DISTINCT FROM.
                out.pop();
                push_words(out, &[Keyword::DISTINCT, Keyword::FROM], span);
            } else {
                push_words(out, &[Keyword::NOT, Keyword::DISTINCT, Keyword::FROM], span);
            }
        }
    } else {
        out.push(current);
    }
}

/// Whether `token` can end an operand, so that a postfix operator may follow it: a column,
/// a literal or a closing parenthesis, not an operator or a clause's keyword.
fn ends_operand(token: &Token) -> bool {
    match token {
        Token::Word(word) => {
            word.quote_style.is_some()
                || !(is_operator(word) || NOT_OPERANDS.contains(&word.keyword))
        }
        Token::Number(..)
        | Token::SingleQuotedString(_)
        | Token::HexStringLiteral(_)
        | Token::Placeholder(_)
        | Token::RParen => true,
        _ => false,
    }
}

/// Words other than livecore's operators after which no operand has ended: SQLite's other
/// operators and the keywords that start a clause or an expression.
const NOT_OPERANDS: [Keyword; 13] = [
    Keyword::MATCH,
    Keyword::DISTINCT,
    Keyword::FROM,
    Keyword::WHERE,
    Keyword::SELECT,
    Keyword::CASE,
    Keyword::WHEN,
    Keyword::THEN,
    Keyword::ELSE,
    Keyword::EXISTS,
    Keyword::ALL,
    Keyword::ANY,
    Keyword::SOME,
];

/// Whether `token` is the unquoted `keyword`.
fn is_word(token: &Token, keyword: Keyword) -> bool {
    matches!(token, Token::Word(word) if word.quote_style.is_none() && word.keyword == keyword)
}

/// Whether the next token that is not whitespace is the unquoted `keyword`.
fn next_is(tokens: &mut Tokens, keyword: Keyword) -> bool {
    next_is_any(tokens, &[keyword])
}

/// Whether the next token that is not whitespace is one of the unquoted `keywords`.
fn next_is_any(tokens: &mut Tokens, keywords: &[Keyword]) -> bool {
    skip_whitespace(tokens);
    tokens.peek().is_some_and(|token| {
        matches!(&token.token, Token::Word(word)
            if word.quote_style.is_none() && keywords.contains(&word.keyword))
    })
}

/// After IN: whether the list is `( )`. Its opening parenthesis is moved to `out` either way
/// (a list of items goes on as it was), so the caller only adds what goes inside.
fn next_closes_empty_list(tokens: &mut Tokens, out: &mut Vec<TokenWithSpan>) -> bool {
    skip_whitespace(tokens);
    if tokens
        .peek()
        .is_none_or(|token| token.token != Token::LParen)
    {
        return false;
    }
    out.push(tokens.next().expect("peeked"));
    skip_whitespace(tokens);
    tokens
        .peek()
        .is_some_and(|token| token.token == Token::RParen)
}

/// Drops the whitespace (and comments) before the next token: the parser skips them, and
/// the spans keep every position for messages.
fn skip_whitespace(tokens: &mut Tokens) {
    while tokens
        .peek()
        .is_some_and(|token| matches!(token.token, Token::Whitespace(_)))
    {
        tokens.next();
    }
}

/// The unquoted word `keyword`, at `span`.
fn with_word(keyword: Keyword, span: sqlparser::tokenizer::Span) -> TokenWithSpan {
    let spelling = format!("{keyword:?}");
    TokenWithSpan::new(Token::make_keyword(&spelling), span)
}

/// Pushes SQLite's GLOB operator as sqlparser's `SIMILAR TO`, at the GLOB's place: the
/// SIMILAR word keeps the spelling it was written with, which tells the converter it is a
/// GLOB.
fn push_glob(glob: TokenWithSpan, out: &mut Vec<TokenWithSpan>) {
    let span = glob.span;
    let Token::Word(mut word) = glob.token else {
        out.push(glob);
        return;
    };
    word.keyword = Keyword::SIMILAR;
    out.push(TokenWithSpan::new(Token::Word(word), span));
    push_words(out, &[Keyword::TO], span);
}

/// Whether a SIMILAR keyword among the rewritten tokens stands for a GLOB (it is spelled
/// GLOB; one the query wrote is spelled SIMILAR).
pub(crate) fn is_glob(token: &Token) -> bool {
    matches!(token, Token::Word(word)
        if word.keyword == Keyword::SIMILAR && !word.value.eq_ignore_ascii_case("similar"))
}

/// Pushes `keywords` as words, each after a space, all at `span`.
fn push_words(
    out: &mut Vec<TokenWithSpan>,
    keywords: &[Keyword],
    span: sqlparser::tokenizer::Span,
) {
    for &keyword in keywords {
        out.push(TokenWithSpan::new(
            Token::Whitespace(Whitespace::Space),
            span,
        ));
        out.push(with_word(keyword, span));
    }
}
