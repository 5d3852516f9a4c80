//! Projections: which columns reach the subscriber.

use crate::error::LiveError;
use crate::sync::DataArc;
use crate::types::schema::TableSchema;
use crate::types::value::{Row, Value};

/// The columns a subscription selects.
#[derive(Clone, Debug, PartialEq, Eq, Hash, Default)]
pub enum Projection {
    /// Every column (`SELECT *`).
    #[default]
    All,
    /// The named columns, in this order.
    Columns(Vec<String>),
}

impl Projection {
    /// Selects the named columns.
    pub fn columns<I, S>(names: I) -> Self
    where
        I: IntoIterator<Item = S>,
        S: Into<String>,
    {
        Projection::Columns(names.into_iter().map(Into::into).collect())
    }
}

/// The names of a projection's columns, in order: shared, so reporting them allocates
/// nothing.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ColumnNames(DataArc<[DataArc<str>]>);

impl std::ops::Deref for ColumnNames {
    type Target = [DataArc<str>];
    fn deref(&self) -> &[DataArc<str>] {
        &self.0
    }
}

impl<const N: usize> PartialEq<[&str; N]> for ColumnNames {
    fn eq(&self, other: &[&str; N]) -> bool {
        self.len() == N
            && self
                .iter()
                .zip(other)
                .all(|(name, other)| **name == **other)
    }
}

impl PartialEq<Vec<String>> for ColumnNames {
    fn eq(&self, other: &Vec<String>) -> bool {
        self.len() == other.len()
            && self
                .iter()
                .zip(other)
                .all(|(name, other)| **name == **other)
    }
}

/// A projection resolved against a schema: positions and the names reported to clients.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct CompiledProjection {
    positions: Box<[u16]>,
    names: ColumnNames,
}

impl CompiledProjection {
    /// Resolves `projection` against `schema`; an unknown column is an error.
    pub(crate) fn compile(
        projection: &Projection,
        schema: &TableSchema,
    ) -> Result<Self, LiveError> {
        let positions: Vec<usize> = match projection {
            Projection::All => (0..schema.columns.len()).collect(),
            Projection::Columns(names) => names
                .iter()
                .map(|name| {
                    schema
                        .column_position(name)
                        .ok_or_else(|| LiveError::UnknownColumn {
                            table: schema.table_id.clone(),
                            column: name.clone(),
                        })
                })
                .collect::<Result<_, _>>()?,
        };
        if positions.is_empty() {
            return Err(LiveError::InvalidFilter(
                "a projection needs at least one column".into(),
            ));
        }
        Ok(Self {
            names: ColumnNames(
                positions
                    .iter()
                    .map(|&position| schema.columns[position].name.clone())
                    .collect(),
            ),
            positions: positions
                .into_iter()
                .map(|position| {
                    u16::try_from(position).expect("schemas hold at most u16::MAX columns")
                })
                .collect(),
        })
    }

    /// The selected columns' names, in order: the projected schema.
    pub fn column_names(&self) -> &[DataArc<str>] {
        &self.names
    }

    /// The names, shared.
    pub fn shared_column_names(&self) -> ColumnNames {
        self.names.clone()
    }

    /// Number of selected columns.
    pub fn len(&self) -> usize {
        self.positions.len()
    }

    /// True when no column is selected (never, for a compiled projection).
    pub fn is_empty(&self) -> bool {
        self.positions.is_empty()
    }

    /// The value of the `index`-th selected column in `row`.
    pub fn value<'a>(&self, row: &'a Row, index: usize) -> &'a Value {
        row.value(usize::from(self.positions[index]))
    }

    /// A new row holding only the selected columns.
    pub fn apply(&self, row: &Row) -> Row {
        self.positions
            .iter()
            .map(|&position| row.value(usize::from(position)).clone())
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::types::ids::TableId;
    use crate::types::schema::TableScope;

    #[test]
    fn selects_named_columns_in_order() {
        let schema = TableSchema::new(TableId::new("a", "t"), TableScope::Shared, ["x", "y", "z"]);
        let projection =
            CompiledProjection::compile(&Projection::columns(["z", "X"]), &schema).unwrap();
        let names: Vec<&str> = projection.column_names().iter().map(|n| &**n).collect();
        assert_eq!(names, ["z", "x"]);
        let row = Row::new(vec![Value::Int(1), Value::Int(2), Value::Int(3)]);
        assert_eq!(
            projection.apply(&row),
            Row::new(vec![Value::Int(3), Value::Int(1)])
        );
        assert!(matches!(
            CompiledProjection::compile(&Projection::columns(["w"]), &schema),
            Err(LiveError::UnknownColumn { .. })
        ));
    }
}
