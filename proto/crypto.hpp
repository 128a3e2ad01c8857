#pragma once
/// The cryptography both ends of the protocol need (PROTOCOL.md sections 5.5, 6.4 and 9), on
/// OpenSSL 3: ECDSA P-256 keys and signatures, ECDH, HKDF-SHA256, AES-256-GCM, and checking a
/// fleet certificate against the fleet CA (and its CRL). No files, no I/O: PEM and DER come in
/// as bytes, so the camera side can use it as it is.
///
/// Errors in key material throw CryptoError with what is wrong; a signature, tag or certificate
/// that does not verify is an answer (false / a reason), never an exception.

#include "proto/wire.hpp"

#include <memory>
#include <stdexcept>
#include <string>
#include <string_view>
#include <variant>

struct evp_pkey_st;
struct x509_store_st;

namespace bodydock::proto::crypto {

struct CryptoError : std::runtime_error {
  using std::runtime_error::runtime_error;
};

inline constexpr std::size_t kPointSize = 65;      ///< uncompressed P-256 point
inline constexpr std::size_t kMaxSignatureDer = 72; ///< ECDSA P-256 DER signature
inline constexpr std::size_t kGcmTag = 16;
inline constexpr std::size_t kKeySize = 32;

class PublicKey {
 public:
  static PublicKey from_pem(std::string_view pem);
  /// An uncompressed P-256 point (65 bytes, 0x04 || x || y).
  static PublicKey from_point(ByteView point);
  /// ECDSA-SHA256 over `message`; `signature` is DER. Malformed signatures are just false.
  [[nodiscard]] bool verify(ByteView message, ByteView signature) const;
  [[nodiscard]] Bytes point() const;
  [[nodiscard]] std::string pem() const;
  [[nodiscard]] evp_pkey_st* get() const { return key_.get(); }

 private:
  friend class PrivateKey;
  friend class TrustAnchor;
  friend PublicKey cert_public_key(ByteView der);
  explicit PublicKey(std::shared_ptr<evp_pkey_st> k) : key_(std::move(k)) {}
  std::shared_ptr<evp_pkey_st> key_;
};

class PrivateKey {
 public:
  static PrivateKey generate();
  static PrivateKey from_pem(std::string_view pem);
  /// ECDSA-SHA256 signature of `message`, DER encoded (at most kMaxSignatureDer bytes).
  [[nodiscard]] Bytes sign(ByteView message) const;
  /// ECDH with a peer's P-256 point: the 32-byte shared x coordinate.
  [[nodiscard]] Bytes ecdh(const PublicKey& peer) const;
  [[nodiscard]] PublicKey public_key() const;
  [[nodiscard]] std::string pem() const;

 private:
  explicit PrivateKey(std::shared_ptr<evp_pkey_st> k) : key_(std::move(k)) {}
  std::shared_ptr<evp_pkey_st> key_;
};

/// Cryptographically random bytes.
Bytes random_bytes(std::size_t n);
/// HKDF-SHA256 (RFC 5869).
Bytes hkdf_sha256(ByteView ikm, ByteView salt, ByteView info, std::size_t length);
/// AES-256-GCM: `out` receives plaintext.size() bytes of ciphertext followed by the 16-byte tag.
void aes_gcm_seal(ByteView key, ByteView nonce12, ByteView aad, ByteView plaintext, std::span<std::uint8_t> out);
/// Opens ciphertext||tag into `out` (ciphertext size); false when the tag does not verify.
[[nodiscard]] bool aes_gcm_open(ByteView key, ByteView nonce12, ByteView aad, ByteView sealed, std::span<std::uint8_t> out);

/// The DER bytes of a PEM certificate.
Bytes cert_der(std::string_view pem);
/// The P-256 key in a DER certificate, trusting nothing about it (TrustAnchor::check decides trust).
PublicKey cert_public_key(ByteView der);

/// What a verified certificate says.
struct CertInfo {
  std::string name;     ///< CN: camera serial or dock id
  std::string role;     ///< OU: "dock" or "camera"
  std::string officer;  ///< pseudonym (cameras)
  PublicKey key;
};

/// The fleet CA (and optionally its CRL): decides whether a certificate belongs to the fleet.
class TrustAnchor {
 public:
  /// `crl_pem` may be empty (a camera without revocation data); when given, its signature is
  /// checked against the CA and every certificate is checked against it.
  static TrustAnchor from_pem(std::string_view ca_pem, std::string_view crl_pem);
  /// Checks a DER certificate: issued by this CA, within its validity period, not revoked, of
  /// `role`, and (when `name` is not empty) issued to `name`. The certificate or why not.
  [[nodiscard]] std::variant<CertInfo, std::string> check(ByteView der, std::string_view role, std::string_view name = {}) const;

 private:
  explicit TrustAnchor(std::shared_ptr<x509_store_st> s) : store_(std::move(s)) {}
  std::shared_ptr<x509_store_st> store_;
};

}  // namespace bodydock::proto::crypto
