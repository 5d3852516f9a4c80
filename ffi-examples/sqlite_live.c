/*
 * Example 3: live queries over a real SQLite database.
 *
 * The database is the engine. sqlite3_preupdate_hook sees every row change with its old
 * and new values; they wait in a pending list until the transaction ends. When a COMMIT
 * (or an autocommit statement) succeeds, the pending changes are published to livecore as
 * one commit with the next SeqId; when the transaction rolls back they are discarded, and
 * when one statement fails inside a transaction its own changes are dropped (SQLite undid
 * them). Two subscribers watch:
 *
 *   alice: SELECT id, title, done FROM main.tasks WHERE project = 'apollo' AND done = 0
 *          (live only; she keeps her own copy of the result set from the notifications,
 *          and at the end it is compared with the same query run on the database)
 *   bob:   SELECT * FROM main.tasks WHERE project = 'apollo'
 *          (with an initial load: a snapshot read at a known SeqId, then live changes)
 *
 * Usage: sqlite_live DATABASE_FILE   (the file is created; it must not exist)
 */
#define SQLITE_ENABLE_PREUPDATE_HOOK 1

#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <sqlite3.h>

#include "livecore.h"

#define CHECK(call) check((call), #call, __LINE__)

static void check(lc_status status, const char *what, int line) {
    if (status == LC_OK) {
        return;
    }
    const char *name = "?";
    const char *message = "";
    lc_status_name(status, &name);
    lc_last_error(&message);
    fprintf(stderr, "sqlite_live.c:%d: %s returned %s: %s\n", line, what, name, message);
    exit(1);
}

static void *xmalloc(size_t size) {
    void *p = malloc(size ? size : 1);
    if (!p) {
        fprintf(stderr, "out of memory\n");
        exit(1);
    }
    return p;
}

/* ---- rows copied out of SQLite ------------------------------------------------------- */

/* A row of values whose text and blob bytes this program owns. */
typedef struct {
    lc_value *values;
    size_t count;
} owned_row;

static lc_value copy_sqlite_value(sqlite3_value *v) {
    lc_value out = {.tag = LC_VALUE_NULL};
    switch (sqlite3_value_type(v)) {
    case SQLITE_INTEGER:
        out.tag = LC_VALUE_INT;
        out.int_value = sqlite3_value_int64(v);
        break;
    case SQLITE_FLOAT:
        out.tag = LC_VALUE_FLOAT;
        out.float_value = sqlite3_value_double(v);
        break;
    case SQLITE_TEXT:
    case SQLITE_BLOB: {
        int is_text = sqlite3_value_type(v) == SQLITE_TEXT;
        const void *src = is_text ? (const void *)sqlite3_value_text(v) : sqlite3_value_blob(v);
        size_t len = (size_t)sqlite3_value_bytes(v);
        uint8_t *copy = xmalloc(len);
        if (len) {
            memcpy(copy, src, len);
        }
        out.tag = is_text ? LC_VALUE_TEXT : LC_VALUE_BYTES;
        out.data = copy;
        out.len = len;
        break;
    }
    default:
        break;
    }
    return out;
}

static void free_row(owned_row *row) {
    for (size_t i = 0; i < row->count; i++) {
        free((void *)row->values[i].data);
    }
    free(row->values);
    row->values = NULL;
    row->count = 0;
}

/* ---- the engine: SQLite plus the pending changes of the open transaction -------------- */

typedef struct {
    uint32_t change_type;
    owned_row row;     /* new row (insert, update) or deleted row (delete) */
    owned_row old_row; /* updates only */
} pending_change;

typedef struct {
    sqlite3 *db;
    lc_manager manager;
    uint32_t tasks_key; /* livecore's key for main.tasks */
    pending_change *pending;
    size_t pending_len, pending_cap;
    uint64_t last_seq; /* SeqId of the last commit published */
} engine;

static void discard_pending_from(engine *e, size_t from) {
    for (size_t i = from; i < e->pending_len; i++) {
        free_row(&e->pending[i].row);
        free_row(&e->pending[i].old_row);
    }
    e->pending_len = from;
}

