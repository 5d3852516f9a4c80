/*
 * Example 4: a topic fed by a route from a table, consumed by another thread with long poll.
 *
 * The main thread plays the database engine: it publishes committed changes of
 * chat.messages (and one message published straight to the topic). A route feeds the
 * changes of room 7 into the topic "room7", projected to (id, body) and keyed by id. A
 * consumer thread, a registered and authenticated connection in consumer group "indexer",
 * consumes with a long poll (up to 1000 ms): each lc_topic_consume returns as soon as a
 * message arrives, or an empty batch when the timeout passes. It prints every message as
 * JSON, commits each batch, and, once it has everything, shows the empty batch a timeout
 * gives. The topic has one partition and the manager runs on a manual clock, so the
 * output does not depend on how the two threads interleave.
 *
 * Build (see run.sh): cc -std=c11 -pthread -Iinclude topics_consumer.c liblivecore.a <native libs>
 */
#define _POSIX_C_SOURCE 200809L
#include <inttypes.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

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
    fprintf(stderr, "topics_consumer.c:%d: %s returned %s: %s\n", line, what, name, message);
    exit(1);
}

enum { COLUMNS = 3, EXPECTED_MESSAGES = 6 };
static const uint64_t CLOCK_START_MS = 1700000000000ULL;

static lc_value int_value(int64_t v) { return (lc_value){.tag = LC_VALUE_INT, .int_value = v}; }
static lc_value text_value(const char *s) {
    return (lc_value){.tag = LC_VALUE_TEXT, .data = (const uint8_t *)s, .len = strlen(s)};
}

static const char *change_name(uint32_t change_type) {
    switch (change_type) {
    case LC_CHANGE_INSERT: return "insert";
    case LC_CHANGE_UPDATE: return "update";
    case LC_CHANGE_DELETE: return "delete";
    default: return "?";
    }
}

/* Prints a key or payload of `len` bytes (not NUL-terminated) as quoted text. */
static void print_bytes(const uint8_t *data, size_t len) {
    printf("'%.*s'", (int)len, (const char *)data);
}

struct consumer {
    lc_manager manager;
    uint64_t connection;
};

static void print_message(lc_topic_batch batch, size_t index) {
    lc_topic_message message = {.struct_size = sizeof message};
    CHECK(lc_topic_batch_message(batch, index, &message));
    printf("consumer: partition %" PRIu32 " offset %" PRIu64 ", seq %" PRIu64 ", at %" PRIu64 " ms, key ",
           message.partition, message.offset, message.seq, message.timestamp_ms);
    if (!message.has_key) {
        printf("none");
    } else if (message.key.tag == LC_VALUE_INT) {
        printf("%" PRId64, message.key.int_value);
    } else {
        print_bytes(message.key.data, message.key.len);
    }
    if (message.kind == LC_TOPIC_MESSAGE_CHANGE) {
        /* The row through the route's projection, as JSON owned by the batch. */
        const char *row;
        size_t row_len;
        CHECK(lc_topic_batch_row_json(batch, index, LC_ROW_CURRENT, &row, &row_len));
        printf(": %s (published as %s) %.*s\n", change_name(message.change_type),
               change_name(message.source_change_type), (int)row_len, row);
    } else {
        printf(": payload ");
        print_bytes(message.payload, message.payload_len);
        printf("\n");
    }
    /* The whole message as JSON: NUL-terminated, owned by the batch until it is freed. */
    const char *json;
    size_t len;
    CHECK(lc_topic_batch_message_json(batch, index, &json, &len));
    printf("  %s\n", json);
}

