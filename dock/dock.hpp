#pragma once
/// The dock: one io_context thread running a session coroutine per docked camera and the
/// upload queue, with blocking work (SQLite, file I/O, hashing) on small thread pools.
/// Sessions pull and verify into the spool; the queue stores spooled segments in the sink;
/// sessions erase on the camera only what the sink has confirmed (DESIGN section 2).

#include "dock/audit.hpp"
#include "dock/blocking.hpp"
#include "dock/pki.hpp"
#include "dock/sink.hpp"
#include "dock/state_db.hpp"
#include "hw/leds.hpp"
#include "usb/async_event.hpp"
#include "usb/camera_link.hpp"

#include <boost/asio/awaitable.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/thread_pool.hpp>

#include <chrono>
#include <filesystem>
#include <functional>
#include <map>
#include <optional>
#include <memory>
#include <set>
#include <string>
#include <vector>

namespace bodydock::dock {

struct DockConfig {
  std::filesystem::path state_dir;       ///< SQLite database and the spool
  /// Fleet CA, CRL, the dock's key and certificate (pki::load_dock_identity). Required: the dock
  /// serves no camera without mutual authentication.
  std::shared_ptr<const pki::DockIdentity> identity;
  std::string dock_id = "dock";
  unsigned slots = 4;
  unsigned reads_in_flight = 4;           ///< READ requests kept queued at the camera
  std::chrono::milliseconds request_timeout{5000};
  std::uint64_t sync_every_bytes = 8u << 20;  ///< spool fdatasync + durable offset interval
  unsigned chunk_retries = 3;             ///< re-reads of a chunk whose hash fails, then quarantine
  unsigned upload_concurrency = 2;
  /// Transient storage failures: exponential backoff with full jitter from base, capped.
  std::chrono::milliseconds upload_retry_base{500};
  std::chrono::milliseconds upload_retry_cap{60000};
  /// The rows of segments purged this long ago leave the state database (StateDb::prune_purged;
  /// the audit log and storage keep their story), so it stays the same size over years of shifts.
  std::chrono::milliseconds purged_retention{std::chrono::hours(24 * 30)};
  /// Storage refusing the dock (403, missing bucket, quota): uploads hold, with an alert, and
  /// one probe goes out this often until it accepts again (or an admin says retry now).
  std::chrono::milliseconds upload_hold_probe{300000};
  /// The audit log goes to storage in chunks at least this often (and whenever the queue
  /// runs empty), so the centre holds the record of what the dock did.
  std::chrono::milliseconds audit_ship_interval{60000};
  /// Spool high-water mark: no new segment is pulled while the spool would pass it (0: no
  /// limit but the disk). The cameras keep their footage meanwhile, and the slot shows
  /// "waiting for uplink" until uploads drain.
  std::uint64_t spool_limit_bytes = 0;
  /// Free space always left on the spool's file system, whatever the limit.
  std::uint64_t spool_reserve_bytes = 64u << 20;
  /// Camera status polls (battery, charging, temperature) while pulling and while docked after the sync.
  std::chrono::milliseconds status_interval{5000};
  std::int16_t charge_stop_dc = 450;                  ///< stop charging at or above 45.0 °C (Li-ion charge limit)
  std::int16_t charge_resume_dc = 400;                ///< allow it again at or below 40.0 °C...
  std::chrono::milliseconds charge_cooldown{600000};  ///< ...once this long has passed since the stop
};

/// What a slot shows (LED, web page, live table).
enum class SlotPhase { empty, authenticating, syncing, waiting_upload, done, attention };
const char* phase_name(SlotPhase p) noexcept;



struct SlotStatus {
  unsigned index = 0;                  ///< 1-based slot number as printed on the dock
  std::string where;                   ///< port path or emulator id
  SlotPhase phase = SlotPhase::empty;
  std::string serial;
  std::string officer;                 ///< from the camera's certificate, once authenticated
  std::string firmware;
  int battery_pct = -1;
  bool charging = false;
  std::optional<double> temperature_c;   ///< as the camera reports it
  bool charge_stopped_hot = false;       ///< the dock stopped charging for over-temperature
  std::string alert;                     ///< an active alert for the facility admin (e.g. over-temperature)
  std::uint64_t bytes_total = 0;       ///< bytes this docking has to pull
  std::uint64_t bytes_done = 0;
  double mbps = 0;                     ///< pull rate, smoothed
  std::string detail;                  ///< last notable event or the attention reason
};

/// The uplink to storage as the upload queue sees it (live table, web page, metrics).
struct UplinkStatus {
  enum class State { idle, uploading, retrying, held };
  State state = State::idle;
  std::string alert;           ///< for the facility admin: why uploads hold
  std::string clock_alert;     ///< storage said the dock's clock is off; stays until an admin clears it (retry_now) or a restart
  std::string last_error;      ///< the last failed attempt, classified
  std::uint64_t queued = 0;    ///< segments waiting in the spool for storage
  std::uint64_t queued_bytes = 0;
  std::uint64_t retries = 0;   ///< failed attempts since start
  std::map<std::string, std::uint64_t> errors;  ///< failed attempts by class: transient, refused, clock, conflict, spool
  unsigned consecutive_failures = 0;
};
const char* uplink_state_name(UplinkStatus::State s) noexcept;

/// What the slot's LED shows (hw/leds.hpp; README, "Slot lights"): its phase, and for a camera
/// that is done but still charging, "charging" (safe to take, not yet full).
hw::SlotLight slot_light(const SlotStatus& s) noexcept;

/// How a session ended. `overheated`: too hot, and the camera would not stop charging; its port
/// must be switched off.
/// `charge_only`: the camera failed authentication (or cannot do it); its port stays powered,
/// nothing was read or erased.
/// `dock_fault`: the dock's own side failed (a full or failing disk, the database): nothing is
/// wrong with the camera, and the session is worth starting again once the fault may be over.
enum class SessionEnd { done, attention, unplugged, failed, unresponsive, overheated, charge_only, dock_fault };

class Dock final : private UploadJournal {
  /// Runs a StateDb call on the database thread (declared first: the wrappers below deduce from it).
  template <typename F>
  auto db(F f) {
    StateDb* state = state_.get();
    return run_blocking(db_pool_, [state, f = std::move(f)]() mutable { return f(*state); });
  }

