#include "dock/state_db.hpp"

#include "proto/sha256.hpp"

#include <sqlite3.h>

#include <algorithm>
#include <chrono>
#include <stdexcept>
#include <string>

namespace bodydock::dock {
namespace {

/// Schema migrations, applied in order; user_version counts how many ran.
constexpr const char* kMigrations[] = {
    R"sql(
CREATE TABLE segments(
  serial TEXT NOT NULL,
  seq INTEGER NOT NULL,
  state TEXT NOT NULL,
  pulled INTEGER NOT NULL DEFAULT 0,
  size INTEGER NOT NULL,
  sha256 TEXT NOT NULL,
  recording_id TEXT NOT NULL,
  manifest BLOB NOT NULL,
  object_key TEXT NOT NULL DEFAULT '',
  receipt TEXT NOT NULL DEFAULT '',
  reason TEXT NOT NULL DEFAULT '',
  attempts INTEGER NOT NULL DEFAULT 0,
  listed_ms INTEGER NOT NULL,
  updated_ms INTEGER NOT NULL,
  PRIMARY KEY(serial, seq)
) WITHOUT ROWID;
CREATE INDEX segments_by_state ON segments(state, updated_ms);
CREATE TABLE cameras(
  serial TEXT PRIMARY KEY,
  model TEXT NOT NULL,
  firmware TEXT NOT NULL,
  last_seen_ms INTEGER NOT NULL
);
CREATE TABLE history(
  id INTEGER PRIMARY KEY,
  time_ms INTEGER NOT NULL,
  serial TEXT NOT NULL,
  seq INTEGER NOT NULL,
  state TEXT NOT NULL,
  detail TEXT NOT NULL
);
CREATE INDEX history_by_segment ON history(serial, seq);
)sql",
    // The audit log's last committed entry: a removed tail is detectable (audit.hpp).
    R"sql(
CREATE TABLE audit_anchor(
  id INTEGER PRIMARY KEY CHECK (id = 1),
  seq INTEGER NOT NULL,
  hash TEXT NOT NULL
);
)sql",
    // How far the camera's clock was off at the docking that listed the segment (NULL: unknown).
    R"sql(
ALTER TABLE segments ADD COLUMN clock_drift_ms INTEGER;
)sql",
    // The fleet certificate a camera authenticated with (DER) and the officer it names: the
    // centre checks each segment's signature against it.
    R"sql(
ALTER TABLE cameras ADD COLUMN certificate BLOB;
ALTER TABLE cameras ADD COLUMN officer TEXT NOT NULL DEFAULT '';
)sql",
    // Multipart uploads under way, so a restart continues the same upload (upload_journal.hpp).
    R"sql(
CREATE TABLE uploads(
  object_key TEXT PRIMARY KEY,
  upload_id TEXT NOT NULL,
  part_size INTEGER NOT NULL,
  started_ms INTEGER NOT NULL
);
CREATE TABLE upload_parts(
  object_key TEXT NOT NULL REFERENCES uploads(object_key) ON DELETE CASCADE,
  number INTEGER NOT NULL,
  etag TEXT NOT NULL,
  md5 TEXT NOT NULL,
  PRIMARY KEY(object_key, number)
) WITHOUT ROWID;
-- The signed custody receipt made when storage confirmed a segment: stored beside it and,
-- the very same bytes, presented to the camera for the erase.
ALTER TABLE segments ADD COLUMN custody_receipt BLOB;
-- Recordings whose every segment is stored and whose complete-marker is not yet in storage.
CREATE TABLE pending_markers(
  serial TEXT NOT NULL,
  recording_id TEXT NOT NULL,
  PRIMARY KEY(serial, recording_id)
) WITHOUT ROWID;
-- How far the audit log has been shipped to storage.
CREATE TABLE audit_shipped(
  id INTEGER PRIMARY KEY CHECK (id = 1),
  offset INTEGER NOT NULL,
  seq INTEGER NOT NULL
);
)sql",
    // Segments the camera flagged for priority upload (manifest flags bit 0, PROTOCOL.md 6.1)
    // go to storage first. Every row older than this holds a version 2 manifest, which has no
    // flags, so 0 is right for all of them. The queue's order is the index's order.
    R"sql(
