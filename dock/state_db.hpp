#pragma once
/// The dock's durable state: every segment's lifecycle (DESIGN section 3) in SQLite (WAL,
/// synchronous=FULL). Every transition is one transaction that also appends a history row,
/// and is guarded by the states it may come from, so a crash or a bug can never move a
/// segment backwards or skip a step. Not thread-safe: use it from one thread (the db pool).

#include "dock/upload_journal.hpp"
#include "proto/manifest.hpp"

#include <chrono>
#include <cstdint>
#include <filesystem>
#include <map>
#include <optional>
#include <string>
#include <vector>

struct sqlite3;

namespace bodydock::dock {

enum class SegState { listed, pulling, spooled, stored, erased, purged, quarantined };

const char* state_name(SegState s) noexcept;

/// A set of states a transition may come from. (A function rather than a braced list: g++ 12
/// cannot compile braced lists inside co_await expressions.)
template <typename... S>
std::vector<SegState> states(S... s) {
  return {s...};
}
std::optional<SegState> state_from_name(std::string_view name) noexcept;

struct SegmentRow {
  std::string serial;
  std::uint64_t seq = 0;
  SegState state = SegState::listed;
  std::uint64_t pulled = 0;        ///< bytes of the spool file known durable (fsynced)
  proto::Manifest manifest;
  std::string object_key;          ///< where storage keeps it (STORED and later)
  std::string receipt;             ///< storage's confirmation (hex SHA-256 of the stored bytes)
  std::string reason;              ///< why quarantined / last error
  std::uint32_t attempts = 0;      ///< store attempts that failed
  std::optional<std::int64_t> clock_drift_ms;  ///< camera clock minus the dock's at the listing docking
  proto::Bytes custody_receipt;    ///< signed when storage confirmed it (PROTOCOL.md 9); empty before
  bool kept = false;               ///< QUARANTINED and an admin chose to keep it on the camera
  std::string spool_sum;           ///< the pull's XXH3-128 of the spool file (dock/spool_sum.hpp); '' if none
};

/// Optional fields a transition sets together with the state.
struct SegUpdate {
  std::optional<std::uint64_t> pulled;
  std::optional<std::string> object_key;
  std::optional<std::string> receipt;
  std::optional<std::string> reason;
  bool count_attempt = false;
  std::optional<proto::Bytes> custody_receipt;
  std::optional<std::string> spool_sum;
};

enum class ListedResult { inserted, known, conflict };

/// The queue and spool at a glance (web page, metrics).
struct QueueView {
  std::map<SegState, std::uint64_t> counts;      ///< segments per state, all cameras
  std::uint64_t spooled_bytes = 0;               ///< bytes waiting for storage (SPOOLED)
  std::optional<std::int64_t> oldest_spooled_ms;  ///< when the longest-waiting segment was spooled (Unix ms)
  std::uint64_t spool_bytes = 0;                 ///< as spool_bytes()
};

/// A camera this dock has seen (dockctl cameras list).
struct CameraRow {
  std::string serial, model, firmware;
  std::string officer;                         ///< from its certificate; empty before it authenticated
  std::int64_t last_seen_ms = 0;               ///< Unix ms of its last docking
  std::optional<std::string> revoked;          ///< "by: reason" when revoked at this dock
  std::map<SegState, std::uint64_t> segments;  ///< its segments per state, PURGED left out
};

/// How a camera proved who it is at its last authenticated docking.
struct CameraIdentity {
  proto::Bytes certificate;  ///< DER, issued by the fleet CA
  std::string officer;
};

class StateDb {
 public:
  /// Opens (creating) the database and applies pending schema migrations.
  explicit StateDb(const std::filesystem::path& file);
  ~StateDb();
  StateDb(const StateDb&) = delete;
  StateDb& operator=(const StateDb&) = delete;

  [[nodiscard]] int schema_version() const;

