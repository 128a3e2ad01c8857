// The real libusb code path against emulated cameras (umockdev): enumeration of a camera present
// at start-up, port paths, matching, bulk transfers with several in flight, a stall recovered,
// hotplug removal mid-segment with clean cancellation, and a redock that resumes.
#include "dock/dock.hpp"
#include "dock/emulated_fleet.hpp"
#include "dock/local_sink.hpp"
#include "dock/usb_slots.hpp"
#include "hw/camera_device.hpp"
#include "hw/port_power.hpp"
#include "hw/umockdev_bus.hpp"
#include "proto/sha256.hpp"
#include "support/fleet.hpp"
#include "support/sandbox.hpp"
#include "usb/usb_context.hpp"
#include "usb/usb_link.hpp"

#include <boost/asio/co_spawn.hpp>
#include <boost/asio/detached.hpp>
#include <boost/asio/post.hpp>
#include <boost/asio/experimental/awaitable_operators.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/asio/this_coro.hpp>
#include <boost/asio/use_awaitable.hpp>
#include <boost/test/unit_test.hpp>
#include <libusb.h>
#include <sys/resource.h>

#include <algorithm>
#include <csignal>
#include <fstream>
#include <mutex>
#include <optional>

using namespace bodydock;
namespace asio = boost::asio;
using namespace asio::experimental::awaitable_operators;
using dock::SessionEnd;

namespace {

constexpr std::uint64_t kMiB = 1u << 20;

hw::CameraSpec spec(const std::string& serial, std::uint32_t segments, std::uint64_t bytes) {
  hw::CameraSpec s;
  s.serial = serial;
  s.segments = segments;
  s.segment_bytes = bytes;
  s.chunk_size = 128 * 1024;
  s.seed = 11;
  s.trust = test::camera_keys(serial);
  return s;
}

/// Every segment the camera recorded is in the local store, byte for byte.
void check_stored_in(const std::filesystem::path& store, const hw::CameraDevice& cam) {
  for (const auto& m : cam.recorded()) {
    std::ifstream in(store / dock::LocalDirSink::object_key(m), std::ios::binary);
    proto::Bytes bytes{std::istreambuf_iterator<char>(in), std::istreambuf_iterator<char>()};
    proto::Bytes expect(m.size);
    cam.content(m.seq, 0, expect);
    BOOST_CHECK_MESSAGE(bytes == expect, m.camera_serial << " seq " << m.seq << " not stored intact");
  }
}

/// Devices reported by hotplug, in order.
struct Arrivals {
  explicit Arrivals(asio::any_io_executor ex) : changed(ex) {}
  std::vector<std::pair<usb::DeviceRef, bool>> events;
  std::size_t consumed = 0;  ///< events before this were already matched
  usb::AsyncEvent changed;
};

struct UsbFixture {
  test::TempDir dir;
  hw::UmockdevBus bus;  // before libusb starts: it points the process at the emulated sysfs
  asio::io_context ioc;
  std::vector<std::string> libusb_log;
  usb::UsbContext usb{ioc.get_executor(), [this](usb::UsbContext::LogLevel, std::string_view line) { libusb_log.emplace_back(line); }};
  asio::thread_pool sink_pool{1};
  dock::LocalDirSink sink{dir / "store", sink_pool};
  Arrivals arrivals{ioc.get_executor()};

  UsbFixture() {
    usb.start_hotplug([this](usb::DeviceRef dev, bool arrived) {
      arrivals.events.emplace_back(std::move(dev), arrived);
      arrivals.changed.notify();
    });
  }

  dock::DockConfig config() const {
    dock::DockConfig c;
    c.state_dir = dir / "state";
    c.identity = test::dock_identity();
    c.slots = 1;
    c.sync_every_bytes = 256 * 1024;
    return c;
  }

