//! Checks of what the host hands livecore against the schema and the limits: a table
//! schema before it is registered, each change of a commit before it is published or
//! replayed. The data types live in `types`, below the error type; their checks live here,
//! beside it.

use crate::error::{LiveError, LiveResult};
use crate::types::change::{ChangeNotification, ChangeType};
use crate::types::schema::{TableSchema, MAX_COLUMNS};

impl TableSchema {
    /// Checks that the schema is usable: at least one column, at most [`MAX_COLUMNS`], no
    /// empty names, and no two names equal ignoring ASCII case.
    pub fn validate(&self) -> Result<(), LiveError> {
        let invalid = |reason: String| LiveError::InvalidSchema {
            table: self.table_id.clone(),
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

/// Checks a change against its table's schema: row lengths, and an old row on updates.
/// Shared by publish and replay.
pub(crate) fn validate_change(schema: &TableSchema, change: &ChangeNotification) -> LiveResult<()> {
    let expected = schema.columns.len();
    let check = |row_len: usize| {
        if row_len == expected {
            Ok(())
        } else {
            Err(LiveError::RowArity {
                table: change.table_id.clone(),
                expected,
                got: row_len,
            })
        }
    };
    check(change.row.len())?;
    match (&change.change_type, &change.old_row) {
        (ChangeType::Update, None) => Err(LiveError::MissingOldRow(change.table_id.clone())),
        (ChangeType::Update, Some(old_row)) => check(old_row.len()),
        _ => Ok(()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::types::ids::TableId;
    use crate::types::schema::TableScope;

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
}
