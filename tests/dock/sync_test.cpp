// End to end through the in-process emulator: pull, verify, spool, store, erase, under the
// faults a dock meets: unplug mid-segment, flipped bits, a camera that keeps sending corrupt
// data, and a camera that stops answering.
#include "dock/audit.hpp"
#include "dock/dock.hpp"
#include "dock/emulated_fleet.hpp"
#include "dock/local_sink.hpp"
#include "dock/spool_sum.hpp"
#include "hw/camera_device.hpp"
#include "hw/emulated_link.hpp"
#include "proto/sha256.hpp"
#include "support/fleet.hpp"
#include "support/sandbox.hpp"

#include <boost/asio/co_spawn.hpp>
#include <boost/asio/detached.hpp>
#include <boost/asio/experimental/awaitable_operators.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/asio/this_coro.hpp>
#include <boost/asio/use_awaitable.hpp>
#include <boost/json.hpp>
#include <boost/test/unit_test.hpp>

#include <fstream>
#include <set>

using namespace bodydock;
namespace asio = boost::asio;
using namespace asio::experimental::awaitable_operators;
using dock::SegState;
using dock::SessionEnd;

namespace {

constexpr std::uint64_t kMiB = 1u << 20;

hw::CameraSpec spec(const std::string& serial, std::uint32_t segments, std::uint64_t bytes, std::uint32_t chunk = 64 * 1024) {
  hw::CameraSpec s;
  s.serial = serial;
  s.segments = segments;
  s.segment_bytes = bytes;
  s.chunk_size = chunk;
  s.seed = 7;
  s.trust = test::camera_keys(serial);
  return s;
}

asio::awaitable<void> session_into(dock::Dock& d, unsigned slot, usb::CameraLink& link, SessionEnd& out, std::size_t& left,
                                   usb::AsyncEvent& done) {
  try {
    out = co_await d.run_session(slot, link);
  } catch (const std::exception& e) {
    BOOST_ERROR("session on slot " << slot << " threw: " << e.what());
    out = SessionEnd::failed;
  }
  --left;
  done.notify();
}

/// Runs one session per link concurrently; returns how each ended.
asio::awaitable<std::vector<SessionEnd>> run_sessions(dock::Dock& d, std::vector<usb::CameraLink*> links) {
  auto ex = co_await asio::this_coro::executor;
  std::vector<SessionEnd> ends(links.size(), SessionEnd::failed);
  std::size_t left = links.size();
  usb::AsyncEvent done(ex);
  for (std::size_t i = 0; i < links.size(); ++i)
    asio::co_spawn(ex, session_into(d, static_cast<unsigned>(i + 1), *links[i], ends[i], left, done), asio::detached);
  while (left > 0) co_await done.wait();
  co_return ends;
}

asio::awaitable<std::vector<SessionEnd>> sessions_then_stop(dock::Dock& d, std::vector<usb::CameraLink*> links) {
  auto ends = co_await run_sessions(d, std::move(links));
  d.stop();
  // As the daemon does on its way out: markers and audit entries still due go to storage.
  co_await d.flush_records(std::chrono::seconds(5));
  co_return ends;
}

/// The dock (uploader and sessions) until every session has ended.
asio::awaitable<std::vector<SessionEnd>> run_dock(dock::Dock& d, std::vector<usb::CameraLink*> links) {
  auto r = co_await (d.run_uploader() && sessions_then_stop(d, std::move(links)));
  co_return r;
}

proto::Bytes read_file(const std::filesystem::path& p) {
  std::ifstream in(p, std::ios::binary);
  return {std::istreambuf_iterator<char>(in), std::istreambuf_iterator<char>()};
}

struct SyncFixture {
  test::TempDir dir;
  asio::io_context ioc;
  asio::thread_pool sink_pool{2};
  dock::LocalDirSink sink{dir / "store", sink_pool};
  std::vector<std::unique_ptr<hw::CameraDevice>> cams;

  dock::DockConfig config(unsigned slots) const {
    dock::DockConfig c;
    c.state_dir = dir / "state";
    c.identity = test::dock_identity();
    c.slots = slots;
    c.sync_every_bytes = 256 * 1024;
    c.request_timeout = std::chrono::milliseconds(5000);
    return c;
  }

  hw::CameraDevice& camera(hw::CameraSpec s) {
    cams.push_back(std::make_unique<hw::CameraDevice>(std::move(s)));
    return *cams.back();
  }

  std::vector<SessionEnd> run(dock::Dock& d, std::vector<usb::CameraLink*> links) {
    std::vector<SessionEnd> ends;
    test::run_with_watchdog(ioc, collect(d, std::move(links), ends));
    return ends;
  }
  static asio::awaitable<void> collect(dock::Dock& d, std::vector<usb::CameraLink*> links, std::vector<SessionEnd>& out) {
    out = co_await run_dock(d, std::move(links));
  }

