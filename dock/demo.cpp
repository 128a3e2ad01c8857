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
#include <boost/program_options.hpp>

#include <sys/resource.h>
#include <unistd.h>

#include <cerrno>
#include <functional>
#include <cmath>
#include <cstdlib>
#include <cstring>
#include <csignal>
#include <cstdio>
#include <iostream>
#include <memory>
#include <optional>
#include <sstream>

namespace bodydock::dock {
namespace {

namespace asio = boost::asio;
namespace po = boost::program_options;
using Clock = std::chrono::steady_clock;

constexpr unsigned kMaxSlots = 12;

struct DemoCamera {
  std::unique_ptr<hw::CameraDevice> device;
  std::unique_ptr<hw::EmulatedLink> link;
  hw::LinkFaults first_docking_faults;
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
    if (eq == std::string::npos) throw UsageError("--fault " + spec + ": '" + item + "' is not key=value");
    kv.emplace_back(item.substr(0, eq), item.substr(eq + 1));
    if (kv.back().first == "slot") slot = static_cast<unsigned>(parse_count("--fault slot", kv.back().second));
  }
  if (!slot || *slot == 0 || *slot > run.cameras.size()) throw UsageError("--fault " + spec + ": needs slot=1.." + std::to_string(run.cameras.size()));
  auto& cam = run.cameras[*slot - 1];
  for (const auto& [k, v] : kv) {
    if (k == "slot") continue;
    if (k == "unplug-at") {
      cam.first_docking_faults.unplug_after_bytes = parse_count("--fault unplug-at", v);
    } else if (k == "hang-at") {
      cam.first_docking_faults.hang_after_bytes = parse_count("--fault hang-at", v);
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
    const auto faults = docking == 0 ? cam.first_docking_faults : hw::LinkFaults{};
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
    if (*cam.end == SessionEnd::unplugged && docking < 3 && !run.stopping) {
      asio::steady_timer pause(run.ioc, std::chrono::milliseconds(300));
      co_await pause.async_wait(asio::use_awaitable);
      log(Level::notice, "slot ", index + 1, ": camera docked again");
      continue;
    }
    break;
  }
  if (++run.ended == run.cameras.size() && run.exit_when_idle) finish(run);
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
    if (run.cameras[i].first_docking_faults.unplug_after_bytes)
      run.bus->unplug_after(i + 1, *run.cameras[i].first_docking_faults.unplug_after_bytes);
    if (run.cameras[i].first_docking_faults.hang_after_bytes)
      run.bus->hang_after(i + 1, *run.cameras[i].first_docking_faults.hang_after_bytes);
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
  run.usb_slots->on_session_end = [&run](unsigned slot, SessionEnd end, bool retrying) {
    run.cameras[slot - 1].end = end;
    if (retrying) return;  // power cycle under way: the camera comes back
    if (end == SessionEnd::unplugged && run.usb_dockings[slot - 1] < 4 && !run.stopping) {
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
    if (++run.ended == run.cameras.size() && run.exit_when_idle) finish(run);
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
  asio::co_spawn(run.ioc, run.s3_client->create_bucket(bucket, true), [&answer](std::exception_ptr e, s3::Client::Result r) {
    if (e) std::rethrow_exception(e);
    answer = std::move(r);
  });
  run.ioc.run();
  run.ioc.restart();
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

void start_web(DemoRun& run, const std::string& listen, bool tls, bool private_status, std::string accounts,
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

constexpr const char* kDemoUsage = "usage: dockd demo --cameras N --segments M --segment-mib S --store DIR --state DIR [options]";

}  // namespace

int run_demo(const std::vector<std::string>& args) {
  po::options_description opts("dockd demo options");
  unsigned cameras = 0, segments = 0, chunk_kib = 256, inflight = 4, timeout_ms = 5000;
  double segment_mib = 0, spool_limit_mib = 0;
  std::uint64_t seed = 1;
  std::string store, state, world, log_level = "info", retention_mode = "compliance", upload_mbps = "0", upload_schedule;
  unsigned retention_days = 0;
  std::vector<std::string> faults;
  bool exit_when_idle = false, table = false, no_table = false, s3_virtual_host = false, web_tls = false, web_private = false,
       pause_uploads = false;
  std::string web_listen, web_accounts, leds_board, control_socket, config_file;
  std::string usb_mode = "in-process";
  unsigned usb_transfer_kib = 256, usb_in_flight = 4, s3_part_mib = 16, upload_retry_max_ms = 60000, s3_timeout_ms = 30000;
  // clang-format off
  opts.add_options()
    ("help", "this text")
    ("cameras", po::value(&cameras)->required(), "emulated cameras docked at start, 1..12 (one per slot)")
    ("segments", po::value(&segments)->required(), "segments recorded on each camera")
    ("segment-mib", po::value(&segment_mib)->required(), "size of each segment in MiB (fractions allowed)")
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
    if (!hw::ensure_umockdev_preload(argv)) std::cerr << "dockd demo: cannot re-execute with the USB emulation preload: " << std::strerror(errno) << "\n";
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
    DockConfig cfg;
    cfg.state_dir = state;
    cfg.identity = run.world->dock("demo-dock", state_path / "trust");
    cfg.slots = cameras;
    cfg.reads_in_flight = inflight;
    cfg.request_timeout = std::chrono::milliseconds(timeout_ms);
    cfg.upload_retry_cap = std::chrono::milliseconds(upload_retry_max_ms);
    cfg.spool_limit_bytes = static_cast<std::uint64_t>(spool_limit_mib * (1 << 20));
    cfg.upload_hold_probe = std::chrono::milliseconds(upload_retry_max_ms);
    run.exit_when_idle = exit_when_idle;
    run.sink_pool = std::make_unique<asio::thread_pool>(2);
    if (store.starts_with("s3://")) {
      const auto where = S3Location::parse(store);
      auto need = [](const char* name) {
        const char* v = std::getenv(name);
        if (!v || !*v) throw UsageError(std::string("--store s3://... needs ") + name + " in the environment");
        return std::string(v);
      };
      auto endpoint = s3::Endpoint::parse(need("AWS_ENDPOINT_URL"), need("AWS_REGION"));
      endpoint.path_style = !s3_virtual_host;
      // A private CA for an https:// endpoint, as the AWS tools take it.
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
      spec.trust = run.world->camera(serial, officer);
      DemoCamera cam;
      cam.device = std::make_unique<hw::CameraDevice>(hw::CameraDevice::open_persistent(spec, camera_dir));
      run.cameras.push_back(std::move(cam));
    }
    for (const auto& f : faults) apply_fault(run, f);
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
  auto log_failure = [](const char* what) { return [what](std::exception_ptr e) { log_if_failed(what, e); }; };
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
