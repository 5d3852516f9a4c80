//! LIKE, ILIKE and GLOB patterns, compiled once and matched in time linear in the input.
//!
//! A pattern splits at `%` into segments of fixed length (in characters: `_` matches exactly
//! one). The first segment is anchored at the start, the last at the end, and every segment
//! between is placed at its leftmost match: since segments have fixed lengths, the leftmost
//! placement never rules out a match that a later one would allow, so no backtracking is
//! needed. The leftmost match of a middle segment is found with the bit-parallel Shift-And
//! algorithm, which reads each input character once and updates one bit per segment
//! character (a machine word per 64), so matching costs O(input length x (1 + segment
//! length / 64)) whatever the pattern, and allocates nothing for segments up to 1024
//! characters.
//!
//! GLOB is the same matcher with SQLite's other spelling (`*` for `%`, `?` for `_`, case
//! always significant) and one more kind of token: a set (`[a-z]`, `[^0-9]`), which is one
//! character too. A segment's set positions are added to each input character's mask as it
//! is read, so a segment with sets costs one membership test per set and character more.
//! Written here rather than taken from a glob crate: those match file paths (with their own
//! rules for `/`, dots and escapes), not SQLite's GLOB, whose corner cases (`[]x]`, `[a-]`,
//! an unterminated set matching nothing) the differential tests hold.

use smallvec::{smallvec, SmallVec};

#[derive(Clone, Copy, Debug, PartialEq)]
enum Token {
    Char(char),
    AnyOne,
    /// One character of a set (GLOB's `[...]`, or LIKE's set that holds nothing for an
    /// escape that ends the pattern): the index of the set in [`LikePattern::sets`].
    Set(u32),
}

/// A GLOB set (`[...]`): characters and inclusive ranges, or the characters outside them.
#[derive(Clone, Debug, PartialEq)]
struct CharSet {
    /// Inclusive ranges; a single character is a range of one. A range written backwards
    /// (`[z-a]`) holds nothing, as in SQLite.
    ranges: Box<[(char, char)]>,
    inverted: bool,
}

impl CharSet {
    /// What an unterminated GLOB set, or an escape that ends a LIKE pattern, stands for:
    /// SQLite's matcher fails wherever it reaches one, and every token of a pattern is
    /// reached by any match.
    fn nothing() -> Self {
        Self {
            ranges: Box::new([]),
            inverted: false,
        }
    }

    fn contains(&self, c: char) -> bool {
        self.ranges.iter().any(|&(low, high)| low <= c && c <= high) != self.inverted
    }

    /// Reads a set after its `[`, as SQLite does: `^` first inverts it, `]` first (after
    /// any `^`) is a member, `-` between two members makes a range, and anywhere else is a
    /// member. `None` when no `]` closes it.
    fn read(chars: &mut std::iter::Peekable<std::str::Chars<'_>>) -> Option<Self> {
        let mut ranges = Vec::new();
        let mut c = chars.next()?;
        let inverted = c == '^';
        if inverted {
            c = chars.next()?;
        }
        if c == ']' {
            ranges.push((']', ']'));
            c = chars.next()?;
        }
        // The member just read, which a `-` may extend into a range.
        let mut prior: Option<char> = None;
        while c != ']' {
            match (prior, c, chars.peek()) {
                (Some(low), '-', Some(&high)) if high != ']' => {
                    chars.next();
                    ranges.push((low, high));
                    prior = None;
                }
                _ => {
                    ranges.push((c, c));
                    prior = Some(c);
                }
            }
            c = chars.next()?;
        }
        Some(Self {
            ranges: ranges.into_boxed_slice(),
            inverted,
        })
    }
}

/// One `%`-free run of the pattern, with its Shift-And tables.
#[derive(Clone, Debug, PartialEq)]
struct Segment {
    tokens: Vec<Token>,
    /// Bits of the positions holding `_`, which every character matches.
    any_mask: Box<[u64]>,
    /// For each distinct literal character (sorted), the bits of the positions it matches
    /// (its own and every `_`).
    char_masks: Vec<(char, Box<[u64]>)>,
    /// The position and set of each GLOB set token, whose bits depend on the character.
    sets: Vec<(usize, u32)>,
}