ALTER TABLE segments ADD COLUMN priority INTEGER NOT NULL DEFAULT 0;
DROP INDEX segments_by_state;
CREATE INDEX segments_by_state ON segments(state, priority DESC, updated_ms);
)sql",
    // Decisions of the dock's admins: cameras revoked at this dock (charge-only until the
    // centre's CRL says the same or an admin lifts it), and quarantined segments an admin chose
    // to keep on the camera (they no longer hold the slot's light on attention).
    R"sql(
CREATE TABLE revoked_cameras(
  serial TEXT PRIMARY KEY,
  by_whom TEXT NOT NULL,
  reason TEXT NOT NULL,
  time_ms INTEGER NOT NULL
) WITHOUT ROWID;
ALTER TABLE segments ADD COLUMN kept INTEGER NOT NULL DEFAULT 0;
)sql",
    // The pull's checksum of each spool file (dock/spool_sum.hpp), so the upload need not hash
    // the segment with SHA-256 a second time. Rows spooled before it have '': their upload
    // checks against the manifest's SHA-256 as before.
    R"sql(
ALTER TABLE segments ADD COLUMN spool_sum TEXT NOT NULL DEFAULT '';
)sql",
    // The dock's current run: when it started and, once it stopped in order, when. A run that
    // never stopped (killed, crashed, power lost) is named in the audit log by the next one.
    R"sql(
CREATE TABLE dock_run(
  id INTEGER PRIMARY KEY CHECK (id = 1),
  started_ms INTEGER NOT NULL,
  stopped_ms INTEGER
);
)sql",
    // Rows of segments erased and purged long ago are pruned (StateDb::prune_purged), so the
    // database stays the same size over years of shifts. What stays of them per camera is the
    // highest seq pruned: a camera listing one of those again is still caught as a replay.
    R"sql(
CREATE TABLE pruned(
  serial TEXT PRIMARY KEY,
  through_seq INTEGER NOT NULL
) WITHOUT ROWID;
CREATE INDEX segments_by_recording ON segments(serial, recording_id);
)sql",
};

std::int64_t now_ms() {
  return std::chrono::duration_cast<std::chrono::milliseconds>(std::chrono::system_clock::now().time_since_epoch()).count();
}

class Stmt {
 public:
  Stmt(sqlite3* db, const char* sql) : db_(db) {
    if (sqlite3_prepare_v2(db, sql, -1, &stmt_, nullptr) != SQLITE_OK) fail("prepare");
  }
  ~Stmt() { sqlite3_finalize(stmt_); }
  Stmt(const Stmt&) = delete;
  Stmt& operator=(const Stmt&) = delete;

  Stmt& bind(int i, std::int64_t v) { return check(sqlite3_bind_int64(stmt_, i, v)); }
  Stmt& bind(int i, std::uint64_t v) { return bind(i, static_cast<std::int64_t>(v)); }
  // An empty view may have a null data(): bind "" explicitly, or SQLite stores NULL.
  Stmt& bind(int i, std::string_view v) {
    return check(sqlite3_bind_text(stmt_, i, v.empty() ? "" : v.data(), static_cast<int>(v.size()), SQLITE_TRANSIENT));
  }
  Stmt& bind(int i, std::optional<std::int64_t> v) { return v ? bind(i, *v) : check(sqlite3_bind_null(stmt_, i)); }
  bool is_null(int col) { return sqlite3_column_type(stmt_, col) == SQLITE_NULL; }
  Stmt& bind(int i, proto::ByteView v) { return check(sqlite3_bind_blob(stmt_, i, v.data(), static_cast<int>(v.size()), SQLITE_TRANSIENT)); }
  /// true while a row is available.
  bool step() {
    const int rc = sqlite3_step(stmt_);
    if (rc == SQLITE_ROW) return true;
    if (rc == SQLITE_DONE) return false;
    fail("step");
    return false;
  }
  std::int64_t i64(int col) { return sqlite3_column_int64(stmt_, col); }
  std::string text(int col) {
    const auto* p = reinterpret_cast<const char*>(sqlite3_column_text(stmt_, col));
    return p ? std::string(p, static_cast<std::size_t>(sqlite3_column_bytes(stmt_, col))) : std::string();
  }
  proto::ByteView blob(int col) {
    const auto* p = static_cast<const std::uint8_t*>(sqlite3_column_blob(stmt_, col));
    return {p, static_cast<std::size_t>(sqlite3_column_bytes(stmt_, col))};
  }