  /// Every segment of `cam` is in the store exactly once, with the manifest's SHA-256 and the
  /// emulator's exact bytes, and a manifest beside it.
  void check_stored(const hw::CameraDevice& cam, const std::set<std::uint64_t>& except = {}) {
    std::size_t segs = 0;
    const auto camdir = dir / "store" / cam.spec().serial;
    if (std::filesystem::exists(camdir))
      for (const auto& e : std::filesystem::directory_iterator(camdir)) {
        BOOST_CHECK_MESSAGE(e.path().extension() != ".tmp", "temp file left: " << e.path());
        segs += e.path().extension() == ".seg" ? 1 : 0;
      }
    BOOST_CHECK_EQUAL(segs, cam.recorded().size() - except.size());
    for (const auto& m : cam.recorded()) {
      if (except.contains(m.seq)) continue;
      const auto path = dir / "store" / dock::LocalDirSink::object_key(m);
      BOOST_REQUIRE_MESSAGE(std::filesystem::exists(path), "missing in store: " << path);
      const auto bytes = read_file(path);
      BOOST_CHECK(proto::Sha256::of(bytes) == m.sha256);
      proto::Bytes expect(m.size);
      cam.content(m.seq, 0, expect);
      BOOST_CHECK_MESSAGE(bytes == expect, "stored bytes differ from the camera's for seq " << m.seq);
      auto json = path;
      json.replace_extension(".manifest.json");
      BOOST_CHECK(std::filesystem::exists(json));
    }
  }

  /// Erasing is only allowed for what the store already holds intact: checked at the instant
  /// of every erase.
  void guard_erases(hw::CameraDevice& cam) {
    cam.on_erase = [this](const proto::Manifest& m) {
      const auto path = dir / "store" / dock::LocalDirSink::object_key(m);
      BOOST_REQUIRE_MESSAGE(std::filesystem::exists(path), "camera asked to erase seq " << m.seq << " before it was stored");
      BOOST_CHECK_MESSAGE(proto::Sha256::of(read_file(path)) == m.sha256, "erase of seq " << m.seq << " with a damaged stored copy");
    };
  }
};

bool spool_empty(const std::filesystem::path& state) {
  for (const auto& e : std::filesystem::recursive_directory_iterator(state / "spool"))
    if (e.is_regular_file()) return false;
  return true;
}

}  // namespace

BOOST_FIXTURE_TEST_SUITE(end_to_end, SyncFixture)

BOOST_AUTO_TEST_CASE(three_cameras_five_segments_end_to_end) {
  std::vector<std::unique_ptr<hw::EmulatedLink>> links;
  std::vector<usb::CameraLink*> raw;
  for (int i = 1; i <= 3; ++i) {
    auto& cam = camera(spec("BC-10" + std::to_string(i), 5, kMiB + 12345 * i));
    guard_erases(cam);
    links.push_back(std::make_unique<hw::EmulatedLink>(ioc.get_executor(), cam, "emulated:" + std::to_string(i)));
    raw.push_back(links.back().get());
  }
  dock::Dock d(ioc, config(3), sink);
  const auto ends = run(d, raw);
  for (std::size_t i = 0; i < 3; ++i) {
    BOOST_CHECK(ends[i] == SessionEnd::done);
    BOOST_CHECK(d.slots()[i].phase == dock::SlotPhase::done);
    check_stored(*cams[i]);
    BOOST_CHECK_EQUAL(cams[i]->erased().size(), 5u);
  }
  BOOST_CHECK_EQUAL(d.totals().segments_stored, 15u);
  BOOST_CHECK_EQUAL(d.totals().reread_bytes, 0u);
  BOOST_CHECK(spool_empty(dir / "state"));
  dock::StateDb db(dir / "state" / "dock.sqlite");
  BOOST_CHECK_EQUAL(db.counts()[SegState::purged], 15u);
  const std::vector<std::string> lifecycle = {"LISTED", "PULLING", "SPOOLED", "STORED", "ERASED", "PURGED"};
  BOOST_CHECK(db.history("BC-102", 3) == lifecycle);

  // Every operation on a recording is in the audit log, chained and anchored; no footage in it.
  const auto log = dir / "state" / "audit" / "audit.log";
  const auto report = dock::AuditLog::verify(log, db.audit_anchor());
  BOOST_CHECK(report.ok());
  BOOST_CHECK_LT(std::filesystem::file_size(log), 100u * 1024);
  std::vector<std::string> seg3, camera_events;
  std::size_t recordings_complete = 0;
  std::ifstream in(log);
  for (std::string line; std::getline(in, line);) {
    auto v = boost::json::parse(line).as_object();
    if (v["camera"] != "BC-102") continue;
    const auto event = std::string(v["event"].as_string());
    if (v.contains("segment") && v["segment"].to_number<int>() == 3) seg3.push_back(event);
    if (event == "recording complete") ++recordings_complete;
    else if (!v.contains("segment")) camera_events.push_back(event);
  }
  const std::vector<std::string> ops = {"pulling", "spooled", "stored", "custody receipt", "erased", "purged"};
  BOOST_CHECK(seg3 == ops);
  const std::vector<std::string> docking = {"docking", "authentication", "clock", "session end"};
  BOOST_CHECK(camera_events == docking);
  // Each recording whose segments are all stored gets its complete-marker beside them.
  std::set<std::string> complete;
  for (const auto& m : cams[1]->recorded())
    if (m.last_in_recording) complete.insert(m.recording_id);
  BOOST_CHECK_GE(complete.size(), 1u);
  BOOST_CHECK_EQUAL(recordings_complete, complete.size());
  for (const auto& id : complete) BOOST_CHECK(std::filesystem::exists(dir / "store" / "BC-102" / ("recording-" + id + ".json")));
  // The officer and the camera's certificate travel with each stored segment.
  auto json_path = dir / "store" / dock::LocalDirSink::object_key(cams[1]->recorded()[2]);
  json_path.replace_extension(".manifest.json");
  const auto custody = boost::json::parse(test::slurp_text(json_path)).as_object().at("custody").as_object();
  BOOST_CHECK_EQUAL(custody.at("officer").as_string(), "officer-BC-102");
  BOOST_CHECK_EQUAL(custody.at("dock_id").as_string(), "dock-test");
  BOOST_CHECK(!custody.at("camera_certificate").as_string().empty());
}

