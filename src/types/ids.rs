//! Identifiers. Inside livecore every id is an integer; the string forms (user names, table
//! names) live only at the edges and are interned to integer keys once.

use std::fmt;

use crate::sync::DataArc as Arc;

/// A connection, numbered by the manager when it registers. Never reused by one manager.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
#[cfg_attr(feature = "serde", derive(serde::Serialize, serde::Deserialize))]
pub struct ConnectionId(pub u64);

/// A subscription, numbered by the manager. Unique across all connections of one manager and
/// never reused.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
#[cfg_attr(feature = "serde", derive(serde::Serialize, serde::Deserialize))]
pub struct SubscriptionId(pub u64);

/// The identity of one live query: the connection that owns it and its subscription number.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
#[cfg_attr(feature = "serde", derive(serde::Serialize, serde::Deserialize))]
pub struct LiveQueryId {
    /// The connection that opened the live query.
    pub connection_id: ConnectionId,
    /// The subscription number, unique within the manager.
    pub subscription_id: SubscriptionId,
}

/// The number of a committed transaction, given by the engine. Every change of one commit
/// shares it; the engine publishes each table's commits in ascending order.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Default)]
#[cfg_attr(feature = "serde", derive(serde::Serialize, serde::Deserialize))]
pub struct SeqId(pub u64);

/// A node of the host's cluster: each node runs its own livecore on the changes it applies.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Default)]
#[cfg_attr(feature = "serde", derive(serde::Serialize, serde::Deserialize))]
pub struct NodeId(pub u64);

/// A user as the host names it (the edge form). Interned to a [`UserKey`] inside.
#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
#[cfg_attr(feature = "serde", derive(serde::Serialize, serde::Deserialize))]
pub struct UserId(Arc<str>);

/// The interned, integer form of a [`UserId`], stable for the life of the manager.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
#[cfg_attr(feature = "serde", derive(serde::Serialize, serde::Deserialize))]
pub struct UserKey(pub u32);

/// A table, named by namespace and table name (the edge form).
#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
#[cfg_attr(feature = "serde", derive(serde::Serialize, serde::Deserialize))]
pub struct TableId {
    namespace: Arc<str>,
    name: Arc<str>,
}

/// The interned, integer form of a [`TableId`], returned by table registration and stable
/// across schema versions of the same table.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
#[cfg_attr(feature = "serde", derive(serde::Serialize, serde::Deserialize))]
pub struct TableKey(pub u32);

impl UserId {
    /// Creates a user id from the host's name for the user.
    pub fn new(name: impl Into<Arc<str>>) -> Self {
        Self(name.into())
    }

    /// The host's name for the user.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl From<&str> for UserId {
    fn from(name: &str) -> Self {
        Self::new(name)
    }
}

impl From<String> for UserId {
    fn from(name: String) -> Self {
        Self::new(name)
    }
}

impl From<&String> for UserId {
    fn from(name: &String) -> Self {
        Self::new(name.as_str())
    }
}

impl TableId {
    /// Creates a table id from its namespace and name.
    pub fn new(namespace: impl Into<Arc<str>>, name: impl Into<Arc<str>>) -> Self {
        Self {
            namespace: namespace.into(),
            name: name.into(),
        }
    }

    /// Where the id's two strings live: equal for clones of one id (which share them), and
    /// for no other id while those strings are alive.
    pub(crate) fn addresses(&self) -> (usize, usize) {
        (
            Arc::as_ptr(&self.namespace).cast::<u8>() as usize,
            Arc::as_ptr(&self.name).cast::<u8>() as usize,
        )
    }

    /// The namespace (schema) the table lives in.
    pub fn namespace(&self) -> &str {
        &self.namespace
    }

    /// The table's name within its namespace.
    pub fn name(&self) -> &str {
        &self.name
    }
}

impl LiveQueryId {
    /// Builds a live query id from its two parts.
    pub fn new(connection_id: ConnectionId, subscription_id: SubscriptionId) -> Self {
        Self {
            connection_id,
            subscription_id,
        }
    }
}

impl fmt::Display for ConnectionId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "c{}", self.0)
    }
}

impl fmt::Display for SubscriptionId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "s{}", self.0)
    }
}

impl fmt::Display for LiveQueryId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}-{}", self.connection_id, self.subscription_id)
    }
}

impl fmt::Display for SeqId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.0)
    }
}

impl fmt::Display for NodeId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "node-{}", self.0)
    }
}

impl fmt::Display for UserId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl fmt::Display for TableId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}.{}", self.namespace, self.name)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn display_forms_are_stable() {
        let live = LiveQueryId::new(ConnectionId(3), SubscriptionId(17));
        assert_eq!(live.to_string(), "c3-s17");
        assert_eq!(TableId::new("app", "messages").to_string(), "app.messages");
        assert_eq!(UserId::from("alice").as_str(), "alice");
    }
}
