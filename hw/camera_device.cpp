#include "hw/camera_device.hpp"

#include "proto/device/bd_device.h"
#include "proto/sha256.hpp"

#include <fcntl.h>
#include <unistd.h>

#include <algorithm>
#include <bit>
#include <chrono>
#include <cmath>
#include <cstring>
#include <exception>
#include <fstream>
#include <sstream>
#include <stdexcept>
#include <system_error>
#include <utility>

namespace bodydock::hw {
namespace {

using proto::Bytes;
using proto::ByteView;
using proto::errc;

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

/// Linear between the points, flat before the first and after the last.
double curve_at(const std::vector<std::pair<double, double>>& points, double t) {
  if (t <= points.front().first) return points.front().second;
  for (std::size_t i = 1; i < points.size(); ++i) {
    const auto& [t1, v1] = points[i];
    if (t <= t1) {
      const auto& [t0, v0] = points[i - 1];
      return v0 + (v1 - v0) * (t - t0) / (t1 - t0);
    }
  }
  return points.back().second;
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

CameraDevice::CameraDevice(CameraSpec spec) : spec_(std::move(spec)) {
  record_segments();
  start();
}

void CameraDevice::record_segments() {
  if (!spec_.trust) throw std::invalid_argument("an emulated camera needs its keys (CameraSpec::trust)");
  if (spec_.chunk_size < proto::kMinChunkSize || spec_.chunk_size > proto::kMaxChunkSize)
    throw std::invalid_argument("chunk size out of range");
  if (!spec_.segment_sizes.empty()) spec_.segments = static_cast<std::uint32_t>(spec_.segment_sizes.size());
  for (std::uint64_t seq = 1; seq <= spec_.segments; ++seq) {
    const auto bytes = spec_.segment_sizes.empty() ? spec_.segment_bytes : spec_.segment_sizes.at(seq - 1);
    if (bytes == 0 || (proto::ciphertext_size(bytes, spec_.chunk_size) + spec_.chunk_size - 1) / spec_.chunk_size > proto::kMaxChunks)
      throw std::invalid_argument("segment size out of range for the chunk size");
  }
  if (!spec_.priority_segments.empty() && (*spec_.priority_segments.begin() == 0 || *spec_.priority_segments.rbegin() > spec_.segments))
    throw std::invalid_argument("a priority segment the camera does not record");
  record(1, spec_.segments);
}

void CameraDevice::record_shift(std::uint32_t segments) {
  if (segments == 0) throw std::invalid_argument("a shift records at least one segment");
  // Erased segments are forgotten, as a real camera frees their space; the newest segment stays
  // whatever its state, as the anchor the new shift's chain continues from.
  if (!manifests_.empty()) {
    const auto newest = manifests_.end() - 1;
    manifests_.erase(std::remove_if(manifests_.begin(), newest, [this](const proto::Manifest& m) { return erased_.contains(m.seq); }), newest);
  }
  record(manifests_.empty() ? 1 : manifests_.back().seq + 1, segments);
  if (dir_) save();
  start();  // the device library serves the new manifests from the next docking on
}

void CameraDevice::record(std::uint64_t first_seq, std::uint32_t count) {
  auto plain_bytes = [this](std::uint64_t seq) {
    return spec_.segment_sizes.empty() ? spec_.segment_bytes : spec_.segment_sizes.at((seq - 1) % spec_.segment_sizes.size());
  };
  // The first shift's metadata depends on the seed alone (persisted cameras and tests rely on
  // it); a later one on the seed and where it starts.
  MetaRng rng(content_key(spec_.seed, spec_.serial, first_seq == 1 ? 0 : first_seq));
  // Shifts start about 7 hours before "now" in emulated time, a later one half a day after the
  // last recording; incidents every few minutes.
  std::int64_t t = manifests_.empty() ? 1'795'000'000'000 + static_cast<std::int64_t>(rng.below(3'600'000))
                                      : manifests_.back().end_utc_ms + std::int64_t{12} * 3'600'000;
  // Chained to the last segment ever recorded, erased or not: one chain over the camera's life.
  proto::Digest prev = manifests_.empty() ? proto::Digest{} : proto::manifest_hash(manifests_.back());
  std::uint16_t index = 0;
  std::uint64_t left_in_recording = 0;
  std::string recording_id;
  std::string trigger_on;
  std::vector<std::uint8_t> buf(spec_.chunk_size);
  proto::Sha256 whole;
  proto::Sha256 chunk_hash;
  for (std::uint64_t seq = first_seq; seq < first_seq + count; ++seq) {
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
    m.end_utc_ms = t + std::max<std::int64_t>(1000, static_cast<std::int64_t>(plain_bytes(seq) / 2000));
    t = m.end_utc_ms;
    m.size = proto::ciphertext_size(plain_bytes(seq), spec_.chunk_size);
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
  start();
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

double CameraDevice::seconds_docked() const {
  return std::chrono::duration<double>(std::chrono::steady_clock::now() - docked_at_).count();
}

std::int64_t CameraDevice::drift_ms() const {
  const auto since = std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - drift_from_).count();
  return static_cast<std::int64_t>(since * spec_.clock_drift_ppm / 1e6);
}

bool CameraDevice::charging() const { return (charge_allowed_ || faults_.charger_uncontrollable) && spec_.battery_pct < 100; }

std::int16_t CameraDevice::temperature_dc() const {
  const auto resting = spec_.temperature_curve.empty() ? spec_.temperature_dc
                                                       : static_cast<std::int16_t>(std::lround(curve_at(spec_.temperature_curve, seconds_docked()) * 10));
  return static_cast<std::int16_t>(resting + (charging() ? faults_.charge_heat_dc : 0));
}

const proto::Manifest* CameraDevice::find(std::uint64_t seq) const {
  if (erased_.contains(seq)) return nullptr;
  auto it = std::lower_bound(manifests_.begin(), manifests_.end(), seq, [](const auto& m, std::uint64_t s) { return m.seq < s; });
  return it != manifests_.end() && it->seq == seq ? &*it : nullptr;
}

bool CameraDevice::erase(std::uint64_t seq) {
  const auto* m = find(seq);
  if (m == nullptr) return false;
  if (on_erase) on_erase(*m);
  if (dir_) {
    // Persist before acknowledging: an erase the dock saw confirmed is never undone by a crash.
    const auto path = *dir_ / (spec_.serial + ".erase-log");
    const bool created = !std::filesystem::exists(path);
    const int fd = ::open(path.c_str(), O_RDWR | O_CREAT | O_APPEND | O_CLOEXEC, 0600);
    if (fd < 0) return false;
    // A line torn by a power cut was never acknowledged; start on a fresh line so it cannot
    // swallow this record.
    std::string line = std::to_string(seq) + " " + proto::to_hex(m->sha256) + "\n";
    const auto end = ::lseek(fd, 0, SEEK_END);
    char last = '\n';
    if (end > 0 && ::pread(fd, &last, 1, end - 1) == 1 && last != '\n') line.insert(line.begin(), '\n');
    const bool written = ::write(fd, line.data(), line.size()) == static_cast<ssize_t>(line.size()) && ::fsync(fd) == 0;
    ::close(fd);
    if (!written || (created && !sync_directory(*dir_))) return false;
  }
  erased_.insert(seq);
  return true;
}

// ---- The protocol: the firmware device library, with this model behind its callbacks -------

/// What the callbacks reach. `owner` is refreshed on every entry (CameraDevice moves, the
/// engine does not); `replies` is the reply buffer of the handle() call in progress. C frames sit
/// between the library and its callbacks, so no exception may unwind through them: a callback
/// catches it, reports failure to the library, and handle() rethrows it once the library
/// returns (an on_erase check that fails, say, still fails the test that installed it).
struct CameraDevice::Engine {
  bd_device dev{};
  CameraDevice* owner = nullptr;
  Bytes* replies = nullptr;
  std::exception_ptr error;
  // The library keeps pointers to these for as long as it runs.
  std::string serial;
  std::string model;
  std::string firmware;
  Bytes cert;
  // DeviceFaults::replay_auth: the nonce drawn for the answer being made, and the last answer
  // made honestly (nonce, signature), which a replaying camera gives again.
  Bytes drawn_nonce;
  std::optional<std::pair<Bytes, Bytes>> last_answer;
  // Content is sealed per chunk and the library asks for a DATA frame in pieces of a few
  // hundred bytes: the chunk the last piece came from is kept.
  std::uint64_t sealed_seq = 0;
  std::uint64_t sealed_index = 0;
  Bytes sealed;
  bool sealed_valid = false;

  static Engine& of(void* user) { return *static_cast<Engine*>(user); }

  /// Runs a callback body; an exception becomes `failed` for the library and is kept for handle().
  template <typename R, typename F>
  static R guarded(void* user, R failed, F&& body) {
    auto& e = of(user);
    try {
      return body(*e.owner, e);
    } catch (...) {
      if (!e.error) e.error = std::current_exception();
      return failed;
    }
  }

  static void fill(const CameraDevice& cam, const proto::Manifest& m, bd_segment_info* out) {
    const auto i = cam.index_of(m);
    out->seq = m.seq;
    out->size = m.size;
    out->manifest_length = static_cast<std::uint32_t>(cam.encoded_[i].size());
    std::memcpy(out->sha256, m.sha256.data(), m.sha256.size());
    std::memcpy(out->manifest_sha256, cam.manifest_sha_[i].data(), cam.manifest_sha_[i].size());
  }

  /// Content bytes [offset, offset + out.size()) of `m`, from the sealed chunk cache.
  void read_content(const CameraDevice& cam, const proto::Manifest& m, std::uint64_t offset, std::span<std::uint8_t> out) {
    std::size_t done = 0;
    while (done < out.size()) {
      const auto at = offset + done;
      const auto index = at / m.chunk_size;
      if (!sealed_valid || sealed_seq != m.seq || sealed_index != index) {
        sealed.resize(m.chunk_length(index));
        cam.content(m.seq, index * m.chunk_size, sealed);
        sealed_seq = m.seq;
        sealed_index = index;
        sealed_valid = true;
      }
      const auto within = static_cast<std::size_t>(at - index * m.chunk_size);
      const auto n = std::min(sealed.size() - within, out.size() - done);
      std::memcpy(out.data() + done, sealed.data() + within, n);
      done += n;
    }
  }

  static bd_device_callbacks callbacks(Engine* self) {
    bd_device_callbacks cb{};
    cb.user = self;
    cb.write = [](void* u, const std::uint8_t* data, std::size_t len) {
      return guarded(u, false, [&](CameraDevice&, Engine& e) {
        e.replies->insert(e.replies->end(), data, data + len);
        return true;
      });
    };
    cb.find_segment = [](void* u, std::uint64_t seq, bd_segment_info* out) {
      return guarded(u, false, [&](CameraDevice& cam, Engine&) {
        const auto* m = cam.find(seq);
        if (m != nullptr) fill(cam, *m, out);
        return m != nullptr;
      });
    };
    cb.next_listed_segment = [](void* u, std::uint64_t from, bd_segment_info* out) {
      return guarded(u, false, [&](CameraDevice& cam, Engine&) {
        auto it = std::lower_bound(cam.manifests_.begin(), cam.manifests_.end(), from, [](const auto& m, std::uint64_t s) { return m.seq < s; });
        for (; it != cam.manifests_.end(); ++it) {
          // A hidden segment is still held (READ and ERASE find it); LIST just leaves it out.
          if (cam.erased_.contains(it->seq) || cam.faults_.hide_from_list.contains(it->seq)) continue;
          fill(cam, *it, out);
          return true;
        }
        return false;
      });
    };
    cb.read_manifest = [](void* u, std::uint64_t seq, std::uint32_t offset, std::uint8_t* out, std::size_t len) {
      return guarded(u, false, [&](CameraDevice& cam, Engine&) {
        const auto* m = cam.find(seq);
        if (m == nullptr) return false;
        const auto& bytes = cam.encoded_[cam.index_of(*m)];
        if (offset > bytes.size() || len > bytes.size() - offset) return false;
        std::memcpy(out, bytes.data() + offset, len);
        // Altered on flash: the signature's last byte (the encoding's last byte) flipped.
        const auto last = bytes.size() - 1;
        if (cam.faults_.bad_signature.contains(seq) && last >= offset && last < offset + len) out[last - offset] ^= 0x01;
        return true;
      });
    };
    cb.read_segment = [](void* u, std::uint64_t seq, std::uint64_t offset, std::uint8_t* out, std::size_t len) {
      return guarded(u, false, [&](CameraDevice& cam, Engine& e) {
        const auto* m = cam.find(seq);
        if (m == nullptr || offset > m->size || len > m->size - offset) return false;
        e.read_content(cam, *m, offset, {out, len});
        // Flash corruption: a flipped bit at the start of each affected chunk a READ covers
        // (the library asks for one READ in consecutive pieces, so each chunk start is in one).
        for (auto& [where, left] : cam.faults_.corrupt_chunk) {
          if (where.first != seq || left == 0) continue;
          const std::uint64_t at = where.second * m->chunk_size;
          if (at >= offset && at < offset + len) {
            out[at - offset] ^= 0x10;
            --left;
          }
        }
        cam.bytes_served_ += len;
        return true;
      });
    };
    cb.erase_segment = [](void* u, std::uint64_t seq) { return guarded(u, false, [&](CameraDevice& cam, Engine&) { return cam.erase(seq); }); };
    cb.storage_usage = [](void* u, bd_storage_usage* out) {
      guarded(u, false, [&](CameraDevice& cam, Engine&) {
        *out = bd_storage_usage{0, cam.spec_.storage_total, 0};
        for (const auto& m : cam.manifests_)
          if (!cam.erased_.contains(m.seq)) {
            out->used += m.size;
            ++out->segment_count;
          }
        return true;
      });
    };
    cb.random = [](void* u, std::uint8_t* out, std::size_t len) {
      return guarded(u, false, [&](CameraDevice& cam, Engine& e) {
        if (cam.faults_.replay_auth && e.last_answer && e.last_answer->first.size() == len) {
          std::memcpy(out, e.last_answer->first.data(), len);
          return true;
        }
        e.drawn_nonce = proto::crypto::random_bytes(len);
        std::memcpy(out, e.drawn_nonce.data(), len);
        return true;
      });
    };
    cb.sha256 = [](void* u, const std::uint8_t* data, std::size_t len, std::uint8_t* out) {
      return guarded(u, false, [&](CameraDevice&, Engine&) {
        const auto d = proto::Sha256::of(ByteView(data, len));
        std::memcpy(out, d.data(), d.size());
        return true;
      });
    };
    cb.sign = [](void* u, const std::uint8_t* msg, std::size_t len, std::uint8_t* sig, std::size_t cap, std::size_t* sig_len) {
      return guarded(u, false, [&](CameraDevice& cam, Engine& e) {
        if (!cam.spec_.trust) return false;
        Bytes s;
        if (cam.faults_.replay_auth && e.last_answer) {
          s = e.last_answer->second;
        } else {
          s = cam.spec_.trust->device_key.sign(ByteView(msg, len));
          e.last_answer.emplace(e.drawn_nonce, s);
        }
        if (s.size() > cap) return false;
        std::memcpy(sig, s.data(), s.size());
        *sig_len = s.size();
        return true;
      });
    };
    cb.check_dock_cert = [](void* u, const std::uint8_t* der, std::size_t len, std::uint8_t* key, char* why, std::size_t why_cap) {
      return guarded(u, false, [&](CameraDevice& cam, Engine&) {
        if (!cam.spec_.trust) return false;
        const auto who = cam.spec_.trust->fleet.check(ByteView(der, len), "dock");
        std::string problem;
        if (const auto* w = std::get_if<std::string>(&who)) {
          problem = *w;
        } else {
          const auto point = std::get<proto::crypto::CertInfo>(who).key.point();
          if (point.size() == BD_DOCK_KEY_SIZE) {
            std::memcpy(key, point.data(), point.size());
            return true;
          }
          problem = "not a P-256 key";
        }
        if (why_cap > 0) {
          const auto n = std::min(problem.size(), why_cap - 1);
          std::memcpy(why, problem.data(), n);
          why[n] = '\0';
        }
        return false;
      });
    };
    cb.verify_dock = [](void* u, const std::uint8_t* key, const std::uint8_t* msg, std::size_t len, const std::uint8_t* sig, std::size_t sig_len) {
      return guarded(u, false, [&](CameraDevice&, Engine&) {
        return proto::crypto::PublicKey::from_point(ByteView(key, BD_DOCK_KEY_SIZE)).verify(ByteView(msg, len), ByteView(sig, sig_len));
      });
    };
    cb.clock_get = [](void* u) {
      return guarded(u, std::int64_t{0}, [&](CameraDevice& cam, Engine&) { return now_ms() + cam.spec_.clock_skew_ms + cam.drift_ms(); });
    };
    cb.clock_set = [](void* u, std::int64_t utc_ms) {
      return guarded(u, false, [&](CameraDevice& cam, Engine&) {
        cam.spec_.clock_skew_ms = utc_ms - now_ms();
        cam.drift_from_ = std::chrono::steady_clock::now();  // drift starts again from the time set
        return true;
      });
    };
    cb.power_status = [](void* u, bd_power_status* out) {
      guarded(u, false, [&](CameraDevice& cam, Engine&) {
        ++cam.status_polls_;
        if (!cam.spec_.battery_curve.empty())
          cam.spec_.battery_pct = static_cast<std::uint8_t>(std::lround(curve_at(cam.spec_.battery_curve, cam.seconds_docked())));
        out->battery_pct = cam.spec_.battery_pct;
        out->charging = cam.charging();
        out->temperature_dc = cam.temperature_dc();
        // Without a battery curve, a coarse model: one percent per status poll while charging.
        if (out->charging && cam.spec_.battery_curve.empty()) ++cam.spec_.battery_pct;
        return true;
      });
    };
    cb.set_charging = [](void* u, bool allow, bool* charging_now) {
      return guarded(u, false, [&](CameraDevice& cam, Engine&) {
        cam.charge_allowed_ = allow;
        cam.charge_requests_.push_back(allow);
        *charging_now = cam.charging();
        return true;
      });
    };
    return cb;
  }
};

void CameraDevice::EngineDeleter::operator()(Engine* e) const noexcept { delete e; }

void CameraDevice::start() {
  encoded_.clear();
  manifest_sha_.clear();
  for (const auto& m : manifests_) {
    encoded_.push_back(proto::encode_manifest(m));
    manifest_sha_.push_back(proto::manifest_hash(m));
  }
  engine_.reset(new Engine);
  auto& e = *engine_;
  e.owner = this;
  e.serial = spec_.serial;
  e.model = spec_.model;
  e.firmware = spec_.firmware;
  // A camera reopened from its flash only to look at what it recorded may come without keys;
  // it then fails authentication (the crypto callbacks refuse) instead of answering.
  if (spec_.trust) e.cert = spec_.trust->device_cert;
  bd_device_config cfg{};
  cfg.serial = e.serial.c_str();
  cfg.model = e.model.c_str();
  cfg.firmware = e.firmware.c_str();
  cfg.device_cert = e.cert.data();
  cfg.device_cert_len = e.cert.size();
  cfg.max_read = proto::kMaxReadLength;
  cfg.max_inflight = 8;
  cfg.cb = Engine::callbacks(&e);
  if (bd_device_init(&e.dev, &cfg) != BD_OK)
    throw std::invalid_argument("camera " + spec_.serial +
                                ": the serial breaks PROTOCOL.md 4.3, or the model, firmware or certificate is over its size limit");
}

void CameraDevice::reset_session() {
  engine_->owner = this;
  bd_device_reset_session(&engine_->dev);
  charge_allowed_ = true;
  docked_at_ = std::chrono::steady_clock::now();
}

Bytes CameraDevice::handle(ByteView out_transfer) {
  Bytes out;
  auto& e = *engine_;
  e.owner = this;
  e.replies = &out;
  const auto result = bd_device_feed(&e.dev, out_transfer.data(), out_transfer.size());
  e.replies = nullptr;
  if (e.error) std::rethrow_exception(std::exchange(e.error, nullptr));
  // The write callback only fails by throwing, handled above.
  if (result != BD_OK) throw std::logic_error("camera device library refused the transfer");
  return out;
}

bool CameraDevice::authenticated() const { return bd_device_authenticated(&engine_->dev); }
unsigned CameraDevice::refused_unauthenticated() const { return bd_device_get_stats(&engine_->dev)->refused_unauthenticated; }
unsigned CameraDevice::receipts_rejected() const { return bd_device_get_stats(&engine_->dev)->receipts_rejected; }

}  // namespace bodydock::hw
