// Telling systemd how the dock is doing, against a fake systemd: a datagram socket standing in
// for NOTIFY_SOCKET (a path and an abstract one). Ready, status, reloading and stopping arrive
// as systemd parses them; watchdog pings come every half WatchdogSec, stop while the event loop
// is blocked and while the health check fails; without systemd, or with a watchdog meant for
// another process, nothing is sent and nothing fails.
#include "dock/notify.hpp"
#include "support/sandbox.hpp"

#include <boost/asio/co_spawn.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/post.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/test/unit_test.hpp>

#include <sys/eventfd.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <poll.h>
#include <unistd.h>

#include <algorithm>
#include <array>
#include <chrono>
#include <condition_variable>
#include <cstddef>
#include <cstdlib>
#include <cstring>
#include <mutex>
#include <optional>
#include <string>
#include <thread>
#include <utility>
#include <vector>

using namespace bodydock;
using namespace std::chrono_literals;
using dock::SystemdNotifier;
namespace asio = boost::asio;
using Clock = std::chrono::system_clock;  // the kernel stamps datagrams with CLOCK_REALTIME

namespace {

/// One environment variable, put back as it was when the test ends.
class EnvVar {
 public:
  explicit EnvVar(const char* name) : name_(name) {
    if (const char* v = std::getenv(name)) old_ = v;
  }
  ~EnvVar() {
    if (old_)
      ::setenv(name_, old_->c_str(), 1);
    else
      ::unsetenv(name_);
  }
  EnvVar(const EnvVar&) = delete;
  EnvVar& operator=(const EnvVar&) = delete;
  void set(const std::string& value) const { ::setenv(name_, value.c_str(), 1); }
  void unset() const { ::unsetenv(name_); }

 private:
  const char* name_;
  std::optional<std::string> old_;
};

std::pair<sockaddr_un, socklen_t> unix_address(const std::string& address) {
  sockaddr_un sa{};
  sa.sun_family = AF_UNIX;
  BOOST_REQUIRE(address.size() < sizeof(sa.sun_path));
  std::copy(address.begin(), address.end(), sa.sun_path);
  if (address.front() == '@') sa.sun_path[0] = '\0';  // abstract: no file, length counts
  return {sa, static_cast<socklen_t>(offsetof(sockaddr_un, sun_path) + address.size() + (address.front() == '@' ? 0 : 1))};
}

/// systemd's end of NOTIFY_SOCKET. A reader thread keeps the socket drained (a full datagram
/// queue would block the sender) and keeps each datagram with the time the kernel queued it,
/// which is the moment the dock sent it.
class FakeSystemd {
 public:
  struct Datagram {
    Clock::time_point sent;
    std::string text;
  };

  explicit FakeSystemd(std::string address) : address_(std::move(address)) {
    fd_ = ::socket(AF_UNIX, SOCK_DGRAM | SOCK_CLOEXEC, 0);
    wake_ = ::eventfd(0, EFD_CLOEXEC);
    BOOST_REQUIRE(fd_ >= 0 && wake_ >= 0);
    const int on = 1;
    BOOST_REQUIRE_EQUAL(::setsockopt(fd_, SOL_SOCKET, SO_TIMESTAMPNS, &on, sizeof on), 0);
    const auto [sa, len] = unix_address(address_);
    BOOST_REQUIRE_EQUAL(::bind(fd_, reinterpret_cast<const sockaddr*>(&sa), len), 0);
    reader_ = std::thread([this] { receive(); });
  }
  ~FakeSystemd() {
    const std::uint64_t one = 1;
    [[maybe_unused]] auto n = ::write(wake_, &one, sizeof one);
    reader_.join();
    ::close(fd_);
    ::close(wake_);
  }
  FakeSystemd(const FakeSystemd&) = delete;
  FakeSystemd& operator=(const FakeSystemd&) = delete;

  [[nodiscard]] const std::string& address() const { return address_; }

  /// Everything the dock sent so far: a marker sent now arrives after all of it.
  std::vector<Datagram> received() {
    const std::string marker = "TEST_MARKER=" + std::to_string(++markers_);
    const int s = ::socket(AF_UNIX, SOCK_DGRAM | SOCK_CLOEXEC, 0);
    const auto [sa, len] = unix_address(address_);
    BOOST_REQUIRE_EQUAL(::sendto(s, marker.data(), marker.size(), 0, reinterpret_cast<const sockaddr*>(&sa), len), static_cast<ssize_t>(marker.size()));
    ::close(s);
    std::unique_lock lock(mutex_);
    const bool arrived = arrived_.wait_for(lock, 2s, [&] { return !got_.empty() && got_.back().text == marker; });
    BOOST_REQUIRE_MESSAGE(arrived, "the fake systemd did not receive its own marker");
    std::vector<Datagram> out;
    for (const auto& d : got_)
      if (d.text.rfind("TEST_MARKER=", 0) != 0) out.push_back(d);
    return out;
  }

