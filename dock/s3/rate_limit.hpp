#pragma once
/// The upload bandwidth cap: one token bucket shared by every request the dock sends to
/// storage, so a dock never takes more of the site's uplink than it is given, with an optional
/// time-of-day schedule (less at shift change, when the site's own traffic peaks; more at night).
/// Rates are in MB/s (10^6 bytes); 0 means no cap.

#include <boost/asio/awaitable.hpp>

#include <chrono>
#include <functional>
#include <string>
#include <string_view>
#include <vector>

namespace bodydock::s3 {

struct RateWindow {
  int from_minute = 0;       ///< local time, minutes since midnight
  int to_minute = 0;         ///< exclusive; a window with to <= from runs past midnight
  double mb_per_s = 0;
};

struct RateSchedule {
  double mb_per_s = 0;             ///< outside every window; 0: no cap
  std::vector<RateWindow> windows; ///< the first that contains the time wins
  /// `rate` is "MBPS"; `windows` is "" or "HH:MM-HH:MM=MBPS[,HH:MM-HH:MM=MBPS...]".
  /// Throws std::invalid_argument naming the piece that is wrong.
  static RateSchedule parse(std::string_view rate, std::string_view windows);
  [[nodiscard]] double rate_at(int minute_of_day) const;
};

class RateLimiter {
 public:
  /// `minute_of_day` tells the local time (tests inject one); default: the system's local time.
  explicit RateLimiter(RateSchedule schedule, std::function<int()> minute_of_day = {});
  /// Takes effect at the next acquire (a reload does not drop transfers).
  void set_schedule(RateSchedule schedule) { schedule_ = std::move(schedule); }
  /// The cap in force now, MB/s (0: none).
  [[nodiscard]] double current_mb_per_s() const;
  /// Returns once `bytes` may be sent: at once without a cap, else when the bucket (which
  /// holds at most half a second of the rate) has paid for them.
  boost::asio::awaitable<void> acquire(std::size_t bytes);

 private:
  RateSchedule schedule_;
  std::function<int()> minute_of_day_;
  double tokens_ = 0;  ///< bytes; negative: owed by requests already waiting
  std::chrono::steady_clock::time_point last_ = std::chrono::steady_clock::now();
};

}  // namespace bodydock::s3
