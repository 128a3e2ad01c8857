#pragma once
/// OpenSSL plumbing shared by the protocol's cryptography (proto/crypto) and the fleet PKI
/// (dock/pki): owning pointers for OpenSSL objects and a few readers. Implementation detail;
/// not part of the protocol's interface.

#include <openssl/bio.h>
#include <openssl/bn.h>
#include <openssl/evp.h>
#include <openssl/x509.h>

#include <cstring>
#include <memory>
#include <string>
#include <string_view>

namespace bodydock::proto::ossl {

template <typename T, void (*F)(T*)>
struct Free {
  void operator()(T* p) const { F(p); }
};
using Key = std::unique_ptr<EVP_PKEY, Free<EVP_PKEY, EVP_PKEY_free>>;
using Cert = std::unique_ptr<X509, Free<X509, X509_free>>;
using Crl = std::unique_ptr<X509_CRL, Free<X509_CRL, X509_CRL_free>>;
using Bio = std::unique_ptr<BIO, Free<BIO, BIO_free_all>>;
using Bn = std::unique_ptr<BIGNUM, Free<BIGNUM, BN_free>>;

inline Bio mem_bio(std::string_view text) { return Bio(BIO_new_mem_buf(text.data(), static_cast<int>(text.size()))); }

inline std::string bio_text(BIO* b) {
  char* data = nullptr;
  const long n = BIO_get_mem_data(b, &data);
  return {data, static_cast<std::size_t>(n)};
}

/// A subject name entry (CN, OU, pseudonym), empty when absent.
inline std::string name_entry(X509* c, int nid) {
  X509_NAME* n = X509_get_subject_name(c);
  const int i = X509_NAME_get_index_by_NID(n, nid, -1);
  if (i < 0) return {};
  const ASN1_STRING* s = X509_NAME_ENTRY_get_data(X509_NAME_get_entry(n, i));
  return {reinterpret_cast<const char*>(ASN1_STRING_get0_data(s)), static_cast<std::size_t>(ASN1_STRING_length(s))};
}

/// Whether `k` is a P-256 EC key; `curve` gets the group name found (may be empty).
inline bool is_p256(EVP_PKEY* k, std::string* curve = nullptr) {
  char group[64] = {};
  std::size_t len = 0;
  const bool ec = EVP_PKEY_is_a(k, "EC") && EVP_PKEY_get_group_name(k, group, sizeof group, &len) == 1;
  if (curve) *curve = group;
  return ec && std::strcmp(group, "prime256v1") == 0;
}

}  // namespace bodydock::proto::ossl
