#pragma once
/// The S3 sink (DESIGN section 7): each segment goes to BUCKET/PREFIX<serial>/<seq>-<sha256>.seg
/// (the same key as the embedded store, so a retry can never make a second object), with its
/// manifest and the dock's custody note beside it as .manifest.json.
///
/// - Small segments: one PUT with If-None-Match: *, Content-MD5 and x-amz-content-sha256.
/// - Larger ones: multipart, each part read from the spool, hashed and sent with its own
///   Content-MD5 and x-amz-content-sha256, so the server refuses a damaged part.
/// - Before the segment counts as stored, a HEAD must show exactly the size and the ETag the
///   dock computed (single MD5, or MD5 of the part MD5s "-N" for multipart; RGW 16 ignores
///   x-amz-checksum-sha256), and the whole-segment SHA-256 travels in the metadata.
/// - An object already under the key (a retry after a crash) counts as stored when its
///   metadata carries the same SHA-256 and size; anything else is a conflict, never overwritten.
/// - User metadata: camera, officer, recording, start/end UTC, triggers, firmware, dock, the
///   manifest (chain) hash, clock drift.
///
/// Not yet: upload ids persisted across restarts (a restarted dock starts the upload again and
/// aborts the old one), retention, the recording-complete marker, TLS.

#include "dock/s3/client.hpp"
#include "dock/sink.hpp"

#include <boost/asio/thread_pool.hpp>

namespace bodydock::dock {

struct S3Location {
  std::string bucket;
  std::string prefix;   ///< "" or ending in '/'
  /// Parses "s3://BUCKET[/PREFIX]"; throws std::invalid_argument naming what is wrong.
  static S3Location parse(std::string_view url);
};

class S3Sink final : public Sink {
 public:
  S3Sink(s3::Client& client, S3Location where, boost::asio::thread_pool& pool, std::size_t part_size = 16u << 20);

  boost::asio::awaitable<boost::system::result<StoreReceipt>> store(const std::filesystem::path& spool_file, const proto::Manifest& m,
                                                                    const Custody& custody) override;
  [[nodiscard]] std::string describe() const override;
  [[nodiscard]] const S3Location& location() const { return where_; }

 private:
  boost::asio::awaitable<boost::system::result<StoreReceipt>> store_multipart(const std::filesystem::path& spool_file, const proto::Manifest& m,
                                                                              std::string key, s3::Client::Headers meta);
  s3::Client& client_;
  S3Location where_;
  boost::asio::thread_pool& pool_;
  std::size_t part_size_;
};

}  // namespace bodydock::dock