BOOST_AUTO_TEST_CASE(unplugged_mid_segment_resumes_from_its_offset_after_restart) {
  auto& cam = camera(spec("BC-200", 2, 4 * kMiB));
  guard_erases(cam);
  const std::uint64_t total = cam.recorded()[0].size + cam.recorded()[1].size;
  {
    dock::Dock d(ioc, config(1), sink);
    hw::LinkFaults f;
    f.unplug_after_bytes = 4 * kMiB + 3 * kMiB / 2;  // in the middle of segment 2
    hw::EmulatedLink link(ioc.get_executor(), cam, "emulated:1", f);
    const auto ends = run(d, {&link});
    BOOST_CHECK(ends[0] == SessionEnd::unplugged);
    BOOST_CHECK(d.slots()[0].phase == dock::SlotPhase::empty);
  }
  std::uint64_t durable = 0;
  {
    dock::StateDb db(dir / "state" / "dock.sqlite");
    const auto row = db.get("BC-200", 2);
    BOOST_REQUIRE(row);
    BOOST_CHECK(row->state == SegState::pulling);
    durable = row->pulled;
    BOOST_CHECK_GE(durable, kMiB);
    BOOST_CHECK(!cam.is_erased(2));
  }
  const auto served_before = cam.bytes_served();
  {
    // A fresh dock over the same state: what a restart after the unplug sees.
    dock::Dock d(ioc, config(1), sink);
    hw::EmulatedLink link(ioc.get_executor(), cam, "emulated:1");
    const auto ends = run(d, {&link});
    BOOST_CHECK(ends[0] == SessionEnd::done);
  }
  check_stored(cam);
  BOOST_CHECK_EQUAL(cam.erased().size(), 2u);
  const auto reread = cam.bytes_served() - total;
  BOOST_TEST_MESSAGE("served before redock " << served_before << ", re-read " << reread << " bytes");
  // Only the part after the last durable offset is read again: well below a segment.
  BOOST_CHECK_EQUAL(cam.bytes_served() - served_before, cam.recorded()[1].size - durable);
  BOOST_CHECK_LT(reread, 4 * kMiB / 4);
  // The spool sum the upload checks against covers the whole segment, the prefix kept from
  // before the unplug too.
  dock::StateDb db(dir / "state" / "dock.sqlite");
  for (const auto& m : cam.recorded()) {
    std::vector<std::uint8_t> bytes(m.size);
    cam.content(m.seq, 0, bytes);
    const auto row = db.get("BC-200", m.seq);
    BOOST_REQUIRE(row);
    BOOST_CHECK_EQUAL(row->spool_sum, dock::SpoolSum::of(bytes));
  }
}

BOOST_AUTO_TEST_CASE(flipped_bit_in_a_chunk_is_detected_and_read_again) {
  auto& cam = camera(spec("BC-300", 3, kMiB));
  guard_erases(cam);
  cam.faults().corrupt_chunk[{2, 3}] = 1;
  dock::Dock d(ioc, config(1), sink);
  hw::EmulatedLink link(ioc.get_executor(), cam, "emulated:1");
  const auto ends = run(d, {&link});
  BOOST_CHECK(ends[0] == SessionEnd::done);
  BOOST_CHECK_EQUAL((cam.faults().corrupt_chunk[{2, 3}]), 0u);  // the fault did fire
  BOOST_CHECK_GE(d.totals().reread_bytes, 64u * 1024);
  check_stored(cam);
  BOOST_CHECK_EQUAL(cam.erased().size(), 3u);
}

BOOST_AUTO_TEST_CASE(camera_that_keeps_sending_corrupt_data_is_quarantined_never_erased) {
  auto& cam = camera(spec("BC-400", 3, kMiB));
  guard_erases(cam);
  cam.faults().corrupt_chunk[{2, 1}] = 0xFFFFFFFF;
  dock::Dock d(ioc, config(1), sink);
  hw::EmulatedLink link(ioc.get_executor(), cam, "emulated:1");
  const auto ends = run(d, {&link});
  BOOST_CHECK(ends[0] == SessionEnd::attention);
  BOOST_CHECK(d.slots()[0].phase == dock::SlotPhase::attention);
  BOOST_CHECK(!cam.is_erased(2));
  BOOST_CHECK(cam.is_erased(1) && cam.is_erased(3));
  check_stored(cam, {2});
  dock::StateDb db(dir / "state" / "dock.sqlite");
  const auto row = db.get("BC-400", 2);
  BOOST_REQUIRE(row);
  BOOST_CHECK(row->state == SegState::quarantined);
  BOOST_CHECK_NE(row->reason.find("chunk 1"), std::string::npos);
  // Kept: the spool copy stays for review.
  BOOST_CHECK(std::filesystem::exists(dir / "state" / "spool" / "BC-400" / "2.part"));
  // A later docking does not erase it either.
  hw::EmulatedLink again(ioc.get_executor(), cam, "emulated:1");
  dock::Dock d2(ioc, config(1), sink);
  BOOST_CHECK(run(d2, {&again})[0] == SessionEnd::attention);
  BOOST_CHECK(!cam.is_erased(2));
  // Never green while a quarantined segment is on the camera.
  BOOST_CHECK(d2.slots()[0].phase == dock::SlotPhase::attention);
}

