#include "dock/s3/rate_limit.hpp"

#include <boost/asio/steady_timer.hpp>
#include <boost/asio/this_coro.hpp>
#include <boost/asio/use_awaitable.hpp>

#include <algorithm>
#include <charconv>
#include <cmath>
#include <ctime>
#include <stdexcept>

namespace bodydock::s3 {
namespace {

double parse_rate(std::string_view text, std::string_view what) {
  double v = -1;
  const auto* end = text.data() + text.size();
  const auto [p, ec] = std::from_chars(text.data(), end, v);
  if (ec != std::errc() || p != end || !(v >= 0) || v > 100000)
    throw std::invalid_argument(std::string(what) + " '" + std::string(text) + "' is not a rate in MB/s (0..100000)");
  return v;
}

int parse_time(std::string_view text, std::string_view window) {
  int h = -1, m = -1;
  if (text.size() == 5 && text[2] == ':') {
    std::from_chars(text.data(), text.data() + 2, h);
    std::from_chars(text.data() + 3, text.data() + 5, m);
  }
  if (h < 0 || h > 23 || m < 0 || m > 59) throw std::invalid_argument("upload schedule window '" + std::string(window) + "': '" + std::string(text) + "' is not HH:MM");
  return h * 60 + m;
}

int local_minute_of_day() {
  const auto now = std::time(nullptr);
  std::tm tm{};
  localtime_r(&now, &tm);
  return tm.tm_hour * 60 + tm.tm_min;
}

}  // namespace

RateSchedule RateSchedule::parse(std::string_view rate, std::string_view windows) {
  RateSchedule s;
  s.mb_per_s = parse_rate(rate, "upload rate");
  while (!windows.empty()) {
    const auto comma = windows.find(',');
    const auto item = windows.substr(0, comma);
    windows = comma == std::string_view::npos ? std::string_view() : windows.substr(comma + 1);
    if (comma != std::string_view::npos && windows.empty()) throw std::invalid_argument("upload schedule ends with a ','");
    const auto dash = item.find('-');
    const auto eq = item.find('=');
    if (dash == std::string_view::npos || eq == std::string_view::npos || eq < dash)
      throw std::invalid_argument("upload schedule window '" + std::string(item) + "' is not HH:MM-HH:MM=MBPS");
    RateWindow w;
    w.from_minute = parse_time(item.substr(0, dash), item);
    w.to_minute = parse_time(item.substr(dash + 1, eq - dash - 1), item);
    if (w.from_minute == w.to_minute) throw std::invalid_argument("upload schedule window '" + std::string(item) + "' is empty");
    w.mb_per_s = parse_rate(item.substr(eq + 1), "upload schedule rate");
    s.windows.push_back(w);
  }
  return s;
}

double RateSchedule::rate_at(int minute) const {
  for (const auto& w : windows) {
    const bool in = w.from_minute < w.to_minute ? (minute >= w.from_minute && minute < w.to_minute)
                                                : (minute >= w.from_minute || minute < w.to_minute);
    if (in) return w.mb_per_s;
  }
  return mb_per_s;
}

RateLimiter::RateLimiter(RateSchedule schedule, std::function<int()> minute_of_day)
    : schedule_(std::move(schedule)), minute_of_day_(minute_of_day ? std::move(minute_of_day) : std::function<int()>(local_minute_of_day)) {}

double RateLimiter::current_mb_per_s() const { return schedule_.rate_at(minute_of_day_()); }

boost::asio::awaitable<void> RateLimiter::acquire(std::size_t bytes) {
  const double rate = current_mb_per_s() * 1e6;
  if (rate <= 0) co_return;
  // Refill for the time passed (at most half a second's worth), then take: a negative balance
  // is what requests already waiting owe, so each one waits its turn.
  const auto now = std::chrono::steady_clock::now();
  const double elapsed = std::chrono::duration<double>(now - last_).count();
  last_ = now;
  tokens_ = std::min(tokens_ + elapsed * rate, rate * 0.5);
  tokens_ -= static_cast<double>(bytes);
  if (tokens_ >= 0) co_return;
  boost::asio::steady_timer wait(co_await boost::asio::this_coro::executor,
                                 std::chrono::duration_cast<std::chrono::steady_clock::duration>(std::chrono::duration<double>(-tokens_ / rate)));
  co_await wait.async_wait(boost::asio::use_awaitable);
}

}  // namespace bodydock::s3