 private:
  Stmt& check(int rc) {
    if (rc != SQLITE_OK) fail("bind");
    return *this;
  }
  [[noreturn]] void fail(const char* what) {
    throw std::runtime_error(std::string("state database ") + what + ": " + sqlite3_errmsg(db_));
  }
  sqlite3* db_;
  sqlite3_stmt* stmt_ = nullptr;
};

constexpr const char* kRowColumns = "serial, seq, state, pulled, manifest, object_key, receipt, reason, attempts, clock_drift_ms, custody_receipt, kept, spool_sum";

SegmentRow read_row(Stmt& s) {
  SegmentRow r;
  r.serial = s.text(0);
  r.seq = static_cast<std::uint64_t>(s.i64(1));
  const auto state = state_from_name(s.text(2));
  if (!state) throw std::runtime_error("state database: unknown state '" + s.text(2) + "'");
  r.state = *state;
  r.pulled = static_cast<std::uint64_t>(s.i64(3));
  auto m = proto::decode_manifest(s.blob(4));
  if (!m) throw std::runtime_error("state database: stored manifest does not decode: " + m.error().message());
  r.manifest = std::move(*m);
  r.object_key = s.text(5);
  r.receipt = s.text(6);
  r.reason = s.text(7);
  r.attempts = static_cast<std::uint32_t>(s.i64(8));
  if (!s.is_null(9)) r.clock_drift_ms = s.i64(9);
  if (!s.is_null(10)) {
    const auto b = s.blob(10);
    r.custody_receipt.assign(b.begin(), b.end());
  }
  r.kept = s.i64(11) != 0;
  r.spool_sum = s.text(12);
  return r;
}

}  // namespace

const char* state_name(SegState s) noexcept {
  switch (s) {
    case SegState::listed: return "LISTED";
    case SegState::pulling: return "PULLING";
    case SegState::spooled: return "SPOOLED";
    case SegState::stored: return "STORED";
    case SegState::erased: return "ERASED";
    case SegState::purged: return "PURGED";
    case SegState::quarantined: return "QUARANTINED";
  }
  return "?";
}

std::optional<SegState> state_from_name(std::string_view name) noexcept {
  for (auto s : {SegState::listed, SegState::pulling, SegState::spooled, SegState::stored, SegState::erased,
                 SegState::purged, SegState::quarantined})
    if (name == state_name(s)) return s;
  return std::nullopt;
}

StateDb::StateDb(const std::filesystem::path& file) {
  if (sqlite3_open_v2(file.c_str(), &db_, SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE | SQLITE_OPEN_NOMUTEX, nullptr) != SQLITE_OK) {
    const std::string msg = db_ ? sqlite3_errmsg(db_) : "out of memory";
    sqlite3_close(db_);
    throw std::runtime_error("cannot open state database " + file.string() + ": " + msg);
  }
  try {
    sqlite3_busy_timeout(db_, 5000);
    exec("PRAGMA journal_mode=WAL");
    exec("PRAGMA synchronous=FULL");
    exec("PRAGMA foreign_keys=ON");
    migrate();
  } catch (...) {
    sqlite3_close_v2(db_);
    throw;
  }
}

StateDb::~StateDb() { sqlite3_close_v2(db_); }

void StateDb::rollback() noexcept {
  // SQLite may have rolled the transaction back itself (SQLITE_FULL, SQLITE_IOERR, ...): a
  // second ROLLBACK would fail and its error would replace the one that got us here.
  if (sqlite3_get_autocommit(db_) == 0) sqlite3_exec(db_, "ROLLBACK", nullptr, nullptr, nullptr);
}

void StateDb::exec(const char* sql) {
  char* err = nullptr;
  if (sqlite3_exec(db_, sql, nullptr, nullptr, &err) != SQLITE_OK) {
    std::string msg = err ? err : "unknown error";
    sqlite3_free(err);
    throw std::runtime_error("state database: " + msg);
  }
}

