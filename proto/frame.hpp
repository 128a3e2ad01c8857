#pragma once
/// Frame layer of the dock protocol (PROTOCOL.md section 2): a fixed 16-byte header
/// {magic, frame version, type, request id, payload length, reserved} and a bounded payload.
/// Pure code: bytes in, frames or typed errors out. Nothing here allocates more than a frame's
/// header announces, and that is refused above kMaxPayload before a byte is buffered.

#include "proto/errors.hpp"
#include "proto/wire.hpp"

#include <boost/system/result.hpp>

#include <cstdint>
#include <optional>

namespace bodydock::proto {

inline constexpr std::uint16_t kMagic = 0xB0DC;       ///< on the wire: DC B0
inline constexpr std::uint8_t kFrameVersion = 1;      ///< header layout version, fixed for v1.x
inline constexpr std::size_t kHeaderSize = 16;
inline constexpr std::uint32_t kMaxReadLength = 1u << 20;               ///< largest READ
inline constexpr std::uint32_t kMaxPayload = kMaxReadLength + 4096;     ///< largest frame payload

/// Frame types (PROTOCOL.md section 4). Replies have the high bit set.
enum class MsgType : std::uint8_t {
  hello = 0x01,
  status_get = 0x02,
  set_time = 0x03,
  list = 0x04,
  read = 0x05,
  erase = 0x06,
  set_charging = 0x07,
  auth_begin = 0x08,
  auth_finish = 0x09,
  hello_ok = 0x81,
  status = 0x82,
  set_time_ok = 0x83,
  list_ok = 0x84,
  data = 0x85,
  erase_ok = 0x86,
  set_charging_ok = 0x87,
  auth_begin_ok = 0x88,
  auth_finish_ok = 0x89,
  error = 0xFF,
};

bool is_known_type(std::uint8_t t) noexcept;
const char* type_name(MsgType t) noexcept;

struct FrameHeader {
  MsgType type{};
  std::uint32_t request_id = 0;
  std::uint32_t length = 0;
};

struct Frame {
  FrameHeader header;
  Bytes payload;
};

/// Encodes one frame; refuses payloads above kMaxPayload.
boost::system::result<Bytes> encode_frame(MsgType type, std::uint32_t request_id, ByteView payload);

/// Appends a frame header for a payload of `length` bytes that the caller appends next
/// (lets a device build a DATA frame in one buffer, without a second copy).
void append_frame_header(Bytes& out, MsgType type, std::uint32_t request_id, std::uint32_t length);

/// Parses the 16-byte header. Validates magic, version, reserved bits, type and length limit.
boost::system::result<FrameHeader> parse_header(ByteView header, std::uint32_t max_payload = kMaxPayload);

/// Incremental parser for a byte stream carrying frames back to back (a bulk endpoint).
/// feed() appends what the link delivered; next() yields complete frames one at a time.
/// A header error is sticky: after it the stream cannot be re-synchronised and the caller
/// must drop the link (the device side answers with an ERROR frame first).
class FrameParser {
 public:
  explicit FrameParser(std::uint32_t max_payload = kMaxPayload) : max_payload_(max_payload) {}

  /// Appends bytes; returns the stream's error if a header among them is bad.
  boost::system::error_code feed(ByteView bytes);
  /// The next complete frame, if one is buffered.
  std::optional<Frame> next();
  /// Bytes buffered but not yet returned as frames.
  [[nodiscard]] std::size_t buffered() const { return buf_.size() - pos_; }
  [[nodiscard]] boost::system::error_code error() const { return error_; }
  /// Request id of the frame whose header failed, when the header got that far (for replies).
  [[nodiscard]] std::uint32_t failed_request_id() const { return failed_request_id_; }

 private:
  boost::system::error_code check_header();
  std::uint32_t max_payload_;
  Bytes buf_;
  std::size_t pos_ = 0;
  std::optional<FrameHeader> pending_;
  boost::system::error_code error_;
  std::uint32_t failed_request_id_ = 0;
};

}  // namespace bodydock::proto
