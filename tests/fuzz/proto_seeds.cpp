// Writes the seed corpus of proto_fuzz (corpus/proto/): one valid payload of every message,
// manifest (versions 2 and 3) and custody receipt, each given straight to its decoder, and the
// replies of a whole docking as the byte stream a camera sends, at three chunk sizes. Made with
// the encoders, so a seed is always something the protocol allows. Run it again after a protocol
// change; the files are committed so every run starts from them. From the source tree:
//
//   clang++ -std=c++20 -I. tests/fuzz/proto_seeds.cpp proto/{frame,messages,manifest,trust,sha256,crypto,errors}.cpp \
//     -lcrypto -lboost_json -o /tmp/proto_seeds && /tmp/proto_seeds tests/fuzz/corpus/proto
#include "proto/crypto.hpp"
#include "proto/frame.hpp"
#include "proto/manifest.hpp"
#include "proto/messages.hpp"
#include "proto/trust.hpp"

#include <cstdio>
#include <filesystem>
#include <fstream>
#include <string>

using namespace bodydock::proto;

namespace {

std::filesystem::path out_dir;

/// A seed: [chunk size - 1][decoder][bytes].
void seed(const std::string& name, std::uint8_t chunk, std::uint8_t decoder, const Bytes& bytes) {
  std::ofstream f(out_dir / name, std::ios::binary | std::ios::trunc);
  f.put(static_cast<char>(chunk));
  f.put(static_cast<char>(decoder));
  f.write(reinterpret_cast<const char*>(bytes.data()), static_cast<std::streamsize>(bytes.size()));
  if (!f) throw std::runtime_error("cannot write " + (out_dir / name).string());
}

Bytes frame(MsgType type, std::uint32_t id, const Bytes& payload) { return encode_frame(type, id, payload).value(); }

Digest digest(std::uint8_t fill) {
  Digest d{};
  d.fill(fill);
  return d;
}

Manifest manifest(std::uint16_t version, std::uint64_t seq, const crypto::PrivateKey& key) {
  Manifest m;
  m.version = version;
  m.camera_serial = "BC-0001";
  m.seq = seq;
  m.recording_id = "rec-20261204-0001";
  m.segment_index = static_cast<std::uint16_t>(seq - 1);
  m.last_in_recording = seq == 2;
  m.start_utc_ms = 1796400000000 + static_cast<std::int64_t>(seq) * 60000;
  m.end_utc_ms = m.start_utc_ms + 60000;
  m.pre_record_s = seq == 1 ? 60 : 0;
  m.trigger_on = "button";
  m.trigger_off = "timeout";
  m.firmware = "emu-1.0.0";
  m.chunk_size = 4096;
  m.size = 3 * 4096 + 100;
  for (std::uint8_t i = 0; i < 4; ++i) m.chunk_sha256.push_back(digest(static_cast<std::uint8_t>(0x10 + i)));
  m.sha256 = digest(0x20);
  m.prev_manifest_sha256 = seq == 1 ? Digest{} : digest(0x30);
  m.key_wrap = Bytes(113, 0x5A);
  m.flags = version >= 3 && seq == 2 ? kManifestFlagPriority : 0;
  sign_manifest(m, key);
  return m;
}

}  // namespace

int main(int argc, char** argv) {
  if (argc != 2) {
    std::fputs("usage: proto_seeds DIR\n", stderr);
    return 2;
  }
  out_dir = argv[1];
  std::filesystem::create_directories(out_dir);
  const auto key = crypto::PrivateKey::generate();
  const Bytes cert(412, 0x30);  // the decoders take any DER-sized blob; certificates have a target of their own

  HelloOk hello_ok;
  hello_ok.serial = "BC-0001";
  hello_ok.model = "bodydock-emulator";
  hello_ok.firmware = "emu-1.0.0";
  Status status;
  status.battery_pct = 73;
  status.charging = true;
  status.temperature_dc = 312;
  status.storage_used = 1 << 30;
  status.storage_total = 64ull << 30;
  status.clock_utc_ms = 1796400000000;
  status.segment_count = 2;
  AuthBeginOk begin_ok{digest(0x42), cert, key.sign(Bytes{1, 2, 3})};
  ListOk list_ok;
  list_ok.manifests = {manifest(3, 1, key), manifest(3, 2, key)};
  list_ok.next_cursor = 3;
  Receipt r;
  r.camera_serial = "BC-0001";
  r.seq = 1;
  r.sha256 = digest(0x20);
  r.manifest_sha256 = manifest_hash(list_ok.manifests[0]);
  r.stored_at = "s3://footage/BC-0001/00000001";
  r.stored_utc_ms = 1796400100000;
  r.dock_cert = cert;
  const Bytes receipt = encode_receipt(make_receipt(r, key));
  Bytes data = encode_data_header(1, 4096);
  data.resize(data.size() + 4096, 0xC3);

  // Decoder numbers as in proto_fuzz.cpp.
  seed("hello", 0, 0, encode(Hello{2, 2, "bodydock-dock-01"}));
  seed("hello_ok", 0, 1, encode(hello_ok));
  seed("status", 0, 3, encode(status));
  seed("set_time", 0, 4, encode(SetTime{1796400000000}));
  seed("set_time_ok", 0, 5, encode(SetTimeOk{-90000}));
  seed("list", 0, 6, encode(List{1, 16}));
  seed("list_ok", 0, 7, encode(list_ok));
  seed("read", 0, 8, encode(Read{1, 4096, 65536}));
  seed("data", 0, 9, data);
  seed("erase", 0, 10, encode(Erase{1, receipt}));
  seed("erase_ok", 0, 11, encode(EraseOk{1}));
  seed("set_charging", 0, 12, encode(SetCharging{false}));
  seed("set_charging_ok", 0, 13, encode(SetChargingOk{true}));
  seed("auth_begin", 0, 14, encode(AuthBegin{digest(0x11), cert}));
  seed("auth_begin_ok", 0, 15, encode(begin_ok));
  seed("auth_finish", 0, 16, encode(AuthFinish{key.sign(Bytes{4, 5, 6})}));
  seed("error", 0, 18, encode(ErrorReply{errc::receipt_rejected, "receipt: not signed by a fleet dock"}));
  seed("manifest_v3", 0, 19, encode_manifest(list_ok.manifests[1]));
  seed("manifest_v2", 0, 19, encode_manifest(manifest(2, 1, key)));
  seed("receipt", 0, 20, receipt);

  // A camera's side of a whole docking, as one byte stream.
  Bytes stream;
  auto add = [&stream](const Bytes& f) { stream.insert(stream.end(), f.begin(), f.end()); };
  add(frame(MsgType::hello_ok, 1, encode(hello_ok)));
  add(frame(MsgType::auth_begin_ok, 2, encode(begin_ok)));
  add(frame(MsgType::auth_finish_ok, 3, encode(AuthFinishOk{})));
  add(frame(MsgType::status, 4, encode(status)));
  add(frame(MsgType::set_time_ok, 5, encode(SetTimeOk{12})));
  add(frame(MsgType::list_ok, 6, encode(list_ok)));
  add(frame(MsgType::data, 7, data));
  add(frame(MsgType::erase_ok, 8, encode(EraseOk{1})));
  add(frame(MsgType::set_charging_ok, 9, encode(SetChargingOk{false})));
  add(frame(MsgType::error, 10, encode(ErrorReply{errc::busy, "busy"})));
  for (const std::uint8_t chunk : {0, 15, 96}) seed("docking-" + std::to_string(chunk + 1), chunk, 21, stream);
  return 0;
}