  void check_stored(const hw::CameraDevice& cam) const { check_stored_in(dir / "store", cam); }
};

/// Waits until hotplug reports an event for the device at `port` (arrival or removal).
asio::awaitable<void> wait_port(Arrivals& a, std::string port, bool arrived, usb::DeviceRef& out) {
  for (std::size_t seen = a.consumed;; ++seen) {
    while (a.events.size() <= seen) co_await a.changed.wait();
    const auto& [dev, arr] = a.events[seen];
    if (arr == arrived && usb::port_path(dev.get()) == port) {
      out = dev;
      a.consumed = seen + 1;
      co_return;
    }
  }
}

asio::awaitable<std::vector<SessionEnd>> sessions_then_stop(dock::Dock& d, usb::CameraLink& link) {
  const auto end = co_await d.run_session(1, link);
  d.stop();
  std::vector<SessionEnd> ends;
  ends.push_back(end);
  co_return ends;
}

/// Opens the camera behind `dev` and runs the dock over it until the session ends.
asio::awaitable<void> sync_over_usb(dock::Dock& d, usb::DeviceRef dev, SessionEnd& end, unsigned& stalls) {
  std::string why;
  auto iface = usb::match_camera(dev.get(), usb::CameraMatch{}, why);
  BOOST_REQUIRE_MESSAGE(iface, "camera not matched: " << why);
  auto link = usb::UsbCameraLink::open(co_await asio::this_coro::executor, dev.get(), *iface, {}, usb::port_path(dev.get()));
  BOOST_REQUIRE_MESSAGE(link, "open failed: " << link.error().message());
  auto ends = co_await (d.run_uploader() && sessions_then_stop(d, **link));
  end = ends[0];
  stalls = (*link)->stalls_cleared();
  co_await (*link)->shutdown();
}

asio::awaitable<void> docking_at(UsbFixture& f, std::string port, dock::Dock& d, SessionEnd& end, unsigned& stalls) {
  usb::DeviceRef dev;
  co_await wait_port(f.arrivals, std::move(port), true, dev);
  co_await sync_over_usb(d, dev, end, stalls);
}

}  // namespace

BOOST_FIXTURE_TEST_SUITE(usb_lane, UsbFixture)

BOOST_AUTO_TEST_CASE(camera_plugged_in_while_running_is_found_on_its_port_and_synced) {
  hw::CameraDevice cam(spec("BC-USB1", 3, kMiB));
  bus.copy_through_socket();  // the path a client in another process takes
  bus.plug(3, cam);
  dock::Dock d(ioc, config(), sink);
  SessionEnd end = SessionEnd::failed;
  unsigned stalls = 0;
  test::run_with_watchdog(ioc, docking_at(*this, "1-1.3", d, end, stalls));
  BOOST_CHECK(end == SessionEnd::done);
  BOOST_CHECK_EQUAL(cam.erased().size(), 3u);
  check_stored(cam);
}

BOOST_AUTO_TEST_CASE(a_device_that_is_not_a_camera_is_ignored_with_a_reason) {
  hw::CameraDevice cam(spec("BC-USB2", 1, kMiB));
  hw::UsbIdentity storage;
  storage.interface_class = 0x08;  // mass storage
  bus.plug(4, cam, storage);
  usb::DeviceRef dev;
  test::run_with_watchdog(ioc, wait_port(arrivals, "1-1.4", true, dev));
  std::string why;
  BOOST_CHECK(!usb::match_camera(dev.get(), usb::CameraMatch{}, why));
  BOOST_CHECK_NE(why.find("class 0xff"), std::string::npos);
  usb::CameraMatch only_other;
  only_other.vid_pid = {{0x1234, 0x5678}};
  hw::CameraDevice cam2(spec("BC-USB3", 1, kMiB));
  bus.plug(5, cam2);
  test::run_with_watchdog(ioc, wait_port(arrivals, "1-1.5", true, dev));
  BOOST_CHECK(!usb::match_camera(dev.get(), only_other, why));
  BOOST_CHECK_NE(why.find("1d50:6160 is not a configured camera"), std::string::npos);
}

BOOST_AUTO_TEST_CASE(a_stalled_endpoint_is_cleared_and_the_sync_completes) {
  hw::CameraDevice cam(spec("BC-USB4", 2, kMiB));
  bus.plug(6, cam);
  bus.stall_next_in(6);
  dock::Dock d(ioc, config(), sink);
  SessionEnd end = SessionEnd::failed;
  unsigned stalls = 0;
  test::run_with_watchdog(ioc, docking_at(*this, "1-1.6", d, end, stalls));
  BOOST_CHECK(end == SessionEnd::done);
  BOOST_CHECK_GE(stalls, 1u);
  check_stored(cam);
}