int StateDb::schema_version() const {
  Stmt s(db_, "PRAGMA user_version");
  s.step();
  return static_cast<int>(s.i64(0));
}

void StateDb::migrate() {
  const int have = schema_version();
  const int want = static_cast<int>(std::size(kMigrations));
  if (have > want)
    throw std::runtime_error("state database schema " + std::to_string(have) + " is newer than this dockd (" + std::to_string(want) + ")");
  for (int v = have; v < want; ++v) {
    exec("BEGIN IMMEDIATE");
    try {
      exec(kMigrations[v]);
      exec(("PRAGMA user_version=" + std::to_string(v + 1)).c_str());
      exec("COMMIT");
    } catch (...) {
      rollback();
      throw;
    }
  }
}

void StateDb::camera_seen(const std::string& serial, const std::string& model, const std::string& firmware) {
  Stmt s(db_, "INSERT INTO cameras(serial, model, firmware, last_seen_ms) VALUES(?1, ?2, ?3, ?4) "
              "ON CONFLICT(serial) DO UPDATE SET model=?2, firmware=?3, last_seen_ms=?4");
  s.bind(1, serial).bind(2, model).bind(3, firmware).bind(4, now_ms()).step();
}

void StateDb::camera_authenticated(const std::string& serial, proto::ByteView certificate, const std::string& officer) {
  Stmt s(db_, "UPDATE cameras SET certificate=?2, officer=?3 WHERE serial=?1");
  s.bind(1, serial).bind(2, certificate).bind(3, officer).step();
}

std::optional<CameraIdentity> StateDb::camera_identity(const std::string& serial) {
  Stmt s(db_, "SELECT certificate, officer FROM cameras WHERE serial=?1 AND certificate IS NOT NULL");
  s.bind(1, serial);
  if (!s.step()) return std::nullopt;
  const auto cert = s.blob(0);
  return CameraIdentity{proto::Bytes(cert.begin(), cert.end()), s.text(1)};
}

ListedResult StateDb::add_listed(const proto::Manifest& m, std::optional<std::int64_t> clock_drift_ms) {
  const auto bytes = proto::encode_manifest(m);
  {
    Stmt q(db_, "SELECT manifest FROM segments WHERE serial=?1 AND seq=?2");
    q.bind(1, m.camera_serial).bind(2, m.seq);
    if (q.step()) {
      const auto known = q.blob(0);
      return std::equal(known.begin(), known.end(), bytes.begin(), bytes.end()) ? ListedResult::known : ListedResult::conflict;
    }
  }
  exec("BEGIN IMMEDIATE");
  try {
    const auto t = now_ms();
    Stmt s(db_, "INSERT INTO segments(serial, seq, state, size, sha256, recording_id, manifest, listed_ms, updated_ms, clock_drift_ms, priority) "
                "VALUES(?1, ?2, 'LISTED', ?3, ?4, ?5, ?6, ?7, ?7, ?8, ?9)");
    s.bind(1, m.camera_serial).bind(2, m.seq).bind(3, m.size).bind(4, proto::to_hex(m.sha256)).bind(5, m.recording_id);
    s.bind(6, proto::ByteView(bytes)).bind(7, t).bind(8, clock_drift_ms).bind(9, std::int64_t{m.priority() ? 1 : 0}).step();
    Stmt h(db_, "INSERT INTO history(time_ms, serial, seq, state, detail) VALUES(?1, ?2, ?3, 'LISTED', ?4)");
    h.bind(1, t).bind(2, m.camera_serial).bind(3, m.seq).bind(4, std::string_view("listed by camera")).step();
    exec("COMMIT");
  } catch (...) {
    rollback();
    throw;
  }
  return ListedResult::inserted;
}

std::optional<SegmentRow> StateDb::get(const std::string& serial, std::uint64_t seq) {
  Stmt s(db_, (std::string("SELECT ") + kRowColumns + " FROM segments WHERE serial=?1 AND seq=?2").c_str());
  s.bind(1, serial).bind(2, seq);
  if (!s.step()) return std::nullopt;
  return read_row(s);
}

