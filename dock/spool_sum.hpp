#pragma once
/// The spool's own checksum: XXH3-128 of a spool file's bytes, taken by the pull in the same
/// pass that verifies each chunk against the camera's signed SHA-256. When the upload reads the
/// file again it compares against this instead of hashing the whole segment with SHA-256 once
/// more: a tenth of the CPU for the same protection against what it guards (the disk changing
/// bytes between pull and upload). Deliberate tampering is not its job: anyone who can write the
/// spool can write the database too, and the centre verifies the camera's signature and SHA-256,
/// which travel with every segment.

#include "proto/sha256.hpp"

#include <memory>
#include <string>
#include <string_view>

namespace bodydock::dock {

class SpoolSum {
 public:
  SpoolSum();
  ~SpoolSum();
  SpoolSum(SpoolSum&&) noexcept;
  SpoolSum& operator=(SpoolSum&&) noexcept;
  void update(proto::ByteView data);
  /// 32 lowercase hex digits (canonical big-endian XXH128).
  [[nodiscard]] std::string hex() const;
  /// The checksum of `data` in one call.
  static std::string of(proto::ByteView data);

 private:
  struct State;
  std::unique_ptr<State> state_;
};

/// Hashes at pull time: the manifest's SHA-256 (what the camera signed) and the spool sum.
struct PullHash {
  proto::Sha256 sha256;
  SpoolSum sum;
  void update(proto::ByteView data) {
    sha256.update(data);
    sum.update(data);
  }
};

/// Checks, as a spool file is read again from its start in order, that its bytes are still the
/// ones the pull verified: against the pull's spool sum when one was recorded, else (segments
/// spooled before the sum existed) against the manifest's SHA-256.
class SpoolCheck {
 public:
  SpoolCheck(std::string spool_sum, const proto::Digest& sha256) : expect_sum_(std::move(spool_sum)), expect_sha256_(sha256) {}
  void update(proto::ByteView data) {
    if (expect_sum_.empty()) sha256_.update(data);
    else sum_.update(data);
  }
  /// Call once, after the last byte.
  [[nodiscard]] bool matches();

 private:
  std::string expect_sum_;
  proto::Digest expect_sha256_;
  SpoolSum sum_;
  proto::Sha256 sha256_;
};

}  // namespace bodydock::dock
