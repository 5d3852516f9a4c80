//! Decoding of pgoutput (protocol version 1) messages.
//!
//! pgwire-replication hands Begin and Commit over as events of their own; every other
//! pgoutput message arrives as raw bytes and is decoded here. A message this module cannot
//! read is a [`PgError::Decode`]: the stream stops there rather than skip a change.

use bytes::Bytes;

use crate::error::PgError;

/// One column of a relation message.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RelationColumn {
    /// Part of the replica identity key.
    pub key: bool,
    /// The column's name.
    pub name: String,
    /// Its type's OID.
    pub type_oid: u32,
    /// Its type modifier.
    pub type_modifier: i32,
}

/// A relation (table) description, sent before the first change of a table in a session
/// and again after its schema changed.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Relation {
    /// The table's OID.
    pub oid: u32,
    /// Its schema.
    pub namespace: String,
    /// Its name.
    pub name: String,
    /// `REPLICA IDENTITY`: `d` default, `n` nothing, `f` full, `i` index.
    pub replica_identity: u8,
    /// Columns in row order (dropped and generated columns are not sent).
    pub columns: Vec<RelationColumn>,
}

/// One column of a tuple.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Datum {
    /// SQL NULL.
    Null,
    /// A TOASTed value the update did not change: pgoutput does not send it again.
    UnchangedToast,
    /// The value's text output.
    Text(Bytes),
}

/// A row as pgoutput sends it.
pub type Tuple = Vec<Datum>;

/// A decoded pgoutput message (Begin and Commit are handled by the transport).
#[derive(Clone, Debug, PartialEq)]
pub enum Message {
    /// A relation description.
    Relation(Relation),
    /// A type description (name of a non-built-in type), informational.
    Type {
        /// The type's OID.
        oid: u32,
    },
    /// The transaction came from a replication origin; informational.
    Origin,
    /// An inserted row.
    Insert {
        /// The table.
        relation: u32,
        /// The new row.
        new: Tuple,
    },
    /// An updated row. `old` is the full old row with `REPLICA IDENTITY FULL` (`O`), only
    /// the key columns with a key identity (`K`), absent otherwise.
    Update {
        /// The table.
        relation: u32,
        /// The old row, if sent.
        old: Option<Tuple>,
        /// Whether `old` holds only the replica identity key.
        old_is_key: bool,
        /// The new row.
        new: Tuple,
    },
    /// A deleted row.
    Delete {
        /// The table.
        relation: u32,
        /// The old row.
        old: Tuple,
        /// Whether `old` holds only the replica identity key.
        old_is_key: bool,
    },
    /// Tables truncated.
    Truncate {
        /// The tables.
        relations: Vec<u32>,
    },
}

struct Reader {
    data: Bytes,
    at: usize,
}

impl Reader {
    fn take(&mut self, n: usize, what: &str) -> Result<&[u8], PgError> {
        let end = self
            .at
            .checked_add(n)
            .filter(|&end| end <= self.data.len())
            .ok_or_else(|| PgError::Decode(format!("message ends inside {what}")))?;
        let slice = &self.data[self.at..end];
        self.at = end;
        Ok(slice)
    }

    fn u8(&mut self, what: &str) -> Result<u8, PgError> {
        Ok(self.take(1, what)?[0])
    }

    fn i16(&mut self, what: &str) -> Result<i16, PgError> {
        let b = self.take(2, what)?;
        Ok(i16::from_be_bytes([b[0], b[1]]))
    }

    fn i32(&mut self, what: &str) -> Result<i32, PgError> {
        let b = self.take(4, what)?;
        Ok(i32::from_be_bytes([b[0], b[1], b[2], b[3]]))
    }

    fn u32(&mut self, what: &str) -> Result<u32, PgError> {
        Ok(self.i32(what)? as u32)
    }

