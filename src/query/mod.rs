//! Subscription queries: the filter tree, its compiled form, projections.

pub(crate) mod cache;
pub(crate) mod column_name;
pub mod expr;
pub(crate) mod filter;
pub(crate) mod like;
pub(crate) mod membership;
pub(crate) mod operator_words;
pub(crate) mod params;
pub mod parser;
pub mod projection;
pub(crate) mod query_text;
pub(crate) mod route_key;
pub(crate) mod sql_text;
pub(crate) mod sqlite_decimal;
pub(crate) mod sqlite_forms;
pub(crate) mod sqlite_lexis;

use std::fmt::Write as _;
use std::hash::{Hash, Hasher};

use crate::error::LiveError;
use crate::query::route_key::RouteHasher;
use crate::sync::DataArc;
use crate::types::ids::{TableId, TableKey};
use crate::types::schema::TableSchema;
use crate::types::value::{Row, Value};

pub use cache::QueryCacheStats;
pub use column_name::ColumnName;
pub use expr::{CompareOp, Expr};
pub use projection::{ColumnNames, CompiledProjection, Projection};

use crate::config::FilterLimits;
use crate::query::route_key::RoutePin;
use crate::query::route_key::RouteValues;
use filter::{PinValues, Predicate};
use smallvec::SmallVec;

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
        self.write_sql(&mut |value, out| {
            let _ = write!(out, "{value}");
        })
    }

    /// The query as SQL, with `compared` writing each compared-against literal (see
    /// [`Expr::write_sql`]).
    fn write_sql(&self, compared: &mut dyn FnMut(&Value, &mut String)) -> String {
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
            sql.push_str(" WHERE ");
            filter.write_sql(&mut sql, compared);
        }
        sql
    }

    /// The constants the query compares against, in order: a subscription's own
    /// parameters for its query's shared template.
    pub(crate) fn params(&self) -> Params {
        // Gathered inline: the usual single constant allocates nothing.
        let mut params: SmallVec<[Value; 2]> = SmallVec::new();
        if let Some(filter) = &self.filter {
            filter.for_each_compared(&mut |value| params.push(value.clone()));
        }
        params.into_iter().collect()
    }

    /// A hash of the query's template on its table (everything but the table and the
    /// compared-against constants): queries on one table with the same template hash alike.
    /// The table is left out because the compiled-query cache, the only user, keys by the
    /// table and compares schemas itself.
    pub(crate) fn template_hash(&self, hasher: &impl std::hash::BuildHasher) -> u64 {
        let mut state = hasher.build_hasher();
        self.projection.hash(&mut state);
        if let Some(filter) = &self.filter {
            filter.hash_template(&mut state);
        }
        state.finish()
    }

    /// True when two queries on one table have the same template: they differ at most in
    /// the constants they compare against, so one compiled query serves both. The table is
    /// not compared (see [`template_hash`](Self::template_hash)).
    pub(crate) fn same_template(&self, other: &QuerySpec) -> bool {
        self.projection == other.projection
            && match (&self.filter, &other.filter) {
                (None, None) => true,
                (Some(a), Some(b)) => a.same_template(b),
                _ => false,
            }
    }

    /// The query as SQL with `params` in place of its compared-against constants: how a
    /// subscription sharing this query's template reads.
    pub(crate) fn to_sql_with(&self, params: &[Value]) -> String {
        let mut next = params.iter();
        self.write_sql(&mut |value, out| {
            let _ = write!(out, "{}", next.next().unwrap_or(value));
        })
    }

    /// The first of `columns` (names as the table spells them) that the query reads,
    /// matched ignoring ASCII case: one its filter reads if any (the column whose change
    /// changes which rows it holds), else one its projection selects; for `SELECT *`,
    /// which selects every column, the first of `columns`.
    pub(crate) fn first_read_of<'a>(&self, columns: &[&'a str]) -> Option<&'a str> {
        let mut filtered: Vec<&str> = Vec::new();
        if let Some(filter) = &self.filter {
            filter.for_each_column(&mut |column| filtered.push(column));
        }
        let same = |name: &str, column: &str| name.eq_ignore_ascii_case(column);
        let in_filter = columns
            .iter()
            .find(|column| filtered.iter().any(|name| same(name, column)));
        in_filter
            .or_else(|| match &self.projection {
                Projection::All => columns.first(),
                Projection::Columns(names) => columns
                    .iter()
                    .find(|column| names.iter().any(|name| same(name, column))),
            })
            .copied()
    }
}

