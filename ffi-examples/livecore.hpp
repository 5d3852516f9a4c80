// A small C++17 RAII wrapper over livecore.h, for example 2. Handles free themselves,
// failures become exceptions carrying the status and livecore's message, and outcomes that
// are not failures (LC_EMPTY, LC_TIMEOUT, LC_CLOSED) come back as empty results.
#pragma once

#include <cstdint>
#include <optional>
#include <stdexcept>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "livecore.h"

namespace livecore {

class Error : public std::runtime_error {
  public:
    Error(lc_status status, const std::string &message) : std::runtime_error(message), status_(status) {}
    lc_status status() const { return status_; }

  private:
    lc_status status_;
};

// Throws for failures (100 and up); returns the outcome otherwise.
inline lc_status check(lc_status status, const char *what) {
    if (static_cast<uint32_t>(status) < 100) {
        return status;
    }
    const char *name = "?";
    const char *message = "";
    lc_status_name(status, &name);
    lc_last_error(&message);
    throw Error(status, std::string(what) + ": " + name + ": " + message);
}

// One received notification; frees itself.
class Notification {
  public:
    explicit Notification(lc_notification handle) : handle_(handle) {}
    Notification(Notification &&other) noexcept : handle_(std::exchange(other.handle_, lc_notification{})) {}
    Notification &operator=(Notification &&other) noexcept {
        if (this != &other) {
            reset();
            handle_ = std::exchange(other.handle_, lc_notification{});
        }
        return *this;
    }
    Notification(const Notification &) = delete;
    Notification &operator=(const Notification &) = delete;
    ~Notification() { reset(); }

    lc_notification_info info() const {
        lc_notification_info info{};
        info.struct_size = sizeof info;
        check(lc_notification_get_info(handle_, &info), "lc_notification_get_info");
        return info;
    }

    // Valid as long as this notification lives.
    std::string_view json() const {
        const char *json = nullptr;
        size_t len = 0;
        check(lc_notification_json(handle_, &json, &len), "lc_notification_json");
        return {json, len};
    }

    lc_value value(size_t row, size_t column) const {
        lc_value value{};
        check(lc_notification_value(handle_, row, LC_ROW_CURRENT, column, &value), "lc_notification_value");
        return value;
    }

  private:
    void reset() {
        if (handle_.id != 0) {
            lc_notification_free(handle_);
            handle_ = lc_notification{};
        }
    }
    lc_notification handle_;
};

// A manager; frees itself (which unregisters its connections).
class Manager {
  public:
    explicit Manager(const lc_config &config) { check(lc_manager_new(&config, &handle_), "lc_manager_new"); }
    Manager(const Manager &) = delete;
    Manager &operator=(const Manager &) = delete;
    ~Manager() { lc_manager_free(handle_); }

    static lc_config default_config() {
        lc_config config{};
        config.struct_size = sizeof config;
        check(lc_config_init(&config), "lc_config_init");
        return config;
    }

    uint32_t register_table(const char *ns, const char *name, const std::vector<const char *> &columns) {
        uint32_t key = 0;
        check(lc_table_register(handle_, ns, name, LC_SCOPE_SHARED, columns.data(), columns.size(), &key),
              "lc_table_register");
        return key;
    }

    uint64_t connect(const char *user) {
        uint64_t id = 0;
        check(lc_connection_register(handle_, &id), "lc_connection_register");
        check(lc_connection_authenticate(handle_, id, user, nullptr), "lc_connection_authenticate");
        return id;
    }

    lc_live_query_id subscribe(uint64_t connection, const std::string &sql) {
        lc_subscription_options options{};
        options.struct_size = sizeof options;
        check(lc_subscription_options_init(&options), "lc_subscription_options_init");
        lc_subscription_result result{};
        check(lc_subscription_create_sql(handle_, connection, sql.c_str(), &options, &result), "lc_subscription_create_sql");
        lc_subscription_info info{};
        info.struct_size = sizeof info;
        check(lc_subscription_result_get_info(result, &info), "lc_subscription_result_get_info");
        check(lc_subscription_result_free(result), "lc_subscription_result_free");
        return info.live_query;
    }

    lc_publish_summary publish(uint64_t seq, const std::vector<lc_change> &changes) {
        lc_publish_summary summary{};
        summary.struct_size = sizeof summary;
        check(lc_commit_publish(handle_, seq, changes.data(), changes.size(), &summary), "lc_commit_publish");
        return summary;
    }

    // The connections that have something to read; empty on timeout.
    std::vector<uint64_t> wait_ready(uint32_t timeout_ms, size_t at_most) {
        std::vector<uint64_t> ids(at_most);
        size_t count = 0;
        check(lc_manager_wait_ready(handle_, timeout_ms, ids.data(), ids.size(), &count), "lc_manager_wait_ready");
        ids.resize(count);
        return ids;
    }

    std::optional<Notification> try_recv(uint64_t connection) {
        lc_notification handle{};
        if (check(lc_connection_recv(handle_, connection, 0, &handle), "lc_connection_recv") != LC_OK) {
            return std::nullopt;
        }
        return Notification(handle);
    }

    // Up to `at_most` (at least 1) notifications already queued, in order; empty when none
    // is. Everything is allocated before the call, so what it hands out is always owned.
    std::vector<Notification> try_recv_batch(uint64_t connection, size_t at_most) {
        std::vector<lc_notification> handles(at_most);
        std::vector<Notification> batch;
        batch.reserve(at_most);
        size_t count = 0;
        check(lc_connection_recv_batch(handle_, connection, 0, handles.data(), handles.size(), &count),
              "lc_connection_recv_batch");
        for (size_t i = 0; i < count; i++) {
            batch.emplace_back(handles[i]);
        }
        return batch;
    }

    std::optional<uint32_t> try_recv_event(uint64_t connection) {
        uint32_t event = 0;
        if (check(lc_connection_recv_event(handle_, connection, 0, &event), "lc_connection_recv_event") != LC_OK) {
            return std::nullopt;
        }
        return event;
    }

    void arm_ready(uint64_t connection) {
        check(lc_connection_arm_ready(handle_, connection), "lc_connection_arm_ready");
    }

    void unregister(uint64_t connection) {
        check(lc_connection_unregister(handle_, connection), "lc_connection_unregister");
    }

    lc_stats stats() const {
        lc_stats stats{};
        stats.struct_size = sizeof stats;
        check(lc_manager_get_stats(handle_, &stats), "lc_manager_get_stats");
        return stats;
    }

  private:
    lc_manager handle_{};
};

}  // namespace livecore