static owned_row capture(sqlite3 *db, int old) {
    owned_row row = {.count = (size_t)sqlite3_preupdate_count(db)};
    row.values = xmalloc(row.count * sizeof *row.values);
    for (size_t i = 0; i < row.count; i++) {
        sqlite3_value *v = NULL;
        int rc = old ? sqlite3_preupdate_old(db, (int)i, &v) : sqlite3_preupdate_new(db, (int)i, &v);
        row.values[i] = rc == SQLITE_OK && v ? copy_sqlite_value(v) : (lc_value){.tag = LC_VALUE_NULL};
    }
    return row;
}

/* Called by SQLite just before each row change. */
static void on_preupdate(void *ctx, sqlite3 *db, int op, const char *db_name, const char *table,
                         sqlite3_int64 old_rowid, sqlite3_int64 new_rowid) {
    (void)old_rowid;
    (void)new_rowid;
    engine *e = ctx;
    if (strcmp(db_name, "main") != 0 || strcmp(table, "tasks") != 0) {
        return;
    }
    if (e->pending_len == e->pending_cap) {
        e->pending_cap = e->pending_cap ? 2 * e->pending_cap : 8;
        pending_change *grown = realloc(e->pending, e->pending_cap * sizeof *grown);
        if (!grown) {
            fprintf(stderr, "out of memory\n");
            exit(1);
        }
        e->pending = grown;
    }
    pending_change *change = &e->pending[e->pending_len++];
    memset(change, 0, sizeof *change);
    switch (op) {
    case SQLITE_INSERT:
        change->change_type = LC_CHANGE_INSERT;
        change->row = capture(db, 0);
        break;
    case SQLITE_UPDATE:
        change->change_type = LC_CHANGE_UPDATE;
        change->row = capture(db, 0);
        change->old_row = capture(db, 1);
        break;
    default:
        change->change_type = LC_CHANGE_DELETE;
        change->row = capture(db, 1);
        break;
    }
}

/* Called by SQLite when a transaction rolls back: its changes never happened. */
static void on_rollback(void *ctx) {
    engine *e = ctx;
    if (e->pending_len) {
        printf("  rolled back: %zu change(s) discarded\n", e->pending_len);
    }
    discard_pending_from(e, 0);
}

/* The transaction committed: publish its changes as one commit with the next SeqId. */
static void publish_pending(engine *e) {
    if (e->pending_len == 0) {
        return;
    }
    lc_change *changes = xmalloc(e->pending_len * sizeof *changes);
    for (size_t i = 0; i < e->pending_len; i++) {
        const pending_change *p = &e->pending[i];
        changes[i] = (lc_change){
            .table = e->tasks_key,
            .change_type = p->change_type,
            .row = p->row.values,
            .row_len = p->row.count,
            .old_row = p->old_row.values,
            .old_row_len = p->old_row.count,
        };
    }
    lc_publish_summary summary = {.struct_size = sizeof summary};
    uint64_t seq = e->last_seq + 1;
    CHECK(lc_commit_publish(e->manager, seq, changes, e->pending_len, &summary));
    e->last_seq = seq;
    printf("  committed: published SeqId %" PRIu64 " with %zu change(s), %" PRIu64 " delivery(ies)\n", seq,
           e->pending_len, summary.enqueued);
    free(changes);
    discard_pending_from(e, 0);
}

/* Runs each statement of `sql`; publishes when a transaction ends in a commit. */
static void run(engine *e, const char *sql) {
    printf("sql> %s\n", sql);
    const char *tail = sql;
    while (tail && *tail) {
        sqlite3_stmt *stmt = NULL;
        if (sqlite3_prepare_v2(e->db, tail, -1, &stmt, &tail) != SQLITE_OK) {
            printf("  error: %s\n", sqlite3_errmsg(e->db));
            return;
        }
        if (!stmt) {
            break; /* only whitespace left */
        }
        size_t mark = e->pending_len;
        int rc;
        while ((rc = sqlite3_step(stmt)) == SQLITE_ROW) {
        }
        sqlite3_finalize(stmt);
        if (rc != SQLITE_DONE) {
            printf("  error: %s\n", sqlite3_errmsg(e->db));
            if (sqlite3_get_autocommit(e->db)) {
                discard_pending_from(e, 0); /* the whole (implicit) transaction is gone */
            } else {
                /* SQLite undid this statement only (the default ABORT conflict policy): drop
                 * its changes, keep the transaction's earlier ones. */
                printf("  statement undone: %zu change(s) discarded\n", e->pending_len - mark);
                discard_pending_from(e, mark);
            }
            return;
        }
        if (sqlite3_get_autocommit(e->db)) {
            publish_pending(e); /* COMMIT, or an autocommit statement, succeeded */
        }
    }
}