    fn cstring(&mut self, what: &str) -> Result<String, PgError> {
        let rest = &self.data[self.at..];
        let len = rest
            .iter()
            .position(|&b| b == 0)
            .ok_or_else(|| PgError::Decode(format!("{what} has no terminating NUL")))?;
        let text = std::str::from_utf8(&rest[..len])
            .map_err(|_| PgError::Decode(format!("{what} is not UTF-8")))?
            .to_string();
        self.at += len + 1;
        Ok(text)
    }

    fn tuple(&mut self) -> Result<Tuple, PgError> {
        let count = self.i16("tuple column count")?;
        if count < 0 {
            return Err(PgError::Decode(format!("negative column count {count}")));
        }
        let mut tuple = Vec::with_capacity(count as usize);
        for _ in 0..count {
            tuple.push(match self.u8("column kind")? {
                b'n' => Datum::Null,
                b'u' => Datum::UnchangedToast,
                b't' => {
                    let len = self.i32("text length")?;
                    if len < 0 {
                        return Err(PgError::Decode(format!("negative text length {len}")));
                    }
                    let start = self.at;
                    self.take(len as usize, "column text")?;
                    Datum::Text(self.data.slice(start..start + len as usize))
                }
                b'b' => {
                    return Err(PgError::Decode(
                        "binary column values are not requested and cannot be read".into(),
                    ))
                }
                other => {
                    return Err(PgError::Decode(format!(
                        "unknown column kind byte 0x{other:02x}"
                    )))
                }
            });
        }
        Ok(tuple)
    }

    fn finish(self, message: Message) -> Result<Message, PgError> {
        if self.at != self.data.len() {
            return Err(PgError::Decode(format!(
                "{} trailing bytes after a message",
                self.data.len() - self.at
            )));
        }
        Ok(message)
    }
}

