// The chaos driver behind tests/chaos/run (README.md there). For each seed it plans a run of
// emulated cameras (over the umockdev lane) and random faults, plays it against `dockd demo`
// storing into a Ceph RGW through a fault proxy, then lets the dock finish without faults and
// checks the invariants from the footage's point of view. The plan is a pure function of the
// seed; when a fault lands depends on the machine's speed (faults are set at milliseconds into
// the run, or at byte offsets of a stream), so a replayed seed plays the same faults at nearly
// the same moments.
#include "dock/local_sink.hpp"
#include "dock/s3/client.hpp"
#include "hw/camera_device.hpp"
#include "proto/sha256.hpp"
#include "support/daemon.hpp"
#include "support/fault_proxy.hpp"

#include <boost/asio/co_spawn.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/json/parse.hpp>

#include <fcntl.h>
#include <sys/mount.h>
#include <sys/statvfs.h>
#include <unistd.h>

#include <algorithm>
#include <cstdio>
#include <cstdlib>
#include <fstream>
#include <iostream>
#include <map>
#include <optional>
#include <random>
#include <set>
#include <sstream>
#include <thread>

using namespace bodydock;
namespace asio = boost::asio;
namespace fs = std::filesystem;
using Ms = std::chrono::milliseconds;
using Clock = std::chrono::steady_clock;

