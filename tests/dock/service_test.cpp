// `dockd run --config FILE` as systemd runs it: READY with a one-line STATUS on a (fake)
// NOTIFY_SOCKET, the web page from the config, JSON log lines, SIGHUP re-reading the config
// (RELOADING, then READY again), SIGTERM stopping cleanly with STOPPING; a bad config exits with
// --check-config's codes.
#include "dock/emulated_fleet.hpp"
#include "support/daemon.hpp"
#include "support/sandbox.hpp"

#include <boost/json/parse.hpp>
#include <boost/test/unit_test.hpp>

#include <netinet/in.h>
#include <sys/socket.h>
#include <sys/un.h>

#include <fstream>

using namespace bodydock;

namespace {

bool contains(const std::string& text, const std::string& part) { return text.find(part) != std::string::npos; }

/// A datagram socket standing in for systemd's notify socket.
class FakeNotifySocket {
 public:
  explicit FakeNotifySocket(const std::filesystem::path& path) : path_(path) {
    fd_ = ::socket(AF_UNIX, SOCK_DGRAM | SOCK_CLOEXEC, 0);
    sockaddr_un a{};
    a.sun_family = AF_UNIX;
    std::snprintf(a.sun_path, sizeof a.sun_path, "%s", path.c_str());
    BOOST_REQUIRE(::bind(fd_, reinterpret_cast<sockaddr*>(&a), sizeof a) == 0);
  }
  ~FakeNotifySocket() { ::close(fd_); }
  /// Datagrams until one contains `want` (or the limit passes); all of them, joined.
  std::string until(const std::string& want, std::chrono::seconds limit = std::chrono::seconds(30)) {
    std::string all;
    const auto deadline = std::chrono::steady_clock::now() + limit;
    while (std::chrono::steady_clock::now() < deadline) {
      pollfd p{fd_, POLLIN, 0};
      if (::poll(&p, 1, 200) <= 0) continue;
      char buf[4096];
      const auto n = ::recv(fd_, buf, sizeof buf, 0);
      if (n <= 0) continue;
      all.append(buf, static_cast<std::size_t>(n));
      all += '\n';
      if (contains(all, want)) return all;
    }
    BOOST_ERROR("no notification with '" << want << "' within " << limit.count() << " s; got: " << all);
    return all;
  }
  [[nodiscard]] const std::filesystem::path& path() const { return path_; }

 private:
  std::filesystem::path path_;
  int fd_ = -1;
};

std::uint16_t free_port() {
  const int s = ::socket(AF_INET, SOCK_STREAM, 0);
  sockaddr_in a{};
  a.sin_family = AF_INET;
  a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  ::bind(s, reinterpret_cast<sockaddr*>(&a), sizeof a);
  socklen_t len = sizeof a;
  ::getsockname(s, reinterpret_cast<sockaddr*>(&a), &len);
  ::close(s);
  return ntohs(a.sin_port);
}

std::string config(const test::TempDir& dir, std::uint16_t port, const std::string& level) {
  return "[dock]\nstate_dir = \"" + (dir / "state").string() + "\"\ntrust_dir = \"" + (dir / "trust").string() + "\"\nlog_level = \"" + level +
         "\"\nlog_format = \"json\"\ncontrol_socket = \"" + (dir / "control.sock").string() + "\"\n"
         "[board]\nport_power = \"none\"\n[[board.slot]]\nslot = 1\nport = \"9-1.1\"\n[[board.slot]]\nslot = 2\nport = \"9-1.2\"\n"
         "[leds]\nbackend = \"virtual\"\n"
         "[storage]\nstore = \"" + (dir / "store").string() + "\"\n"
         "[web]\nlisten = \"127.0.0.1:" + std::to_string(port) + "\"\naccounts_file = \"" + (dir / "accounts").string() + "\"\n";
}

}  // namespace

BOOST_AUTO_TEST_SUITE(service)

