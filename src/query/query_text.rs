//! A subscription's query as text: as the client wrote it, or rendered from its template
//! and constants only when asked, so taking live-query records stays cheap.

use crate::query::CompiledQuery;
use crate::query::Params;
use crate::sync::DataArc;
use std::fmt;

/// A live query's SQL, rendered when asked: the text the client wrote, or the query's
/// shared template with the subscription's own constants.
#[derive(Clone)]
pub struct QueryText(QueryTextKind);

#[derive(Clone)]
enum QueryTextKind {
    Written(DataArc<str>),
    Template {
        query: DataArc<CompiledQuery>,
        params: Params,
    },
}

impl QueryText {
    pub(crate) fn written(sql: DataArc<str>) -> Self {
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
            QueryTextKind::Template { .. } => Self::written(DataArc::from(self.to_string())),
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
        Self::written(DataArc::from(sql))
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
        Ok(QueryText::written(DataArc::from(&*sql)))
    }
}
