#include "dock/demo.hpp"

#include "dock/cli.hpp"

#include "dock/config.hpp"
#include "dock/service.hpp"

#include "dock/dock.hpp"
#include "dock/emulated_fleet.hpp"
#include "dock/files.hpp"
#include "dock/lights.hpp"
#include "dock/local_sink.hpp"
#include "dock/s3_sink.hpp"
#include "dock/scenario.hpp"
#include "dock/log.hpp"
#include "dock/usb_slots.hpp"
#include "dock/web/auth.hpp"
#include "dock/web/server.hpp"
#include "dock/web/status.hpp"
#include "dock/web/status_text.hpp"
#include "hw/camera_device.hpp"
#include "hw/emulated_link.hpp"
#include "hw/port_power.hpp"
#include "hw/umockdev_bus.hpp"

#include <boost/asio/co_spawn.hpp>
#include <boost/asio/detached.hpp>
#include <boost/asio/post.hpp>
#include <boost/asio/signal_set.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/asio/use_awaitable.hpp>
#include <boost/json/parse.hpp>
#include <boost/program_options.hpp>

#include <malloc.h>
#include <sys/resource.h>
#include <unistd.h>
#if defined(__SANITIZE_ADDRESS__)
// libasan's allocator statistics (declared in LLVM's sanitizer/allocator_interface.h, which g++
// does not ship).
extern "C" std::size_t __sanitizer_get_current_allocated_bytes();
#endif

#include <algorithm>
#include <chrono>
#include <cerrno>
#include <functional>
#include <cmath>
#include <cstdlib>
#include <csignal>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <iostream>
#include <map>
#include <memory>
#include <optional>
#include <set>
#include <sstream>
#include <system_error>