  /// When each "WATCHDOG=1" was sent.
  std::vector<Clock::time_point> pings() {
    std::vector<Clock::time_point> out;
    for (const auto& d : received())
      if (d.text == "WATCHDOG=1") out.push_back(d.sent);
    return out;
  }

 private:
  void receive() {
    std::array<pollfd, 2> fds{pollfd{fd_, POLLIN, 0}, pollfd{wake_, POLLIN, 0}};
    std::array<char, 4096> buffer{};
    alignas(cmsghdr) std::array<char, CMSG_SPACE(sizeof(timespec))> control{};
    for (;;) {
      if (::poll(fds.data(), fds.size(), -1) < 0) continue;
      if (fds[1].revents != 0) return;
      iovec iov{buffer.data(), buffer.size()};
      msghdr msg{};
      msg.msg_iov = &iov;
      msg.msg_iovlen = 1;
      msg.msg_control = control.data();
      msg.msg_controllen = control.size();
      const ssize_t n = ::recvmsg(fd_, &msg, MSG_DONTWAIT);
      if (n < 0) continue;
      Datagram d{Clock::now(), std::string(buffer.data(), static_cast<std::size_t>(n))};
      for (cmsghdr* c = CMSG_FIRSTHDR(&msg); c != nullptr; c = CMSG_NXTHDR(&msg, c)) {
        if (c->cmsg_level == SOL_SOCKET && c->cmsg_type == SCM_TIMESTAMPNS) {
          timespec ts{};
          std::memcpy(&ts, CMSG_DATA(c), sizeof ts);
          d.sent = Clock::time_point(std::chrono::duration_cast<Clock::duration>(std::chrono::seconds(ts.tv_sec) + std::chrono::nanoseconds(ts.tv_nsec)));
        }
      }
      std::lock_guard lock(mutex_);
      got_.push_back(std::move(d));
      arrived_.notify_all();
    }
  }

  std::string address_;
  int fd_ = -1;
  int wake_ = -1;
  unsigned markers_ = 0;
  std::thread reader_;
  std::mutex mutex_;
  std::condition_variable arrived_;
  std::vector<Datagram> got_;
};

struct Fixture {
  test::TempDir dir;
  EnvVar notify_socket{"NOTIFY_SOCKET"};
  EnvVar watchdog_usec{"WATCHDOG_USEC"};
  EnvVar watchdog_pid{"WATCHDOG_PID"};
  asio::io_context ioc;

  Fixture() {  // the suite itself may run under systemd: start from a clean slate
    notify_socket.unset();
    watchdog_usec.unset();
    watchdog_pid.unset();
  }
  /// systemd with WatchdogSec=200 ms: pings expected every 100 ms.
  void fast_watchdog() const {
    watchdog_usec.set("200000");
    watchdog_pid.set(std::to_string(::getpid()));
  }

  /// Runs the watchdog for `span` of loop time (the loop runs whatever else was posted, too),
  /// then stops it and waits for it to end.
  void run_watchdog_for(SystemdNotifier& notifier, std::chrono::milliseconds span) {
    bool ended = false;
    std::exception_ptr failure;
    asio::co_spawn(ioc, notifier.run_watchdog(), [&](std::exception_ptr e) {
      ended = true;
      failure = e;
    });
    ioc.run_for(span);
    notifier.stop_watchdog();
    ioc.run_for(2s);  // returns once the watchdog has ended
    BOOST_REQUIRE_MESSAGE(ended, "the watchdog did not end after stop_watchdog()");
    if (failure) std::rethrow_exception(failure);
  }
};

}  // namespace

BOOST_FIXTURE_TEST_SUITE(systemd_notify, Fixture)

