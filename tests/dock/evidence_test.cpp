// Evidence verification at the centre: a store written the way the dock writes it verifies; each
// kind of tampering is reported exactly, naming camera and segment: a flipped byte (and its
// chunk), a deleted segment (a gap), a deleted file, two swapped files, an edited manifest.
#include "dock/evidence.hpp"
#include "dock/emulated_fleet.hpp"
#include "dock/local_sink.hpp"
#include "proto/sha256.hpp"
#include "proto/trust.hpp"
#include "hw/camera_device.hpp"
#include "support/fleet.hpp"
#include "support/sandbox.hpp"

#include <boost/json.hpp>
#include <boost/test/unit_test.hpp>

#include <fstream>

using namespace bodydock;

namespace {

struct StoreFixture {
  test::TempDir dir;
  std::filesystem::path store = dir / "store";
  hw::CameraDevice cam{[] {
    hw::CameraSpec s;
    s.serial = "BC-0900";
    s.segments = 5;
    s.segment_bytes = 200'000;
    s.chunk_size = 65536;
    s.seed = 3;
    s.trust = test::camera_keys(s.serial);
    return s;
  }()};

  StoreFixture() {
    // Exactly the embedded sink's layout: <serial>/<seq>-<sha>.seg beside <...>.manifest.json.
    for (const auto& m : cam.recorded()) {
      const auto seg = store / dock::LocalDirSink::object_key(m);
      std::filesystem::create_directories(seg.parent_path());
      proto::Bytes bytes(m.size);
      cam.content(m.seq, 0, bytes);
      std::ofstream(seg, std::ios::binary).write(reinterpret_cast<const char*>(bytes.data()), static_cast<std::streamsize>(bytes.size()));
      write_manifest(m);
    }
  }
  /// As the dock writes it: the manifest with the custody note naming the camera's certificate.
  void write_manifest(const proto::Manifest& m, const proto::Bytes* cert = nullptr) const {
    auto json = proto::manifest_to_json(m);
    boost::json::object c;
    c["dock_id"] = "dock-test";
    c["officer"] = "officer-BC-0900";
    c["camera_certificate"] = proto::to_hex(cert ? *cert : cam.spec().trust->device_cert);
    json["custody"] = std::move(c);
    std::ofstream(manifest(m.seq), std::ios::trunc) << boost::json::serialize(json) << "\n";
  }
  std::filesystem::path segment(std::uint64_t seq) const { return store / dock::LocalDirSink::object_key(cam.recorded().at(seq - 1)); }
  std::filesystem::path manifest(std::uint64_t seq) const {
    auto p = segment(seq);
    return p.replace_extension(".manifest.json");
  }
  dock::EvidenceReport verify() const {
    const auto ca = proto::crypto::TrustAnchor::from_pem(test::slurp_text(test::fleet().fleet().dir() / "ca.crt"), "");
    auto r = dock::verify_evidence(store, ca);
    for (const auto& p : r.problems) BOOST_TEST_MESSAGE("problem: " << p);
    return r;
  }
};

bool has(const std::vector<std::string>& problems, const std::string& part) {
  return std::any_of(problems.begin(), problems.end(), [&](const auto& p) { return p.find(part) != std::string::npos; });
}

}  // namespace

BOOST_FIXTURE_TEST_SUITE(evidence, StoreFixture)

BOOST_AUTO_TEST_CASE(an_untouched_store_verifies) {
  const auto r = verify();
  BOOST_CHECK(r.ok());
  BOOST_CHECK_EQUAL(r.cameras, 1u);
  BOOST_CHECK_EQUAL(r.segments, 5u);
  BOOST_CHECK_EQUAL(r.intact, 5u);
}

