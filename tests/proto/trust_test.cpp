// The cryptography of protocol v2: known-answer HKDF (RFC 5869), AES-256-GCM tag checks, ECDSA,
// the auth transcript binding both nonces and certificates, receipts, and chunk encryption that
// a wrong key, another chunk position or a truncation cannot open.
#include "proto/trust.hpp"
#include "proto/sha256.hpp"

#include <boost/test/unit_test.hpp>

using namespace bodydock::proto;

namespace {
Bytes from_hex(std::string_view h) {
  Bytes out;
  for (std::size_t i = 0; i + 1 < h.size(); i += 2) out.push_back(static_cast<std::uint8_t>(std::stoi(std::string(h.substr(i, 2)), nullptr, 16)));
  return out;
}
}  // namespace

BOOST_AUTO_TEST_SUITE(trust)

BOOST_AUTO_TEST_CASE(hkdf_rfc5869_case_1) {
  const auto okm = crypto::hkdf_sha256(from_hex("0b0b0b0b0b0b0b0b0b0b0b0b0b0b0b0b0b0b0b0b0b0b"), from_hex("000102030405060708090a0b0c"),
                                       from_hex("f0f1f2f3f4f5f6f7f8f9"), 42);
  BOOST_CHECK_EQUAL(to_hex(okm), "3cb25f25faacd57a90434f64d0362f2a2d2d0a90cf1a5a4c5db02d56ecc4c5bf34007208d5b887185865");
}

BOOST_AUTO_TEST_CASE(gcm_refuses_any_change) {
  const Bytes key(32, 7);
  const Bytes nonce(12, 1);
  const Bytes aad = {1, 2, 3};
  const Bytes plain(1000, 0x42);
  Bytes sealed(plain.size() + 16);
  crypto::aes_gcm_seal(key, nonce, aad, plain, sealed);
  Bytes out(plain.size());
  BOOST_CHECK(crypto::aes_gcm_open(key, nonce, aad, sealed, out));
  BOOST_CHECK(out == plain);
  auto flipped = sealed;
  flipped[10] ^= 1;
  BOOST_CHECK(!crypto::aes_gcm_open(key, nonce, aad, flipped, out));
  BOOST_CHECK(std::all_of(out.begin(), out.end(), [](auto b) { return b == 0; }));  // nothing unauthenticated handed out
  BOOST_CHECK(!crypto::aes_gcm_open(key, nonce, Bytes{1, 2, 4}, sealed, out));
  BOOST_CHECK(!crypto::aes_gcm_open(key, Bytes(12, 2), aad, sealed, out));
}

BOOST_AUTO_TEST_CASE(ecdsa_and_points) {
  const auto k = crypto::PrivateKey::generate();
  const Bytes msg = {9, 9, 9};
  const auto sig = k.sign(msg);
  BOOST_CHECK(k.public_key().verify(msg, sig));
  BOOST_CHECK(!k.public_key().verify(Bytes{9, 9, 8}, sig));
  BOOST_CHECK(!crypto::PrivateKey::generate().public_key().verify(msg, sig));
  BOOST_CHECK(!k.public_key().verify(msg, Bytes{}));
  BOOST_CHECK(!k.public_key().verify(msg, Bytes(72, 0x30)));
  const auto point = k.public_key().point();
  BOOST_CHECK(crypto::PublicKey::from_point(point).verify(msg, sig));
  auto off_curve = point;
  off_curve[40] ^= 1;
  BOOST_CHECK_THROW(crypto::PublicKey::from_point(off_curve), crypto::CryptoError);
  BOOST_CHECK_THROW(crypto::PublicKey::from_point(Bytes(10, 4)), crypto::CryptoError);
  BOOST_CHECK_THROW(crypto::PrivateKey::from_pem("not a key"), crypto::CryptoError);
  BOOST_CHECK(crypto::PrivateKey::from_pem(k.pem()).public_key().point() == point);
}

BOOST_AUTO_TEST_CASE(transcript_binds_nonces_certificates_and_role) {
  Digest dn{}, cn{};
  dn.fill(1);
  cn.fill(2);
  const Bytes dc = {1, 2, 3}, cc = {4, 5, 6};
  const auto t = auth_transcript(AuthRole::camera, dn, cn, dc, cc, "BC-1");
  BOOST_CHECK(t != auth_transcript(AuthRole::dock, dn, cn, dc, cc, "BC-1"));
  Digest other = dn;
  other[0] ^= 1;
  BOOST_CHECK(t != auth_transcript(AuthRole::camera, other, cn, dc, cc, "BC-1"));
  BOOST_CHECK(t != auth_transcript(AuthRole::camera, dn, other, dc, cc, "BC-1"));
  BOOST_CHECK(t != auth_transcript(AuthRole::camera, dn, cn, cc, dc, "BC-1"));
  BOOST_CHECK(t != auth_transcript(AuthRole::camera, dn, cn, dc, cc, "BC-2"));
}

