/*
 * Example 1: the smallest complete use of livecore from C.
 *
 * One manager, one table, one connection with one filtered subscription, a few commits
 * (rows entering, staying in, leaving the filter, and every kind of value), and the
 * notifications printed as JSON and read back through the accessors.
 *
 * Build (see run.sh): cc -std=c11 -Iinclude minimal.c liblivecore.a <native libs>
 */
#include <inttypes.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "livecore.h"

/* Any failure prints the status name and the thread's last error, and exits. */
#define CHECK(call) check((call), #call, __LINE__)

static void check(lc_status status, const char *what, int line) {
    if (status == LC_OK) {
        return;
    }
    const char *name = "?";
    const char *message = "";
    lc_status_name(status, &name);
    lc_last_error(&message);
    fprintf(stderr, "minimal.c:%d: %s returned %s: %s\n", line, what, name, message);
    exit(1);
}

static lc_value null_value(void) { return (lc_value){.tag = LC_VALUE_NULL}; }
static lc_value int_value(int64_t v) { return (lc_value){.tag = LC_VALUE_INT, .int_value = v}; }
static lc_value float_value(double v) { return (lc_value){.tag = LC_VALUE_FLOAT, .float_value = v}; }
static lc_value bool_value(int v) { return (lc_value){.tag = LC_VALUE_BOOL, .int_value = v}; }
static lc_value text_value(const char *s) {
    return (lc_value){.tag = LC_VALUE_TEXT, .data = (const uint8_t *)s, .len = strlen(s)};
}
static lc_value bytes_value(const void *p, size_t n) {
    return (lc_value){.tag = LC_VALUE_BYTES, .data = p, .len = n};
}

enum { COLUMNS = 7 };
static uint32_t messages; /* the table's key */

static lc_change insert(const lc_value *row) {
    return (lc_change){.table = messages, .change_type = LC_CHANGE_INSERT, .row = row, .row_len = COLUMNS};
}
static lc_change update(const lc_value *old_row, const lc_value *new_row) {
    return (lc_change){.table = messages, .change_type = LC_CHANGE_UPDATE, .row = new_row,
                       .row_len = COLUMNS, .old_row = old_row, .old_row_len = COLUMNS};
}
static lc_change delete_of(const lc_value *row) {
    return (lc_change){.table = messages, .change_type = LC_CHANGE_DELETE, .row = row, .row_len = COLUMNS};
}

static void publish(lc_manager manager, uint64_t seq, const lc_change *changes, size_t count) {
    lc_publish_summary summary = {.struct_size = sizeof summary};
    CHECK(lc_commit_publish(manager, seq, changes, count, &summary));
    printf("commit %" PRIu64 ": %zu change(s), matched %" PRIu64 ", enqueued %" PRIu64 "\n", seq, count,
           summary.matched, summary.enqueued);
}

static void print_value(lc_value v) {
    switch (v.tag) {
    case LC_VALUE_NULL: printf("NULL"); break;
    case LC_VALUE_BOOL: printf("%s", v.int_value ? "TRUE" : "FALSE"); break;
    case LC_VALUE_INT: printf("%" PRId64, v.int_value); break;
    case LC_VALUE_FLOAT:
        if (isnan(v.float_value)) {
            printf("NaN");
        } else {
            printf("%g", v.float_value);
        }
        break;
    case LC_VALUE_TEXT:
        /* Text is not NUL-terminated (and may hold NUL): print it by its length. */
        putchar('\'');
        for (size_t i = 0; i < v.len; i++) {
            if (v.data[i] == '\n') {
                printf("\\n");
            } else {
                putchar(v.data[i]);
            }
        }
        putchar('\'');
        break;
    case LC_VALUE_BYTES: printf("<%zu bytes>", v.len); break;
    default: printf("?");
    }
}

/* Prints one notification: its JSON, then its changes through the accessors. */
static void print_notification(lc_notification n) {
    const char *json;
    size_t len;
    CHECK(lc_notification_json(n, &json, &len));
    printf("  %s\n", json); /* NUL-terminated; len excludes the NUL */
    lc_notification_info info = {.struct_size = sizeof info};
    CHECK(lc_notification_get_info(n, &info));
    if (info.kind != LC_NOTIFICATION_CHANGES) {
        return;
    }
    static const char *ops[] = {"insert", "update", "delete"};
    for (size_t i = 0; i < info.row_count; i++) {
        lc_change_info change;
        CHECK(lc_notification_change(n, i, &change));
        printf("    %s at position %" PRIu64 ":", ops[change.change_type], change.position);
        for (size_t c = 0; c < info.column_count; c++) {
            const char *name;
            size_t name_len;
            lc_value value;
            CHECK(lc_notification_column(n, c, &name, &name_len));
            CHECK(lc_notification_value(n, i, LC_ROW_CURRENT, c, &value));
            printf(" %.*s=", (int)name_len, name);
            print_value(value);
            if (change.has_old_row) {
                CHECK(lc_notification_value(n, i, LC_ROW_OLD, c, &value));
                printf(" (was ");
                print_value(value);
                printf(")");
            }
        }
        printf("\n");
    }
}

