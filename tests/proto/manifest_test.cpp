// Manifests: round trip, JSON form, chain hash, refusal of inconsistent or oversized ones, and
// versions: version 3 carries the priority flag, version 2 still decodes byte-identically.
#include "proto/manifest.hpp"
#include "proto/sha256.hpp"

#include <boost/json.hpp>
#include <boost/test/unit_test.hpp>

#include <stdexcept>

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

/// A version 2 manifest as a version 2 camera wrote it, field by field (PROTOCOL.md 6.1),
/// independently of encode_manifest(): no flags byte between the key wrap and the signature.
Bytes v2_signed_part(const Manifest& m) {
  Bytes out;
  Writer w(out);
  w.u16(2);
  w.str(m.camera_serial);
  w.u64(m.seq);
  w.str(m.recording_id);
  w.u16(m.segment_index);
  w.u8(m.last_in_recording ? 1 : 0);
  w.i64(m.start_utc_ms);
  w.i64(m.end_utc_ms);
  w.u16(m.pre_record_s);
  w.str(m.trigger_on);
  w.str(m.trigger_off);
  w.str(m.firmware);
  w.u64(m.size);
  w.u32(m.chunk_size);
  w.u32(static_cast<std::uint32_t>(m.chunk_sha256.size()));
  for (const auto& d : m.chunk_sha256) w.digest(d);
  w.digest(m.sha256);
  w.digest(m.prev_manifest_sha256);
  w.u8(m.encryption);
  w.u16(static_cast<std::uint16_t>(m.key_wrap.size()));
  w.raw(m.key_wrap);
  return out;
}

Bytes v2_manifest(const Manifest& m) {
  Bytes out = v2_signed_part(m);
  Writer w(out);
  w.u16(static_cast<std::uint16_t>(m.signature.size()));
  w.raw(m.signature);
  return out;
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
  auto flagged = make(10000, 4096);
  flagged.flags = kManifestFlagPriority;
  for (const auto& bytes : {encode_manifest(flagged), v2_manifest(make(10000, 4096))}) {
    BOOST_REQUIRE(decode_manifest(bytes));
    for (std::size_t n = 0; n < bytes.size(); ++n) BOOST_CHECK(!decode_manifest(ByteView(bytes).first(n)));
    Bytes longer = bytes;
    longer.push_back(0);
    BOOST_CHECK(!decode_manifest(longer));
  }
}

BOOST_AUTO_TEST_CASE(round_trip_keeps_the_priority_flag) {
  for (const std::uint8_t flags : {std::uint8_t{0}, kManifestFlagPriority}) {
    BOOST_TEST_CONTEXT("flags " << int(flags)) {
      auto m = make(10000, 4096);
      m.flags = flags;
      const auto bytes = encode_manifest(m);
      BOOST_CHECK_EQUAL(bytes[0] | bytes[1] << 8, 3);  // manifest_version, u16 little-endian
      auto d = decode_manifest(bytes);
      BOOST_REQUIRE(d);
      BOOST_CHECK_EQUAL(d->version, 3);
      BOOST_CHECK_EQUAL(d->flags, flags);
      BOOST_CHECK_EQUAL(d->priority(), flags != 0);
      BOOST_CHECK(encode_manifest(*d) == bytes);
      const auto j = manifest_to_json(m);
      BOOST_CHECK_EQUAL(j.at("manifest_version").to_number<int>(), 3);
      BOOST_CHECK_EQUAL(j.at("priority").as_bool(), flags != 0);
      auto back = manifest_from_json(j);
      BOOST_REQUIRE(back);
      BOOST_CHECK(encode_manifest(*back) == bytes);
    }
  }
  // Version 3 needs the key in its JSON form, as a boolean.
  auto j = manifest_to_json(make(10000, 4096));
  j["priority"] = 1;
  BOOST_CHECK(!manifest_from_json(j));
  j.erase("priority");
  BOOST_CHECK(!manifest_from_json(j));
}

BOOST_AUTO_TEST_CASE(priority_flag_is_in_the_chain_hash) {
  auto a = make(10000, 4096);
  auto b = a;
  b.flags = kManifestFlagPriority;
  BOOST_CHECK(manifest_hash(a) != manifest_hash(b));
  BOOST_CHECK(encode_signed_part(b).back() == kManifestFlagPriority);  // the last signed byte
}