impl Segment {
    fn new(tokens: Vec<Token>) -> Self {
        let words = tokens.len().div_ceil(64).max(1);
        let mut any_mask = vec![0u64; words].into_boxed_slice();
        for (index, token) in tokens.iter().enumerate() {
            if *token == Token::AnyOne {
                any_mask[index / 64] |= 1 << (index % 64);
            }
        }
        let mut chars: Vec<char> = tokens
            .iter()
            .filter_map(|token| match token {
                Token::Char(c) => Some(*c),
                Token::AnyOne | Token::Set(_) => None,
            })
            .collect();
        chars.sort_unstable();
        chars.dedup();
        let char_masks = chars
            .into_iter()
            .map(|c| {
                let mut mask = any_mask.clone();
                for (index, token) in tokens.iter().enumerate() {
                    if *token == Token::Char(c) {
                        mask[index / 64] |= 1 << (index % 64);
                    }
                }
                (c, mask)
            })
            .collect();
        let sets = tokens
            .iter()
            .enumerate()
            .filter_map(|(index, token)| match token {
                Token::Set(set) => Some((index, *set)),
                _ => None,
            })
            .collect();
        Self {
            tokens,
            any_mask,
            char_masks,
            sets,
        }
    }

    fn len(&self) -> usize {
        self.tokens.len()
    }

    fn mask(&self, c: char) -> &[u64] {
        match self
            .char_masks
            .binary_search_by(|(candidate, _)| candidate.cmp(&c))
        {
            Ok(index) => &self.char_masks[index].1,
            Err(_) => &self.any_mask,
        }
    }
}

/// A compiled LIKE / ILIKE / GLOB pattern.
#[derive(Clone, Debug, PartialEq)]
pub(crate) struct LikePattern {
    /// Segments between `%`s (GLOB's `*`s); `segments.len() == 1` means the pattern has none.
    segments: Vec<Segment>,
    case_insensitive: bool,
    /// The sets [`Token::Set`] names by index: GLOB's, or for LIKE the one that stands for
    /// an escape ending the pattern (empty otherwise).
    sets: Box<[CharSet]>,
}