static void *consume_loop(void *arg) {
    const struct consumer *self = arg;
    size_t received = 0;
    while (received < EXPECTED_MESSAGES) {
        /* Long poll: returns at once when messages wait, otherwise as soon as one arrives,
         * or after 1000 ms with an empty batch (then just poll again). */
        lc_topic_batch batch;
        CHECK(lc_topic_consume(self->manager, self->connection, "room7", "indexer", 16, 1000, &batch));
        lc_topic_batch_info info = {.struct_size = sizeof info};
        CHECK(lc_topic_batch_get_info(batch, &info));
        for (size_t i = 0; i < info.message_count; i++) {
            print_message(batch, i);
        }
        received += info.message_count;
        /* Done with every message of the batch: commit it, or it is handed out again once
         * the lease expires. Freeing a batch does not commit it. */
        CHECK(lc_topic_batch_commit(self->manager, self->connection, batch));
        CHECK(lc_topic_batch_free(batch));
    }

    /* Everything is in: the next long poll waits its 200 ms and returns an empty batch,
     * which still says where the consumer stands. */
    lc_topic_batch batch;
    CHECK(lc_topic_consume(self->manager, self->connection, "room7", "indexer", 16, 200, &batch));
    lc_topic_batch_info info = {.struct_size = sizeof info};
    CHECK(lc_topic_batch_get_info(batch, &info));
    printf("consumer: the long poll timed out: %" PRIu64 " messages, %" PRIu64 " position(s)\n",
           info.message_count, info.position_count);
    for (size_t i = 0; i < info.position_count; i++) {
        lc_topic_position position = {.struct_size = sizeof position};
        CHECK(lc_topic_batch_position(batch, i, &position));
        printf("consumer: partition %" PRIu32 ": committed %" PRIu64 ", next %" PRIu64 ", end %" PRIu64 "\n",
               position.partition, position.committed, position.next, position.end);
    }
    CHECK(lc_topic_batch_free(batch));
    return NULL;
}

/* The engine's commits: each published after it committed, with its SeqId. */
static void commit_changes(lc_manager manager, uint64_t seq, const lc_change *changes, size_t count) {
    /* A little later each time (the manual clock stamps the messages). */
    CHECK(lc_manager_set_clock(manager, CLOCK_START_MS + seq * 1000));
    lc_publish_summary summary = {.struct_size = sizeof summary};
    CHECK(lc_commit_publish(manager, seq, changes, count, &summary));
    if (summary.topic_messages != 1) {
        fprintf(stderr, "commit %" PRIu64 ": %" PRIu64 " topic messages\n", seq, summary.topic_messages);
        exit(1);
    }
    /* Give the consumer time to park in its long poll before the next commit. */
    nanosleep(&(struct timespec){.tv_nsec = 30 * 1000 * 1000}, NULL);
}

