// The state database: migrations, guarded transitions with history, conflict detection, and the
// upload queue's order (flagged segments first, then oldest first).
#include "dock/state_db.hpp"
#include "hw/camera_device.hpp"
#include "support/fleet.hpp"
#include "support/sandbox.hpp"

#include <boost/test/unit_test.hpp>

#include <algorithm>
#include <chrono>
#include <set>
#include <thread>
#include <vector>

using namespace bodydock;
using dock::SegState;
using dock::states;

namespace {

/// The manifests of an emulated camera's segments 1..count, `flagged` ones with priority.
std::vector<proto::Manifest> recorded(std::uint32_t count, std::set<std::uint64_t> flagged = {}) {
  hw::CameraSpec spec;
  spec.serial = "BC-0200";
  spec.segments = count;
  spec.segment_bytes = 8192;
  spec.chunk_size = 4096;
  spec.priority_segments = std::move(flagged);
  spec.trust = test::camera_keys(spec.serial);
  hw::CameraDevice dev(spec);
  return dev.recorded();
}

proto::Manifest manifest(std::uint64_t seq) { return recorded(3).at(seq - 1); }

std::vector<std::uint64_t> seqs(const std::vector<dock::SegmentRow>& rows) {
  std::vector<std::uint64_t> out;
  for (const auto& r : rows) out.push_back(r.seq);
  return out;
}

}  // namespace

BOOST_AUTO_TEST_SUITE(state_db)

BOOST_AUTO_TEST_CASE(migrations_run_once_and_survive_reopen) {
  test::TempDir dir;
  {
    dock::StateDb db(dir / "s.sqlite");
    BOOST_CHECK_EQUAL(db.schema_version(), 10);
    BOOST_CHECK(db.add_listed(manifest(1)) == dock::ListedResult::inserted);
  }
  dock::StateDb db(dir / "s.sqlite");
  BOOST_CHECK_EQUAL(db.schema_version(), 10);
  BOOST_REQUIRE(db.get("BC-0200", 1));
  BOOST_CHECK(db.get("BC-0200", 1)->state == SegState::listed);
}

BOOST_AUTO_TEST_CASE(a_run_that_never_stopped_is_told_to_the_next) {
  test::TempDir dir;
  dock::StateDb db(dir / "s.sqlite");
  BOOST_CHECK(!db.begin_run());  // a new state: no run before
  db.end_run();
  const auto clean = db.begin_run();
  BOOST_REQUIRE(clean);
  BOOST_CHECK(clean->stopped_ms.has_value());
  BOOST_CHECK_GE(*clean->stopped_ms, clean->started_ms);
  // This run is killed: no end_run. The next start learns it.
  const auto killed = db.begin_run();
  BOOST_REQUIRE(killed);
  BOOST_CHECK(!killed->stopped_ms.has_value());
  BOOST_CHECK_GT(killed->started_ms, 0);
}

BOOST_AUTO_TEST_CASE(the_spool_sum_is_kept_with_the_spooled_segment) {
  test::TempDir dir;
  dock::StateDb db(dir / "s.sqlite");
  BOOST_REQUIRE(db.add_listed(manifest(1)) == dock::ListedResult::inserted);
  BOOST_CHECK_EQUAL(db.get("BC-0200", 1)->spool_sum, "");  // none until a pull finished
  BOOST_REQUIRE(db.transition("BC-0200", 1, {SegState::listed}, SegState::pulling));
  dock::SegUpdate done;
  done.spool_sum = "06b05ab6733a618578af5f94892f3950";
  BOOST_REQUIRE(db.transition("BC-0200", 1, {SegState::pulling}, SegState::spooled, done));
  BOOST_CHECK_EQUAL(db.get("BC-0200", 1)->spool_sum, "06b05ab6733a618578af5f94892f3950");
  // Later updates that do not name it leave it alone.
  dock::SegUpdate attempt;
  attempt.count_attempt = true;
  BOOST_REQUIRE(db.transition("BC-0200", 1, {SegState::spooled}, SegState::spooled, attempt));
  BOOST_CHECK_EQUAL(db.get("BC-0200", 1)->spool_sum, "06b05ab6733a618578af5f94892f3950");
}

