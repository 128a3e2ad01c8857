// Manifests: round trip, JSON form, chain hash, and refusal of inconsistent or oversized ones.
#include "proto/manifest.hpp"
#include "proto/sha256.hpp"

#include <boost/json.hpp>
#include <boost/test/unit_test.hpp>

using namespace bodydock::proto;

namespace {

Manifest make(std::uint64_t size, std::uint32_t chunk) {
  Manifest m;
  m.camera_serial = "BC-7";
  m.seq = 1;
  m.recording_id = "REC-1";
  m.start_utc_ms = 1000;
  m.end_utc_ms = 2000;
  m.pre_record_s = 60;
  m.trigger_on = "button";
  m.trigger_off = "segment-rollover";
  m.firmware = "fw";
  m.size = size;
  m.chunk_size = chunk;
  m.chunk_sha256.resize(m.chunk_count());
  m.key_wrap.assign(114, 0x5A);
  m.signature = {1, 2, 3};
  return m;
}

}  // namespace

BOOST_AUTO_TEST_SUITE(manifest)

BOOST_AUTO_TEST_CASE(round_trip_keeps_every_field) {
  auto m = make(10000, 4096);
  m.signature = {1, 2, 3};
  m.chunk_sha256[2].fill(9);
  auto d = decode_manifest(encode_manifest(m));
  BOOST_REQUIRE(d);
  BOOST_CHECK(encode_manifest(*d) == encode_manifest(m));
  BOOST_CHECK_EQUAL(d->chunk_count(), 3u);
  BOOST_CHECK_EQUAL(d->chunk_length(2), 10000u - 8192u);
  BOOST_CHECK_EQUAL(d->chunk_length(3), 0u);
}

BOOST_AUTO_TEST_CASE(every_truncation_is_refused) {
  const auto bytes = encode_manifest(make(10000, 4096));
  for (std::size_t n = 0; n < bytes.size(); ++n) BOOST_CHECK(!decode_manifest(ByteView(bytes).first(n)));
}

BOOST_AUTO_TEST_CASE(inconsistent_manifests_are_refused) {
  struct Case {
    const char* name;
    std::function<void(Manifest&)> spoil;
  };
  const Case cases[] = {
      {"chunk count does not match size", [](Manifest& m) { m.chunk_sha256.pop_back(); }},
      {"chunk size below minimum", [](Manifest& m) { m.chunk_size = 100; m.chunk_sha256.resize(m.chunk_count()); }},
      {"chunk size above maximum", [](Manifest& m) { m.chunk_size = kMaxChunkSize * 2; m.chunk_sha256.resize(m.chunk_count()); }},
      {"ends before it starts", [](Manifest& m) { m.end_utc_ms = m.start_utc_ms - 1; }},
      {"no serial", [](Manifest& m) { m.camera_serial.clear(); }},
      {"signature too long", [](Manifest& m) { m.signature.resize(kMaxSignature + 1); }},
      // v2: every segment is encrypted and signed on the camera.
      {"unsigned", [](Manifest& m) { m.signature.clear(); }},
      {"not encrypted", [](Manifest& m) { m.encryption = 0; }},
      {"unknown encryption", [](Manifest& m) { m.encryption = 2; }},
      {"no wrapped key", [](Manifest& m) { m.key_wrap.clear(); }},
      {"wrapped key too long", [](Manifest& m) { m.key_wrap.resize(kMaxKeyWrap + 1); }},
  };
  for (const auto& c : cases) {
    BOOST_TEST_CONTEXT(c.name) {
      auto m = make(10000, 4096);
      c.spoil(m);
      BOOST_CHECK(!decode_manifest(encode_manifest(m)));
    }
  }
  // A manifest claiming more chunks than the limit never allocates them.
  auto big = make(static_cast<std::uint64_t>(kMaxChunks + 1) * 4096, 4096);
  BOOST_CHECK(!decode_manifest(encode_manifest(big)));
}

BOOST_AUTO_TEST_CASE(chain_hash_covers_content_and_key_not_signature) {
  auto a = make(10000, 4096);
  auto b = a;
  b.signature = {7};
  BOOST_CHECK(manifest_hash(a) == manifest_hash(b));
  b.sha256[0] ^= 1;
  BOOST_CHECK(manifest_hash(a) != manifest_hash(b));
  auto c = a;
  c.key_wrap[5] ^= 1;
  BOOST_CHECK(manifest_hash(a) != manifest_hash(c));
}

BOOST_AUTO_TEST_CASE(json_form_round_trips) {
  auto m = make(10000, 4096);
  m.chunk_sha256[1].fill(3);
  auto back = manifest_from_json(manifest_to_json(m));
  BOOST_REQUIRE(back);
  BOOST_CHECK(encode_manifest(*back) == encode_manifest(m));
  auto j = manifest_to_json(m);
  j["key_wrap"] = "zz";
  BOOST_CHECK(!manifest_from_json(j));
}

BOOST_AUTO_TEST_CASE(json_form_names_the_evidence) {
  auto m = make(10000, 4096);
  m.sha256.fill(0xAB);
  const auto j = manifest_to_json(m);
  BOOST_CHECK_EQUAL(j.at("camera_serial").as_string(), "BC-7");
  BOOST_CHECK_EQUAL(j.at("sha256").as_string(), to_hex(m.sha256));
  BOOST_CHECK_EQUAL(j.at("chunk_sha256").as_array().size(), 3u);
  BOOST_CHECK_EQUAL(j.at("pre_record_s").to_number<int>(), 60);
}

BOOST_AUTO_TEST_CASE(sha256_known_answer_and_hex) {
  const std::string abc = "abc";
  const auto d = Sha256::of({reinterpret_cast<const std::uint8_t*>(abc.data()), abc.size()});
  BOOST_CHECK_EQUAL(to_hex(d), "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad");
  BOOST_CHECK(digest_from_hex(to_hex(d)) == d);
  BOOST_CHECK(!digest_from_hex("xyz"));
  BOOST_CHECK(!digest_from_hex(std::string(64, 'g')));
}

BOOST_AUTO_TEST_SUITE_END()