BOOST_AUTO_TEST_CASE(removal_mid_segment_cancels_cleanly_and_redocking_resumes) {
  hw::CameraDevice cam(spec("BC-USB5", 2, 2 * kMiB));
  bus.plug(7, cam);
  bus.unplug_after(7, 3 * kMiB);  // inside segment 2
  {
    dock::Dock d(ioc, config(), sink);
    SessionEnd end = SessionEnd::done;
    unsigned stalls = 0;
    test::run_with_watchdog(ioc, docking_at(*this, "1-1.7", d, end, stalls));
    BOOST_CHECK(end == SessionEnd::unplugged);
  }
  // The removal reaches libusb's hotplug as well.
  bus.unplug(7);
  usb::DeviceRef gone;
  test::run_with_watchdog(ioc, wait_port(arrivals, "1-1.7", false, gone));
  BOOST_CHECK(!cam.is_erased(2));
  const auto served_before = cam.bytes_served();

  bus.plug(7, cam);  // docked again
  dock::Dock d(ioc, config(), sink);
  SessionEnd end = SessionEnd::failed;
  unsigned stalls = 0;
  test::run_with_watchdog(ioc, docking_at(*this, "1-1.7", d, end, stalls));
  BOOST_CHECK(end == SessionEnd::done);
  check_stored(cam);
  BOOST_CHECK_EQUAL(cam.erased().size(), 2u);
  // Resumed from the durable offset: far less than the 2 MiB segment read again.
  const auto reread = cam.bytes_served() - 4 * kMiB;
  BOOST_TEST_MESSAGE("served before redock " << served_before << ", re-read " << reread);
  BOOST_CHECK_LT(reread, kMiB);
}

BOOST_AUTO_TEST_CASE(a_port_docked_over_and_over_keeps_getting_valid_usb_addresses) {
  // A dock sees thousands of dockings; USB addresses are 7 bits, so the bus must reuse them the
  // way the kernel does. 130 dockings of one port pass the 127 limit once.
  hw::CameraDevice cam(spec("BC-USB9", 1, 64 * 1024));
  std::vector<int> addresses;
  for (int i = 0; i < 130; ++i) {
    bus.plug(3, cam);
    usb::DeviceRef dev;
    test::run_with_watchdog(ioc, wait_port(arrivals, "1-1.3", true, dev));
    addresses.push_back(libusb_get_device_address(dev.get()));
    bus.unplug(3);
    test::run_with_watchdog(ioc, wait_port(arrivals, "1-1.3", false, dev));
  }
  for (std::size_t i = 0; i < addresses.size(); ++i) {
    BOOST_TEST_CONTEXT("docking " << i) {
      BOOST_CHECK_GE(addresses[i], 3);
      BOOST_CHECK_LE(addresses[i], 127);
      if (i > 0) BOOST_CHECK_NE(addresses[i], addresses[i - 1]);  // not the one just released
    }
  }
  // The last docking still enumerates as the camera and syncs.
  bus.plug(3, cam);
  dock::Dock d(ioc, config(), sink);
  SessionEnd end = SessionEnd::failed;
  unsigned stalls = 0;
  test::run_with_watchdog(ioc, docking_at(*this, "1-1.3", d, end, stalls));
  BOOST_CHECK(end == SessionEnd::done);
  check_stored(cam);
}

BOOST_AUTO_TEST_SUITE_END()

namespace {

/// Waits for `want` session ends, then stops the dock and closes the links of cameras still
/// docked (synced cameras stay in their session, watched, until undocked).
asio::awaitable<void> until_all_ended(dock::Dock& d, dock::UsbSlots* slots, std::size_t& ended, std::size_t want, usb::AsyncEvent& changed) {
  while (ended < want) co_await changed.wait();
  d.stop();
  if (!slots) co_return;
  slots->close_all();
  asio::steady_timer t(co_await asio::this_coro::executor);
  while (slots->active() > 0) {
    t.expires_after(std::chrono::milliseconds(10));
    co_await t.async_wait(asio::use_awaitable);
  }
}

asio::awaitable<void> dock_until(dock::Dock& d, dock::UsbSlots* slots, std::size_t& ended, std::size_t want, usb::AsyncEvent& changed) {
  co_await (d.run_uploader() && until_all_ended(d, slots, ended, want, changed));
}

/// A dock over real libusb, started after the emulated bus is populated (so the cameras are
/// present at start-up), recording how each session on it ended.
struct UsbDockRig {
  UsbDockRig(const test::TempDir& dir, unsigned slots, std::chrono::milliseconds timeout = std::chrono::milliseconds(5000),
             std::chrono::milliseconds status_interval = std::chrono::milliseconds(5000))
      : sink(dir / "store", pool), dock(ioc, [&] {
          dock::DockConfig cfg;
          cfg.state_dir = dir / "state";
          cfg.identity = test::dock_identity();
          cfg.slots = slots;
          cfg.request_timeout = timeout;
          cfg.status_interval = status_interval;
          return cfg;
        }(), sink) {}
  /// Wires `slots` to record session ends; a session followed by a power cycle is not final.
  void watch(dock::UsbSlots& slots) {
    watched = &slots;
    slots.on_session_end = [this](unsigned slot, SessionEnd end, bool retrying) {
      ends.push_back({slot, end, retrying});
      if (!retrying) ++ended;
      changed.notify();
    };
  }
  void run_until_ended(std::size_t sessions) { test::run_with_watchdog(ioc, dock_until(dock, watched, ended, sessions, changed)); }