BOOST_AUTO_TEST_CASE(a_flipped_byte_is_named_with_its_chunk) {
  std::fstream f(segment(2), std::ios::in | std::ios::out | std::ios::binary);
  f.seekg(70'000);
  char c = 0;
  f.read(&c, 1);
  c = static_cast<char>(c ^ 0x10);
  f.seekp(70'000);
  f.write(&c, 1);
  f.close();
  const auto r = verify();
  BOOST_REQUIRE_EQUAL(r.problems.size(), 1u);
  BOOST_CHECK(has(r.problems, "BC-0900 segment 2: chunk 1 (bytes 65536..) does not match its hash (altered)"));
  BOOST_CHECK_EQUAL(r.intact, 4u);
}

BOOST_AUTO_TEST_CASE(a_deleted_segment_is_a_named_gap) {
  std::filesystem::remove(segment(3));
  std::filesystem::remove(manifest(3));
  const auto r = verify();
  BOOST_REQUIRE_EQUAL(r.problems.size(), 1u);
  BOOST_CHECK(has(r.problems, "BC-0900: segments 3..3 are missing (gap in the chain)"));
}

BOOST_AUTO_TEST_CASE(a_deleted_file_is_named) {
  std::filesystem::remove(segment(4));
  const auto r = verify();
  BOOST_REQUIRE_EQUAL(r.problems.size(), 1u);
  BOOST_CHECK(has(r.problems, "BC-0900 segment 4: segment file missing"));
}

BOOST_AUTO_TEST_CASE(two_swapped_files_are_named) {
  const auto tmp = dir / "swap";
  std::filesystem::rename(segment(1), tmp);
  std::filesystem::rename(segment(2), segment(1));
  std::filesystem::rename(tmp, segment(2));
  const auto r = verify();
  BOOST_REQUIRE_EQUAL(r.problems.size(), 2u);
  BOOST_CHECK(has(r.problems, "BC-0900 segment 1: the file holds segment 2's content"));
  BOOST_CHECK(has(r.problems, "BC-0900 segment 2: the file holds segment 1's content"));
}

BOOST_AUTO_TEST_CASE(an_edited_manifest_is_named) {
  auto text = test::slurp_text(manifest(3));
  const auto at = text.find("\"trigger_off\":\"");
  BOOST_REQUIRE(at != std::string::npos);
  text.insert(at + 15, "x");
  std::ofstream(manifest(3), std::ios::trunc) << text;
  const auto r = verify();
  BOOST_CHECK(has(r.problems, "BC-0900 segment 3: manifest edited"));
  BOOST_CHECK(has(r.problems, "BC-0900 segment 3: the camera's signature does not verify"));  // the signature shows it
  BOOST_CHECK(has(r.problems, "BC-0900 segment 4: does not chain to segment 3"));  // and the chain
  BOOST_CHECK_EQUAL(r.problems.size(), 3u);
}

// A manifest re-made consistently (hash and chain fields recomputed) by someone without the
// camera's key is caught by the signature alone.
BOOST_AUTO_TEST_CASE(a_forged_signature_is_named) {
  auto m = cam.recorded().at(4);
  m.trigger_off = "button";
  proto::sign_manifest(m, proto::crypto::PrivateKey::generate());
  write_manifest(m);
  const auto r = verify();
  BOOST_REQUIRE_EQUAL(r.problems.size(), 1u);
  BOOST_CHECK(has(r.problems, "BC-0900 segment 5: the camera's signature does not verify"));
}

// A certificate the fleet never issued (another CA) does not vouch for a signature, and the
// centre can tell when it verified without the fleet CA.
BOOST_AUTO_TEST_CASE(a_certificate_from_another_fleet_is_named) {
  dock::EmulatedFleet other(dir / "other");
  const auto keys = other.camera("BC-0900", "officer-x");
  auto m = cam.recorded().at(1);
  proto::sign_manifest(m, keys->device_key);
  write_manifest(m, &keys->device_cert);
  const auto r = verify();
  BOOST_REQUIRE_EQUAL(r.problems.size(), 1u);
  BOOST_CHECK(has(r.problems, "BC-0900 segment 2: camera certificate: unable to get local issuer certificate"));
  const auto without_ca = dock::verify_evidence(store);
  BOOST_CHECK(without_ca.ok());
  BOOST_REQUIRE_EQUAL(without_ca.notes.size(), 1u);
}

BOOST_AUTO_TEST_SUITE_END()