namespace {

constexpr const char* kUsage =
    "usage: tests/chaos/run --seeds N [--seed S] [--keep]\n"
    "  (the driver itself: chaos_driver --dockd PATH --dockctl PATH --rgw-dir DIR --rgw-scripts DIR --work DIR\n"
    "   --seeds N [--seed S] [--keep] [--faketime LIB]; the S3 endpoint and keys from AWS_*)\n";

// ---------------------------------------------------------------------------------------------
// The plan of one run

enum class Fault {
  dockd_kill,  ///< SIGKILL of dockd, restarted at once
  rgw_kill,    ///< the storage gateway crashes and comes back after a while
  net_reset,   ///< a connection to storage is reset at a byte offset
  net_stall,   ///< a connection to storage stalls at a byte offset
  net_flip,    ///< a bit of a request to storage flips on the way
  unplug,      ///< the officer pulls the camera mid-transfer, and puts it back
  hang,        ///< the camera stops answering mid-transfer
  bit_flip,    ///< a chunk read over USB arrives with a flipped bit (once or twice)
  bad_chunk,   ///< a chunk arrives damaged every time: the segment must be quarantined
  disk_full,   ///< the state disk fills up for a while
  clock_jump,  ///< the dock's clock steps (NTP, a dead RTC battery) and steps back later
};
constexpr Fault kAllFaults[] = {Fault::dockd_kill, Fault::rgw_kill, Fault::net_reset, Fault::net_stall, Fault::net_flip, Fault::unplug,
                                Fault::hang,       Fault::bit_flip, Fault::bad_chunk, Fault::disk_full, Fault::clock_jump};

const char* name(Fault f) {
  switch (f) {
    case Fault::dockd_kill: return "dockd-kill";
    case Fault::rgw_kill: return "rgw-kill";
    case Fault::net_reset: return "net-reset";
    case Fault::net_stall: return "net-stall";
    case Fault::net_flip: return "net-flip";
    case Fault::unplug: return "unplug";
    case Fault::hang: return "hang";
    case Fault::bit_flip: return "usb-bit-flip";
    case Fault::bad_chunk: return "usb-bad-chunk";
    case Fault::disk_full: return "disk-full";
    case Fault::clock_jump: return "clock-jump";
  }
  return "?";
}

struct Event {
  Fault kind;
  int at_ms = 0;             ///< into the chaos phase (timed faults)
  unsigned start = 1;        ///< camera faults: which start of dockd plays it (1 = the first)
  unsigned camera = 0;       ///< camera faults: index
  std::uint64_t offset = 0;  ///< byte offset (network, unplug, hang)
  int hold_ms = 0;           ///< how long (stall, gateway down, disk full, clock off)
  std::int64_t jump_s = 0;   ///< clock jump
  std::uint64_t segment = 0, chunk = 0;
  unsigned times = 1;
};

struct PlannedCamera {
  std::string serial;
  std::vector<std::uint64_t> sizes;
  std::int64_t clock_skew_ms = 0;
};

struct Plan {
  std::uint64_t seed = 0;
  std::vector<PlannedCamera> cameras;
  std::vector<Event> events;  ///< in time order (timed) then camera faults
  unsigned starts = 1;        ///< dockd starts in the chaos phase: 1 + kills
  unsigned upload_mbps = 0;   ///< the uplink's cap in the faulty phase: uploads last while faults come
  [[nodiscard]] std::uint64_t bytes() const {
    std::uint64_t n = 0;
    for (const auto& c : cameras)
      for (auto s : c.sizes) n += s;
    return n;
  }
};

bool is_camera_fault(Fault f) { return f == Fault::unplug || f == Fault::hang || f == Fault::bit_flip || f == Fault::bad_chunk; }

Plan make_plan(std::uint64_t seed, bool can_fill_disk, bool can_jump_clock) {
  std::mt19937_64 rng(seed);
  auto pick = [&](std::uint64_t lo, std::uint64_t hi) { return std::uniform_int_distribution<std::uint64_t>(lo, hi)(rng); };
  auto chance = [&](double p) { return std::bernoulli_distribution(p)(rng); };
  Plan plan;
  plan.seed = seed;
  const auto cameras = pick(1, 3);
  for (unsigned i = 0; i < cameras; ++i) {
    PlannedCamera c;
    char serial[24];
    std::snprintf(serial, sizeof serial, "CH-%llu-%u", static_cast<unsigned long long>(seed % 100000), i + 1);
    c.serial = serial;
    const auto segments = pick(1, 4);
    for (unsigned s = 0; s < segments; ++s) c.sizes.push_back(chance(0.15) ? pick(5u << 20, 8u << 20) : pick(64u << 10, 3u << 20));
    // A camera whose clock is off, by minutes to days, either way.
    if (chance(0.3)) c.clock_skew_ms = static_cast<std::int64_t>(pick(60'000, 3 * 86'400'000ull)) * (chance(0.5) ? 1 : -1);
    plan.cameras.push_back(std::move(c));
  }
  plan.upload_mbps = static_cast<unsigned>(pick(2, 12));
  // Timed faults within the first 8 s of the run, 2..6 of them.
  const auto faults = pick(2, 6);
  std::vector<Fault> timed = {Fault::dockd_kill, Fault::rgw_kill, Fault::net_reset, Fault::net_stall, Fault::net_flip};
  if (can_fill_disk) timed.push_back(Fault::disk_full);
  if (can_jump_clock) timed.push_back(Fault::clock_jump);
  std::vector<Fault> on_camera = {Fault::unplug, Fault::unplug, Fault::hang, Fault::bit_flip, Fault::bit_flip, Fault::bad_chunk};
  for (unsigned i = 0; i < faults; ++i) {
    Event e;
    const bool camera_side = chance(0.4);
    e.kind = camera_side ? on_camera[pick(0, on_camera.size() - 1)] : timed[pick(0, timed.size() - 1)];
    e.at_ms = static_cast<int>(pick(200, 8000));
    switch (e.kind) {
      case Fault::net_reset:
      case Fault::net_flip: e.offset = pick(0, 6u << 20); break;
      case Fault::net_stall:
        e.offset = pick(0, 6u << 20);
        e.hold_ms = static_cast<int>(pick(500, 6000));  // past the 3 s request deadline, or not
        break;
      case Fault::rgw_kill: e.hold_ms = static_cast<int>(pick(300, 4000)); break;
      case Fault::disk_full: e.hold_ms = static_cast<int>(pick(500, 4000)); break;
      case Fault::clock_jump:
        e.jump_s = static_cast<std::int64_t>(pick(20 * 60, 3 * 86400)) * (chance(0.5) ? 1 : -1);
        e.hold_ms = static_cast<int>(pick(1000, 6000));
        break;
      default: break;
    }
    if (is_camera_fault(e.kind)) {
      e.camera = static_cast<unsigned>(pick(0, plan.cameras.size() - 1));
      const auto& cam = plan.cameras[e.camera];
      std::uint64_t total = 0;
      for (auto s : cam.sizes) total += s;
      e.offset = pick(4096, std::max<std::uint64_t>(8192, total * 9 / 10));
      e.segment = pick(1, cam.sizes.size());
      const auto chunks = std::max<std::uint64_t>(1, cam.sizes[e.segment - 1] / (256u << 10));
      e.chunk = pick(0, chunks - 1);
      e.times = static_cast<unsigned>(pick(1, 2));
    }
    if (e.kind == Fault::dockd_kill) ++plan.starts;
    plan.events.push_back(e);
  }
  // Camera faults go to one of the dock's starts (a later start sees the camera docked anew).
  for (auto& e : plan.events)
    if (is_camera_fault(e.kind)) e.start = static_cast<unsigned>(pick(1, plan.starts));
  std::stable_sort(plan.events.begin(), plan.events.end(), [](const Event& a, const Event& b) { return a.at_ms < b.at_ms; });
  return plan;
}

/// The scenario file of one dockd start: the cameras, and the camera faults of that start.
std::string scenario_text(const Plan& plan, unsigned start) {
  std::ostringstream t;
  t << "name = \"chaos seed " << plan.seed << ", start " << start << "\"\n";
  t << "seed = " << plan.seed << "\n";
  t << "lanes = [\"emulated-libusb\"]\n\n[dock]\ntimeout_ms = 2000\nstatus_interval_ms = 1000\n";
  for (std::size_t i = 0; i < plan.cameras.size(); ++i) {
    const auto& c = plan.cameras[i];
    t << "\n[[camera]]\nserial = \"" << c.serial << "\"\nsizes = [";
    for (std::size_t s = 0; s < c.sizes.size(); ++s) t << (s ? ", " : "") << c.sizes[s];
    t << "]\n";
    if (c.clock_skew_ms) t << "clock_skew_ms = " << c.clock_skew_ms << "\n";
    for (const auto& e : plan.events) {
      if (!is_camera_fault(e.kind) || e.camera != i || e.start != start) continue;
      switch (e.kind) {
        case Fault::unplug: t << "\n[[camera.fault]]\nkind = \"unplug\"\nat_byte = " << e.offset << "\n"; break;
        case Fault::hang: t << "\n[[camera.fault]]\nkind = \"hang\"\nat_byte = " << e.offset << "\n"; break;
        case Fault::bit_flip:
          t << "\n[[camera.fault]]\nkind = \"bit_flip\"\nsegment = " << e.segment << "\nchunk = " << e.chunk << "\ntimes = " << e.times << "\n";
          break;
        case Fault::bad_chunk:
          t << "\n[[camera.fault]]\nkind = \"bit_flip\"\nsegment = " << e.segment << "\nchunk = " << e.chunk << "\ntimes = \"always\"\n";
          break;
        default: break;
      }
    }
  }
  return t.str();
}

// ---------------------------------------------------------------------------------------------
// Storage, read back the way the centre would

struct Storage {
  s3::Endpoint endpoint;
  s3::Credentials credentials;
};

asio::awaitable<void> s3_request(s3::Client& c, std::string method, std::string bucket, std::string key, std::vector<s3::QueryParam> query,
                                 std::optional<s3::Client::Result>& out) {
  out = co_await c.request(std::move(method), std::move(bucket), std::move(key), std::move(query), {}, {});
}

/// One request, synchronously; nullopt when storage cannot be reached.
std::optional<s3::Response> s3_call(const Storage& st, const std::string& method, const std::string& bucket, const std::string& key,
                                    std::vector<s3::QueryParam> query = {}) {
  asio::io_context ioc;
  s3::Client client(ioc.get_executor(), st.endpoint, st.credentials, std::chrono::seconds(10));
  std::optional<s3::Client::Result> out;
  std::exception_ptr failure;
  asio::co_spawn(ioc, s3_request(client, method, bucket, key, std::move(query), out), [&](std::exception_ptr e) { failure = e; });
  ioc.run_for(std::chrono::seconds(30));
  if (failure) std::rethrow_exception(failure);
  if (!out || !*out) return std::nullopt;
  return **out;
}

/// Every <Key> of a listing, in order.
std::vector<std::string> keys_in(const std::string& xml) {
  std::vector<std::string> keys;
  for (auto at = xml.find("<Key>"); at != std::string::npos; at = xml.find("<Key>", at + 1)) {
    const auto end = xml.find("</Key>", at);
    if (end == std::string::npos) break;
    keys.push_back(xml.substr(at + 5, end - at - 5));
  }
  return keys;
}

// ---------------------------------------------------------------------------------------------
// One run

struct Options {
  std::string dockd, dockctl, rgw_dir, rgw_scripts, faketime;
  fs::path work;
  std::uint64_t first_seed = 1;
  unsigned seeds = 0;
  bool keep = false;
};

struct Outcome {
  std::vector<std::string> violations;
  std::map<Fault, unsigned> injected;
  std::vector<std::string> notes;
  /// What dockd's log shows the faults did (so a run whose faults all missed is visible).
  std::map<std::string, unsigned> effects;
};

/// Lines of dockd's log that show a fault landed, by what they show.
constexpr std::pair<const char*, const char*> kEffects[] = {
    {"failed store attempts", ": store attempt "},
    {"damaged chunks read again", " failed its SHA-256 ("},
    {"dockings again after an unplug", "camera docked again"},
    {"spool writes refused by a full disk", "No space left on device"},
    {"pulls held for disk space", "spool disk nearly full"},
    {"clock disagreements with storage", "storage says the dock's clock is off"},
    {"unresponsive cameras", "unresponsive"},
};

class Run {
 public:
  Run(const Options& opt, const Storage& storage, Plan plan, fs::path dir)
      : opt_(opt), storage_(storage), plan_(std::move(plan)), dir_(std::move(dir)), proxy_(storage.endpoint.host, storage.endpoint.port) {}

  Outcome play();

 private:
  void violation(std::string what) { out_.violations.push_back(std::move(what)); }
  fs::path state() const { return disk_ / "state"; }
  fs::path world() const { return dir_ / "world"; }
  fs::path log() const { return dir_ / "dockd.log"; }
  std::string prefix() const { return "seed-" + std::to_string(plan_.seed) + "-" + nonce_ + "/"; }

  void mount_disk();
  void unmount_disk();
  std::unique_ptr<test::Daemon> start_dockd(unsigned start, bool faults);
  void set_clock(std::int64_t offset_s);
  void gateway(const char* what);
  void fill_disk();
  void free_disk();
  void chaos_phase();
  void settle();
  void check_erased_are_stored(const char* when);
  void check_footage();
  void check_audit();
  void check_no_secrets();
  void count_effects();

  const Options& opt_;
  const Storage& storage_;
  Plan plan_;
  fs::path dir_;
  fs::path disk_;
  bool mounted_ = false;
  bool gateway_down_ = false;
  std::string nonce_ = std::to_string(std::random_device{}() % 1000000);
  test::FaultProxy proxy_;
  Outcome out_;
  unsigned unclean_expected_ = 0;  ///< kills that hit a dock that had started
  std::set<std::pair<std::string, std::uint64_t>> quarantined_;
};

void Run::mount_disk() {
  // The state directory (database, audit log, spool) on a small disk of its own, so "disk
  // full" is a real ENOSPC. Needs root (CI runs as root); otherwise the fault is not planned.
  disk_ = dir_ / "disk";
  fs::create_directories(disk_);
  if (::geteuid() == 0 && ::mount("tmpfs", disk_.c_str(), "tmpfs", MS_NOSUID | MS_NODEV, "size=96m,mode=0700") == 0) mounted_ = true;
}

void Run::unmount_disk() {
  if (mounted_ && ::umount2(disk_.c_str(), MNT_DETACH) != 0) std::cerr << "chaos: umount " << disk_ << ": " << std::strerror(errno) << "\n";
  mounted_ = false;
}

void Run::set_clock(std::int64_t offset_s) {
  std::ofstream(dir_ / "faketime", std::ios::trunc) << (offset_s >= 0 ? "+" : "") << offset_s << "s\n";
}

std::unique_ptr<test::Daemon> Run::start_dockd(unsigned start, bool faults) {
  const auto file = dir_ / ("scenario-" + std::to_string(start) + ".toml");
  Plan p = plan_;
  if (!faults) p.events.clear();
  std::ofstream(file, std::ios::trunc) << scenario_text(p, start);
  std::vector<std::string> args = {"/usr/bin/env", "AWS_ENDPOINT_URL=" + proxy_.url()};
  if (!opt_.faketime.empty()) {
    // The dock's wall clock only (monotonic time stays true, as after an NTP step); stat is
    // left alone (libfaketime's stat lock deadlocks under umockdev's preload).
    const char* asan = std::getenv("ASAN_OPTIONS");
    args.push_back("LD_PRELOAD=" + opt_.faketime);
    args.push_back("FAKETIME_TIMESTAMP_FILE=" + (dir_ / "faketime").string());
    args.push_back("FAKETIME_CACHE_DURATION=1");
    args.push_back("FAKETIME_DONT_FAKE_MONOTONIC=1");
    args.push_back("NO_FAKE_STAT=1");
    args.push_back(std::string("ASAN_OPTIONS=") + (asan ? std::string(asan) + ":" : "") + "verify_asan_link_order=0");
  }
  for (const auto& a : {opt_.dockd, std::string("demo"), std::string("--scenario"), file.string(), std::string("--usb"), std::string("emulated-libusb"),
                        std::string("--store"), "s3://chaos/" + prefix(), std::string("--state"), state().string(), std::string("--world"),
                        world().string(), std::string("--no-table"), std::string("--log-level"), std::string("info"), std::string("--s3-part-mib"),
                        std::string("5"), std::string("--s3-timeout-ms"), std::string("3000"), std::string("--upload-retry-max-ms"),
                        std::string("1000"), std::string("--web"), std::string("127.0.0.1:0")})
    args.push_back(a);
  if (faults) {
    args.push_back("--upload-mbps");
    args.push_back(std::to_string(plan_.upload_mbps));
  }
  std::ofstream(log(), std::ios::app) << "=== chaos: dockd start " << start << (faults ? "" : " (no faults)") << "\n";
  return std::make_unique<test::Daemon>(args, log());
}

void Run::gateway(const char* what) {
  const auto [rc, text] = test::run_command({opt_.rgw_scripts + "/rgw-gateway", what, opt_.rgw_dir}, dir_ / "gateway.log", Ms(120000));
  if (rc != 0) throw std::runtime_error(std::string("rgw-gateway ") + what + " failed: " + text);
  gateway_down_ = std::string_view(what) == "kill";
}

void Run::fill_disk() {
  if (!mounted_) return;  // never the machine's own disk
  struct statvfs v {};
  if (::statvfs(disk_.c_str(), &v) != 0) return;
  const auto free = static_cast<std::uint64_t>(v.f_bavail) * v.f_frsize;
  const int fd = ::open((disk_ / "ballast").c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
  if (fd < 0) return;
  // Everything but a few blocks: the next spool write or database page fails with ENOSPC.
  if (free > (16u << 10)) (void)::posix_fallocate(fd, 0, static_cast<off_t>(free - (16u << 10)));
  ::close(fd);
}

void Run::free_disk() { fs::remove(disk_ / "ballast"); }

/// No camera erased anything storage does not hold with the SHA-256 it erased.
void Run::check_erased_are_stored(const char* when) {
  for (const auto& c : plan_.cameras) {
    for (const auto& [seq, sha] : hw::CameraDevice::read_erase_log(world() / "cameras", c.serial)) {
      hw::CameraSpec spec;
      spec.serial = c.serial;
      const auto cam = hw::CameraDevice::open_persistent(spec, world() / "cameras");
      const auto m = std::find_if(cam.recorded().begin(), cam.recorded().end(), [&](const proto::Manifest& x) { return x.seq == seq; });
      if (m == cam.recorded().end()) {
        violation(std::string(when) + ": " + c.serial + " erased seq " + std::to_string(seq) + ", which it never recorded");
        continue;
      }
      const auto key = prefix() + dock::LocalDirSink::object_key(*m);
      const auto got = s3_call(storage_, "GET", "chaos", key);
      if (!got) throw std::runtime_error("storage unreachable while checking " + key);
      if (!got->ok()) {
        violation(std::string(when) + ": " + c.serial + " erased seq " + std::to_string(seq) + " but storage has no " + key + " (HTTP " +
                  std::to_string(got->status) + ")");
        continue;
      }
      const auto stored = proto::Sha256::of(proto::ByteView(reinterpret_cast<const std::uint8_t*>(got->body.data()), got->body.size()));
      if (stored != sha || stored != m->sha256)
        violation(std::string(when) + ": " + c.serial + " erased seq " + std::to_string(seq) + " but the stored copy's SHA-256 differs");
    }
  }
}

void Run::chaos_phase() {
  const auto begin = Clock::now();
  unsigned start = 1;
  auto dockd = start_dockd(start, true);
  std::size_t next = 0;
  // Things to undo later: (when, what).
  std::vector<std::pair<Clock::time_point, Fault>> undo;
  const auto started_entries = [&] { return test::count_of(test::slurp(state() / "audit" / "audit.log"), "\"event\":\"dock started\""); };
  auto entries_at_start = started_entries();
  while (next < plan_.events.size() || !undo.empty()) {
    const auto now = Clock::now();
    // The next thing due: a planned fault or an undo.
    auto due = Clock::time_point::max();
    if (next < plan_.events.size()) due = begin + Ms(plan_.events[next].at_ms);
    for (const auto& u : undo) due = std::min(due, u.first);
    if (due > now) {
      if (dockd->wait_exit(std::chrono::duration_cast<Ms>(due - now)) >= 0) {
        // It finished (or gave up) on its own; faults still to come need a dock to hit.
        dockd = start_dockd(++start, true);
        entries_at_start = started_entries();
      }
      continue;
    }
    auto u = std::find_if(undo.begin(), undo.end(), [&](const auto& x) { return x.first <= now; });
    if (u != undo.end()) {
      const auto kind = u->second;
      undo.erase(u);
      if (kind == Fault::rgw_kill) gateway("start");
      else if (kind == Fault::disk_full) free_disk();
      else if (kind == Fault::clock_jump) set_clock(0);
      continue;
    }
    // The fleet's certificates and CRL are issued at the centre, whose clock is right: a jump of
    // the dock's clock waits until the demo has made them (a start killed early may not have).
    if (plan_.events[next].kind == Fault::clock_jump && Clock::now() < begin + Ms(plan_.events[next].at_ms) + std::chrono::seconds(30) &&
        !(fs::exists(world() / "fleet" / "crl.pem") && fs::exists(state() / "trust" / "dock.crt"))) {
      std::this_thread::sleep_for(Ms(100));
      continue;
    }
    const auto& e = plan_.events[next++];
    if (is_camera_fault(e.kind)) continue;  // played by the scenario file of its start
    ++out_.injected[e.kind];
    switch (e.kind) {
      case Fault::dockd_kill:
        if (dockd->wait_exit(Ms(0)) < 0) {
          if (started_entries() > entries_at_start) ++unclean_expected_;
          dockd->kill9();
          dockd->wait_exit(Ms(-1));
        }
        // What the cameras erased by the moment of the kill, storage must hold (when it can be asked).
        if (!gateway_down_) check_erased_are_stored("after a SIGKILL");
        dockd = start_dockd(++start, true);
        entries_at_start = started_entries();
        break;
      case Fault::rgw_kill:
        if (gateway_down_) break;  // down already
        gateway("kill");
        undo.emplace_back(Clock::now() + Ms(e.hold_ms), Fault::rgw_kill);
        break;
      case Fault::net_reset: proxy_.reset_at(e.offset); break;
      case Fault::net_stall: proxy_.stall_at(e.offset, Ms(e.hold_ms)); break;
      case Fault::net_flip: proxy_.flip_at(e.offset); break;
      case Fault::disk_full:
        fill_disk();
        undo.emplace_back(Clock::now() + Ms(e.hold_ms), Fault::disk_full);
        break;
      case Fault::clock_jump:
        set_clock(e.jump_s);
        undo.emplace_back(Clock::now() + Ms(e.hold_ms), Fault::clock_jump);
        break;
      default: break;
    }
  }
  for (const auto& e : plan_.events)
    if (is_camera_fault(e.kind) && e.start <= start) ++out_.injected[e.kind];
  // The faults are over: the dock of this start finishes what it can (bounded).
  if (dockd->wait_exit(Ms(90000)) < 0) {
    out_.notes.push_back("the last faulty start had not finished after 90 s; stopped with SIGTERM");
    dockd->terminate();
    if (dockd->wait_exit(Ms(30000)) < 0) {
      dockd->kill9();
      dockd->wait_exit(Ms(-1));
    }
  }
}

void Run::settle() {
  // The site is healthy again: one more start of the dock, no faults; it must finish.
  set_clock(0);
  auto dockd = start_dockd(0, false);
  const int rc = dockd->wait_exit(Ms(240000));
  if (rc < 0) {
    violation("the dock did not finish within 240 s once every fault was over");
    dockd->kill9();
    dockd->wait_exit(Ms(-1));
  } else if (rc != 0 && rc != 1) {
    violation("the fault-free start of dockd exited with status " + std::to_string(rc));
  }
}

void Run::check_footage() {
  // Every recorded segment: in storage exactly once, intact, with its metadata; or still on its
  // camera because the dock quarantined it. Nothing else under the run's prefix but the
  // segments' companions.
  std::set<std::string> expected_keys;
  for (const auto& c : plan_.cameras) {
    hw::CameraSpec spec;
    spec.serial = c.serial;
    const auto cam = hw::CameraDevice::open_persistent(spec, world() / "cameras");
    if (cam.recorded().size() != c.sizes.size())
      violation(c.serial + " holds " + std::to_string(cam.recorded().size()) + " recordings, planned " + std::to_string(c.sizes.size()));
    for (const auto& m : cam.recorded()) {
      const auto what = c.serial + " seq " + std::to_string(m.seq);
      const auto key = prefix() + dock::LocalDirSink::object_key(m);
      const bool erased = cam.is_erased(m.seq);
      const auto head = s3_call(storage_, "HEAD", "chaos", key);
      if (!head) throw std::runtime_error("storage unreachable");
      if (!head->ok()) {
        if (erased) violation(what + ": erased by the camera but not in storage");
        else if (!quarantined_.contains({c.serial, m.seq})) violation(what + ": neither in storage nor quarantined once every fault was over");
        continue;
      }
      expected_keys.insert(key);
      if (!erased && !quarantined_.contains({c.serial, m.seq})) violation(what + ": stored, but the camera still holds it at the end");
      const auto got = s3_call(storage_, "GET", "chaos", key);
      if (!got || !got->ok()) {
        violation(what + ": HEAD found it, GET did not");
        continue;
      }
      if (proto::Sha256::of(proto::ByteView(reinterpret_cast<const std::uint8_t*>(got->body.data()), got->body.size())) != m.sha256)
        violation(what + ": the stored bytes differ from the camera's");
      const std::pair<const char*, std::string> meta[] = {{"x-amz-meta-sha256", proto::to_hex(m.sha256)},
                                                          {"x-amz-meta-seq", std::to_string(m.seq)},
                                                          {"x-amz-meta-camera", m.camera_serial},
                                                          {"x-amz-meta-size", std::to_string(m.size)},
                                                          {"x-amz-meta-recording-id", m.recording_id},
                                                          {"x-amz-meta-manifest-sha256", proto::to_hex(proto::manifest_hash(m))}};
      for (const auto& [header, value] : meta)
        if (head->header(header) != value) violation(what + ": " + header + " is '" + head->header(header) + "', not '" + value + "'");
      const auto versions = s3_call(storage_, "GET", "chaos", "", {{"versions", ""}, {"prefix", key}});
      if (!versions || !versions->ok()) throw std::runtime_error("cannot list versions");
      const auto n = test::count_of(versions->body, "<Version>");
      if (n != 1) violation(what + ": " + std::to_string(n) + " versions in storage, not exactly one");
    }
  }
  const auto listing = s3_call(storage_, "GET", "chaos", "", {{"list-type", "2"}, {"prefix", prefix()}});
  if (!listing || !listing->ok()) throw std::runtime_error("cannot list the run's objects");
  if (listing->body.find("<IsTruncated>true") != std::string::npos) violation("more than 1000 objects under " + prefix());
  for (const auto& k : keys_in(listing->body))
    if (k.ends_with(".seg") && !expected_keys.contains(k)) violation("a segment object nobody recorded: " + k);
  const auto uploads = s3_call(storage_, "GET", "chaos", "", {{"uploads", ""}, {"prefix", prefix()}});
  if (!uploads || !uploads->ok()) throw std::runtime_error("cannot list multipart uploads");
  if (const auto n = test::count_of(uploads->body, "<Upload>")) violation(std::to_string(n) + " multipart upload(s) left behind");
  // The spool is empty but for what the dock quarantined: it keeps that copy for the admin's
  // review beside the camera's (spool/SERIAL/SEQ.part).
  for (const auto& e : fs::recursive_directory_iterator(state() / "spool")) {
    if (!e.is_regular_file()) continue;
    const auto serial = e.path().parent_path().filename().string();
    const auto stem = e.path().stem().string();
    const bool kept = e.path().extension() == ".part" && !stem.empty() && stem.find_first_not_of("0123456789") == std::string::npos &&
                      quarantined_.contains({serial, std::stoull(stem)});
    if (!kept) violation("left in the spool: " + fs::relative(e.path(), state()).string());
  }
}

void Run::check_audit() {
  const auto [rc, text] = test::run_command({opt_.dockctl, "audit", "verify", "--state", state().string()}, dir_ / "verify.log");
  if (rc != 0) violation("the audit log does not verify: " + text);
  // The entries, by (event, camera, segment) and their reasons.
  std::multimap<std::string, boost::json::object> by_event;
  std::istringstream lines(test::slurp(state() / "audit" / "audit.log"));
  for (std::string line; std::getline(lines, line);) {
    if (line.empty()) continue;
    boost::system::error_code ec;
    auto v = boost::json::parse(line, ec);
    if (ec || !v.is_object()) {
      violation("an audit line is not JSON: " + line.substr(0, 80));
      continue;
    }
    auto& o = v.as_object();
    const auto event = o.contains("event") && o.at("event").is_string() ? std::string(o.at("event").as_string()) : std::string();
    if (event == "quarantined" && o.contains("camera") && o.contains("segment") && o.at("segment").is_int64())
      quarantined_.insert({std::string(o.at("camera").as_string()), static_cast<std::uint64_t>(o.at("segment").as_int64())});
    by_event.emplace(event, std::move(o));
  }
  const auto why_of = [](const boost::json::object& o) { return o.contains("why") && o.at("why").is_string() ? std::string(o.at("why").as_string()) : ""; };
  const auto entries = [&](const std::string& event, const std::string& camera, std::optional<std::uint64_t> seq, const std::string& why_has) {
    std::size_t n = 0;
    for (auto [a, b] = by_event.equal_range(event); a != b; ++a) {
      const auto& o = a->second;
      if (!camera.empty() && (!o.contains("camera") || o.at("camera") != boost::json::value(camera))) continue;
      if (seq && (!o.contains("segment") || o.at("segment") != boost::json::value(static_cast<std::int64_t>(*seq)))) continue;
      if (why_of(o).find(why_has) == std::string::npos) continue;
      ++n;
    }
    return n;
  };
  // Every kill of a running dock: named by the next start.
  const auto unclean = entries("dock started", "", std::nullopt, "did not stop in order");
  if (unclean < unclean_expected_)
    violation(std::to_string(unclean_expected_) + " SIGKILLs of a running dock, but " + std::to_string(unclean) + " 'dock started' entries name one");
  // Every fault the dock's log reports has its audit entry: walk the log.
  std::istringstream log_lines(test::slurp(log()));
  for (std::string line; std::getline(log_lines, line);) {
    // "SERIAL seg N: store attempt K failed: WHY; retry in ..."
    if (const auto at = line.find(": store attempt "); at != std::string::npos && line.find(" failed: ", at) != std::string::npos) {
      const auto seg = line.rfind(" seg ", at);
      const auto serial_start = line.rfind(' ', seg == std::string::npos || seg == 0 ? 0 : seg - 1);
      if (seg == std::string::npos || serial_start == std::string::npos) continue;
      const auto serial = line.substr(serial_start + 1, seg - serial_start - 1);
      const auto seq = std::stoull(line.substr(seg + 5, at - seg - 5));
      const auto attempt = line.substr(at + 16, line.find(' ', at + 16) - at - 16);
      if (!entries("store failed", serial, seq, "attempt " + attempt + ":"))
        violation("the log says " + serial + " seg " + std::to_string(seq) + " store attempt " + attempt + " failed; the audit log does not");
    }
    // "slot N SERIAL seg N: chunk C failed its SHA-256 (K of M)"
    if (const auto at = line.find(" failed its SHA-256 ("); at != std::string::npos) {
      const auto seg = line.rfind(" seg ", at);
      const auto colon = line.find(':', seg);
      const auto serial_start = line.rfind(' ', seg - 1);
      if (seg == std::string::npos || colon == std::string::npos || serial_start == std::string::npos) continue;
      const auto serial = line.substr(serial_start + 1, seg - serial_start - 1);
      const auto seq = std::stoull(line.substr(seg + 5, colon - seg - 5));
      const auto counts = line.substr(at + 21, line.find(')', at) - at - 21);  // "K of M"
      const auto k = std::stoul(counts), m = std::stoul(counts.substr(counts.find("of ") + 3));
      if (k >= m) continue;  // the last failure: the quarantine that follows names it (checked with the footage)
      if (!entries("chunk failed", serial, seq, "(" + counts + ")")) violation("the log says " + serial + " seg " + std::to_string(seq) + " chunk failed its hash (" + counts + "); the audit log does not");
    }
  }
  for (const auto& c : plan_.cameras) {
    if (!c.clock_skew_ms) continue;
    // The camera's clock was off: the dock audited how far (it sets the clock at docking).
    bool seen = false;
    for (auto [a, b] = by_event.equal_range("clock"); a != b; ++a) {
      const auto& o = a->second;
      if (o.at("camera") != boost::json::value(c.serial) || !o.contains("details")) continue;
      const auto& d = o.at("details").as_object();
      if (d.contains("camera_minus_dock_ms") && d.at("camera_minus_dock_ms").is_int64() &&
          std::llabs(d.at("camera_minus_dock_ms").as_int64() - c.clock_skew_ms) < 600'000)
        seen = true;
    }
    if (!seen) violation(c.serial + "'s clock was " + std::to_string(c.clock_skew_ms) + " ms off; no 'clock' audit entry says so");
  }
}

void Run::count_effects() {
  const auto text = test::slurp(log());
  for (const auto& [what, marker] : kEffects) out_.effects[what] += static_cast<unsigned>(test::count_of(text, marker));
}

void Run::check_no_secrets() {
  // What must never reach a log: storage's secret key, any private key, any segment key.
  std::vector<std::pair<std::string, std::string>> secrets = {{"the storage secret key", storage_.credentials.secret_access_key}};
  auto pem_lines = [&](const fs::path& file, const std::string& what) {
    std::istringstream in(test::slurp(file));
    for (std::string l; std::getline(in, l);)
      if (l.size() >= 40 && l.find("-----") == std::string::npos) secrets.emplace_back(what + " (" + file.filename().string() + ")", l);
  };
  pem_lines(state() / "trust" / "dock.key", "the dock's private key");
  // The web page's first admin password, which the dock made and wrote for the operator.
  std::istringstream password(test::slurp(state() / "web-admin-password"));
  for (std::string l; std::getline(password, l);)
    if (l.size() >= 12 && l.find(' ') == std::string::npos) secrets.emplace_back("the web page's admin password", l);
  pem_lines(world() / "org" / "recording.key", "the recording key");
  for (const auto& c : plan_.cameras) {
    pem_lines(world() / "camera-keys" / (c.serial + ".key"), "a camera's private key");
    hw::CameraSpec spec;
    spec.serial = c.serial;
    const auto cam = hw::CameraDevice::open_persistent(spec, world() / "cameras");
    for (const auto& m : cam.recorded()) secrets.emplace_back("a segment key", proto::to_hex(cam.segment_key(m.seq)));
  }
  const std::pair<const char*, fs::path> outputs[] = {{"dockd's log", log()}, {"the audit log", state() / "audit" / "audit.log"}};
  for (const auto& [where, file] : outputs) {
    const auto text = test::slurp(file);
    for (const auto& [what, secret] : secrets)
      if (!secret.empty() && text.find(secret) != std::string::npos) violation(std::string(where) + " contains " + what);
  }
}

Outcome Run::play() {
  fs::create_directories(dir_);
  mount_disk();
  set_clock(0);
  try {
    chaos_phase();
    settle();
    check_audit();  // first: it learns which segments the dock quarantined
    check_footage();
    check_erased_are_stored("at the end");
    check_no_secrets();
    count_effects();
  } catch (const std::exception& e) {
    violation(std::string("the run could not be checked: ") + e.what());
    try {
      if (gateway_down_) gateway("start");  // the next run needs it
    } catch (const std::exception& again) {
      std::cerr << "chaos: " << again.what() << "\n";
    }
  }
  // Keep what explains a failure: the dock's state and logs.
  if (mounted_ && (!out_.violations.empty() || opt_.keep)) {
    std::error_code ec;
    fs::copy(state(), dir_ / "state", fs::copy_options::recursive, ec);
  }
  unmount_disk();
  return out_;
}

std::string arg_value(int& i, int argc, char** argv) {
  if (i + 1 >= argc) throw std::invalid_argument(std::string(argv[i]) + " needs a value");
  return argv[++i];
}

}  // namespace

int main(int argc, char** argv) {
  Options opt;
  try {
    for (int i = 1; i < argc; ++i) {
      const std::string a = argv[i];
      if (a == "--dockd") opt.dockd = arg_value(i, argc, argv);
      else if (a == "--dockctl") opt.dockctl = arg_value(i, argc, argv);
      else if (a == "--rgw-dir") opt.rgw_dir = arg_value(i, argc, argv);
      else if (a == "--rgw-scripts") opt.rgw_scripts = arg_value(i, argc, argv);
      else if (a == "--work") opt.work = arg_value(i, argc, argv);
      else if (a == "--faketime") opt.faketime = arg_value(i, argc, argv);
      else if (a == "--seeds") opt.seeds = static_cast<unsigned>(std::stoul(arg_value(i, argc, argv)));
      else if (a == "--seed") opt.first_seed = std::stoull(arg_value(i, argc, argv));
      else if (a == "--keep") opt.keep = true;
      else if (a == "--help") {
        std::cout << kUsage;
        return 0;
      } else throw std::invalid_argument("unknown option " + a);
    }
    if (opt.dockd.empty() || opt.dockctl.empty() || opt.rgw_dir.empty() || opt.rgw_scripts.empty() || opt.work.empty() || opt.seeds == 0)
      throw std::invalid_argument("--dockd, --dockctl, --rgw-dir, --rgw-scripts, --work and --seeds N (N >= 1) are required");
  } catch (const std::exception& e) {
    std::cerr << "chaos: " << e.what() << "\n" << kUsage;
    return 2;
  }
  Storage storage;
  try {
    const auto env = [](const char* n) {
      const char* v = std::getenv(n);
      if (!v || !*v) throw std::invalid_argument(std::string(n) + " is not set (tests/chaos/run starts a gateway and sets it)");
      return std::string(v);
    };
    storage.endpoint = s3::Endpoint::parse(env("AWS_ENDPOINT_URL"), env("AWS_REGION"));
    storage.credentials = {env("AWS_ACCESS_KEY_ID"), env("AWS_SECRET_ACCESS_KEY"), {}};
  } catch (const std::exception& e) {
    std::cerr << "chaos: " << e.what() << "\n";
    return 2;
  }
  dock::Log::set_level(dock::Level::warning);
  // Disk-full faults need a tmpfs of their own for the dock's state (root, and a kernel that lets us mount).
  bool can_mount = false;
  if (::geteuid() == 0) {
    const auto probe = opt.work / "mount-probe";
    fs::create_directories(probe);
    if (::mount("tmpfs", probe.c_str(), "tmpfs", MS_NOSUID | MS_NODEV, "size=1m") == 0) can_mount = ::umount2(probe.c_str(), 0) == 0;
    fs::remove(probe);
  }
  if (!can_mount) std::cout << "chaos: cannot mount a tmpfs (needs root): no disk-full faults\n";
  if (opt.faketime.empty()) std::cout << "chaos: no libfaketime: no clock jumps of the dock\n";
  unsigned runs = 0, faults = 0, violations = 0;
  std::map<Fault, unsigned> by_kind;
  std::map<std::string, unsigned> effects;
  std::vector<std::uint64_t> failed;
  for (unsigned i = 0; i < opt.seeds; ++i) {
    const auto seed = opt.first_seed + i;
    const auto plan = make_plan(seed, can_mount, !opt.faketime.empty());
    const auto began = Clock::now();
    const auto dir = opt.work / ("seed-" + std::to_string(seed));
    Outcome out;
    {
      Run run(opt, storage, plan, dir);
      out = run.play();
    }
    ++runs;
    unsigned n = 0;
    std::ostringstream kinds;
    for (const auto& [k, c] : out.injected) {
      n += c;
      by_kind[k] += c;
      kinds << (kinds.tellp() ? ", " : "") << name(k) << " x" << c;
    }
    faults += n;
    for (const auto& [what, c] : out.effects) effects[what] += c;
    violations += static_cast<unsigned>(out.violations.size());
    const double secs = std::chrono::duration<double>(Clock::now() - began).count();
    std::printf("seed %llu: %zu camera(s), %.1f MiB, uplink %u MB/s; %u fault(s): %s; %zu violation(s) (%.1f s)\n",
                static_cast<unsigned long long>(seed), plan.cameras.size(), static_cast<double>(plan.bytes()) / (1 << 20), plan.upload_mbps, n,
                kinds.str().empty() ? "none" : kinds.str().c_str(),
                out.violations.size(), secs);
    for (const auto& note : out.notes) std::printf("  note: %s\n", note.c_str());
    for (const auto& v : out.violations) std::printf("  VIOLATION seed %llu: %s\n", static_cast<unsigned long long>(seed), v.c_str());
    if (!out.violations.empty()) {
      failed.push_back(seed);
      std::printf("  replay: tests/chaos/run --seeds 1 --seed %llu --keep   (this run's files: %s)\n", static_cast<unsigned long long>(seed),
                  dir.c_str());
    } else if (!opt.keep) {
      std::error_code ec;
      fs::remove_all(dir, ec);
    }
    std::fflush(stdout);
  }
  std::printf("faults by kind:");
  for (const auto k : kAllFaults) std::printf(" %s %u", name(k), by_kind[k]);
  std::printf("\ndockd's log shows:");
  for (const auto& [what, marker] : kEffects) std::printf(" %u %s;", effects[what], what);
  std::printf("\n");
  if (!failed.empty()) {
    std::printf("failing seeds:");
    for (auto s : failed) std::printf(" %llu", static_cast<unsigned long long>(s));
    std::printf("\n");
  }
  std::printf("%u runs, %u faults, %u violations\n", runs, faults, violations);
  return violations == 0 ? 0 : 1;
}