BOOST_AUTO_TEST_CASE(transitions_are_guarded_and_recorded) {
  test::TempDir dir;
  dock::StateDb db(dir / "s.sqlite");
  const auto m = manifest(2);
  BOOST_REQUIRE(db.add_listed(m) == dock::ListedResult::inserted);
  // Skipping ahead is refused: nothing is stored before it is spooled.
  BOOST_CHECK(!db.transition(m.camera_serial, m.seq, states(SegState::spooled), SegState::stored));
  dock::SegUpdate u;
  u.pulled = 4096;
  BOOST_CHECK(db.transition(m.camera_serial, m.seq, states(SegState::listed), SegState::pulling, u, "pull"));
  BOOST_CHECK_EQUAL(db.get(m.camera_serial, m.seq)->pulled, 4096u);
  BOOST_CHECK(db.transition(m.camera_serial, m.seq, states(SegState::pulling), SegState::spooled));
  dock::SegUpdate r;
  r.receipt = "abc";
  r.object_key = "k";
  BOOST_CHECK(db.transition(m.camera_serial, m.seq, states(SegState::spooled), SegState::stored, r));
  // No way back.
  BOOST_CHECK(!db.transition(m.camera_serial, m.seq, states(SegState::pulling), SegState::pulling));
  const auto row = db.get(m.camera_serial, m.seq);
  BOOST_CHECK(row->state == SegState::stored);
  BOOST_CHECK_EQUAL(row->receipt, "abc");
  BOOST_CHECK_EQUAL(row->object_key, "k");
  const std::vector<std::string> expect = {"LISTED", "PULLING", "SPOOLED", "STORED"};
  BOOST_CHECK(db.history(m.camera_serial, m.seq) == expect);
  BOOST_CHECK_EQUAL(db.counts()[SegState::stored], 1u);
}

BOOST_AUTO_TEST_CASE(a_changed_manifest_is_a_conflict_never_an_overwrite) {
  test::TempDir dir;
  dock::StateDb db(dir / "s.sqlite");
  auto m = manifest(1);
  BOOST_CHECK(db.add_listed(m) == dock::ListedResult::inserted);
  BOOST_CHECK(db.add_listed(m) == dock::ListedResult::known);
  auto altered = m;
  altered.sha256[0] ^= 1;
  BOOST_CHECK(db.add_listed(altered) == dock::ListedResult::conflict);
  BOOST_CHECK(db.get(m.camera_serial, 1)->manifest.sha256 == m.sha256);
}

// The camera flagged segment 4, recorded after 1 to 3 and spooled last of all: it is uploaded
// first, the rest oldest first; a page of the queue never leaves it behind older footage.
BOOST_AUTO_TEST_CASE(in_state_puts_flagged_segments_before_older_ones) {
  test::TempDir dir;
  dock::StateDb db(dir / "s.sqlite");
  const auto ms = recorded(5, {4});
  for (const auto& m : ms) BOOST_REQUIRE(db.add_listed(m) == dock::ListedResult::inserted);
  for (std::uint64_t seq : {1, 2, 3, 5, 4}) {  // the flagged one spooled last
    BOOST_REQUIRE(db.transition("BC-0200", seq, states(SegState::listed), SegState::pulling));
    BOOST_REQUIRE(db.transition("BC-0200", seq, states(SegState::pulling), SegState::spooled));
  }
  const auto rows = db.in_state(SegState::spooled);
  const std::vector<std::uint64_t> expect = {4, 1, 2, 3, 5};
  BOOST_CHECK(seqs(rows) == expect);
  BOOST_REQUIRE_EQUAL(rows.size(), 5u);
  BOOST_CHECK(rows[0].manifest.priority());
  BOOST_CHECK(!rows[1].manifest.priority());
  const std::vector<std::uint64_t> first = {4};
  BOOST_CHECK(seqs(db.in_state(SegState::spooled, 1)) == first);
  // Once it is stored, the queue is oldest first again; other states order the same way.
  BOOST_REQUIRE(db.transition("BC-0200", 4, states(SegState::spooled), SegState::stored));
  const std::vector<std::uint64_t> rest = {1, 2, 3, 5};
  BOOST_CHECK(seqs(db.in_state(SegState::spooled)) == rest);
  BOOST_CHECK(seqs(db.in_state(SegState::stored)) == first);
}

BOOST_AUTO_TEST_CASE(refuses_a_newer_schema) {
  test::TempDir dir;
  { dock::StateDb db(dir / "s.sqlite"); }
  {
    // Simulate a database written by a newer dockd.
    std::string cmd = "sqlite3 '" + (dir / "s.sqlite").string() + "' 'PRAGMA user_version=99' 2>/dev/null";
    if (std::system(cmd.c_str()) != 0) return;  // sqlite3 CLI not installed: nothing to simulate with
  }
  BOOST_CHECK_THROW(dock::StateDb db(dir / "s.sqlite"), std::runtime_error);
}