  void camera_seen(const std::string& serial, const std::string& model, const std::string& firmware);
  void camera_authenticated(const std::string& serial, proto::ByteView certificate, const std::string& officer);
  std::optional<CameraIdentity> camera_identity(const std::string& serial);
  /// Records a listed segment. `conflict` when the camera lists a known sequence number with a
  /// different manifest: evidence of alteration or replay, never overwritten.
  ListedResult add_listed(const proto::Manifest& m, std::optional<std::int64_t> clock_drift_ms = std::nullopt);
  std::optional<SegmentRow> get(const std::string& serial, std::uint64_t seq);
  /// A camera's segments by sequence number; `live_only` leaves out PURGED ones (history).
  std::vector<SegmentRow> camera_segments(const std::string& serial, bool live_only = false);
  /// Segments in a state in queue order: those the camera flagged for priority
  /// (manifest.priority()) first, then oldest first (last transition, serial, seq).
  std::vector<SegmentRow> in_state(SegState s, std::size_t limit = 1000);
  /// Moves a segment to `to` if it is in one of `from`; false (and nothing changed) otherwise.
  bool transition(const std::string& serial, std::uint64_t seq, const std::vector<SegState>& from, SegState to,
                  const SegUpdate& update = {}, std::string_view why = {});
  /// Bytes the spool holds or has promised: every segment pulled or being pulled and not yet
  /// purged (PULLING, SPOOLED, STORED, ERASED), at full size.
  std::uint64_t spool_bytes();
  /// Counts per state over all cameras.
  std::map<SegState, std::uint64_t> counts();
  QueueView queue_view();
  /// An admin revoked the camera at this dock: it gets charge-only until lifted. Idempotent.
  void revoke_camera(const std::string& serial, const std::string& by, const std::string& reason);
  /// Lifts a revocation made at this dock; false if the camera was not revoked here.
  bool reinstate_camera(const std::string& serial);
  /// Every camera seen, by serial.
  std::vector<CameraRow> cameras();
  /// "by: reason" if the camera is revoked at this dock.
  std::optional<std::string> camera_revoked(const std::string& serial);
  /// An admin keeps a QUARANTINED segment on the camera (history row with `why`); false if
  /// the segment is not quarantined.
  bool keep_quarantined(const std::string& serial, std::uint64_t seq, std::string_view why);
  /// History rows of one segment, oldest first ("listed", "pulling", ...).
  std::vector<std::string> history(const std::string& serial, std::uint64_t seq);
  /// The audit log's newest committed entry (seq, hash), for spotting a removed tail.
  void set_audit_anchor(std::uint64_t seq, const std::string& hash);
  std::optional<std::pair<std::uint64_t, std::string>> audit_anchor();

  /// One run of the dock, by its wall-clock times (ms since the epoch).
  struct Run {
    std::int64_t started_ms = 0;
    std::optional<std::int64_t> stopped_ms;  ///< empty: the run never stopped in order
  };
  /// Records that a run starts now; returns the one before it (none on a new state).
  std::optional<Run> begin_run();
  /// The current run stops in order.
  void end_run();

  /// Deletes the rows (and history) of segments purged more than `older_than` ago, except each
  /// camera's newest segment and recordings not wholly purged or whose complete-marker is not
  /// yet stored; remembers per camera the highest seq pruned. The audit log keeps their story.
  /// Returns the rows pruned.
  std::size_t prune_purged(std::chrono::milliseconds older_than);
  /// The highest seq of `serial` pruned so far (0: none). Every seq up to it was erased at this
  /// dock's request or came before one that was.
  std::uint64_t pruned_through(const std::string& serial);

  /// A recording's segments (one camera), by sequence number.
  std::vector<SegmentRow> recording_segments(const std::string& serial, const std::string& recording_id);
  /// If every segment of the recording is in storage (the one marked last and all before it),
  /// remembers that its complete-marker is due; true then.
  bool note_if_recording_complete(const std::string& serial, const std::string& recording_id);
  /// Recordings whose complete-marker is due: (serial, recording id).
  std::vector<std::pair<std::string, std::string>> pending_markers();
  void marker_stored(const std::string& serial, const std::string& recording_id);
  /// How far the audit log is in storage: (byte offset, last seq); (0, 0) at first.
  std::pair<std::uint64_t, std::uint64_t> audit_shipped();
  void set_audit_shipped(std::uint64_t offset, std::uint64_t seq);

  /// Multipart uploads under way (upload_journal.hpp), by object key.
  std::optional<UploadRecord> find_upload(const std::string& key);
  void upload_begun(const std::string& key, const std::string& upload_id, std::uint64_t part_size);
  void part_done(const std::string& key, unsigned number, const UploadedPart& part);
  void upload_ended(const std::string& key);
  /// Every upload under way: (object key, upload id).
  std::vector<std::pair<std::string, std::string>> uploads();

 private:
  void exec(const char* sql);
  /// Ends a failed transaction, if SQLite has not ended it already; never throws.
  void rollback() noexcept;
  void migrate();
  sqlite3* db_ = nullptr;
};

}  // namespace bodydock::dock