BOOST_AUTO_TEST_CASE(one_camera_is_served_by_one_session_at_a_time) {
  auto& cam = camera(spec("BC-800", 2, kMiB));
  guard_erases(cam);
  dock::Dock d(ioc, config(2), sink);
  // The same camera seen on two slots at once (moved while its old session still runs).
  hw::EmulatedLink l1(ioc.get_executor(), cam, "emulated:1");
  hw::CameraDevice twin(cam.spec());
  hw::EmulatedLink l2(ioc.get_executor(), twin, "emulated:2");
  const auto ends = run(d, {&l1, &l2});
  BOOST_CHECK((ends[0] == SessionEnd::done) != (ends[1] == SessionEnd::done));
  const auto refused = ends[0] == SessionEnd::done ? 1 : 0;
  BOOST_CHECK(d.slots()[refused].phase == dock::SlotPhase::attention);
  BOOST_CHECK_NE(d.slots()[refused].detail.find("busy"), std::string::npos);
  check_stored(cam);
}

BOOST_AUTO_TEST_CASE(a_hung_camera_times_out_without_blocking_other_slots) {
  auto& hung = camera(spec("BC-500", 3, kMiB));
  auto& fine = camera(spec("BC-501", 3, kMiB));
  guard_erases(fine);
  auto cfg = config(2);
  cfg.request_timeout = std::chrono::milliseconds(300);
  dock::Dock d(ioc, cfg, sink);
  hw::LinkFaults f;
  f.hang_after_bytes = 300'000;
  hw::EmulatedLink l1(ioc.get_executor(), hung, "emulated:1", f);
  hw::EmulatedLink l2(ioc.get_executor(), fine, "emulated:2");
  const auto started = std::chrono::steady_clock::now();
  const auto ends = run(d, {&l1, &l2});
  BOOST_CHECK(ends[0] == SessionEnd::unresponsive);
  BOOST_CHECK(ends[1] == SessionEnd::done);
  BOOST_CHECK(d.slots()[0].phase == dock::SlotPhase::attention);
  BOOST_CHECK_NE(d.slots()[0].detail.find("did not answer"), std::string::npos);
  BOOST_CHECK(hung.erased().empty());
  check_stored(fine);
  BOOST_CHECK_LT(std::chrono::steady_clock::now() - started, std::chrono::seconds(30));
}

BOOST_AUTO_TEST_CASE(garbage_from_a_device_fails_its_slot_only) {
  auto& bad = camera(spec("BC-700", 2, kMiB));
  auto& good = camera(spec("BC-701", 2, kMiB));
  dock::Dock d(ioc, config(2), sink);
  hw::LinkFaults f;
  f.garbage_at_bytes = 0;  // before the very first reply
  hw::EmulatedLink l1(ioc.get_executor(), bad, "emulated:1", f);
  hw::EmulatedLink l2(ioc.get_executor(), good, "emulated:2");
  const auto ends = run(d, {&l1, &l2});
  BOOST_CHECK(ends[0] == SessionEnd::failed);
  BOOST_CHECK(d.slots()[0].phase == dock::SlotPhase::attention);
  BOOST_CHECK_NE(d.slots()[0].detail.find("malformed frame"), std::string::npos);
  BOOST_CHECK(bad.erased().empty());
  BOOST_CHECK(ends[1] == SessionEnd::done);
  check_stored(good);
}

BOOST_AUTO_TEST_CASE(garbage_mid_stream_never_reaches_the_store) {
  auto& cam = camera(spec("BC-710", 2, kMiB));
  guard_erases(cam);
  dock::Dock d(ioc, config(1), sink);
  hw::LinkFaults f;
  f.garbage_at_bytes = 700'000;  // inside segment 1's data
  hw::EmulatedLink l1(ioc.get_executor(), cam, "emulated:1", f);
  const auto ends = run(d, {&l1});
  BOOST_CHECK(ends[0] == SessionEnd::failed);
  // Whatever was stored is intact; the rest stays on the camera for the next docking.
  dock::Dock d2(ioc, config(1), sink);
  hw::EmulatedLink l2(ioc.get_executor(), cam, "emulated:1");
  BOOST_CHECK(run(d2, {&l2})[0] == SessionEnd::done);
  check_stored(cam);
}

BOOST_AUTO_TEST_CASE(redocking_a_synced_camera_finds_nothing_to_do) {
  auto& cam = camera(spec("BC-600", 2, kMiB / 2));
  dock::Dock d(ioc, config(1), sink);
  hw::EmulatedLink l1(ioc.get_executor(), cam, "emulated:1");
  BOOST_CHECK(run(d, {&l1})[0] == SessionEnd::done);
  dock::Dock d2(ioc, config(1), sink);
  hw::EmulatedLink l2(ioc.get_executor(), cam, "emulated:1");
  BOOST_CHECK(run(d2, {&l2})[0] == SessionEnd::done);
  BOOST_CHECK_EQUAL(d2.totals().pulled_bytes, 0u);
}

