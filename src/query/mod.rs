//! Subscription queries: the filter tree, its compiled form, projections.

pub(crate) mod cache;
pub mod expr;
pub(crate) mod filter;
pub(crate) mod like;
pub mod parser;
pub mod projection;
pub(crate) mod sql_text;

use crate::error::LiveError;
use crate::index::RouteHasher;
use crate::models::ids::{TableId, TableKey};
use crate::models::schema::TableSchema;
use crate::models::value::Row;
use crate::sync::DataArc;

pub use cache::QueryCacheStats;
pub use expr::{CompareOp, Expr};
pub use filter::FilterLimits;
pub use parser::{parse_subscription_sql, ParsedQuery, MAX_SUBSCRIPTION_SQL_LEN};
pub use projection::{CompiledProjection, Projection};

use filter::Predicate;

/// What a subscription asks for: a table, an optional filter and a projection.
#[derive(Clone, Debug, PartialEq)]
pub struct QuerySpec {
    /// The table.
    pub table_id: TableId,
    /// Rows must make this TRUE to be delivered; `None` delivers every row.
    pub filter: Option<Expr>,
    /// The columns delivered.
    pub projection: Projection,
}

impl QuerySpec {
    /// Every row and column of `table_id`.
    pub fn table(table_id: TableId) -> Self {
        Self {
            table_id,
            filter: None,
            projection: Projection::All,
        }
    }

    /// Adds a filter.
    pub fn filter(mut self, filter: Expr) -> Self {
        self.filter = Some(filter);
        self
    }

    /// Sets the projection.
    pub fn project(mut self, projection: Projection) -> Self {
        self.projection = projection;
        self
    }

    /// The query as SQL, for records and messages.
    pub fn to_sql(&self) -> String {
        let columns = match &self.projection {
            Projection::All => "*".to_string(),
            Projection::Columns(names) => names
                .iter()
                .map(|name| format!("\"{}\"", name.replace('"', "\"\"")))
                .collect::<Vec<_>>()
                .join(", "),
        };
        let mut sql = format!("SELECT {columns} FROM {}", self.table_id);
        if let Some(filter) = &self.filter {
            sql.push_str(&format!(" WHERE {filter}"));
        }
        sql
    }
}

/// A filter compiled against a table schema, for evaluating rows outside the publish path
/// (checking snapshot rows, tests). Evaluation follows SQL: `eval` gives TRUE, FALSE, or
/// `None` for UNKNOWN, and a row matches only when the filter is TRUE.
#[derive(Clone, Debug)]
pub struct Filter {
    predicate: Predicate,
}

impl Filter {
    /// Compiles `expr` against `schema`: column names resolve to positions now (an unknown
    /// column is an error), and `limits` hold.
    pub fn compile(
        expr: &Expr,
        schema: &TableSchema,
        limits: &FilterLimits,
    ) -> Result<Self, LiveError> {
        Predicate::compile(expr, schema, limits).map(|predicate| Self { predicate })
    }

    /// The filter's three-valued result on `row`: `Some(true)`, `Some(false)`, or `None`
    /// for UNKNOWN.
    pub fn eval(&self, row: &Row) -> Option<bool> {
        self.predicate.eval(row)
    }

    /// True when the filter is TRUE on `row`.
    pub fn matches(&self, row: &Row) -> bool {
        self.predicate.matches(row)
    }
}

/// A column pinned to constants, with the routing keys of those constants.
#[derive(Clone, Debug, PartialEq)]
pub(crate) struct RoutePin {
    pub(crate) column: u16,
    pub(crate) value_keys: Box<[u64]>,
}

/// A query compiled against one version of its table's schema. Shared by every
/// subscription with the same query on the same table.
#[derive(Debug)]
pub(crate) struct CompiledQuery {
    pub(crate) spec: QuerySpec,
    pub(crate) text: DataArc<str>,
    pub(crate) table_key: TableKey,
    pub(crate) schema: DataArc<TableSchema>,
    pub(crate) filter: Option<Predicate>,
    pub(crate) pin: Option<RoutePin>,
    pub(crate) projection: DataArc<CompiledProjection>,
}

impl CompiledQuery {
    pub(crate) fn compile(
        spec: QuerySpec,
        text: Option<DataArc<str>>,
        table_key: TableKey,
        schema: DataArc<TableSchema>,
        limits: &FilterLimits,
        hasher: &RouteHasher,
        intern_projection: impl FnOnce(CompiledProjection) -> DataArc<CompiledProjection>,
    ) -> Result<Self, LiveError> {
        let filter = spec
            .filter
            .as_ref()
            .map(|expr| Predicate::compile(expr, &schema, limits))
            .transpose()?;
        let projection = intern_projection(CompiledProjection::compile(&spec.projection, &schema)?);
        let pin = filter.as_ref().and_then(Predicate::pin).map(|pin| {
            let mut value_keys: Vec<u64> = pin
                .values
                .iter()
                .filter_map(|value| hasher.value_key(value))
                .collect();
            value_keys.sort_unstable();
            value_keys.dedup();
            RoutePin {
                column: pin.column,
                value_keys: value_keys.into_boxed_slice(),
            }
        });
        let text = text.unwrap_or_else(|| DataArc::from(spec.to_sql()));
        Ok(Self {
            spec,
            text,
            table_key,
            schema,
            filter,
            pin,
            projection,
        })
    }
}
