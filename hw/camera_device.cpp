#include "hw/camera_device.hpp"

#include "proto/sha256.hpp"

#include <fcntl.h>
#include <unistd.h>

#include <algorithm>
#include <bit>
#include <chrono>
#include <cstring>
#include <fstream>
#include <sstream>
#include <stdexcept>
#include <system_error>

namespace bodydock::hw {
namespace {

using proto::Bytes;
using proto::ByteView;
using proto::errc;
using proto::MsgType;

std::uint64_t splitmix64(std::uint64_t x) {
  x += 0x9e3779b97f4a7c15ull;
  x = (x ^ (x >> 30)) * 0xbf58476d1ce4e5b9ull;
  x = (x ^ (x >> 27)) * 0x94d049bb133111ebull;
  return x ^ (x >> 31);
}

std::uint64_t to_le(std::uint64_t v) {
  if constexpr (std::endian::native == std::endian::big) return __builtin_bswap64(v);
  return v;
}

std::int64_t now_ms() {
  return std::chrono::duration_cast<std::chrono::milliseconds>(std::chrono::system_clock::now().time_since_epoch()).count();
}

/// Small deterministic generator for segment metadata.
class MetaRng {
 public:
  explicit MetaRng(std::uint64_t seed) : state_(seed) {}
  std::uint64_t next() { return splitmix64(state_++); }
  std::uint64_t below(std::uint64_t n) { return next() % n; }
 private:
  std::uint64_t state_;
};

constexpr const char* kTriggersOn[] = {"button", "holster-draw", "taser-armed", "voice-command"};
constexpr const char* kTriggersOff[] = {"button", "incident-timeout", "battery-low"};
constexpr char kStateMagic[] = "BDCAM1\n";

bool sync_directory(const std::filesystem::path& dir) {
  const int fd = ::open(dir.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
  if (fd < 0) return false;
  const bool ok = ::fsync(fd) == 0;
  ::close(fd);
  return ok;
}

void write_file_durably(const std::filesystem::path& path, ByteView bytes) {
  const auto tmp = path.string() + ".tmp";
  const int fd = ::open(tmp.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
  if (fd < 0) throw std::system_error(errno, std::generic_category(), "open " + tmp);
  std::size_t done = 0;
  while (done < bytes.size()) {
    const auto n = ::write(fd, bytes.data() + done, bytes.size() - done);
    if (n < 0 && errno == EINTR) continue;
    if (n < 0) {
      const int e = errno;
      ::close(fd);
      throw std::system_error(e, std::generic_category(), "write " + tmp);
    }
    done += static_cast<std::size_t>(n);
  }
  if (::fsync(fd) != 0) {
    const int e = errno;
    ::close(fd);
    throw std::system_error(e, std::generic_category(), "fsync " + tmp);
  }
  ::close(fd);
  std::filesystem::rename(tmp, path);
  if (!sync_directory(path.parent_path())) throw std::runtime_error("fsync of " + path.parent_path().string() + " failed");
}

}  // namespace

std::uint64_t content_key(std::uint64_t seed, const std::string& serial, std::uint64_t seq) {
  std::uint64_t h = splitmix64(seed);
  for (unsigned char c : serial) h = splitmix64(h ^ c);
  return splitmix64(h ^ splitmix64(seq));
}

void emulated_content(std::uint64_t key, std::uint64_t offset, std::span<std::uint8_t> out) {
  std::uint64_t word = offset / 8;
  std::size_t skip = offset % 8;
  std::size_t i = 0;
  while (i < out.size()) {
    const std::uint64_t v = to_le(splitmix64(key ^ (word * 0xd1b54a32d192ed03ull)));
    const std::size_t n = std::min<std::size_t>(8 - skip, out.size() - i);
    std::memcpy(out.data() + i, reinterpret_cast<const std::uint8_t*>(&v) + skip, n);
    i += n;
    skip = 0;
    ++word;
  }
}

CameraDevice::CameraDevice(CameraSpec spec) : spec_(std::move(spec)) { record_segments(); }

void CameraDevice::record_segments() {
  if (!spec_.trust) throw std::invalid_argument("an emulated camera needs its keys (CameraSpec::trust)");
  if (spec_.chunk_size < proto::kMinChunkSize || spec_.chunk_size > proto::kMaxChunkSize)
    throw std::invalid_argument("chunk size out of range");
  const auto size = proto::ciphertext_size(spec_.segment_bytes, spec_.chunk_size);
  if (spec_.segment_bytes == 0 || (size + spec_.chunk_size - 1) / spec_.chunk_size > proto::kMaxChunks)
    throw std::invalid_argument("segment size out of range for the chunk size");
  if (!spec_.priority_segments.empty() && (*spec_.priority_segments.begin() == 0 || *spec_.priority_segments.rbegin() > spec_.segments))
    throw std::invalid_argument("a priority segment the camera does not record");
  MetaRng rng(content_key(spec_.seed, spec_.serial, 0));
  // Shifts start about 7 hours before "now" in emulated time; incidents every few minutes.
  std::int64_t t = 1'795'000'000'000 + static_cast<std::int64_t>(rng.below(3'600'000));
  proto::Digest prev{};
  std::uint16_t index = 0;
  std::uint64_t left_in_recording = 0;
  std::string recording_id;
  std::string trigger_on;
  std::vector<std::uint8_t> buf(spec_.chunk_size);
  proto::Sha256 whole;
  proto::Sha256 chunk_hash;
  for (std::uint64_t seq = 1; seq <= spec_.segments; ++seq) {
    proto::Manifest m;
    const bool first = left_in_recording == 0;
    if (first) {
      left_in_recording = 1 + rng.below(3);
      index = 0;
      char id[32];
      std::snprintf(id, sizeof id, "REC-%016llx", static_cast<unsigned long long>(rng.next()));
      recording_id = id;
      trigger_on = kTriggersOn[rng.below(std::size(kTriggersOn))];
      t += static_cast<std::int64_t>(120'000 + rng.below(1'800'000));
    }
    --left_in_recording;
    m.camera_serial = spec_.serial;
    m.seq = seq;
    m.recording_id = recording_id;
    m.segment_index = index++;
    m.last_in_recording = left_in_recording == 0;
    m.pre_record_s = first ? 60 : 0;
    m.trigger_on = first ? trigger_on : "segment-rollover";
    m.trigger_off = m.last_in_recording ? kTriggersOff[rng.below(std::size(kTriggersOff))] : "segment-rollover";
    m.firmware = spec_.firmware;
    m.start_utc_ms = t - (first ? 60'000 : 0);
    // About 2 MB/s of encoded video.
    m.end_utc_ms = t + std::max<std::int64_t>(1000, static_cast<std::int64_t>(spec_.segment_bytes / 2000));
    t = m.end_utc_ms;
    m.size = size;
    m.chunk_size = spec_.chunk_size;
    manifests_.push_back(m);  // content() below looks the segment up
    for (std::uint64_t c = 0; c < m.chunk_count(); ++c) {
      std::span<std::uint8_t> part(buf.data(), m.chunk_length(c));
      content(seq, c * m.chunk_size, part);
      whole.update(part);
      chunk_hash.update(part);
      m.chunk_sha256.push_back(chunk_hash.finish());
    }
    m.sha256 = whole.finish();
    m.prev_manifest_sha256 = prev;
    // Only the wrapped key leaves the camera; the key itself is forgotten after recording.
    m.key_wrap = proto::wrap_segment_key(segment_key(seq), spec_.trust->recording_key, spec_.serial, seq);
    if (spec_.priority_segments.contains(seq)) m.flags |= proto::kManifestFlagPriority;
    proto::sign_manifest(m, spec_.trust->device_key);
    prev = proto::manifest_hash(m);
    manifests_.back() = std::move(m);
  }
}

proto::Bytes CameraDevice::segment_key(std::uint64_t seq) const {
  // Emulator only: derived from the seed so a reopened camera serves the same ciphertext. A
  // real camera draws a random key per segment and keeps only its wrapped form.
  const auto k = to_le(content_key(spec_.seed, spec_.serial, seq));
  const std::string_view info = "bodydock-emulator-segment-key";
  return proto::crypto::hkdf_sha256(ByteView(reinterpret_cast<const std::uint8_t*>(&k), sizeof k), {},
                                    ByteView(reinterpret_cast<const std::uint8_t*>(info.data()), info.size()), proto::crypto::kKeySize);
}

std::uint64_t CameraDevice::plaintext_size(std::uint64_t seq) const {
  const auto* m = find(seq);
  if (m == nullptr) {
    auto it = std::find_if(manifests_.begin(), manifests_.end(), [&](const auto& x) { return x.seq == seq; });
    if (it == manifests_.end()) throw std::out_of_range("no such segment");
    m = &*it;
  }
  return m->size - m->chunk_count() * proto::crypto::kGcmTag;
}

void CameraDevice::plaintext(std::uint64_t seq, std::uint64_t offset, std::span<std::uint8_t> out) const {
  emulated_content(content_key(spec_.seed, spec_.serial, seq), offset, out);
}

void CameraDevice::content(std::uint64_t seq, std::uint64_t offset, std::span<std::uint8_t> out) const {
  auto it = std::find_if(manifests_.begin(), manifests_.end(), [&](const auto& x) { return x.seq == seq; });
  if (it == manifests_.end()) throw std::out_of_range("no such segment");
  const auto& m = *it;
  const auto key = segment_key(seq);
  const std::uint64_t plain_chunk = m.chunk_size - proto::crypto::kGcmTag;
  const auto chunks = m.chunk_count();
  std::vector<std::uint8_t> plain;
  std::vector<std::uint8_t> sealed;
  std::size_t done = 0;
  while (done < out.size()) {
    const auto at = offset + done;
    const auto c = at / m.chunk_size;
    const auto within = at % m.chunk_size;
    const auto len = m.chunk_length(c);
    if (len == 0) throw std::out_of_range("read past the end of a segment");
    plain.resize(len - proto::crypto::kGcmTag);
    emulated_content(content_key(spec_.seed, spec_.serial, seq), c * plain_chunk, plain);
    const auto n = std::min<std::size_t>(len - within, out.size() - done);
    if (within == 0 && n == len) {
      proto::seal_chunk(key, spec_.serial, seq, c, c + 1 == chunks, plain, out.subspan(done, n));
    } else {
      sealed.resize(len);
      proto::seal_chunk(key, spec_.serial, seq, c, c + 1 == chunks, plain, sealed);
      std::memcpy(out.data() + done, sealed.data() + within, n);
    }
    done += n;
  }
}

CameraDevice CameraDevice::open_persistent(CameraSpec spec, const std::filesystem::path& dir) {
  std::filesystem::create_directories(dir);
  const auto state = dir / (spec.serial + ".camera");
  if (!std::filesystem::exists(state)) {
    CameraDevice dev(std::move(spec));
    dev.dir_ = dir;
    dev.save();
    return dev;
  }
  std::ifstream in(state, std::ios::binary);
  Bytes bytes((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
  const auto magic_len = std::strlen(kStateMagic);
  if (bytes.size() < magic_len + 8 || std::memcmp(bytes.data(), kStateMagic, magic_len) != 0)
    throw std::runtime_error("emulated camera state " + state.string() + " is not a camera state file");
  proto::Reader r(ByteView(bytes).subspan(magic_len));
  spec.seed = r.u64();
  spec.segments = r.u32();
  std::vector<proto::Manifest> manifests;
  for (std::uint32_t i = 0; i < spec.segments && r.ok(); ++i) {
    auto m = proto::decode_manifest(r.blob(proto::kMaxManifestSize));
    if (!m) throw std::runtime_error("emulated camera state " + state.string() + ": " + m.error().message());
    manifests.push_back(std::move(*m));
  }
  if (r.finish() != errc::ok) throw std::runtime_error("emulated camera state " + state.string() + " is truncated");
  if (!manifests.empty()) {
    spec.segment_bytes = manifests.front().size;
    spec.chunk_size = manifests.front().chunk_size;
  }
  // What was recorded stands, like the seed: the flags are in the signed manifests.
  spec.priority_segments.clear();
  for (const auto& m : manifests)
    if (m.priority()) spec.priority_segments.insert(m.seq);
  CameraDevice dev(spec, std::move(manifests), dir);
  return dev;
}

CameraDevice::CameraDevice(CameraSpec spec, std::vector<proto::Manifest> manifests, std::filesystem::path dir)
    : spec_(std::move(spec)), manifests_(std::move(manifests)), dir_(std::move(dir)) {
  for (const auto& [seq, digest] : read_erase_log(*dir_, spec_.serial)) erased_.insert(seq);
}

void CameraDevice::save() const {
  Bytes out(kStateMagic, kStateMagic + std::strlen(kStateMagic));
  proto::Writer w(out);
  w.u64(spec_.seed);
  w.u32(static_cast<std::uint32_t>(manifests_.size()));
  for (const auto& m : manifests_) w.blob(proto::encode_manifest(m));
  write_file_durably(*dir_ / (spec_.serial + ".camera"), out);
}

std::map<std::uint64_t, proto::Digest> CameraDevice::read_erase_log(const std::filesystem::path& dir, const std::string& serial) {
  std::map<std::uint64_t, proto::Digest> log;
  std::ifstream in(dir / (serial + ".erase-log"));
  std::string line;
  while (std::getline(in, line)) {
    std::istringstream fields(line);
    std::uint64_t seq = 0;
    std::string hex;
    if (!(fields >> seq >> hex)) continue;  // a torn last line from a crash: never acknowledged
    if (auto d = proto::digest_from_hex(hex)) log.emplace(seq, *d);
  }
  return log;
}

const CameraTrust& CameraDevice::trust() const { return *spec_.trust; }

std::string CameraDevice::receipt_problem(const proto::Erase& e, const proto::Manifest& m) const {
  auto r = proto::decode_receipt(e.receipt);
  if (!r) return "not a signed custody receipt (" + r.error().message() + ")";
  if (r->camera_serial != spec_.serial || r->seq != e.seq) return "receipt is for another segment";
  if (!proto::digest_equal(r->sha256, m.sha256)) return "receipt does not match the segment's SHA-256";
  if (!proto::digest_equal(r->manifest_sha256, proto::manifest_hash(m))) return "receipt does not match the segment's manifest";
  const auto who = trust().fleet.check(r->dock_cert, "dock");
  if (const auto* why = std::get_if<std::string>(&who)) return "receipt signer: " + *why;
  if (!std::get<proto::crypto::CertInfo>(who).key.verify(proto::receipt_signing_input(*r), r->signature))
    return "receipt signature does not verify";
  return {};
}

void CameraDevice::serve_auth_begin(Bytes& out, std::uint32_t id, const proto::AuthBegin& a) {
  pending_auth_.reset();
  authenticated_ = false;
  if (faults_.replay_auth && last_auth_answer_) return reply(out, MsgType::auth_begin_ok, id, *last_auth_answer_);
  // Refuse a dock outside the fleet before signing anything for it.
  const auto dock = trust().fleet.check(a.dock_cert, "dock");
  if (const auto* why = std::get_if<std::string>(&dock)) return reply_error(out, id, errc::auth_failed, "dock certificate: " + *why);
  PendingAuth pending{a, {}};
  const auto nonce = proto::crypto::random_bytes(proto::kNonceSize);
  std::copy(nonce.begin(), nonce.end(), pending.camera_nonce.begin());
  proto::AuthBeginOk ok;
  ok.camera_nonce = pending.camera_nonce;
  ok.camera_cert = trust().device_cert;
  ok.signature = trust().device_key.sign(
      proto::auth_transcript(proto::AuthRole::camera, a.dock_nonce, ok.camera_nonce, a.dock_cert, ok.camera_cert, spec_.serial));
  pending_auth_ = std::move(pending);
  const auto payload = proto::encode(ok);
  last_auth_answer_ = payload;
  reply(out, MsgType::auth_begin_ok, id, payload);
}

void CameraDevice::serve_auth_finish(Bytes& out, std::uint32_t id, const proto::AuthFinish& a) {
  if (!pending_auth_) return reply_error(out, id, errc::bad_state, "AUTH_BEGIN first");
  const auto pending = std::move(*pending_auth_);
  pending_auth_.reset();  // one answer per challenge: a second try needs a new AUTH_BEGIN
  const auto dock = trust().fleet.check(pending.begin.dock_cert, "dock");
  const auto* info = std::get_if<proto::crypto::CertInfo>(&dock);
  const auto transcript = proto::auth_transcript(proto::AuthRole::dock, pending.begin.dock_nonce, pending.camera_nonce,
                                                 pending.begin.dock_cert, trust().device_cert, spec_.serial);
  if (info == nullptr || !info->key.verify(transcript, a.signature))
    return reply_error(out, id, errc::auth_failed, "dock signature does not verify");
  authenticated_ = true;
  reply(out, MsgType::auth_finish_ok, id, proto::encode(proto::AuthFinishOk{}));
}

void CameraDevice::reset_session() {
  parser_ = proto::FrameParser{};
  hello_done_ = false;
  authenticated_ = false;
  pending_auth_.reset();
  charge_allowed_ = true;
}

bool CameraDevice::charging() const { return (charge_allowed_ || faults_.charger_uncontrollable) && spec_.battery_pct < 100; }

std::int16_t CameraDevice::temperature_dc() const {
  return static_cast<std::int16_t>(spec_.temperature_dc + (charging() ? faults_.charge_heat_dc : 0));
}

Bytes CameraDevice::handle(ByteView out_transfer) {
  Bytes out;
  if (auto ec = parser_.feed(out_transfer)) {
    reply_error(out, parser_.failed_request_id(), static_cast<errc>(ec.value()), "frame header refused");
    parser_ = proto::FrameParser{};  // drop the desynchronised stream; the host starts afresh
    return out;
  }
  while (auto f = parser_.next()) serve(out, *f);
  if (auto ec = parser_.error()) {
    reply_error(out, parser_.failed_request_id(), static_cast<errc>(ec.value()), "frame header refused");
    parser_ = proto::FrameParser{};
  }
  return out;
}

void CameraDevice::reply(Bytes& out, MsgType type, std::uint32_t id, const Bytes& payload) {
  proto::append_frame_header(out, type, id, static_cast<std::uint32_t>(payload.size()));
  out.insert(out.end(), payload.begin(), payload.end());
}

void CameraDevice::reply_error(Bytes& out, std::uint32_t id, errc code, std::string_view message) {
  reply(out, MsgType::error, id, proto::encode(proto::ErrorReply{code, std::string(message)}));
}

const proto::Manifest* CameraDevice::find(std::uint64_t seq) const {
  if (erased_.contains(seq)) return nullptr;
  auto it = std::lower_bound(manifests_.begin(), manifests_.end(), seq, [](const auto& m, std::uint64_t s) { return m.seq < s; });
  return it != manifests_.end() && it->seq == seq ? &*it : nullptr;
}

void CameraDevice::serve(Bytes& out, const proto::Frame& f) {
  const auto id = f.header.request_id;
  const ByteView p(f.payload);
  if (!hello_done_ && f.header.type != MsgType::hello) return reply_error(out, id, errc::bad_state, "HELLO first");
  // Charge-only needs status and charging control; everything that touches footage, the clock
  // or the flash needs a dock that proved itself (PROTOCOL.md 5.5).
  const bool needs_auth = f.header.type == MsgType::set_time || f.header.type == MsgType::list || f.header.type == MsgType::read ||
                          f.header.type == MsgType::erase;
  if (needs_auth && !authenticated_) {
    ++refused_unauthenticated_;
    return reply_error(out, id, errc::not_authenticated, "authenticate first");
  }
  auto refuse = [&](const boost::system::error_code& ec) { reply_error(out, id, static_cast<errc>(ec.value()), "cannot decode request"); };
  switch (f.header.type) {
    case MsgType::hello: {
      auto h = proto::decode_hello(p);
      if (!h) return refuse(h.error());
      const auto v = proto::negotiate_version(h->min_version, h->max_version, proto::kMinProtocolVersion, proto::kProtocolVersion);
      if (v == 0) return reply_error(out, id, errc::unsupported_version, "this camera speaks protocol 2");
      hello_done_ = true;
      authenticated_ = false;  // a new handshake needs a new authentication
      pending_auth_.reset();
      proto::HelloOk ok;
      ok.version = v;
      ok.serial = spec_.serial;
      ok.model = spec_.model;
      ok.firmware = spec_.firmware;
      return reply(out, MsgType::hello_ok, id, proto::encode(ok));
    }
    case MsgType::status_get: {
      if (auto s = proto::decode_status_get(p); !s) return refuse(s.error());
      ++status_polls_;
      proto::Status st;
      st.battery_pct = spec_.battery_pct;
      st.charging = charging();
      st.temperature_dc = temperature_dc();
      if (st.charging) ++spec_.battery_pct;  // a coarse model: one percent per status poll
      st.storage_total = spec_.storage_total;
      for (const auto& m : manifests_)
        if (!erased_.contains(m.seq)) {
          st.storage_used += m.size;
          ++st.segment_count;
        }
      st.storage_used = std::min(st.storage_used, st.storage_total);
      st.clock_utc_ms = now_ms() + spec_.clock_skew_ms;
      return reply(out, MsgType::status, id, proto::encode(st));
    }
    case MsgType::set_time: {
      auto s = proto::decode_set_time(p);
      if (!s) return refuse(s.error());
      const auto before = now_ms() + spec_.clock_skew_ms;
      spec_.clock_skew_ms = s->utc_ms - now_ms();
      return reply(out, MsgType::set_time_ok, id, proto::encode(proto::SetTimeOk{s->utc_ms - before}));
    }
    case MsgType::list: {
      auto l = proto::decode_list(p);
      if (!l) return refuse(l.error());
      return serve_list(out, id, *l);
    }
    case MsgType::read: {
      auto r = proto::decode_read(p);
      if (!r) return refuse(r.error());
      return serve_read(out, id, *r);
    }
    case MsgType::erase: {
      auto e = proto::decode_erase(p);
      if (!e) return refuse(e.error());
      return serve_erase(out, id, *e);
    }
    case MsgType::set_charging: {
      auto c = proto::decode_set_charging(p);
      if (!c) return refuse(c.error());
      charge_allowed_ = c->allow;
      charge_requests_.push_back(c->allow);
      return reply(out, MsgType::set_charging_ok, id, proto::encode(proto::SetChargingOk{charging()}));
    }
    case MsgType::auth_begin: {
      auto a = proto::decode_auth_begin(p);
      if (!a) return refuse(a.error());
      return serve_auth_begin(out, id, *a);
    }
    case MsgType::auth_finish: {
      auto a = proto::decode_auth_finish(p);
      if (!a) return refuse(a.error());
      return serve_auth_finish(out, id, *a);
    }
    default:
      return reply_error(out, id, errc::bad_request, "reply types are not requests");
  }
}

void CameraDevice::serve_list(Bytes& out, std::uint32_t id, const proto::List& l) {
  proto::ListOk ok;
  std::size_t budget = proto::kMaxPayload - 64;
  auto it = std::lower_bound(manifests_.begin(), manifests_.end(), l.cursor, [](const auto& m, std::uint64_t s) { return m.seq < s; });
  ok.next_cursor = l.cursor;
  for (; it != manifests_.end(); ++it) {
    if (erased_.contains(it->seq) || faults_.hide_from_list.contains(it->seq)) continue;
    const auto size = proto::encode_manifest(*it).size() + 4;
    if (ok.manifests.size() == l.max_count || size > budget) {
      ok.more = true;
      break;
    }
    budget -= size;
    ok.manifests.push_back(*it);
    if (faults_.bad_signature.contains(it->seq)) ok.manifests.back().signature.back() ^= 0x01;
    ok.next_cursor = it->seq + 1;
  }
  reply(out, MsgType::list_ok, id, proto::encode(ok));
}

void CameraDevice::serve_read(Bytes& out, std::uint32_t id, const proto::Read& r) {
  const auto* m = find(r.seq);
  if (m == nullptr) return reply_error(out, id, errc::not_found, "no such segment");
  if (r.offset >= m->size) return reply_error(out, id, errc::out_of_range, "offset past the end");
  const auto len = static_cast<std::uint32_t>(std::min<std::uint64_t>(r.length, m->size - r.offset));
  const auto header = proto::encode_data_header(r.seq, r.offset);
  proto::append_frame_header(out, MsgType::data, id, static_cast<std::uint32_t>(header.size() + len));
  out.insert(out.end(), header.begin(), header.end());
  const auto start = out.size();
  out.resize(start + len);
  std::span<std::uint8_t> bytes(out.data() + start, len);
  content(r.seq, r.offset, bytes);
  // Flash corruption: a flipped bit at the start of each affected chunk this read covers.
  for (auto& [where, left] : faults_.corrupt_chunk) {
    if (where.first != r.seq || left == 0) continue;
    const std::uint64_t at = where.second * m->chunk_size;
    if (at >= r.offset && at < r.offset + len) {
      bytes[at - r.offset] ^= 0x10;
      --left;
    }
  }
  bytes_served_ += len;
}

void CameraDevice::serve_erase(Bytes& out, std::uint32_t id, const proto::Erase& e) {
  const auto* m = find(e.seq);
  if (m == nullptr) return reply_error(out, id, errc::not_found, "no such segment");
  if (const auto problem = receipt_problem(e, *m); !problem.empty()) {
    ++receipts_rejected_;
    return reply_error(out, id, errc::receipt_rejected, problem);
  }
  if (on_erase) on_erase(*m);
  if (dir_) {
    // Persist before acknowledging: an erase the dock saw confirmed is never undone by a crash.
    const auto path = *dir_ / (spec_.serial + ".erase-log");
    const bool created = !std::filesystem::exists(path);
    const int fd = ::open(path.c_str(), O_RDWR | O_CREAT | O_APPEND | O_CLOEXEC, 0600);
    if (fd < 0) return reply_error(out, id, errc::internal, "cannot persist erase");
    // A line torn by a power cut was never acknowledged; start on a fresh line so it cannot
    // swallow this record.
    std::string line = std::to_string(e.seq) + " " + proto::to_hex(m->sha256) + "\n";
    const auto end = ::lseek(fd, 0, SEEK_END);
    char last = '\n';
    if (end > 0 && ::pread(fd, &last, 1, end - 1) == 1 && last != '\n') line.insert(line.begin(), '\n');
    const bool written = ::write(fd, line.data(), line.size()) == static_cast<ssize_t>(line.size()) && ::fsync(fd) == 0;
    ::close(fd);
    if (!written || (created && !sync_directory(*dir_))) return reply_error(out, id, errc::internal, "cannot persist erase");
  }
  erased_.insert(e.seq);
  reply(out, MsgType::erase_ok, id, proto::encode(proto::EraseOk{e.seq}));
}

}  // namespace bodydock::hw
