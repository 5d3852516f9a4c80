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
        // Names met so far, folded: one pass, so a table of many columns is checked in
        // linear time (a search per column was quadratic: seconds at MAX_COLUMNS).
        let mut names = std::collections::HashSet::with_capacity(self.columns.len());
        for (position, column) in self.columns.iter().enumerate() {
            if column.name.is_empty() {
                return Err(invalid(format!("column {position} has an empty name")));
            }
            if !names.insert(column.name.to_ascii_lowercase()) {
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
        // The widest table, and the same with its first name again, folded, at the end.
        let mut names: Vec<String> = (0..MAX_COLUMNS).map(|n| format!("c{n}")).collect();
        let widest = TableSchema::new(table.clone(), TableScope::Shared, &names);
        assert!(widest.validate().is_ok());
        names[MAX_COLUMNS - 1] = "C0".into();
        let late = TableSchema::new(table.clone(), TableScope::Shared, &names);
        match late.validate() {
            Err(LiveError::InvalidSchema { reason, .. }) => {
                assert_eq!(reason, "column 'C0' appears twice")
            }
            other => panic!("{other:?}"),
        }
        let empty = TableSchema::new(table, TableScope::Shared, Vec::<&str>::new());
        assert!(matches!(
            empty.validate(),
            Err(LiveError::InvalidSchema { .. })
        ));
    }
}
