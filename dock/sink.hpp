#pragma once
/// Storage sinks: where spooled segments go. A sink stores the spool file's bytes under a key
/// derived only from (camera serial, sequence number, SHA-256), so a retry can never create a
/// second, different object, and returns a receipt only after the object is durable and the
/// bytes it took in match the manifest's SHA-256 (hashed as they were written, or matched
/// against the spool sum of the pull that verified them). The embedded default
/// is a local directory (local_sink.hpp); production docks use S3 (s3_sink.hpp).

#include "dock/upload_journal.hpp"
#include "proto/manifest.hpp"

#include <boost/asio/awaitable.hpp>
#include <boost/json/object.hpp>
#include <boost/system/result.hpp>

#include <cstdint>
#include <filesystem>
#include <optional>
#include <string>
#include <type_traits>

namespace bodydock::dock {

enum class sink_errc {
  content_mismatch = 1,  ///< the spool's bytes do not hash to the manifest: pull again
  object_conflict = 2,   ///< storage already holds different bytes under this key: never overwritten
  spool_unreadable = 3,  ///< the spool file cannot be opened: pull again (the camera still has it)
  storage_error = 4,     ///< storage failed for now (5xx, 429, SlowDown, a body damaged on the way): retried with backoff
  storage_refused = 5,   ///< storage will not take it until someone acts (403, missing bucket, quota): held, alert
  clock_skew = 6,        ///< storage says the dock's clock is off (RequestTimeTooSkewed): retried after a clock check, alert
};
const boost::system::error_category& sink_category() noexcept;
inline boost::system::error_code make_error_code(sink_errc e) noexcept { return {static_cast<int>(e), sink_category()}; }

/// Why a store failed: its class (a sink_errc, or a system error for the transport) and, when
/// storage answered, what it said (never a secret: status, S3 error code, operation, key).
struct StoreFailure {
  boost::system::error_code code;
  std::string detail;
  StoreFailure() = default;
  StoreFailure(boost::system::error_code c, std::string d = {}) : code(c), detail(std::move(d)) {}  // NOLINT: implicit by design
  StoreFailure(sink_errc e, std::string d = {}) : code(make_error_code(e)), detail(std::move(d)) {}  // NOLINT
  [[nodiscard]] std::string message() const { return detail.empty() ? code.message() : code.message() + ": " + detail; }
  friend bool operator==(const StoreFailure& f, sink_errc e) { return f.code == make_error_code(e); }
};
[[noreturn]] void throw_exception_from_error(const StoreFailure& f, const boost::source_location& loc);

struct StoreReceipt {
  std::string object_key;
  proto::Digest sha256{};  ///< of the bytes stored: hashed by the sink, or vouched for by the spool sum
  std::uint64_t size = 0;
};

/// Where a segment is stored, relative to the store's root or the bucket's prefix:
///   <camera-serial>/<seq, 8 digits>-<sha256>.seg
/// derived only from what the camera signed, so a retry can never make a second object.
std::string segment_object_key(const proto::Manifest& m);
/// A record stored beside a segment: its key with ".seg" replaced by `suffix` (".receipt").
std::string beside_key(const proto::Manifest& m, std::string_view suffix);
/// A name safe as one key component: itself when it is 1..64 of [A-Za-z0-9._-] (not starting
/// with '.' or '-'), else "h-" and the first 32 hex digits of its SHA-256.
std::string safe_key_part(std::string_view name);

/// What the dock adds to the camera's manifest when it hands a segment on: who took custody,
/// and how far the camera's clock was off at that docking (so its timestamps can be explained).
struct Custody {
  std::string dock_id;
  std::optional<std::int64_t> clock_drift_ms;  ///< camera clock minus the dock's, before it was set
  proto::Bytes camera_certificate;             ///< DER: the key the manifest signature verifies with
  std::string officer;                         ///< as the camera's certificate names them
};

/// A spooled segment as the pull left it: the file, and the pull's spool sum of its bytes
/// (dock/spool_sum.hpp; empty if none was recorded). A sink that reads the file again checks its
/// bytes against the sum, or against the manifest's SHA-256 when there is none.
struct SpoolFile {
  std::filesystem::path path;
  std::string sum;
  SpoolFile(std::filesystem::path p, std::string s = {}) : path(std::move(p)), sum(std::move(s)) {}  // NOLINT: implicit by design
};

/// The manifest as stored beside a segment: its JSON form (PROTOCOL.md 6.4) with the dock's
/// custody note under "custody", one line.
boost::json::object manifest_with_custody(const proto::Manifest& m, const Custody& custody);

using StoreResult = boost::system::result<StoreReceipt, StoreFailure>;
/// The failure of a step that returns nothing else; empty when it worked.
using MaybeFailure = std::optional<StoreFailure>;

class Sink {
 public:
  virtual ~Sink() = default;
  virtual boost::asio::awaitable<StoreResult> store(const SpoolFile& spool, const proto::Manifest& m,
                                                   const Custody& custody) = 0;
  /// Stores a small record under `key` (relative, as object keys are; made by the dock from
  /// checked names only): a custody receipt, a recording-complete marker, an audit log chunk.
  /// Created once; one already there stands.
  virtual boost::asio::awaitable<MaybeFailure> store_record(std::string key, std::string bytes) = 0;
  [[nodiscard]] virtual std::string describe() const = 0;
  /// Where to keep the progress of long uploads (the dock's state database); sinks that store
  /// in one step ignore it.
  virtual void use_journal(UploadJournal* /*journal*/) {}
};

}  // namespace bodydock::dock

template <>
struct boost::system::is_error_code_enum<bodydock::dock::sink_errc> : std::true_type {};
