//! The model both soaks check livecore against: two tables (one shared, one whose rows
//! belong to users), random commits over them, what each subscription should see of a
//! commit, and a check that a received stream follows what it is owed.
#![allow(dead_code)]

use std::collections::BTreeMap;

use livecore::*;

pub use crate::rng::Rng;
pub use crate::soak_env::{soak_seed, soak_steps};

/// Rooms a row can be in (filters pin rooms, so each matches about a fifth of the rows).
pub const ROOMS: i64 = 5;

/// The filters the soak subscribes with: each has SQL text and the model's own verdict.
#[derive(Clone, Copy, Debug)]
pub enum Filter {
    All,
    RoomIs(i64),
    ValueAbove(i64),
    RoomIn(i64, i64),
    RoomIsValueBelow(i64, i64),
}

impl Filter {
    /// One of the filters, with random constants.
    pub fn random(rng: &mut Rng) -> Self {
        let room = rng.below(ROOMS as usize) as i64;
        let other = rng.below(ROOMS as usize) as i64;
        let value = rng.below(100) as i64;
        match rng.below(5) {
            0 => Filter::All,
            1 => Filter::RoomIs(room),
            2 => Filter::ValueAbove(value),
            3 => Filter::RoomIn(room, other),
            _ => Filter::RoomIsValueBelow(room, value),
        }
    }

    /// The ` WHERE ...` clause (empty for no filter).
    pub fn clause(self) -> String {
        match self {
            Filter::All => String::new(),
            Filter::RoomIs(room) => format!(" WHERE room = {room}"),
            Filter::ValueAbove(value) => format!(" WHERE v > {value}"),
            Filter::RoomIn(a, b) => format!(" WHERE room IN ({a}, {b})"),
            Filter::RoomIsValueBelow(room, value) => {
                format!(" WHERE room = {room} AND v < {value}")
            }
        }
    }

    /// The model's verdict on `row`.
    pub fn matches(self, row: &ModelRow) -> bool {
        match self {
            Filter::All => true,
            Filter::RoomIs(room) => row.room == room,
            Filter::ValueAbove(value) => row.v > value,
            Filter::RoomIn(a, b) => row.room == a || row.room == b,
            Filter::RoomIsValueBelow(room, value) => row.room == room && row.v < value,
        }
    }
}

/// The soak's two tables: `t`, shared, and `u`, whose rows each belong to one user.
pub const TABLES: [&str; 2] = ["t", "u"];

/// What one subscription reads: a table, as its connection's user, some columns, a filter.
#[derive(Clone, Copy, Debug)]
pub struct View {
    /// Index into [`TABLES`].
    pub table: usize,
    /// The user of the subscription's connection (index into [`USERS`]).
    pub user: usize,
    /// `SELECT id, v` rather than `SELECT *`.
    pub projected: bool,
    pub filter: Filter,
}

/// The users connections authenticate as.
pub const USERS: [&str; 2] = ["alice", "bob"];

impl View {
    /// A random view for a connection of `user`.
    pub fn random(rng: &mut Rng, user: usize) -> Self {
        Self {
            table: rng.below(2),
            user,
            projected: rng.chance(30),
            filter: Filter::random(rng),
        }
    }

    /// The subscription's SQL.
    pub fn sql(self) -> String {
        let columns = if self.projected { "id, v" } else { "*" };
        format!(
            "SELECT {columns} FROM {}{}",
            TABLES[self.table],
            self.filter.clause()
        )
    }

    /// The row as this view delivers it, from a table with column `w` when `wide`.
    pub fn row(self, row: ModelRow, wide: bool) -> Row {
        if self.projected {
            Row::new(vec![Value::Int(row.id), Value::Int(row.v)])
        } else {
            row.row(wide)
        }
    }

    /// True when a change of `table` owned by `owner` is this view's to see (whatever its
    /// filter says).
    pub fn reads(self, table: usize, owner: Option<usize>) -> bool {
        table == self.table && (table == 0 || owner == Some(self.user))
    }
}

/// One change of a commit as the model keeps it: its table (and whether the table had its
/// optional last column `w` then), its owner (table `u`), and the row before and after.
#[derive(Clone, Copy, Debug)]
pub struct ModelChange {
    pub table: usize,
    pub wide: bool,
    pub owner: Option<usize>,
    pub old: Option<ModelRow>,
    pub new: Option<ModelRow>,
}

