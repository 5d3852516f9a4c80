//! A seeded soak of the delivery semantics against a model of the tables, on one thread.
//!
//! Random steps (connect as one of two users; subscribe to either table live, with an
//! initial load, or resuming after an earlier SeqId; publish commits of inserts, updates
//! and deletes; set a snapshot boundary; hand livecore the snapshot rows; replay a missed
//! commit; complete a load; revoke a user; resync a table; add or drop a column;
//! unsubscribe; drain part of a connection) run against a manager with small channels and
//! a small gate buffer, so drops, gaps and buffer overflows happen often. The model keeps
//! every row and, per subscription, every delivery the subscriber is owed. At the end every
//! connection is drained and each subscription's stream is checked against it:
//!
//! - changes arrive in SeqId order, each with exactly the changes of its commit that its
//!   view saw (its table, its user's rows only, its filter, its columns; an update entering
//!   the filter as an insert, leaving it as a delete);
//! - what did not arrive is reported in place by gaps whose `missed` adds up to it and
//!   whose `last_seq` names the last change received (or the snapshot boundary): nothing
//!   lost silently, a trailing hole included;
//! - a loaded subscription hears nothing at or below its boundary; its snapshot rows come
//!   first, filtered and projected, then its load-complete marker counting them; a
//!   resuming one hears each replayed commit once, before its marker, and no live copy of
//!   it after; an overflow of the gate buffer is `ResyncRequired`, then nothing;
//! - a revoked subscription's last notification is `Closed`, a resynced one's (or a loading
//!   one's when its table changed) `ResyncRequired`; a live one goes on across the change,
//!   `SELECT *` with the new columns; nothing of a subscription arrives after its
//!   unsubscribe returned.
//!
//! Under `SlowConsumerPolicy::Disconnect` the same steps run, a slow connection is cut off
//! instead, and its subscriptions' streams must be whole prefixes with no gap notice.
//!
//! `LIVECORE_SOAK_SEED` runs one seed (a failure prints its seed; with
//! `LIVECORE_SOAK_DISCONNECT` under the disconnect policy), `LIVECORE_SOAK_STEPS`
//! lengthens each run and `LIVECORE_SOAK_TRACE` follows one subscription. A seed fixes
//! the steps; which subscription a full channel refuses first can follow livecore's own
//! hash order, so a rerun may take a slightly different path.

#[path = "common/rng.rs"]
mod rng;
#[path = "common/soak_env.rs"]
mod soak_env;
#[path = "common/soak_model.rs"]
mod soak_model;

use livecore::*;
use soak_model::*;
use std::collections::BTreeMap;

const CHANNEL_CAPACITY: usize = 6;
const GATE_CAPACITY: usize = 5;
const MAX_CONNECTIONS: usize = 6;
/// Snapshot rows per batch, small so a snapshot spans several batches.
const BATCH_SIZE: usize = 3;

/// Where a subscription's initial load stands in the model.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Load {
    /// No load: live from its subscribe.
    None,
    /// Loading: matching commits are buffered (or covered by the boundary once set).
    Gated {
        boundary: Option<u64>,
        buffered: usize,
    },
    /// Completed with this boundary.
    Completed { boundary: u64 },
    /// The gate buffer overflowed: `ResyncRequired`, then nothing.
    Overflowed,
}

/// How the host ended a subscription.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Ending {
    /// `revoke_user`: `Closed`.
    Revoked,
    /// `resync_table`: `ResyncRequired`.
    Resynced,
}