 public:
  Dock(boost::asio::io_context& ioc, DockConfig cfg, Sink& sink);
  ~Dock() override;
  Dock(const Dock&) = delete;
  Dock& operator=(const Dock&) = delete;

  /// Serves one docked camera until everything it holds is stored and erased (or quarantined),
  /// or the link fails. `slot` is 1-based. With `synced`, a session that ends done or attention
  /// calls it and then keeps watching the docked camera (battery, charging, temperature) until
  /// it is undocked, the link closes or it overheats; the final end is returned.
  boost::asio::awaitable<SessionEnd> run_session(unsigned slot, usb::CameraLink& link,
                                                 std::function<void(SessionEnd)> synced = {});
  /// The upload queue: stores SPOOLED segments until stop().
  boost::asio::awaitable<void> run_uploader();
  void stop();
  /// After stop(): stores the audit entries and markers still due, if storage is reachable
  /// (the uplink is not backing off or held), waiting at most `limit`. The audit log's last
  /// entry then is "dock stopped", so storage's copy ends with the orderly stop too.
  boost::asio::awaitable<void> flush_records(std::chrono::milliseconds limit);

  [[nodiscard]] const std::vector<SlotStatus>& slots() const { return slots_; }
  [[nodiscard]] const UplinkStatus& uplink() const { return uplink_; }
  /// Ends any backoff or hold now (an admin fixed the storage side).
  void retry_now();
  /// An admin's pause: uploads under way finish, no new one starts until resumed. Pulling
  /// goes on while the spool has room.
  void pause_uploads(bool paused);
  [[nodiscard]] bool uploads_paused() const { return paused_; }
  SlotStatus& slot(unsigned index) { return slots_.at(index - 1); }
  [[nodiscard]] const DockConfig& config() const { return cfg_; }
  /// Takes a re-read trust directory (a new CRL, a renewed dock certificate) for the dockings
  /// that start from now; one under way finishes with the identity it began with. Refused (an
  /// error text) when it names another dock.
  std::optional<std::string> set_identity(std::shared_ptr<const pki::DockIdentity> identity);
  [[nodiscard]] boost::asio::any_io_executor executor() const { return ioc_.get_executor(); }
  [[nodiscard]] std::filesystem::path spool_path(const std::string& serial, std::uint64_t seq) const;

