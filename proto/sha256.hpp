#pragma once
/// Incremental SHA-256 (OpenSSL EVP, which uses SHA-NI where the CPU has it) and hex helpers.

#include "proto/wire.hpp"

#include <memory>
#include <optional>
#include <string>
#include <string_view>

struct evp_md_ctx_st;

namespace bodydock::proto {

class Sha256 {
 public:
  Sha256();
  ~Sha256();
  Sha256(Sha256&&) noexcept;
  Sha256& operator=(Sha256&&) noexcept;
  Sha256(const Sha256&) = delete;
  Sha256& operator=(const Sha256&) = delete;

  void update(ByteView data);
  /// Returns the digest and resets the hasher for reuse.
  Digest finish();

  static Digest of(ByteView data);

 private:
  std::unique_ptr<evp_md_ctx_st, void (*)(evp_md_ctx_st*)> ctx_;
};

std::string to_hex(ByteView b);
inline std::string to_hex(const Digest& d) { return to_hex(ByteView(d)); }
/// Parses exactly 64 hex digits.
std::optional<Digest> digest_from_hex(std::string_view hex);
/// Constant-time comparison, for anything that decides trust or deletion.
bool digest_equal(const Digest& a, const Digest& b) noexcept;

}  // namespace bodydock::proto
