// The state database: migrations, guarded transitions with history, conflict detection.
#include "dock/state_db.hpp"
#include "hw/camera_device.hpp"
#include "support/fleet.hpp"
#include "support/sandbox.hpp"

#include <boost/test/unit_test.hpp>

using namespace bodydock;
using dock::SegState;
using dock::states;

namespace {

proto::Manifest manifest(std::uint64_t seq) {
  hw::CameraSpec spec;
  spec.serial = "BC-0200";
  spec.segments = 3;
  spec.segment_bytes = 8192;
  spec.chunk_size = 4096;
  spec.trust = test::camera_keys(spec.serial);
  hw::CameraDevice dev(spec);
  return dev.recorded().at(seq - 1);
}

}  // namespace

BOOST_AUTO_TEST_SUITE(state_db)

BOOST_AUTO_TEST_CASE(migrations_run_once_and_survive_reopen) {
  test::TempDir dir;
  {
    dock::StateDb db(dir / "s.sqlite");
    BOOST_CHECK_EQUAL(db.schema_version(), 5);
    BOOST_CHECK(db.add_listed(manifest(1)) == dock::ListedResult::inserted);
  }
  dock::StateDb db(dir / "s.sqlite");
  BOOST_CHECK_EQUAL(db.schema_version(), 5);
  BOOST_REQUIRE(db.get("BC-0200", 1));
  BOOST_CHECK(db.get("BC-0200", 1)->state == SegState::listed);
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

BOOST_AUTO_TEST_SUITE_END()