  /// The state database, asynchronously: each call runs on the database thread.
  /// (Plain functions returning awaitables: see blocking.hpp for why no lambda crosses a co_await.)
  auto camera_seen(std::string serial, std::string model, std::string firmware) {
    return db([serial = std::move(serial), model = std::move(model), firmware = std::move(firmware)](StateDb& s) {
      s.camera_seen(serial, model, firmware);
    });
  }
  auto camera_authenticated(std::string serial, proto::Bytes certificate, std::string officer) {
    return db([serial = std::move(serial), certificate = std::move(certificate), officer = std::move(officer)](StateDb& s) {
      s.camera_authenticated(serial, certificate, officer);
    });
  }
  auto camera_identity(std::string serial) {
    return db([serial = std::move(serial)](StateDb& s) { return s.camera_identity(serial); });
  }
  auto add_listed(proto::Manifest m, std::optional<std::int64_t> clock_drift_ms) {
    return db([m = std::move(m), clock_drift_ms](StateDb& s) { return s.add_listed(m, clock_drift_ms); });
  }
  auto prune_purged(std::chrono::milliseconds older_than) {
    return db([older_than](StateDb& s) { return s.prune_purged(older_than); });
  }
  auto pruned_through(std::string serial) {
    return db([serial = std::move(serial)](StateDb& s) { return s.pruned_through(serial); });
  }
  auto camera_segments(std::string serial) {
    return db([serial = std::move(serial)](StateDb& s) { return s.camera_segments(serial); });
  }
  /// A camera's segments that still need work or attention (not yet PURGED).
  auto live_segments(std::string serial) {
    return db([serial = std::move(serial)](StateDb& s) { return s.camera_segments(serial, true); });
  }
  auto queue_view() {
    return db([](StateDb& s) { return s.queue_view(); });
  }
  auto in_state(SegState state) {
    return db([state](StateDb& s) { return s.in_state(state); });
  }
  /// A transition with a reason is an operation on the recording: it is audited too.
  auto transition(std::string serial, std::uint64_t seq, std::vector<SegState> from, SegState to, SegUpdate update = {},
                  std::string why = {}) {
    return db([serial = std::move(serial), seq, from = std::move(from), to, update = std::move(update), why = std::move(why),
               audit_log = audit_.get(), actor = actor_](StateDb& s) {
      const bool moved = s.transition(serial, seq, from, to, update, why);
      if (moved && !why.empty()) audit_transition(*audit_log, s, actor, serial, seq, to, update, why);
      return moved;
    });
  }
  /// Appends to the audit log (on the database thread, anchored in the state database).
  /// Appends an entry that names its own actor (e.g. "admin NAME" for an action on the web page).
  auto audit_by(AuditEvent e) {
    return db([e = std::move(e), audit_log = audit_.get()](StateDb& s) { append_anchored(*audit_log, s, e); });
  }
  auto audit(AuditEvent e) {
    e.actor = actor_;
    return audit_by(std::move(e));
  }

  static AuditEvent camera_event(std::string event, std::string by, std::string serial, std::string why) {
    AuditEvent e;
    e.event = std::move(event);
    e.actor = std::move(by);
    e.camera = std::move(serial);
    e.why = std::move(why);
    return e;
  }
  /// Admin actions (web page, dockctl). Each is audited in the same database step and
  /// returns nullopt when done, else why not, in words.
  ///
  /// Revokes a camera at this dock: from its next docking it gets charge-only (power, no data,
  /// nothing erased), until the centre's CRL says the same. Footage it holds stays on it.
  auto revoke_camera(std::string serial, std::string by, std::string reason) {
    return db([serial = std::move(serial), by = std::move(by), reason = std::move(reason),
               audit_log = audit_.get()](StateDb& s) -> std::optional<std::string> {
      if (!pki::valid_name(serial)) return "'" + serial + "' is not a camera serial";
      s.revoke_camera(serial, by, reason);
      append_anchored(*audit_log, s, camera_event("revocation", by, serial, "camera revoked at this dock: " + reason));
      return std::nullopt;
    });
  }
  /// Lifts a revocation made at this dock (not the centre's CRL): the camera syncs again from
  /// its next docking.
  auto reinstate_camera(std::string serial, std::string by, std::string reason) {
    return db([serial = std::move(serial), by = std::move(by), reason = std::move(reason),
               audit_log = audit_.get()](StateDb& s) -> std::optional<std::string> {
      if (!s.reinstate_camera(serial)) return "camera '" + serial + "' is not revoked at this dock";
      append_anchored(*audit_log, s, camera_event("revocation lifted", by, serial, "camera reinstated at this dock: " + reason));
      return std::nullopt;
    });
  }
  auto cameras() {
    return db([](StateDb& s) { return s.cameras(); });
  }
  /// True while the segment is being sent to storage.
  [[nodiscard]] bool uploading(const std::string& serial, std::uint64_t seq) const { return uploading_.contains({serial, seq}); }
  auto camera_revoked(std::string serial) {
    return db([serial = std::move(serial)](StateDb& s) { return s.camera_revoked(serial); });
  }
  /// An admin's decision on a quarantined segment. Release: it goes back to LISTED and is
  /// pulled and checked again from its first byte at the camera's next docking (bytes that
  /// fail again are quarantined again; nothing unchecked is ever stored). Keep: it stays on the
  /// camera, never erased, and no longer holds the slot on attention.
  auto decide_quarantine(std::string serial, std::uint64_t seq, bool release, std::string by, std::string reason) {
    return db([serial = std::move(serial), seq, release, by = std::move(by), reason = std::move(reason),
               audit_log = audit_.get()](StateDb& s) -> std::optional<std::string> {
      const auto row = s.get(serial, seq);
      if (!row || row->state != SegState::quarantined) return "segment " + std::to_string(seq) + " of " + serial + " is not quarantined";
      const std::string why = (release ? "released by " : "kept in quarantine by ") + by + ": " + reason;
      if (release) {
        SegUpdate u;
        u.pulled = 0;
        u.reason = why;
        if (s.transition(serial, seq, states(SegState::quarantined), SegState::listed, u, why))
          audit_transition(*audit_log, s, by, serial, seq, SegState::listed, u, why);
        return std::nullopt;
      }
      if (s.keep_quarantined(serial, seq, why)) audit_transition(*audit_log, s, by, serial, seq, SegState::quarantined, {}, why);
      return std::nullopt;
    });
  }

