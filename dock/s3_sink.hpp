#pragma once
/// The S3 sink (DESIGN section 7): each segment goes to BUCKET/PREFIX<serial>/<seq>-<sha256>.seg
/// (the same key as the embedded store, so a retry can never make a second object), with its
/// manifest and the dock's custody note beside it as .manifest.json.
///
/// - Every segment, however small, is a multipart upload (one part up to the part size), each
///   part read from the spool, hashed and sent with its own Content-MD5 and
///   x-amz-content-sha256, so the server refuses a damaged part. Not a single PUT: one that
///   outlives its deadline cannot be called back and may land after the retry as a second
///   version (storage checks If-None-Match when a request starts). Only the dock's
///   CompleteMultipartUpload makes the object; a late one finds its upload gone.
/// - Before the segment counts as stored, a HEAD must show exactly the size and the ETag the
///   dock computed (MD5 of the part MD5s, "-N"; RGW 16 ignores x-amz-checksum-sha256), and the
///   whole-segment SHA-256 travels in the metadata.
/// - An object already under the key (a retry after a crash) counts as stored when its
///   metadata carries the same SHA-256 and size; anything else is a conflict, never overwritten.
/// - User metadata: camera, officer, recording, start/end UTC, triggers, firmware, dock, the
///   manifest (chain) hash, clock drift.
///
/// - Multipart progress (upload id, finished parts with their MD5) goes to an UploadJournal, so
///   a restarted dock, or one whose storage went away mid-upload, continues the same upload: it
///   asks storage which parts it holds, re-reads those from the spool to check they are the
///   same bytes, and sends only the rest. An upload is aborted only when the spool copy is bad
///   (the segment is pulled again) or the key is in conflict.
/// - Every failure is classified (sink.hpp): transient (5xx, 429, SlowDown, a body damaged on
///   the way, NoSuchUpload), refused (403, missing bucket, quota, any other 4xx: retrying the
///   same request cannot help), clock skew (RequestTimeTooSkewed).

#include "dock/s3/client.hpp"
#include "dock/sink.hpp"
#include "dock/spool_sum.hpp"
#include "dock/upload_journal.hpp"
#include "proto/sha256.hpp"

#include <boost/asio/thread_pool.hpp>

namespace bodydock::dock {

/// Object Lock retention put on every object the sink creates (segment, manifest, receipt),
/// so nobody (COMPLIANCE) or only privileged users (GOVERNANCE) can delete or overwrite it
/// before the date. Needs a bucket created with Object Lock; the sink checks that once and
/// refuses (holds, with an alert) rather than store evidence without the promised retention.
struct Retention {
  std::string mode;   ///< "COMPLIANCE" or "GOVERNANCE"; empty: none
  unsigned days = 0;
  /// Parses mode names case-insensitively; throws std::invalid_argument naming what is wrong.
  static Retention make(std::string_view mode, unsigned days);
};

struct S3Location {
  std::string bucket;
  std::string prefix;   ///< "" or ending in '/'
  /// Parses "s3://BUCKET[/PREFIX]"; throws std::invalid_argument naming what is wrong.
  static S3Location parse(std::string_view url);
};

class S3Sink final : public Sink {
 public:
  S3Sink(s3::Client& client, S3Location where, boost::asio::thread_pool& pool, std::size_t part_size = 16u << 20, Retention retention = {});

  boost::asio::awaitable<StoreResult> store(const SpoolFile& spool, const proto::Manifest& m, const Custody& custody) override;
  /// Where multipart progress is kept (without one, an interrupted upload starts over).
  boost::asio::awaitable<MaybeFailure> store_record(std::string key, std::string bytes) override;
  void use_journal(UploadJournal* journal) override { journal_ = journal; }
  [[nodiscard]] std::string describe() const override;
  [[nodiscard]] const S3Location& location() const { return where_; }

 private:
  boost::asio::awaitable<StoreResult> store_multipart(const SpoolFile& spool, const proto::Manifest& m, std::string key,
                                                     s3::Client::Headers meta);
  /// Continues the journal's upload of `key` if storage still has it: its id and the parts
  /// storage holds as the journal recorded them; empty id when there is nothing to continue.
  boost::asio::awaitable<StoreResult> resume_point(const std::string& key, std::string& upload_id, std::map<unsigned, UploadedPart>& done);
  boost::asio::awaitable<void> forget_upload(std::string key, std::string upload_id);
  /// One part read from the spool and hashed (MD5, SHA-256; and fed to `whole`, the check that
  /// the spool still holds what the pull verified), on the pool, into `buffer` (a part buffer
  /// of an earlier part, or empty): parts reuse two buffers instead of allocating and clearing
  /// 16 MiB each.
  struct PreparedPart {
    std::string bytes, md5, sha256;
    bool ok = false;
  };
  boost::asio::awaitable<PreparedPart> prepare_part(const std::filesystem::path& spool_file, std::uint64_t size, unsigned index, SpoolCheck& whole,
                                                  std::string buffer);
  /// Part buffers kept between parts and segments: allocating and clearing 16 MiB for every
  /// part cost more CPU than sending it. Two per upload at a time; the queue runs two.
  static constexpr std::size_t kKeptBuffers = 4;
  std::vector<std::string> buffers_;
  std::string take_buffer();
  void give_buffer(std::string buffer);
  boost::asio::awaitable<s3::Client::Result> send_part(const std::string& key, const std::string& upload_id, unsigned number, PreparedPart& part);
  /// The MD5 of each part of the spool's bytes as this sink uploads them; empty if unreadable.
  boost::asio::awaitable<std::vector<std::string>> part_md5s(const std::filesystem::path& spool_file, std::uint64_t size);
  /// Aborts every multipart upload of `key` but `keep` (an upload the journal continues).
  boost::asio::awaitable<MaybeFailure> abort_orphans(const std::string& key, const std::string& keep);
  s3::Client& client_;
  S3Location where_;
  boost::asio::thread_pool& pool_;
  std::size_t part_size_;
  /// The Object Lock headers for an object created now (none without retention).
  [[nodiscard]] s3::Client::Headers retention_headers() const;
  /// Once: with retention configured, the bucket must have Object Lock.
  boost::asio::awaitable<MaybeFailure> check_bucket();
  /// classify_answer(), and for RequestTimeTooSkewed the clock check: the client signs with
  /// storage's time from then on.
  StoreFailure answer_failure(const s3::Response& r, const std::string& what);
  /// Sets the retention on an object made by multipart upload.
  boost::asio::awaitable<MaybeFailure> put_retention(const std::string& key);

  UploadJournal* journal_ = nullptr;
  Retention retention_;
  bool bucket_checked_ = false;
};

/// The class of a storage answer that is not a success (sink.hpp), with a detail naming the
/// status, S3 error code and operation.
StoreFailure classify_answer(const s3::Response& r, const std::string& what);

}  // namespace bodydock::dock
