//! Table schemas as the engine registers them.

use crate::sync::DataArc;
use crate::types::ids::TableId;

/// Whose rows a table holds.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[cfg_attr(feature = "serde", derive(serde::Serialize, serde::Deserialize))]
pub enum TableScope {
    /// Every row belongs to one user; a subscription sees only its own user's rows, and each
    /// published change must name its owner.
    User,
    /// Rows are shared by all users.
    Shared,
}

/// One column of a table.
#[derive(Clone, Debug, PartialEq, Eq)]
#[cfg_attr(feature = "serde", derive(serde::Serialize, serde::Deserialize))]
pub struct ColumnDef {
    /// The column's name; matched case-insensitively (ASCII) by filters and projections.
    pub name: DataArc<str>,
}

/// A table's schema: its id, scope and columns in row order.
#[derive(Clone, Debug, PartialEq, Eq)]
#[cfg_attr(feature = "serde", derive(serde::Serialize, serde::Deserialize))]
pub struct TableSchema {
    /// The table.
    pub table_id: TableId,
    /// Whose rows it holds.
    pub scope: TableScope,
    /// Columns in the order values appear in rows.
    pub columns: Vec<ColumnDef>,
}

/// The most columns a table may have; column positions are 16-bit inside.
pub const MAX_COLUMNS: usize = u16::MAX as usize;

impl TableSchema {
    /// Creates a schema from column names.
    pub fn new<I, S>(table_id: TableId, scope: TableScope, columns: I) -> Self
    where
        I: IntoIterator<Item = S>,
        S: AsRef<str>,
    {
        Self {
            table_id,
            scope,
            columns: columns
                .into_iter()
                .map(|name| ColumnDef {
                    name: DataArc::from(name.as_ref()),
                })
                .collect(),
        }
    }

    /// The position of a column, matched case-insensitively.
    pub fn column_position(&self, name: &str) -> Option<usize> {
        self.columns
            .iter()
            .position(|column| column.name.eq_ignore_ascii_case(name))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn columns_match_ignoring_ascii_case() {
        let schema = TableSchema::new(TableId::new("a", "t"), TableScope::User, ["Room", "body"]);
        assert_eq!(schema.column_position("room"), Some(0));
        assert_eq!(schema.column_position("BODY"), Some(1));
        assert_eq!(schema.column_position("missing"), None);
    }
}