std::vector<SegmentRow> StateDb::camera_segments(const std::string& serial, bool live_only) {
  Stmt s(db_, (std::string("SELECT ") + kRowColumns + " FROM segments WHERE serial=?1" + (live_only ? " AND state!='PURGED'" : "") +
               " ORDER BY seq").c_str());
  s.bind(1, serial);
  std::vector<SegmentRow> rows;
  while (s.step()) rows.push_back(read_row(s));
  return rows;
}

std::vector<SegmentRow> StateDb::in_state(SegState state, std::size_t limit) {
  Stmt s(db_, (std::string("SELECT ") + kRowColumns + " FROM segments WHERE state=?1 ORDER BY priority DESC, updated_ms, serial, seq LIMIT ?2").c_str());
  s.bind(1, std::string_view(state_name(state))).bind(2, static_cast<std::int64_t>(limit));
  std::vector<SegmentRow> rows;
  while (s.step()) rows.push_back(read_row(s));
  return rows;
}

bool StateDb::transition(const std::string& serial, std::uint64_t seq, const std::vector<SegState>& from, SegState to,
                         const SegUpdate& u, std::string_view why) {
  std::string allowed;
  for (auto f : from) allowed += std::string(allowed.empty() ? "'" : ",'") + state_name(f) + "'";
  const std::string sql =
      "UPDATE segments SET state=?3, updated_ms=?4, pulled=COALESCE(?5, pulled), object_key=COALESCE(?6, object_key), "
      "receipt=COALESCE(?7, receipt), reason=COALESCE(?8, reason), attempts=attempts+?9, custody_receipt=COALESCE(?10, custody_receipt), "
      "spool_sum=COALESCE(?11, spool_sum) "
      "WHERE serial=?1 AND seq=?2 AND state IN (" + allowed + ")";
  exec("BEGIN IMMEDIATE");
  try {
    const auto t = now_ms();
    Stmt s(db_, sql.c_str());
    s.bind(1, serial).bind(2, seq).bind(3, std::string_view(state_name(to))).bind(4, t);
    if (u.pulled) s.bind(5, *u.pulled);
    if (u.object_key) s.bind(6, *u.object_key);
    if (u.receipt) s.bind(7, *u.receipt);
    if (u.reason) s.bind(8, *u.reason);
    s.bind(9, static_cast<std::int64_t>(u.count_attempt ? 1 : 0));
    if (u.custody_receipt) s.bind(10, proto::ByteView(*u.custody_receipt));
    if (u.spool_sum) s.bind(11, *u.spool_sum);
    s.step();
    const bool changed = sqlite3_changes(db_) == 1;
    // Progress updates within PULLING are frequent and uninteresting; state changes are history.
    const bool same_state = from.size() == 1 && from.front() == to;
    if (changed && !same_state) {
      Stmt h(db_, "INSERT INTO history(time_ms, serial, seq, state, detail) VALUES(?1, ?2, ?3, ?4, ?5)");
      h.bind(1, t).bind(2, serial).bind(3, seq).bind(4, std::string_view(state_name(to))).bind(5, why).step();
    }
    exec("COMMIT");
    return changed;
  } catch (...) {
    rollback();
    throw;
  }
}

std::uint64_t StateDb::spool_bytes() {
  Stmt s(db_, "SELECT COALESCE(SUM(size), 0) FROM segments WHERE state IN ('PULLING', 'SPOOLED', 'STORED', 'ERASED')");
  s.step();
  return static_cast<std::uint64_t>(s.i64(0));
}

std::map<SegState, std::uint64_t> StateDb::counts() {
  Stmt s(db_, "SELECT state, COUNT(*) FROM segments GROUP BY state");
  std::map<SegState, std::uint64_t> out;
  while (s.step())
    if (auto st = state_from_name(s.text(0))) out[*st] = static_cast<std::uint64_t>(s.i64(1));
  return out;
}

void StateDb::revoke_camera(const std::string& serial, const std::string& by, const std::string& reason) {
  Stmt s(db_, "INSERT INTO revoked_cameras(serial, by_whom, reason, time_ms) VALUES(?1, ?2, ?3, ?4) "
              "ON CONFLICT(serial) DO UPDATE SET by_whom=?2, reason=?3, time_ms=?4");
  s.bind(1, serial).bind(2, by).bind(3, reason).bind(4, now_ms()).step();
}