/* ---- the server side: receiving, and alice's copy of her result set -------------------- */

enum { MAX_ID = 64 };
typedef struct {
    int present;
    char title[64];
    int64_t done;
} view_row;
static view_row alice_view[MAX_ID];

static void apply_to_view(lc_notification n) {
    lc_notification_info info = {.struct_size = sizeof info};
    CHECK(lc_notification_get_info(n, &info));
    for (size_t i = 0; i < info.row_count && info.kind == LC_NOTIFICATION_CHANGES; i++) {
        lc_change_info change;
        lc_value id, title, done;
        CHECK(lc_notification_change(n, i, &change));
        CHECK(lc_notification_value(n, i, LC_ROW_CURRENT, 0, &id));
        CHECK(lc_notification_value(n, i, LC_ROW_CURRENT, 1, &title));
        CHECK(lc_notification_value(n, i, LC_ROW_CURRENT, 2, &done));
        if (id.int_value < 0 || id.int_value >= MAX_ID) {
            continue;
        }
        view_row *row = &alice_view[id.int_value];
        if (change.change_type == LC_CHANGE_DELETE) {
            row->present = 0;
        } else {
            row->present = 1;
            snprintf(row->title, sizeof row->title, "%.*s", (int)title.len, (const char *)title.data);
            row->done = done.int_value;
        }
    }
}

static void drain(engine *e, const char *who, uint64_t connection, int keep_view) {
    lc_notification n;
    lc_status status;
    while ((status = lc_connection_recv(e->manager, connection, 0, &n)) == LC_OK) {
        const char *json;
        size_t len;
        CHECK(lc_notification_json(n, &json, &len));
        printf("  %s <- %s\n", who, json);
        if (keep_view) {
            apply_to_view(n);
        }
        CHECK(lc_notification_free(n));
    }
    CHECK(status == LC_EMPTY ? LC_OK : status);
}

static uint64_t connect_as(engine *e, const char *user) {
    uint64_t id;
    CHECK(lc_connection_register(e->manager, &id));
    CHECK(lc_connection_authenticate(e->manager, id, user, NULL));
    return id;
}

static lc_live_query_id subscribe(engine *e, uint64_t connection, const char *sql, uint32_t flags) {
    lc_subscription_options options = {.struct_size = sizeof options};
    CHECK(lc_subscription_options_init(&options));
    options.flags = flags;
    lc_subscription_result result;
    CHECK(lc_subscription_create_sql(e->manager, connection, sql, &options, &result));
    lc_subscription_info info = {.struct_size = sizeof info};
    CHECK(lc_subscription_result_get_info(result, &info));
    CHECK(lc_subscription_result_free(result));
    return info.live_query;
}

