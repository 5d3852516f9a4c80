/*
 * Example 5: durable topics in a fjall store opened by path (a library built with
 * `--features fjall`; the header declares its functions when LC_HAS_FJALL is defined).
 *
 * Two "processes" in a row, each with its own manager, over the store in the directory
 * given as the only argument (a fresh directory: run.sh removes it first):
 *
 *  1. opens the store (fsync per append), creates the topic "orders" and its dead-letter
 *     topic "orders.dlq" in it, and the group "billing", whose config names the
 *     dead-letter topic (max-deliver 2). It publishes three orders, consumes them, commits
 *     the first two, nacks the third twice (the second nack sends it to "orders.dlq" and
 *     commits past it), publishes a fourth order and consumes it, and then stops without
 *     committing it: the manager is freed, closing the store.
 *  2. opens the store again by path, creates the same topics and group, and finds
 *     everything acknowledged: the group resumes at its committed offset, so the fourth
 *     order is handed out again (at least once) and committed now; every order reads back
 *     from the log, and the dead letter from "orders.dlq".
 *
 * The manager runs on a manual clock, so timestamps (and the output) are the same on
 * every run.
 *
 * Build (see run.sh): cargo rustc --lib --features fjall --crate-type staticlib -- --print native-static-libs
 *                     cc -std=c11 -DLC_HAS_FJALL -Iinclude topics_fjall.c liblivecore.a <native libs>
 */
#define LC_HAS_FJALL
#include <inttypes.h>
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
    fprintf(stderr, "topics_fjall.c:%d: %s returned %s: %s\n", line, what, name, message);
    exit(1);
}

static const uint64_t CLOCK_START_MS = 1700000000000ULL;

/* A manager on a manual clock, the two topics in the fjall store at `path`, the group, and
 * an authenticated consumer. */
static lc_manager open_all(const char *path, uint64_t *consumer) {
    lc_config config = {.struct_size = sizeof config};
    CHECK(lc_config_init(&config));
    config.flags |= LC_CONFIG_MANUAL_CLOCK;
    config.manual_clock_start_ms = CLOCK_START_MS;
    lc_manager manager;
    CHECK(lc_manager_new(&config, &manager));

    /* fsync before each append and commit is acknowledged: nothing acknowledged is lost,
     * even on power loss (LC_FJALL_SYNC_INTERVAL trades the last interval for speed). */
    lc_fjall_store store;
    CHECK(lc_fjall_store_open(path, LC_FJALL_SYNC_EVERY_APPEND, 0, &store));
    lc_topic_config topic = {.struct_size = sizeof topic};
    CHECK(lc_topic_config_init(&topic));
    topic.partitions = 1;
    CHECK(lc_topic_create_with_fjall(manager, "orders", &topic, store));
    /* The dead-letter topic in the same store: a dead letter is only as durable as it. */
    CHECK(lc_topic_create_with_fjall(manager, "orders.dlq", &topic, store));
    /* The topics keep the store open; this handle is no longer needed. */
    CHECK(lc_fjall_store_free(store));

    lc_topic_group_config group = {.struct_size = sizeof group};
    CHECK(lc_topic_group_config_init(&group));
    group.dead_letter_topic = "orders.dlq";
    group.max_deliver = 2;
    CHECK(lc_topic_group_create(manager, "orders", "billing", &group));

    CHECK(lc_connection_register(manager, consumer));
    CHECK(lc_connection_authenticate(manager, *consumer, "billing", NULL));
    return manager;
}

static void publish_order(lc_manager manager, uint64_t seq, const char *order) {
    CHECK(lc_manager_set_clock(manager, CLOCK_START_MS + seq * 1000));
    uint32_t partition;
    uint64_t offset;
    CHECK(lc_topic_publish(manager, "orders", seq, NULL, LC_TOPIC_ANY_PARTITION, (const uint8_t *)order,
                           strlen(order), &partition, &offset));
    printf("published '%s' at offset %" PRIu64 "\n", order, offset);
}

/* Consumes what waits (no long poll), prints each message's offset and payload, and
 * returns the batch (the caller frees it). */
