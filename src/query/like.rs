//! LIKE and ILIKE patterns, compiled once and matched without backtracking.
//!
//! A pattern splits at `%` into segments of fixed length (in characters: `_` matches exactly
//! one). The first segment is anchored at the start, the last at the end, and every segment
//! between is placed at its leftmost match: since segments have fixed lengths, the leftmost
//! placement never rules out a match that a later one would allow, so no backtracking is
//! needed. Matching costs at most (input length x pattern length) character comparisons and
//! allocates nothing.

use crate::error::LiveError;

#[derive(Clone, Copy, Debug, PartialEq)]
enum Token {
    Char(char),
    AnyOne,
}

/// A compiled LIKE / ILIKE pattern.
#[derive(Clone, Debug, PartialEq)]
pub(crate) struct LikePattern {
    /// Segments between `%`s; `segments.len() == 1` means the pattern has no `%`.
    segments: Vec<Vec<Token>>,
    case_insensitive: bool,
}

impl LikePattern {
    /// Compiles `pattern`. An escape character makes the next character literal; a pattern
    /// that ends with its escape character is refused.
    pub(crate) fn compile(
        pattern: &str,
        escape: Option<char>,
        case_insensitive: bool,
    ) -> Result<Self, LiveError> {
        let mut segments = vec![Vec::new()];
        let mut chars = pattern.chars();
        while let Some(c) = chars.next() {
            let token = if Some(c) == escape {
                match chars.next() {
                    Some(escaped) => Token::Char(escaped),
                    None => {
                        return Err(LiveError::InvalidFilter(
                            "LIKE pattern must not end with its escape character".into(),
                        ))
                    }
                }
            } else if c == '%' {
                segments.push(Vec::new());
                continue;
            } else if c == '_' {
                Token::AnyOne
            } else {
                Token::Char(c)
            };
            let token = match token {
                Token::Char(c) if case_insensitive => Token::Char(fold(c)),
                other => other,
            };
            segments
                .last_mut()
                .expect("segments starts non-empty")
                .push(token);
        }
        Ok(Self {
            segments,
            case_insensitive,
        })
    }

    /// True when `input` matches the whole pattern.
    pub(crate) fn matches(&self, input: &str) -> bool {
        let (first, rest) = self.segments.split_first().expect("at least one segment");
        let Some(mut position) = self.match_at(input, 0, first) else {
            return false;
        };
        let Some((last, middle)) = rest.split_last() else {
            // No `%`: the one segment must cover the whole input.
            return position == input.len();
        };
        for segment in middle {
            match self.find_leftmost(input, position, segment) {
                Some(end) => position = end,
                None => return false,
            }
        }
        // The last segment is anchored at the end of the input.
        let Some(start) = start_of_last_chars(input, last.len()) else {
            return false;
        };
        start >= position && self.match_at(input, start, last).is_some()
    }

    /// Matches `segment` at byte offset `start`; returns the byte offset after it.
    fn match_at(&self, input: &str, start: usize, segment: &[Token]) -> Option<usize> {
        let mut chars = input[start..].char_indices();
        for token in segment {
            let (_, c) = chars.next()?;
            if let Token::Char(expected) = token {
                let c = if self.case_insensitive { fold(c) } else { c };
                if c != *expected {
                    return None;
                }
            }
        }
        Some(
            chars
                .next()
                .map_or(input.len(), |(offset, _)| start + offset),
        )
    }

    fn find_leftmost(&self, input: &str, from: usize, segment: &[Token]) -> Option<usize> {
        if segment.is_empty() {
            return Some(from);
        }
        input[from..]
            .char_indices()
            .find_map(|(offset, _)| self.match_at(input, from + offset, segment))
    }
}

/// Byte offset where the last `count` characters of `input` start.
fn start_of_last_chars(input: &str, count: usize) -> Option<usize> {
    if count == 0 {
        return Some(input.len());
    }
    input
        .char_indices()
        .rev()
        .nth(count - 1)
        .map(|(offset, _)| offset)
}

/// Simple case folding for ILIKE: a character's lower-case form when it is one character.
fn fold(c: char) -> char {
    if c.is_ascii() {
        return c.to_ascii_lowercase();
    }
    let mut lower = c.to_lowercase();
    match (lower.next(), lower.next()) {
        (Some(single), None) => single,
        _ => c,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn like(input: &str, pattern: &str) -> bool {
        LikePattern::compile(pattern, Some('\\'), false)
            .unwrap()
            .matches(input)
    }

    #[test]
    fn wildcards() {
        assert!(like("hello", "hello"));
        assert!(!like("hello", "hell"));
        assert!(like("hello", "h%"));
        assert!(like("hello", "%llo"));
        assert!(like("hello", "%l%"));
        assert!(like("hello", "h_l_o"));
        assert!(!like("hello", "h_l_"));
        assert!(like("", "%"));
        assert!(!like("", "_"));
        assert!(like("abcabc", "a%c%c"));
        assert!(!like("abc", "a%bc%bc"));
        assert!(like("aXbXc", "%X_X%"));
        assert!(like("ünï", "_n_"));
    }

    #[test]
    fn escapes_make_wildcards_literal() {
        assert!(like("50%", "50\\%"));
        assert!(!like("500", "50\\%"));
        assert!(like("a_b", "a\\_b"));
        assert!(!like("axb", "a\\_b"));
        assert!(LikePattern::compile("abc\\", Some('\\'), false).is_err());
    }

    #[test]
    fn case_sensitivity() {
        assert!(!like("Hello", "hello"));
        let ilike = LikePattern::compile("hÉL%", None, true).unwrap();
        assert!(ilike.matches("HéLLO"));
    }

    #[test]
    fn no_blowup_on_hostile_patterns() {
        let input = "a".repeat(20_000);
        let pattern = format!("{}b", "%a".repeat(50));
        assert!(!like(&input, &pattern));
    }
}