pub(crate) use params::Params;

/// A filter compiled against a table schema, for evaluating rows outside the publish path
/// (checking snapshot rows, tests). Evaluation follows SQL: `eval` gives TRUE, FALSE, or
/// `None` for UNKNOWN, and a row matches only when the filter is TRUE.
#[derive(Clone, Debug)]
pub struct Filter {
    predicate: Predicate,
}

impl Filter {
    /// Compiles `expr` against `schema`: column names resolve to positions now (an unknown
    /// column is an error), and `limits` hold (their depth and node count held to
    /// [`MAX_FILTER_DEPTH`](crate::MAX_FILTER_DEPTH) and
    /// [`MAX_FILTER_NODES`](crate::MAX_FILTER_NODES), as a manager's configuration is).
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
        self.predicate.eval(row, &[])
    }

    /// True when the filter is TRUE on `row`.
    pub fn matches(&self, row: &Row) -> bool {
        self.predicate.matches(row, &[])
    }
}

/// A query template compiled against one version of its table's schema: its compared-
/// against constants are parameters, so every subscription with the same template on the
/// same table shares it (holding only its own constants), and publishing touches one hot
/// compiled filter however many such subscriptions exist.
#[derive(Debug)]
pub(crate) struct CompiledQuery {
    /// The first subscriber's spec: its compared-against constants are placeholders.
    pub(crate) spec: QuerySpec,
    pub(crate) table_key: TableKey,
    pub(crate) schema: DataArc<TableSchema>,
    pub(crate) filter: Option<Predicate>,
    pub(crate) pin: Option<RoutePin>,
    pub(crate) projection: DataArc<CompiledProjection>,
}

impl CompiledQuery {
    pub(crate) fn compile(
        spec: QuerySpec,
        table_key: TableKey,
        schema: DataArc<TableSchema>,
        limits: &FilterLimits,
        hasher: &RouteHasher,
        intern_projection: impl FnOnce(CompiledProjection) -> DataArc<CompiledProjection>,
    ) -> Result<Self, LiveError> {
        let filter = spec
            .filter
            .as_ref()
            .map(|expr| Predicate::compile_template(expr, &schema, limits))
            .transpose()?;
        let projection = intern_projection(CompiledProjection::compile(&spec.projection, &schema)?);
        let pin = filter
            .as_ref()
            .and_then(Predicate::pin)
            .map(|pin| RoutePin {
                column: pin.column,
                values: match pin.values {
                    PinValues::Param(index) => RouteValues::Param(index),
                    PinValues::Literals(values) => {
                        let mut keys: Vec<u64> = values
                            .iter()
                            .filter_map(|value| hasher.value_key(value))
                            .collect();
                        keys.sort_unstable();
                        keys.dedup();
                        RouteValues::Keys(keys.into_boxed_slice())
                    }
                },
            });
        Ok(Self {
            spec,
            table_key,
            schema,
            filter,
            pin,
            projection,
        })
    }

    /// The SQL of a subscription that uses this template with `params`.
    pub(crate) fn text(&self, params: &[Value]) -> String {
        self.spec.to_sql_with(params)
    }

    /// The routing keys of the constants a subscription with `params` is pinned to, each
    /// passed through `bucket_key` (the index's key for it): empty when the template pins
    /// nothing, or pins a parameter that is NULL (such a filter is never TRUE). Gathered in
    /// one pass, inline: the usual single key allocates nothing.
    pub(crate) fn pin_keys(
        &self,
        params: &[Value],
        hasher: &RouteHasher,
        bucket_key: impl Fn(u64) -> u64,
    ) -> SmallVec<[u64; 4]> {
        match self.pin.as_ref().map(|pin| &pin.values) {
            None => SmallVec::new(),
            Some(RouteValues::Keys(keys)) => keys.iter().map(|key| bucket_key(*key)).collect(),
            Some(RouteValues::Param(index)) => params
                .get(usize::from(*index))
                .and_then(|value| hasher.value_key(value))
                .map(bucket_key)
                .into_iter()
                .collect(),
        }
    }
}
