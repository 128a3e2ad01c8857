#pragma once
/// Storage sinks: where spooled segments go. A sink stores the spool file's bytes under a key
/// derived only from (camera serial, sequence number, SHA-256), so a retry can never create a
/// second, different object, and returns a receipt only after the object is durable and the
/// bytes it took in (hashed as they were written) match the manifest's SHA-256. The embedded default is a local directory; S3 next.

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
  storage_error = 4,     ///< storage answered with an error (the queue retries with backoff)
};
const boost::system::error_category& sink_category() noexcept;
inline boost::system::error_code make_error_code(sink_errc e) noexcept { return {static_cast<int>(e), sink_category()}; }

struct StoreReceipt {
  std::string object_key;
  proto::Digest sha256{};  ///< computed by the sink over the bytes it stored
  std::uint64_t size = 0;
};

/// What the dock adds to the camera's manifest when it hands a segment on: who took custody,
/// and how far the camera's clock was off at that docking (so its timestamps can be explained).
struct Custody {
  std::string dock_id;
  std::optional<std::int64_t> clock_drift_ms;  ///< camera clock minus the dock's, before it was set
  proto::Bytes camera_certificate;             ///< DER: the key the manifest signature verifies with
  std::string officer;                         ///< as the camera's certificate names them
};

/// The manifest as stored beside a segment: its JSON form (PROTOCOL.md 6.4) with the dock's
/// custody note under "custody", one line.
boost::json::object manifest_with_custody(const proto::Manifest& m, const Custody& custody);

class Sink {
 public:
  virtual ~Sink() = default;
  virtual boost::asio::awaitable<boost::system::result<StoreReceipt>> store(const std::filesystem::path& spool_file,
                                                                            const proto::Manifest& m, const Custody& custody) = 0;
  [[nodiscard]] virtual std::string describe() const = 0;
};

}  // namespace bodydock::dock

template <>
struct boost::system::is_error_code_enum<bodydock::dock::sink_errc> : std::true_type {};
