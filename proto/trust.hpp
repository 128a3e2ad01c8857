#pragma once
/// The signed and encrypted structures of protocol v2 (PROTOCOL.md sections 5.5, 6.4 and 9):
/// the mutual-authentication transcript, the manifest signature, the custody receipt and the
/// segment encryption (AES-256-GCM per chunk, per-segment key wrapped to the organisation's
/// recording key by ECDH P-256 + HKDF-SHA256). Both the dock and the camera side use these.

#include "proto/crypto.hpp"
#include "proto/manifest.hpp"
#include "proto/messages.hpp"

#include <boost/system/result.hpp>

#include <string>

namespace bodydock::proto {

inline constexpr std::size_t kNonceSize = 32;

enum class AuthRole { camera, dock };

/// The bytes each side signs during mutual authentication. Both nonces and both certificates
/// are in it, so a signature from an earlier session (other nonces) or for another party
/// (other certificate) never verifies; the role label keeps one side's signature from being
/// reflected as the other's.
Bytes auth_transcript(AuthRole signer, const Digest& dock_nonce, const Digest& camera_nonce, ByteView dock_cert,
                      ByteView camera_cert, std::string_view serial);

/// What the camera signs for a manifest: a label and the manifest's signed part.
Bytes manifest_signing_input(const Manifest& m);
void sign_manifest(Manifest& m, const crypto::PrivateKey& device_key);
[[nodiscard]] bool manifest_signature_valid(const Manifest& m, const crypto::PublicKey& device_key);

/// A custody receipt (PROTOCOL.md section 9): the dock's signed statement that storage holds a
/// segment, which the camera verifies before erasing it.
struct Receipt {
  std::string camera_serial;
  std::uint64_t seq = 0;
  Digest sha256{};            ///< segment content, as storage confirmed it
  Digest manifest_sha256{};   ///< the manifest the segment was pulled under
  std::string stored_at;      ///< where storage holds it (object key or URL)
  std::int64_t stored_utc_ms = 0;
  Bytes dock_cert;            ///< DER, the signer
  Bytes signature;            ///< ECDSA-SHA256 by the dock key over receipt_signing_input()
};
inline constexpr std::uint8_t kReceiptVersion = 2;
Bytes receipt_signing_input(const Receipt& r);
Bytes encode_receipt(const Receipt& r);
boost::system::result<Receipt> decode_receipt(ByteView bytes);
Receipt make_receipt(Receipt r, const crypto::PrivateKey& dock_key);

/// Segment encryption. Ciphertext chunk i of a manifest is AES-256-GCM of plaintext chunk i
/// (chunk_size - 16 bytes, the last may be short) with its 16-byte tag appended.
inline constexpr std::uint8_t kEncAes256GcmChunks = 1;
inline constexpr std::uint8_t kWrapEcdhP256Hkdf = 1;
inline constexpr std::size_t kKeyWrapSize = 1 + crypto::kPointSize + crypto::kKeySize + crypto::kGcmTag;  // 114

/// Plaintext bytes in a segment of `plain_size` for a ciphertext chunk size.
std::uint64_t ciphertext_size(std::uint64_t plain_size, std::uint32_t chunk_size);
/// Encrypts plaintext chunk `index` (`last` when it is the segment's final chunk) into `out`
/// (plain.size() + 16 bytes).
void seal_chunk(ByteView segment_key, std::string_view serial, std::uint64_t seq, std::uint64_t index, bool last, ByteView plain,
                std::span<std::uint8_t> out);
[[nodiscard]] bool open_chunk(ByteView segment_key, std::string_view serial, std::uint64_t seq, std::uint64_t index, bool last,
                              ByteView sealed, std::span<std::uint8_t> out);
/// Wraps a 32-byte segment key to the organisation's recording key (a fresh ephemeral key each time).
Bytes wrap_segment_key(ByteView segment_key, const crypto::PublicKey& org_key, std::string_view serial, std::uint64_t seq);
/// Unwraps with the organisation's private key; fails (CryptoError) when it was not wrapped to it.
Bytes unwrap_segment_key(ByteView key_wrap, const crypto::PrivateKey& org_key, std::string_view serial, std::uint64_t seq);

}  // namespace bodydock::proto
