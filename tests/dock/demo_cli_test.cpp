// The `dockd demo` command line, as users and scripts see it: clear errors for bad input, exit
// codes, a rerun that picks up where the last run stopped, and the live table.
#include "support/daemon.hpp"
#include "support/sandbox.hpp"

#include <boost/test/unit_test.hpp>

#include <fstream>
#include <thread>

using namespace bodydock;

namespace {

std::vector<std::string> demo(const test::TempDir& dir, std::vector<std::string> extra) {
  std::vector<std::string> args = {DOCKD_PATH, "demo", "--store", (dir / "store").string(), "--state", (dir / "state").string(), "--no-table"};
  args.insert(args.end(), extra.begin(), extra.end());
  return args;
}

bool contains(const std::string& text, const std::string& part) { return text.find(part) != std::string::npos; }

}  // namespace

BOOST_AUTO_TEST_SUITE(demo_cli)

BOOST_AUTO_TEST_CASE(bad_arguments_are_refused_with_the_option_named) {
  test::TempDir dir;
  struct Case {
    std::vector<std::string> args;
    const char* says;
  };
  const Case cases[] = {
      {{"--cameras", "0", "--segments", "1", "--segment-mib", "1"}, "--cameras must be 1..12"},
      {{"--cameras", "13", "--segments", "1", "--segment-mib", "1"}, "--cameras must be 1..12"},
      {{"--cameras", "1", "--segments", "1", "--segment-mib", "-2"}, "--segment-mib"},
      {{"--cameras", "1", "--segments", "1"}, "segment-mib"},
      {{"--cameras", "x", "--segments", "1", "--segment-mib", "1"}, "cameras"},
      {{"--cameras", "1", "--segments", "1", "--segment-mib", "1", "--fault", "slot=5,hang-at=1"}, "slot=1..1"},
      {{"--cameras", "1", "--segments", "1", "--segment-mib", "1", "--fault", "slot=1,explode=1"}, "unknown fault 'explode'"},
      {{"--cameras", "1", "--segments", "1", "--segment-mib", "1", "--bogus"}, "bogus"},
      {{"--cameras", "1", "--segments", "1", "--segment-mib", "1", "--web", "localhost:80"}, "--web: 'localhost' is not an IP address"},
      {{"--cameras", "1", "--segments", "1", "--segment-mib", "1", "--web", "127.0.0.1:99999"}, "--web: '99999' is not a port number"},
  };
  for (const auto& c : cases) {
    BOOST_TEST_CONTEXT(c.says) {
      const auto [rc, out] = test::run_command(demo(dir, c.args), dir / "out.log");
      BOOST_CHECK_EQUAL(rc, 2);
      BOOST_CHECK_MESSAGE(contains(out, c.says), "output was: " << out);
    }
  }
}

BOOST_AUTO_TEST_CASE(exit_when_idle_and_rerun_picks_up) {
  test::TempDir dir;
  const auto args = demo(dir, {"--cameras", "2", "--segments", "3", "--segment-mib", "0.5", "--exit-when-idle"});
  auto [rc, out] = test::run_command(args, dir / "out.log");
  BOOST_CHECK_EQUAL(rc, 0);
  BOOST_CHECK(contains(out, "every segment is stored and erased"));
  BOOST_CHECK(contains(out, "summary: pulled 3.0 MiB, stored 6 segments"));
  BOOST_CHECK(contains(out, "<5>slot 1 BC-0001: done, safe to undock"));  // journald priority prefix off a terminal
  // Again with the same state and store: nothing left to do, nothing pulled twice.
  std::tie(rc, out) = test::run_command(args, dir / "out.log");
  BOOST_CHECK_EQUAL(rc, 0);
  BOOST_CHECK(contains(out, "summary: pulled 0.0 MiB, stored 0 segments"));
}