namespace bodydock::dock {
namespace {

namespace asio = boost::asio;
namespace po = boost::program_options;
using Clock = std::chrono::steady_clock;

constexpr unsigned kMaxSlots = 12;

struct DemoCamera {
  std::unique_ptr<hw::CameraDevice> device;
  std::unique_ptr<hw::EmulatedLink> link;
  std::map<unsigned, hw::LinkFaults> link_faults;  ///< by docking, 0 = the first
  const ScenarioCamera* scenario = nullptr;       ///< --scenario: how this camera is described
  /// What the dock reported about it while docked (scenario expectations check these).
  int last_battery = -1;
  std::optional<double> max_temperature_c;
  std::set<std::string> alerts;
  bool enumerates_after_power_cycle = false;  ///< attached but invisible on the bus until its port is cycled
  bool power_cycled = false;                  ///< an admin switched its slot off and on (in-process lane)
  std::optional<SessionEnd> end;
};

struct DemoRun {
  asio::io_context ioc;
  std::unique_ptr<EmulatedFleet> world;
  bool over_usb = false;
  std::unique_ptr<asio::thread_pool> sink_pool;
  std::unique_ptr<s3::Client> s3_client;
  std::shared_ptr<s3::RateLimiter> limiter;  ///< changed in place by a reload
  std::unique_ptr<Sink> sink;
  std::unique_ptr<Dock> dock;
  std::unique_ptr<web::WebServer> web;
  std::unique_ptr<SlotLights> lights;
  std::vector<DemoCamera> cameras;
  // --usb emulated-libusb: the bus must exist before libusb starts (it redirects sysfs and
  // /dev), and outlive it.
  std::unique_ptr<hw::UmockdevBus> bus;
  std::unique_ptr<usb::UsbContext> usb;
  std::unique_ptr<UsbSlots> usb_slots;
  std::unique_ptr<hw::HubPortPower> port_power;
  std::vector<unsigned> usb_dockings;
  unsigned redockings = 3;  ///< times an unplugged camera is put back
  // --shifts: shift changes played on the USB lane; every camera records a new shift between two.
  unsigned shifts = 1;
  unsigned shift = 1;  ///< the one being synced
  unsigned shift_segments = 0;
  std::chrono::steady_clock::time_point shift_began = std::chrono::steady_clock::now();
  unsigned ended = 0;
  unsigned sessions_running = 0;  ///< in-process lane; the USB lane counts its links
  bool exit_when_idle = false;
  bool stopping = false;
  bool interrupted = false;
};

/// A bad value on the command line: the message names the option.
struct UsageError : std::runtime_error {
  using std::runtime_error::runtime_error;
};

std::uint64_t parse_count(const std::string& what, const std::string& text) {
  const auto v = whole_number(text);
  if (!v) throw UsageError(what + ": '" + text + "' is not a whole number");
  return *v;
}

/// --fault slot=N,unplug-at=BYTES | hang-at=BYTES | corrupt=SEQ:CHUNK[:TIMES|always] | no-enumerate
///         | overheat (the battery heats past the limit while charging) | charger-stuck (and cannot stop)
void apply_fault(DemoRun& run, const std::string& spec) {
  std::istringstream in(spec);
  std::string item;
  std::optional<unsigned> slot;
  std::vector<std::pair<std::string, std::string>> kv;
  while (std::getline(in, item, ',')) {
    const auto eq = item.find('=');
    if (item == "no-enumerate" || item == "overheat" || item == "charger-stuck") {
      kv.emplace_back(item, "");
      continue;
    }
    // NOLINTNEXTLINE(performance-inefficient-string-concatenation): a usage error's message, built once to throw
    if (eq == std::string::npos) throw UsageError("--fault " + spec + ": '" + item + "' is not key=value");
    kv.emplace_back(item.substr(0, eq), item.substr(eq + 1));
    if (kv.back().first == "slot") slot = static_cast<unsigned>(parse_count("--fault slot", kv.back().second));
  }
  if (!slot || *slot == 0 || *slot > run.cameras.size()) throw UsageError("--fault " + spec + ": needs slot=1.." + std::to_string(run.cameras.size()));
  auto& cam = run.cameras[*slot - 1];
  for (const auto& [k, v] : kv) {
    if (k == "slot") continue;
    if (k == "unplug-at") {
      cam.link_faults[0].unplug_after_bytes = parse_count("--fault unplug-at", v);
    } else if (k == "hang-at") {
      cam.link_faults[0].hang_after_bytes = parse_count("--fault hang-at", v);
    } else if (k == "corrupt") {
      std::istringstream parts(v);
      std::string seq, chunk, times = "1";
      std::getline(parts, seq, ':');
      std::getline(parts, chunk, ':');
      std::getline(parts, times, ':');
      const auto n = times == "always" ? 0xFFFFFFFFu : static_cast<std::uint32_t>(parse_count("--fault corrupt times", times));
      cam.device->faults().corrupt_chunk[{parse_count("--fault corrupt seq", seq), parse_count("--fault corrupt chunk", chunk)}] = n;
    } else if (k == "overheat") {
      cam.device->faults().charge_heat_dc = 200;  // +20 C while charging: over the 45 C limit
    } else if (k == "charger-stuck") {
      cam.device->faults().charge_heat_dc = 200;
      cam.device->faults().charger_uncontrollable = true;
    } else if (k == "no-enumerate") {
      if (!run.over_usb) throw UsageError("--fault " + spec + ": no-enumerate needs --usb emulated-libusb");
      cam.enumerates_after_power_cycle = true;
    } else {
      // NOLINTNEXTLINE(performance-inefficient-string-concatenation): a usage error's message, built once to throw
      throw UsageError("--fault " + spec + ": unknown fault '" + k + "' (unplug-at, hang-at, corrupt, no-enumerate, overheat, charger-stuck)");
    }
  }
}

/// The live table: the same text as `dockctl status`, from the dock's own view (the spool's
/// figures need the database, so the table leaves them to the web page and dockctl).
std::string render_table(const Dock& dock) {
  web::Snapshot snap;
  snap.unix_ms = std::chrono::duration_cast<std::chrono::milliseconds>(std::chrono::system_clock::now().time_since_epoch()).count();
  snap.queue.counts[SegState::spooled] = dock.uplink().queued;
  snap.queue.spooled_bytes = dock.uplink().queued_bytes;
  static const web::RateHistory no_history;
  auto st = web::status_json(dock, snap, no_history, Log::recent_entries(6));
  st.erase("spool");
  st.erase("quarantine");
  return web::render_status_text(st, true);
}

asio::awaitable<void> refresh_table(DemoRun& run) {
  std::size_t last_lines = 0;
  asio::steady_timer timer(run.ioc);
  for (;;) {
    const auto text = render_table(*run.dock);
    if (last_lines) std::cout << "\x1b[" << last_lines << "F";
    std::cout << "\x1b[J" << text << std::flush;
    last_lines = static_cast<std::size_t>(std::count(text.begin(), text.end(), '\n'));
    if (run.stopping) co_return;
    timer.expires_after(std::chrono::milliseconds(250));
    co_await timer.async_wait(asio::use_awaitable);
  }
}

/// Lets sessions see their links close and finish (transfers cancelled and handed back), then
/// stops the loop; bounded so a wedged device cannot hold up a service stop.
asio::awaitable<void> drain_and_stop(DemoRun& run) {
  asio::steady_timer tick(run.ioc);
  const auto deadline = Clock::now() + std::chrono::seconds(4);
  while ((run.sessions_running > 0 || (run.usb_slots && run.usb_slots->active() > 0)) && Clock::now() < deadline) {
    tick.expires_after(std::chrono::milliseconds(10));
    co_await tick.async_wait(asio::use_awaitable);
  }
  // What the dock recorded of this run goes to storage too, if storage is there.
  co_await run.dock->flush_records(std::chrono::seconds(5));
  run.ioc.stop();
}

void finish(DemoRun& run) {
  if (run.stopping) return;
  run.stopping = true;
  run.dock->stop();
  if (run.web) run.web->stop();
  if (run.lights) run.lights->stop();
  for (auto& c : run.cameras)
    if (c.link) c.link->close();
  if (run.usb_slots) run.usb_slots->close_all();
  asio::co_spawn(run.ioc, drain_and_stop(run), asio::detached);
}

asio::awaitable<void> run_slot(DemoRun& run, unsigned index) {
  auto& cam = run.cameras[index];
  for (unsigned docking = 0;; ++docking) {
    const auto known = cam.link_faults.find(docking);
    const auto faults = known == cam.link_faults.end() ? hw::LinkFaults{} : known->second;
    cam.link = std::make_unique<hw::EmulatedLink>(run.ioc.get_executor(), *cam.device, "emulated:" + std::to_string(index + 1), faults);
    ++run.sessions_running;
    cam.end = co_await run.dock->run_session(index + 1, *cam.link);
    --run.sessions_running;
    if (cam.power_cycled && !run.stopping) {
      cam.power_cycled = false;
      asio::steady_timer off(run.ioc, std::chrono::milliseconds(300));
      co_await off.async_wait(asio::use_awaitable);
      log(Level::notice, "slot ", index + 1, ": port on again");
      --docking;
      continue;
    }
    // An officer who pulled the camera early puts it back: the next docking resumes.
    if (*cam.end == SessionEnd::unplugged && docking < run.redockings && !run.stopping) {
      asio::steady_timer pause(run.ioc, std::chrono::milliseconds(300));
      co_await pause.async_wait(asio::use_awaitable);
      log(Level::notice, "slot ", index + 1, ": camera docked again");
      continue;
    }
    break;
  }
  if (++run.ended == run.cameras.size() && run.exit_when_idle) finish(run);
}

/// Bytes in the regular files under `dir` (0 when it is missing).
std::uint64_t bytes_under(const std::filesystem::path& dir) {
  std::uint64_t total = 0;
  std::error_code ec;
  for (std::filesystem::recursive_directory_iterator it(dir, ec), end; !ec && it != end; it.increment(ec))
    if (it->is_regular_file(ec)) total += it->file_size(ec);
  return total;
}

/// What this process and its state directory hold once every camera of a shift is done: the
/// figures a soak run (tests/soak/run) follows from shift to shift. One line, `soak:` first.
/// Bytes the allocator has handed out and not got back: what the process holds, without the
/// allocator's own caches (and, in the test build, ASan's quarantine of freed blocks).
std::uint64_t live_heap_bytes() {
#if defined(__SANITIZE_ADDRESS__)
  return __sanitizer_get_current_allocated_bytes();
#else
  const auto mi = ::mallinfo2();
  return mi.uordblks + mi.hblkhd;
#endif
}

void log_footprint(const DemoRun& run) {
  std::uint64_t rss_kib = 0;
  std::ifstream status("/proc/self/status");
  for (std::string line; std::getline(status, line);)
    if (line.starts_with("VmRSS:")) rss_kib = std::strtoull(line.c_str() + 6, nullptr, 10);
  std::size_t fds = 0;
  std::error_code ec;
  for (std::filesystem::directory_iterator it("/proc/self/fd", ec), end; !ec && it != end; it.increment(ec)) ++fds;
  const auto& dir = run.dock->config().state_dir;
  std::uint64_t db = 0;
  for (const char* f : {"dock.sqlite", "dock.sqlite-wal"}) {
    const auto size = std::filesystem::file_size(dir / f, ec);
    if (!ec) db += size;
  }
  const std::chrono::duration<double> took = std::chrono::steady_clock::now() - run.shift_began;
  log(Level::notice, "soak: shift ", run.shift, " of ", run.shifts, " done in ", took.count(), " s: rss ", rss_kib, " KiB, heap ", live_heap_bytes() >> 10,
      " KiB, fds ", fds,
      ", state db ", db, " B, spool ", bytes_under(dir / "spool"), " B, audit log ", bytes_under(dir / "audit"), " B");
}

/// The next shift: every camera is taken out, records new footage, and is docked again once
/// all its sessions are over.
asio::awaitable<void> next_shift(DemoRun& run) {
  run.ended = 0;
  ++run.shift;
  for (unsigned slot = 1; slot <= run.cameras.size(); ++slot) run.bus->unplug(slot);
  asio::steady_timer tick(run.ioc);
  do {
    tick.expires_after(std::chrono::milliseconds(50));
    co_await tick.async_wait(asio::use_awaitable);
  } while (run.usb_slots->active() > 0 && !run.stopping);
  if (run.stopping) co_return;
  run.shift_began = std::chrono::steady_clock::now();
  for (unsigned i = 0; i < run.cameras.size(); ++i) {
    run.cameras[i].device->record_shift(run.shift_segments);
    run.usb_dockings[i] = 1;
    run.bus->plug(i + 1, *run.cameras[i].device);
  }
  log(Level::notice, "demo: shift ", run.shift, " of ", run.shifts, ": ", run.cameras.size(), " cameras docked again");
}

/// --usb emulated-libusb: every camera on its own hub port (1-1.<slot>), found through libusb
/// hotplug; an unplugged camera is put back a moment later, like an officer would.
void start_usb(DemoRun& run, usb::UsbLinkOptions link_options) {
  std::map<std::string, unsigned> board;
  for (unsigned i = 0; i < run.cameras.size(); ++i) {
    board["1-1." + std::to_string(i + 1)] = i + 1;
    if (run.cameras[i].enumerates_after_power_cycle) {
      run.bus->attach_unenumerated(i + 1);
      continue;
    }
    run.bus->plug(i + 1, *run.cameras[i].device);
    const auto& first = run.cameras[i].link_faults[0];
    if (first.unplug_after_bytes) run.bus->unplug_after(i + 1, *first.unplug_after_bytes);
    if (first.hang_after_bytes) run.bus->hang_after(i + 1, *first.hang_after_bytes);
  }
  run.usb_dockings.assign(run.cameras.size(), 1);
  usb::CameraMatch match;
  match.vid_pid = {{hw::UsbIdentity{}.vid, hw::UsbIdentity{}.pid}};
  run.usb_slots = std::make_unique<UsbSlots>(*run.dock, *run.usb, board, match, link_options);
  // Port power through the emulated hub's class requests, as on a real hub: switching a port
  // off pulls the emulated camera, on plugs it back (the hook runs on umockdev's thread).
  run.bus->on_port_power([&run](unsigned port, bool on) {
    asio::post(run.ioc, [&run, port, on] {
      if (port == 0 || port > run.cameras.size()) return;
      if (!on) run.bus->unplug(port);
      else if (!run.stopping) run.bus->plug(port, *run.cameras[port - 1].device);
    });
  });
  run.port_power = std::make_unique<hw::HubPortPower>(run.usb->get());
  UsbSlots::PowerPolicy policy;
  policy.off_time = std::chrono::milliseconds(300);
  policy.enumerate_timeout = std::chrono::milliseconds(1500);
  run.usb_slots->set_port_power(run.port_power.get(), policy);
  // A full disk in a demo (the chaos runs) clears in seconds: try again soon.
  run.usb_slots->set_fault_retry({std::chrono::milliseconds(1000), std::chrono::milliseconds(8000)});
  run.usb_slots->on_session_end = [&run](unsigned slot, SessionEnd end, bool retrying) {
    run.cameras[slot - 1].end = end;
    if (retrying) return;  // power cycle under way: the camera comes back
    if (end == SessionEnd::unplugged && run.usb_dockings[slot - 1] <= run.redockings && !run.stopping) {
      ++run.usb_dockings[slot - 1];
      run.bus->unplug(slot);  // the removal reaches hotplug; then the camera goes back in
      auto timer = std::make_shared<asio::steady_timer>(run.ioc, std::chrono::milliseconds(300));
      timer->async_wait([&run, slot, timer](const boost::system::error_code& ec) {
        if (ec || run.stopping) return;
        log(Level::notice, "slot ", slot, ": camera docked again");
        run.bus->plug(slot, *run.cameras[slot - 1].device);
      });
      return;
    }
    if (++run.ended < run.cameras.size()) return;
    if (run.shifts > 1) log_footprint(run);
    if (run.shift < run.shifts && !run.stopping)
      asio::co_spawn(run.ioc, next_shift(run), [](const std::exception_ptr& e) { log_if_failed("next shift", e); });
    else if (run.exit_when_idle)
      finish(run);
  };
  run.usb_slots->start();
}

double cpu_seconds() {
  rusage ru{};
  getrusage(RUSAGE_SELF, &ru);
  return static_cast<double>(ru.ru_utime.tv_sec + ru.ru_stime.tv_sec) + static_cast<double>(ru.ru_utime.tv_usec + ru.ru_stime.tv_usec) / 1e6;
}

long peak_rss_kib() {
  rusage ru{};
  getrusage(RUSAGE_SELF, &ru);
  return ru.ru_maxrss;
}

/// The demo brings its own bucket (with Object Lock) when it is not there yet; a production
/// dock is given one.
void ensure_bucket(DemoRun& run, const std::string& bucket) {
  std::optional<s3::Client::Result> answer;
  bool done = false;
  asio::co_spawn(run.ioc, run.s3_client->create_bucket(bucket, true), [&answer, &done](const std::exception_ptr& e, s3::Client::Result r) {
    done = true;
    if (e) std::rethrow_exception(e);
    answer = std::move(r);
  });
  // Until this answer, not until the loop runs dry: the USB lane's bus watch is already on it
  // and never finishes.
  while (!done && run.ioc.run_one() > 0) {
  }
  if (run.ioc.stopped()) run.ioc.restart();
  // Storage down or refusing at start is no reason not to serve the cameras: footage waits in
  // the spool and on the cameras, and the upload queue retries, or holds with an alert.
  if (!answer || !*answer) {
    log(Level::warning, "demo: storage unreachable at start (", answer ? answer->error().message() : std::string("no answer"),
        "); footage waits in the spool until it answers");
    return;
  }
  const auto& r = **answer;
  if (!r.ok() && r.error_code() != "BucketAlreadyOwnedByYou" && r.error_code() != "BucketAlreadyExists")
    log(Level::warning, "demo: cannot create bucket '", bucket, "': HTTP ", r.status, " ", r.error_code());
}

/// The demo's first admin account, as an installer would make it: a random password, written
/// to a file only the dock's user can read, never to the log.
void make_demo_admin(const std::filesystem::path& accounts, const std::filesystem::path& password_file) {
  const auto raw = proto::crypto::random_bytes(12);
  static const char* kAlphabet = "abcdefghijkmnpqrstuvwxyzABCDEFGHJKLMNPQRSTUVWXYZ23456789";
  std::string password;
  for (auto b : raw) password += kAlphabet[b % 56];
  web::AccountStore store;
  store.set("admin", web::Role::admin, password);
  store.save(accounts);
  if (auto ec = write_file_atomic(password_file, password + "\n", 0600))
    throw std::runtime_error("cannot write " + password_file.string() + ": " + ec.message());
}

void start_web(DemoRun& run, const std::string& listen, bool tls, bool private_status, const std::string& accounts,
               const std::filesystem::path& state, const std::string& control) {
  web::WebOptions o;
  o.listen_tcp = !listen.empty();
  o.control_socket = control;
  try {
    if (o.listen_tcp) std::tie(o.address, o.port) = web::parse_listen(listen);
  } catch (const std::invalid_argument& e) {
    throw UsageError(std::string("--web: ") + e.what());
  }
  if (tls) {
    o.tls_cert = state / "trust" / "dock.crt";
    o.tls_key = state / "trust" / "dock.key";
  }
  o.status_public = !private_status;
  o.accounts_file = accounts.empty() ? state / "web-accounts" : std::filesystem::path(accounts);
  if (o.listen_tcp && accounts.empty() && !std::filesystem::exists(o.accounts_file)) {
    make_demo_admin(o.accounts_file, state / "web-admin-password");
    log(Level::notice, "demo: web page account 'admin' made; its password is in ", (state / "web-admin-password").string());
  }
  web::AdminHooks hooks;
  hooks.power_cycle = [&run](unsigned slot) -> std::optional<std::string> {
    if (run.usb_slots) return run.usb_slots->request_power_cycle(slot);
    auto& cam = run.cameras.at(slot - 1);
    if (!cam.link) return "slot " + std::to_string(slot) + " has no camera";
    cam.power_cycled = true;
    log(Level::notice, "slot ", slot, ": port switched off by an admin");
    cam.link->close();
    return std::nullopt;
  };
  run.web = std::make_unique<web::WebServer>(run.ioc, *run.dock, std::move(o), std::move(hooks));
}

// --- scenarios (dock/scenario.hpp, tests/scenarios/README.md) --------------------------------

/// Refuses a scenario the chosen lane cannot play, naming the file, line and lane.
[[noreturn]] void refuse_fault(const Scenario& sc, const ScenarioFault& f, const std::string& why) {
  throw UsageError(sc.file.string() + ":" + std::to_string(f.line) + ": kind = \"" + fault_kind_name(f.kind) + "\": " + why);
}

/// Puts a scenario camera's faults into its device model and its links.
void apply_scenario_faults(DemoRun& run, const Scenario& sc, DemoCamera& cam) {
  const auto& c = *cam.scenario;
  const auto& recorded = cam.device->recorded();
  for (const auto& f : c.faults) {
    if (f.docking - 1 > run.redockings)
      refuse_fault(sc, f, "docking " + std::to_string(f.docking) + " never comes: an unplugged camera is put back at most " +
                              std::to_string(run.redockings) + " times ([dock] redockings)");
    auto& link = cam.link_faults[f.docking - 1];
    const bool link_fault = f.kind == FaultKind::unplug || f.kind == FaultKind::stall || f.kind == FaultKind::hang ||
                            f.kind == FaultKind::short_packets || f.kind == FaultKind::slow_link || f.kind == FaultKind::malformed_frame ||
                            f.kind == FaultKind::flood;
    if (link_fault && run.over_usb) {
      if (f.kind != FaultKind::unplug && f.kind != FaultKind::hang)
        refuse_fault(sc, f, "not available on the emulated-libusb lane (in-process only)");
      if (f.docking != 1) refuse_fault(sc, f, "on the emulated-libusb lane only at the first docking (docking = 1)");
    }
    switch (f.kind) {
      case FaultKind::unplug: link.unplug_after_bytes = f.at_byte; break;
      case FaultKind::hang: link.hang_after_bytes = f.at_byte; break;
      case FaultKind::stall:
        link.stall_after_bytes = f.at_byte;
        link.stall_time = std::chrono::milliseconds(f.stall_ms);
        break;
      case FaultKind::short_packets: link.max_in_transfer = f.max_bytes; break;
      case FaultKind::slow_link: link.in_mbps = f.mbps; break;
      case FaultKind::malformed_frame: link.garbage_at_bytes = f.at_byte; break;
      case FaultKind::flood: link.flood_after_bytes = f.at_byte; break;
      case FaultKind::bit_flip: {
        const auto& m = recorded.at(f.segment - 1);
        if (f.chunk >= m.chunk_count())
          refuse_fault(sc, f, "segment " + std::to_string(f.segment) + " has chunks 0.." + std::to_string(m.chunk_count() - 1));
        cam.device->faults().corrupt_chunk[{f.segment, f.chunk}] = f.times == 0 ? 0xFFFFFFFFu : f.times;
        break;
      }
      case FaultKind::broken_chain: cam.device->faults().hide_from_list.insert(f.segment); break;
      case FaultKind::bad_signature: cam.device->faults().bad_signature.insert(f.segment); break;
      case FaultKind::no_enumerate:
        if (!run.over_usb) refuse_fault(sc, f, "needs the emulated-libusb lane (--usb emulated-libusb): in-process there is no bus to enumerate on");
        cam.enumerates_after_power_cycle = true;
        break;
      case FaultKind::overheat: cam.device->faults().charge_heat_dc = 200; break;
      case FaultKind::charger_stuck:
        cam.device->faults().charge_heat_dc = 200;
        cam.device->faults().charger_uncontrollable = true;
        break;
      case FaultKind::replay_auth: cam.device->faults().replay_auth = true; break;
    }
  }
}

/// Notes what the dock shows for each slot, for the expectations on battery, temperature and
/// alerts (the same figures the web page and dockctl status show).
void sample_slots(DemoRun& run) {
  for (std::size_t i = 0; i < run.cameras.size() && i < run.dock->slots().size(); ++i) {
    const auto& s = run.dock->slots()[i];
    auto& cam = run.cameras[i];
    if (s.serial != cam.device->spec().serial) continue;
    if (s.battery_pct >= 0) cam.last_battery = s.battery_pct;
    if (s.temperature_c && (!cam.max_temperature_c || *s.temperature_c > *cam.max_temperature_c)) cam.max_temperature_c = s.temperature_c;
    if (!s.alert.empty()) cam.alerts.insert(s.alert);
  }
}

asio::awaitable<void> watch_slots(DemoRun& run) {
  asio::steady_timer tick(run.ioc);
  while (!run.stopping) {
    sample_slots(run);
    tick.expires_after(std::chrono::milliseconds(20));
    co_await tick.async_wait(asio::use_awaitable);
  }
}

/// A session end as scenario files spell it.
const char* scenario_end_name(SessionEnd e) {
  switch (e) {
    case SessionEnd::done: return "done";
    case SessionEnd::attention: return "attention";
    case SessionEnd::unplugged: return "unplugged";
    case SessionEnd::failed: return "failed";
    case SessionEnd::unresponsive: return "unresponsive";
    case SessionEnd::overheated: return "overheated";
    case SessionEnd::charge_only: return "charge_only";
    case SessionEnd::dock_fault: return "dock_fault";
  }
  return "?";
}

/// What the audit log says about one camera: segments per event, dockings, the clock offset.
struct AuditFacts {
  std::map<std::string, std::set<std::uint64_t>> segments;  ///< event -> segments
  std::map<std::string, unsigned> segment_entries;          ///< event -> entries about a segment (a segment stored twice counts twice)
  std::map<std::string, unsigned> events;                   ///< event -> entries
  std::optional<std::int64_t> clock_off_ms;                 ///< largest |camera minus dock| audited
};

std::map<std::string, AuditFacts> read_audit_facts(const std::filesystem::path& file) {
  std::map<std::string, AuditFacts> out;
  std::ifstream in(file);
  std::string line;
  while (std::getline(in, line)) {
    boost::system::error_code ec;
    const auto v = boost::json::parse(line, ec);
    if (ec || !v.is_object()) continue;
    const auto& o = v.as_object();
    const auto* camera = o.if_contains("camera");
    const auto* event = o.if_contains("event");
    if (!event || !event->is_string()) continue;
    auto& facts = out[camera && camera->is_string() ? std::string(camera->as_string()) : std::string()];
    const std::string ev(event->as_string());
    ++facts.events[ev];
    if (const auto* seg = o.if_contains("segment"); seg && (seg->is_int64() || seg->is_uint64())) {
      facts.segments[ev].insert(seg->is_uint64() ? seg->as_uint64() : static_cast<std::uint64_t>(seg->as_int64()));
      ++facts.segment_entries[ev];
    }
    if (ev != "clock") continue;
    const auto* d = o.if_contains("details");
    const auto* off = d && d->is_object() ? d->as_object().if_contains("camera_minus_dock_ms") : nullptr;
    if (off && off->is_int64()) {
      const auto abs_off = std::llabs(off->as_int64());
      if (!facts.clock_off_ms || abs_off > *facts.clock_off_ms) facts.clock_off_ms = abs_off;
    }
  }
  return out;
}

/// Checks a scenario's expectations after the run, printing each; true when all hold.
bool check_expectations(const DemoRun& run, const Scenario& sc, double seconds) {
  auto facts = read_audit_facts(run.dock->config().state_dir / "audit" / "audit.log");
  unsigned failed = 0, checked = 0;
  auto report = [&](const std::string& what, bool ok, const std::string& got) {
    ++checked;
    failed += ok ? 0 : 1;
    std::printf("scenario check %-52s %s (%s)\n", what.c_str(), ok ? "pass" : "FAIL", got.c_str());
  };
  auto count = [&](const std::string& what, std::optional<std::uint64_t> want, std::uint64_t got) {
    if (want) report(what + " = " + std::to_string(*want), got == *want, "got " + std::to_string(got));
  };
  auto has_event = [&](const AuditFacts& f, const std::string& ev) { return f.events.contains(ev); };
  std::uint64_t stored = 0, erased = 0, quarantined = 0;
  for (const auto& cam : run.cameras) {
    const auto& c = *cam.scenario;
    const auto& e = c.expect;
    auto& f = facts[c.serial];
    const auto& recorded = cam.device->recorded();
    std::uint64_t on_camera = 0;
    for (const auto& m : recorded) on_camera += cam.device->is_erased(m.seq) ? 0 : 1;
    // Entries, not distinct segments: a segment stored twice must fail "stored".
    const std::uint64_t n_stored = f.segment_entries["stored"], n_quarantined = f.segments["quarantined"].size();
    const auto n_erased = cam.device->erased().size();
    stored += n_stored;
    erased += n_erased;
    quarantined += n_quarantined;
    const auto who = c.serial + " ";
    count(who + "stored", e.stored, n_stored);
    count(who + "erased", e.erased, n_erased);
    count(who + "left_on_camera", e.left_on_camera, on_camera);
    count(who + "quarantined", e.quarantined, n_quarantined);
    if (e.dockings) count(who + "dockings", std::uint64_t{*e.dockings}, f.events["docking"]);
    if (e.session_end) {
      const std::string got = cam.end ? scenario_end_name(*cam.end) : "none";
      report(who + "session_end = " + *e.session_end, got == *e.session_end, "got " + got);
    }
    for (const auto& ev : e.audit)
      // NOLINTNEXTLINE(performance-inefficient-string-concatenation): one line of the end-of-run report per expectation
      report(who + "audit has \"" + ev + "\"", has_event(f, ev), has_event(f, ev) ? "seen" : "not in the audit log");
    for (const auto& ev : e.no_audit)
      // NOLINTNEXTLINE(performance-inefficient-string-concatenation): one line of the end-of-run report per expectation
      report(who + "audit has no \"" + ev + "\"", !has_event(f, ev), has_event(f, ev) ? std::to_string(f.events[ev]) + " entries" : "none");
    if (e.alert) {
      bool seen = false;
      std::string all;
      for (const auto& a : cam.alerts) {
        seen = seen || a.find(*e.alert) != std::string::npos;
        all += (all.empty() ? "" : "; ") + a;
      }
      report(who + "alert contains \"" + *e.alert + "\"", seen, all.empty() ? "no alert" : all);
    }
    if (e.battery_min) report(who + "battery_min = " + std::to_string(*e.battery_min), cam.last_battery >= *e.battery_min, "last reported " + std::to_string(cam.last_battery) + "%");
    if (e.temperature_min_c) {
      char want[32], got[32];
      std::snprintf(want, sizeof want, "%.1f", *e.temperature_min_c);
      std::snprintf(got, sizeof got, "%.1f C", cam.max_temperature_c.value_or(-273.0));
      report(who + "temperature_min_c = " + want, cam.max_temperature_c && *cam.max_temperature_c >= *e.temperature_min_c - 1e-9,
             cam.max_temperature_c ? std::string("highest reported ") + got : "never reported");
    }
    if (e.clock_off_min_ms)
      report(who + "clock_off_min_ms = " + std::to_string(*e.clock_off_min_ms), f.clock_off_ms && *f.clock_off_ms >= *e.clock_off_min_ms,
             f.clock_off_ms ? "audited " + std::to_string(*f.clock_off_ms) + " ms" : "no clock entry");
  }
  const auto& x = sc.expect;
  count("stored (all cameras)", x.stored, stored);
  count("erased (all cameras)", x.erased, erased);
  count("quarantined (all cameras)", x.quarantined, quarantined);
  for (const auto& ev : x.audit) {
    bool seen = false;
    for (const auto& [serial, f] : facts) seen = seen || f.events.contains(ev);
    report("audit has \"" + ev + "\"", seen, seen ? "seen" : "not in the audit log");
  }
  if (x.max_seconds) {
    char want[32], got[32];
    std::snprintf(want, sizeof want, "%.2f", *x.max_seconds);
    std::snprintf(got, sizeof got, "%.2f s", seconds);
    report(std::string("max_seconds = ") + want, seconds <= *x.max_seconds, got);
  }
  if (x.min_seconds) {
    char want[32], got[32];
    std::snprintf(want, sizeof want, "%.2f", *x.min_seconds);
    std::snprintf(got, sizeof got, "%.2f s", seconds);
    report(std::string("min_seconds = ") + want, seconds >= *x.min_seconds, got);
  }
  std::printf("scenario \"%s\": %u of %u checks passed%s\n", sc.name.c_str(), checked - failed, checked, failed ? "" : ", all good");
  std::fflush(stdout);
  return failed == 0;
}

constexpr const char* kDemoUsage =
    "usage: dockd demo --cameras N --segments M --segment-mib S --store DIR --state DIR [options]\n"
    "       dockd demo --scenario FILE --store DIR --state DIR [options]";

}  // namespace

int run_demo(const std::vector<std::string>& args) {
  po::options_description opts("dockd demo options");
  unsigned cameras = 0, segments = 0, chunk_kib = 256, inflight = 4, timeout_ms = 5000;
  double segment_mib = 0, spool_limit_mib = 0;
  std::uint64_t seed = 1, purged_retention_s = 30ull * 24 * 3600;
  std::string store, state, world, log_level = "info", retention_mode = "compliance", upload_mbps = "0", upload_schedule;
  unsigned retention_days = 0;
  std::vector<std::string> faults;
  bool exit_when_idle = false, table = false, no_table = false, s3_virtual_host = false, web_tls = false, web_private = false,
       pause_uploads = false;
  std::string web_listen, web_accounts, leds_board, control_socket, config_file, scenario_file;
  std::optional<Scenario> scenario;
  std::string usb_mode = "in-process";
  unsigned usb_transfer_kib = 256, usb_in_flight = 4, s3_part_mib = 16, upload_retry_max_ms = 60000, s3_timeout_ms = 30000, shifts = 1;
  // clang-format off
  opts.add_options()
    ("help", "this text")
    ("cameras", po::value(&cameras), "emulated cameras docked at start, 1..12 (one per slot)")
    ("segments", po::value(&segments), "segments recorded on each camera")
    ("segment-mib", po::value(&segment_mib), "size of each segment in MiB (fractions allowed)")
    ("scenario", po::value(&scenario_file), "play a scenario file instead of --cameras/--segments/--segment-mib/--fault: its cameras, their "
                                             "faults, and at the end its expectations, each printed pass or FAIL; exits 0 only when all "
                                             "hold (implies --exit-when-idle; format in tests/scenarios/README.md)")
    ("store", po::value(&store)->required(), "where footage goes: a local directory (the embedded default sink) or s3://BUCKET[/PREFIX] (endpoint, region and keys from AWS_ENDPOINT_URL, AWS_REGION, AWS_ACCESS_KEY_ID, AWS_SECRET_ACCESS_KEY; for https:// a private CA from AWS_CA_BUNDLE)")
    ("s3-part-mib", po::value(&s3_part_mib), "with --store s3://: multipart part size, MiB (5..1024, default 16)")
    ("retention-days", po::value(&retention_days), "with --store s3://: Object Lock retention put on every object, days (default 0: none; the bucket must have Object Lock)")
    ("retention-mode", po::value(&retention_mode), "with --retention-days: compliance (default: nobody can delete early) or governance (privileged users can)")
    ("s3-virtual-host", po::bool_switch(&s3_virtual_host), "with --store s3://: virtual-host style requests (BUCKET.host) instead of path style")
    ("upload-mbps", po::value(&upload_mbps), "with --store s3://: upload bandwidth cap, MB/s (default 0: none)")
    ("upload-schedule", po::value(&upload_schedule), "with --store s3://: other caps by local time of day, e.g. 06:30-08:00=2,17:00-18:30=2 (MB/s; 0: none)")
    ("s3-timeout-ms", po::value(&s3_timeout_ms), "with --store s3://: deadline for each step of a request (connect, send, answer), ms (default 30000)")
    ("spool-limit-mib", po::value(&spool_limit_mib), "spool high-water mark, MiB: no new segment is pulled while the spool would pass it (default: no limit but the disk)")
    ("upload-retry-max-ms", po::value(&upload_retry_max_ms), "longest wait between two attempts to reach storage, ms (default 60000)")
    ("state", po::value(&state)->required(), "the dock's state directory: database, spool, audit log, its trust directory")
    ("world", po::value(&world), "the emulated world, kept apart from the dock: fleet CA, the organisation's recording key, the cameras' keys and flash (default: the state directory's path + \".world\")")
    ("exit-when-idle", po::bool_switch(&exit_when_idle), "exit 0 once every segment is stored and erased, non-zero otherwise")
    ("purged-retention-s", po::value(&purged_retention_s), "how long the state database keeps the rows of segments erased and purged, "
                                                           "seconds (default 2592000: 30 days); then only the audit log and storage tell their story")
    ("shifts", po::value(&shifts), "with --usb emulated-libusb: shift changes to play, 1..100000 (default 1): once every camera is done, all "
                                   "are taken out, record --segments new segments each and are docked again; a `soak:` line after each "
                                   "shift gives the process's RSS and open files and the state directory's database, spool and audit log sizes")
    ("pause-uploads", po::bool_switch(&pause_uploads), "start with uploads paused, as after `dockctl queue pause`: footage is pulled "
                                                       "and waits in the spool until an operator resumes (dockctl queue resume, the web page)")
    ("seed", po::value(&seed), "seed for the emulated recordings (content and metadata)")
    ("chunk-kib", po::value(&chunk_kib), "chunk size the cameras hash and serve, KiB (default 256)")
    ("reads-in-flight", po::value(&inflight), "READ requests kept queued at a camera (default 4)")
    ("timeout-ms", po::value(&timeout_ms), "deadline for each camera request (default 5000)")
    ("fault", po::value(&faults), "inject a fault: slot=N,unplug-at=BYTES | slot=N,hang-at=BYTES | slot=N,corrupt=SEQ:CHUNK[:TIMES|always] | slot=N,no-enumerate (USB only) | slot=N,overheat | slot=N,charger-stuck")
    ("usb", po::value(&usb_mode), "how cameras connect: in-process (default) or emulated-libusb (every byte through libusb under umockdev)")
    ("usb-transfer-kib", po::value(&usb_transfer_kib), "with --usb emulated-libusb: bytes per IN transfer, KiB (default 256)")
    ("usb-in-flight", po::value(&usb_in_flight), "with --usb emulated-libusb: IN transfers kept submitted (default 4)")
    ("table", po::bool_switch(&table), "live table even when stdout is not a terminal")
    ("no-table", po::bool_switch(&no_table), "plain log lines even on a terminal")
    ("web", po::value(&web_listen), "serve the web page and status API on ADDR:PORT, e.g. 127.0.0.1:8080 (default: no web page)")
    ("web-tls", po::bool_switch(&web_tls), "with --web: HTTPS with the dock's certificate (STATE/trust/dock.crt), for the site LAN")
    ("web-accounts", po::value(&web_accounts), "with --web: the accounts file (NAME:ROLE:SCRYPT-HASH a line; default STATE/web-accounts; "
                                                "when missing, an admin account is made and its password written to STATE/web-admin-password)")
    ("web-private", po::bool_switch(&web_private), "with --web: the status too needs a login (default: anyone who reaches the page sees it)")
    ("control", po::value(&control_socket), "serve dockctl on this Unix socket (made 0660), as dockd run does on /run/bodydock/control.sock")
    ("config", po::value(&config_file), "follow a dockd.toml's runtime settings (log level, [queue] upload_mbps and schedule) instead of "
                                        "--log-level/--upload-mbps/--upload-schedule; SIGHUP reads it again, and the trust directory, "
                                        "as dockd run does")
    ("leds", po::value(&leds_board), "board file whose [leds] table drives real slot LEDs (sysfs LED class or GPIO; format in hw/board-example.toml); default: virtual LEDs, shown on the web page and the live table")
    ("log-level", po::value(&log_level), "error, warning, notice, info, debug (default info)");
  // clang-format on
  DemoRun run;
  try {
    po::variables_map vm;
    po::store(po::command_line_parser(args).options(opts).run(), vm);
    if (vm.count("help")) {
      std::cout << kDemoUsage << "\n\n" << opts << "\n";
      return 0;
    }
    po::notify(vm);
    if (!scenario_file.empty()) {
      if (vm.count("cameras") || vm.count("segments") || vm.count("segment-mib") || !faults.empty())
        throw UsageError("--scenario describes the cameras and their faults: leave out --cameras, --segments, --segment-mib and --fault");
      try {
        scenario = load_scenario(scenario_file);
      } catch (const ScenarioError& e) {
        throw UsageError(std::string("--scenario: ") + e.what());
      }
      cameras = static_cast<unsigned>(scenario->cameras.size());
      segments = 1;
      segment_mib = 1;
      seed = vm.count("seed") ? seed : scenario->seed;
      // The command line wins over the scenario's [dock] table.
      const auto& d = scenario->dock;
      if (d.timeout_ms && !vm.count("timeout-ms")) timeout_ms = *d.timeout_ms;
      if (d.chunk_kib && !vm.count("chunk-kib")) chunk_kib = *d.chunk_kib;
      if (d.reads_in_flight && !vm.count("reads-in-flight")) inflight = *d.reads_in_flight;
      exit_when_idle = true;
    } else if (!vm.count("cameras") || !vm.count("segments") || !vm.count("segment-mib")) {
      throw UsageError("--cameras, --segments and --segment-mib are required (or --scenario FILE)");
    }
    if (cameras < 1 || cameras > kMaxSlots) throw UsageError("--cameras must be 1.." + std::to_string(kMaxSlots));
    if (segments < 1 || segments > 100000) throw UsageError("--segments must be 1..100000");
    if (!(segment_mib > 0) || segment_mib > 4096) throw UsageError("--segment-mib must be above 0 and at most 4096");
    if (chunk_kib < 4 || chunk_kib > 1024) throw UsageError("--chunk-kib must be 4..1024");
    if (inflight < 1 || inflight > 64) throw UsageError("--reads-in-flight must be 1..64");
    if (timeout_ms < 10) throw UsageError("--timeout-ms must be at least 10");
    if (usb_mode != "in-process" && usb_mode != "emulated-libusb") throw UsageError("--usb must be in-process or emulated-libusb");
    if (usb_transfer_kib < 4 || usb_transfer_kib > 4096) throw UsageError("--usb-transfer-kib must be 4..4096");
    if (usb_in_flight < 1 || usb_in_flight > 32) throw UsageError("--usb-in-flight must be 1..32");
    if (s3_part_mib < 5 || s3_part_mib > 1024) throw UsageError("--s3-part-mib must be 5..1024");
    if (s3_timeout_ms < 100) throw UsageError("--s3-timeout-ms must be at least 100");
    if (spool_limit_mib < 0) throw UsageError("--spool-limit-mib must not be negative");
    if (upload_retry_max_ms < 100 || upload_retry_max_ms > 3600000) throw UsageError("--upload-retry-max-ms must be 100..3600000");
    if (shifts < 1 || shifts > 100000) throw UsageError("--shifts must be 1..100000");
    if (purged_retention_s > 10ull * 365 * 24 * 3600) throw UsageError("--purged-retention-s must be at most ten years");
    if (shifts > 1 && (usb_mode != "emulated-libusb" || !scenario_file.empty()))
      throw UsageError("--shifts needs --usb emulated-libusb and --cameras (not --scenario)");
    static const std::map<std::string, Level> levels = {
        {"error", Level::error}, {"warning", Level::warning}, {"notice", Level::notice}, {"info", Level::info}, {"debug", Level::debug}};
    if (!config_file.empty()) {
      try {
        const auto c = load_config(config_file);
        log_level = c.log_level;
        upload_mbps = c.upload_mbps;
        upload_schedule = c.upload_schedule;
      } catch (const std::exception& e) {
        throw UsageError(std::string("--config: ") + e.what());
      }
    }
    if (!levels.contains(log_level)) throw UsageError("--log-level must be error, warning, notice, info or debug");
    Log::set_level(levels.at(log_level));
  } catch (const std::exception& e) {
    std::cerr << "dockd demo: " << e.what() << "\n" << kDemoUsage << "\n(dockd demo --help lists every option)\n";
    return 2;
  }

  const auto segment_bytes = static_cast<std::uint64_t>(segment_mib * (1 << 20));
  run.over_usb = usb_mode == "emulated-libusb";
  if (run.over_usb) {
    std::vector<std::string> argv = {"dockd", "demo"};
    argv.insert(argv.end(), args.begin(), args.end());
    if (!hw::ensure_umockdev_preload(argv)) {
      const std::string why = std::generic_category().message(errno);
      std::cerr << "dockd demo: cannot re-execute with the USB emulation preload: " << why << "\n";
    }
  }
  try {
    if (run.over_usb) {
      run.bus = std::make_unique<hw::UmockdevBus>();
      run.usb = std::make_unique<usb::UsbContext>(run.ioc.get_executor(), [](usb::UsbContext::LogLevel l, std::string_view line) {
        log(l == usb::UsbContext::LogLevel::error ? Level::error : l == usb::UsbContext::LogLevel::warning ? Level::warning : Level::debug, line);
      });
      // The emulated device nodes cannot be polled; the bus says when a transfer may be done.
      run.usb->add_readiness_source(run.bus->readiness_fd());
    }
    // Everything that is not the dock's lives beside it, never in it: the state directory holds
    // no key that could decrypt footage (the camera keys and the recording key are the world's).
    auto state_path = std::filesystem::absolute(state).lexically_normal();
    if (state_path.filename().empty()) state_path = state_path.parent_path();
    const std::filesystem::path world_dir = world.empty() ? std::filesystem::path(state_path.string() + ".world") : std::filesystem::path(world);
    run.world = std::make_unique<EmulatedFleet>(world_dir);
    // Scenario cameras get their keys first: a revoked one must be on the CRL the dock loads.
    std::vector<std::shared_ptr<const hw::CameraTrust>> scenario_trust;
    if (scenario) {
      for (const auto& c : scenario->cameras) {
        auto trust = run.world->camera(c.serial, c.officer);
        if (c.keys == "unenrolled") {
          auto bare = std::make_shared<hw::CameraTrust>(*trust);
          bare->device_cert.clear();  // it holds a key, but no certificate from this fleet
          trust = std::move(bare);
        } else if (c.keys == "revoked") {
          const auto issued = run.world->fleet().list();
          const bool already = std::any_of(issued.begin(), issued.end(), [&](const pki::Issued& x) {
            return x.role == pki::Role::camera && x.name == c.serial && x.revoked;
          });
          if (!already) run.world->fleet().revoke(c.serial, "scenario: camera reported lost");
        }
        scenario_trust.push_back(std::move(trust));
      }
    }
    DockConfig cfg;
    cfg.state_dir = state;
    cfg.identity = run.world->dock("demo-dock", state_path / "trust");
    cfg.slots = cameras;
    cfg.reads_in_flight = inflight;
    cfg.request_timeout = std::chrono::milliseconds(timeout_ms);
    cfg.upload_retry_cap = std::chrono::milliseconds(upload_retry_max_ms);
    cfg.spool_limit_bytes = static_cast<std::uint64_t>(spool_limit_mib * (1 << 20));
    cfg.upload_hold_probe = std::chrono::milliseconds(upload_retry_max_ms);
    cfg.purged_retention = std::chrono::seconds(purged_retention_s);
    if (scenario) {
      if (scenario->dock.status_interval_ms) cfg.status_interval = std::chrono::milliseconds(*scenario->dock.status_interval_ms);
      if (scenario->dock.chunk_retries) cfg.chunk_retries = *scenario->dock.chunk_retries;
      if (scenario->dock.redockings) run.redockings = *scenario->dock.redockings;
    }
    run.exit_when_idle = exit_when_idle;
    run.shifts = shifts;
    run.shift_segments = segments;
    run.sink_pool = std::make_unique<asio::thread_pool>(2);
    if (store.starts_with("s3://")) {
      const auto where = S3Location::parse(store);
      auto need = [](const char* name) {
        const char* v = std::getenv(name);  // NOLINT(concurrency-mt-unsafe): at start-up; no thread of dockd's sets the environment
        if (!v || !*v) throw UsageError(std::string("--store s3://... needs ") + name + " in the environment");
        return std::string(v);
      };
      auto endpoint = s3::Endpoint::parse(need("AWS_ENDPOINT_URL"), need("AWS_REGION"));
      endpoint.path_style = !s3_virtual_host;
      // A private CA for an https:// endpoint, as the AWS tools take it.
      // NOLINTNEXTLINE(concurrency-mt-unsafe): at start-up; no thread of dockd's sets the environment
      if (const char* ca = std::getenv("AWS_CA_BUNDLE"); ca && *ca && endpoint.tls) endpoint.ca_file = ca;
      run.s3_client = std::make_unique<s3::Client>(run.ioc.get_executor(), endpoint,
                                                   s3::Credentials{need("AWS_ACCESS_KEY_ID"), need("AWS_SECRET_ACCESS_KEY"), {}},
                                                   std::chrono::milliseconds(s3_timeout_ms));
      try {
        run.limiter = std::make_shared<s3::RateLimiter>(s3::RateSchedule::parse(upload_mbps, upload_schedule));
        run.s3_client->set_rate_limiter(run.limiter);
      } catch (const std::invalid_argument& e) {
        throw UsageError(std::string("--upload-mbps/--upload-schedule: ") + e.what());
      }
      ensure_bucket(run, where.bucket);
      Retention retention;
      try {
        retention = Retention::make(retention_mode, retention_days);
      } catch (const std::invalid_argument& e) {
        throw UsageError(std::string("--retention-mode/--retention-days: ") + e.what());
      }
      run.sink = std::make_unique<S3Sink>(*run.s3_client, where, *run.sink_pool, std::size_t{s3_part_mib} << 20, retention);
    } else {
      run.sink = std::make_unique<LocalDirSink>(store, *run.sink_pool);
    }
    run.dock = std::make_unique<Dock>(run.ioc, cfg, *run.sink);
    const auto camera_dir = run.world->cameras_dir();
    for (unsigned i = 0; i < cameras; ++i) {
      hw::CameraSpec spec;
      char serial[16];
      std::snprintf(serial, sizeof serial, "BC-%04u", i + 1);
      spec.serial = serial;
      spec.seed = seed;
      spec.segments = segments;
      spec.segment_bytes = segment_bytes;
      spec.chunk_size = chunk_kib * 1024;
      spec.battery_pct = static_cast<std::uint8_t>(20 + (i * 17) % 75);
      char officer[16];
      std::snprintf(officer, sizeof officer, "officer-%04u", 101 + i);
      const ScenarioCamera* described = scenario ? &scenario->cameras[i] : nullptr;
      if (!described) spec.trust = run.world->camera(serial, officer);
      if (described) {
        spec.serial = described->serial;
        spec.model = described->model;
        spec.firmware = described->firmware;
        spec.segment_sizes = described->sizes;
        spec.segments = static_cast<std::uint32_t>(described->sizes.size());
        spec.segment_bytes = described->sizes.empty() ? segment_bytes : described->sizes.front();
        spec.priority_segments = described->priority;
        spec.battery_curve = described->battery;
        spec.temperature_curve = described->temperature_c;
        spec.clock_skew_ms = described->clock_skew_ms;
        spec.clock_drift_ppm = described->clock_drift_ppm;
        spec.trust = scenario_trust[i];
      }
      DemoCamera cam;
      cam.scenario = described;
      cam.device = std::make_unique<hw::CameraDevice>(hw::CameraDevice::open_persistent(spec, camera_dir));
      run.cameras.push_back(std::move(cam));
    }
    for (const auto& f : faults) apply_fault(run, f);
    for (auto& cam : run.cameras)
      if (cam.scenario) apply_scenario_faults(run, *scenario, cam);
    std::unique_ptr<hw::LedBackend> leds;
    if (!leds_board.empty()) {
      try {
        leds = load_led_board(leds_board, run.ioc.get_executor(), log_led_errors());
      } catch (const std::invalid_argument& e) {
        throw UsageError(std::string("--leds: ") + e.what());
      }
    }
    run.lights = std::make_unique<SlotLights>(*run.dock, std::move(leds));
    if (!web_listen.empty() || !control_socket.empty())
      start_web(run, web_listen, web_tls, web_private, web_accounts, state_path, control_socket);
  } catch (const UsageError& e) {
    std::cerr << "dockd demo: " << e.what() << "\n";
    return 2;
  } catch (const std::exception& e) {
    std::cerr << "dockd demo: cannot start: " << e.what() << "\n";
    return 1;
  }

  std::uint64_t on_cameras = 0;
  for (const auto& c : run.cameras)
    for (const auto& m : c.device->recorded())
      if (!c.device->is_erased(m.seq)) on_cameras += m.size;
  log(Level::notice, "demo: ", cameras, " emulated cameras docked, ", on_cameras / (1 << 20), " MiB to sync into ", run.sink->describe());
  log(Level::notice, "demo: fleet, recording key and emulated cameras in ", run.world->dir().string(),
      " (decrypt with dockctl evidence decrypt SEGMENT --key ", run.world->recording_key_file().string(), " --purpose ...)");

  const bool live_table = (table || ::isatty(STDOUT_FILENO) == 1) && !no_table;
  if (live_table) Log::set_quiet(true);
  auto log_failure = [](const char* what) { return [what](const std::exception_ptr& e) { log_if_failed(what, e); }; };
  asio::signal_set signals(run.ioc, SIGINT, SIGTERM, SIGHUP);
  std::function<void(const boost::system::error_code&, int)> on_signal = [&](const boost::system::error_code& ec, int sig) {
    if (ec) return;
    if (sig == SIGHUP) {
      try {
        if (!config_file.empty()) {
          apply_reload(load_config(config_file), run.limiter.get(), *run.dock, run.dock->config().state_dir / "trust");
          log(Level::notice, "reload: ", config_file, " read again");
        } else {
          reload_trust(*run.dock, run.dock->config().state_dir / "trust");
        }
      } catch (const std::exception& e) {
        log(Level::error, "reload: ", e.what(), "; keeping the running settings");
      }
      signals.async_wait(on_signal);
      return;
    }
    log(Level::notice, "demo: signal ", sig, ", stopping; every state is durable, a rerun continues");
    run.interrupted = true;
    finish(run);
  };
  signals.async_wait(on_signal);
  const auto cpu0 = cpu_seconds();
  const auto t0 = Clock::now();
  if (pause_uploads) {
    run.dock->pause_uploads(true);
    log(Level::notice, "demo: uploads paused until an operator resumes them");
  }
  asio::co_spawn(run.ioc, run.dock->run_uploader(), log_failure("upload queue"));
  if (run.over_usb) {
    start_usb(run, usb::UsbLinkOptions{std::size_t{usb_transfer_kib} * 1024, usb_in_flight});
  } else {
    for (unsigned i = 0; i < run.cameras.size(); ++i) asio::co_spawn(run.ioc, run_slot(run, i), log_failure("slot"));
  }
  if (live_table) asio::co_spawn(run.ioc, refresh_table(run), log_failure("live table"));
  if (scenario) {
    log(Level::notice, "demo: scenario \"", scenario->name, "\" from ", scenario->file.string());
    asio::co_spawn(run.ioc, watch_slots(run), log_failure("scenario slot watch"));
  }
  asio::co_spawn(run.ioc, run.lights->run(), log_failure("slot lights"));
  if (run.web) {
    run.web->start();
    std::cout << "web page: " << run.web->url() << "\n" << std::flush;
  }
  run.ioc.run();
  if (run.web) run.web->stop();
  run.lights->dark();
  const std::chrono::duration<double> wall = Clock::now() - t0;
  const auto cpu = cpu_seconds() - cpu0;
  Log::set_quiet(false);
  if (live_table) std::cout << render_table(*run.dock) << std::flush;

  const auto& t = run.dock->totals();
  const double gib = static_cast<double>(t.pulled_bytes) / (1u << 30);
  std::printf("summary: pulled %.1f MiB, stored %llu segments (%.1f MiB), erased %llu, quarantined %llu, re-read %.1f MiB in %.2f s: "
              "%.1f MB/s, cpu %.2f s (%.2f s/GiB), peak rss %.1f MiB\n",
              static_cast<double>(t.pulled_bytes) / (1 << 20), static_cast<unsigned long long>(t.segments_stored),
              static_cast<double>(t.stored_bytes) / (1 << 20), static_cast<unsigned long long>(t.segments_erased),
              static_cast<unsigned long long>(t.segments_quarantined), static_cast<double>(t.reread_bytes) / (1 << 20), wall.count(),
              static_cast<double>(t.stored_bytes) / wall.count() / 1e6, cpu, gib > 0 ? cpu / gib : 0.0, static_cast<double>(peak_rss_kib()) / 1024);
  std::fflush(stdout);

  // Store jobs still queued must not outlive the sink they use.
  run.sink_pool->join();

  if (run.interrupted) {
    std::cerr << "dockd demo: interrupted; rerun with the same --state and --store to continue\n";
    return exit_when_idle ? 1 : 0;
  }
  if (scenario) {
    sample_slots(run);  // what the slots show at the end (a session that ended fast was never sampled)
    return check_expectations(run, *scenario, wall.count()) ? 0 : 1;
  }
  // Idle: every camera is empty, or it is said why not.
  int left = 0;
  for (unsigned i = 0; i < run.cameras.size(); ++i) {
    const auto& c = run.cameras[i];
    std::size_t remaining = 0;
    for (const auto& m : c.device->recorded()) remaining += c.device->is_erased(m.seq) ? 0 : 1;
    if (remaining == 0) continue;
    ++left;
    const auto& s = run.dock->slots()[i];
    std::cerr << "dockd demo: slot " << i + 1 << " " << c.device->spec().serial << ": " << remaining
              << " segment(s) not erased: " << (s.detail.empty() ? phase_name(s.phase) : s.detail) << "\n";
  }
  if (left) return 1;
  std::cerr << "dockd demo: every segment is stored and erased\n";
  return 0;
}

}  // namespace bodydock::dock