struct ModelSub {
    id: LiveQueryId,
    connection: usize,
    view: View,
    load: Load,
    /// Matching commits while gated, in order (the boundary drops a prefix of them).
    held: Vec<Owed>,
    /// What the subscriber is owed once live, in order.
    owed: Vec<Owed>,
    /// The snapshot rows handed to livecore, as the subscriber should see them.
    snapshot: Vec<Row>,
    /// Resuming after this SeqId: the host replays the commits after it.
    resume: Option<u64>,
    /// The highest SeqId replayed (the resume point before any), and what the replay sent.
    replayed_upto: u64,
    replayed: Vec<Owed>,
    removed: bool,
    ended: Option<Ending>,
    /// How many notifications it had received when the host's call ended it: after that
    /// call returned only the terminal notice may arrive.
    ended_at: usize,
    /// The last SeqId published when it subscribed: a resuming client's host replays up
    /// to it, and the gate holds what is published later.
    subscribed_at: u64,
    /// Its load overflowed and a writer call (a subscribe) has since unrouted it.
    reaped: bool,
    /// What it received, in order.
    received: Vec<Got>,
}

impl ModelSub {
    /// Still routed: neither removed nor ended (by the host or by an overflow).
    fn active(&self) -> bool {
        !self.removed && self.ended.is_none() && self.load != Load::Overflowed
    }
}

/// `LIVECORE_SOAK_TRACE=<subscription number>`: prints what the model does with that
/// subscription, to follow a failing seed.
fn traced(id: LiveQueryId) -> bool {
    static TRACED: std::sync::OnceLock<Option<u64>> = std::sync::OnceLock::new();
    let traced = TRACED.get_or_init(|| {
        std::env::var("LIVECORE_SOAK_TRACE")
            .ok()
            .and_then(|id| id.parse().ok())
    });
    *traced == Some(id.subscription_id.0)
}

macro_rules! trace {
    ($id:expr, $($arg:tt)*) => {
        if traced($id) {
            eprintln!("trace {:?}: {}", $id.subscription_id, format!($($arg)*));
        }
    };
}

struct Soak {
    rng: Rng,
    /// Unsubscribe calls made, and resumes completed with live commits held behind their
    /// marker (the coverage counts them).
    unsubscribes: u64,
    resume_flushes: u64,
    manager: ConnectionsManager,
    tables: Vec<TableId>,
    connections: Vec<ConnectionRegistration>,
    /// Each connection's user (index into [`USERS`]).
    users: Vec<usize>,
    /// The manager cuts a slow consumer off (`SlowConsumerPolicy::Disconnect`) instead of
    /// telling it of gaps; `cut_off` marks the connections it cut off, as the host learns
    /// from their `SlowConsumer` event.
    disconnect: bool,
    cut_off: Vec<bool>,
    subs: Vec<ModelSub>,
    /// Every row, by id: its table, its owner (table `u`) and its values.
    rows: BTreeMap<i64, (usize, Option<usize>, ModelRow)>,
    /// Per table: it has the optional column `w` (added and dropped by `alter`), and the
    /// last SeqId published before its last change (a client resumes from no earlier: the
    /// host could not replay older commits in the table's new shape).
    wide: [bool; 2],
    altered_at: [u64; 2],
    /// Every commit published, for replays: its SeqId, changes and the model's record.
    log: Vec<(u64, Vec<ChangeNotification>, Vec<ModelChange>)>,
    next_id: i64,
    seq: u64,
}

impl Soak {
    fn new(seed: u64, disconnect: bool) -> Self {
        let config = ManagerConfig {
            notification_channel_capacity: CHANNEL_CAPACITY,
            gate_buffer_capacity: GATE_CAPACITY,
            slow_consumer_policy: if disconnect {
                SlowConsumerPolicy::Disconnect
            } else {
                SlowConsumerPolicy::GapNotice
            },
            ..ManagerConfig::default()
        };
        let (manager, tables) = soak_manager(config);
        Self {
            rng: Rng(seed | 1),
            unsubscribes: 0,
            resume_flushes: 0,
            manager,
            tables,
            connections: Vec::new(),
            users: Vec::new(),
            disconnect,
            cut_off: Vec::new(),
            subs: Vec::new(),
            rows: BTreeMap::new(),
            wide: [false; 2],
            altered_at: [0; 2],
            log: Vec::new(),
            next_id: 1,
            seq: 0,
        }
    }