  /// Whether the spool has room for `bytes` more (DockConfig::spool_limit_bytes and
  /// spool_reserve_bytes), and why not.
  struct SpoolRoom {
    bool ok = true;
    std::uint64_t used = 0;   ///< bytes held or promised (StateDb::spool_bytes)
    std::uint64_t free = 0;   ///< free on the file system
    std::string why;          ///< when not ok
  };
  /// With room, the segment moves LISTED -> PULLING in the same step, so it holds its room
  /// (sessions checking at once cannot both take the last of it).
  auto reserve_spool(std::string serial, std::uint64_t seq, std::uint64_t bytes) {
    return db([serial = std::move(serial), seq, bytes, limit = cfg_.spool_limit_bytes, reserve = cfg_.spool_reserve_bytes,
               dir = cfg_.state_dir / "spool", audit_log = audit_.get(), actor = actor_](StateDb& s) {
      auto room = check_spool_room(s.spool_bytes(), bytes, limit, reserve, dir);
      const std::string why = "pull started";
      if (room.ok && s.transition(serial, seq, states(SegState::listed), SegState::pulling, {}, why))
        audit_transition(*audit_log, s, actor, serial, seq, SegState::pulling, {}, why);
      return room;
    });
  }
  static SpoolRoom check_spool_room(std::uint64_t used, std::uint64_t bytes, std::uint64_t limit, std::uint64_t reserve,
                                    const std::filesystem::path& dir);

  /// Totals since start, for the demo's summary and benchmarks.
  struct Totals {
    std::uint64_t pulled_bytes = 0;
    std::uint64_t reread_bytes = 0;    ///< chunks read again after a hash failure
    std::uint64_t stored_bytes = 0;
    std::uint64_t segments_stored = 0;
    std::uint64_t segments_erased = 0;
    std::uint64_t segments_quarantined = 0;
  };
  [[nodiscard]] const Totals& totals() const { return totals_; }

 private:
  friend class Session;
  boost::asio::awaitable<void> store_one(SegmentRow row);
  /// What a failed store means for the segment and the uplink.
  boost::asio::awaitable<void> store_failed(const SegmentRow& row, const StoreFailure& failure);
  std::chrono::milliseconds backoff(std::uint32_t attempt) const;
  /// Stores what is due beside the footage: recording-complete markers and audit log chunks.
  boost::asio::awaitable<void> ship_records(bool queue_idle, bool now = false);
  boost::asio::awaitable<void> ship_marker(std::string serial, std::string recording_id);
  boost::asio::awaitable<void> ship_audit();
  /// The custody receipt (PROTOCOL.md 9) for a segment storage confirmed, signed by this dock.
  proto::Bytes custody_receipt(const proto::Manifest& m, const std::string& object_key, const proto::Digest& stored_sha256) const;

