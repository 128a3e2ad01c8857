// The local directory sink: layout, atomicity, idempotent retries, refusal of wrong bytes.
#include "dock/local_sink.hpp"
#include "dock/files.hpp"
#include "hw/camera_device.hpp"
#include "support/fleet.hpp"
#include "support/sandbox.hpp"

#include <boost/json.hpp>
#include <boost/test/unit_test.hpp>

#include <fstream>

using namespace bodydock;

namespace {

struct SinkFixture {
  test::TempDir dir;
  boost::asio::thread_pool pool{1};
  dock::LocalDirSink sink{dir / "store", pool};
  hw::CameraDevice dev{[] {
    hw::CameraSpec s;
    s.serial = "BC-0300";
    s.segments = 2;
    s.segment_bytes = 50'000;
    s.chunk_size = 4096;
    s.trust = test::camera_keys(s.serial);
    return s;
  }()};

  std::filesystem::path spool(const proto::Manifest& m, bool corrupt = false) {
    proto::Bytes content(m.size);
    dev.content(m.seq, 0, content);
    if (corrupt) content[100] ^= 1;
    const auto p = dir / ("spool-" + std::to_string(m.seq));
    std::ofstream(p, std::ios::binary).write(reinterpret_cast<const char*>(content.data()), static_cast<std::streamsize>(content.size()));
    return p;
  }
  static std::size_t count_files(const std::filesystem::path& d) {
    std::size_t n = 0;
    for (const auto& e : std::filesystem::directory_iterator(d)) n += e.is_regular_file() ? 1 : 0;
    return n;
  }
};

}  // namespace

BOOST_FIXTURE_TEST_SUITE(local_sink, SinkFixture)

BOOST_AUTO_TEST_CASE(stores_segment_and_manifest_under_deterministic_key) {
  const auto& m = dev.recorded()[0];
  auto r = sink.store_blocking(spool(m), m);
  BOOST_REQUIRE(r);
  BOOST_CHECK_EQUAL(r->object_key, "BC-0300/00000001-" + proto::to_hex(m.sha256) + ".seg");
  BOOST_CHECK(r->sha256 == m.sha256);
  BOOST_CHECK_EQUAL(r->size, m.size);
  const auto seg = dir / "store" / r->object_key;
  BOOST_CHECK_EQUAL(std::filesystem::file_size(seg), m.size);
  std::ifstream mj(seg.parent_path() / ("00000001-" + proto::to_hex(m.sha256) + ".manifest.json"));
  std::string text((std::istreambuf_iterator<char>(mj)), std::istreambuf_iterator<char>());
  const auto j = boost::json::parse(text).as_object();
  BOOST_CHECK_EQUAL(j.at("sha256").as_string(), proto::to_hex(m.sha256));
  BOOST_CHECK_EQUAL(j.at("recording_id").as_string(), m.recording_id);
  BOOST_CHECK_EQUAL(count_files(seg.parent_path()), 2u);  // no temp files left behind
}

BOOST_AUTO_TEST_CASE(storing_again_is_idempotent) {
  const auto& m = dev.recorded()[1];
  const auto p = spool(m);
  auto a = sink.store_blocking(p, m);
  auto b = sink.store_blocking(p, m);
  BOOST_REQUIRE(a && b);
  BOOST_CHECK_EQUAL(a->object_key, b->object_key);
  BOOST_CHECK_EQUAL(count_files(dir / "store" / "BC-0300"), 2u);
}

// The dock's custody note rides with the manifest; a retry from another docking (another note)
// is still the same object, and the first note stands.
BOOST_AUTO_TEST_CASE(the_custody_note_is_stored_and_a_retry_keeps_the_first) {
  const auto& m = dev.recorded().front();
  const auto p = spool(m);
  dock::Custody first{"dock-01", 1500, {}, {}};
  dock::Custody later{"dock-02", std::nullopt, {}, {}};
  BOOST_REQUIRE(sink.store_blocking(p, m, first));
  BOOST_REQUIRE(sink.store_blocking(p, m, later));
  auto json_path = dir / "store" / dock::LocalDirSink::object_key(m);
  json_path.replace_extension(".manifest.json");
  const auto j = boost::json::parse(test::slurp_text(json_path)).as_object();
  BOOST_CHECK_EQUAL(j.at("custody").at("dock_id").as_string(), "dock-01");
  BOOST_CHECK_EQUAL(j.at("custody").at("camera_clock_minus_dock_ms").to_number<int>(), 1500);
  BOOST_CHECK_EQUAL(count_files(dir / "store" / "BC-0300"), 2u);
}

BOOST_AUTO_TEST_CASE(wrong_bytes_are_refused_and_leave_nothing) {
  const auto& m = dev.recorded()[0];
  auto r = sink.store_blocking(spool(m, true), m);
  BOOST_REQUIRE(!r);
  BOOST_CHECK(r.error() == dock::sink_errc::content_mismatch);
  for (const auto& e : std::filesystem::directory_iterator(dir / "store" / "BC-0300"))
    BOOST_CHECK_MESSAGE(e.path().extension() != ".seg" && e.path().extension() != ".tmp", e.path());
}

BOOST_AUTO_TEST_CASE(different_bytes_under_an_existing_key_are_never_overwritten) {
  const auto& m = dev.recorded()[0];
  BOOST_REQUIRE(sink.store_blocking(spool(m), m));
  const auto seg = dir / "store" / dock::LocalDirSink::object_key(m);
  {
    std::fstream f(seg, std::ios::in | std::ios::out | std::ios::binary);
    f.seekp(10);
    f.put('X');
  }
  auto r = sink.store_blocking(spool(m), m);
  BOOST_REQUIRE(!r);
  BOOST_CHECK(r.error() == dock::sink_errc::object_conflict);
}

BOOST_AUTO_TEST_CASE(a_stored_manifest_is_never_replaced_by_a_different_one) {
  auto m = dev.recorded()[0];
  BOOST_REQUIRE(sink.store_blocking(spool(m), m));
  auto other = m;
  other.recording_id = "REC-forged";
  auto r = sink.store_blocking(spool(m), other);
  BOOST_REQUIRE(!r);
  BOOST_CHECK(r.error() == dock::sink_errc::object_conflict);
  std::ifstream mj(dir / "store" / "BC-0300" / ("00000001-" + proto::to_hex(m.sha256) + ".manifest.json"));
  std::string text((std::istreambuf_iterator<char>(mj)), std::istreambuf_iterator<char>());
  BOOST_CHECK_EQUAL(boost::json::parse(text).at("recording_id").as_string(), m.recording_id);
}

BOOST_AUTO_TEST_CASE(missing_spool_is_an_error) {
  const auto& m = dev.recorded()[0];
  auto r = sink.store_blocking(dir / "nope", m);
  BOOST_REQUIRE(!r);
  BOOST_CHECK(r.error() == dock::sink_errc::spool_unreadable);
}

BOOST_AUTO_TEST_SUITE_END()