    fn step(&mut self) {
        match self.rng.below(200) {
            0..=9 if self.open_connections() < MAX_CONNECTIONS => self.connect(),
            0..=29 => self.subscribe(),
            30..=109 => self.publish(),
            110..=125 => self.set_boundary(),
            126..=131 => self.hand_snapshot(),
            132..=145 => self.complete(),
            146..=155 => self.unsubscribe(),
            156 => self.revoke_user(),
            157 => self.resync_table(),
            158 => self.alter(),
            159..=166 => self.replay(),
            _ => self.drain_some(),
        }
    }

    fn connect(&mut self) {
        let registration = self.manager.register_connection().expect("connect");
        let user = self.rng.below(USERS.len());
        self.manager
            .authenticate(registration.connection_id, UserId::from(USERS[user]), None)
            .expect("authenticate");
        self.connections.push(registration);
        self.users.push(user);
        self.cut_off.push(false);
    }

    fn open_connections(&self) -> usize {
        self.cut_off.iter().filter(|cut_off| !**cut_off).count()
    }

    /// Reads the connections' events: on a `SlowConsumer` the host (this soak) reads what
    /// the connection's receiver still hands out, then unregisters it, as a server closing
    /// the socket would; its subscriptions are gone with it.
    fn read_events(&mut self) {
        for connection in 0..self.connections.len() {
            if self.cut_off[connection] {
                continue;
            }
            let mut slow = false;
            while let Ok(event) = self.connections[connection].events.try_recv() {
                slow |= matches!(event, ConnectionEvent::SlowConsumer);
            }
            if !slow {
                continue;
            }
            assert!(self.disconnect, "SlowConsumer under the gap-notice policy");
            self.drain(connection);
            self.cut_off[connection] = true;
            let connection_id = self.connections[connection].connection_id;
            self.manager
                .unregister_connection(connection_id)
                .expect("unregister");
            for sub in &mut self.subs {
                if sub.connection == connection {
                    sub.removed = true;
                }
            }
        }
    }

    fn subscribe(&mut self) {
        if self.connections.is_empty() {
            return self.connect();
        }
        let connection = self.rng.below(self.connections.len());
        if self.cut_off[connection] {
            return;
        }
        let view = View::random(&mut self.rng, self.users[connection]);
        let initial_load = self.rng.chance(40);
        // A client coming back after the SeqId it last held.
        let oldest = self.altered_at[view.table];
        let resume = (!initial_load && self.rng.chance(20))
            .then(|| oldest + self.rng.below((self.seq - oldest + 1) as usize) as u64);
        let options = SubscriptionOptions {
            initial_load,
            batch_size: BATCH_SIZE,
            resume_from: resume.map(SeqId),
        };
        let connection_id = self.connections[connection].connection_id;
        // Every subscribe first unroutes the subscriptions whose load overflowed.
        for sub in &mut self.subs {
            sub.reaped |= sub.load == Load::Overflowed;
        }
        let id = match self
            .manager
            .subscribe_sql(connection_id, &view.sql(), options)
        {
            Ok(subscribed) => subscribed.live_query_id,
            // The per-connection limit counts removed subscriptions still queued: drain.
            Err(LiveError::SubscriptionLimitReached { .. }) => return self.drain(connection),
            Err(error) => panic!("subscribe {}: {error}", view.sql()),
        };
        self.subs.push(ModelSub {
            id,
            connection,
            view,
            load: if initial_load || resume.is_some() {
                Load::Gated {
                    boundary: resume,
                    buffered: 0,
                }
            } else {
                Load::None
            },
            held: Vec::new(),
            owed: Vec::new(),
            snapshot: Vec::new(),
            resume,
            replayed_upto: resume.unwrap_or(0),
            replayed: Vec::new(),
            removed: false,
            ended: None,
            ended_at: 0,
            subscribed_at: self.seq,
            reaped: false,
            received: Vec::new(),
        });
    }

