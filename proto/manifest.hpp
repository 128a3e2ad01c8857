#pragma once
/// Segment manifest (PROTOCOL.md section 6): everything the dock and the centre need to check a
/// segment without trusting the link: identity, timing, recording context, size, per-chunk and
/// whole SHA-256, and the hash of the previous manifest (the chain that exposes a missing segment).

#include "proto/frame.hpp"
#include "proto/wire.hpp"

#include <boost/json/fwd.hpp>
#include <boost/system/result.hpp>

#include <cstdint>
#include <string>
#include <vector>

namespace bodydock::proto {

/// The manifest version new manifests are written in; version 3 added `flags` (PROTOCOL.md 6.1).
inline constexpr std::uint16_t kManifestVersion = 3;
/// The oldest manifest version still read: a camera lists a segment's manifest byte-identically
/// for as long as it holds it (PROTOCOL.md 6.3), so footage recorded before a firmware update
/// stays version 2.
inline constexpr std::uint16_t kMinManifestVersion = 2;
/// Manifest flag bit 0: upload this segment before unflagged footage (the officer marked it as
/// evidence, or the camera saw a trigger such as use of force).
inline constexpr std::uint8_t kManifestFlagPriority = 0x01;
/// Every flag bit this version defines; a manifest with any other bit set is refused.
inline constexpr std::uint8_t kManifestFlagsDefined = kManifestFlagPriority;
inline constexpr std::uint32_t kMinChunkSize = 4096;
inline constexpr std::uint32_t kMaxChunkSize = kMaxReadLength;
inline constexpr std::size_t kMaxChunks = 16384;
inline constexpr std::size_t kMaxManifestSize = std::size_t{600} * 1024;
inline constexpr std::size_t kMaxSignature = 512;
inline constexpr std::size_t kMaxSerial = 64;
inline constexpr std::size_t kMaxKeyWrap = 512;

/// A camera serial the dock accepts: 1..64 of [A-Za-z0-9._-], not starting with '.' or '-'.
/// Serials name directories and object keys, so anything else (a hostile "../x") is refused.
bool valid_serial(std::string_view serial) noexcept;

struct Manifest {
  /// 2 or 3. Kept as decoded, so that a version 2 manifest encodes (and hashes, and verifies)
  /// exactly as the camera signed it.
  std::uint16_t version = kManifestVersion;
  std::string camera_serial;
  std::uint64_t seq = 0;               ///< per-camera sequence number, strictly increasing
  std::string recording_id;            ///< one escalation = one recording of 1..n segments
  std::uint16_t segment_index = 0;     ///< position in the recording, 0-based
  bool last_in_recording = false;
  std::int64_t start_utc_ms = 0;
  std::int64_t end_utc_ms = 0;
  std::uint16_t pre_record_s = 0;      ///< pre-record buffer included (first segment only)
  std::string trigger_on;              ///< why recording started (button, holster, ...)
  std::string trigger_off;             ///< why it stopped (button, timeout, battery, ...)
  std::string firmware;
  std::uint64_t size = 0;              ///< bytes of (encrypted) segment content
  std::uint32_t chunk_size = 0;
  std::vector<Digest> chunk_sha256;    ///< one per chunk_size bytes, the last may be short
  Digest sha256{};                     ///< whole content
  Digest prev_manifest_sha256{};       ///< zero for a camera's first segment
  std::uint8_t encryption = 1;         ///< 1: AES-256-GCM per chunk (proto/trust.hpp)
  Bytes key_wrap;                      ///< the segment key wrapped to the organisation's recording key
  std::uint8_t flags = 0;              ///< kManifestFlag* bits; version 3 on, always 0 in version 2
  Bytes signature;                     ///< the camera's ECDSA P-256 signature (proto/trust.hpp)

  /// Flagged by the camera: the dock uploads it before unflagged footage.
  [[nodiscard]] bool priority() const { return (flags & kManifestFlagPriority) != 0; }
  [[nodiscard]] std::uint64_t chunk_count() const;
  /// Bytes in chunk i (the last chunk may be short).
  [[nodiscard]] std::uint32_t chunk_length(std::uint64_t i) const;
};

/// Encoding without the signature: what the device signs and what the chain hashes. Written in
/// `m.version`'s layout; a version 2 manifest with flags cannot be written (std::invalid_argument:
/// a bug in the caller, never a decoded manifest).
Bytes encode_signed_part(const Manifest& m);
Bytes encode_manifest(const Manifest& m);
/// Decodes and validates (limits, chunk count consistent with size and chunk size, no reserved
/// flag bits). Accepts manifest versions kMinManifestVersion..kManifestVersion.
boost::system::result<Manifest> decode_manifest(ByteView bytes);
/// SHA-256 of the signed part: the next manifest's prev_manifest_sha256.
Digest manifest_hash(const Manifest& m);

/// Human-readable form stored beside each segment.
boost::json::object manifest_to_json(const Manifest& m);
/// Back from that form (for evidence checks); validated like decode_manifest. Its
/// "manifest_sha256" field is not trusted: callers compare it with manifest_hash().
boost::system::result<Manifest> manifest_from_json(const boost::json::value& v);

}  // namespace bodydock::proto