bool StateDb::reinstate_camera(const std::string& serial) {
  Stmt s(db_, "DELETE FROM revoked_cameras WHERE serial=?1");
  s.bind(1, serial).step();
  return sqlite3_changes(db_) > 0;
}

std::vector<CameraRow> StateDb::cameras() {
  std::vector<CameraRow> out;
  std::map<std::string, std::size_t> index;
  {
    Stmt s(db_, "SELECT c.serial, c.model, c.firmware, c.officer, c.last_seen_ms, r.by_whom, r.reason "
                "FROM cameras c LEFT JOIN revoked_cameras r ON r.serial = c.serial ORDER BY c.serial");
    while (s.step()) {
      CameraRow c;
      c.serial = s.text(0);
      c.model = s.text(1);
      c.firmware = s.text(2);
      c.officer = s.text(3);
      c.last_seen_ms = s.i64(4);
      if (!s.is_null(5)) c.revoked = s.text(5) + ": " + s.text(6);
      index[c.serial] = out.size();
      out.push_back(std::move(c));
    }
  }
  Stmt s(db_, "SELECT serial, state, COUNT(*) FROM segments WHERE state <> 'PURGED' GROUP BY serial, state");
  while (s.step()) {
    const auto it = index.find(s.text(0));
    const auto st = state_from_name(s.text(1));
    if (it != index.end() && st) out[it->second].segments[*st] = static_cast<std::uint64_t>(s.i64(2));
  }
  return out;
}

std::optional<std::string> StateDb::camera_revoked(const std::string& serial) {
  Stmt s(db_, "SELECT by_whom, reason FROM revoked_cameras WHERE serial=?1");
  s.bind(1, serial);
  if (!s.step()) return std::nullopt;
  return s.text(0) + ": " + s.text(1);
}

bool StateDb::keep_quarantined(const std::string& serial, std::uint64_t seq, std::string_view why) {
  exec("BEGIN IMMEDIATE");
  try {
    Stmt s(db_, "UPDATE segments SET kept=1, reason=?3, updated_ms=?4 WHERE serial=?1 AND seq=?2 AND state='QUARANTINED'");
    const auto t = now_ms();
    s.bind(1, serial).bind(2, seq).bind(3, why).bind(4, t).step();
    const bool changed = sqlite3_changes(db_) == 1;
    if (changed) {
      Stmt h(db_, "INSERT INTO history(time_ms, serial, seq, state, detail) VALUES(?1, ?2, ?3, 'QUARANTINED', ?4)");
      h.bind(1, t).bind(2, serial).bind(3, seq).bind(4, why).step();
    }
    exec("COMMIT");
    return changed;
  } catch (...) {
    rollback();
    throw;
  }
}

std::size_t StateDb::prune_purged(std::chrono::milliseconds older_than) {
  // Prunable: purged before the cutoff; not the camera's newest segment (the next docking's
  // chain links to it); of a recording whose every segment is purged and whose complete-marker
  // is in storage (a marker lists its recording's rows).
  static constexpr const char* kPrunable = R"sql(
    SELECT serial, seq FROM segments s
    WHERE state='PURGED' AND updated_ms < ?1
      AND seq < (SELECT MAX(n.seq) FROM segments n WHERE n.serial = s.serial)
      AND NOT EXISTS (SELECT 1 FROM segments r WHERE r.serial = s.serial AND r.recording_id = s.recording_id AND r.state != 'PURGED')
      AND NOT EXISTS (SELECT 1 FROM pending_markers p WHERE p.serial = s.serial AND p.recording_id = s.recording_id))sql";
  exec("BEGIN IMMEDIATE");
  try {
    exec("CREATE TEMP TABLE IF NOT EXISTS prune_set(serial TEXT NOT NULL, seq INTEGER NOT NULL, PRIMARY KEY(serial, seq)) WITHOUT ROWID");
    exec("DELETE FROM prune_set");
    Stmt pick(db_, (std::string("INSERT INTO prune_set(serial, seq) ") + kPrunable).c_str());
    pick.bind(1, now_ms() - older_than.count()).step();
    const auto n = static_cast<std::size_t>(sqlite3_changes(db_));
    if (n > 0) {
      exec("INSERT INTO pruned(serial, through_seq) SELECT serial, MAX(seq) FROM prune_set WHERE true GROUP BY serial "
           "ON CONFLICT(serial) DO UPDATE SET through_seq = MAX(through_seq, excluded.through_seq)");
      exec("DELETE FROM history WHERE (serial, seq) IN (SELECT serial, seq FROM prune_set)");
      exec("DELETE FROM segments WHERE (serial, seq) IN (SELECT serial, seq FROM prune_set)");
      exec("DELETE FROM prune_set");
    }
    exec("COMMIT");
    return n;
  } catch (...) {
    rollback();
    throw;
  }
}