    /// A commit of one to three changes, over both tables.
    fn publish(&mut self) {
        self.seq += 1;
        let seq = self.seq;
        let (changes, model) = random_commit(
            &mut self.rng,
            &mut self.rows,
            &mut self.next_id,
            &self.tables,
            &self.wide,
        );
        self.log.push((seq, changes.clone(), model.clone()));
        let summary = self
            .manager
            .publish_commit(SeqId(seq), changes)
            .expect("publish");
        // A subscription whose load overflowed stays routed, and its filter evaluated, until
        // the next subscribe unroutes it.
        let mut matched = self
            .subs
            .iter()
            .filter(|sub| sub.load == Load::Overflowed && !sub.reaped && !sub.removed)
            .filter(|sub| !seen_by(sub.view, &model).is_empty())
            .count();
        for sub in self.subs.iter_mut().filter(|sub| sub.active()) {
            let seen = seen_by(sub.view, &model);
            if seen.is_empty() {
                continue;
            }
            matched += 1;
            trace!(
                sub.id,
                "publish {seq} matched, load {:?}, replayed_upto {}",
                sub.load,
                sub.replayed_upto
            );
            let owed = Owed { seq, changes: seen };
            match &mut sub.load {
                Load::None | Load::Completed { .. } => sub.owed.push(owed),
                Load::Gated { boundary, buffered } => {
                    if boundary.is_some_and(|boundary| seq <= boundary) {
                        continue; // covered by the snapshot
                    }
                    if *buffered >= GATE_CAPACITY {
                        sub.load = Load::Overflowed;
                        sub.held.clear();
                        continue;
                    }
                    *buffered += 1;
                    sub.held.push(owed);
                }
                Load::Overflowed => unreachable!("not active"),
            }
        }
        assert_eq!(summary.matched, matched, "seq {seq}: matched subscriptions");
        if self.disconnect {
            self.read_events();
        }
    }

    /// A subscription still loading (`resuming`: one resuming, else one loading a
    /// snapshot), at random.
    fn gated(&mut self, resuming: bool) -> Option<usize> {
        let gated: Vec<usize> = (0..self.subs.len())
            .filter(|&index| {
                let sub = &self.subs[index];
                sub.active()
                    && matches!(sub.load, Load::Gated { .. })
                    && sub.resume.is_some() == resuming
                    && !self.cut_off[sub.connection]
            })
            .collect();
        if gated.is_empty() {
            return None;
        }
        Some(self.rng.pick(&gated))
    }

    /// The host read its snapshot at some SeqId published since the subscribe (or at the
    /// latest), and sets it as the boundary; it may move it forward again later.
    fn set_boundary(&mut self) {
        let Some(index) = self.gated(false) else {
            return;
        };
        let Load::Gated { boundary, .. } = self.subs[index].load else {
            unreachable!()
        };
        let low = boundary.unwrap_or(0);
        let boundary = low + self.rng.below((self.seq - low + 1) as usize) as u64;
        self.set_boundary_of(index, boundary);
    }

    fn set_boundary_of(&mut self, index: usize, boundary: u64) {
        let id = self.subs[index].id;
        self.manager
            .set_snapshot_boundary(id, SeqId(boundary))
            .expect("set boundary");
        let sub = &mut self.subs[index];
        let Load::Gated { buffered, .. } = sub.load else {
            unreachable!()
        };
        let before = sub.held.len();
        sub.held.retain(|owed| owed.seq > boundary);
        sub.load = Load::Gated {
            boundary: Some(boundary),
            buffered: buffered - (before - sub.held.len()),
        };
    }

    /// The host reads its snapshot now, sets the boundary there and hands livecore the
    /// rows of the subscription's table it may see (livecore filters and projects them),
    /// in pieces, draining the connection whenever its channel is full.
    fn hand_snapshot(&mut self) {
        let Some(index) = self.gated(false) else {
            return;
        };
        if !self.subs[index].snapshot.is_empty() {
            return;
        }
        self.set_boundary_of(index, self.seq);
        let view = self.subs[index].view;
        let rows: Vec<ModelRow> = self
            .rows
            .values()
            .filter(|(table, owner, _)| view.reads(*table, *owner))
            .map(|(_, _, row)| *row)
            .collect();
        let (id, connection) = (self.subs[index].id, self.subs[index].connection);
        let wide = self.wide[view.table];
        let mut left: Vec<Row> = rows.iter().map(|row| row.row(wide)).collect();
        while !left.is_empty() {
            let piece = (1 + self.rng.below(5)).min(left.len());
            match self.manager.push_snapshot_rows(id, &left[..piece]) {
                Ok(_) => {
                    left.drain(..piece);
                }
                Err(LiveError::WouldBlock { consumed }) => {
                    left.drain(..consumed);
                    self.drain(connection);
                }
                Err(error) => panic!("push_snapshot_rows: {error}"),
            }
        }
        self.subs[index].snapshot = rows
            .into_iter()
            .filter(|row| view.filter.matches(row))
            .map(|row| view.row(row, wide))
            .collect();
    }