impl LikePattern {
    /// Compiles `pattern`. An escape character makes the next character literal; one that
    /// ends the pattern escapes nothing and, as in SQLite, fails every match (each match
    /// reaches the end of the pattern), so such a pattern matches nothing.
    pub(crate) fn compile(pattern: &str, escape: Option<char>, case_insensitive: bool) -> Self {
        let mut segments = vec![Vec::new()];
        let mut sets = Vec::new();
        let mut chars = pattern.chars();
        while let Some(c) = chars.next() {
            let token = if Some(c) == escape {
                match chars.next() {
                    Some(escaped) => Token::Char(escaped),
                    None => {
                        sets.push(CharSet::nothing());
                        Token::Set(sets.len() as u32 - 1)
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
        Self {
            segments: segments.into_iter().map(Segment::new).collect(),
            case_insensitive,
            sets: sets.into_boxed_slice(),
        }
    }

    /// Compiles a GLOB `pattern`, read as SQLite reads it: `*` matches any run of
    /// characters, `?` exactly one, `[...]` one of a set (see [`CharSet::read`]), anything
    /// else itself, case included; there is no escape character. A set that no `]` closes
    /// matches nothing, so neither does the pattern.
    pub(crate) fn compile_glob(pattern: &str) -> Self {
        let mut segments = vec![Vec::new()];
        let mut sets = Vec::new();
        let mut chars = pattern.chars().peekable();
        while let Some(c) = chars.next() {
            let token = match c {
                '*' => {
                    segments.push(Vec::new());
                    continue;
                }
                '?' => Token::AnyOne,
                '[' => {
                    let set = CharSet::read(&mut chars);
                    let closed = set.is_some();
                    sets.push(set.unwrap_or_else(CharSet::nothing));
                    let token = Token::Set((sets.len() - 1) as u32);
                    if !closed {
                        segments
                            .last_mut()
                            .expect("segments starts non-empty")
                            .push(token);
                        break;
                    }
                    token
                }
                c => Token::Char(c),
            };
            segments
                .last_mut()
                .expect("segments starts non-empty")
                .push(token);
        }
        Self {
            segments: segments.into_iter().map(Segment::new).collect(),
            case_insensitive: false,
            sets: sets.into_boxed_slice(),
        }
    }

    /// True when `input` matches the whole pattern.
    pub(crate) fn matches(&self, input: &str) -> bool {
        self.matches_counting(input, &mut NoSteps)
    }

    /// `matches`, reporting the matcher's work to `steps`: one step per segment visited, per
    /// character compared against a segment, per character walked back from the end, and
    /// per Shift-And state word updated. With [`NoSteps`] the counting compiles away.
    fn matches_counting(&self, input: &str, steps: &mut impl Steps) -> bool {
        let (first, rest) = self.segments.split_first().expect("at least one segment");
        steps.add(1);
        let Some(mut position) = self.match_at(input, 0, &first.tokens, steps) else {
            return false;
        };
        let Some((last, middle)) = rest.split_last() else {
            // No `%`: the one segment must cover the whole input.
            return position == input.len();
        };
        for segment in middle {
            steps.add(1);
            match self.find_leftmost(input, position, segment, steps) {
                Some(end) => position = end,
                None => return false,
            }
        }
        // The last segment is anchored at the end of the input.
        steps.add(1 + last.len());
        let Some(start) = start_of_last_chars(input, last.len()) else {
            return false;
        };
        start >= position && self.match_at(input, start, &last.tokens, steps).is_some()
    }

    #[inline]
    fn fold_if_needed(&self, c: char) -> char {
        if self.case_insensitive {
            fold(c)
        } else {
            c
        }
    }

    /// Matches `segment` at byte offset `start`; returns the byte offset after it.
    fn match_at(
        &self,
        input: &str,
        start: usize,
        segment: &[Token],
        steps: &mut impl Steps,
    ) -> Option<usize> {
        let mut chars = input[start..].char_indices();
        for token in segment {
            let (_, c) = chars.next()?;
            steps.add(1);
            match token {
                Token::Char(expected) if self.fold_if_needed(c) != *expected => return None,
                Token::Set(set) if !self.sets[*set as usize].contains(c) => return None,
                _ => {}
            }
        }
        Some(
            chars
                .next()
                .map_or(input.len(), |(offset, _)| start + offset),
        )
    }

    /// The byte offset just after the leftmost match of `segment` at or after `from`
    /// (Shift-And: bit `j` of `state` is set when the last `j + 1` characters read match
    /// the segment's first `j + 1` tokens).
    fn find_leftmost(
        &self,
        input: &str,
        from: usize,
        segment: &Segment,
        steps: &mut impl Steps,
    ) -> Option<usize> {
        let len = segment.len();
        if len == 0 {
            return Some(from);
        }
        let words = segment.any_mask.len();
        let (last_word, last_bit) = ((len - 1) / 64, (len - 1) % 64);
        let mut state: SmallVec<[u64; 16]> = smallvec![0; words];
        let mut with_sets: SmallVec<[u64; 16]> = SmallVec::new();
        for (offset, c) in input[from..].char_indices() {
            let mut mask = segment.mask(self.fold_if_needed(c));
            if !segment.sets.is_empty() {
                with_sets.clear();
                with_sets.extend_from_slice(mask);
                for &(position, set) in &segment.sets {
                    if self.sets[set as usize].contains(c) {
                        with_sets[position / 64] |= 1 << (position % 64);
                    }
                }
                steps.add(segment.sets.len());
                mask = &with_sets;
            }
            steps.add(words);
            let mut carry = 1u64;
            for (word, bits) in state.iter_mut().zip(mask) {
                let next_carry = *word >> 63;
                *word = ((*word << 1) | carry) & bits;
                carry = next_carry;
            }
            if (state[last_word] >> last_bit) & 1 == 1 {
                return Some(from + offset + c.len_utf8());
            }
        }
        None
    }
}

/// What the matcher reports its work to: [`NoSteps`] in every build, a counter in the
/// linearity tests.
trait Steps {
    fn add(&mut self, steps: usize);
}

/// Counts nothing; calls to it compile away.
struct NoSteps;

impl Steps for NoSteps {
    #[inline(always)]
    fn add(&mut self, _steps: usize) {}
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
        LikePattern::compile(pattern, Some('\\'), false).matches(input)
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
        // A trailing escape escapes nothing: as in SQLite, nothing matches.
        for pattern in ["abc\\", "%\\", "\\", "_\\", "a\\\\\\"] {
            for input in ["", "abc", "abc\\", "\\", "x", "a\\"] {
                assert!(!like(input, pattern), "{input:?} LIKE {pattern:?}");
            }
        }
        assert!(like("a\\", "a\\\\"), "an escaped escape is literal");
    }

    fn glob(input: &str, pattern: &str) -> bool {
        LikePattern::compile_glob(pattern).matches(input)
    }

    #[test]
    fn glob_wildcards_and_sets() {
        assert!(glob("hello", "h*o"));
        assert!(glob("hello", "h?llo"));
        assert!(!glob("Hello", "h*"));
        assert!(glob("hello", "*[l]*"));
        assert!(glob("b7", "[a-c][0-9]"));
        assert!(!glob("d7", "[a-c][0-9]"));
        assert!(glob("d7", "[^a-c]?"));
        assert!(!glob("b7", "[^a-c]?"));
        // `]` first is a member, `-` last or first is a member.
        assert!(glob("]", "[]]"));
        assert!(glob("]", "[^a]"));
        assert!(!glob("]", "[^]]"));
        assert!(glob("-", "[a-]"));
        assert!(glob("-", "[-a]"));
        // A backwards range holds nothing but what was read as a member before it.
        assert!(!glob("m", "[z-a]"));
        // After a range, `-` is a member again.
        assert!(glob("-", "[a-c-]"));
        assert!(glob("e", "[a-c-e]"));
        // Wildcards inside a set are members.
        assert!(glob("*", "[*]"));
        assert!(!glob("x", "[*]"));
        assert!(glob("%_", "%_"));
        assert!(!glob("ab", "%_"));
        // A set no `]` closes matches nothing, even after `*`.
        assert!(!glob("a[", "a["));
        assert!(!glob("abc", "*[abc"));
        assert!(!glob("", "*["));
        assert!(glob("", "*"));
        assert!(glob("ünï", "?n[ï]"));
        // Sets in a middle segment go through the Shift-And search.
        assert!(glob("xxaby1zz", "*a[a-c]y[0-9]*"));
        assert!(!glob("xxaxy1zz", "*a[a-c]y[0-9]*"));
        assert!(glob("abab1", "*[ab]b1"));
    }

    #[test]
    fn case_sensitivity() {
        assert!(!like("Hello", "hello"));
        let ilike = LikePattern::compile("hÉL%", None, true);
        assert!(ilike.matches("HéLLO"));
    }

    impl Steps for usize {
        fn add(&mut self, steps: usize) {
            *self += steps;
        }
    }

    /// The verdict and the matcher's step count for `input` against `pattern`.
    fn counted(input: &str, pattern: &str) -> (bool, usize) {
        let compiled = LikePattern::compile(pattern, Some('\\'), false);
        let mut steps = 0usize;
        let matched = compiled.matches_counting(input, &mut steps);
        (matched, steps)
    }

    /// A textbook backtracking LIKE matcher (`%` and `_`, no escape), counting one step per
    /// call; `None` once it has spent more than `budget` steps.
    fn backtracking_steps(input: &str, pattern: &str, budget: usize) -> Option<(bool, usize)> {
        fn go(input: &[char], pattern: &[char], steps: &mut usize, budget: usize) -> Option<bool> {
            *steps += 1;
            if *steps > budget {
                return None;
            }
            match pattern.split_first() {
                None => Some(input.is_empty()),
                Some(('%', rest)) => {
                    for skip in 0..=input.len() {
                        if go(&input[skip..], rest, steps, budget)? {
                            return Some(true);
                        }
                    }
                    Some(false)
                }
                Some((&expected, rest)) => match input.split_first() {
                    Some((&c, input_rest)) if expected == '_' || expected == c => {
                        go(input_rest, rest, steps, budget)
                    }
                    _ => Some(false),
                },
            }
        }
        let input: Vec<char> = input.chars().collect();
        let pattern: Vec<char> = pattern.chars().collect();
        let mut steps = 0;
        go(&input, &pattern, &mut steps, budget).map(|matched| (matched, steps))
    }

    /// Hostile patterns cost steps linear in text + pattern length (segments up to 64
    /// characters: one Shift-And word), where backtracking blows up.
    #[test]
    fn matching_steps_are_linear_on_hostile_patterns() {
        const C: usize = 3;
        let cases: Vec<(String, String, bool)> = vec![
            // Many `%a` and a final `b` that never comes.
            ("a".repeat(20_000), format!("{}%b", "%a".repeat(50)), false),
            (
                format!("{}b", "a".repeat(20_000)),
                format!("{}%b", "%a".repeat(50)),
                true,
            ),
            // Near misses: every `ab` almost starts `abc`.
            (
                "ab".repeat(10_000),
                format!("{}%abc", "%ab".repeat(40)),
                false,
            ),
            (
                format!("{}c", "ab".repeat(10_000)),
                format!("{}%abc", "%ab".repeat(40)),
                true,
            ),
            (
                "ab".repeat(10_000),
                format!("{}%abc%", "%ab".repeat(40)),
                false,
            ),
            ("a".repeat(20_000), format!("{}%b%", "%a".repeat(50)), false),
            // `_` runs between `%`s, and a segment of 64 characters (one full word).
            (
                "a".repeat(20_000),
                format!("{}%b", "%_a_".repeat(30)),
                false,
            ),
            ("a".repeat(20_000), format!("%{}b%", "a".repeat(63)), false),
            // Nothing but `%`s, and `%`s around a text that is never found.
            ("x".repeat(5_000), "%".repeat(1_000), true),
            (
                "xy".repeat(5_000),
                format!("{}yx{}z", "%".repeat(500), "%".repeat(500)),
                false,
            ),
            // Anchored first and last segments that almost cover the text.
            (
                "a".repeat(20_000),
                format!("{}%{}b", "a".repeat(60), "a".repeat(60)),
                false,
            ),
        ];
        for (input, pattern, expected) in &cases {
            let (matched, steps) = counted(input, pattern);
            assert_eq!(
                matched,
                *expected,
                "{pattern} on {} characters",
                input.len()
            );
            let bound = C * (input.chars().count() + pattern.chars().count());
            assert!(
                steps <= bound,
                "{steps} steps for a pattern of {} on {} characters (bound {bound})",
                pattern.len(),
                input.len()
            );
        }
        // Twice the text, at most twice the steps (plus the pattern's share).
        let pattern = format!("{}%abc%", "%ab".repeat(40));
        let (_, small) = counted(&"ab".repeat(5_000), &pattern);
        let (_, large) = counted(&"ab".repeat(10_000), &pattern);
        assert!(large <= 2 * small + pattern.len(), "{small} -> {large}");
    }

    /// Backtracking on the same kind of input spends far more than the linear matcher's
    /// bound: a hundred times it, on texts a hundred times shorter.
    #[test]
    fn backtracking_would_blow_up_where_the_matcher_stays_linear() {
        for (input, pattern) in [
            ("a".repeat(200), format!("{}%b", "%a".repeat(6))),
            ("ab".repeat(100), format!("{}%abc", "%ab".repeat(6))),
        ] {
            let (matched, steps) = counted(&input, &pattern);
            assert!(!matched);
            let linear_bound = 3 * (input.len() + pattern.len());
            assert!(steps <= linear_bound);
            assert_eq!(
                backtracking_steps(&input, &pattern, 100 * linear_bound),
                None,
                "backtracking finished {pattern} on {} characters within 100x the linear bound",
                input.len()
            );
        }
        // The backtracking matcher itself is right, and cheap, on benign input.
        assert_eq!(
            backtracking_steps("abc", "a%c", 100).map(|r| r.0),
            Some(true)
        );
        assert_eq!(
            backtracking_steps("abd", "a_c", 100).map(|r| r.0),
            Some(false)
        );
    }

    /// A long middle segment that almost matches everywhere: Shift-And reads each character
    /// once and updates one state word per 64 segment characters, where comparing the
    /// segment at every offset would cost the text length times the segment length.
    #[test]
    fn long_segments_cost_one_word_per_64_characters_per_character() {
        let input = "a".repeat(20_000);
        let pattern = format!("%{}b%", "a".repeat(1000));
        let (matched, steps) = counted(&input, &pattern);
        assert!(!matched);
        let words = 1001usize.div_ceil(64);
        let bound = 3 * (input.len() * words + pattern.len());
        assert!(steps <= bound, "{steps} steps (bound {bound})");
        // Comparing at every offset would cost about 20,000 x 1,000 = 2e7: over 40x this.
        assert!(steps * 40 <= input.len() * 1000, "{steps} steps");
        assert_eq!(backtracking_steps(&input, &pattern, 10 * bound), None);
    }

    #[test]
    fn long_segments_span_several_words() {
        let segment: String = (0..150)
            .map(|i| if i % 7 == 0 { '_' } else { 'x' })
            .collect();
        let input = format!("yy{}zz", "x".repeat(150));
        assert!(like(&input, &format!("%{segment}%")));
        assert!(like(&input, &format!("yy%{segment}%zz")));
        assert!(!like(&input, &format!("%{segment}y%")));
        let ilike = LikePattern::compile(&format!("%{}%", "Ab_".repeat(40)), None, true);
        assert!(ilike.matches(&format!("--{}--", "aBc".repeat(40))));
        assert!(!ilike.matches(&format!("--{}--", "aBc".repeat(39))));
    }
}
