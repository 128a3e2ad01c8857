#pragma once
/// The embedded default sink: a directory tree
///   STORE/<camera-serial>/<seq, 8 digits>-<sha256>.seg
///   STORE/<camera-serial>/<seq, 8 digits>-<sha256>.manifest.json
///   STORE/<camera-serial>/<seq, 8 digits>-<sha256>.receipt        (the dock's custody receipt)
/// written atomically (temp file, fsync, rename, fsync directory; a new camera directory is
/// fsynced in its parent too). The segment is hashed as it is written; the receipt carries that
/// hash, and a mismatch with the manifest is refused. Storing again what is already there
/// (after a crash) is recognised by hash and made durable, never rewritten; a manifest is
/// never replaced by a different one.

#include "dock/sink.hpp"

#include <boost/asio/thread_pool.hpp>

namespace bodydock::dock {

class LocalDirSink final : public Sink {
 public:
  LocalDirSink(std::filesystem::path root, boost::asio::thread_pool& pool);

  /// Hashes with SHA-256 as it copies (the copy is a read anyway), so the spool sum is not needed.
  boost::asio::awaitable<StoreResult> store(const SpoolFile& spool, const proto::Manifest& m, const Custody& custody) override;
  boost::asio::awaitable<MaybeFailure> store_record(std::string key, std::string bytes) override;
  [[nodiscard]] std::string describe() const override { return "local directory " + root_.string(); }

  /// The blocking implementation (runs on the pool).
  StoreResult store_blocking(const std::filesystem::path& spool_file, const proto::Manifest& m,
                                                     const Custody& custody = {}) const;
  /// Relative object key of a segment.
  static std::string object_key(const proto::Manifest& m);

 private:
  std::filesystem::path root_;
  boost::asio::thread_pool& pool_;
};

}  // namespace bodydock::dock
