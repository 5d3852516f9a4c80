//! Tables and columns from PostgreSQL's catalog and from pgoutput's relation messages.

use std::collections::HashMap;

use livecore::{TableId, TableSchema};

use crate::config::TableConfig;
use crate::error::{PgError, PgResult};
use crate::pgoutput::Relation;
use crate::types::{self, Kind};

/// One column as the source decodes it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Column {
    /// The column's name (livecore's column name too).
    pub name: String,
    /// How its text becomes a value.
    pub kind: Kind,
    /// PostgreSQL's name of its type.
    pub type_name: String,
    /// Its type's OID (a domain's own, not its base type's).
    pub type_oid: u32,
    /// Its type modifier (`atttypmod`: `numeric(10,2)`'s precision and scale, a
    /// `varchar`'s length, a `timestamp`'s precision), -1 when none.
    pub type_modifier: i32,
}

/// A published table at one schema version.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TableInfo {
    /// The configuration it comes from.
    pub config: TableConfig,
    /// The livecore table.
    pub table_id: TableId,
    /// Columns in row order.
    pub columns: Vec<Column>,
    /// Position of the owner column on user-scoped tables.
    pub owner_position: Option<usize>,
}

impl TableInfo {
    /// The livecore schema of this version.
    pub fn schema(&self) -> TableSchema {
        TableSchema::new(
            self.table_id.clone(),
            self.config.scope(),
            self.columns.iter().map(|column| column.name.as_str()),
        )
    }

    pub(crate) fn qualified(&self) -> String {
        format!("{}.{}", self.config.schema, self.config.name)
    }

    /// Builds a version from each column's name, resolved kind and type name, type OID
    /// and type modifier.
    pub(crate) fn build(
        config: &TableConfig,
        columns: Vec<(String, Option<Kind>, String, u32, i32)>,
        unsupported_as_text: bool,
    ) -> PgResult<Self> {
        let qualified = format!("{}.{}", config.schema, config.name);
        let columns = columns
            .into_iter()
            .map(|(name, kind, type_name, type_oid, type_modifier)| {
                let kind = match kind {
                    Some(kind) => kind,
                    None if unsupported_as_text => Kind::Text,
                    None => return Err(types::unsupported(&qualified, &name, &type_name)),
                };
                Ok(Column {
                    name,
                    kind,
                    type_name,
                    type_oid,
                    type_modifier,
                })
            })
            .collect::<PgResult<Vec<_>>>()?;
        let owner_position = match &config.owner_column {
            None => None,
            Some(owner) => Some(
                columns
                    .iter()
                    .position(|column| &column.name == owner)
                    .ok_or_else(|| PgError::UnknownOwnerColumn {
                        table: qualified.clone(),
                        column: owner.clone(),
                    })?,
            ),
        };
        Ok(Self {
            config: config.clone(),
            table_id: TableId::new(config.schema.as_str(), config.name.as_str()),
            columns,
            owner_position,
        })
    }
}

/// Resolved types by OID (domains followed to their base, enums as text).
#[derive(Default)]
pub(crate) struct TypeCache {
    known: HashMap<u32, (Option<Kind>, String)>,
}

impl TypeCache {
    /// The kind and name of `oid`, asking the catalog for types that are not built in.
    pub(crate) async fn resolve(
        &mut self,
        client: Option<&tokio_postgres::Client>,
        oid: u32,
    ) -> PgResult<(Option<Kind>, String)> {
        if let Some((kind, name)) = types::builtin(oid) {
            return Ok((Some(kind), name.to_string()));
        }
        if let Some(known) = self.known.get(&oid) {
            return Ok(known.clone());
        }
        let client = client.ok_or_else(|| {
            PgError::Sql(format!(
                "type {oid} is not built in and no catalog connection is open"
            ))
        })?;
        // Follow domains down to their base type (bounded: domains cannot be cyclic).
        let rows = client
            .query(
                "WITH RECURSIVE t(oid, typtype, typbasetype, typname, depth) AS ( \
                   SELECT oid, typtype, typbasetype, typname::text, 0 FROM pg_type WHERE oid = $1 \
                   UNION ALL \
                   SELECT p.oid, p.typtype, p.typbasetype, p.typname::text, t.depth + 1 \
                   FROM pg_type p JOIN t ON p.oid = t.typbasetype \
                   WHERE t.typtype = 'd' AND t.depth < 32) \
                 SELECT oid, typtype, typname, depth FROM t ORDER BY depth",
                &[&oid],
            )
            .await?;
        let first_name: String = rows
            .first()
            .map(|row| row.get(2))
            .ok_or_else(|| PgError::Sql(format!("type {oid} is not in pg_type")))?;
        let base = rows.last().expect("checked non-empty");
        let base_oid: u32 = base.get(0);
        let base_type: i8 = base.get(1);
        let base_name: String = base.get(2);
        let kind = match types::builtin(base_oid) {
            Some((kind, _)) => Some(kind),
            None if base_type == b'e' as i8 => Some(Kind::Text),
            None if base_name == "citext" => Some(Kind::Text),
            None => None,
        };
        let resolved = (kind, first_name);
        self.known.insert(oid, resolved.clone());
        Ok(resolved)
    }
}