BOOST_AUTO_TEST_CASE(reserved_flag_bits_are_refused) {
  for (unsigned bit = 1; bit < 8; ++bit) {
    BOOST_TEST_CONTEXT("bit " << bit) {
      auto m = make(10000, 4096);
      m.flags = static_cast<std::uint8_t>(kManifestFlagPriority | (1u << bit));
      auto d = decode_manifest(encode_manifest(m));
      BOOST_REQUIRE(!d);
      BOOST_CHECK(d.error() == make_error_code(errc::bad_request));
    }
  }
  auto m = make(10000, 4096);
  m.flags = 0xFE;
  BOOST_CHECK(decode_manifest(encode_manifest(m)).error() == make_error_code(errc::bad_request));
}

// Footage recorded before a firmware update keeps its version 2 manifest (PROTOCOL.md 6.3, 6.6):
// it must decode, re-encode to the very bytes the camera signed, and hash as it did, or the
// dock would see a conflict, a broken chain and a bad signature on every old segment.
BOOST_AUTO_TEST_CASE(version_2_manifest_still_decodes_byte_identically) {
  auto m = make(10000, 4096);
  m.chunk_sha256[1].fill(7);
  m.prev_manifest_sha256.fill(0x11);
  const auto bytes = v2_manifest(m);
  auto d = decode_manifest(bytes);
  BOOST_REQUIRE(d);
  BOOST_CHECK_EQUAL(d->version, 2);
  BOOST_CHECK_EQUAL(d->flags, 0);
  BOOST_CHECK(!d->priority());
  BOOST_CHECK(encode_manifest(*d) == bytes);
  BOOST_CHECK(encode_signed_part(*d) == v2_signed_part(m));
  BOOST_CHECK(manifest_hash(*d) == Sha256::of(v2_signed_part(m)));
  // The same fields as version 3 are another manifest (the version is signed and hashed).
  auto v3 = *d;
  v3.version = 3;
  BOOST_CHECK(manifest_hash(v3) != manifest_hash(*d));

  // Its JSON form is the one docks stored before version 3: no "priority" key.
  const auto j = manifest_to_json(*d);
  BOOST_CHECK_EQUAL(j.at("manifest_version").to_number<int>(), 2);
  BOOST_CHECK(!j.contains("priority"));
  auto back = manifest_from_json(j);
  BOOST_REQUIRE(back);
  BOOST_CHECK(encode_manifest(*back) == bytes);
  auto with_false = j;
  with_false["priority"] = false;
  BOOST_CHECK(manifest_from_json(with_false));
  auto with_true = j;
  with_true["priority"] = true;  // version 2 cannot carry the flag: an edited file
  BOOST_CHECK(!manifest_from_json(with_true));

  // Nor can one be written with it: that would drop the flag from what is signed.
  auto flagged = *d;
  flagged.flags = kManifestFlagPriority;
  BOOST_CHECK_THROW(encode_signed_part(flagged), std::invalid_argument);
}

BOOST_AUTO_TEST_CASE(unknown_manifest_versions_are_refused) {
  for (const std::uint16_t version : {std::uint16_t{0}, std::uint16_t{1}, std::uint16_t{4}, std::uint16_t{0xFFFF}}) {
    BOOST_TEST_CONTEXT("version " << version) {
      auto m = make(10000, 4096);
      m.version = version;
      BOOST_CHECK(decode_manifest(encode_manifest(m)).error() == make_error_code(errc::unsupported_version));
      auto j = manifest_to_json(make(10000, 4096));
      j["manifest_version"] = version;
      BOOST_CHECK(manifest_from_json(j).error() == make_error_code(errc::unsupported_version));
    }
  }
}

// PROTOCOL.md 6.2 names the size of the largest valid manifest; it must fit kMaxManifestSize.
BOOST_AUTO_TEST_CASE(largest_valid_manifest_fits_the_limit) {
  auto m = make(static_cast<std::uint64_t>(kMaxChunks) * kMinChunkSize, kMinChunkSize);
  m.camera_serial = std::string(kMaxSerial, 'S');
  m.recording_id = m.trigger_on = m.trigger_off = m.firmware = std::string(kMaxString, 'x');
  m.key_wrap.assign(kMaxKeyWrap, 1);
  m.signature.assign(kMaxSignature, 2);
  m.flags = kManifestFlagPriority;
  const auto v3 = encode_manifest(m);
  BOOST_CHECK(decode_manifest(v3));
  BOOST_CHECK_EQUAL(v3.size(), 526'518u);
  m.flags = 0;
  const auto v2 = v2_manifest(m);
  BOOST_CHECK(decode_manifest(v2));
  BOOST_CHECK_EQUAL(v2.size(), 526'517u);
  BOOST_CHECK_LE(v3.size(), kMaxManifestSize);
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
