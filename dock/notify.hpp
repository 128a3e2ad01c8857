#pragma once
/// Telling systemd how the dock is doing (the unit is Type=notify with WatchdogSec=): "ready"
/// once the slots and the store are up, a one-line status that `systemctl status dockd` shows,
/// "reloading" and "stopping", and watchdog pings sent from the dock's event loop itself. A loop
/// that hangs stops the pings, and systemd restarts the dock instead of leaving cameras in a dead
/// dock. Outside systemd (a terminal run, the demo) every call does nothing.

#include <boost/asio/any_io_executor.hpp>
#include <boost/asio/awaitable.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/system/error_code.hpp>

#include <chrono>
#include <functional>
#include <string>

namespace bodydock::dock {

class SystemdNotifier {
 public:
  /// Asked before every watchdog ping, on the loop's thread: must answer at once (e.g. "the
  /// upload workers answered within the last minute"). False withholds the ping.
  using HealthCheck = std::function<bool()>;

  /// Reads what systemd handed the dock: NOTIFY_SOCKET, and WATCHDOG_USEC / WATCHDOG_PID for
  /// the watchdog (a WATCHDOG_PID naming another process means the watchdog is not ours).
  /// `ex`: the dock's event loop, the one whose stall must stop the pings. `healthy` empty:
  /// the dock counts as healthy while its loop runs.
  explicit SystemdNotifier(const boost::asio::any_io_executor& ex, HealthCheck healthy = {});
  SystemdNotifier(const SystemdNotifier&) = delete;
  SystemdNotifier& operator=(const SystemdNotifier&) = delete;

  /// True when systemd listens (NOTIFY_SOCKET was set at start).
  [[nodiscard]] bool under_systemd() const { return under_systemd_; }
  /// Time between watchdog pings: half of the unit's WatchdogSec. Zero: no watchdog.
  [[nodiscard]] std::chrono::microseconds watchdog_interval() const { return watchdog_interval_; }

  /// Start-up finished (or a reload did): "READY=1" with a status line such as
  /// "3 slots, store /var/lib/bodydock".
  boost::system::error_code ready(const std::string& status);
  /// The one-line status systemctl shows; line breaks become spaces.
  boost::system::error_code status(const std::string& text);
  /// The configuration is being reloaded; call ready() when done (systemd 252 and later).
  boost::system::error_code reloading();
  /// Shutdown has begun; also ends run_watchdog() (systemd stops watching a stopping service).
  boost::system::error_code stopping();

  /// Sends "WATCHDOG=1" every watchdog_interval() while the health check passes, until
  /// stop_watchdog(), stopping() or cancellation; run one at a time. Returns at once when there
  /// is no watchdog. Runs on the dock's io_context: the pings stop when that loop stops turning.
  boost::asio::awaitable<void> run_watchdog();
  void stop_watchdog();

 private:
  boost::system::error_code send(const std::string& message);

  HealthCheck healthy_;
  bool under_systemd_ = false;
  std::chrono::microseconds watchdog_interval_{0};
  bool watchdog_stopped_ = false;
  boost::asio::steady_timer watchdog_timer_;
  int last_send_error_ = 0;  // logged once until a send succeeds
};

}  // namespace bodydock::dock