BOOST_AUTO_TEST_CASE(a_hung_camera_makes_exit_when_idle_fail_with_the_reason) {
  test::TempDir dir;
  const auto args = demo(dir, {"--cameras", "2", "--segments", "2", "--segment-mib", "0.5", "--exit-when-idle", "--timeout-ms", "300",
                               "--fault", "slot=2,hang-at=100000"});
  const auto [rc, out] = test::run_command(args, dir / "out.log");
  BOOST_CHECK_EQUAL(rc, 1);
  BOOST_CHECK_MESSAGE(contains(out, "slot 2 BC-0002: 2 segment(s) not erased: pull: camera did not answer in time"), out);
  BOOST_CHECK(contains(out, "slot 1 BC-0001: done"));
}

BOOST_AUTO_TEST_CASE(unplugged_camera_is_redocked_and_finishes) {
  test::TempDir dir;
  const auto args = demo(dir, {"--cameras", "1", "--segments", "2", "--segment-mib", "1", "--exit-when-idle", "--fault", "slot=1,unplug-at=1500000"});
  const auto [rc, out] = test::run_command(args, dir / "out.log");
  BOOST_CHECK_EQUAL(rc, 0);
  BOOST_CHECK(contains(out, "undocked during pull"));
  BOOST_CHECK(contains(out, "resuming at byte"));
}

BOOST_AUTO_TEST_CASE(live_table_shows_every_slot) {
  test::TempDir dir;
  auto args = demo(dir, {"--cameras", "3", "--segments", "1", "--segment-mib", "0.25", "--exit-when-idle", "--table"});
  args.erase(std::find(args.begin(), args.end(), "--no-table"));
  const auto [rc, out] = test::run_command(args, dir / "out.log");
  BOOST_CHECK_EQUAL(rc, 0);
  BOOST_CHECK(contains(out, "slot LED"));
  // Safe to take: green, solid when charged, long-on while still charging.
  BOOST_CHECK(contains(out, "green solid") || contains(out, "green long on"));
  BOOST_CHECK(contains(out, "[####################]"));
  for (const char* serial : {"BC-0001", "BC-0002", "BC-0003"}) BOOST_CHECK(contains(out, serial));
}

// The main job with every byte through libusb under umockdev, as a separate process (the
// command arranges the preload itself): byte-exact, and an unplug mid-segment resumes.
BOOST_AUTO_TEST_CASE(demo_over_emulated_libusb_syncs_and_resumes_after_unplug) {
  test::TempDir dir;
  const auto args = demo(dir, {"--usb", "emulated-libusb", "--cameras", "3", "--segments", "2", "--segment-mib", "1", "--exit-when-idle",
                               "--fault", "slot=2,unplug-at=1700000"});
  const auto [rc, out] = test::run_command(args, dir / "out.log");
  BOOST_CHECK_EQUAL(rc, 0);
  BOOST_CHECK_MESSAGE(contains(out, "summary: pulled 6.0 MiB") || contains(out, "summary: pulled 6.1 MiB") || contains(out, "summary: pulled 6.2 MiB"), out);
  BOOST_CHECK(contains(out, "stored 6 segments"));
  BOOST_CHECK(contains(out, "slot 2 BC-0002: camera undocked during pull"));
  BOOST_CHECK(contains(out, "resuming at byte"));
  BOOST_CHECK(contains(out, "every segment is stored and erased"));
}

// A camera that wedges mid-transfer over USB: power-cycled through the emulated hub's port
// power (hub class requests over libusb), then synced; the run ends 0.
BOOST_AUTO_TEST_CASE(demo_over_emulated_libusb_power_cycles_a_hung_camera) {
  test::TempDir dir;
  const auto args = demo(dir, {"--usb", "emulated-libusb", "--cameras", "2", "--segments", "2", "--segment-mib", "0.5", "--exit-when-idle",
                               "--timeout-ms", "300", "--fault", "slot=1,hang-at=300000"});
  const auto [rc, out] = test::run_command(args, dir / "out.log");
  BOOST_CHECK_EQUAL(rc, 0);
  BOOST_CHECK_MESSAGE(contains(out, "slot 1 usb 1-1.1: camera not answering; power-cycling the port (1 of 3, hub port power"), out);
  BOOST_CHECK(contains(out, "every segment is stored and erased"));
}