std::uint64_t StateDb::pruned_through(const std::string& serial) {
  Stmt s(db_, "SELECT through_seq FROM pruned WHERE serial=?1");
  s.bind(1, serial);
  return s.step() ? static_cast<std::uint64_t>(s.i64(0)) : 0;
}

QueueView StateDb::queue_view() {
  QueueView v;
  v.counts = counts();
  v.spool_bytes = spool_bytes();
  Stmt s(db_, "SELECT COALESCE(SUM(size), 0), MIN(updated_ms) FROM segments WHERE state='SPOOLED'");
  s.step();
  v.spooled_bytes = static_cast<std::uint64_t>(s.i64(0));
  if (!s.is_null(1)) v.oldest_spooled_ms = s.i64(1);
  return v;
}

std::vector<std::string> StateDb::history(const std::string& serial, std::uint64_t seq) {
  Stmt s(db_, "SELECT state FROM history WHERE serial=?1 AND seq=?2 ORDER BY id");
  s.bind(1, serial).bind(2, seq);
  std::vector<std::string> out;
  while (s.step()) out.push_back(s.text(0));
  return out;
}

void StateDb::set_audit_anchor(std::uint64_t seq, const std::string& hash) {
  Stmt s(db_, "INSERT INTO audit_anchor(id, seq, hash) VALUES(1, ?1, ?2) ON CONFLICT(id) DO UPDATE SET seq=?1, hash=?2");
  s.bind(1, seq).bind(2, std::string_view(hash));
  s.step();
}

std::optional<StateDb::Run> StateDb::begin_run() {
  std::optional<Run> previous;
  {
    Stmt s(db_, "SELECT started_ms, stopped_ms FROM dock_run WHERE id = 1");
    if (s.step()) {
      previous.emplace();
      previous->started_ms = s.i64(0);
      if (!s.is_null(1)) previous->stopped_ms = s.i64(1);
    }
  }
  Stmt s(db_, "INSERT INTO dock_run(id, started_ms, stopped_ms) VALUES(1, ?1, NULL) ON CONFLICT(id) DO UPDATE SET started_ms=?1, stopped_ms=NULL");
  s.bind(1, now_ms());
  s.step();
  return previous;
}

void StateDb::end_run() {
  Stmt s(db_, "UPDATE dock_run SET stopped_ms = ?1 WHERE id = 1");
  s.bind(1, now_ms());
  s.step();
}

std::optional<std::pair<std::uint64_t, std::string>> StateDb::audit_anchor() {
  Stmt s(db_, "SELECT seq, hash FROM audit_anchor WHERE id = 1");
  if (!s.step()) return std::nullopt;
  return std::make_pair(static_cast<std::uint64_t>(s.i64(0)), s.text(1));
}

std::vector<SegmentRow> StateDb::recording_segments(const std::string& serial, const std::string& recording_id) {
  Stmt s(db_, (std::string("SELECT ") + kRowColumns + " FROM segments WHERE serial=?1 AND recording_id=?2 ORDER BY seq").c_str());
  s.bind(1, serial).bind(2, recording_id);
  std::vector<SegmentRow> rows;
  while (s.step()) rows.push_back(read_row(s));
  return rows;
}