/* Bob's initial load: the snapshot is read after subscribing, at a known SeqId. */
static void initial_load(engine *e, lc_live_query_id live) {
    run(e, "BEGIN");
    uint64_t boundary = e->last_seq; /* every commit up to here is in what we read next */
    CHECK(lc_subscription_set_snapshot_boundary(e->manager, live, boundary));
    sqlite3_stmt *stmt;
    if (sqlite3_prepare_v2(e->db, "SELECT * FROM tasks ORDER BY id", -1, &stmt, NULL) != SQLITE_OK) {
        fprintf(stderr, "%s\n", sqlite3_errmsg(e->db));
        exit(1);
    }
    size_t columns = (size_t)sqlite3_column_count(stmt), rows = 0, cap = 16;
    lc_value *values = xmalloc(cap * columns * sizeof *values);
    while (sqlite3_step(stmt) == SQLITE_ROW) {
        if (rows == cap) {
            cap *= 2;
            lc_value *grown = realloc(values, cap * columns * sizeof *values);
            if (!grown) {
                exit(1);
            }
            values = grown;
        }
        for (size_t c = 0; c < columns; c++) {
            values[rows * columns + c] = copy_sqlite_value(sqlite3_column_value(stmt, (int)c));
        }
        rows++;
    }
    sqlite3_finalize(stmt);
    run(e, "COMMIT");
    lc_snapshot_progress progress = {.struct_size = sizeof progress};
    CHECK(lc_subscription_push_snapshot_rows(e->manager, live, values, rows, columns, &progress));
    printf("  snapshot at SeqId %" PRIu64 ": %" PRIu64 " row(s) read, %" PRIu64 " delivered in %" PRIu64
           " batch(es)\n",
           boundary, progress.consumed, progress.rows, progress.batches);
    for (size_t i = 0; i < rows * columns; i++) {
        free((void *)values[i].data);
    }
    free(values);
    CHECK(lc_subscription_complete_initial_load(e->manager, live, NULL));
}

/* Runs alice's query on the database into `view`; returns the row count. */
static int read_apollo_open(engine *e, view_row *view) {
    memset(view, 0, MAX_ID * sizeof *view);
    sqlite3_stmt *stmt;
    sqlite3_prepare_v2(e->db, "SELECT id, title, done FROM tasks WHERE project = 'apollo' AND done = 0", -1,
                       &stmt, NULL);
    int count = 0;
    while (sqlite3_step(stmt) == SQLITE_ROW) {
        int64_t id = sqlite3_column_int64(stmt, 0);
        if (id >= 0 && id < MAX_ID) {
            view[id].present = 1;
            snprintf(view[id].title, sizeof view[id].title, "%s", (const char *)sqlite3_column_text(stmt, 1));
            view[id].done = sqlite3_column_int64(stmt, 2);
            count++;
        }
    }
    sqlite3_finalize(stmt);
    return count;
}

/* Compares alice's copy with the same query run on the database. */
static int check_view(engine *e) {
    view_row expected[MAX_ID];
    int count = read_apollo_open(e, expected);
    for (int id = 0; id < MAX_ID; id++) {
        view_row *a = &alice_view[id], *b = &expected[id];
        if (a->present != b->present ||
            (a->present && (strcmp(a->title, b->title) != 0 || a->done != b->done))) {
            printf("alice's view differs from the database at id %d\n", id);
            return 0;
        }
    }
    printf("alice's live view matches the database: %d row(s)\n", count);
    return 1;
}

