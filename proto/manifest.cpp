#include "proto/manifest.hpp"

#include "proto/sha256.hpp"

#include <boost/json.hpp>

#include <cctype>
#include <charconv>
#include <optional>
#include <stdexcept>
#include <string>

namespace bodydock::proto {

std::uint64_t Manifest::chunk_count() const {
  if (chunk_size == 0) return 0;
  return size / chunk_size + (size % chunk_size != 0 ? 1 : 0);  // no overflow near 2^64
}

std::uint32_t Manifest::chunk_length(std::uint64_t i) const {
  const std::uint64_t begin = i * chunk_size;
  if (begin >= size) return 0;
  const std::uint64_t left = size - begin;
  return static_cast<std::uint32_t>(left < chunk_size ? left : chunk_size);
}

Bytes encode_signed_part(const Manifest& m) {
  Bytes out;
  out.reserve(256 + m.chunk_sha256.size() * 32);
  Writer w(out);
  w.u16(m.version);
  w.str(m.camera_serial);
  w.u64(m.seq);
  w.str(m.recording_id);
  w.u16(m.segment_index);
  w.u8(m.last_in_recording ? 1 : 0);
  w.i64(m.start_utc_ms);
  w.i64(m.end_utc_ms);
  w.u16(m.pre_record_s);
  w.str(m.trigger_on);
  w.str(m.trigger_off);
  w.str(m.firmware);
  w.u64(m.size);
  w.u32(m.chunk_size);
  w.u32(static_cast<std::uint32_t>(m.chunk_sha256.size()));
  for (const auto& d : m.chunk_sha256) w.digest(d);
  w.digest(m.sha256);
  w.digest(m.prev_manifest_sha256);
  w.u8(m.encryption);
  w.u16(static_cast<std::uint16_t>(m.key_wrap.size()));
  w.raw(m.key_wrap);
  if (m.version >= 3) {
    w.u8(m.flags);
  } else if (m.flags != 0) {
    // Dropping the flag would sign (and upload) an incident as ordinary footage.
    throw std::invalid_argument("a version " + std::to_string(m.version) + " manifest has no flags field");
  }
  return out;
}

Bytes encode_manifest(const Manifest& m) {
  Bytes out = encode_signed_part(m);
  Writer w(out);
  w.u16(static_cast<std::uint16_t>(m.signature.size()));
  w.raw(m.signature);
  return out;
}

boost::system::result<Manifest> decode_manifest(ByteView bytes) {
  if (bytes.size() > kMaxManifestSize) return make_error_code(errc::too_large);
  Reader r(bytes);
  Manifest m;
  m.version = r.u16();
  if (r.ok() && (m.version < kMinManifestVersion || m.version > kManifestVersion)) return make_error_code(errc::unsupported_version);
  m.camera_serial = r.str();
  m.seq = r.u64();
  m.recording_id = r.str();
  m.segment_index = r.u16();
  const auto last = r.u8();
  m.start_utc_ms = r.i64();
  m.end_utc_ms = r.i64();
  m.pre_record_s = r.u16();
  m.trigger_on = r.str();
  m.trigger_off = r.str();
  m.firmware = r.str();
  m.size = r.u64();
  m.chunk_size = r.u32();
  const auto chunks = r.u32();
  if (!r.ok()) return make_error_code(r.error());
  if (chunks > kMaxChunks || chunks * 32ull > r.remaining()) return make_error_code(chunks > kMaxChunks ? errc::too_large : errc::truncated);
  m.chunk_sha256.resize(chunks);
  for (auto& d : m.chunk_sha256) d = r.digest();
  m.sha256 = r.digest();
  m.prev_manifest_sha256 = r.digest();
  m.encryption = r.u8();
  const auto wrap_len = r.u16();
  if (wrap_len > kMaxKeyWrap) return make_error_code(errc::too_large);
  const auto wrap = r.take(wrap_len);
  m.key_wrap.assign(wrap.begin(), wrap.end());
  if (m.version >= 3) m.flags = r.u8();
  const auto sig_len = r.u16();
  if (sig_len > kMaxSignature) return make_error_code(errc::too_large);
  const auto sig = r.take(sig_len);
  m.signature.assign(sig.begin(), sig.end());
  if (auto e = r.finish(); e != errc::ok) return make_error_code(e);
  // Semantic checks: a manifest the dock cannot act on safely is refused whole.
  if (last > 1 || !valid_serial(m.camera_serial) || m.end_utc_ms < m.start_utc_ms || m.size == 0) return make_error_code(errc::bad_request);
  if (m.chunk_size < kMinChunkSize || m.chunk_size > kMaxChunkSize) return make_error_code(errc::bad_request);
  if (m.chunk_count() != chunks) return make_error_code(errc::bad_request);
  // v2: every segment is encrypted on the camera and signed by it (PROTOCOL.md 6.1).
  if (m.encryption != 1 || m.key_wrap.empty() || m.signature.empty()) return make_error_code(errc::bad_request);
  // A reserved bit is a flag this dock does not know the meaning of: refused rather than
  // ignored, so footage is never handled as less than the camera asked for.
  if ((m.flags & ~kManifestFlagsDefined) != 0) return make_error_code(errc::bad_request);
  m.last_in_recording = last == 1;
  return m;
}

bool valid_serial(std::string_view serial) noexcept {
  if (serial.empty() || serial.size() > kMaxSerial || serial.front() == '.' || serial.front() == '-') return false;
  for (char c : serial) {
    const bool ok = (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '.' || c == '_' || c == '-';
    if (!ok) return false;
  }
  return true;
}

Digest manifest_hash(const Manifest& m) { return Sha256::of(encode_signed_part(m)); }

boost::system::result<Manifest> manifest_from_json(const boost::json::value& v) {
  const auto bad = make_error_code(errc::bad_request);
  if (!v.is_object()) return bad;
  const auto& o = v.as_object();
  Manifest m;
  try {
    auto str = [&](const char* k) { return std::string(o.at(k).as_string()); };
    auto digest = [&](const char* k) -> std::optional<Digest> { return digest_from_hex(str(k)); };
    const auto version = o.at("manifest_version").to_number<std::uint32_t>();
    if (version < kMinManifestVersion || version > kManifestVersion) return make_error_code(errc::unsupported_version);
    m.version = static_cast<std::uint16_t>(version);
    // Version 2 has no flags: its JSON form (stored by docks before version 3) has no
    // "priority"; from version 3 on the key is required.
    if (m.version >= 3 || o.contains("priority")) m.flags = o.at("priority").as_bool() ? kManifestFlagPriority : 0;
    if (m.version < 3 && m.flags != 0) return bad;
    m.camera_serial = str("camera_serial");
    m.seq = o.at("seq").to_number<std::uint64_t>();
    m.recording_id = str("recording_id");
    m.segment_index = o.at("segment_index").to_number<std::uint16_t>();
    m.last_in_recording = o.at("last_in_recording").as_bool();
    m.start_utc_ms = o.at("start_utc_ms").to_number<std::int64_t>();
    m.end_utc_ms = o.at("end_utc_ms").to_number<std::int64_t>();
    m.pre_record_s = o.at("pre_record_s").to_number<std::uint16_t>();
    m.trigger_on = str("trigger_on");
    m.trigger_off = str("trigger_off");
    m.firmware = str("firmware");
    m.size = o.at("size").to_number<std::uint64_t>();
    m.chunk_size = o.at("chunk_size").to_number<std::uint32_t>();
    auto whole = digest("sha256");
    auto prev = digest("prev_manifest_sha256");
    if (!whole || !prev) return bad;
    m.sha256 = *whole;
    m.prev_manifest_sha256 = *prev;
    auto hex = [&](const char* k, Bytes& out) {
      const auto text = str(k);
      if (text.size() % 2 != 0) return false;
      for (std::size_t i = 0; i < text.size(); i += 2) {
        if (!std::isxdigit(static_cast<unsigned char>(text[i])) || !std::isxdigit(static_cast<unsigned char>(text[i + 1]))) return false;
        unsigned byte = 0;
        const auto [end, ec] = std::from_chars(text.data() + i, text.data() + i + 2, byte, 16);
        if (ec != std::errc() || end != text.data() + i + 2) return false;
        out.push_back(static_cast<std::uint8_t>(byte));
      }
      return true;
    };
    m.encryption = o.at("encryption").to_number<std::uint8_t>();
    if (!hex("key_wrap", m.key_wrap) || !hex("signature", m.signature)) return bad;
    for (const auto& c : o.at("chunk_sha256").as_array()) {
      auto d = digest_from_hex(std::string(c.as_string()));
      if (!d) return bad;
      m.chunk_sha256.push_back(*d);
    }
  } catch (const std::exception&) {
    return bad;  // a missing field or one of the wrong type
  }
  // The same limits as the wire form: round-trip through the binary decoder.
  return decode_manifest(encode_manifest(m));
}

boost::json::object manifest_to_json(const Manifest& m) {
  boost::json::array chunks;
  chunks.reserve(m.chunk_sha256.size());
  for (const auto& d : m.chunk_sha256) chunks.emplace_back(to_hex(d));
  boost::json::object o{
      {"manifest_version", m.version},
      {"camera_serial", m.camera_serial},
      {"seq", m.seq},
      {"recording_id", m.recording_id},
      {"segment_index", m.segment_index},
      {"last_in_recording", m.last_in_recording},
      {"start_utc_ms", m.start_utc_ms},
      {"end_utc_ms", m.end_utc_ms},
      {"pre_record_s", m.pre_record_s},
      {"trigger_on", m.trigger_on},
      {"trigger_off", m.trigger_off},
      {"firmware", m.firmware},
      {"size", m.size},
      {"chunk_size", m.chunk_size},
      {"sha256", to_hex(m.sha256)},
      {"prev_manifest_sha256", to_hex(m.prev_manifest_sha256)},
      {"encryption", m.encryption},
      {"key_wrap", to_hex(m.key_wrap)},
  };
  // Version 2 keeps exactly the form docks stored before version 3 (a store that finds the
  // manifest already there compares the text).
  if (m.version >= 3) o.emplace("priority", m.priority());
  o.emplace("manifest_sha256", to_hex(manifest_hash(m)));
  o.emplace("signature", to_hex(m.signature));
  o.emplace("chunk_sha256", std::move(chunks));
  return o;
}

}  // namespace bodydock::proto