// Over-temperature while charging (PROTOCOL.md 4.10): the dock stops charging, raises an alert
// on the slot, and the sync itself carries on to the end.
BOOST_AUTO_TEST_CASE(an_overheating_camera_stops_charging_and_still_syncs) {
  auto& cam = camera(spec("BC-700", 2, kMiB));
  cam.faults().charge_heat_dc = 200;  // 31 C resting, 51 C while charging
  guard_erases(cam);
  hw::EmulatedLink link(ioc.get_executor(), cam, "emulated:1");
  dock::Dock d(ioc, config(1), sink);
  const auto ends = run(d, {&link});
  BOOST_CHECK(ends[0] == SessionEnd::done);
  check_stored(cam);
  BOOST_CHECK(!cam.charging());
  BOOST_REQUIRE_EQUAL(cam.charge_requests().size(), 1u);
  BOOST_CHECK(!cam.charge_requests()[0]);
  const auto& slot = d.slots()[0];
  BOOST_CHECK(slot.charge_stopped_hot);
  BOOST_CHECK(!slot.charging);
  BOOST_CHECK_MESSAGE(slot.alert.find("over-temperature 51.0 C: charging stopped") != std::string::npos, slot.alert);
}

// Status polls and charging changes travel in the READ pipeline during a long pull; with no
// cool-down the dock stops and resumes charging as the camera heats and cools, and every byte
// still arrives intact (replies are matched by id and kind).
BOOST_AUTO_TEST_CASE(status_and_charging_requests_interleave_with_reads) {
  auto& cam = camera(spec("BC-701", 2, 4 * kMiB, 16 * 1024));
  cam.faults().charge_heat_dc = 200;
  guard_erases(cam);
  hw::EmulatedLink link(ioc.get_executor(), cam, "emulated:1");
  auto cfg = config(1);
  cfg.status_interval = std::chrono::milliseconds(0);  // a poll whenever a request slot is free
  cfg.charge_cooldown = std::chrono::milliseconds(0);
  dock::Dock d(ioc, cfg, sink);
  const auto ends = run(d, {&link});
  BOOST_CHECK(ends[0] == SessionEnd::done);
  check_stored(cam);
  BOOST_TEST_MESSAGE("status polls " << cam.status_polls() << ", charging requests " << cam.charge_requests().size());
  BOOST_CHECK_GT(cam.status_polls(), 20u);
  BOOST_CHECK_GT(cam.charge_requests().size(), 4u);
  for (std::size_t i = 0; i < cam.charge_requests().size(); ++i)
    BOOST_CHECK_EQUAL(cam.charge_requests()[i], i % 2 == 1);  // stop, resume, stop, ...
}

// A camera that keeps charging when told to stop while too hot cannot be made safe over the
// protocol: the session ends `overheated` (its port is switched off by the USB layer), nothing is
// erased, and the slot shows attention with the reason.
BOOST_AUTO_TEST_CASE(a_camera_that_keeps_charging_while_hot_ends_the_session_overheated) {
  auto& cam = camera(spec("BC-702", 2, kMiB));
  cam.faults().charge_heat_dc = 200;
  cam.faults().charger_uncontrollable = true;
  hw::EmulatedLink link(ioc.get_executor(), cam, "emulated:1");
  dock::Dock d(ioc, config(1), sink);
  const auto ends = run(d, {&link});
  BOOST_CHECK(ends[0] == SessionEnd::overheated);
  BOOST_CHECK(cam.erased().empty());
  const auto& slot = d.slots()[0];
  BOOST_CHECK(slot.phase == dock::SlotPhase::attention);
  BOOST_CHECK_MESSAGE(slot.alert.find("does not stop charging") != std::string::npos, slot.alert);
}

// A camera whose clock runs 90 s fast: the dock sets it at docking, audits the drift, and the
// stored manifest carries the custody note with the drift, so evidence timestamps can be explained.
BOOST_AUTO_TEST_CASE(the_camera_clock_drift_is_recorded_with_the_stored_segment) {
  auto s = spec("BC-703", 2, kMiB);
  s.clock_skew_ms = 90'000;
  auto& cam = camera(s);
  hw::EmulatedLink link(ioc.get_executor(), cam, "emulated:1");
  dock::Dock d(ioc, config(1), sink);
  const auto ends = run(d, {&link});
  BOOST_CHECK(ends[0] == SessionEnd::done);
  check_stored(cam);
  for (const auto& m : cam.recorded()) {
    auto json_path = dir / "store" / dock::LocalDirSink::object_key(m);
    json_path.replace_extension(".manifest.json");
    const auto v = boost::json::parse(test::slurp_text(json_path)).as_object();
    BOOST_REQUIRE(v.contains("custody"));
    const auto& c = v.at("custody").as_object();
    BOOST_CHECK_EQUAL(c.at("dock_id").as_string(), "dock-test");  // as its certificate names it
    const auto drift = c.at("camera_clock_minus_dock_ms").to_number<std::int64_t>();
    BOOST_CHECK_MESSAGE(drift > 88'000 && drift < 92'000, "drift " << drift);
  }
  // The audit log has the clock set, with the same drift.
  std::ifstream in(dir / "state" / "audit" / "audit.log");
  bool clock_seen = false;
  for (std::string line; std::getline(in, line);) {
    auto v = boost::json::parse(line).as_object();
    if (v["event"] != "clock") continue;
    clock_seen = true;
    const auto drift = v["details"].as_object()["camera_minus_dock_ms"].to_number<std::int64_t>();
    BOOST_CHECK(drift > 88'000 && drift < 92'000);
  }
  BOOST_CHECK(clock_seen);
}