// A camera the hub sees but that never shows up on the bus: after the enumeration timeout its
// port is power-cycled, it enumerates and is synced.
BOOST_AUTO_TEST_CASE(demo_over_emulated_libusb_power_cycles_a_camera_that_does_not_enumerate) {
  test::TempDir dir;
  const auto args = demo(dir, {"--usb", "emulated-libusb", "--cameras", "2", "--segments", "1", "--segment-mib", "0.5", "--exit-when-idle",
                               "--fault", "slot=2,no-enumerate"});
  const auto [rc, out] = test::run_command(args, dir / "out.log");
  BOOST_CHECK_EQUAL(rc, 0);
  BOOST_CHECK_MESSAGE(contains(out, "slot 2 usb 1-1.2: attached device does not enumerate; power-cycling the port (1 of 3"), out);
  BOOST_CHECK(contains(out, "slot 2 BC-0002: done, safe to undock"));
  BOOST_CHECK(contains(out, "every segment is stored and erased"));
}

// SIGTERM while transfers are in flight: the dock drains and exits 0 within 5 s; a rerun
// finishes the job.
BOOST_AUTO_TEST_CASE(sigterm_with_transfers_in_flight_drains_and_exits_0) {
  test::TempDir dir;
  auto args = demo(dir, {"--usb", "emulated-libusb", "--cameras", "2", "--segments", "1", "--segment-mib", "64"});
  test::Daemon d(args, dir / "run.log");
  // Wait until pulling has started (the session logs what it is about to pull).
  const auto limit = std::chrono::steady_clock::now() + std::chrono::seconds(60);
  while (!contains(test::slurp(dir / "run.log"), "to pull") && std::chrono::steady_clock::now() < limit)
    BOOST_REQUIRE_EQUAL(d.wait_exit(std::chrono::milliseconds(20)), -1);
  d.terminate();
  const auto asked = std::chrono::steady_clock::now();
  const int rc = d.wait_exit(std::chrono::milliseconds(10000));
  const auto took = std::chrono::steady_clock::now() - asked;
  BOOST_CHECK_EQUAL(rc, 0);
  BOOST_CHECK_LT(took, std::chrono::seconds(5));
  BOOST_TEST_MESSAGE("stopped " << std::chrono::duration_cast<std::chrono::milliseconds>(took).count() << " ms after SIGTERM");
  auto rest = demo(dir, {"--usb", "emulated-libusb", "--cameras", "2", "--segments", "1", "--segment-mib", "64", "--exit-when-idle"});
  const auto [rc2, out2] = test::run_command(rest, dir / "out.log");
  BOOST_CHECK_EQUAL(rc2, 0);
  BOOST_CHECK(contains(out2, "every segment is stored and erased"));
}