int main(int argc, char **argv) {
    if (argc != 2) {
        fprintf(stderr, "usage: %s DATABASE_FILE\n", argv[0]);
        return 2;
    }
    engine e = {0};
    if (sqlite3_open(argv[1], &e.db) != SQLITE_OK) {
        fprintf(stderr, "cannot open %s: %s\n", argv[1], sqlite3_errmsg(e.db));
        return 1;
    }
    sqlite3_preupdate_hook(e.db, on_preupdate, &e);
    sqlite3_rollback_hook(e.db, on_rollback, &e);

    lc_config config = {.struct_size = sizeof config};
    CHECK(lc_config_init(&config));
    CHECK(lc_manager_new(&config, &e.manager));

    run(&e, "PRAGMA journal_mode = WAL");
    run(&e, "CREATE TABLE tasks (id INTEGER PRIMARY KEY, project TEXT NOT NULL, title TEXT, "
            "done INTEGER NOT NULL DEFAULT 0, estimate REAL, notes BLOB)");

    /* Register the table with livecore, its columns read from the database. */
    const char *names[16];
    char storage[16][32];
    size_t column_count = 0;
    sqlite3_stmt *stmt;
    sqlite3_prepare_v2(e.db, "SELECT name FROM pragma_table_info('tasks') ORDER BY cid", -1, &stmt, NULL);
    while (sqlite3_step(stmt) == SQLITE_ROW && column_count < 16) {
        snprintf(storage[column_count], sizeof storage[column_count], "%s", sqlite3_column_text(stmt, 0));
        names[column_count] = storage[column_count];
        column_count++;
    }
    sqlite3_finalize(stmt);
    CHECK(lc_table_register(e.manager, "main", "tasks", LC_SCOPE_SHARED, names, column_count, &e.tasks_key));
    printf("registered main.tasks with %zu columns\n", column_count);

    run(&e, "INSERT INTO tasks (id, project, title, estimate) VALUES (1, 'apollo', 'design', 2.5)");
    run(&e, "INSERT INTO tasks (id, project, title, notes) VALUES (2, 'gemini', 'budget', x'00ff')");
    run(&e, "INSERT INTO tasks (id, project, title, done) VALUES (3, 'apollo', 'kickoff', 1)");

    uint64_t alice = connect_as(&e, "alice");
    uint64_t bob = connect_as(&e, "bob");
    subscribe(&e, alice, "SELECT id, title, done FROM main.tasks WHERE project = 'apollo' AND done = 0", 0);
    /* alice is live at once; her starting rows come from one read of the database (the
     * server sends them itself; nothing commits in between in this single thread). */
    read_apollo_open(&e, alice_view);
    printf("alice subscribed (live) at SeqId %" PRIu64 "\n", e.last_seq);

    lc_live_query_id bob_live = subscribe(&e, bob, "SELECT * FROM main.tasks WHERE project = 'apollo'",
                                          LC_SUBSCRIBE_INITIAL_LOAD);
    initial_load(&e, bob_live);
    drain(&e, "bob", bob, 0);

    printf("-- one transaction: a row enters by insert, one by update, one stays\n");
    run(&e, "BEGIN; INSERT INTO tasks (id, project, title) VALUES (4, 'apollo', 'launch'); "
            "UPDATE tasks SET project = 'apollo' WHERE id = 2; "
            "UPDATE tasks SET title = 'design v2' WHERE id = 1; COMMIT");
    drain(&e, "alice", alice, 1);
    drain(&e, "bob", bob, 0);

    printf("-- a rolled-back transaction publishes nothing\n");
    run(&e, "BEGIN; INSERT INTO tasks (id, project, title) VALUES (5, 'apollo', 'never'); "
            "DELETE FROM tasks WHERE id = 1; ROLLBACK");
    drain(&e, "alice", alice, 1);
    drain(&e, "bob", bob, 0);

    printf("-- a statement that fails inside a transaction is undone alone\n");
    run(&e, "BEGIN");
    run(&e, "INSERT INTO tasks (id, project, title) VALUES (6, 'apollo', 'tests')");
    run(&e, "INSERT INTO tasks (id, project, title) VALUES (7, 'apollo', 'x'), (8, 'apollo', 'y'), "
            "(1, 'apollo', 'duplicate id')");
    run(&e, "COMMIT");
    drain(&e, "alice", alice, 1);
    drain(&e, "bob", bob, 0);

    printf("-- a row leaves alice's filter (done), then one is deleted\n");
    run(&e, "UPDATE tasks SET done = 1 WHERE id = 4");
    run(&e, "DELETE FROM tasks WHERE id = 2");
    drain(&e, "alice", alice, 1);
    drain(&e, "bob", bob, 0);

    printf("-- a failing autocommit statement publishes nothing\n");
    run(&e, "UPDATE tasks SET project = NULL WHERE id = 6");
    drain(&e, "alice", alice, 1);
    drain(&e, "bob", bob, 0);

    int ok = check_view(&e);
    lc_stats stats = {.struct_size = sizeof stats};
    CHECK(lc_manager_get_stats(e.manager, &stats));
    printf("stats: published %" PRIu64 " commit(s) with %" PRIu64 " change(s), delivered %" PRIu64
           ", dropped %" PRIu64 "\n",
           stats.published, stats.published_changes, stats.delivered, stats.dropped);

    CHECK(lc_connection_unregister(e.manager, alice));
    CHECK(lc_connection_unregister(e.manager, bob));
    CHECK(lc_manager_free(e.manager));
    discard_pending_from(&e, 0);
    free(e.pending);
    sqlite3_close(e.db);
    return ok ? 0 : 1;
}
