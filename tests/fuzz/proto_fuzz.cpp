// libFuzzer target over everything the dock decodes from a camera's byte stream (proto/): the
// frame stream in any USB chunking (FrameParser), every message payload, the manifests inside
// LIST_OK, and custody receipts. Beyond ASan and UBSan it checks:
//   - the frame parser never returns more bytes than it was fed, never a payload above its
//     limit, and its error is sticky (nothing comes out after it);
//   - whatever decodes re-encodes, that encoding decodes again, and encoding it once more gives
//     the same bytes (decoding accepts nothing the encoder could not have written twice alike).
//
// Input: byte 0 picks the chunk size, byte 1 the decoder the rest also goes to directly (so
// the fuzzer can reach deep into one message without building a frame around it).
#include "proto/frame.hpp"
#include "proto/manifest.hpp"
#include "proto/messages.hpp"
#include "proto/trust.hpp"

#include <cstdint>
#include <cstdio>
#include <cstdlib>

using namespace bodydock::proto;

namespace {

[[noreturn]] void broken(const char* what) {
  std::fprintf(stderr, "proto_fuzz: %s\n", what);
  std::abort();
}

/// decode -> encode -> decode -> encode: the two encodings must be the same bytes.
template <typename Decode, typename Encode>
void round_trip(ByteView payload, Decode decode, Encode encode) {
  auto first = decode(payload);
  if (!first) return;
  const Bytes once = encode(*first);
  auto second = decode(ByteView(once));
  if (!second) broken("an encoding of a decoded message does not decode");
  if (encode(*second) != once) broken("encoding is not stable across a decode");
}

template <typename T>
Bytes encode_message(const T& m) {
  return encode(m);
}

void decode_payload(std::uint8_t which, ByteView p) {
  switch (which % 22) {
    case 0: round_trip(p, decode_hello, encode_message<Hello>); break;
    case 1: round_trip(p, decode_hello_ok, encode_message<HelloOk>); break;
    case 2: round_trip(p, decode_status_get, encode_message<StatusGet>); break;
    case 3: round_trip(p, decode_status, encode_message<Status>); break;
    case 4: round_trip(p, decode_set_time, encode_message<SetTime>); break;
    case 5: round_trip(p, decode_set_time_ok, encode_message<SetTimeOk>); break;
    case 6: round_trip(p, decode_list, encode_message<List>); break;
    case 7: round_trip(p, decode_list_ok, encode_message<ListOk>); break;
    case 8: round_trip(p, decode_read, encode_message<Read>); break;
    case 9: {
      auto d = decode_data(p);
      if (d && d->bytes.size() > p.size()) broken("DATA content longer than its payload");
      break;
    }
    case 10: round_trip(p, decode_erase, encode_message<Erase>); break;
    case 11: round_trip(p, decode_erase_ok, encode_message<EraseOk>); break;
    case 12: round_trip(p, decode_set_charging, encode_message<SetCharging>); break;
    case 13: round_trip(p, decode_set_charging_ok, encode_message<SetChargingOk>); break;
    case 14: round_trip(p, decode_auth_begin, encode_message<AuthBegin>); break;
    case 15: round_trip(p, decode_auth_begin_ok, encode_message<AuthBeginOk>); break;
    case 16: round_trip(p, decode_auth_finish, encode_message<AuthFinish>); break;
    case 17: round_trip(p, decode_auth_finish_ok, encode_message<AuthFinishOk>); break;
    case 18: round_trip(p, decode_error, encode_message<ErrorReply>); break;
    case 19: round_trip(p, decode_manifest, encode_manifest); break;
    case 20: round_trip(p, decode_receipt, encode_receipt); break;
    default: {
      auto m = decode_manifest(p);
      if (m) (void)manifest_hash(*m);
      break;
    }
  }
}

/// The decoder for a frame of `type` (replies as the dock reads them, requests as a device does).
std::uint8_t decoder_for(MsgType type) {
  switch (type) {
    case MsgType::hello: return 0;
    case MsgType::hello_ok: return 1;
    case MsgType::status_get: return 2;
    case MsgType::status: return 3;
    case MsgType::set_time: return 4;
    case MsgType::set_time_ok: return 5;
    case MsgType::list: return 6;
    case MsgType::list_ok: return 7;
    case MsgType::read: return 8;
    case MsgType::data: return 9;
    case MsgType::erase: return 10;
    case MsgType::erase_ok: return 11;
    case MsgType::set_charging: return 12;
    case MsgType::set_charging_ok: return 13;
    case MsgType::auth_begin: return 14;
    case MsgType::auth_begin_ok: return 15;
    case MsgType::auth_finish: return 16;
    case MsgType::auth_finish_ok: return 17;
    case MsgType::error: return 18;
  }
  return 21;
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  if (size < 2) return 0;
  const std::size_t chunk = 1 + data[0] % 97;
  decode_payload(data[1], ByteView(data + 2, size - 2));

  // The same bytes as a stream from a camera, in USB transfers of `chunk` bytes.
  FrameParser parser;
  std::size_t fed = 0, taken = 0;
  bool failed = false;
  for (std::size_t at = 2; at < size; at += chunk) {
    const std::size_t n = std::min(chunk, size - at);
    const auto ec = parser.feed(ByteView(data + at, n));
    fed += n;
    if (ec) {
      failed = true;
      break;
    }
    while (auto f = parser.next()) {
      if (f->payload.size() > kMaxPayload) broken("a frame payload above kMaxPayload");
      taken += kHeaderSize + f->payload.size();
      decode_payload(decoder_for(f->header.type), ByteView(f->payload));
    }
    if (taken + parser.buffered() > fed) broken("the parser returned more bytes than it was fed");
  }
  if (failed) {
    if (!parser.error()) broken("feed() failed but error() is clear");
    if (parser.next()) broken("a frame came out after a header error");
  }
  return 0;
}