impl ModelChange {
    /// The change as the engine publishes (or replays) it.
    pub fn notification(&self, tables: &[TableId]) -> ChangeNotification {
        let table = tables[self.table].clone();
        let wide = self.wide;
        let notification = match (self.old, self.new) {
            (None, Some(new)) => ChangeNotification::insert(table, new.row(wide)),
            (Some(old), Some(new)) => {
                ChangeNotification::update(table, old.row(wide), new.row(wide))
            }
            (Some(old), None) => ChangeNotification::delete(table, old.row(wide)),
            (None, None) => unreachable!("a change has a row before or after"),
        };
        match self.owner {
            Some(owner) => notification.owned_by(USERS[owner]),
            None => notification,
        }
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ModelRow {
    pub id: i64,
    pub room: i64,
    pub v: i64,
    /// The optional column `w`: NULL in rows made before the table had it.
    pub w: Option<i64>,
}

impl ModelRow {
    /// The row as the engine publishes it, with `w` when its table is `wide`.
    pub fn row(self, wide: bool) -> Row {
        let mut values = vec![
            Value::Int(self.id),
            Value::Int(self.room),
            Value::Int(self.v),
        ];
        if wide {
            values.push(self.w.map_or(Value::Null, Value::Int));
        }
        Row::new(values)
    }
}

/// One change as the subscriber should see it: its position in the commit, its type, the
/// row delivered and the old row of an update.
#[derive(Clone, Debug, PartialEq)]
pub struct Seen {
    pub position: usize,
    pub change_type: ChangeType,
    pub row: Row,
    pub old_row: Option<Row>,
}

/// One delivery a subscriber is owed.
#[derive(Clone, Debug)]
pub struct Owed {
    pub seq: u64,
    pub changes: Vec<Seen>,
}

/// One notification of a subscription as the soaks record it.
#[derive(Debug)]
pub enum Got {
    Changes(Owed),
    Gap {
        last_seq: Option<u64>,
        missed: u64,
    },
    Snapshot(Vec<Row>),
    LoadComplete {
        boundary: Option<u64>,
        batches: u32,
        rows: u64,
    },
    Resync,
    Closed,
}

impl Got {
    /// The record of `notification`.
    pub fn of(notification: &Notification) -> Got {
        match notification {
            Notification::Changes(changes) => Got::Changes(Owed {
                seq: changes.seq().0,
                changes: changes
                    .changes()
                    .map(|change| Seen {
                        position: change.position(),
                        change_type: change.change_type(),
                        row: change.row().to_row(),
                        old_row: change.old_row().map(|row| row.to_row()),
                    })
                    .collect(),
            }),
            Notification::Gap {
                last_seq, missed, ..
            } => Got::Gap {
                last_seq: last_seq.map(|seq| seq.0),
                missed: *missed,
            },
            Notification::Snapshot(batch) => Got::Snapshot(batch.rows().to_vec()),
            Notification::InitialLoadComplete {
                boundary,
                batches,
                rows,
                ..
            } => Got::LoadComplete {
                boundary: boundary.map(|seq| seq.0),
                batches: *batches,
                rows: *rows,
            },
            Notification::ResyncRequired { .. } => Got::Resync,
            Notification::Closed { .. } => Got::Closed,
            other => panic!("unexpected {}", other.kind()),
        }
    }
}

/// A manager with the soak's two tables.
pub fn soak_manager(config: ManagerConfig) -> (ConnectionsManager, Vec<TableId>) {
    let manager = ConnectionsManager::new(config).expect("manager");
    let tables: Vec<TableId> = TABLES
        .iter()
        .map(|name| TableId::new("default", *name))
        .collect();
    for (table, scope) in tables.iter().zip([TableScope::Shared, TableScope::User]) {
        manager
            .register_table(TableSchema::new(table.clone(), scope, ["id", "room", "v"]))
            .expect("table");
    }
    (manager, tables)
}

/// A random commit of one to three changes over `rows` (inserts of new rows, updates that
/// may move a row's room, deletes), applied to `rows`; with the model's record of it. The
/// tables whose `wide` entry is set have the optional column `w`.
pub fn random_commit(
    rng: &mut Rng,
    rows: &mut BTreeMap<i64, (usize, Option<usize>, ModelRow)>,
    next_id: &mut i64,
    tables: &[TableId],
    wide: &[bool],
) -> (Vec<ChangeNotification>, Vec<ModelChange>) {
    let mut changes = Vec::new();
    let mut model = Vec::new();
    for _ in 0..1 + rng.below(3) {
        let room = rng.below(ROOMS as usize) as i64;
        let v = rng.below(100) as i64;
        let w = rng.chance(70).then(|| rng.below(10) as i64);
        let existing: Vec<i64> = rows.keys().copied().collect();
        let kind = if existing.len() < 3 { 0 } else { rng.below(3) };
        let change = if kind == 0 {
            let table = rng.below(2);
            let owner = (table == 1).then(|| rng.below(2));
            let row = ModelRow {
                id: *next_id,
                room,
                v,
                w: w.filter(|_| wide[table]),
            };
            *next_id += 1;
            rows.insert(row.id, (table, owner, row));
            ModelChange {
                table,
                wide: wide[table],
                owner,
                old: None,
                new: Some(row),
            }
        } else {
            let id = rng.pick(&existing);
            let (table, owner, old) = rows[&id];
            if kind == 1 {
                let new = ModelRow {
                    id,
                    room: if rng.chance(50) { room } else { old.room },
                    v,
                    w: w.filter(|_| wide[table]),
                };
                rows.insert(id, (table, owner, new));
                ModelChange {
                    table,
                    wide: wide[table],
                    owner,
                    old: Some(old),
                    new: Some(new),
                }
            } else {
                rows.remove(&id);
                ModelChange {
                    table,
                    wide: wide[table],
                    owner,
                    old: Some(old),
                    new: None,
                }
            }
        };
        changes.push(change.notification(tables));
        model.push(change);
    }
    (changes, model)
}

/// What a subscription reading `view` sees of a commit.
pub fn seen_by(view: View, model: &[ModelChange]) -> Vec<Seen> {
    let mut seen = Vec::new();
    for (position, change) in model.iter().enumerate() {
        if !view.reads(change.table, change.owner) {
            continue;
        }
        let wide = change.wide;
        let was = change.old.filter(|row| view.filter.matches(row));
        let is = change.new.filter(|row| view.filter.matches(row));
        let change = match (was, is) {
            (None, None) => continue,
            (None, Some(new)) => (ChangeType::Insert, view.row(new, wide), None),
            (Some(old), None) => (ChangeType::Delete, view.row(old, wide), None),
            (Some(old), Some(new)) => (
                ChangeType::Update,
                view.row(new, wide),
                Some(view.row(old, wide)),
            ),
        };
        seen.push(Seen {
            position,
            change_type: change.0,
            row: change.1,
            old_row: change.2,
        });
    }
    seen
}

/// Checks that `received` follows `owed` from its start: every delivery in order and
/// whole, every hole reported in place by gaps adding up to it (one per episode of drops
/// the consumer saw, `last_seq` the last received, else `last_seq` as given) and, unless
/// `cut_short` (unsubscribed or ended: what was queued may go unread), nothing left
/// unaccounted at the end.
pub fn follow(
    owed: &[Owed],
    received: &[Got],
    mut last_seq: Option<u64>,
    cut_short: bool,
) -> Result<(), String> {
    let mut next = 0;
    let mut pending: Option<u64> = None;
    for got in received {
        match got {
            Got::Gap {
                last_seq: said,
                missed,
            } => {
                if *said != last_seq {
                    return Err(format!(
                        "a gap said last_seq {said:?}, the last received was {last_seq:?}"
                    ));
                }
                if *missed == 0 {
                    return Err("a gap that missed nothing".to_string());
                }
                pending = Some(pending.unwrap_or(0) + missed);
            }
            Got::Changes(delivery) => {
                let Some(found) = owed[next..]
                    .iter()
                    .position(|owed| owed.seq == delivery.seq)
                else {
                    return Err(format!(
                        "seq {} was not owed after index {next} (a duplicate, out of order, \
                         or never matched)",
                        delivery.seq
                    ));
                };
                let reported = pending.take().unwrap_or(0);
                if reported != found as u64 {
                    return Err(format!(
                        "seq {} came after {found} owed deliveries went missing; gaps said \
                         {reported}",
                        delivery.seq
                    ));
                }
                if owed[next + found].changes != delivery.changes {
                    return Err(format!(
                        "seq {}: got {:?}, owed {:?}",
                        delivery.seq,
                        delivery.changes,
                        owed[next + found].changes
                    ));
                }
                next += found + 1;
                last_seq = Some(delivery.seq);
            }
            other => return Err(format!("{other:?} in the middle of the stream")),
        }
    }
    let unaccounted = (owed.len() - next) as u64;
    match pending {
        Some(missed) if missed > unaccounted => Err(format!(
            "a trailing gap of {missed}, but only {unaccounted} were owed"
        )),
        Some(missed) if missed < unaccounted && !cut_short => Err(format!(
            "{unaccounted} owed at the end, a trailing gap of {missed}"
        )),
        None if unaccounted > 0 && !cut_short => Err(format!(
            "{unaccounted} owed deliveries never arrived nor were reported"
        )),
        _ => Ok(()),
    }
}

/// Takes a resumed subscription's replayed commits off the front of `received`: each of
/// `sent` once and whole, in order (all of them unless `cut_short`: ended, removed or
/// overflowed). Returns the SeqId of the last replayed change received, and the rest.
pub fn take_replayed<'a>(
    received: &'a [Got],
    sent: &[Owed],
    cut_short: bool,
) -> Result<(Option<u64>, &'a [Got]), String> {
    let replays = received
        .iter()
        .take_while(|got| matches!(got, Got::Changes(_)))
        .count();
    let got: Vec<&Owed> = received[..replays]
        .iter()
        .map(|got| match got {
            Got::Changes(owed) => owed,
            _ => unreachable!(),
        })
        .collect();
    let whole = |(got, owed): (&&Owed, &Owed)| got.seq == owed.seq && got.changes == owed.changes;
    if got.len() > sent.len()
        || !got.iter().zip(sent).all(whole)
        || (got.len() < sent.len() && !cut_short)
    {
        return Err(format!(
            "replayed {:?}, sent {:?}",
            got.iter().map(|owed| owed.seq).collect::<Vec<_>>(),
            sent.iter().map(|owed| owed.seq).collect::<Vec<_>>()
        ));
    }
    Ok((got.last().map(|owed| owed.seq), &received[replays..]))
}
