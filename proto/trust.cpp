#include "proto/trust.hpp"

#include "proto/sha256.hpp"

#include <array>
#include <cstring>

namespace bodydock::proto {
namespace {

void label(Writer& w, std::string_view text) {
  w.raw(ByteView(reinterpret_cast<const std::uint8_t*>(text.data()), text.size()));
  w.u8(0);
}

std::array<std::uint8_t, 12> chunk_nonce(std::uint64_t index) {
  std::array<std::uint8_t, 12> n{};
  for (int i = 0; i < 8; ++i) n[4 + i] = static_cast<std::uint8_t>(index >> (8 * i));
  return n;
}

Bytes chunk_aad(std::string_view serial, std::uint64_t seq, std::uint64_t index, bool last) {
  Bytes aad;
  Writer w(aad);
  label(w, "bodydock-chunk-v2");
  w.str(serial);
  w.u64(seq);
  w.u64(index);
  w.u8(last ? 1 : 0);  // a segment cut short after a whole chunk does not decrypt
  return aad;
}

Bytes wrap_info(std::string_view serial, std::uint64_t seq) {
  Bytes info;
  Writer w(info);
  label(w, "bodydock-segment-key-v2");
  w.str(serial);
  w.u64(seq);
  return info;
}

}  // namespace

Bytes auth_transcript(AuthRole signer, const Digest& dock_nonce, const Digest& camera_nonce, ByteView dock_cert, ByteView camera_cert,
                      std::string_view serial) {
  Bytes t;
  Writer w(t);
  label(w, signer == AuthRole::camera ? "bodydock-auth-v2 camera" : "bodydock-auth-v2 dock");
  w.digest(dock_nonce);
  w.digest(camera_nonce);
  w.digest(Sha256::of(dock_cert));
  w.digest(Sha256::of(camera_cert));
  w.str(serial);
  return t;
}

Bytes manifest_signing_input(const Manifest& m) {
  Bytes out;
  Writer w(out);
  // The label names the protocol generation, not the manifest version: manifest_version is the
  // first signed field, so a version 2 and a version 3 manifest never share a signing input.
  label(w, "bodydock-manifest-v2");
  w.raw(encode_signed_part(m));
  return out;
}

void sign_manifest(Manifest& m, const crypto::PrivateKey& device_key) { m.signature = device_key.sign(manifest_signing_input(m)); }

bool manifest_signature_valid(const Manifest& m, const crypto::PublicKey& device_key) {
  return device_key.verify(manifest_signing_input(m), m.signature);
}

namespace {
/// The receipt's fields up to (not including) the signature: what is signed and sent.
void write_receipt_fields(Writer& w, const Receipt& r) {
  w.u8(kReceiptVersion);
  w.str(r.camera_serial);
  w.u64(r.seq);
  w.digest(r.sha256);
  w.digest(r.manifest_sha256);
  w.str(r.stored_at);
  w.i64(r.stored_utc_ms);
  w.blob(r.dock_cert);
}
}  // namespace

Bytes receipt_signing_input(const Receipt& r) {
  Bytes out;
  Writer w(out);
  label(w, "bodydock-receipt-v2");
  write_receipt_fields(w, r);
  return out;
}

Bytes encode_receipt(const Receipt& r) {
  Bytes out;
  Writer w(out);
  write_receipt_fields(w, r);
  w.blob(r.signature);
  return out;
}

boost::system::result<Receipt> decode_receipt(ByteView bytes) {
  Reader rd(bytes);
  if (rd.u8() != kReceiptVersion && rd.ok()) return make_error_code(errc::unsupported_version);
  Receipt r;
  r.camera_serial = rd.str();
  r.seq = rd.u64();
  r.sha256 = rd.digest();
  r.manifest_sha256 = rd.digest();
  r.stored_at = rd.str();
  r.stored_utc_ms = rd.i64();
  const auto cert = rd.blob(kMaxCertificate);
  r.dock_cert.assign(cert.begin(), cert.end());
  const auto sig = rd.blob(crypto::kMaxSignatureDer);
  r.signature.assign(sig.begin(), sig.end());
  if (auto e = rd.finish(); e != errc::ok) return make_error_code(e);
  if (!valid_serial(r.camera_serial) || r.dock_cert.empty() || r.signature.empty()) return make_error_code(errc::bad_request);
  return r;
}

Receipt make_receipt(Receipt r, const crypto::PrivateKey& dock_key) {
  r.signature = dock_key.sign(receipt_signing_input(r));
  return r;
}

std::uint64_t ciphertext_size(std::uint64_t plain_size, std::uint32_t chunk_size) {
  const std::uint64_t plain_chunk = chunk_size - crypto::kGcmTag;
  const std::uint64_t chunks = (plain_size + plain_chunk - 1) / plain_chunk;
  return plain_size + chunks * crypto::kGcmTag;
}

void seal_chunk(ByteView segment_key, std::string_view serial, std::uint64_t seq, std::uint64_t index, bool last, ByteView plain,
                std::span<std::uint8_t> out) {
  const auto nonce = chunk_nonce(index);
  crypto::aes_gcm_seal(segment_key, nonce, chunk_aad(serial, seq, index, last), plain, out);
}

bool open_chunk(ByteView segment_key, std::string_view serial, std::uint64_t seq, std::uint64_t index, bool last, ByteView sealed,
                std::span<std::uint8_t> out) {
  const auto nonce = chunk_nonce(index);
  return crypto::aes_gcm_open(segment_key, nonce, chunk_aad(serial, seq, index, last), sealed, out);
}

Bytes wrap_segment_key(ByteView segment_key, const crypto::PublicKey& org_key, std::string_view serial, std::uint64_t seq) {
  if (segment_key.size() != crypto::kKeySize) throw crypto::CryptoError("a segment key is 32 bytes");
  const auto ephemeral = crypto::PrivateKey::generate();
  const auto eph_point = ephemeral.public_key().point();
  Bytes salt = eph_point;
  const auto org_point = org_key.point();
  salt.insert(salt.end(), org_point.begin(), org_point.end());
  const auto info = wrap_info(serial, seq);
  const auto kek = crypto::hkdf_sha256(ephemeral.ecdh(org_key), salt, info, crypto::kKeySize);
  Bytes out;
  out.reserve(kKeyWrapSize);
  out.push_back(kWrapEcdhP256Hkdf);
  out.insert(out.end(), eph_point.begin(), eph_point.end());
  out.resize(kKeyWrapSize);
  const std::array<std::uint8_t, 12> nonce{};  // the KEK is used once: its ephemeral key is new
  crypto::aes_gcm_seal(kek, nonce, info, segment_key, std::span(out).subspan(1 + crypto::kPointSize));
  return out;
}

Bytes unwrap_segment_key(ByteView key_wrap, const crypto::PrivateKey& org_key, std::string_view serial, std::uint64_t seq) {
  if (key_wrap.size() != kKeyWrapSize || key_wrap[0] != kWrapEcdhP256Hkdf) throw crypto::CryptoError("unknown key-wrap format");
  const auto eph = crypto::PublicKey::from_point(key_wrap.subspan(1, crypto::kPointSize));
  Bytes salt(key_wrap.begin() + 1, key_wrap.begin() + 1 + crypto::kPointSize);
  const auto org_point = org_key.public_key().point();
  salt.insert(salt.end(), org_point.begin(), org_point.end());
  const auto info = wrap_info(serial, seq);
  const auto kek = crypto::hkdf_sha256(org_key.ecdh(eph), salt, info, crypto::kKeySize);
  Bytes key(crypto::kKeySize);
  const std::array<std::uint8_t, 12> nonce{};
  if (!crypto::aes_gcm_open(kek, nonce, info, key_wrap.subspan(1 + crypto::kPointSize), key))
    throw crypto::CryptoError("the segment key was not wrapped to this organisation key (or the wrap was altered)");
  return key;
}

}  // namespace bodydock::proto