bool StateDb::note_if_recording_complete(const std::string& serial, const std::string& recording_id) {
  const auto rows = recording_segments(serial, recording_id);
  // Complete: the segment marked last is there, every index before it too, all in storage.
  std::optional<std::uint16_t> last;
  std::vector<bool> have;
  for (const auto& r : rows) {
    if (r.state != SegState::stored && r.state != SegState::erased && r.state != SegState::purged) return false;
    const auto i = r.manifest.segment_index;
    if (have.size() <= i) have.resize(i + 1u, false);
    have[i] = true;
    if (r.manifest.last_in_recording) last = i;
  }
  if (!last || have.size() != *last + 1u || std::find(have.begin(), have.end(), false) != have.end()) return false;
  Stmt s(db_, "INSERT OR IGNORE INTO pending_markers(serial, recording_id) VALUES(?1, ?2)");
  s.bind(1, serial).bind(2, recording_id).step();
  return true;
}

std::vector<std::pair<std::string, std::string>> StateDb::pending_markers() {
  Stmt s(db_, "SELECT serial, recording_id FROM pending_markers ORDER BY serial, recording_id");
  std::vector<std::pair<std::string, std::string>> out;
  while (s.step()) out.emplace_back(s.text(0), s.text(1));
  return out;
}

void StateDb::marker_stored(const std::string& serial, const std::string& recording_id) {
  Stmt s(db_, "DELETE FROM pending_markers WHERE serial=?1 AND recording_id=?2");
  s.bind(1, serial).bind(2, recording_id).step();
}

std::pair<std::uint64_t, std::uint64_t> StateDb::audit_shipped() {
  Stmt s(db_, "SELECT offset, seq FROM audit_shipped WHERE id = 1");
  if (!s.step()) return {0, 0};
  return {static_cast<std::uint64_t>(s.i64(0)), static_cast<std::uint64_t>(s.i64(1))};
}

void StateDb::set_audit_shipped(std::uint64_t offset, std::uint64_t seq) {
  Stmt s(db_, "INSERT INTO audit_shipped(id, offset, seq) VALUES(1, ?1, ?2) ON CONFLICT(id) DO UPDATE SET offset=?1, seq=?2");
  s.bind(1, offset).bind(2, seq).step();
}

std::optional<UploadRecord> StateDb::find_upload(const std::string& key) {
  Stmt s(db_, "SELECT upload_id, part_size FROM uploads WHERE object_key=?1");
  s.bind(1, key);
  if (!s.step()) return std::nullopt;
  UploadRecord r;
  r.upload_id = s.text(0);
  r.part_size = static_cast<std::uint64_t>(s.i64(1));
  Stmt p(db_, "SELECT number, etag, md5 FROM upload_parts WHERE object_key=?1 ORDER BY number");
  p.bind(1, key);
  while (p.step()) r.parts[static_cast<unsigned>(p.i64(0))] = UploadedPart{p.text(1), p.text(2)};
  return r;
}

void StateDb::upload_begun(const std::string& key, const std::string& upload_id, std::uint64_t part_size) {
  exec("BEGIN IMMEDIATE");
  try {
    Stmt d(db_, "DELETE FROM uploads WHERE object_key=?1");
    d.bind(1, key).step();
    Stmt s(db_, "INSERT INTO uploads(object_key, upload_id, part_size, started_ms) VALUES(?1, ?2, ?3, ?4)");
    s.bind(1, key).bind(2, upload_id).bind(3, part_size).bind(4, now_ms()).step();
    exec("COMMIT");
  } catch (...) {
    rollback();
    throw;
  }
}

void StateDb::part_done(const std::string& key, unsigned number, const UploadedPart& part) {
  Stmt s(db_, "INSERT INTO upload_parts(object_key, number, etag, md5) VALUES(?1, ?2, ?3, ?4) "
              "ON CONFLICT(object_key, number) DO UPDATE SET etag=?3, md5=?4");
  s.bind(1, key).bind(2, static_cast<std::int64_t>(number)).bind(3, part.etag).bind(4, part.md5).step();
}

void StateDb::upload_ended(const std::string& key) {
  Stmt s(db_, "DELETE FROM uploads WHERE object_key=?1");
  s.bind(1, key).step();
}

std::vector<std::pair<std::string, std::string>> StateDb::uploads() {
  Stmt s(db_, "SELECT object_key, upload_id FROM uploads ORDER BY started_ms");
  std::vector<std::pair<std::string, std::string>> out;
  while (s.step()) out.emplace_back(s.text(0), s.text(1));
  return out;
}

}  // namespace bodydock::dock