/// Decodes one pgoutput message (any but Begin and Commit).
pub fn decode(data: Bytes) -> Result<Message, PgError> {
    let mut r = Reader { data, at: 0 };
    let tag = r.u8("message tag")?;
    let message = match tag {
        b'R' => {
            let oid = r.u32("relation oid")?;
            let namespace = r.cstring("namespace")?;
            let name = r.cstring("relation name")?;
            let replica_identity = r.u8("replica identity")?;
            let count = r.i16("relation column count")?;
            if count < 0 {
                return Err(PgError::Decode(format!("negative column count {count}")));
            }
            let mut columns = Vec::with_capacity(count as usize);
            for _ in 0..count {
                let flags = r.u8("column flags")?;
                let name = r.cstring("column name")?;
                let type_oid = r.u32("column type")?;
                let type_modifier = r.i32("column type modifier")?;
                columns.push(RelationColumn {
                    key: flags & 1 == 1,
                    name,
                    type_oid,
                    type_modifier,
                });
            }
            Message::Relation(Relation {
                oid,
                namespace: if namespace.is_empty() {
                    // pgoutput sends an empty namespace for pg_catalog.
                    "pg_catalog".into()
                } else {
                    namespace
                },
                name,
                replica_identity,
                columns,
            })
        }
        b'Y' => {
            let oid = r.u32("type oid")?;
            r.cstring("type namespace")?;
            r.cstring("type name")?;
            Message::Type { oid }
        }
        b'O' => {
            r.take(8, "origin lsn")?;
            r.cstring("origin name")?;
            Message::Origin
        }
        b'I' => {
            let relation = r.u32("relation oid")?;
            match r.u8("new tuple marker")? {
                b'N' => {}
                other => {
                    return Err(PgError::Decode(format!(
                        "insert: expected N, got 0x{other:02x}"
                    )))
                }
            }
            let new = r.tuple()?;
            Message::Insert { relation, new }
        }
        b'U' => {
            let relation = r.u32("relation oid")?;
            let mut old = None;
            let mut old_is_key = false;
            let mut marker = r.u8("update tuple marker")?;
            if marker == b'K' || marker == b'O' {
                old_is_key = marker == b'K';
                old = Some(r.tuple()?);
                marker = r.u8("update new tuple marker")?;
            }
            if marker != b'N' {
                return Err(PgError::Decode(format!(
                    "update: expected N, got 0x{marker:02x}"
                )));
            }
            let new = r.tuple()?;
            Message::Update {
                relation,
                old,
                old_is_key,
                new,
            }
        }
        b'D' => {
            let relation = r.u32("relation oid")?;
            let marker = r.u8("delete tuple marker")?;
            if marker != b'K' && marker != b'O' {
                return Err(PgError::Decode(format!(
                    "delete: expected K or O, got 0x{marker:02x}"
                )));
            }
            let old = r.tuple()?;
            Message::Delete {
                relation,
                old,
                old_is_key: marker == b'K',
            }
        }
        b'T' => {
            let count = r.i32("truncate relation count")?;
            if count < 0 {
                return Err(PgError::Decode(format!("negative relation count {count}")));
            }
            r.u8("truncate options")?;
            let relations = (0..count)
                .map(|_| r.u32("truncated relation"))
                .collect::<Result<_, _>>()?;
            Message::Truncate { relations }
        }
        other => {
            return Err(PgError::Decode(format!(
                "unknown pgoutput message tag 0x{other:02x}"
            )))
        }
    };
    r.finish(message)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tuple_bytes(out: &mut Vec<u8>, values: &[Option<&str>]) {
        out.extend_from_slice(&(values.len() as i16).to_be_bytes());
        for value in values {
            match value {
                None => out.push(b'n'),
                Some(text) => {
                    out.push(b't');
                    out.extend_from_slice(&(text.len() as i32).to_be_bytes());
                    out.extend_from_slice(text.as_bytes());
                }
            }
        }
    }

    #[test]
    fn relation_and_changes_decode() {
        let mut rel = vec![b'R'];
        rel.extend_from_slice(&16384u32.to_be_bytes());
        rel.extend_from_slice(b"public\0items\0f");
        rel.extend_from_slice(&2i16.to_be_bytes());
        rel.push(1);
        rel.extend_from_slice(b"id\0");
        rel.extend_from_slice(&23u32.to_be_bytes());
        rel.extend_from_slice(&(-1i32).to_be_bytes());
        rel.push(0);
        rel.extend_from_slice(b"body\0");
        rel.extend_from_slice(&25u32.to_be_bytes());
        rel.extend_from_slice(&(-1i32).to_be_bytes());
        let Message::Relation(relation) = decode(Bytes::from(rel)).unwrap() else {
            panic!("not a relation")
        };
        assert_eq!(relation.name, "items");
        assert_eq!(relation.replica_identity, b'f');
        assert_eq!(relation.columns.len(), 2);
        assert!(relation.columns[0].key);
        assert_eq!(relation.columns[1].type_oid, 25);

        let mut update = vec![b'U'];
        update.extend_from_slice(&16384u32.to_be_bytes());
        update.push(b'O');
        tuple_bytes(&mut update, &[Some("1"), Some("a")]);
        update.push(b'N');
        update.extend_from_slice(&2i16.to_be_bytes());
        update.extend_from_slice(b"t\0\0\0\x011u");
        match decode(Bytes::from(update)).unwrap() {
            Message::Update {
                old: Some(old),
                old_is_key: false,
                new,
                ..
            } => {
                assert_eq!(old[1], Datum::Text(Bytes::from_static(b"a")));
                assert_eq!(new[1], Datum::UnchangedToast);
            }
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn damaged_messages_are_decode_errors() {
        assert!(matches!(decode(Bytes::new()), Err(PgError::Decode(_))));
        assert!(matches!(
            decode(Bytes::from_static(b"Z")),
            Err(PgError::Decode(_))
        ));
        let mut insert = vec![b'I'];
        insert.extend_from_slice(&1u32.to_be_bytes());
        insert.push(b'N');
        tuple_bytes(&mut insert, &[Some("12345")]);
        insert.truncate(insert.len() - 2);
        assert!(matches!(
            decode(Bytes::from(insert.clone())),
            Err(PgError::Decode(_))
        ));
        insert.extend_from_slice(b"45xx");
        assert!(matches!(
            decode(Bytes::from(insert)),
            Err(PgError::Decode(_))
        ));
    }
}
