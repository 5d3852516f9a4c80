//! A column's name in a filter expression, held inline when short.
//!
//! Every column an [`Expr`](super::Expr) names was a `String`: one allocation when the
//! expression is built and one free when it is dropped, and a subscription's query is
//! built by its caller and dropped inside `subscribe` (a churn of subscribe/unsubscribe
//! pairs spent about 2 % of its instructions freeing column names). Names of up to 23
//! bytes, nearly all of them, are stored in the value itself; longer ones are shared. The
//! inline storage is smol_str's (a crate made for identifiers of this kind), kept private
//! behind this type so that the public API does not name it.

use std::borrow::Borrow;
use std::fmt;
use std::ops::Deref;
use std::sync::Arc;

use smol_str::SmolStr;

/// The name of a column, as a filter expression references it. Dereferences to `str`;
/// made from `&str` or `String` with `into()`.
#[derive(Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct ColumnName(SmolStr);

impl ColumnName {
    /// A column name from its text.
    pub fn new(name: impl AsRef<str>) -> Self {
        Self(SmolStr::new(name))
    }

    /// The name's text.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl Deref for ColumnName {
    type Target = str;

    fn deref(&self) -> &str {
        &self.0
    }
}

impl AsRef<str> for ColumnName {
    fn as_ref(&self) -> &str {
        &self.0
    }
}

impl Borrow<str> for ColumnName {
    fn borrow(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for ColumnName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Debug::fmt(self.as_str(), f)
    }
}

impl fmt::Display for ColumnName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl From<&str> for ColumnName {
    fn from(name: &str) -> Self {
        Self::new(name)
    }
}

impl From<String> for ColumnName {
    fn from(name: String) -> Self {
        Self(SmolStr::from(name))
    }
}

impl From<&String> for ColumnName {
    fn from(name: &String) -> Self {
        Self::new(name)
    }
}

impl From<Box<str>> for ColumnName {
    fn from(name: Box<str>) -> Self {
        Self(SmolStr::from(name))
    }
}

impl From<Arc<str>> for ColumnName {
    fn from(name: Arc<str>) -> Self {
        Self(SmolStr::from(name))
    }
}

impl From<std::borrow::Cow<'_, str>> for ColumnName {
    fn from(name: std::borrow::Cow<'_, str>) -> Self {
        Self::new(name)
    }
}

impl From<char> for ColumnName {
    fn from(name: char) -> Self {
        Self::new(name.encode_utf8(&mut [0; 4]))
    }
}

impl From<ColumnName> for String {
    fn from(name: ColumnName) -> Self {
        name.0.into()
    }
}

impl PartialEq<str> for ColumnName {
    fn eq(&self, other: &str) -> bool {
        self.as_str() == other
    }
}

impl PartialEq<&str> for ColumnName {
    fn eq(&self, other: &&str) -> bool {
        self.as_str() == *other
    }
}

impl PartialEq<String> for ColumnName {
    fn eq(&self, other: &String) -> bool {
        self.as_str() == other.as_str()
    }
}

#[cfg(test)]
mod tests {
    use super::ColumnName;

    #[test]
    fn short_and_long_names_keep_their_text() {
        let short = ColumnName::from("id");
        let long = ColumnName::from("a_column_name_longer_than_twenty_three_bytes".to_string());
        assert_eq!(short, "id");
        assert_eq!(&*long, "a_column_name_longer_than_twenty_three_bytes");
        assert_eq!(String::from(long.clone()), long.as_str());
        assert_eq!(format!("{short} {short:?}"), "id \"id\"");
        let from_cow = ColumnName::from(std::borrow::Cow::Borrowed("id"));
        assert_eq!(from_cow, short);
        assert_eq!(ColumnName::from('x'), "x");
        let (a, b) = (ColumnName::from("a"), ColumnName::from("b"));
        assert!(a < b);
    }
}
