//! A subscription's query as text: as the client wrote it, or rendered from its template
//! and constants only when asked, so taking live-query records stays cheap.

use crate::query::CompiledQuery;
use crate::query::Params;
use crate::sync::DataArc;
use std::borrow::Borrow;
use std::fmt;
use std::hash::{Hash, Hasher};
use std::ops::Deref;

/// A live query's SQL, rendered when asked: the text the client wrote, or the query's
/// shared template with the subscription's own constants.
#[derive(Clone)]
pub struct QueryText(QueryTextKind);

#[derive(Clone)]
enum QueryTextKind {
    Written(WrittenSql),
    Template {
        query: DataArc<CompiledQuery>,
        params: Params,
    },
}

impl QueryText {
    pub(crate) fn written(sql: WrittenSql) -> Self {
        Self(QueryTextKind::Written(sql))
    }

    pub(crate) fn template(query: DataArc<CompiledQuery>, params: Params) -> Self {
        Self(QueryTextKind::Template { query, params })
    }

    /// The SQL.
    pub fn to_sql(&self) -> String {
        self.to_string()
    }

    /// The same text, rendered now and kept, so it can be borrowed as a `&str`.
    pub fn rendered(&self) -> QueryText {
        match &self.0 {
            QueryTextKind::Written(_) => self.clone(),
            QueryTextKind::Template { .. } => Self::written(WrittenSql::new(&self.to_string())),
        }
    }

    /// The text, if it is already rendered (see [`rendered`](Self::rendered)).
    pub fn as_rendered(&self) -> Option<&str> {
        match &self.0 {
            QueryTextKind::Written(sql) => Some(sql),
            QueryTextKind::Template { .. } => None,
        }
    }
}

impl fmt::Display for QueryText {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.0 {
            QueryTextKind::Written(sql) => f.write_str(sql),
            QueryTextKind::Template { query, params } => f.write_str(&query.text(params)),
        }
    }
}

impl fmt::Debug for QueryText {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{:?}", self.to_string())
    }
}

impl PartialEq for QueryText {
    fn eq(&self, other: &Self) -> bool {
        self.to_string() == other.to_string()
    }
}

impl From<&str> for QueryText {
    fn from(sql: &str) -> Self {
        Self::written(WrittenSql::new(sql))
    }
}

// A stored record keeps the query's SQL as text: serialized rendered, read back as written.
#[cfg(feature = "serde")]
impl serde::Serialize for QueryText {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_str(&self.to_sql())
    }
}

#[cfg(feature = "serde")]
impl<'de> serde::Deserialize<'de> for QueryText {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let sql = <std::borrow::Cow<'de, str> as serde::Deserialize>::deserialize(deserializer)?;
        Ok(QueryText::written(WrittenSql::new(&sql)))
    }
}

/// SQL text as a client wrote it, shared behind one thin pointer: 8 bytes where an
/// `Arc<str>` takes 16, in the core of every subscription made from SQL (triomphe's thin
/// `Arc` keeps the length in the allocation). Hashes and compares as its `str`, so the
/// parse cache can be keyed by it and looked up by a `&str`.
#[derive(Clone)]
pub(crate) struct WrittenSql(triomphe::ThinArc<(), u8>);

impl WrittenSql {
    pub(crate) fn new(sql: &str) -> Self {
        Self(triomphe::ThinArc::from_header_and_slice((), sql.as_bytes()))
    }

    pub(crate) fn as_str(&self) -> &str {
        // SAFETY: the bytes were copied from a `str` by `new`, the only constructor, and
        // nothing writes them afterwards (the field is private and this module never
        // borrows the `ThinArc` mutably), so they are valid UTF-8.
        unsafe { std::str::from_utf8_unchecked(&self.0.slice) }
    }
}

impl Deref for WrittenSql {
    type Target = str;
    fn deref(&self) -> &str {
        self.as_str()
    }
}

impl Borrow<str> for WrittenSql {
    fn borrow(&self) -> &str {
        self.as_str()
    }
}

impl Hash for WrittenSql {
    fn hash<H: Hasher>(&self, state: &mut H) {
        self.as_str().hash(state);
    }
}

impl PartialEq for WrittenSql {
    fn eq(&self, other: &Self) -> bool {
        self.as_str() == other.as_str()
    }
}

impl Eq for WrittenSql {}

#[cfg(test)]
mod tests {
    use super::WrittenSql;
    use std::collections::HashMap;

    /// The parse cache keys by the text and looks it up by a `&str`: hashing and equality
    /// must be the `str`'s.
    #[test]
    fn written_sql_is_found_by_its_text() {
        let texts = ["", "SELECT * FROM t WHERE name = 'Zoë ✓'", "select 1"];
        let map: HashMap<WrittenSql, usize> = texts
            .iter()
            .enumerate()
            .map(|(index, text)| (WrittenSql::new(text), index))
            .collect();
        for (index, text) in texts.iter().enumerate() {
            assert_eq!(map.get(*text), Some(&index));
            assert_eq!(WrittenSql::new(text).as_str(), *text);
        }
        assert_eq!(map.get("SELECT * FROM t"), None);
        assert_eq!(std::mem::size_of::<Option<WrittenSql>>(), 8);
    }
}
