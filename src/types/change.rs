//! Row changes as the engine hands them to livecore, and the shared form of one commit.

use std::fmt;

use crate::sync::{DataArc, Mutex};
use crate::types::ids::{SeqId, TableId, UserId};
use crate::types::seen_keys::SeenKeys;
use crate::types::value::Row;

/// What a change did to a row. For a subscriber, an update can also arrive as an insert
/// (the row entered its filter) or a delete (the row left it).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[cfg_attr(feature = "serde", derive(serde::Serialize, serde::Deserialize))]
#[repr(u8)]
pub enum ChangeType {
    /// A row was inserted (or, for a subscriber, entered its result set).
    Insert = 0,
    /// A row was updated and stays in the subscriber's result set.
    Update = 1,
    /// A row was deleted (or, for a subscriber, left its result set).
    Delete = 2,
}

impl ChangeType {
    /// The lower-case name used in JSON.
    pub fn as_str(self) -> &'static str {
        match self {
            ChangeType::Insert => "insert",
            ChangeType::Update => "update",
            ChangeType::Delete => "delete",
        }
    }

    pub(crate) fn from_bits(bits: u32) -> ChangeType {
        match bits & 3 {
            0 => ChangeType::Insert,
            1 => ChangeType::Update,
            _ => ChangeType::Delete,
        }
    }
}

impl fmt::Display for ChangeType {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// One committed row change, as the engine publishes it.
///
/// `row` is the row as it is after the change for inserts and updates, and the row as it was
/// for deletes. `old_row` is the row before an update (required for updates, ignored
/// otherwise). `owner` names the user that owns the row; it is required on user-scoped
/// tables and ignored on shared ones.
#[derive(Clone, Debug, PartialEq)]
#[cfg_attr(feature = "serde", derive(serde::Serialize, serde::Deserialize))]
pub struct ChangeNotification {
    /// The table the row belongs to.
    pub table_id: TableId,
    /// What happened to the row.
    pub change_type: ChangeType,
    /// The new row (insert, update) or the deleted row (delete).
    pub row: Row,
    /// The previous row of an update.
    pub old_row: Option<Row>,
    /// The user owning the row, for user-scoped tables.
    pub owner: Option<UserId>,
}

impl ChangeNotification {
    /// An inserted row.
    pub fn insert(table_id: TableId, row: impl Into<Row>) -> Self {
        Self {
            table_id,
            change_type: ChangeType::Insert,
            row: row.into(),
            old_row: None,
            owner: None,
        }
    }

    /// An updated row, with its previous and new values.
    pub fn update(table_id: TableId, old_row: impl Into<Row>, new_row: impl Into<Row>) -> Self {
        Self {
            table_id,
            change_type: ChangeType::Update,
            row: new_row.into(),
            old_row: Some(old_row.into()),
            owner: None,
        }
    }

    /// A deleted row, with the values it had.
    pub fn delete(table_id: TableId, old_row: impl Into<Row>) -> Self {
        Self {
            table_id,
            change_type: ChangeType::Delete,
            row: old_row.into(),
            old_row: None,
            owner: None,
        }
    }

    /// Names the user that owns the row (required on user-scoped tables).
    pub fn owned_by(mut self, owner: impl Into<UserId>) -> Self {
        self.owner = Some(owner.into());
        self
    }

    /// The row after the change: `None` for deletes.
    pub fn new_row(&self) -> Option<&Row> {
        match self.change_type {
            ChangeType::Delete => None,
            _ => Some(&self.row),
        }
    }

    /// The row before the change: `None` for inserts.
    pub fn previous_row(&self) -> Option<&Row> {
        match self.change_type {
            ChangeType::Insert => None,
            ChangeType::Update => self.old_row.as_ref(),
            ChangeType::Delete => Some(&self.row),
        }
    }
}

/// A published commit, shared by every delivery made from it. Rows are never copied per
/// subscriber; JSON pieces are built on the receiving side once per change, projection and
/// delivered type, and cached here.
pub(crate) struct Commit {
    pub(crate) seq: SeqId,
    pub(crate) changes: Vec<ChangeNotification>,
    json_pieces: Mutex<Option<Box<JsonPieces>>>,
}

/// The JSON pieces a commit rendered, found through `SeenKeys` (so a commit of n changes
/// renders and finds its pieces in O(n)). Boxed in the commit and made on its first
/// render: most commits are never rendered as JSON here.
struct JsonPieces {
    keys: SeenKeys<JsonPieceKey>,
    json: Vec<DataArc<str>>,
}

/// Which rendering of a change a JSON piece is: the change's position, the projection (by
/// address of the shared compiled query) and the delivered change type.
#[derive(Clone, Copy, PartialEq, Eq, Hash)]
pub(crate) struct JsonPieceKey {
    pub(crate) position: u32,
    pub(crate) projection: usize,
    pub(crate) change_type: ChangeType,
}

impl Commit {
    pub(crate) fn new(seq: SeqId, changes: Vec<ChangeNotification>) -> Self {
        Self {
            seq,
            changes,
            json_pieces: Mutex::new(None),
        }
    }

    /// How many JSON pieces were rendered for this commit.
    #[cfg(test)]
    pub(crate) fn json_piece_count(&self) -> usize {
        crate::sync::lock(&self.json_pieces)
            .as_ref()
            .map_or(0, |pieces| pieces.json.len())
    }

    /// The cached JSON piece for `key`, building it with `render` the first time.
    pub(crate) fn json_piece(
        &self,
        key: JsonPieceKey,
        render: impl FnOnce() -> String,
    ) -> DataArc<str> {
        let mut pieces = crate::sync::lock(&self.json_pieces);
        let pieces = pieces.get_or_insert_with(|| {
            Box::new(JsonPieces {
                keys: SeenKeys::default(),
                json: Vec::new(),
            })
        });
        if let Some(at) = pieces.keys.position(key) {
            return pieces.json[at].clone();
        }
        // Rendered before the key is recorded: a render that panics records nothing.
        let json: DataArc<str> = DataArc::from(render());
        pieces.keys.place(key);
        pieces.json.push(json.clone());
        json
    }
}

#[cfg(all(test, not(livecore_loom)))]
mod tests {
    use super::*;

    #[test]
    fn each_json_piece_is_rendered_once_past_the_few_searched_in_order() {
        let commit = Commit::new(SeqId(1), Vec::new());
        let key = |position: u32, change_type: ChangeType| JsonPieceKey {
            position,
            projection: 7,
            change_type,
        };
        for round in 0..2 {
            for position in 0..1000 {
                for change_type in [ChangeType::Insert, ChangeType::Delete] {
                    let piece = commit.json_piece(key(position, change_type), || {
                        assert_eq!(round, 0, "{position} rendered again");
                        format!("{position}:{change_type:?}")
                    });
                    assert_eq!(&*piece, format!("{position}:{change_type:?}"));
                }
            }
        }
        assert_eq!(commit.json_piece_count(), 2000);
        // A render that panics records nothing: the next lookup renders.
        let panicked = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
            commit.json_piece(key(5000, ChangeType::Update), || panic!("render"))
        }));
        assert!(panicked.is_err());
        let piece = commit.json_piece(key(5000, ChangeType::Update), || "late".into());
        assert_eq!(&*piece, "late");
        assert_eq!(commit.json_piece_count(), 2001);
    }
}