BOOST_AUTO_TEST_SUITE_END()

// Mutual authentication at docking (PROTOCOL.md 5.5): every way a camera can fail it ends in
// charge-only: nothing listed, read or erased, the slot shows attention with the reason, and the
// audit log says why. Each case uses a fleet of its own, so revocations stay local.
namespace {

struct AuthFixture : SyncFixture {
  dock::EmulatedFleet world{dir / "world"};

  dock::DockConfig auth_config() {
    auto c = config(1);
    c.identity = world.dock("dock-auth", dir / "dock-trust");
    return c;
  }
  hw::CameraSpec enrolled(const std::string& serial) {
    auto s = spec(serial, 2, 256 * 1024);
    s.trust = world.camera(serial, "officer-7");
    return s;
  }
  /// Docks `cam` once; checks charge-only with `reason` in the slot and the audit log.
  void expect_charge_only(hw::CameraDevice& cam, const std::string& reason, dock::DockConfig cfg) {
    hw::EmulatedLink link(ioc.get_executor(), cam, "emulated:1");
    dock::Dock d(ioc, std::move(cfg), sink);
    const auto ends = run(d, {&link});
    BOOST_CHECK(ends[0] == SessionEnd::charge_only);
    const auto& slot = d.slots()[0];
    BOOST_CHECK(slot.phase == dock::SlotPhase::attention);
    BOOST_CHECK_MESSAGE(slot.detail.starts_with("charge-only: ") && slot.detail.find(reason) != std::string::npos, slot.detail);
    // Nothing was read or erased, nothing was even asked for.
    BOOST_CHECK_EQUAL(cam.bytes_served(), 0u);
    BOOST_CHECK(cam.erased().empty());
    BOOST_CHECK_EQUAL(cam.refused_unauthenticated(), 0u);
    dock::StateDb db(dir / "state" / "dock.sqlite");
    BOOST_CHECK(db.camera_segments(cam.spec().serial).empty());
    BOOST_CHECK(!std::filesystem::exists(dir / "store" / cam.spec().serial));
    bool audited = false;
    std::ifstream in(dir / "state" / "audit" / "audit.log");
    for (std::string line; std::getline(in, line);) {
      auto v = boost::json::parse(line).as_object();
      // (A camera revoked at this dock authenticates first, then is refused: two entries.)
      if (v["event"] == "authentication" && v["camera"] == boost::json::string_view(cam.spec().serial) &&
          v["details"].as_object()["result"] == "failed") {
        audited = true;
        BOOST_CHECK_EQUAL(v["details"].as_object()["mode"].as_string(), "charge-only");
        BOOST_CHECK_MESSAGE(std::string(v["why"].as_string()).find(reason) != std::string::npos, v["why"]);
      }
    }
    BOOST_CHECK(audited);
  }
};

}  // namespace

BOOST_FIXTURE_TEST_SUITE(authentication, AuthFixture)

BOOST_AUTO_TEST_CASE(an_enrolled_camera_authenticates_and_syncs) {
  auto& cam = camera(enrolled("BC-A01"));
  hw::EmulatedLink link(ioc.get_executor(), cam, "emulated:1");
  dock::Dock d(ioc, auth_config(), sink);
  BOOST_CHECK(run(d, {&link})[0] == SessionEnd::done);
  check_stored(cam);
  BOOST_CHECK_EQUAL(cam.erased().size(), 2u);
}

BOOST_AUTO_TEST_CASE(a_camera_of_another_fleet_gets_charge_only) {
  dock::EmulatedFleet other(dir / "other");
  auto s = spec("BC-A02", 2, 256 * 1024);
  // Its certificate comes from another CA; it would itself accept this fleet's docks.
  auto keys = std::make_shared<hw::CameraTrust>(*other.camera("BC-A02", "officer-7"));
  keys->fleet = world.camera("BC-A99", "officer-9")->fleet;
  s.trust = keys;
  expect_charge_only(camera(s), "camera certificate: unable to get local issuer certificate", auth_config());
}

BOOST_AUTO_TEST_CASE(an_expired_camera_certificate_gets_charge_only) {
  const auto keys = dir / "world" / "camera-keys";
  pki::make_device_key(keys / "BC-A03.key", keys / "BC-A03.pub");
  world.fleet().enrol_camera("BC-A03", "officer-7", keys / "BC-A03.pub", pki::Validity{-std::chrono::hours(72), std::chrono::hours(24)});
  expect_charge_only(camera(enrolled("BC-A03")), "camera certificate: certificate has expired", auth_config());
}

BOOST_AUTO_TEST_CASE(a_revoked_camera_gets_charge_only) {
  auto s = enrolled("BC-A04");
  world.fleet().revoke("BC-A04", "reported stolen");
  auto cfg = auth_config();  // the dock's trust directory carries the new CRL
  pki::provision_dock(world.fleet(), "dock-auth", dir / "dock-trust");
  cfg.identity = std::make_shared<const pki::DockIdentity>(pki::load_dock_identity(dir / "dock-trust"));
  expect_charge_only(camera(s), "camera certificate: certificate revoked", cfg);
}