int main(void) {
    lc_config config = {.struct_size = sizeof config};
    CHECK(lc_config_init(&config));
    config.flags |= LC_CONFIG_MANUAL_CLOCK;
    config.manual_clock_start_ms = CLOCK_START_MS;
    lc_manager manager;
    CHECK(lc_manager_new(&config, &manager));

    const char *columns[COLUMNS] = {"id", "room", "body"};
    uint32_t messages;
    CHECK(lc_table_register(manager, "chat", "messages", LC_SCOPE_SHARED, columns, COLUMNS, &messages));

    /* One partition keeps the example's output in one order. */
    lc_topic_config topic = {.struct_size = sizeof topic};
    CHECK(lc_topic_config_init(&topic));
    topic.partitions = 1;
    CHECK(lc_topic_create(manager, "room7", &topic));

    /* The route: the SELECT gives the table, the filter and the projection. */
    lc_topic_route_options route = {.struct_size = sizeof route};
    CHECK(lc_topic_route_options_init(&route));
    route.change_types = LC_TOPIC_CHANGE_ALL;
    route.key_column = "id";
    uint64_t route_id;
    CHECK(lc_topic_route_add_sql(manager, "room7", "SELECT id, body FROM chat.messages WHERE room = 7", &route,
                                 &route_id));

    lc_topic_group_config group = {.struct_size = sizeof group};
    CHECK(lc_topic_group_config_init(&group));
    group.reset = LC_TOPIC_RESET_EARLIEST;
    group.lease_ms = 30000;
    CHECK(lc_topic_group_create(manager, "room7", "indexer", &group));
    printf("topic room7: 1 partition, route r%" PRIu64 " from chat.messages WHERE room = 7, group indexer\n",
           route_id);

    /* A consumer is a registered, authenticated connection. */
    struct consumer consumer = {.manager = manager};
    CHECK(lc_connection_register(manager, &consumer.connection));
    CHECK(lc_connection_authenticate(manager, consumer.connection, "indexer", NULL));
    pthread_t thread;
    if (pthread_create(&thread, NULL, consume_loop, &consumer) != 0) {
        fprintf(stderr, "pthread_create failed\n");
        return 1;
    }

    /* Only the consumer thread prints until it is joined. */
    lc_value hello[COLUMNS] = {int_value(1), int_value(7), text_value("hello")};
    lc_value elsewhere[COLUMNS] = {int_value(2), int_value(8), text_value("elsewhere")};
    lc_value edited[COLUMNS] = {int_value(1), int_value(7), text_value("hello, edited")};
    lc_value moved_in[COLUMNS] = {int_value(2), int_value(7), text_value("elsewhere")};
    lc_value moved_out[COLUMNS] = {int_value(1), int_value(8), text_value("hello, edited")};
    lc_change insert_two[2] = {
        {.table = messages, .change_type = LC_CHANGE_INSERT, .row = hello, .row_len = COLUMNS},
        {.table = messages, .change_type = LC_CHANGE_INSERT, .row = elsewhere, .row_len = COLUMNS},
    };
    commit_changes(manager, 1, insert_two, 2); /* only room 7's row reaches the topic */
    lc_change edit = {.table = messages, .change_type = LC_CHANGE_UPDATE, .row = edited, .row_len = COLUMNS,
                      .old_row = hello, .old_row_len = COLUMNS};
    commit_changes(manager, 2, &edit, 1);
    lc_change move_in = {.table = messages, .change_type = LC_CHANGE_UPDATE, .row = moved_in,
                         .row_len = COLUMNS, .old_row = elsewhere, .old_row_len = COLUMNS};
    commit_changes(manager, 3, &move_in, 1); /* enters room 7: an insert for the route */
    lc_change move_out = {.table = messages, .change_type = LC_CHANGE_UPDATE, .row = moved_out,
                          .row_len = COLUMNS, .old_row = edited, .old_row_len = COLUMNS};
    commit_changes(manager, 4, &move_out, 1); /* leaves room 7: a delete */
    lc_change delete_moved = {.table = messages, .change_type = LC_CHANGE_DELETE, .row = moved_in, .row_len = COLUMNS};
    commit_changes(manager, 5, &delete_moved, 1);
    /* And a message published straight to the topic, with a text key. */
    CHECK(lc_manager_set_clock(manager, CLOCK_START_MS + 6000));
    const char *notice = "maintenance at 02:00";
    lc_value key = text_value("notice");
    CHECK(lc_topic_publish(manager, "room7", 6, &key, LC_TOPIC_ANY_PARTITION, (const uint8_t *)notice,
                           strlen(notice), NULL, NULL));

    pthread_join(thread, NULL);

    lc_topic_group_partition offsets = {.struct_size = sizeof offsets};
    CHECK(lc_topic_group_get_partition(manager, "room7", "indexer", 0, &offsets));
    lc_topic_group_stats group_stats = {.struct_size = sizeof group_stats};
    CHECK(lc_topic_group_get_stats(manager, "room7", "indexer", &group_stats));
    printf("group indexer: committed %" PRIu64 ", lag %" PRIu64 ", redelivered %" PRIu64 "\n", offsets.committed,
           offsets.lag, group_stats.redelivered);
    lc_topic_info info = {.struct_size = sizeof info};
    CHECK(lc_topic_get_info(manager, "room7", &info));
    printf("topic room7: %" PRIu64 " appended, %" PRIu64 " retained, %" PRIu64 " write failures\n", info.appended,
           info.retained, info.write_failures);

    CHECK(lc_connection_unregister(manager, consumer.connection));
    CHECK(lc_manager_free(manager));
    return 0;
}
