#include "dock/notify.hpp"

#include "dock/log.hpp"

#include <boost/asio/as_tuple.hpp>
#include <boost/asio/use_awaitable.hpp>

#include <systemd/sd-daemon.h>

#include <cstdint>
#include <cstdlib>
#include <ctime>
#include <exception>
#include <string>
#include <system_error>

namespace bodydock::dock {

namespace asio = boost::asio;

namespace {

// The notify protocol is newline-separated KEY=VALUE pairs in a C string: a line break would
// start a bogus assignment and a NUL would cut the message.
std::string one_line(const std::string& text) {
  std::string out = text;
  for (char& c : out)
    if (c == '\n' || c == '\r' || c == '\0') c = ' ';
  return out;
}

std::uint64_t monotonic_usec() {
  timespec ts{};
  ::clock_gettime(CLOCK_MONOTONIC, &ts);
  return static_cast<std::uint64_t>(ts.tv_sec) * 1'000'000u + static_cast<std::uint64_t>(ts.tv_nsec) / 1000u;
}

}  // namespace

SystemdNotifier::SystemdNotifier(const asio::any_io_executor& ex, HealthCheck healthy) : healthy_(std::move(healthy)), watchdog_timer_(ex) {
  // NOLINTNEXTLINE(concurrency-mt-unsafe): run_service makes the notifier at start-up, before any thread
  const char* notify_socket = std::getenv("NOTIFY_SOCKET");
  under_systemd_ = notify_socket != nullptr && *notify_socket != '\0';
  if (!under_systemd_) return;
  std::uint64_t usec = 0;
  const int r = ::sd_watchdog_enabled(0, &usec);  // 0 also when WATCHDOG_PID names another process
  if (r < 0) {
    log(Level::warning, "systemd watchdog: WATCHDOG_USEC/WATCHDOG_PID unreadable (", std::generic_category().message(-r), "); running without it");
  } else if (r > 0 && usec > 0) {
    watchdog_interval_ = std::chrono::microseconds(usec / 2);
  }
}

asio::awaitable<void> SystemdNotifier::run_watchdog() {
  if (watchdog_interval_.count() == 0 || watchdog_stopped_) co_return;
  log(Level::info, "systemd watchdog: pinging every ", watchdog_interval_.count() / 1000, " ms");
  bool was_healthy = true;
  while (!watchdog_stopped_) {
    bool is_healthy = true;
    if (healthy_) {
      try {
        is_healthy = healthy_();
      } catch (const std::exception& e) {
        log(Level::error, "systemd watchdog: health check failed: ", e.what());
        is_healthy = false;
      }
    }
    if (is_healthy) {
      send("WATCHDOG=1");
      if (!was_healthy) log(Level::notice, "systemd watchdog: the dock is healthy again; pings resume");
    } else if (was_healthy) {
      log(Level::error, "systemd watchdog: the dock's health check fails; pings withheld, systemd restarts the dock if it persists");
    }
    was_healthy = is_healthy;
    // Counted from now rather than from the last deadline: after a stall, one ping, not a burst
    // that would pretend the stalled time was fine.
    watchdog_timer_.expires_after(watchdog_interval_);
    auto [ec] = co_await watchdog_timer_.async_wait(asio::as_tuple(asio::use_awaitable));
    if (ec) break;  // stop_watchdog() or the caller's cancellation
  }
}

void SystemdNotifier::stop_watchdog() {
  watchdog_stopped_ = true;
  watchdog_timer_.cancel();
}

boost::system::error_code SystemdNotifier::ready(const std::string& status) { return send("READY=1\nSTATUS=" + one_line(status)); }

boost::system::error_code SystemdNotifier::status(const std::string& text) { return send("STATUS=" + one_line(text)); }

boost::system::error_code SystemdNotifier::reloading() {
  // MONOTONIC_USEC lets systemd 253+ (Type=notify-reload) tell this reload from an earlier one;
  // systemd 252 ignores it.
  return send("RELOADING=1\nMONOTONIC_USEC=" + std::to_string(monotonic_usec()));
}

boost::system::error_code SystemdNotifier::stopping() {
  stop_watchdog();
  return send("STOPPING=1");
}

boost::system::error_code SystemdNotifier::send(const std::string& message) {
  if (!under_systemd_) return {};
  const int r = ::sd_notify(0, message.c_str());
  if (r >= 0) {
    last_send_error_ = 0;
    return {};
  }
  if (-r != last_send_error_) {
    const auto what = message.substr(0, message.find('\n'));
    log(Level::warning, "systemd notify: ", what, " not delivered: ", std::generic_category().message(-r));
  }
  last_send_error_ = -r;
  return {-r, boost::system::system_category()};
}

}  // namespace bodydock::dock
