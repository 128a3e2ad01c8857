#pragma once
/// Protocol error codes: the numbers travel on the wire in ERROR frames (PROTOCOL.md section 7)
/// and double as a boost::system error category, so a decode failure and a device's error reply
/// read the same way in the dock's logs.

#include <boost/system/error_code.hpp>

#include <cstdint>
#include <string_view>
#include <type_traits>

namespace bodydock::proto {

enum class errc : std::uint16_t {
  ok = 0,
  malformed_frame = 1,      ///< bad magic, reserved bits set, or a payload that does not decode
  unsupported_version = 2,  ///< no protocol version in common
  unknown_type = 3,         ///< frame type not in the catalogue
  too_large = 4,            ///< frame, string, list or read length over its hard limit
  bad_request = 5,          ///< fields decode but their values make no sense
  not_found = 6,            ///< no such segment
  out_of_range = 7,         ///< offset/length outside the segment
  busy = 8,                 ///< too many requests in flight
  not_authenticated = 9,    ///< request needs a completed handshake
  receipt_rejected = 10,    ///< erase refused: the custody receipt does not match
  storage_full = 11,        ///< the device cannot take the request for lack of space
  internal = 12,            ///< device fault
  bad_state = 13,           ///< request out of order (e.g. anything before HELLO)
  truncated = 14,           ///< payload shorter than its fields
  auth_failed = 15,         ///< the peer's certificate or signature did not verify (v2)
};

const boost::system::error_category& proto_category() noexcept;

inline boost::system::error_code make_error_code(errc e) noexcept {
  return {static_cast<int>(e), proto_category()};
}

/// Short stable name of a code, as used in logs and PROTOCOL.md.
std::string_view errc_name(errc e) noexcept;

}  // namespace bodydock::proto

template <>
struct boost::system::is_error_code_enum<bodydock::proto::errc> : std::true_type {};
