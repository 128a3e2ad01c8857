#pragma once
/// Typed messages of protocol v1 (PROTOCOL.md section 4). Each has encode() producing a payload
/// and a decode function that validates every field and its limits. Dispatch on MsgType.

#include "proto/frame.hpp"
#include "proto/manifest.hpp"

#include <boost/system/result.hpp>

#include <string>
#include <vector>

namespace bodydock::proto {

inline constexpr std::uint16_t kProtocolVersion = 2;   ///< the newest version this code speaks
inline constexpr std::uint16_t kMinProtocolVersion = 2;  ///< v1 had no authentication: no longer spoken
inline constexpr std::size_t kMaxCertificate = 2048;     ///< DER certificate in AUTH messages and receipts
inline constexpr std::size_t kMaxAuthSignature = 256;
inline constexpr std::uint16_t kMaxListCount = 256;

struct Hello {                       // host -> device
  std::uint16_t min_version = kProtocolVersion;
  std::uint16_t max_version = kProtocolVersion;
  std::string host_id;
};
struct HelloOk {                     // device -> host
  std::uint16_t version = kProtocolVersion;
  std::string serial;
  std::string model;
  std::string firmware;
  std::uint32_t max_read = kMaxReadLength;  ///< largest READ the device serves
  std::uint16_t max_inflight = 8;           ///< requests the device queues before BUSY
};
struct StatusGet {};
struct Status {
  std::uint8_t battery_pct = 0;
  bool charging = false;
  std::int16_t temperature_dc = 0;   ///< tenths of a degree Celsius
  std::uint64_t storage_used = 0;
  std::uint64_t storage_total = 0;
  std::int64_t clock_utc_ms = 0;
  std::uint32_t segment_count = 0;
};
struct SetTime { std::int64_t utc_ms = 0; };
struct SetTimeOk { std::int64_t adjusted_by_ms = 0; };
struct List {
  std::uint64_t cursor = 0;          ///< first sequence number wanted
  std::uint16_t max_count = kMaxListCount;
};
struct ListOk {
  std::vector<Manifest> manifests;   ///< ascending seq, all >= cursor
  std::uint64_t next_cursor = 0;
  bool more = false;
};
struct Read {
  std::uint64_t seq = 0;
  std::uint64_t offset = 0;
  std::uint32_t length = 0;
};
struct Data {                        // reply to READ; payload view avoids a copy when decoding
  std::uint64_t seq = 0;
  std::uint64_t offset = 0;
  ByteView bytes;
};
struct Erase {
  std::uint64_t seq = 0;
  Bytes receipt;                     ///< a signed custody receipt (proto/trust.hpp, PROTOCOL.md 9)
};
struct EraseOk { std::uint64_t seq = 0; };
struct SetCharging { bool allow = true; };     // host -> device: may the battery charge from the dock
struct SetChargingOk { bool charging = false; };  // device -> host: whether it charges now
/// Mutual authentication (PROTOCOL.md 5.5). The dock opens with its nonce and certificate...
struct AuthBegin {
  Digest dock_nonce{};
  Bytes dock_cert;       ///< DER
};
/// ...the camera answers with its own and its signature over the camera transcript...
struct AuthBeginOk {
  Digest camera_nonce{};
  Bytes camera_cert;     ///< DER
  Bytes signature;       ///< ECDSA-SHA256 (DER) over auth_transcript(camera, ...)
};
/// ...and the dock proves itself with its signature over the dock transcript.
struct AuthFinish {
  Bytes signature;
};
struct AuthFinishOk {};
struct ErrorReply {
  errc code = errc::internal;
  std::string message;
};

inline constexpr std::size_t kMaxReceipt = 4096;

Bytes encode(const Hello&);
Bytes encode(const HelloOk&);
Bytes encode(const StatusGet&);
Bytes encode(const Status&);
Bytes encode(const SetTime&);
Bytes encode(const SetTimeOk&);
Bytes encode(const List&);
/// Encodes as many manifests as fit in one frame; `more`/`next_cursor` must reflect that.
Bytes encode(const ListOk&);
Bytes encode(const Read&);
/// DATA header only: {seq, offset}; the content follows as the rest of the payload.
Bytes encode_data_header(std::uint64_t seq, std::uint64_t offset);
Bytes encode(const Erase&);
Bytes encode(const EraseOk&);
Bytes encode(const SetCharging&);
Bytes encode(const SetChargingOk&);
Bytes encode(const AuthBegin&);
Bytes encode(const AuthBeginOk&);
Bytes encode(const AuthFinish&);
Bytes encode(const AuthFinishOk&);
Bytes encode(const ErrorReply&);

boost::system::result<Hello> decode_hello(ByteView);
boost::system::result<HelloOk> decode_hello_ok(ByteView);
boost::system::result<StatusGet> decode_status_get(ByteView);
boost::system::result<Status> decode_status(ByteView);
boost::system::result<SetTime> decode_set_time(ByteView);
boost::system::result<SetTimeOk> decode_set_time_ok(ByteView);
boost::system::result<List> decode_list(ByteView);
boost::system::result<ListOk> decode_list_ok(ByteView);
boost::system::result<Read> decode_read(ByteView);
boost::system::result<Data> decode_data(ByteView);
boost::system::result<Erase> decode_erase(ByteView);
boost::system::result<EraseOk> decode_erase_ok(ByteView);
boost::system::result<SetCharging> decode_set_charging(ByteView);
boost::system::result<SetChargingOk> decode_set_charging_ok(ByteView);
boost::system::result<AuthBegin> decode_auth_begin(ByteView);
boost::system::result<AuthBeginOk> decode_auth_begin_ok(ByteView);
boost::system::result<AuthFinish> decode_auth_finish(ByteView);
boost::system::result<AuthFinishOk> decode_auth_finish_ok(ByteView);
boost::system::result<ErrorReply> decode_error(ByteView);

/// Picks the highest version both ranges share, or 0.
std::uint16_t negotiate_version(std::uint16_t host_min, std::uint16_t host_max,
                                std::uint16_t dev_min, std::uint16_t dev_max) noexcept;

}  // namespace bodydock::proto