static lc_topic_batch consume(lc_manager manager, uint64_t consumer) {
    lc_topic_batch batch;
    CHECK(lc_topic_consume(manager, consumer, "orders", "billing", 16, 0, &batch));
    lc_topic_batch_info info = {.struct_size = sizeof info};
    CHECK(lc_topic_batch_get_info(batch, &info));
    printf("consumed:");
    for (size_t i = 0; i < info.message_count; i++) {
        lc_topic_message message = {.struct_size = sizeof message};
        CHECK(lc_topic_batch_message(batch, i, &message));
        printf(" %" PRIu64 " '%.*s'", message.offset, (int)message.payload_len, (const char *)message.payload);
    }
    printf("%s\n", info.message_count == 0 ? " nothing" : "");
    return batch;
}

static void print_group(lc_manager manager) {
    lc_topic_group_partition partition = {.struct_size = sizeof partition};
    CHECK(lc_topic_group_get_partition(manager, "orders", "billing", 0, &partition));
    lc_topic_group_stats stats = {.struct_size = sizeof stats};
    CHECK(lc_topic_group_get_stats(manager, "orders", "billing", &stats));
    printf("group billing: offsets %" PRIu64 "..%" PRIu64 ", committed %" PRIu64 ", nacks %" PRIu64
           ", dead-lettered %" PRIu64 "\n",
           partition.start, partition.end, partition.committed, stats.nacks, stats.dead_lettered);
}

/* Reads a whole topic outside any group and prints every message as JSON (payloads of
 * "orders.dlq" as text: they are JSON objects). */
static void read_back(lc_manager manager, const char *topic, int payload_as_text) {
    lc_topic_batch batch;
    CHECK(lc_topic_read(manager, topic, 0, 0, 16, &batch));
    lc_topic_batch_info info = {.struct_size = sizeof info};
    CHECK(lc_topic_batch_get_info(batch, &info));
    printf("%s holds %" PRIu64 " message(s):\n", topic, info.message_count);
    for (size_t i = 0; i < info.message_count; i++) {
        if (payload_as_text) {
            lc_topic_message message = {.struct_size = sizeof message};
            CHECK(lc_topic_batch_message(batch, i, &message));
            printf("  %.*s\n", (int)message.payload_len, (const char *)message.payload);
        } else {
            const char *json;
            size_t len;
            CHECK(lc_topic_batch_message_json(batch, i, &json, &len));
            printf("  %s\n", json);
        }
    }
    CHECK(lc_topic_batch_free(batch));
}

int main(int argc, char **argv) {
    if (argc != 2) {
        fprintf(stderr, "usage: %s <store directory>\n", argv[0]);
        return 2;
    }
    const char *path = argv[1];

    printf("-- first run: a fresh store\n");
    uint64_t consumer;
    lc_manager manager = open_all(path, &consumer);
    publish_order(manager, 1, "order 1: 2 books");
    publish_order(manager, 2, "order 2: 1 lamp");
    publish_order(manager, 3, "order 3: -5 chairs");
    lc_topic_batch batch = consume(manager, consumer);
    CHECK(lc_topic_batch_free(batch));
    /* Orders 1 and 2 are done: commit offset 2 (the next one not finished). */
    CHECK(lc_topic_commit(manager, consumer, "orders", "billing", 0, 2));
    /* Order 3 fails: nacked, handed out again, fails again. At max-deliver 2 the second
     * nack sends it to "orders.dlq"; it is at the committed offset, so the group commits
     * past it. */
    CHECK(lc_topic_nack(manager, consumer, "orders", "billing", 0, 2, 0));
    batch = consume(manager, consumer);
    CHECK(lc_topic_batch_free(batch));
    CHECK(lc_topic_nack(manager, consumer, "orders", "billing", 0, 2, 0));
    publish_order(manager, 4, "order 4: 3 mugs");
    batch = consume(manager, consumer);
    CHECK(lc_topic_batch_free(batch));
    print_group(manager);
    /* Stop before order 4 is committed: freeing the manager closes the topics and the
     * store (what they acknowledged is on disk). */
    CHECK(lc_manager_free(manager));

    printf("-- second run: the store opened again by path\n");
    manager = open_all(path, &consumer);
    print_group(manager);
    /* The group resumes at its committed offset: order 4 is handed out again. */
    batch = consume(manager, consumer);
    CHECK(lc_topic_batch_commit(manager, consumer, batch));
    CHECK(lc_topic_batch_free(batch));
    print_group(manager);
    read_back(manager, "orders", 0);
    read_back(manager, "orders.dlq", 1);
    CHECK(lc_connection_unregister(manager, consumer));
    CHECK(lc_manager_free(manager));
    return 0;
}
