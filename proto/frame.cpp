#include "proto/frame.hpp"

#include <algorithm>

namespace bodydock::proto {

bool is_known_type(std::uint8_t t) noexcept {
  switch (static_cast<MsgType>(t)) {
    case MsgType::hello: case MsgType::status_get: case MsgType::set_time: case MsgType::list:
    case MsgType::read: case MsgType::erase: case MsgType::hello_ok: case MsgType::status:
    case MsgType::set_time_ok: case MsgType::list_ok: case MsgType::data: case MsgType::erase_ok:
    case MsgType::set_charging: case MsgType::set_charging_ok: case MsgType::auth_begin: case MsgType::auth_finish:
    case MsgType::auth_begin_ok: case MsgType::auth_finish_ok: case MsgType::error:
      return true;
  }
  return false;
}

const char* type_name(MsgType t) noexcept {
  switch (t) {
    case MsgType::hello: return "HELLO";
    case MsgType::status_get: return "STATUS_GET";
    case MsgType::set_time: return "SET_TIME";
    case MsgType::list: return "LIST";
    case MsgType::read: return "READ";
    case MsgType::erase: return "ERASE";
    case MsgType::hello_ok: return "HELLO_OK";
    case MsgType::status: return "STATUS";
    case MsgType::set_time_ok: return "SET_TIME_OK";
    case MsgType::list_ok: return "LIST_OK";
    case MsgType::data: return "DATA";
    case MsgType::erase_ok: return "ERASE_OK";
    case MsgType::set_charging: return "SET_CHARGING";
    case MsgType::set_charging_ok: return "SET_CHARGING_OK";
    case MsgType::auth_begin: return "AUTH_BEGIN";
    case MsgType::auth_finish: return "AUTH_FINISH";
    case MsgType::auth_begin_ok: return "AUTH_BEGIN_OK";
    case MsgType::auth_finish_ok: return "AUTH_FINISH_OK";
    case MsgType::error: return "ERROR";
  }
  return "UNKNOWN";
}

void append_frame_header(Bytes& out, MsgType type, std::uint32_t request_id, std::uint32_t length) {
  Writer w(out);
  w.u16(kMagic);
  w.u8(kFrameVersion);
  w.u8(static_cast<std::uint8_t>(type));
  w.u32(request_id);
  w.u32(length);
  w.u32(0);  // reserved
}

boost::system::result<Bytes> encode_frame(MsgType type, std::uint32_t request_id, ByteView payload) {
  if (payload.size() > kMaxPayload) return make_error_code(errc::too_large);
  Bytes out;
  out.reserve(kHeaderSize + payload.size());
  append_frame_header(out, type, request_id, static_cast<std::uint32_t>(payload.size()));
  out.insert(out.end(), payload.begin(), payload.end());
  return out;
}

boost::system::result<FrameHeader> parse_header(ByteView header, std::uint32_t max_payload) {
  if (header.size() < kHeaderSize) return make_error_code(errc::truncated);
  Reader r(header.first(kHeaderSize));
  const auto magic = r.u16();
  const auto version = r.u8();
  const auto type = r.u8();
  FrameHeader h;
  h.request_id = r.u32();
  h.length = r.u32();
  const auto reserved = r.u32();
  if (magic != kMagic || reserved != 0) return make_error_code(errc::malformed_frame);
  if (version != kFrameVersion) return make_error_code(errc::unsupported_version);
  if (h.length > max_payload) return make_error_code(errc::too_large);
  if (!is_known_type(type)) return make_error_code(errc::unknown_type);
  h.type = static_cast<MsgType>(type);
  return h;
}

boost::system::error_code FrameParser::feed(ByteView bytes) {
  if (error_) return error_;
  // Compact before growing so the buffer stays near one frame plus one read.
  if (pos_ > 0 && pos_ >= buf_.size() / 2) {
    buf_.erase(buf_.begin(), buf_.begin() + static_cast<std::ptrdiff_t>(pos_));
    pos_ = 0;
  }
  buf_.insert(buf_.end(), bytes.begin(), bytes.end());
  return check_header();
}

boost::system::error_code FrameParser::check_header() {
  if (error_ || pending_ || buffered() < kHeaderSize) return error_;
  const ByteView head(buf_.data() + pos_, kHeaderSize);
  auto h = parse_header(head, max_payload_);
  if (!h) {
    error_ = h.error();
    Reader r(head.subspan(4, 4));
    failed_request_id_ = r.u32();
    return error_;
  }
  pending_ = *h;
  return {};
}

std::optional<Frame> FrameParser::next() {
  if (error_ || !pending_ || buffered() < kHeaderSize + pending_->length) return std::nullopt;
  Frame f;
  f.header = *pending_;
  const auto begin = buf_.begin() + static_cast<std::ptrdiff_t>(pos_ + kHeaderSize);
  f.payload.assign(begin, begin + pending_->length);
  pos_ += kHeaderSize + pending_->length;
  pending_.reset();
  if (pos_ == buf_.size()) {
    buf_.clear();
    pos_ = 0;
  }
  check_header();
  return f;
}

}  // namespace bodydock::proto