  // UploadJournal, kept in the state database.
  boost::asio::awaitable<std::optional<UploadRecord>> find_upload(std::string key) override;
  boost::asio::awaitable<void> upload_begun(std::string key, std::string upload_id, std::uint64_t part_size) override;
  boost::asio::awaitable<void> part_done(std::string key, unsigned number, UploadedPart part) override;
  boost::asio::awaitable<void> upload_ended(std::string key) override;
  auto note_recording(std::string serial, std::string recording_id) {
    return db([serial = std::move(serial), recording_id = std::move(recording_id)](StateDb& s) {
      return s.note_if_recording_complete(serial, recording_id);
    });
  }
  auto pending_markers() {
    return db([](StateDb& s) { return s.pending_markers(); });
  }
  auto recording_segments(std::string serial, std::string recording_id) {
    return db([serial = std::move(serial), recording_id = std::move(recording_id)](StateDb& s) {
      return s.recording_segments(serial, recording_id);
    });
  }
  auto marker_stored(std::string serial, std::string recording_id) {
    return db([serial = std::move(serial), recording_id = std::move(recording_id)](StateDb& s) { s.marker_stored(serial, recording_id); });
  }
  /// The audit log past what storage holds (whole lines, at most 4 MiB).
  struct AuditChunk {
    std::string lines;
    std::uint64_t first_seq = 0, last_seq = 0, end_offset = 0;
  };
  auto audit_chunk() {
    return db([file = audit_->file()](StateDb& s) { return read_audit_chunk(file, s.audit_shipped().first); });
  }
  static AuditChunk read_audit_chunk(const std::filesystem::path& file, std::uint64_t offset);
  auto audit_shipped(std::uint64_t offset, std::uint64_t seq) {
    return db([=](StateDb& s) { s.set_audit_shipped(offset, seq); });
  }
  auto journal_begun(std::string key, std::string id, std::uint64_t part_size) {
    return db([key = std::move(key), id = std::move(id), part_size](StateDb& s) { s.upload_begun(key, id, part_size); });
  }
  auto journal_part(std::string key, unsigned number, UploadedPart part) {
    return db([key = std::move(key), number, part = std::move(part)](StateDb& s) { s.part_done(key, number, part); });
  }
  auto journal_ended(std::string key) {
    return db([key = std::move(key)](StateDb& s) { s.upload_ended(key); });
  }
  /// One session per camera at a time (a camera moved to another slot while its old session
  /// still waits out a timeout must not run twice). false if `serial` is busy.
  bool begin_session(const std::string& serial, unsigned slot);
  void end_session(const std::string& serial);

  static void append_anchored(AuditLog& log, StateDb& s, const AuditEvent& e);
  static void audit_transition(AuditLog& log, StateDb& s, const std::string& actor, const std::string& serial, std::uint64_t seq,
                               SegState to, const SegUpdate& update, const std::string& why);

  boost::asio::io_context& ioc_;
  DockConfig cfg_;
  std::string actor_;                 ///< who the audit log names for the dock's own operations
  Sink& sink_;
  boost::asio::thread_pool db_pool_{1};
  boost::asio::thread_pool io_pool_{2};
  std::unique_ptr<StateDb> state_;
  std::unique_ptr<AuditLog> audit_;   ///< used on the database thread only
  std::vector<SlotStatus> slots_;
  usb::AsyncEvent spooled_;   ///< sessions -> uploader: something to store
  usb::AsyncEvent stored_;    ///< uploader -> sessions: something to erase
  std::set<std::pair<std::string, std::uint64_t>> uploading_;
  std::map<std::string, unsigned> active_serials_;  ///< serial -> slot of its running session
  std::map<std::pair<std::string, std::uint64_t>, std::chrono::steady_clock::time_point> retry_at_;
  UplinkStatus uplink_;
  std::chrono::steady_clock::time_point uplink_gate_{};  ///< no new upload before this (backoff, hold)
  bool shipping_ = false;                                 ///< ship_records() running
  std::chrono::steady_clock::time_point prune_at_{};       ///< next StateDb::prune_purged
  std::chrono::steady_clock::time_point audit_shipped_at_{};
  bool stopping_ = false;
  bool stop_recorded_ = false;  ///< "dock stopped" is in the audit log
  [[nodiscard]] AuditEvent stop_event() const;
  bool paused_ = false;
  Totals totals_;
};

}  // namespace bodydock::dock