    /// Replays the next commit a resuming subscription missed (retrying while its channel
    /// is full, as a host would), as the host reads them from its log in order.
    fn replay(&mut self) {
        if let Some(index) = self.gated(true) {
            self.replay_next(index);
        }
    }

    /// Replays the commit after the last replayed to subscription `index`; false when the
    /// replay has caught up.
    fn replay_next(&mut self, index: usize) -> bool {
        let after = self.subs[index].replayed_upto;
        let Some((seq, changes, model)) = self.log.iter().find(|(seq, ..)| *seq > after) else {
            return false;
        };
        let (seq, changes, seen) = (*seq, changes.clone(), seen_by(self.subs[index].view, model));
        let (id, connection) = (self.subs[index].id, self.subs[index].connection);
        let sent = loop {
            match self.manager.replay_commit(id, SeqId(seq), changes.clone()) {
                Ok(sent) => break sent,
                Err(LiveError::WouldBlock { .. }) => self.drain(connection),
                Err(error) => panic!("replay_commit {seq}: {error}"),
            }
        };
        assert_eq!(sent, !seen.is_empty(), "replay of {seq}: sent");
        let sub = &mut self.subs[index];
        trace!(
            sub.id,
            "replayed {seq}, sent {sent}, held {:?}",
            sub.held.iter().map(|owed| owed.seq).collect::<Vec<_>>()
        );
        if sent {
            sub.replayed.push(Owed { seq, changes: seen });
        }
        sub.replayed_upto = seq;
        // Live copies of it, or of an earlier commit, buffered meanwhile are dropped.
        let before = sub.held.len();
        sub.held.retain(|owed| owed.seq > seq);
        if let Load::Gated { buffered, .. } = &mut sub.load {
            *buffered -= before - sub.held.len();
        }
        true
    }

    fn complete(&mut self) {
        let resuming = self.rng.chance(30);
        let Some(index) = self.gated(resuming) else {
            return;
        };
        // A resuming subscription completes once its replay has reached the last commit
        // published before it subscribed (the host's part of the protocol): the gate holds
        // every later one, to flush behind the marker.
        while resuming
            && self.subs[index].active()
            && self.subs[index].replayed_upto < self.subs[index].subscribed_at
            && self.replay_next(index)
        {}
        if !self.subs[index].active() {
            return; // overflowed while replaying
        }
        let Load::Gated { boundary, .. } = self.subs[index].load else {
            unreachable!()
        };
        let Some(boundary) = boundary else {
            // Completing without a boundary is refused: the host must set one first.
            return self.set_boundary();
        };
        let id = self.subs[index].id;
        trace!(id, "complete");
        self.manager.complete_initial_load(id).expect("complete");
        let sub = &mut self.subs[index];
        if sub.resume.is_some() && !sub.held.is_empty() {
            self.resume_flushes += 1;
        }
        sub.owed = std::mem::take(&mut sub.held);
        sub.load = Load::Completed { boundary };
    }

