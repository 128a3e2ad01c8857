#pragma once
/// The emulated camera: a device model (segments, battery, clock, keys, flash) around the
/// firmware device library (proto/device/bd_device.h), which does all of the protocol. handle()
/// takes the bytes of one OUT transfer and returns the bytes the device queues on its IN
/// endpoint, so the same model serves the in-process link (hw/emulated_link) and usbfs ioctls
/// under umockdev, and every dock test runs the protocol code a vendor compiles into firmware.
/// Content is deterministic from a seed (emulated_content), so tests check every byte without
/// storing footage. Fault knobs let tests break it on purpose; they act in the model (the
/// library's callbacks), never in the protocol code.

#include "proto/messages.hpp"
#include "proto/trust.hpp"

#include <chrono>
#include <cstdint>
#include <filesystem>
#include <functional>
#include <map>
#include <memory>
#include <optional>
#include <set>
#include <string>
#include <vector>

namespace bodydock::hw {

/// Fills `out` with the deterministic content of segment (key) starting at byte `offset`.
void emulated_content(std::uint64_t key, std::uint64_t offset, std::span<std::uint8_t> out);
/// Content key of one segment: mixes the camera seed, serial and sequence number.
std::uint64_t content_key(std::uint64_t seed, const std::string& serial, std::uint64_t seq);

/// What a camera's secure element and firmware hold (DESIGN section 4): its device key, the
/// certificate the fleet CA issued for it at enrolment (empty: never enrolled), the fleet CA it
/// checks docks against, and the organisation's recording key it encrypts every segment to.
struct CameraTrust {
  proto::crypto::PrivateKey device_key;
  proto::Bytes device_cert;
  proto::crypto::TrustAnchor fleet;
  proto::crypto::PublicKey recording_key;
};

struct CameraSpec {
  std::string serial = "BC-0001";
  std::string model = "bodydock-emulator";
  std::string firmware = "emu-1.0.0";
  std::uint64_t seed = 1;
  std::uint32_t segments = 5;
  std::uint64_t segment_bytes = 4u << 20;
  std::uint32_t chunk_size = 256u * 1024;
  std::uint8_t battery_pct = 40;
  std::int16_t temperature_dc = 310;
  std::uint64_t storage_total = 64ull << 30;
  std::int64_t clock_skew_ms = 0;
  /// A crystal running fast (+) or slow (-): the clock gains this many millionths of the time
  /// passed since it was last set.
  double clock_drift_ppm = 0;
  /// Plaintext bytes of each segment, when they differ (overrides segments and segment_bytes).
  std::vector<std::uint64_t> segment_sizes;
  /// Battery percent and resting temperature (degrees C) over time: (seconds since docking,
  /// value) points, linear between them. Empty: battery_pct and temperature_dc as above.
  std::vector<std::pair<double, double>> battery_curve;
  std::vector<std::pair<double, double>> temperature_curve;
  /// Segments (by seq) the camera flags for priority upload (the officer marked an incident as
  /// evidence, or a trigger such as use of force): their signed manifests carry the flag. A
  /// persisted camera keeps what it recorded; on reopening this lists the flagged segments.
  std::set<std::uint64_t> priority_segments;
  std::shared_ptr<const CameraTrust> trust;  ///< required: cameras of this product always have keys
};

/// Faults injected on the device side (the link has its own: unplug, hang).
struct DeviceFaults {
  /// (seq, chunk index) -> how many more times that chunk is served with one bit flipped.
  std::map<std::pair<std::uint64_t, std::uint64_t>, std::uint32_t> corrupt_chunk;
  /// A battery that heats while it charges: reported temperature is this much above the
  /// resting temperature whenever the camera charges (tenths of a degree).
  std::int16_t charge_heat_dc = 0;
  /// A charger the firmware cannot switch off: SET_CHARGING allow=0 is answered "still charging".
  bool charger_uncontrollable = false;
  /// A cloned or replaying device: answers AUTH_BEGIN with the answer it gave in an earlier
  /// session (old nonce, old signature) instead of a fresh one. Played by the crypto callbacks,
  /// which hand the device library the earlier nonce and signature.
  bool replay_auth = false;
  /// Segments whose listed manifest carries a signature that does not verify (altered on flash).
  std::set<std::uint64_t> bad_signature;
  /// Segments left out of LIST while still held (a gap the hash chain must expose).
  std::set<std::uint64_t> hide_from_list;
};

class CameraDevice {
 public:
  /// Builds a camera with freshly "recorded" segments (hashes computed now).
  explicit CameraDevice(CameraSpec spec);
  /// Loads the camera's persistent state from `dir` if present, else records per spec and
  /// saves. Erasures are persisted (fsync) before ERASE_OK, like a camera's flash.
  static CameraDevice open_persistent(CameraSpec spec, const std::filesystem::path& dir);

