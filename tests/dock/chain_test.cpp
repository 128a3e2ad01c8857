// The per-camera hash chain as the dock checks it while listing: a missing, reordered, replayed
// or duplicated segment is each named; a chain that starts where another dock left off is not.
#include "dock/chain.hpp"
#include "proto/sha256.hpp"

#include <boost/test/unit_test.hpp>

using namespace bodydock;

namespace {

/// A camera's chain of n manifests (content hashes distinct).
std::vector<proto::Manifest> make_chain(std::size_t n) {
  std::vector<proto::Manifest> out;
  proto::Digest prev{};
  for (std::size_t i = 1; i <= n; ++i) {
    proto::Manifest m;
    m.camera_serial = "BC-1";
    m.seq = i;
    m.size = 4096;
    m.chunk_size = 4096;
    m.chunk_sha256.resize(1);
    m.sha256.fill(static_cast<std::uint8_t>(i));
    m.prev_manifest_sha256 = prev;
    prev = proto::manifest_hash(m);
    out.push_back(m);
  }
  return out;
}

std::map<std::uint64_t, dock::KnownSegment> known(const std::vector<proto::Manifest>& ms, bool erased) {
  std::map<std::uint64_t, dock::KnownSegment> k;
  for (const auto& m : ms) k[m.seq] = {proto::manifest_hash(m), m.sha256, erased};
  return k;
}

std::string only(const std::vector<dock::ChainFinding>& f) {
  BOOST_REQUIRE_EQUAL(f.size(), 1u);
  return f[0].what;
}

}  // namespace

BOOST_AUTO_TEST_SUITE(manifest_chain)

BOOST_AUTO_TEST_CASE(an_intact_chain_has_no_findings) {
  const auto c = make_chain(5);
  BOOST_CHECK(dock::check_chain(c, {}).empty());
  // Listed in two dockings: the second continues from what the dock already holds.
  const std::vector<proto::Manifest> first(c.begin(), c.begin() + 2), rest(c.begin() + 2, c.end());
  BOOST_CHECK(dock::check_chain(rest, known(first, true)).empty());
  // A camera first seen here, whose earlier segments another dock took: fine.
  BOOST_CHECK(dock::check_chain(rest, {}).empty());
}

BOOST_AUTO_TEST_CASE(a_missing_segment_is_named) {
  auto c = make_chain(5);
  c.erase(c.begin() + 2);  // seq 3 never listed
  BOOST_CHECK_EQUAL(only(dock::check_chain(c, {})), "segment(s) missing between segment 2 and segment 4");
  // Also across dockings: the dock holds 1..2, the camera now lists 4..5.
  const auto full = make_chain(5);
  const std::vector<proto::Manifest> held(full.begin(), full.begin() + 2), later(full.begin() + 3, full.end());
  BOOST_CHECK_EQUAL(only(dock::check_chain(later, known(held, true))), "segment(s) missing between segment 2 and segment 4");
}

BOOST_AUTO_TEST_CASE(reordered_segments_are_named) {
  // Recorded as 1 -> 3 -> 2: each link is genuine, the numbering is not.
  auto c = make_chain(3);
  c[2].prev_manifest_sha256 = proto::manifest_hash(c[0]);
  c[1].prev_manifest_sha256 = proto::manifest_hash(c[2]);
  const auto f = dock::check_chain(c, {});
  BOOST_REQUIRE_EQUAL(f.size(), 2u);
  BOOST_CHECK_EQUAL(f[0].what, "segment 2 claims to follow segment 3 (out of order)");
  BOOST_CHECK_EQUAL(f[1].what, "segment 3 follows segment 1, skipping segment 2 (inserted or reordered)");
}

BOOST_AUTO_TEST_CASE(a_replayed_segment_is_named) {
  const auto c = make_chain(3);
  // The dock had all three erased; the camera lists segment 2 again.
  BOOST_CHECK_EQUAL(only(dock::check_chain({c[1]}, known(c, true))),
                    "segment 2 was erased on this dock's request and is listed again (replayed)");
}

BOOST_AUTO_TEST_CASE(a_replayed_segment_whose_row_was_pruned_is_still_named) {
  const auto c = make_chain(7);
  // Segments 1..5 were erased here; the rows of 1..3 were pruned since (through 3).
  const std::vector<proto::Manifest> kept = {c[3], c[4]};
  BOOST_CHECK_EQUAL(only(dock::check_chain({c[1]}, known(kept, true), 3)),
                    "segment 2 is at or before segment 3, which was erased on this dock's request long ago, and is listed again (replayed)");
  // The next shift links to the newest row kept: nothing to report.
  BOOST_CHECK(dock::check_chain({c[5], c[6]}, known(kept, true), 3).empty());
}

BOOST_AUTO_TEST_CASE(a_duplicated_segment_is_named) {
  auto c = make_chain(3);
  // Segment 3 carries segment 2's content again under its own number.
  c[2].sha256 = c[1].sha256;
  BOOST_CHECK_EQUAL(only(dock::check_chain(c, {})), "segment 3 has the same content as segment 2 (duplicated)");
}

BOOST_AUTO_TEST_CASE(a_restarted_chain_is_named) {
  auto c = make_chain(3);
  c[2].prev_manifest_sha256 = {};
  BOOST_CHECK_EQUAL(only(dock::check_chain(c, {})), "segment 3 starts a new chain although segment 2 comes before it");
}

BOOST_AUTO_TEST_SUITE_END()