// SIGHUP reads the trust directory again (dock/service.hpp, apply_reload): a CRL carried to a
// running dock refuses the camera it revokes from that camera's next docking.
BOOST_AUTO_TEST_CASE(a_crl_read_again_refuses_the_camera_from_its_next_docking) {
  auto& cam = camera(enrolled("BC-A08"));
  dock::Dock d(ioc, auth_config(), sink);
  {
    hw::EmulatedLink link(ioc.get_executor(), cam, "emulated:1");
    BOOST_CHECK(run(d, {&link})[0] == SessionEnd::done);
  }
  world.fleet().revoke("BC-A08", "reported stolen");
  pki::provision_dock(world.fleet(), "dock-auth", dir / "dock-trust");
  // Another dock's trust directory is refused and changes nothing; this dock's, re-read, is taken.
  const auto refused = d.set_identity(world.dock("dock-other", dir / "other-trust"));
  BOOST_CHECK_MESSAGE(refused && refused->find("needs a restart") != std::string::npos, refused.value_or(""));
  BOOST_CHECK(!d.set_identity(std::make_shared<const pki::DockIdentity>(pki::load_dock_identity(dir / "dock-trust"))));
  BOOST_CHECK_EQUAL(d.config().identity->id, "dock-auth");
  hw::EmulatedLink again(ioc.get_executor(), cam, "emulated:1");
  BOOST_CHECK(run(d, {&again})[0] == SessionEnd::charge_only);
  BOOST_CHECK_MESSAGE(d.slots()[0].detail.find("certificate revoked") != std::string::npos, d.slots()[0].detail);
}

BOOST_AUTO_TEST_CASE(a_camera_revoked_at_this_dock_gets_charge_only) {
  // An admin's revocation on the web page, before the centre's CRL says the same.
  {
    std::filesystem::create_directories(dir / "state");
    dock::StateDb db(dir / "state" / "dock.sqlite");
    db.revoke_camera("BC-A0R", "admin ann", "reported stolen");
    BOOST_CHECK(db.camera_revoked("BC-A0R") == std::optional<std::string>("admin ann: reported stolen"));
    BOOST_CHECK(!db.camera_revoked("BC-A04"));
  }
  expect_charge_only(camera(enrolled("BC-A0R")), "revoked at this dock by admin ann: reported stolen", auth_config());
}

BOOST_AUTO_TEST_CASE(an_unenrolled_camera_gets_charge_only) {
  auto s = enrolled("BC-A05");
  auto keys = std::make_shared<hw::CameraTrust>(*s.trust);
  keys->device_cert.clear();  // its key was never enrolled: no certificate to show
  s.trust = keys;
  expect_charge_only(camera(s), "camera is not enrolled in this fleet", auth_config());
}

BOOST_AUTO_TEST_CASE(a_camera_presenting_another_cameras_certificate_gets_charge_only) {
  auto s = enrolled("BC-A06");
  auto keys = std::make_shared<hw::CameraTrust>(*s.trust);
  keys->device_cert = world.camera("BC-A07", "officer-8")->device_cert;
  s.trust = keys;
  expect_charge_only(camera(s), "camera certificate: issued to 'BC-A07', not 'BC-A06'", auth_config());
}

BOOST_AUTO_TEST_CASE(a_replayed_authentication_gets_charge_only) {
  auto& cam = camera(enrolled("BC-A08"));
  {
    // A first docking, recorded by a cloning device: it authenticates and syncs.
    hw::EmulatedLink link(ioc.get_executor(), cam, "emulated:1");
    dock::Dock d(ioc, auth_config(), sink);
    BOOST_CHECK(run(d, {&link})[0] == SessionEnd::done);
  }
  // The clone answers the next challenge with that recorded answer.
  hw::CameraSpec clone_spec = enrolled("BC-A09");
  auto& clone = camera(clone_spec);
  clone.faults().replay_auth = true;
  {
    hw::EmulatedLink link(ioc.get_executor(), clone, "emulated:1");
    dock::Dock d(ioc, auth_config(), sink);
    BOOST_CHECK(run(d, {&link})[0] == SessionEnd::done);  // records its own first answer
  }
  clone.reset_session();
  const auto served = clone.bytes_served();
  hw::EmulatedLink link(ioc.get_executor(), clone, "emulated:1");
  dock::Dock d(ioc, auth_config(), sink);
  BOOST_CHECK(run(d, {&link})[0] == SessionEnd::charge_only);
  BOOST_CHECK_EQUAL(clone.bytes_served(), served);
  BOOST_CHECK_MESSAGE(d.slots()[0].detail.find("does not cover this docking's challenge") != std::string::npos, d.slots()[0].detail);
}

// The other half: a dock outside the fleet cannot make a camera give up anything.
BOOST_AUTO_TEST_CASE(a_rogue_dock_reads_and_erases_nothing) {
  auto& cam = camera(enrolled("BC-A10"));
  dock::EmulatedFleet other(dir / "other");
  auto cfg = auth_config();
  cfg.identity = other.dock("rogue-dock", dir / "rogue-trust");
  // The rogue dock trusts this camera (it carries the real fleet CA), yet the camera refuses it.
  auto rogue = std::make_shared<pki::DockIdentity>(*cfg.identity);
  rogue->fleet = world.dock("dock-auth", dir / "dock-trust")->fleet;
  cfg.identity = rogue;
  expect_charge_only(cam, "the camera refused this dock", cfg);
  BOOST_CHECK_EQUAL(cam.receipts_rejected(), 0u);
}

