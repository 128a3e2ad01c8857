#pragma once
/// What the web page, `/api/v1/status`, `/metrics` and `dockctl status` show: one snapshot of
/// the slots, the upload queue, the uplink and the spool, in JSON and in Prometheus text.
/// (README, "Status API".)

#include "dock/dock.hpp"
#include "dock/log.hpp"

#include <boost/json/array.hpp>
#include <boost/json/object.hpp>

#include <array>
#include <chrono>
#include <cstdint>
#include <string>
#include <vector>

namespace bodydock::dock::web {

/// Throughput over the last hour for the page's chart: MB/s pulled from cameras and stored,
/// one sample per 10 s.
class RateHistory {
 public:
  static constexpr std::int64_t kStepMs = 10000;
  static constexpr std::size_t kSamples = 360;
  /// Feeds the running totals; whole 10 s steps that passed since the last call become samples.
  void update(std::uint64_t pulled_total, std::uint64_t stored_total, std::int64_t unix_ms);
  /// [[end of step (Unix ms), pulled MB/s, stored MB/s], ...], oldest first.
  [[nodiscard]] boost::json::array json() const;

 private:
  struct Sample {
    std::int64_t end_ms;
    double pulled_mbps, stored_mbps;
  };
  std::vector<Sample> samples_;
  std::int64_t step_start_ms_ = 0;
  std::uint64_t pulled_at_start_ = 0, stored_at_start_ = 0;
};

/// The machine name of what a slot shows: empty, charging, authenticating, syncing,
/// waiting_uplink, done, attention (the states of the slot LED).
const char* slot_state_key(hw::SlotLight light) noexcept;

struct Snapshot {
  std::int64_t unix_ms = 0;
  QueueView queue;
  std::uint64_t spool_free_bytes = 0;
  std::vector<SegmentRow> quarantined;  ///< for the admin's release/keep decisions
};

/// GET /api/v1/status.
boost::json::object status_json(const Dock& dock, const Snapshot& snap, const RateHistory& history, const std::vector<LogEntry>& events);
/// GET /metrics: Prometheus text exposition format 0.0.4.
std::string metrics_text(const Dock& dock, const Snapshot& snap);

}  // namespace bodydock::dock::web