BOOST_AUTO_TEST_CASE(run_notifies_serves_reloads_and_stops) {
  test::TempDir dir;
  {
    dock::EmulatedFleet world(dir / "world");
    world.dock("dock-7", dir / "trust");
  }
  const auto port = free_port();
  std::ofstream(dir / "dockd.toml") << config(dir, port, "info");
  FakeNotifySocket notify(dir / "notify");
  ::setenv("NOTIFY_SOCKET", notify.path().c_str(), 1);
  const auto log = dir / "dockd.log";
  test::Daemon d({DOCKD_PATH, "run", "--config", (dir / "dockd.toml").string()}, log);
  ::unsetenv("NOTIFY_SOCKET");
  const auto ready = notify.until("READY=1");
  BOOST_TEST(contains(ready, "STATUS=2 empty"), ready);
  // The web page from the config.
  auto [rc, out] = test::run_command({DOCKCTL_PATH, "status", "--url", "http://127.0.0.1:" + std::to_string(port)}, dir / "out.log");
  BOOST_TEST(rc == 0, out);
  BOOST_TEST(contains(out, "slot LED"), out);
  // dockctl's control socket.
  std::tie(rc, out) = test::run_command({DOCKCTL_PATH, "cameras", "--socket", (dir / "control.sock").string()}, dir / "out.log");
  BOOST_TEST(rc == 0, out);
  BOOST_TEST(contains(out, "0 camera(s)"), out);
  // SIGHUP: the config read again, the log level applied, the trust directory (a new CRL) read again.
  std::ofstream(dir / "dockd.toml") << config(dir, port, "debug");
  ::kill(d.pid(), SIGHUP);
  const auto reloaded = notify.until("READY=1");
  BOOST_TEST(contains(reloaded, "RELOADING=1"), reloaded);
  d.terminate();
  BOOST_TEST(contains(notify.until("STOPPING=1"), "STOPPING=1"));
  BOOST_TEST(d.wait_exit(std::chrono::seconds(30)) == 0);
  // Every log line is one JSON object with a message.
  std::ifstream in(log);
  std::size_t lines = 0;
  bool saw_reload = false;
  for (std::string line; std::getline(in, line);) {
    if (line.empty()) continue;
    boost::system::error_code ec;
    const auto v = boost::json::parse(line, ec);
    BOOST_REQUIRE_MESSAGE(!ec && v.is_object() && v.as_object().contains("message"), "not a JSON log line: " << line);
    saw_reload = saw_reload || contains(std::string(v.at("message").as_string()), "(fleet CA and CRL) read again");
    ++lines;
  }
  BOOST_TEST(lines > 2u);
  BOOST_TEST(saw_reload);
}

BOOST_AUTO_TEST_CASE(a_bad_config_stops_it_with_check_configs_exit_codes) {
  test::TempDir dir;
  std::ofstream(dir / "bad.toml") << "[board]\n[[board.slot]]\nslot = 1\nport = \"x\"\n";
  auto [rc, out] = test::run_command({DOCKD_PATH, "run", "--config", (dir / "bad.toml").string()}, dir / "out.log");
  BOOST_TEST(rc == 1);
  BOOST_TEST(contains(out, "bad.toml:4: board.slot.port"), out);
  std::tie(rc, out) = test::run_command({DOCKD_PATH, "run", "--config", (dir / "missing.toml").string()}, dir / "out.log");
  BOOST_TEST(rc == 3);
  std::tie(rc, out) = test::run_command({DOCKD_PATH, "run"}, dir / "out.log");
  BOOST_TEST(rc == 2);
  // A config whose trust directory is missing: a clear message, exit 1.
  std::ofstream(dir / "notrust.toml") << "[dock]\nstate_dir = \"" << (dir / "state").string() << "\"\ntrust_dir = \"" << (dir / "none").string()
                                       << "\"\n[board]\n[[board.slot]]\nslot = 1\nport = \"9-1.1\"\n";
  std::tie(rc, out) = test::run_command({DOCKD_PATH, "run", "--config", (dir / "notrust.toml").string()}, dir / "out.log");
  BOOST_TEST(rc == 1);
  BOOST_TEST(contains(out, "cannot start"), out);
}

BOOST_AUTO_TEST_SUITE_END()