BOOST_AUTO_TEST_CASE(ready_carries_the_status_line) {
  FakeSystemd systemd((dir / "notify").string());
  notify_socket.set(systemd.address());
  SystemdNotifier notifier(ioc.get_executor());
  BOOST_CHECK(notifier.under_systemd());
  BOOST_CHECK(!notifier.ready("3 slots, store /x"));
  const auto got = systemd.received();
  BOOST_REQUIRE_EQUAL(got.size(), 1u);
  BOOST_CHECK_EQUAL(got[0].text, "READY=1\nSTATUS=3 slots, store /x");
}

BOOST_AUTO_TEST_CASE(an_abstract_notify_socket_is_reached) {
  FakeSystemd systemd("@bodydock-notify-test-" + std::to_string(::getpid()));
  notify_socket.set(systemd.address());
  SystemdNotifier notifier(ioc.get_executor());
  BOOST_CHECK(!notifier.ready("1 slot"));
  const auto got = systemd.received();
  BOOST_REQUIRE_EQUAL(got.size(), 1u);
  BOOST_CHECK_EQUAL(got[0].text, "READY=1\nSTATUS=1 slot");
}

BOOST_AUTO_TEST_CASE(a_status_with_line_breaks_is_sent_as_one_line) {
  FakeSystemd systemd((dir / "notify").string());
  notify_socket.set(systemd.address());
  SystemdNotifier notifier(ioc.get_executor());
  notifier.status("slot 2 syncing\nslot 3 full\r\n");
  notifier.ready("store /x\nSTOPPING=1");  // a line break must not smuggle in an assignment
  const auto got = systemd.received();
  BOOST_REQUIRE_EQUAL(got.size(), 2u);
  BOOST_CHECK_EQUAL(got[0].text, "STATUS=slot 2 syncing slot 3 full  ");
  BOOST_CHECK_EQUAL(got[1].text, "READY=1\nSTATUS=store /x STOPPING=1");
}

BOOST_AUTO_TEST_CASE(reloading_then_ready_then_stopping) {
  FakeSystemd systemd((dir / "notify").string());
  notify_socket.set(systemd.address());
  SystemdNotifier notifier(ioc.get_executor());
  notifier.reloading();
  notifier.ready("3 slots, store /x");
  notifier.stopping();
  const auto got = systemd.received();
  BOOST_REQUIRE_EQUAL(got.size(), 3u);
  BOOST_CHECK_EQUAL(got[0].text.rfind("RELOADING=1\nMONOTONIC_USEC=", 0), 0u);
  BOOST_CHECK_GT(got[0].text.size(), std::string("RELOADING=1\nMONOTONIC_USEC=").size());
  BOOST_CHECK_EQUAL(got[1].text, "READY=1\nSTATUS=3 slots, store /x");
  BOOST_CHECK_EQUAL(got[2].text, "STOPPING=1");
}

BOOST_AUTO_TEST_CASE(the_watchdog_pings_every_half_watchdog_sec) {
  FakeSystemd systemd((dir / "notify").string());
  notify_socket.set(systemd.address());
  fast_watchdog();
  SystemdNotifier notifier(ioc.get_executor());
  BOOST_CHECK(notifier.watchdog_interval() == 100ms);
  run_watchdog_for(notifier, 600ms);
  const auto pings = systemd.pings();
  BOOST_TEST_MESSAGE(pings.size() << " pings in 600 ms");
  BOOST_CHECK_GE(pings.size(), 3u);
  BOOST_CHECK_LE(pings.size(), 8u);
  for (std::size_t i = 1; i < pings.size(); ++i) BOOST_CHECK(pings[i] - pings[i - 1] >= 90ms);
}

BOOST_AUTO_TEST_CASE(a_blocked_event_loop_stops_the_pings) {
  FakeSystemd systemd((dir / "notify").string());
  notify_socket.set(systemd.address());
  fast_watchdog();
  SystemdNotifier notifier(ioc.get_executor());
  Clock::time_point blocked_from, blocked_until;
  asio::steady_timer later(ioc, 150ms);
  later.async_wait([&](boost::system::error_code) {
    blocked_from = Clock::now();
    std::this_thread::sleep_for(500ms);  // the stuck loop under test, not a wait for an event
    blocked_until = Clock::now();
  });
  run_watchdog_for(notifier, 800ms);
  const auto pings = systemd.pings();
  BOOST_REQUIRE(blocked_until > blocked_from);
  const auto during = std::count_if(pings.begin(), pings.end(), [&](auto t) { return t > blocked_from && t < blocked_until; });
  const auto before = std::count_if(pings.begin(), pings.end(), [&](auto t) { return t <= blocked_from; });
  const auto after = std::find_if(pings.begin(), pings.end(), [&](auto t) { return t >= blocked_until; });
  BOOST_CHECK_EQUAL(during, 0);
  BOOST_CHECK_GE(before, 1);
  BOOST_REQUIRE(after != pings.end());
  BOOST_CHECK(*after - blocked_until < 50ms);  // the loop turns again: a ping at once
  BOOST_CHECK_LE(std::count_if(after, pings.end(), [&](auto t) { return t < *after + 90ms; }), 1);  // one, not a burst
}