static void drain(lc_manager manager, uint64_t connection) {
    lc_notification n;
    lc_status status;
    while ((status = lc_connection_recv(manager, connection, 0, &n)) == LC_OK) {
        print_notification(n);
        CHECK(lc_notification_free(n));
    }
    CHECK(status == LC_EMPTY ? LC_OK : status);
}

int main(void) {
    uint32_t abi;
    const char *version;
    CHECK(lc_abi_version(&abi));
    CHECK(lc_version(&version));
    if (abi != LIVECORE_ABI_VERSION) {
        fprintf(stderr, "built for ABI %d, loaded ABI %u\n", LIVECORE_ABI_VERSION, abi);
        return 1;
    }
    printf("livecore ABI %u\n", abi);

    lc_config config = {.struct_size = sizeof config};
    CHECK(lc_config_init(&config));
    lc_manager manager;
    CHECK(lc_manager_new(&config, &manager));

    const char *columns[COLUMNS] = {"id", "room", "author", "body", "score", "pinned", "attachment"};
    CHECK(lc_table_register(manager, "chat", "messages", LC_SCOPE_SHARED, columns, COLUMNS, &messages));

    uint64_t connection;
    CHECK(lc_connection_register(manager, &connection));
    CHECK(lc_connection_authenticate(manager, connection, "alice", NULL));

    lc_subscription_options options = {.struct_size = sizeof options};
    CHECK(lc_subscription_options_init(&options));
    lc_subscription_result result;
    CHECK(lc_subscription_create_sql(manager, connection,
                           "SELECT id, author, body, score, pinned, attachment FROM chat.messages WHERE room = 7",
                           &options, &result));
    lc_subscription_info info = {.struct_size = sizeof info};
    CHECK(lc_subscription_result_get_info(result, &info));
    printf("subscribed c%" PRIu64 "-s%" PRIu64 " with columns", info.live_query.connection_id,
           info.live_query.subscription_id);
    for (size_t i = 0; i < info.column_count; i++) {
        const char *name;
        size_t len;
        CHECK(lc_subscription_result_column(result, i, &name, &len));
        printf(" %.*s", (int)len, name);
    }
    printf("\n");
    CHECK(lc_subscription_result_free(result)); /* the subscription goes on */

    static const unsigned char attachment[] = {0x00, 0x01, 0xfe, 0xff};
    lc_value ann[COLUMNS] = {int_value(1), int_value(7), text_value("ann"), text_value("hello \"room\"\n"),
                             float_value(4.5), bool_value(1), bytes_value(attachment, sizeof attachment)};
    lc_value ann_edited[COLUMNS];
    memcpy(ann_edited, ann, sizeof ann);
    ann_edited[3] = text_value("hello room (edited)");
    lc_value ann_moved[COLUMNS];
    memcpy(ann_moved, ann_edited, sizeof ann);
    ann_moved[1] = int_value(9);
    lc_value bob[COLUMNS] = {int_value(2), int_value(8), text_value("bob"), text_value("elsewhere"),
                             null_value(), bool_value(0), null_value()};
    lc_value bob_in_7[COLUMNS];
    memcpy(bob_in_7, bob, sizeof bob);
    bob_in_7[1] = int_value(7);
    lc_value edge[COLUMNS] = {int_value(INT64_C(9007199254740993)), int_value(7), text_value("caf\xc3\xa9"),
                              null_value(), float_value(NAN), bool_value(0), bytes_value("", 0)};

    /* One commit with two inserts: only the one in room 7 reaches the subscriber. */
    lc_change first[] = {insert(ann), insert(bob)};
    publish(manager, 1, first, 2);
    drain(manager, connection);
    /* An update that stays in the filter, one that enters it, one that leaves it. */
    lc_change second[] = {update(ann, ann_edited)};
    publish(manager, 2, second, 1);
    lc_change third[] = {update(bob, bob_in_7), update(ann_edited, ann_moved)};
    publish(manager, 3, third, 2);
    drain(manager, connection);
    /* A delete, and a row of edge values (an integer beyond 2^53, NaN, empty bytes). */
    lc_change fourth[] = {delete_of(bob_in_7), insert(edge)};
    publish(manager, 4, fourth, 2);
    drain(manager, connection);

    lc_stats stats = {.struct_size = sizeof stats};
    CHECK(lc_manager_get_stats(manager, &stats));
    printf("stats: published %" PRIu64 ", delivered %" PRIu64 ", dropped %" PRIu64 "\n", stats.published,
           stats.delivered, stats.dropped);

    CHECK(lc_subscription_cancel(manager, info.live_query));
    CHECK(lc_connection_unregister(manager, connection));
    CHECK(lc_manager_free(manager));
    /* The handle is dead now: using it is an error, not a crash. */
    lc_status again = lc_manager_free(manager);
    const char *name;
    CHECK(lc_status_name(again, &name));
    printf("freeing the manager twice: %s\n", name);
    return 0;
}