// The slot LEDs of a board file, on a fake /sys/class/leds tree: they follow the slots to
// "safe to take" (green: long-on while charging, solid when full) and go dark when the dock stops.
BOOST_AUTO_TEST_CASE(board_leds_follow_the_slots_and_go_dark_at_stop) {
  test::TempDir dir;
  const auto leds = dir / "leds";
  const auto put = [](const std::filesystem::path& p, const std::string& v) { std::ofstream(p) << v; };
  std::string board = "[leds]\nbackend = \"sysfs\"\nsysfs_root = \"" + leds.string() + "\"\n";
  for (int slot = 1; slot <= 2; ++slot) {
    board += "[[leds.slot]]\nslot = " + std::to_string(slot) + "\n";
    for (const char* colour : {"red", "green", "blue"}) {
      const std::string name = std::string("dock:") + colour + ":slot" + std::to_string(slot);
      std::filesystem::create_directories(leds / name);
      put(leds / name / "brightness", "0");
      put(leds / name / "trigger", "none");
      put(leds / name / "max_brightness", "255");
      put(leds / name / "delay_on", "500");  // the kernel makes these with the timer trigger
      put(leds / name / "delay_off", "500");
      board += std::string(colour) + " = \"" + name + "\"\n";
    }
  }
  put(dir / "board.toml", board);
  const auto log = dir / "demo.log";
  test::Daemon d(demo(dir, {"--cameras", "2", "--segments", "2", "--segment-mib", "0.5", "--leds", (dir / "board.toml").string()}), log);
  const auto green = leds / "dock:green:slot1";
  bool safe = false;
  for (int i = 0; i < 1200 && !safe; ++i) {
    const auto trigger = test::slurp(green / "trigger");
    const bool long_on = trigger == "timer" && test::slurp(green / "delay_on") == "1800" && test::slurp(green / "delay_off") == "200";
    const bool solid = trigger == "none" && test::slurp(green / "brightness") == "255";
    safe = (long_on || solid) && test::slurp(leds / "dock:red:slot1" / "brightness") == "0" && test::slurp(leds / "dock:blue:slot1" / "brightness") == "0";
    if (!safe) std::this_thread::sleep_for(std::chrono::milliseconds(50));
  }
  BOOST_TEST(safe, "slot 1's LED never showed green: " << test::slurp(log));
  d.terminate();
  BOOST_TEST(d.wait_exit(std::chrono::seconds(20)) == 0);
  for (const auto& e : std::filesystem::directory_iterator(leds)) {
    BOOST_TEST(test::slurp(e.path() / "brightness") == "0", e.path());
    BOOST_TEST(test::slurp(e.path() / "trigger") == "none", e.path());
  }
  // A bad board file is refused, naming the line.
  put(dir / "bad.toml", "[leds]\nbackend = \"laser\"\n");
  const auto [rc, out] = test::run_command(demo(dir, {"--cameras", "1", "--segments", "1", "--segment-mib", "1", "--leds", (dir / "bad.toml").string()}),
                                           dir / "out.log");
  BOOST_TEST(rc == 2);
  BOOST_TEST(contains(out, "bad.toml:2"), out);
}

// `dockd --check-config` as the site technician runs it: exit 0 (warnings printed), 1 with the
// line and key, 3 for a file it cannot read, 2 for bad usage.
BOOST_AUTO_TEST_CASE(check_config_exit_codes) {
  test::TempDir dir;
  const auto put = [](const std::filesystem::path& p, const std::string& v) { std::ofstream(p) << v; };
  put(dir / "good.toml", "[board]\n[[board.slot]]\nslot = 1\nport = \"1-1.1\"\n[web]\nlisten = \"127.0.0.1:8080\"\ncolour = \"blue\"\n");
  auto [rc, out] = test::run_command({DOCKD_PATH, "--check-config", (dir / "good.toml").string()}, dir / "out.log");
  BOOST_TEST(rc == 0);
  BOOST_TEST(contains(out, "good.toml: OK (1 slots"), out);
  BOOST_TEST(contains(out, "warning: " + (dir / "good.toml").string() + ":7: unknown key web.colour ignored"), out);
  put(dir / "bad.toml", "[board]\n[[board.slot]]\nslot = 99\nport = \"1-1.1\"\n");
  std::tie(rc, out) = test::run_command({DOCKD_PATH, "--check-config", (dir / "bad.toml").string()}, dir / "out.log");
  BOOST_TEST(rc == 1);
  BOOST_TEST(contains(out, "bad.toml:3: board.slot.slot = 99: must be 1..64"), out);
  std::tie(rc, out) = test::run_command({DOCKD_PATH, "--check-config", (dir / "none.toml").string()}, dir / "out.log");
  BOOST_TEST(rc == 3);
  BOOST_TEST(contains(out, "cannot read the config file"), out);
  std::tie(rc, out) = test::run_command({DOCKD_PATH, "--check-config"}, dir / "out.log");
  BOOST_TEST(rc == 2);
  std::tie(rc, out) = test::run_command({DOCKD_PATH, "--check-config", (std::filesystem::path(SOURCE_DIR) / "systemd" / "dockd.toml.example").string()},
                                        dir / "out.log");
  BOOST_TEST(rc == 0, out);
}

BOOST_AUTO_TEST_SUITE_END()