// Charge-only keeps the camera docked and watched until it is taken.
BOOST_AUTO_TEST_CASE(charge_only_keeps_watching_until_undocked) {
  dock::EmulatedFleet other(dir / "other");
  auto s = spec("BC-A11", 1, 256 * 1024);
  s.trust = other.camera("BC-A11", "officer-7");
  s.battery_pct = 50;
  auto& cam = camera(s);
  auto cfg = auth_config();
  cfg.status_interval = std::chrono::milliseconds(20);
  dock::Dock d(ioc, cfg, sink);
  hw::EmulatedLink link(ioc.get_executor(), cam, "emulated:1");
  std::optional<SessionEnd> reported;
  SessionEnd end = SessionEnd::failed;
  auto body = [&]() -> asio::awaitable<void> {
    end = co_await d.run_session(1, link, [&](SessionEnd e) { reported = e; });
  };
  auto undock = [&]() -> asio::awaitable<void> {
    asio::steady_timer t(co_await asio::this_coro::executor, std::chrono::milliseconds(300));
    co_await t.async_wait(asio::use_awaitable);
    link.unplug();
  };
  asio::co_spawn(ioc, undock(), asio::detached);
  test::run_with_watchdog(ioc, body());
  BOOST_CHECK(reported == SessionEnd::charge_only);
  BOOST_CHECK(end == SessionEnd::unplugged);
  BOOST_CHECK_GE(cam.status_polls(), 3u);
  BOOST_CHECK_GT(cam.battery_pct(), 50);  // it charged while docked
  BOOST_CHECK_EQUAL(cam.bytes_served(), 0u);
}

BOOST_AUTO_TEST_SUITE_END()

// Manifest signatures and the chain, checked while listing (DESIGN section 4): a segment whose
// signature fails is quarantined, never pulled or erased; a segment the camera leaves out of its
// listing shows as a named gap, audited, with the slot asking for attention. Nothing is repaired.
BOOST_FIXTURE_TEST_SUITE(evidence_checks, SyncFixture)

BOOST_AUTO_TEST_CASE(a_bad_signature_quarantines_the_segment) {
  auto& cam = camera(spec("BC-801", 3, 256 * 1024));
  cam.faults().bad_signature = {2};
  hw::EmulatedLink link(ioc.get_executor(), cam, "emulated:1");
  dock::Dock d(ioc, config(1), sink);
  BOOST_CHECK(run(d, {&link})[0] == SessionEnd::attention);
  BOOST_CHECK(!cam.is_erased(2));
  BOOST_CHECK(cam.is_erased(1) && cam.is_erased(3));
  dock::StateDb db(dir / "state" / "dock.sqlite");
  const auto row = db.get("BC-801", 2);
  BOOST_REQUIRE(row);
  BOOST_CHECK(row->state == SegState::quarantined);
  BOOST_CHECK_EQUAL(row->reason, "manifest signature does not verify with the camera's certificate");
  BOOST_CHECK_EQUAL(d.totals().pulled_bytes, cam.recorded()[0].size + cam.recorded()[2].size);
}

// The segment after the gap is quarantined (DESIGN section 3): kept on the camera, not pulled,
// until an admin decides; the segments whose links hold are stored and erased.
BOOST_AUTO_TEST_CASE(a_hidden_segment_is_a_named_gap_and_the_segment_after_it_is_quarantined) {
  auto& cam = camera(spec("BC-802", 4, 256 * 1024));
  cam.faults().hide_from_list = {2};
  hw::EmulatedLink link(ioc.get_executor(), cam, "emulated:1");
  dock::Dock d(ioc, config(1), sink);
  BOOST_CHECK(run(d, {&link})[0] == SessionEnd::attention);
  BOOST_CHECK_EQUAL(d.slots()[0].detail, "segment 3 quarantined: hash chain broken: segment(s) missing between segment 1 and segment 3");
  BOOST_CHECK(!cam.is_erased(2));
  BOOST_CHECK(!cam.is_erased(3));
  BOOST_CHECK(cam.is_erased(1) && cam.is_erased(4));
  check_stored(cam, {2, 3});
  dock::StateDb db(dir / "state" / "dock.sqlite");
  const auto row = db.get("BC-802", 3);
  BOOST_REQUIRE(row);
  BOOST_CHECK(row->state == SegState::quarantined);
  BOOST_CHECK_EQUAL(row->reason, "hash chain broken: segment(s) missing between segment 1 and segment 3");
  std::ifstream in(dir / "state" / "audit" / "audit.log");
  std::size_t breaks = 0;
  for (std::string line; std::getline(in, line);) {
    auto v = boost::json::parse(line).as_object();
    if (v["event"] != "chain broken") continue;
    ++breaks;
    BOOST_CHECK_EQUAL(v["segment"].to_number<int>(), 3);
  }
  BOOST_CHECK_EQUAL(breaks, 1u);
}

BOOST_AUTO_TEST_SUITE_END()
