#include "dock/spool_sum.hpp"

#include <xxhash.h>

#include <new>
#include <stdexcept>

namespace bodydock::dock {

struct SpoolSum::State {
  XXH3_state_t* xxh = nullptr;
  State() : xxh(XXH3_createState()) {
    if (!xxh) throw std::bad_alloc();
    XXH3_128bits_reset(xxh);
  }
  ~State() { XXH3_freeState(xxh); }
  State(const State&) = delete;
  State& operator=(const State&) = delete;
};

SpoolSum::SpoolSum() : state_(std::make_unique<State>()) {}
SpoolSum::~SpoolSum() = default;
SpoolSum::SpoolSum(SpoolSum&&) noexcept = default;
SpoolSum& SpoolSum::operator=(SpoolSum&&) noexcept = default;

void SpoolSum::update(proto::ByteView data) {
  if (!data.empty() && XXH3_128bits_update(state_->xxh, data.data(), data.size()) != XXH_OK) throw std::runtime_error("XXH3 update failed");
}

std::string SpoolSum::hex() const {
  XXH128_canonical_t canonical;
  XXH128_canonicalFromHash(&canonical, XXH3_128bits_digest(state_->xxh));
  return proto::to_hex(proto::ByteView(canonical.digest, sizeof canonical.digest));
}

std::string SpoolSum::of(proto::ByteView data) {
  SpoolSum s;
  s.update(data);
  return s.hex();
}

bool SpoolCheck::matches() {
  if (expect_sum_.empty()) return proto::digest_equal(sha256_.finish(), expect_sha256_);
  return sum_.hex() == expect_sum_;  // a checksum of footage the dock already holds: not a secret
}

}  // namespace bodydock::dock