BOOST_AUTO_TEST_CASE(receipt_round_trip_and_signature) {
  const auto k = crypto::PrivateKey::generate();
  Receipt r;
  r.camera_serial = "BC-1";
  r.seq = 5;
  r.sha256.fill(3);
  r.manifest_sha256.fill(4);
  r.stored_at = "local BC-1/00000005-x.seg";
  r.stored_utc_ms = 123;
  r.dock_cert = {1, 2, 3};
  const auto bytes = encode_receipt(make_receipt(r, k));
  auto back = decode_receipt(bytes);
  BOOST_REQUIRE(back);
  BOOST_CHECK(k.public_key().verify(receipt_signing_input(*back), back->signature));
  back->seq = 6;
  BOOST_CHECK(!k.public_key().verify(receipt_signing_input(*back), back->signature));
  for (std::size_t n = 0; n < bytes.size(); ++n) BOOST_CHECK(!decode_receipt(ByteView(bytes).first(n)));
  BOOST_CHECK(!decode_receipt(Bytes(32, 0xAB)));  // a v1 receipt (bare SHA-256)
}

// The camera signs the priority flag with the rest: nobody on the way (dock, link, storage) can
// promote or demote a segment without the signature failing.
BOOST_AUTO_TEST_CASE(manifest_signature_covers_the_priority_flag) {
  const auto k = crypto::PrivateKey::generate();
  Manifest m;
  m.camera_serial = "BC-1";
  m.seq = 3;
  m.end_utc_ms = 1;
  m.size = 5000;
  m.chunk_size = 4096;
  m.chunk_sha256.resize(m.chunk_count());
  m.key_wrap.assign(kKeyWrapSize, 1);
  m.flags = kManifestFlagPriority;
  sign_manifest(m, k);
  auto listed = decode_manifest(encode_manifest(m));
  BOOST_REQUIRE(listed);
  BOOST_CHECK(listed->priority());
  BOOST_CHECK(manifest_signature_valid(*listed, k.public_key()));
  auto demoted = *listed;
  demoted.flags = 0;
  BOOST_CHECK(!manifest_signature_valid(demoted, k.public_key()));
  auto unflagged = m;
  unflagged.flags = 0;
  sign_manifest(unflagged, k);
  auto promoted = unflagged;
  promoted.flags = kManifestFlagPriority;
  BOOST_CHECK(manifest_signature_valid(unflagged, k.public_key()));
  BOOST_CHECK(!manifest_signature_valid(promoted, k.public_key()));
  // A version 2 manifest (signed by older firmware) still verifies after decoding.
  auto old = unflagged;
  old.version = 2;
  sign_manifest(old, k);
  auto old_listed = decode_manifest(encode_manifest(old));
  BOOST_REQUIRE(old_listed);
  BOOST_CHECK_EQUAL(old_listed->version, 2);
  BOOST_CHECK(manifest_signature_valid(*old_listed, k.public_key()));
  auto relabelled = *old_listed;
  relabelled.version = 3;  // the same fields presented as version 3
  BOOST_CHECK(!manifest_signature_valid(relabelled, k.public_key()));
}

BOOST_AUTO_TEST_CASE(chunks_open_only_in_place_with_the_key) {
  const auto org = crypto::PrivateKey::generate();
  const Bytes key(32, 9);
  const auto wrap = wrap_segment_key(key, org.public_key(), "BC-1", 7);
  BOOST_CHECK_EQUAL(wrap.size(), kKeyWrapSize);
  BOOST_CHECK(unwrap_segment_key(wrap, org, "BC-1", 7) == key);
  BOOST_CHECK(wrap != wrap_segment_key(key, org.public_key(), "BC-1", 7));  // a fresh ephemeral key each time
  BOOST_CHECK_THROW(unwrap_segment_key(wrap, org, "BC-2", 7), crypto::CryptoError);
  const Bytes plain(100, 1);
  Bytes sealed(116);
  seal_chunk(key, "BC-1", 7, 3, false, plain, sealed);
  Bytes out(100);
  BOOST_CHECK(open_chunk(key, "BC-1", 7, 3, false, sealed, out));
  BOOST_CHECK(out == plain);
  BOOST_CHECK(!open_chunk(key, "BC-1", 7, 4, false, sealed, out));   // moved to another position
  BOOST_CHECK(!open_chunk(key, "BC-1", 7, 3, true, sealed, out));    // presented as the last chunk
  BOOST_CHECK(!open_chunk(key, "BC-1", 8, 3, false, sealed, out));   // into another segment
  BOOST_CHECK(!open_chunk(Bytes(32, 8), "BC-1", 7, 3, false, sealed, out));
  BOOST_CHECK_EQUAL(ciphertext_size(100, 4096), 116u);
  BOOST_CHECK_EQUAL(ciphertext_size(4080, 4096), 4096u);
  BOOST_CHECK_EQUAL(ciphertext_size(4081, 4096), 4096u + 17u);
}

BOOST_AUTO_TEST_SUITE_END()
