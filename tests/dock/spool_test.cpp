// The spool and its checksums: the pull's spool sum is the standard XXH3-128, the same whether a
// pull ran in one go or resumed from a kept prefix, and the upload's check catches a changed byte
// with the sum and, for segments spooled before the sum existed, with the manifest's SHA-256.
#include "dock/spool.hpp"
#include "dock/spool_sum.hpp"
#include "proto/sha256.hpp"
#include "support/sandbox.hpp"

#include <boost/test/unit_test.hpp>

#include <fstream>
#include <random>

using namespace bodydock;

namespace {

proto::Bytes random_bytes(std::size_t n, unsigned seed) {
  std::mt19937 rng(seed);
  proto::Bytes b(n);
  for (auto& x : b) x = static_cast<std::uint8_t>(rng());
  return b;
}

proto::Bytes read_all(const std::filesystem::path& p) {
  std::ifstream in(p, std::ios::binary);
  return {std::istreambuf_iterator<char>(in), std::istreambuf_iterator<char>()};
}

proto::ByteView part(const proto::Bytes& b, std::size_t offset, std::size_t length) { return {b.data() + offset, length}; }

/// Spools `content` chunk by chunk from chunk `first` on, as a pull does; the file and hashes
/// hold whatever came before.
void spool_chunks(int fd, const proto::Bytes& content, std::size_t chunk, std::size_t first, dock::PullHash& h) {
  for (std::size_t off = first * chunk; off < content.size(); off += chunk) {
    const auto n = std::min(chunk, content.size() - off);
    BOOST_REQUIRE(dock::verify_and_spool(fd, part(content, off, n), off, proto::Sha256::of(part(content, off, n)), h));
  }
}

}  // namespace

BOOST_AUTO_TEST_SUITE(spool)

BOOST_AUTO_TEST_CASE(the_spool_sum_is_standard_xxh3_128) {
  // Known answers of `xxhsum -H2`, so any XXH3-128 tool at the centre can recompute it.
  BOOST_CHECK_EQUAL(dock::SpoolSum::of({}), "99aa06d3014798d86001c324468d497f");
  const std::string abc = "abc";
  BOOST_CHECK_EQUAL(dock::SpoolSum::of({reinterpret_cast<const std::uint8_t*>(abc.data()), abc.size()}), "06b05ab6733a618578af5f94892f3950");
  // Fed in pieces of any size, the same sum.
  const auto content = random_bytes(1'000'003, 1);
  dock::SpoolSum pieces;
  for (std::size_t off = 0, n = 1; off < content.size(); off += n, n = n * 3 + 1) pieces.update(part(content, off, std::min(n, content.size() - off)));
  BOOST_CHECK_EQUAL(pieces.hex(), dock::SpoolSum::of(content));
}

BOOST_AUTO_TEST_CASE(a_resumed_pull_gives_the_sum_and_sha256_of_the_whole_segment) {
  test::TempDir dir;
  const std::size_t chunk = 64 * 1024;
  const auto content = random_bytes(10 * chunk + 123, 2);
  const auto path = dir / "BC-1/00000001.part";
  {
    // The first docking gets 4 chunks and a torn fifth onto disk before the camera is pulled.
    dock::PullHash h;
    auto s = dock::open_spool(path, 0, h);
    for (std::size_t c = 0; c < 4; ++c) BOOST_REQUIRE(dock::verify_and_spool(s.fd.get(), part(content, c * chunk, chunk), c * chunk,
                                                                             proto::Sha256::of(part(content, c * chunk, chunk)), h));
    BOOST_REQUIRE(dock::verify_and_spool(s.fd.get(), part(content, 4 * chunk, 100), 4 * chunk, proto::Sha256::of(part(content, 4 * chunk, 100)), h));
  }
  // The next keeps the 4 durable chunks (the torn tail is cut off) and pulls the rest.
  dock::PullHash h;
  auto s = dock::open_spool(path, 4 * chunk, h);
  BOOST_CHECK_EQUAL(s.kept, 4 * chunk);
  spool_chunks(s.fd.get(), content, chunk, 4, h);
  BOOST_CHECK(read_all(path) == content);
  BOOST_CHECK(proto::digest_equal(h.sha256.finish(), proto::Sha256::of(content)));
  BOOST_CHECK_EQUAL(h.sum.hex(), dock::SpoolSum::of(content));
}

BOOST_AUTO_TEST_CASE(a_chunk_that_fails_its_hash_is_neither_written_nor_summed) {
  test::TempDir dir;
  const auto content = random_bytes(4096, 3);
  dock::PullHash h;
  auto s = dock::open_spool(dir / "x.part", 0, h);
  auto bad = content;
  bad[17] ^= 0x04;
  BOOST_CHECK(!dock::verify_and_spool(s.fd.get(), bad, 0, proto::Sha256::of(content), h));
  BOOST_CHECK_EQUAL(std::filesystem::file_size(dir / "x.part"), 0u);
  BOOST_REQUIRE(dock::verify_and_spool(s.fd.get(), content, 0, proto::Sha256::of(content), h));
  BOOST_CHECK_EQUAL(h.sum.hex(), dock::SpoolSum::of(content));
}

BOOST_AUTO_TEST_CASE(the_upload_check_catches_one_changed_bit_by_sum_or_by_sha256) {
  const auto content = random_bytes(3 * 65536 + 7, 4);
  const auto sha = proto::Sha256::of(content);
  const auto sum = dock::SpoolSum::of(content);
  auto changed = content;
  changed[2 * 65536 + 5] ^= 0x80;
  auto check = [&](const std::string& expect_sum, const proto::Bytes& bytes) {
    dock::SpoolCheck c(expect_sum, sha);
    for (std::size_t off = 0; off < bytes.size(); off += 65536) c.update(part(bytes, off, std::min<std::size_t>(65536, bytes.size() - off)));
    return c.matches();
  };
  BOOST_CHECK(check(sum, content));
  BOOST_CHECK(!check(sum, changed));
  BOOST_CHECK(check("", content));    // no sum recorded: the manifest's SHA-256
  BOOST_CHECK(!check("", changed));
  // The sum is what decides when there is one: a wrong sum fails even good bytes.
  BOOST_CHECK(!check(dock::SpoolSum::of(changed), content));
}

BOOST_AUTO_TEST_SUITE_END()