  /// The next shift, recorded while undocked: `segments` more segments after the last one,
  /// chained to it, of spec().segment_bytes each (segment_sizes, when given, taken in turn).
  /// Segments erased by then leave recorded(), but for the newest (the chain's anchor), so a
  /// camera docked shift after shift holds only what it has not handed over. Persisted like the
  /// first. Never while a docking runs: the device restarts.
  void record_shift(std::uint32_t segments);

  /// Bytes of one OUT transfer in, bytes for the IN endpoint out.
  proto::Bytes handle(proto::ByteView out_transfer);
  /// A new docking: the device forgets the handshake and any half-parsed frame.
  void reset_session();

  [[nodiscard]] const CameraSpec& spec() const { return spec_; }
  [[nodiscard]] const std::vector<proto::Manifest>& recorded() const { return manifests_; }
  [[nodiscard]] bool is_erased(std::uint64_t seq) const { return erased_.contains(seq); }
  [[nodiscard]] const std::set<std::uint64_t>& erased() const { return erased_; }
  [[nodiscard]] std::uint64_t bytes_served() const { return bytes_served_; }
  /// The segment's bytes as the camera stores them (ciphertext), from `offset`.
  void content(std::uint64_t seq, std::uint64_t offset, std::span<std::uint8_t> out) const;
  /// The footage before encryption, for tests that check a decryption.
  void plaintext(std::uint64_t seq, std::uint64_t offset, std::span<std::uint8_t> out) const;
  /// Plaintext bytes of a segment.
  [[nodiscard]] std::uint64_t plaintext_size(std::uint64_t seq) const;
  /// The per-segment key; for the test that proves it is nowhere on the dock.
  [[nodiscard]] proto::Bytes segment_key(std::uint64_t seq) const;
  /// Whether the current session completed mutual authentication.
  [[nodiscard]] bool authenticated() const;
  /// Requests refused because the session was not authenticated, and receipts refused.
  [[nodiscard]] unsigned refused_unauthenticated() const;
  [[nodiscard]] unsigned receipts_rejected() const;
  [[nodiscard]] bool charging() const;
  [[nodiscard]] std::int16_t temperature_dc() const;
  [[nodiscard]] std::uint8_t battery_pct() const { return spec_.battery_pct; }
  [[nodiscard]] unsigned status_polls() const { return status_polls_; }
  /// Seconds since the current docking began (reset_session).
  [[nodiscard]] double seconds_docked() const;
  /// SET_CHARGING requests received: (allow) in order.
  [[nodiscard]] const std::vector<bool>& charge_requests() const { return charge_requests_; }
  DeviceFaults& faults() { return faults_; }
  /// Called before an erase is acknowledged; tests use it to check the store at that instant.
  std::function<void(const proto::Manifest&)> on_erase;

  /// Reads erase records persisted in `dir` for `serial`: seq -> erased sha256.
  static std::map<std::uint64_t, proto::Digest> read_erase_log(const std::filesystem::path& dir, const std::string& serial);

 private:
  /// The device library's state and what its callbacks need, on the heap: the library keeps a
  /// pointer to it, and CameraDevice itself moves.
  struct Engine;
  struct EngineDeleter {
    void operator()(Engine* e) const noexcept;
  };

  CameraDevice(CameraSpec spec, std::vector<proto::Manifest> manifests, std::filesystem::path dir);
  void record_segments();
  void record(std::uint64_t first_seq, std::uint32_t count);
  /// Encodes and hashes every manifest once (LIST serves the bytes, ERASE checks the hash) and
  /// starts the device library.
  void start();
  const proto::Manifest* find(std::uint64_t seq) const;
  std::size_t index_of(const proto::Manifest& m) const { return static_cast<std::size_t>(&m - manifests_.data()); }
  void save() const;
  /// Persists an erase (fsync) before the library acknowledges it; false when it cannot.
  bool erase(std::uint64_t seq);

  CameraSpec spec_;
  std::vector<proto::Manifest> manifests_;
  std::vector<proto::Bytes> encoded_;        ///< encode_manifest(manifests_[i])
  std::vector<proto::Digest> manifest_sha_;  ///< manifest_hash(manifests_[i])
  std::set<std::uint64_t> erased_;
  std::optional<std::filesystem::path> dir_;
  std::unique_ptr<Engine, EngineDeleter> engine_;
  bool charge_allowed_ = true;   ///< by the dock (SET_CHARGING); every docking starts allowed
  DeviceFaults faults_;
  std::uint64_t bytes_served_ = 0;
  unsigned status_polls_ = 0;
  std::vector<bool> charge_requests_;
  std::chrono::steady_clock::time_point docked_at_ = std::chrono::steady_clock::now();
  std::chrono::steady_clock::time_point drift_from_ = std::chrono::steady_clock::now();
  [[nodiscard]] std::int64_t drift_ms() const;
};

}  // namespace bodydock::hw