    fn unsubscribe(&mut self) {
        let candidates: Vec<usize> = (0..self.subs.len())
            .filter(|&index| !self.subs[index].removed && self.subs[index].ended.is_none())
            .collect();
        if candidates.is_empty() {
            return;
        }
        let index = self.rng.pick(&candidates);
        let sub = &mut self.subs[index];
        match self.manager.unsubscribe(sub.id) {
            Ok(()) => {}
            // An overflowed load ended the subscription; the next writer call unrouted it
            // and its connection remembered the ending, but only its latest endings
            // (ENDED_SUBSCRIPTIONS_REMEMBERED or the per-connection limit): a long run
            // forgets the oldest, and then the subscription is unknown.
            Err(LiveError::UnknownSubscription(_)) if sub.load == Load::Overflowed => {}
            Err(error) => panic!("unsubscribe {:?} ({:?}): {error}", sub.id, sub.load),
        }
        sub.removed = true;
        self.unsubscribes += 1;
    }

    fn revoke_user(&mut self) {
        let user = self.rng.below(USERS.len());
        let ended = self.manager.revoke_user(&UserId::from(USERS[user]), "soak");
        let expected = self.end_affected(Ending::Revoked, |sub| sub.view.user == user);
        assert_eq!(ended, expected, "subscriptions of {} revoked", USERS[user]);
    }

    fn resync_table(&mut self) {
        let table = self.rng.below(TABLES.len());
        let ended = self
            .manager
            .resync_table(&self.tables[table])
            .expect("resync");
        let expected = self.end_affected(Ending::Resynced, |sub| sub.view.table == table);
        assert_eq!(
            ended, expected,
            "subscriptions of {} resynced",
            TABLES[table]
        );
    }

    /// ALTER TABLE: adds the optional column `w` (NULL in every existing row) or drops it.
    /// No filter reads `w`, so every subscription's query still compiles: those still
    /// loading get `ResyncRequired`, the others go on, `SELECT *` with the new columns.
    fn alter(&mut self) {
        let table = self.rng.below(TABLES.len());
        self.wide[table] = !self.wide[table];
        self.altered_at[table] = self.seq;
        for (row_table, _, row) in self.rows.values_mut() {
            if *row_table == table {
                row.w = None;
            }
        }
        let columns: &[&str] = if self.wide[table] {
            &["id", "room", "v", "w"]
        } else {
            &["id", "room", "v"]
        };
        let scope = [TableScope::Shared, TableScope::User][table];
        self.manager
            .register_table(TableSchema::new(
                self.tables[table].clone(),
                scope,
                columns.iter().copied(),
            ))
            .expect("alter");
        // The loading ones end; the table's route is rebuilt from those still live, so
        // the overflowed ones leave it.
        self.end_affected(Ending::Resynced, |sub| {
            sub.view.table == table && matches!(sub.load, Load::Gated { .. } | Load::Overflowed)
        });
    }

    /// Records a host call that ended the active subscriptions `affected` picks (returns
    /// how many, as the call does) and took those of them whose load had overflowed out of
    /// the index.
    fn end_affected(&mut self, ending: Ending, affected: impl Fn(&ModelSub) -> bool) -> usize {
        let mut ended = 0;
        for sub in self.subs.iter_mut().filter(|sub| affected(sub)) {
            sub.reaped |= sub.load == Load::Overflowed;
            if sub.active() {
                sub.ended = Some(ending);
                sub.ended_at = sub.received.len();
                ended += 1;
            }
        }
        ended
    }

    fn drain_some(&mut self) {
        if self.connections.is_empty() {
            return;
        }
        let connection = self.rng.below(self.connections.len());
        let take = 1 + self.rng.below(2 * CHANNEL_CAPACITY);
        for _ in 0..take {
            if !self.receive_one(connection) {
                break;
            }
        }
    }

    fn drain(&mut self, connection: usize) {
        while self.receive_one(connection) {}
    }

    /// Takes one notification of `connection` into its subscription's record; false when
    /// none was waiting.
    fn receive_one(&mut self, connection: usize) -> bool {
        if self.cut_off[connection] {
            return false; // unregistered
        }
        let notification = match self.connections[connection].notifications.try_recv() {
            Ok(notification) => notification,
            Err(_) => return false,
        };
        let id = notification.live_query_id();
        let sub = self
            .subs
            .iter_mut()
            .find(|sub| sub.id == id)
            .unwrap_or_else(|| panic!("a notification of an unknown subscription {id:?}"));
        assert!(
            !sub.removed,
            "{id:?} received {} after its unsubscribe returned",
            notification.kind()
        );
        assert_eq!(
            sub.connection, connection,
            "{id:?}: a notification on another connection's receiver"
        );
        trace!(id, "received {:?}", Got::of(&notification));
        sub.received.push(Got::of(&notification));
        true
    }

