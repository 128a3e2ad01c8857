#include "proto/crypto.hpp"

#include "proto/openssl_util.hpp"

#include <openssl/bio.h>
#include <openssl/core_names.h>
#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/kdf.h>
#include <openssl/pem.h>
#include <openssl/rand.h>
#include <openssl/x509.h>
#include <openssl/x509v3.h>

#include <cstring>

namespace bodydock::proto::crypto {
namespace {

using ossl::Bio;
using ossl::Cert;
using ossl::Free;
using MdCtx = std::unique_ptr<EVP_MD_CTX, Free<EVP_MD_CTX, EVP_MD_CTX_free>>;
using PkeyCtx = std::unique_ptr<EVP_PKEY_CTX, Free<EVP_PKEY_CTX, EVP_PKEY_CTX_free>>;
using CipherCtx = std::unique_ptr<EVP_CIPHER_CTX, Free<EVP_CIPHER_CTX, EVP_CIPHER_CTX_free>>;
using StoreCtx = std::unique_ptr<X509_STORE_CTX, Free<X509_STORE_CTX, X509_STORE_CTX_free>>;

std::shared_ptr<EVP_PKEY> own(EVP_PKEY* k) { return {k, EVP_PKEY_free}; }

[[noreturn]] void fail(const std::string& what) {
  char b[256] = {};
  if (const unsigned long e = ERR_get_error()) ERR_error_string_n(e, b, sizeof b);
  ERR_clear_error();
  throw CryptoError(b[0] ? what + " (" + b + ")" : what);
}

using ossl::bio_text;
using ossl::name_entry;

Bio mem(std::string_view text) { return ossl::mem_bio(text); }

void require_p256(EVP_PKEY* k, const char* what) {
  if (!ossl::is_p256(k)) throw CryptoError(std::string(what) + ": not an ECDSA P-256 key");
}

}  // namespace

PublicKey PublicKey::from_pem(std::string_view pem) {
  auto b = mem(pem);
  EVP_PKEY* k = PEM_read_bio_PUBKEY(b.get(), nullptr, nullptr, nullptr);
  if (!k) fail("not a PEM public key");
  auto key = own(k);
  require_p256(k, "public key");
  return PublicKey(key);
}

PublicKey PublicKey::from_point(ByteView point) {
  if (point.size() != kPointSize || point[0] != 0x04) throw CryptoError("not an uncompressed P-256 point");
  PkeyCtx ctx(EVP_PKEY_CTX_new_from_name(nullptr, "EC", nullptr));
  char group[] = "prime256v1";
  OSSL_PARAM params[] = {
      OSSL_PARAM_construct_utf8_string(OSSL_PKEY_PARAM_GROUP_NAME, group, 0),
      OSSL_PARAM_construct_octet_string(OSSL_PKEY_PARAM_PUB_KEY, const_cast<std::uint8_t*>(point.data()), point.size()),
      OSSL_PARAM_construct_end(),
  };
  EVP_PKEY* k = nullptr;
  if (!ctx || EVP_PKEY_fromdata_init(ctx.get()) != 1 || EVP_PKEY_fromdata(ctx.get(), &k, EVP_PKEY_PUBLIC_KEY, params) != 1)
    fail("not a point on P-256");
  auto key = own(k);
  // fromdata does not check that the point lies on the curve: a key from the wire must.
  PkeyCtx check(EVP_PKEY_CTX_new_from_pkey(nullptr, k, nullptr));
  if (!check || EVP_PKEY_public_check(check.get()) != 1) fail("not a point on P-256");
  return PublicKey(key);
}

bool PublicKey::verify(ByteView message, ByteView signature) const {
  if (signature.empty() || signature.size() > kMaxSignatureDer) return false;
  MdCtx ctx(EVP_MD_CTX_new());
  const bool ok = ctx && EVP_DigestVerifyInit(ctx.get(), nullptr, EVP_sha256(), nullptr, key_.get()) == 1 &&
                  EVP_DigestVerify(ctx.get(), signature.data(), signature.size(), message.data(), message.size()) == 1;
  ERR_clear_error();
  return ok;
}

Bytes PublicKey::point() const {
  Bytes out(kPointSize);
  std::size_t len = 0;
  if (EVP_PKEY_get_octet_string_param(key_.get(), OSSL_PKEY_PARAM_ENCODED_PUBLIC_KEY, out.data(), out.size(), &len) != 1 ||
      len != kPointSize)
    fail("cannot encode a public key");
  return out;
}

std::string PublicKey::pem() const {
  Bio b(BIO_new(BIO_s_mem()));
  if (!PEM_write_bio_PUBKEY(b.get(), key_.get())) fail("cannot encode a public key");
  return bio_text(b.get());
}

PrivateKey PrivateKey::generate() {
  EVP_PKEY* k = EVP_EC_gen("P-256");
  if (!k) fail("cannot generate a P-256 key");
  return PrivateKey(own(k));
}

PrivateKey PrivateKey::from_pem(std::string_view pem) {
  auto b = mem(pem);
  EVP_PKEY* k = PEM_read_bio_PrivateKey(b.get(), nullptr, nullptr, nullptr);
  if (!k) fail("not a PEM private key");
  auto key = own(k);
  require_p256(k, "private key");
  return PrivateKey(key);
}

Bytes PrivateKey::sign(ByteView message) const {
  MdCtx ctx(EVP_MD_CTX_new());
  Bytes sig(kMaxSignatureDer);
  std::size_t len = sig.size();
  if (!ctx || EVP_DigestSignInit(ctx.get(), nullptr, EVP_sha256(), nullptr, key_.get()) != 1 ||
      EVP_DigestSign(ctx.get(), sig.data(), &len, message.data(), message.size()) != 1)
    fail("cannot sign");
  sig.resize(len);
  return sig;
}

Bytes PrivateKey::ecdh(const PublicKey& peer) const {
  PkeyCtx ctx(EVP_PKEY_CTX_new_from_pkey(nullptr, key_.get(), nullptr));
  Bytes secret(32);
  std::size_t len = secret.size();
  if (!ctx || EVP_PKEY_derive_init(ctx.get()) != 1 || EVP_PKEY_derive_set_peer(ctx.get(), peer.get()) != 1 ||
      EVP_PKEY_derive(ctx.get(), secret.data(), &len) != 1 || len != secret.size())
    fail("ECDH failed");
  return secret;
}

PublicKey PrivateKey::public_key() const {
  // A public-only copy, so nothing that holds the public half can reach the private one.
  Bytes point(kPointSize);
  std::size_t len = 0;
  if (EVP_PKEY_get_octet_string_param(key_.get(), OSSL_PKEY_PARAM_ENCODED_PUBLIC_KEY, point.data(), point.size(), &len) != 1)
    fail("cannot read a public key");
  return PublicKey::from_point(point);
}

std::string PrivateKey::pem() const {
  Bio b(BIO_new(BIO_s_mem()));
  if (!PEM_write_bio_PrivateKey(b.get(), key_.get(), nullptr, nullptr, 0, nullptr, nullptr)) fail("cannot encode a private key");
  return bio_text(b.get());
}

Bytes random_bytes(std::size_t n) {
  Bytes out(n);
  if (n > 0 && RAND_bytes(out.data(), static_cast<int>(n)) != 1) fail("no randomness");
  return out;
}

Bytes hkdf_sha256(ByteView ikm, ByteView salt, ByteView info, std::size_t length) {
  std::unique_ptr<EVP_KDF, Free<EVP_KDF, EVP_KDF_free>> kdf(EVP_KDF_fetch(nullptr, "HKDF", nullptr));
  std::unique_ptr<EVP_KDF_CTX, Free<EVP_KDF_CTX, EVP_KDF_CTX_free>> ctx(kdf ? EVP_KDF_CTX_new(kdf.get()) : nullptr);
  char digest[] = "SHA256";
  // Empty salt or info are left out (RFC 5869: no salt means a zero salt); OpenSSL refuses
  // zero-length octet parameters.
  OSSL_PARAM params[5];
  std::size_t n = 0;
  params[n++] = OSSL_PARAM_construct_utf8_string(OSSL_KDF_PARAM_DIGEST, digest, 0);
  params[n++] = OSSL_PARAM_construct_octet_string(OSSL_KDF_PARAM_KEY, const_cast<std::uint8_t*>(ikm.data()), ikm.size());
  if (!salt.empty()) params[n++] = OSSL_PARAM_construct_octet_string(OSSL_KDF_PARAM_SALT, const_cast<std::uint8_t*>(salt.data()), salt.size());
  if (!info.empty()) params[n++] = OSSL_PARAM_construct_octet_string(OSSL_KDF_PARAM_INFO, const_cast<std::uint8_t*>(info.data()), info.size());
  params[n] = OSSL_PARAM_construct_end();
  Bytes out(length);
  if (!ctx || EVP_KDF_derive(ctx.get(), out.data(), out.size(), params) != 1) fail("HKDF failed");
  return out;
}

namespace {
CipherCtx gcm_init(ByteView key, ByteView nonce, ByteView aad, bool encrypt) {
  if (key.size() != kKeySize || nonce.size() != 12) throw CryptoError("AES-256-GCM needs a 32-byte key and a 12-byte nonce");
  CipherCtx ctx(EVP_CIPHER_CTX_new());
  int len = 0;
  if (!ctx || EVP_CipherInit_ex(ctx.get(), EVP_aes_256_gcm(), nullptr, key.data(), nonce.data(), encrypt ? 1 : 0) != 1 ||
      (!aad.empty() && EVP_CipherUpdate(ctx.get(), nullptr, &len, aad.data(), static_cast<int>(aad.size())) != 1))
    fail("AES-256-GCM setup failed");
  return ctx;
}
}  // namespace

void aes_gcm_seal(ByteView key, ByteView nonce12, ByteView aad, ByteView plaintext, std::span<std::uint8_t> out) {
  if (out.size() != plaintext.size() + kGcmTag) throw CryptoError("AES-256-GCM output must be plaintext + 16 bytes");
  auto ctx = gcm_init(key, nonce12, aad, true);
  int len = 0;
  int fin = 0;
  if (EVP_EncryptUpdate(ctx.get(), out.data(), &len, plaintext.data(), static_cast<int>(plaintext.size())) != 1 ||
      EVP_EncryptFinal_ex(ctx.get(), out.data() + len, &fin) != 1 ||
      EVP_CIPHER_CTX_ctrl(ctx.get(), EVP_CTRL_GCM_GET_TAG, kGcmTag, out.data() + plaintext.size()) != 1)
    fail("AES-256-GCM encryption failed");
}

bool aes_gcm_open(ByteView key, ByteView nonce12, ByteView aad, ByteView sealed, std::span<std::uint8_t> out) {
  if (sealed.size() < kGcmTag || out.size() != sealed.size() - kGcmTag) return false;
  auto ctx = gcm_init(key, nonce12, aad, false);
  int len = 0;
  int fin = 0;
  const bool ok = EVP_DecryptUpdate(ctx.get(), out.data(), &len, sealed.data(), static_cast<int>(out.size())) == 1 &&
                  EVP_CIPHER_CTX_ctrl(ctx.get(), EVP_CTRL_GCM_SET_TAG, kGcmTag, const_cast<std::uint8_t*>(sealed.data() + out.size())) == 1 &&
                  EVP_DecryptFinal_ex(ctx.get(), out.data() + len, &fin) == 1;
  ERR_clear_error();
  if (!ok) std::fill(out.begin(), out.end(), std::uint8_t{0});  // never hand out unauthenticated plaintext
  return ok;
}

Bytes cert_der(std::string_view pem) {
  auto b = mem(pem);
  Cert c(PEM_read_bio_X509(b.get(), nullptr, nullptr, nullptr));
  if (!c) fail("not a PEM certificate");
  const int n = i2d_X509(c.get(), nullptr);
  Bytes out(static_cast<std::size_t>(n > 0 ? n : 0));
  unsigned char* p = out.data();
  if (n <= 0 || i2d_X509(c.get(), &p) != n) fail("cannot encode a certificate");
  return out;
}

PublicKey cert_public_key(ByteView der) {
  const unsigned char* p = der.data();
  Cert cert(d2i_X509(nullptr, &p, static_cast<long>(der.size())));
  if (!cert || p != der.data() + der.size()) fail("not a DER certificate");
  EVP_PKEY* k = X509_get_pubkey(cert.get());
  if (!k) fail("certificate without a public key");
  auto key = own(k);
  require_p256(k, "certificate key");
  return PublicKey(key);
}

TrustAnchor TrustAnchor::from_pem(std::string_view ca_pem, std::string_view crl_pem) {
  std::shared_ptr<X509_STORE> store(X509_STORE_new(), X509_STORE_free);
  auto b = mem(ca_pem);
  Cert ca(PEM_read_bio_X509(b.get(), nullptr, nullptr, nullptr));
  if (!ca) fail("the fleet CA is not a PEM certificate");
  if (X509_STORE_add_cert(store.get(), ca.get()) != 1) fail("cannot use the fleet CA");
  if (!crl_pem.empty()) {
    auto cb = mem(crl_pem);
    std::unique_ptr<X509_CRL, Free<X509_CRL, X509_CRL_free>> crl(PEM_read_bio_X509_CRL(cb.get(), nullptr, nullptr, nullptr));
    if (!crl) fail("the fleet CRL is not a PEM CRL");
    // A CRL someone else signed would let them un-revoke: it must verify under the CA key.
    if (X509_CRL_verify(crl.get(), X509_get0_pubkey(ca.get())) != 1) fail("the fleet CRL is not signed by the fleet CA");
    X509_STORE_add_crl(store.get(), crl.get());
    X509_STORE_set_flags(store.get(), X509_V_FLAG_CRL_CHECK);
  }
  return TrustAnchor(std::move(store));
}

std::variant<CertInfo, std::string> TrustAnchor::check(ByteView der, std::string_view role, std::string_view name) const {
  if (der.empty()) return std::string("no certificate");
  const unsigned char* p = der.data();
  Cert cert(d2i_X509(nullptr, &p, static_cast<long>(der.size())));
  if (!cert || p != der.data() + der.size()) {
    ERR_clear_error();
    return std::string("not a DER certificate");
  }
  StoreCtx ctx(X509_STORE_CTX_new());
  if (!ctx || X509_STORE_CTX_init(ctx.get(), store_.get(), cert.get(), nullptr) != 1) fail("cannot set up certificate verification");
  if (X509_verify_cert(ctx.get()) != 1) {
    const int err = X509_STORE_CTX_get_error(ctx.get());
    ERR_clear_error();
    return std::string(X509_verify_cert_error_string(err));
  }
  CertInfo info{name_entry(cert.get(), NID_commonName), name_entry(cert.get(), NID_organizationalUnitName),
                name_entry(cert.get(), NID_pseudonym), PublicKey(nullptr)};
  if (info.role != role) return "not a " + std::string(role) + " certificate (OU=" + info.role + ")";
  if (!name.empty() && info.name != name) return "issued to '" + info.name + "', not '" + std::string(name) + "'";
  EVP_PKEY* k = X509_get_pubkey(cert.get());
  if (!k) fail("certificate without a public key");
  info.key = PublicKey(own(k));
  try {
    require_p256(k, "certificate key");
  } catch (const CryptoError& e) {
    return std::string(e.what());
  }
  return info;
}

}  // namespace bodydock::proto::crypto