/// Reads a configured table from the catalog: checks it exists, is an ordinary table (a
/// partitioned table is refused with [`PgError::UnsupportedTable`]) and is `REPLICA
/// IDENTITY FULL`, and returns its OID and current columns.
pub(crate) async fn load_table(
    client: &tokio_postgres::Client,
    types: &mut TypeCache,
    config: &TableConfig,
    unsupported_as_text: bool,
) -> PgResult<(u32, TableInfo)> {
    let qualified = format!("{}.{}", config.schema, config.name);
    let row = client
        .query_opt(
            "SELECT c.oid, c.relreplident, c.relkind FROM pg_class c \
             JOIN pg_namespace n ON n.oid = c.relnamespace \
             WHERE n.nspname = $1 AND c.relname = $2 AND c.relkind IN ('r', 'p')",
            &[&config.schema, &config.name],
        )
        .await?
        .ok_or_else(|| PgError::UnknownTable(qualified.clone()))?;
    let oid: u32 = row.get(0);
    let identity: i8 = row.get(1);
    let kind: i8 = row.get(2);
    if kind == b'p' as i8 {
        // pgoutput reports a partitioned table's changes under each partition's name
        // (or, with publish_via_partition_root, under the root's but without TRUNCATE of a
        // single partition, and without the rows ATTACH/DETACH PARTITION move in or out):
        // either way a gap no subscriber would be told of.
        return Err(PgError::UnsupportedTable {
            table: qualified,
            reason: "it is partitioned; publish its partitions as tables of their own".into(),
        });
    }
    check_identity(&qualified, identity as u8)?;
    let rows = client
        .query(
            "SELECT attname::text, atttypid, atttypmod FROM pg_attribute \
             WHERE attrelid = $1 AND attnum > 0 AND NOT attisdropped AND attgenerated = '' \
             ORDER BY attnum",
            &[&oid],
        )
        .await?;
    let mut columns = Vec::with_capacity(rows.len());
    for row in rows {
        let name: String = row.get(0);
        let type_oid: u32 = row.get(1);
        let type_modifier: i32 = row.get(2);
        let (kind, type_name) = types.resolve(Some(client), type_oid).await?;
        columns.push((name, kind, type_name, type_oid, type_modifier));
    }
    Ok((oid, TableInfo::build(config, columns, unsupported_as_text)?))
}

/// The table version a relation message describes.
pub(crate) async fn from_relation(
    client: Option<&tokio_postgres::Client>,
    types: &mut TypeCache,
    config: &TableConfig,
    relation: &Relation,
    unsupported_as_text: bool,
) -> PgResult<TableInfo> {
    check_identity(
        &format!("{}.{}", relation.namespace, relation.name),
        relation.replica_identity,
    )?;
    let mut columns = Vec::with_capacity(relation.columns.len());
    for column in &relation.columns {
        let (kind, type_name) = types.resolve(client, column.type_oid).await?;
        columns.push((
            column.name.clone(),
            kind,
            type_name,
            column.type_oid,
            column.type_modifier,
        ));
    }
    TableInfo::build(config, columns, unsupported_as_text)
}

/// Refuses a table whose replica identity is not FULL.
pub(crate) fn check_identity(table: &str, identity: u8) -> PgResult<()> {
    let name = match identity {
        b'f' => return Ok(()),
        b'd' => "DEFAULT",
        b'n' => "NOTHING",
        b'i' => "USING INDEX",
        _ => "unknown",
    };
    Err(PgError::ReplicaIdentityNotFull {
        table: table.to_string(),
        identity: name.to_string(),
    })
}