    /// Drains everything and checks each subscription's stream against what it is owed;
    /// adds what the run exercised to `coverage`.
    fn check(mut self, seed: u64, coverage: &mut BTreeMap<&'static str, u64>) {
        for connection in 0..self.connections.len() {
            self.drain(connection);
        }
        self.read_events();
        *coverage.entry("unsubscribes").or_default() += self.unsubscribes;
        *coverage.entry("resumes flushing live commits").or_default() += self.resume_flushes;
        for sub in &self.subs {
            for got in &sub.received {
                let kind = match got {
                    Got::Changes(owed) if owed.changes.iter().any(|seen| seen.row.len() == 4) => {
                        "changes with an added column"
                    }
                    Got::Changes(owed) if sub.replayed.iter().any(|r| r.seq == owed.seq) => {
                        "replayed changes"
                    }
                    Got::Changes(_) => "changes",
                    Got::Gap { .. } => "gaps",
                    Got::Snapshot(_) => "snapshot batches",
                    Got::LoadComplete { .. } => "loads completed",
                    Got::Resync => "resyncs (overflow or host)",
                    Got::Closed => "revocations",
                };
                *coverage.entry(kind).or_default() += 1;
            }
            let cut_off = self.cut_off[sub.connection];
            if cut_off {
                *coverage.entry("subscriptions cut off").or_default() += 1;
            }
            let gaps = sub
                .received
                .iter()
                .any(|got| matches!(got, Got::Gap { .. }));
            let checked = if self.disconnect && gaps {
                Err("a gap notice under the disconnect policy".to_string())
            } else {
                check_stream(sub, cut_off)
            };
            if let Err(problem) = checked {
                panic!(
                    "seed {seed}: {:?} ({}, load {:?}, removed {}, ended {:?}): {problem}\n\
                     owed: {:?}\nreceived: {:?}",
                    sub.id,
                    sub.view.sql(),
                    sub.load,
                    sub.removed,
                    sub.ended,
                    sub.owed.iter().map(|owed| owed.seq).collect::<Vec<_>>(),
                    sub.received
                );
            }
        }
    }
}

