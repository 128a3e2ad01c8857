#pragma once
/// The progress of multipart uploads, kept durable so a restarted dock continues the same
/// upload (same upload id, finished parts not sent again) instead of starting over and leaving
/// the old one behind. The S3 sink writes it; the dock keeps it in its state database.

#include <boost/asio/awaitable.hpp>

#include <cstdint>
#include <map>
#include <optional>
#include <string>

namespace bodydock::dock {

struct UploadedPart {
  std::string etag;  ///< as storage returned it
  std::string md5;   ///< hex MD5 of the part's bytes, as the dock computed it
};

struct UploadRecord {
  std::string upload_id;
  std::uint64_t part_size = 0;
  std::map<unsigned, UploadedPart> parts;  ///< by part number
};

class UploadJournal {
 public:
  virtual ~UploadJournal() = default;
  /// The upload under way for an object key, if any.
  virtual boost::asio::awaitable<std::optional<UploadRecord>> find_upload(std::string key) = 0;
  virtual boost::asio::awaitable<void> upload_begun(std::string key, std::string upload_id, std::uint64_t part_size) = 0;
  virtual boost::asio::awaitable<void> part_done(std::string key, unsigned number, UploadedPart part) = 0;
  /// Completed or aborted: forget it.
  virtual boost::asio::awaitable<void> upload_ended(std::string key) = 0;
};

}  // namespace bodydock::dock
