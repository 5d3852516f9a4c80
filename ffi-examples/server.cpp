// Example 2: several threads publish while one thread serves many connections.
//
// Three engine threads each own a table (sensors.t0, t1, t2) and publish 400 commits to it,
// taking SeqIds from one shared counter (so each table's commits ascend). Every tenth commit
// carries two rows. Twelve connections subscribe, each to one table and one zone
// (`WHERE zone = z`). A single server thread waits on the manager's ready queue, drains
// whichever connections have something, and re-arms them: no thread per connection, no
// busy polling. At the end each connection's counts are checked against what its filter
// must have matched, and the SeqIds each connection saw must ascend.
#include <algorithm>
#include <atomic>
#include <cstdio>
#include <map>
#include <thread>
#include <vector>

#include "livecore.hpp"

namespace {

constexpr int kTables = 3;
constexpr int kZones = 4;
constexpr int kConnections = 12;
constexpr int kCommitsPerTable = 400;

// Filling livecore's structs in C++. C++17 has no designated initializers (C++20 has them,
// in declaration order only), so value-initialize with `{}` -- every field zero, which is what
// livecore wants for the fields you do not set (`reserved` must be 0) -- then assign the
// members you need. A struct that begins with `struct_size` gets `sizeof` of itself before
// its `_init` function is called (see livecore.hpp's default_config and subscribe):
//
//     lc_config config{};
//     config.struct_size = sizeof config;
//     lc_config_init(&config);
//
// Never leave one uninitialized (`lc_value v;`): `reserved` would hold garbage, and livecore
// refuses a non-zero `reserved`.
lc_value int_value(int64_t v) {
    lc_value value{};
    value.tag = LC_VALUE_INT;
    value.int_value = v;
    return value;
}

lc_value float_value(double v) {
    lc_value value{};
    value.tag = LC_VALUE_FLOAT;
    value.float_value = v;
    return value;
}

struct Served {
    uint64_t notifications = 0;
    uint64_t changes = 0;
    uint64_t last_seq = 0;
    bool ascending = true;
};

}  // namespace

int main() {
    try {
        lc_config config = livecore::Manager::default_config();
        config.flags |= LC_CONFIG_READY_QUEUE;
        livecore::Manager manager(config);

        std::vector<uint32_t> tables;
        for (int t = 0; t < kTables; t++) {
            std::string name = "t" + std::to_string(t);
            tables.push_back(manager.register_table("sensors", name.c_str(), {"id", "zone", "reading"}));
        }

        // connection -> (table, zone) it watches
        std::map<uint64_t, std::pair<int, int>> watches;
        for (int c = 0; c < kConnections; c++) {
            uint64_t id = manager.connect(("user" + std::to_string(c)).c_str());
            int table = c % kTables, zone = c % kZones;
            manager.subscribe(id, "SELECT id, reading FROM sensors.t" + std::to_string(table) +
                                      " WHERE zone = " + std::to_string(zone));
            watches[id] = {table, zone};
        }

        std::atomic<uint64_t> next_seq{1};
        std::vector<std::thread> engines;
        std::vector<std::string> thread_errors(kTables + 1);
        for (int t = 0; t < kTables; t++) {
            engines.emplace_back([&, t] {
                try {
                for (int n = 0; n < kCommitsPerTable; n++) {
                    // Commit n of table t is in zone n % kZones; every tenth has a second row.
                    int rows = n % 10 == 0 ? 2 : 1;
                    std::vector<std::vector<lc_value>> values;
                    for (int r = 0; r < rows; r++) {
                        values.push_back({int_value(n * 2 + r), int_value(n % kZones), float_value(n * 0.5)});
                    }
                    std::vector<lc_change> changes;
                    for (auto &row : values) {
                        lc_change change{};
                        change.table = tables[t];
                        change.change_type = LC_CHANGE_INSERT;
                        change.row = row.data();
                        change.row_len = row.size();
                        changes.push_back(change);
                    }
                    // One engine thread per table: its commits reach livecore in SeqId order.
                    manager.publish(next_seq.fetch_add(1), changes);
                }
                } catch (const std::exception &error) {
                    thread_errors[t] = error.what();
                }
            });
        }

        // What each connection must receive.
        uint64_t expected_notifications = 0;
        std::map<uint64_t, std::pair<uint64_t, uint64_t>> expected;  // id -> (notifications, changes)
        for (auto &[id, watch] : watches) {
            uint64_t notifications = 0, changes = 0;
            for (int n = 0; n < kCommitsPerTable; n++) {
                if (n % kZones == watch.second) {
                    notifications += 1;
                    changes += n % 10 == 0 ? 2 : 1;
                }
            }
            expected[id] = {notifications, changes};
            expected_notifications += notifications;
        }

        // The server: one thread, many connections.
        std::map<uint64_t, Served> served;
        uint64_t received = 0, wakeups = 0;
        std::thread server([&] {
            try {
            while (received < expected_notifications) {
                std::vector<uint64_t> ready = manager.wait_ready(2000, 16);
                if (ready.empty()) {
                    throw std::runtime_error("the server waited 2 s with nothing ready");
                }
                wakeups++;
                for (uint64_t id : ready) {
                    Served &s = served[id];
                    // Drained in batches: one call hands out up to 32 queued notifications.
                    for (;;) {
                        std::vector<livecore::Notification> batch = manager.try_recv_batch(id, 32);
                        if (batch.empty()) {
                            break;
                        }
                        for (livecore::Notification &n : batch) {
                            lc_notification_info info = n.info();
                            if (info.kind != LC_NOTIFICATION_CHANGES) {
                                throw std::runtime_error("unexpected notification " + std::string(n.json()));
                            }
                            s.ascending = s.ascending && info.seq > s.last_seq;
                            s.last_seq = info.seq;
                            s.notifications++;
                            s.changes += info.row_count;
                            received++;
                        }
                    }
                    while (manager.try_recv_event(id)) {
                    }
                    manager.arm_ready(id);  // drained: queue it again on its next delivery
                }
            }
            } catch (const std::exception &error) {
                thread_errors[kTables] = error.what();
            }
        });

        for (auto &engine : engines) {
            engine.join();
        }
        server.join();
        for (const std::string &error : thread_errors) {
            if (!error.empty()) {
                throw std::runtime_error(error);
            }
        }

        bool ok = true;
        for (auto &[id, watch] : watches) {
            const Served &s = served[id];
            bool matches = s.notifications == expected[id].first && s.changes == expected[id].second && s.ascending;
            ok = ok && matches;
            std::printf("connection %2llu watches t%d zone %d: %llu notifications, %llu changes, seqs %s%s\n",
                        static_cast<unsigned long long>(id), watch.first, watch.second,
                        static_cast<unsigned long long>(s.notifications),
                        static_cast<unsigned long long>(s.changes), s.ascending ? "ascending" : "OUT OF ORDER",
                        matches ? "" : "  <-- MISMATCH");
        }
        lc_stats stats = manager.stats();
        std::printf("published %llu commits, delivered %llu, dropped %llu; served from one thread (%s)\n",
                    static_cast<unsigned long long>(stats.published),
                    static_cast<unsigned long long>(stats.delivered), static_cast<unsigned long long>(stats.dropped),
                    wakeups > 0 ? "woken by the ready queue" : "never woken");
        for (auto &[id, watch] : watches) {
            manager.unregister(id);
        }
        return ok ? 0 : 1;
    } catch (const std::exception &error) {
        std::fprintf(stderr, "server: %s\n", error.what());
        return 1;
    }
}