/// Checks one subscription's received stream against what it is owed; `cut_off` when the
/// manager cut its connection off as a slow consumer (its stream then ends early).
fn check_stream(sub: &ModelSub, cut_off: bool) -> Result<(), String> {
    let mut received: &[Got] = &sub.received;
    // An ending the host caused is the last notification, once.
    let cut_short = sub.removed || sub.ended.is_some() || cut_off;
    if let Some(ending) = sub.ended {
        // After the host's call returned, nothing but its terminal notice.
        let after = &received[sub.ended_at..];
        match (ending, after) {
            (Ending::Revoked, [Got::Closed]) | (Ending::Resynced, [Got::Resync]) => {}
            // The stream of a connection cut off ends where the cut was.
            (_, []) if cut_off => {}
            (_, after) => {
                return Err(format!(
                    "ended {ending:?}; after the call returned it received {after:?}"
                ))
            }
        }
        received = &received[..sub.ended_at];
    }
    // Snapshot batches come first, with the rows handed to livecore, filtered and projected.
    let batches = received
        .iter()
        .take_while(|got| matches!(got, Got::Snapshot(_)))
        .count();
    let snapshot: Vec<Row> = received[..batches]
        .iter()
        .flat_map(|got| match got {
            Got::Snapshot(rows) => rows.clone(),
            _ => unreachable!(),
        })
        .collect();
    received = &received[batches..];
    let whole_snapshot = snapshot == sub.snapshot;
    // An overflow ends the load: what was queued of its snapshot may be skipped.
    let snapshot_cut = cut_short || sub.load == Load::Overflowed;
    let snapshot_prefix = snapshot_cut && sub.snapshot.starts_with(&snapshot);
    if !(whole_snapshot || snapshot_prefix) {
        return Err(format!(
            "snapshot rows {snapshot:?}, handed {:?}",
            sub.snapshot
        ));
    }
    // A resuming subscription's replayed commits come first, whole: the host retried each
    // until the channel took it.
    let last_replayed = if sub.resume.is_some() {
        let (last, rest) = take_replayed(received, &sub.replayed, snapshot_cut)?;
        received = rest;
        last
    } else {
        None
    };
    // What the consumer holds before the first live change: the last change replayed to it,
    // else the boundary (or the highest commit replayed, when above it).
    let held_before_live = |boundary: u64| last_replayed.unwrap_or(boundary.max(sub.replayed_upto));
    match sub.load {
        Load::None => follow(&sub.owed, received, None, cut_short),
        Load::Gated { .. } => match received {
            [] => Ok(()),
            other => Err(format!("{other:?} before its load completed")),
        },
        Load::Overflowed => match received {
            [Got::Resync] => Ok(()),
            [] if cut_short => Ok(()),
            other => Err(format!("an overflowed load gave {other:?}")),
        },
        Load::Completed { boundary } => match received.split_first() {
            Some((
                Got::LoadComplete {
                    boundary: said,
                    batches: said_batches,
                    rows,
                },
                rest,
            )) => {
                if *said != Some(boundary) {
                    return Err(format!("the marker said boundary {said:?}, set {boundary}"));
                }
                if !whole_snapshot
                    || *said_batches as usize != batches
                    || *rows as usize != sub.snapshot.len()
                {
                    return Err(format!(
                        "the marker counted {said_batches} batches of {rows} rows; {batches} \
                         batches of {} rows arrived",
                        snapshot.len()
                    ));
                }
                follow(&sub.owed, rest, Some(held_before_live(boundary)), cut_short)
            }
            None if cut_short => Ok(()),
            other => Err(format!("expected the load-complete marker, got {other:?}")),
        },
    }
}

fn run(seed: u64, steps: usize, disconnect: bool, coverage: &mut BTreeMap<&'static str, u64>) {
    let mut soak = Soak::new(seed, disconnect);
    for _ in 0..steps {
        soak.step();
    }
    soak.check(seed, coverage);
}

#[test]
fn deliveries_match_the_model_across_drops_loads_endings_and_unsubscribes() {
    let steps = soak_steps(3_000);
    let mut coverage = BTreeMap::new();
    if let Some(seed) = soak_seed() {
        let disconnect = std::env::var_os("LIVECORE_SOAK_DISCONNECT").is_some();
        return run(seed, steps, disconnect, &mut coverage);
    }
    for seed in 1..=40u64 {
        run(
            seed.wrapping_mul(0x9E37_79B9_7F4A_7C15),
            steps,
            false,
            &mut coverage,
        );
    }
    println!("soak coverage: {coverage:?}");
    // Every kind of notification, and unsubscribes, occurred: the soak is not vacuous.
    assert!(coverage.values().all(|count| *count > 0), "{coverage:?}");
    assert_eq!(coverage.len(), 10, "soak coverage: {coverage:?}");
}

#[test]
fn a_slow_consumer_cut_off_gets_a_whole_prefix_and_no_gap_notice() {
    let steps = soak_steps(3_000);
    let mut coverage = BTreeMap::new();
    for seed in 1..=20u64 {
        run(
            seed.wrapping_mul(0xD1B5_4A32_D192_ED03),
            steps,
            true,
            &mut coverage,
        );
    }
    println!("disconnect soak coverage: {coverage:?}");
    for kind in [
        "changes",
        "subscriptions cut off",
        "loads completed",
        "unsubscribes",
    ] {
        assert!(coverage.contains_key(kind), "no {kind}: {coverage:?}");
    }
    assert!(!coverage.contains_key("gaps"), "{coverage:?}");
}