  struct End {
    unsigned slot;
    SessionEnd end;
    bool retrying;
  };
  asio::io_context ioc;
  usb::UsbContext usb{ioc.get_executor(), {}};
  asio::thread_pool pool{1};
  dock::LocalDirSink sink;
  dock::Dock dock;
  std::vector<End> ends;
  std::size_t ended = 0;
  dock::UsbSlots* watched = nullptr;
  usb::AsyncEvent changed{ioc.get_executor()};
};

}  // namespace

// Cameras already docked when the daemon starts are found through enumeration, each on its own
// port path and slot, and all four sync byte-exact over real libusb.
BOOST_AUTO_TEST_CASE(four_cameras_present_at_start_on_four_ports_sync_byte_exact) {
  test::TempDir dir;
  hw::UmockdevBus bus;
  std::vector<std::unique_ptr<hw::CameraDevice>> cams;
  std::map<std::string, unsigned> board;
  for (unsigned i = 1; i <= 4; ++i) {
    cams.push_back(std::make_unique<hw::CameraDevice>(spec("BC-USB1" + std::to_string(i), 2, kMiB + 4096 * i)));
    bus.plug(i + 2, *cams.back());  // ports 3..6, before libusb starts
    board["1-1." + std::to_string(i + 2)] = i;
  }
  UsbDockRig rig(dir, 4);
  auto& d = rig.dock;
  usb::CameraMatch match;
  match.vid_pid = {{0x1d50, 0x6160}};
  dock::UsbSlots slots(d, rig.usb, board, match, {});
  rig.watch(slots);
  slots.start();
  rig.run_until_ended(4);
  BOOST_REQUIRE_EQUAL(rig.ends.size(), 4u);
  for (const auto& e : rig.ends) BOOST_CHECK(e.end == SessionEnd::done);
  for (unsigned i = 1; i <= 4; ++i) {
    BOOST_CHECK_EQUAL(d.slots()[i - 1].serial, "BC-USB1" + std::to_string(i));
    BOOST_CHECK_EQUAL(d.slots()[i - 1].where, "1-1." + std::to_string(i + 2));
    const auto& cam = *cams[i - 1];
    BOOST_CHECK_EQUAL(cam.erased().size(), 2u);
    check_stored_in(dir / "store", cam);
  }
  BOOST_CHECK_EQUAL(slots.active(), 0u);
}