BOOST_AUTO_TEST_CASE(a_failing_health_check_withholds_the_pings) {
  FakeSystemd systemd((dir / "notify").string());
  notify_socket.set(systemd.address());
  fast_watchdog();
  bool healthy = false;
  SystemdNotifier notifier(ioc.get_executor(), [&healthy] { return healthy; });
  Clock::time_point recovered;
  asio::steady_timer later(ioc, 250ms);
  later.async_wait([&](boost::system::error_code) {
    healthy = true;
    recovered = Clock::now();
  });
  run_watchdog_for(notifier, 450ms);
  const auto pings = systemd.pings();
  BOOST_CHECK(std::all_of(pings.begin(), pings.end(), [&](auto t) { return t > recovered; }));
  BOOST_CHECK_GE(pings.size(), 1u);
}

BOOST_AUTO_TEST_CASE(stopping_ends_the_watchdog) {
  FakeSystemd systemd((dir / "notify").string());
  notify_socket.set(systemd.address());
  fast_watchdog();
  SystemdNotifier notifier(ioc.get_executor());
  bool ended = false;
  asio::co_spawn(ioc, notifier.run_watchdog(), [&](std::exception_ptr) { ended = true; });
  asio::steady_timer later(ioc, 150ms);
  later.async_wait([&](boost::system::error_code) { notifier.stopping(); });
  const auto start = std::chrono::steady_clock::now();
  ioc.run_for(2s);  // returns when nothing is left to run
  BOOST_CHECK(ended);
  BOOST_CHECK(std::chrono::steady_clock::now() - start < 1s);
  const auto got = systemd.received();
  BOOST_REQUIRE(!got.empty());
  BOOST_CHECK_EQUAL(got.back().text, "STOPPING=1");
  BOOST_CHECK_GE(got.size(), 2u);  // pinged before
}

BOOST_AUTO_TEST_CASE(without_notify_socket_everything_is_a_no_op) {
  fast_watchdog();  // a watchdog without a socket to ping is no watchdog
  SystemdNotifier notifier(ioc.get_executor());
  BOOST_CHECK(!notifier.under_systemd());
  BOOST_CHECK(notifier.watchdog_interval() == 0us);
  BOOST_CHECK(!notifier.ready("3 slots"));
  BOOST_CHECK(!notifier.status("a\nb"));
  BOOST_CHECK(!notifier.reloading());
  BOOST_CHECK(!notifier.stopping());
  test::run_with_watchdog(ioc, notifier.run_watchdog(), 2s);  // returns at once
}

BOOST_AUTO_TEST_CASE(a_watchdog_for_another_process_is_not_ours) {
  FakeSystemd systemd((dir / "notify").string());
  notify_socket.set(systemd.address());
  watchdog_usec.set("200000");
  watchdog_pid.set(std::to_string(::getppid()));  // e.g. inherited from a parent under systemd
  SystemdNotifier notifier(ioc.get_executor());
  BOOST_CHECK(notifier.watchdog_interval() == 0us);
  test::run_with_watchdog(ioc, notifier.run_watchdog(), 2s);
  notifier.ready("3 slots");
  const auto got = systemd.received();
  BOOST_REQUIRE_EQUAL(got.size(), 1u);  // the ready, no ping
  BOOST_CHECK_EQUAL(got[0].text, "READY=1\nSTATUS=3 slots");
}

BOOST_AUTO_TEST_CASE(an_unreachable_socket_is_an_error_code_not_an_exception) {
  notify_socket.set((dir / "nobody-listens").string());
  SystemdNotifier notifier(ioc.get_executor());
  const auto ec = notifier.ready("3 slots");
  BOOST_CHECK(ec);
  BOOST_TEST_MESSAGE("sending to a missing socket: " << ec.message());
  BOOST_CHECK(notifier.status("still running"));  // logged once, reported every time
}

BOOST_AUTO_TEST_SUITE_END()