BOOST_AUTO_TEST_CASE(upload_journal_survives_reopen_and_forgets_ended_uploads) {
  test::TempDir dir;
  {
    dock::StateDb db(dir / "s.sqlite");
    BOOST_CHECK(!db.find_upload("a/1.seg"));
    db.upload_begun("a/1.seg", "id-1", 5u << 20);
    db.part_done("a/1.seg", 1, {"\"e1\"", "m1"});
    db.part_done("a/1.seg", 2, {"\"e2\"", "m2"});
    db.part_done("a/1.seg", 2, {"\"e2b\"", "m2b"});  // sent again: the newer answer stands
    db.upload_begun("b/2.seg", "id-2", 5u << 20);
  }
  dock::StateDb db(dir / "s.sqlite");
  const auto r = db.find_upload("a/1.seg");
  BOOST_REQUIRE(r);
  BOOST_CHECK_EQUAL(r->upload_id, "id-1");
  BOOST_CHECK_EQUAL(r->part_size, 5u << 20);
  BOOST_REQUIRE_EQUAL(r->parts.size(), 2u);
  BOOST_CHECK_EQUAL(r->parts.at(2).etag, "\"e2b\"");
  BOOST_CHECK_EQUAL(r->parts.at(2).md5, "m2b");
  BOOST_CHECK_EQUAL(db.uploads().size(), 2u);
  // A new upload for the same key replaces the old one, parts and all.
  db.upload_begun("a/1.seg", "id-3", 8u << 20);
  BOOST_CHECK(db.find_upload("a/1.seg")->parts.empty());
  db.upload_ended("a/1.seg");
  BOOST_CHECK(!db.find_upload("a/1.seg"));
  BOOST_REQUIRE_EQUAL(db.uploads().size(), 1u);
  BOOST_CHECK_EQUAL(db.uploads().front().second, "id-2");
}

BOOST_AUTO_TEST_CASE(purged_rows_leave_but_the_newest_and_unfinished_recordings_stay) {
  test::TempDir dir;
  dock::StateDb db(dir / "s.sqlite");
  const auto ms = recorded(8);
  const std::string serial = ms.front().camera_serial;
  for (const auto& m : ms) BOOST_REQUIRE(db.add_listed(m) == dock::ListedResult::inserted);
  // Everything but the last recording's last segment erased and purged.
  for (std::size_t i = 0; i + 1 < ms.size(); ++i) BOOST_REQUIRE(db.transition(serial, ms[i].seq, states(SegState::listed), SegState::purged, {}, "test"));
  // The first recording's complete-marker is not in storage yet.
  BOOST_REQUIRE(db.note_if_recording_complete(serial, ms.front().recording_id));
  BOOST_CHECK_EQUAL(db.prune_purged(std::chrono::hours(1)), 0u);  // nothing purged that long ago
  std::this_thread::sleep_for(std::chrono::milliseconds(5));
  std::set<std::uint64_t> expect_kept;
  for (const auto& m : ms)
    if (m.recording_id == ms.front().recording_id || m.recording_id == ms.back().recording_id) expect_kept.insert(m.seq);
  const auto pruned = db.prune_purged(std::chrono::milliseconds(0));
  BOOST_CHECK_EQUAL(pruned, ms.size() - expect_kept.size());
  BOOST_REQUIRE_GT(pruned, 0u);  // the camera's chain has recordings between the first and the last
  std::uint64_t through = 0;
  for (const auto& m : ms) {
    const bool kept = expect_kept.contains(m.seq);
    BOOST_CHECK_MESSAGE(db.get(serial, m.seq).has_value() == kept, "seq " << m.seq << (kept ? " pruned" : " kept"));
    BOOST_CHECK_EQUAL(db.history(serial, m.seq).empty(), !kept);
    if (!kept) through = std::max(through, m.seq);
  }
  BOOST_CHECK_EQUAL(db.pruned_through(serial), through);
  BOOST_CHECK_EQUAL(db.pruned_through("BC-OTHER"), 0u);
  // Once the marker is stored, its recording goes too; the camera's newest row never does.
  db.marker_stored(serial, ms.front().recording_id);
  BOOST_REQUIRE(db.transition(serial, ms.back().seq, states(SegState::listed), SegState::purged, {}, "test"));
  std::this_thread::sleep_for(std::chrono::milliseconds(5));
  db.prune_purged(std::chrono::milliseconds(0));
  const auto left = seqs(db.camera_segments(serial));
  BOOST_REQUIRE_EQUAL(left.size(), 1u);
  BOOST_CHECK_EQUAL(left.front(), ms.back().seq);
  BOOST_CHECK_EQUAL(db.pruned_through(serial), ms.back().seq - 1);
}

BOOST_AUTO_TEST_SUITE_END()