// A camera whose firmware wedges mid-transfer is power-cycled through the (virtual) port-power
// backend, comes back, and is synced; the slot then shows done.
BOOST_AUTO_TEST_CASE(a_camera_that_stops_answering_is_power_cycled_and_then_synced) {
  test::TempDir dir;
  hw::UmockdevBus bus;
  hw::CameraDevice cam(spec("BC-USB20", 2, kMiB));
  bus.plug(8, cam);
  bus.hang_after(8, 700'000);
  UsbDockRig rig(dir, 1, std::chrono::milliseconds(300));
  auto& d = rig.dock;
  hw::VirtualPortPower power;
  power.on_change = [&](const std::string& port, bool on) {
    BOOST_CHECK_EQUAL(port, "1-1.8");
    if (on) bus.plug(8, cam);
    else bus.unplug(8);
  };
  dock::UsbSlots slots(d, rig.usb, {{"1-1.8", 1}}, usb::CameraMatch{}, {});
  dock::UsbSlots::PowerPolicy policy;
  policy.off_time = std::chrono::milliseconds(100);
  slots.set_port_power(&power, policy);
  rig.watch(slots);
  slots.start();
  rig.run_until_ended(1);
  BOOST_REQUIRE_EQUAL(rig.ends.size(), 2u);
  BOOST_CHECK(rig.ends[0].end == SessionEnd::unresponsive && rig.ends[0].retrying);
  BOOST_CHECK(rig.ends[1].end == SessionEnd::done && !rig.ends[1].retrying);
  BOOST_CHECK_EQUAL(power.cycles("1-1.8"), 1u);
  BOOST_CHECK(power.is_on("1-1.8"));
  BOOST_CHECK(d.slots()[0].phase == dock::SlotPhase::done);
  BOOST_CHECK_EQUAL(cam.erased().size(), 2u);
}

// The dock's own disk fills up while a camera is docked: the session stops on a dock fault with
// nothing erased, starts again by itself on the same camera while it stays docked, and syncs once
// there is room, with no officer or admin doing anything.
BOOST_AUTO_TEST_CASE(a_session_stopped_by_a_full_disk_starts_again_and_syncs_once_there_is_room) {
  test::TempDir dir;
  hw::UmockdevBus bus;
  hw::CameraDevice cam(spec("BC-USB21", 2, kMiB));
  bus.plug(4, cam);
  UsbDockRig rig(dir, 1);
  auto& d = rig.dock;
  dock::UsbSlots slots(d, rig.usb, {{"1-1.4", 1}}, usb::CameraMatch{}, {});
  slots.set_fault_retry({std::chrono::milliseconds(200), std::chrono::milliseconds(400)});
  rig.watch(slots);
  // A file size limit of 0 stands in for the full disk: no file of the dock can grow (the audit
  // log, the database's journal, the spool), exactly as with ENOSPC. Lifted after 1.5 s. (Log lines
  // of that time are lost when the output goes to a file rather than a pipe, as under ctest.)
  rlimit old{};
  BOOST_REQUIRE_EQUAL(::getrlimit(RLIMIT_FSIZE, &old), 0);
  const auto was = std::signal(SIGXFSZ, SIG_IGN);
  rlimit full = old;
  full.rlim_cur = 0;
  asio::steady_timer room(rig.ioc, std::chrono::milliseconds(1500));
  room.async_wait([&](const boost::system::error_code&) { ::setrlimit(RLIMIT_FSIZE, &old); });
  BOOST_REQUIRE_EQUAL(::setrlimit(RLIMIT_FSIZE, &full), 0);
  slots.start();
  rig.run_until_ended(1);
  ::setrlimit(RLIMIT_FSIZE, &old);
  std::signal(SIGXFSZ, was);
  BOOST_REQUIRE_GE(rig.ends.size(), 2u);
  for (std::size_t i = 0; i + 1 < rig.ends.size(); ++i) BOOST_CHECK(rig.ends[i].end == SessionEnd::dock_fault && rig.ends[i].retrying);
  BOOST_CHECK(rig.ends.back().end == SessionEnd::done && !rig.ends.back().retrying);
  BOOST_CHECK(d.slots()[0].phase == dock::SlotPhase::done);
  BOOST_CHECK_EQUAL(cam.erased().size(), 2u);
  check_stored_in(dir / "store", cam);
}

// The sysfs backend writes the port's `disable` attribute (kernel >= 6.0 layout) and reads
// attachment from the port's `state` where the kernel has it.
BOOST_AUTO_TEST_CASE(sysfs_port_power_switches_the_ports_disable_attribute) {
  test::TempDir dir;
  hw::SysfsPortPower power(dir.path());
  BOOST_CHECK_EQUAL(power.port_dir("1-1.3"), dir.path() / "bus/usb/devices/1-1:1.0/1-1-port3");
  BOOST_CHECK_EQUAL(power.port_dir("2-4"), dir.path() / "bus/usb/devices/2-0:1.0/usb2-port4");
  BOOST_CHECK_EQUAL(power.port_dir("1-1.2.7"), dir.path() / "bus/usb/devices/1-1.2:1.0/1-1.2-port7");
  for (const char* bad : {"", "1", "1-", "x-1", "1-1.", "1-0", "1-1..2", "1-1.300"}) BOOST_CHECK_MESSAGE(power.port_dir(bad).empty(), bad);
  const auto attr = power.port_dir("1-1.3") / "disable";
  std::filesystem::create_directories(attr.parent_path());
  std::ofstream(attr) << "0";
  BOOST_CHECK(!power.set("1-1.3", false));
  BOOST_CHECK_EQUAL(test::slurp_text(attr), "1");
  BOOST_CHECK(!power.set("1-1.3", true));
  BOOST_CHECK_EQUAL(test::slurp_text(attr), "0");
  BOOST_CHECK(power.set("9-9.9", false));  // no such port: an error, not a guess
  BOOST_CHECK(power.set("junk", false) == hw::power_errc::bad_port_path);

  BOOST_CHECK(!power.is_attached("1-1.3").has_value());  // no `state` attribute: cannot tell
  std::ofstream(power.port_dir("1-1.3") / "state") << "not-attached\n";
  BOOST_CHECK(power.is_attached("1-1.3") == false);
  std::ofstream(power.port_dir("1-1.3") / "state") << "powered\n";
  BOOST_CHECK(power.is_attached("1-1.3") == true);
}

namespace {

template <typename T>
asio::awaitable<void> store_result(asio::awaitable<T> op, std::optional<T>& into) {
  into = co_await std::move(op);
}

/// Runs one operation on `ioc` to completion and yields its result.
template <typename T>
T run_for(asio::io_context& ioc, asio::awaitable<T> op) {
  std::optional<T> out;
  test::run_with_watchdog(ioc, store_result(std::move(op), out));
  ioc.restart();
  BOOST_REQUIRE(out.has_value());
  return std::move(*out);
}

/// Collects the emulated hub's port power switches (they arrive on umockdev's thread).
struct HubSwitches {
  std::mutex m;
  std::vector<std::pair<unsigned, bool>> seen;
  std::vector<std::pair<unsigned, bool>> get() {
    std::lock_guard lock(m);
    return seen;
  }
};

}  // namespace

// The hub backend speaks hub class requests over real libusb to the emulated hub: port status
// (connection, enable, power), SET/CLEAR_FEATURE(PORT_POWER), and clear errors for a port the
// hub does not have, a hub that is not there and a path that is not one.
BOOST_AUTO_TEST_CASE(hub_port_power_switches_ports_with_hub_class_requests) {
  hw::UmockdevBus bus;
  HubSwitches switches;
  bus.on_port_power([&](unsigned port, bool on) {
    std::lock_guard lock(switches.m);
    switches.seen.emplace_back(port, on);
  });
  hw::CameraDevice cam(spec("BC-HUB1", 1, kMiB));
  bus.plug(3, cam);
  asio::io_context ioc;
  usb::UsbContext usb(ioc.get_executor(), {});
  hw::HubPortPower power(usb.get());

  auto st = run_for(ioc, power.status("1-1.3"));
  BOOST_REQUIRE(st);
  BOOST_CHECK(st->connected && st->enabled && st->powered);
  st = run_for(ioc, power.status("1-1.4"));
  BOOST_REQUIRE(st);
  BOOST_CHECK(!st->connected && !st->enabled && st->powered);
  BOOST_CHECK(run_for(ioc, power.attached("1-1.3")) == true);
  BOOST_CHECK(run_for(ioc, power.attached("1-1.4")) == false);

  BOOST_CHECK(!run_for(ioc, power.switch_port("1-1.3", false)));
  BOOST_CHECK(!bus.port_powered(3));
  st = run_for(ioc, power.status("1-1.3"));
  BOOST_REQUIRE(st);
  BOOST_CHECK(!st->powered && !st->connected);  // no VBUS: the camera is off the bus
  BOOST_CHECK(!run_for(ioc, power.switch_port("1-1.3", true)));
  BOOST_CHECK(bus.port_powered(3));
  const auto seen = switches.get();
  BOOST_REQUIRE_EQUAL(seen.size(), 2u);
  BOOST_CHECK(seen[0] == std::make_pair(3u, false));
  BOOST_CHECK(seen[1] == std::make_pair(3u, true));

  BOOST_CHECK(run_for(ioc, power.switch_port("1-1.16", false)) == hw::power_errc::no_such_port);
  BOOST_CHECK(run_for(ioc, power.switch_port("1-2.1", false)) == hw::power_errc::no_hub);
  BOOST_CHECK(run_for(ioc, power.switch_port("1-1.3.2", false)) == hw::power_errc::no_hub);  // a camera is no hub
  BOOST_CHECK(run_for(ioc, power.switch_port("usb", false)) == hw::power_errc::bad_port_path);
  BOOST_CHECK(!run_for(ioc, power.attached("1-2.1")).has_value());  // cannot tell
  BOOST_CHECK(bus.port_powered(3));
}

namespace {

/// Waits until `done` says so (the watchdog bounds it).
asio::awaitable<void> wait_for(std::function<bool()> done) {
  asio::steady_timer t(co_await asio::this_coro::executor);
  while (!done()) {
    t.expires_after(std::chrono::milliseconds(10));
    co_await t.async_wait(asio::use_awaitable);
  }
}

/// Runs the rig's dock until `done` says so.
asio::awaitable<void> poll_until(dock::Dock& d, std::function<bool()> done) {
  co_await wait_for(std::move(done));
  d.stop();
}

}  // namespace

// A camera that is attached (the hub sees it) but never enumerates is power-cycled through the
// hub backend after the enumeration timeout, shows up, and is synced. Ports are powered at start.
BOOST_AUTO_TEST_CASE(an_attached_camera_that_does_not_enumerate_is_power_cycled_through_the_hub) {
  test::TempDir dir;
  hw::UmockdevBus bus;
  hw::CameraDevice cam(spec("BC-HUB2", 2, kMiB));
  bus.attach_unenumerated(9);
  UsbDockRig rig(dir, 2);
  HubSwitches switches;
  bus.on_port_power([&](unsigned port, bool on) {
    {
      std::lock_guard lock(switches.m);
      switches.seen.emplace_back(port, on);
    }
    asio::post(rig.ioc, [&bus, &cam, port, on] {
      if (!on) bus.unplug(port);
      else if (port == 9) bus.plug(9, cam);  // revived by the power cycle
    });
  });
  hw::HubPortPower power(rig.usb.get());
  BOOST_REQUIRE(!run_for(rig.ioc, power.switch_port("1-1.10", false)));  // slot 2 starts switched off
  dock::UsbSlots slots(rig.dock, rig.usb, {{"1-1.9", 1}, {"1-1.10", 2}}, usb::CameraMatch{}, {});
  dock::UsbSlots::PowerPolicy policy;
  policy.off_time = std::chrono::milliseconds(50);
  policy.enumerate_timeout = std::chrono::milliseconds(200);
  slots.set_port_power(&power, policy);
  rig.watch(slots);
  slots.start();
  rig.run_until_ended(1);
  BOOST_REQUIRE_EQUAL(rig.ends.size(), 1u);
  BOOST_CHECK(rig.ends[0].end == SessionEnd::done);
  BOOST_CHECK_EQUAL(cam.erased().size(), 2u);
  BOOST_CHECK(bus.port_powered(10));  // powered when the dock started
  const auto seen = switches.get();
  BOOST_CHECK_EQUAL(std::count(seen.begin(), seen.end(), std::make_pair(9u, false)), 1);
  BOOST_CHECK_EQUAL(std::count(seen.begin(), seen.end(), std::make_pair(10u, true)), 1);
}

// Bounded: a port whose device never comes up is cycled max_cycles times, then the slot shows a
// fault for an admin instead of cycling forever.
BOOST_AUTO_TEST_CASE(a_port_that_never_enumerates_becomes_a_slot_fault_after_bounded_cycles) {
  test::TempDir dir;
  hw::UmockdevBus bus;  // before libusb starts
  UsbDockRig rig(dir, 1);
  hw::VirtualPortPower power;
  power.set_attached("1-1.11", true);
  dock::UsbSlots slots(rig.dock, rig.usb, {{"1-1.11", 1}}, usb::CameraMatch{}, {});
  dock::UsbSlots::PowerPolicy policy;
  policy.off_time = std::chrono::milliseconds(10);
  policy.enumerate_timeout = std::chrono::milliseconds(50);
  policy.max_cycles = 2;
  slots.set_port_power(&power, policy);
  slots.start();
  const auto& slot = rig.dock.slots()[0];
  test::run_with_watchdog(rig.ioc, poll_until(rig.dock, [&] { return slot.detail.find("fault:") != std::string::npos; }));
  BOOST_CHECK(slot.phase == dock::SlotPhase::attention);
  BOOST_CHECK_NE(slot.detail.find("does not enumerate after 2 power cycles"), std::string::npos);
  BOOST_CHECK_EQUAL(power.cycles("1-1.11"), 2u);
  BOOST_CHECK(power.is_on("1-1.11"));
}

namespace {

/// After the sync, the docked camera charges (battery rises, polled while docked); then it is
/// undocked and the slot shows empty at once.
asio::awaitable<void> charge_then_undock(UsbDockRig& rig, dock::UsbSlots& slots, hw::UmockdevBus& bus, int& battery_at_sync, int& battery_later) {
  co_await wait_for([&] { return rig.ended >= 1; });
  const auto& slot = rig.dock.slots()[0];
  battery_at_sync = slot.battery_pct;
  co_await wait_for([&] { return slot.battery_pct >= battery_at_sync + 3; });
  battery_later = slot.battery_pct;
  BOOST_CHECK(slot.phase == dock::SlotPhase::done);
  BOOST_CHECK(slot.charging);
  BOOST_CHECK(slot.temperature_c.has_value());
  bus.unplug(12);
  co_await wait_for([&] { return slots.active() == 0; });
  rig.dock.stop();
}

asio::awaitable<void> run_scenario(UsbDockRig& rig, asio::awaitable<void> scenario) {
  co_await (rig.dock.run_uploader() && std::move(scenario));
}

}  // namespace

// A synced camera stays in its session while docked: its status is polled, so the slot shows the
// battery charging; an undock ends the session and empties the slot.
BOOST_AUTO_TEST_CASE(a_docked_camera_is_watched_while_it_charges_and_its_undock_is_seen) {
  test::TempDir dir;
  hw::UmockdevBus bus;
  auto s = spec("BC-CHG1", 1, kMiB);
  s.battery_pct = 60;
  hw::CameraDevice cam(s);
  bus.plug(12, cam);
  UsbDockRig rig(dir, 1, std::chrono::milliseconds(5000), std::chrono::milliseconds(20));
  dock::UsbSlots slots(rig.dock, rig.usb, {{"1-1.12", 1}}, usb::CameraMatch{}, {});
  rig.watch(slots);
  slots.start();
  int at_sync = -1, later = -1;
  test::run_with_watchdog(rig.ioc, run_scenario(rig, charge_then_undock(rig, slots, bus, at_sync, later)));
  BOOST_TEST_MESSAGE("battery at sync " << at_sync << "%, later " << later << "%");
  BOOST_CHECK_GE(later, at_sync + 3);
  BOOST_CHECK(rig.dock.slots()[0].phase == dock::SlotPhase::empty);
  BOOST_REQUIRE_EQUAL(rig.ends.size(), 1u);
  BOOST_CHECK(rig.ends[0].end == SessionEnd::done);
  BOOST_CHECK_EQUAL(cam.erased().size(), 1u);
}

// A camera that overheats and cannot stop charging gets its port switched off (footage stays on
// it; nothing erased), and the slot shows a fault until an admin acts.
BOOST_AUTO_TEST_CASE(a_camera_that_overheats_and_keeps_charging_has_its_port_switched_off) {
  test::TempDir dir;
  hw::UmockdevBus bus;
  hw::CameraDevice cam(spec("BC-CHG2", 2, kMiB));
  cam.faults().charge_heat_dc = 200;
  cam.faults().charger_uncontrollable = true;
  bus.plug(13, cam);
  UsbDockRig rig(dir, 1);
  hw::VirtualPortPower power;
  power.on_change = [&](const std::string&, bool on) {
    if (!on) bus.unplug(13);
  };
  dock::UsbSlots slots(rig.dock, rig.usb, {{"1-1.13", 1}}, usb::CameraMatch{}, {});
  dock::UsbSlots::PowerPolicy policy;
  policy.enumerate_timeout = std::chrono::milliseconds(50);
  slots.set_port_power(&power, policy);
  rig.watch(slots);
  slots.start();
  rig.run_until_ended(1);
  BOOST_REQUIRE_EQUAL(rig.ends.size(), 1u);
  BOOST_CHECK(rig.ends[0].end == SessionEnd::overheated);
  BOOST_CHECK(!power.is_on("1-1.13"));
  BOOST_CHECK_EQUAL(power.cycles("1-1.13"), 1u);
  BOOST_CHECK(cam.erased().empty());
  const auto& slot = rig.dock.slots()[0];
  BOOST_CHECK(slot.phase == dock::SlotPhase::attention);
  BOOST_CHECK_NE(slot.alert.find("port power off"), std::string::npos);
}

// A camera that fails authentication over real USB gets charge-only: its port stays powered (no
// power cycle, no switch-off), nothing is read, and the slot says why.
BOOST_AUTO_TEST_CASE(a_camera_that_fails_authentication_keeps_its_port_powered_and_gives_nothing) {
  test::TempDir dir;
  hw::UmockdevBus bus;
  dock::EmulatedFleet other(dir / "other");
  auto s = spec("BC-FOREIGN", 2, kMiB);
  s.trust = other.camera("BC-FOREIGN", "officer-x");
  hw::CameraDevice cam(s);
  bus.plug(14, cam);
  UsbDockRig rig(dir, 1);
  hw::VirtualPortPower power;
  power.on_change = [&](const std::string&, bool on) {
    if (!on) bus.unplug(14);
  };
  dock::UsbSlots slots(rig.dock, rig.usb, {{"1-1.14", 1}}, usb::CameraMatch{}, {});
  dock::UsbSlots::PowerPolicy policy;
  policy.enumerate_timeout = std::chrono::milliseconds(50);
  slots.set_port_power(&power, policy);
  rig.watch(slots);
  slots.start();
  rig.run_until_ended(1);
  BOOST_REQUIRE_EQUAL(rig.ends.size(), 1u);
  BOOST_CHECK(rig.ends[0].end == SessionEnd::charge_only);
  BOOST_CHECK(power.is_on("1-1.14"));
  BOOST_CHECK_EQUAL(power.cycles("1-1.14"), 0u);
  BOOST_CHECK_EQUAL(cam.bytes_served(), 0u);
  BOOST_CHECK(cam.erased().empty());
  BOOST_CHECK(rig.dock.slots()[0].phase == dock::SlotPhase::attention);
  const auto audit = test::slurp_text(dir / "state" / "audit" / "audit.log");
  BOOST_CHECK_MESSAGE(audit.find(R"("camera":"BC-FOREIGN")") != std::string::npos && audit.find(R"("mode":"charge-only")") != std::string::npos,
                      audit);
}
