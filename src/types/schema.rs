//! Table schemas as the engine registers them.

use crate::error::LiveError;
use crate::sync::DataArc;
use crate::types::ids::TableId;

/// Whose rows a table holds.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum TableScope {
    /// Every row belongs to one user; a subscription sees only its own user's rows, and each
    /// published change must name its owner.
    User,
    /// Rows are shared by all users.
    Shared,
}

/// One column of a table.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ColumnDef {
    /// The column's name; matched case-insensitively (ASCII) by filters and projections.
    pub name: DataArc<str>,
}

/// A table's schema: its id, scope and columns in row order.
#[derive(Clone, Debug, PartialEq, Eq)]
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

    /// Checks that the schema is usable: at least one column, at most [`MAX_COLUMNS`], no
    /// empty names, and no two names equal ignoring ASCII case.
    pub fn validate(&self) -> Result<(), LiveError> {
        let invalid = |reason: String| LiveError::InvalidSchema {
            table: self.table_id.to_string(),
            reason,
        };
        if self.columns.is_empty() {
            return Err(invalid("a table needs at least one column".into()));
        }
        if self.columns.len() > MAX_COLUMNS {
            return Err(invalid(format!("more than {MAX_COLUMNS} columns")));
        }
        for (position, column) in self.columns.iter().enumerate() {
            if column.name.is_empty() {
                return Err(invalid(format!("column {position} has an empty name")));
            }
            if self.column_position(&column.name) != Some(position) {
                return Err(invalid(format!("column '{}' appears twice", column.name)));
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn validate_refuses_duplicates_and_empty_tables() {
        let table = TableId::new("app", "t");
        assert!(
            TableSchema::new(table.clone(), TableScope::Shared, ["a", "b"])
                .validate()
                .is_ok()
        );
        let duplicate = TableSchema::new(table.clone(), TableScope::Shared, ["a", "A"]);
        assert!(matches!(
            duplicate.validate(),
            Err(LiveError::InvalidSchema { .. })
        ));
        let empty = TableSchema::new(table, TableScope::Shared, Vec::<&str>::new());
        assert!(matches!(
            empty.validate(),
            Err(LiveError::InvalidSchema { .. })
        ));
    }

    #[test]
    fn columns_match_ignoring_ascii_case() {
        let schema = TableSchema::new(TableId::new("a", "t"), TableScope::User, ["Room", "body"]);
        assert_eq!(schema.column_position("room"), Some(0));
        assert_eq!(schema.column_position("BODY"), Some(1));
        assert_eq!(schema.column_position("missing"), None);
    }
}
