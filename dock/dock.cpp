#include "dock/dock.hpp"

#include "dock/log.hpp"
#include "proto/sha256.hpp"
#include "proto/trust.hpp"

#include <algorithm>
#include <boost/asio/co_spawn.hpp>
#include <boost/asio/experimental/awaitable_operators.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/asio/use_awaitable.hpp>

#include <boost/json.hpp>

#include <sys/statvfs.h>

#include <fstream>

#include <random>

namespace bodydock::dock {

namespace asio = boost::asio;
using namespace asio::experimental::awaitable_operators;

const char* phase_name(SlotPhase p) noexcept {
  switch (p) {
    case SlotPhase::empty: return "empty";
    case SlotPhase::authenticating: return "authenticating";
    case SlotPhase::syncing: return "syncing";
    case SlotPhase::waiting_upload: return "waiting for upload";
    case SlotPhase::done: return "done";
    case SlotPhase::attention: return "attention";
  }
  return "?";
}

const char* uplink_state_name(UplinkStatus::State s) noexcept {
  switch (s) {
    case UplinkStatus::State::idle: return "idle";
    case UplinkStatus::State::uploading: return "uploading";
    case UplinkStatus::State::retrying: return "retrying";
    case UplinkStatus::State::held: return "held";
  }
  return "?";
}

hw::SlotLight slot_light(const SlotStatus& s) noexcept {
  switch (s.phase) {
    case SlotPhase::empty: return hw::SlotLight::empty;
    case SlotPhase::authenticating: return hw::SlotLight::authenticating;
    case SlotPhase::syncing: return hw::SlotLight::syncing;
    case SlotPhase::waiting_upload: return hw::SlotLight::waiting_uplink;
    case SlotPhase::done: return s.charging ? hw::SlotLight::charging : hw::SlotLight::done;
    case SlotPhase::attention: return hw::SlotLight::attention;
  }
  return hw::SlotLight::attention;
}

Dock::Dock(asio::io_context& ioc, DockConfig cfg, Sink& sink)
    : ioc_(ioc), cfg_(std::move(cfg)), sink_(sink), spooled_(ioc.get_executor()), stored_(ioc.get_executor()) {
  if (!cfg_.identity) throw std::invalid_argument("the dock needs its fleet identity (CA, CRL, dock key and certificate)");
  cfg_.dock_id = cfg_.identity->id;  // who the dock is, is what its certificate says
  std::filesystem::create_directories(cfg_.state_dir / "spool");
  state_ = std::make_unique<StateDb>(cfg_.state_dir / "dock.sqlite");
  audit_ = std::make_unique<AuditLog>(cfg_.state_dir / "audit" / "audit.log");
  actor_ = "dock " + cfg_.dock_id;
  slots_.resize(cfg_.slots);
  for (unsigned i = 0; i < cfg_.slots; ++i) slots_[i].index = i + 1;
  // Every start is on record, and so is a run that ended without stopping (killed, crashed,
  // power lost): whoever reads the log later sees the gap and knows the dock resumed from it.
  const auto previous = state_->begin_run();
  AuditEvent e;
  e.actor = actor_;
  e.event = "dock started";
  if (!previous) {
    e.why = "first start on this state";
  } else if (previous->stopped_ms) {
    e.why = "started; the previous run stopped in order";
  } else {
    e.why = "started after a run that did not stop in order (killed, crashed or power lost); its work resumes";
    e.details["previous_start_ms"] = previous->started_ms;
  }
  append_anchored(*audit_, *state_, e);
  sink_.use_journal(this);
}

Dock::~Dock() {
  sink_.use_journal(nullptr);
  // Blocking jobs may still reference coroutine frames: let them finish before anything goes.
  io_pool_.join();
  db_pool_.join();
  // No other thread touches the database or the audit log now.
  try {
    if (!stop_recorded_) append_anchored(*audit_, *state_, stop_event());
    state_->end_run();
  } catch (const std::exception& e) {
    log(Level::error, "stop: not recorded: ", e.what(), "; the next start will call this run unfinished");
  }
}

void Dock::append_anchored(AuditLog& log, StateDb& s, const AuditEvent& e) {
  const auto [seq, hash] = log.append(e);
  s.set_audit_anchor(seq, hash);
}

void Dock::audit_transition(AuditLog& log, StateDb& s, const std::string& actor, const std::string& serial, std::uint64_t seq,
                            SegState to, const SegUpdate& update, const std::string& why) {
  AuditEvent e;
  e.actor = actor;
  e.event = state_name(to);
  for (auto& c : e.event) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
  e.camera = serial;
  e.segment = seq;
  e.why = why;
  if (update.pulled) e.details["offset"] = *update.pulled;
  if (update.object_key) e.details["object"] = *update.object_key;
  if (update.receipt) e.details["stored_sha256"] = *update.receipt;
  append_anchored(log, s, e);
}

std::filesystem::path Dock::spool_path(const std::string& serial, std::uint64_t seq) const {
  return cfg_.state_dir / "spool" / serial / (std::to_string(seq) + ".part");
}

void Dock::stop() {
  stopping_ = true;
  spooled_.notify();
}

bool Dock::begin_session(const std::string& serial, unsigned slot) { return active_serials_.emplace(serial, slot).second; }
void Dock::end_session(const std::string& serial) { active_serials_.erase(serial); }

Dock::SpoolRoom Dock::check_spool_room(std::uint64_t used, std::uint64_t bytes, std::uint64_t limit, std::uint64_t reserve,
                                       const std::filesystem::path& dir) {
  SpoolRoom r;
  r.used = used;
  struct statvfs fs {};
  if (::statvfs(dir.c_str(), &fs) == 0) r.free = static_cast<std::uint64_t>(fs.f_bavail) * fs.f_frsize;
  else r.free = 0;
  const auto mib = [](std::uint64_t b) { return std::to_string(b >> 20) + " MiB"; };
  if (limit && used > 0 && used + bytes > limit) {  // an empty spool takes any one segment
    r.ok = false;
    r.why = "spool at its high-water mark (" + mib(used) + " of " + mib(limit) + " used)";
  } else if (r.free < bytes + reserve) {
    r.ok = false;
    r.why = "spool disk nearly full (" + mib(r.free) + " free)";
  }
  return r;
}

std::optional<std::string> Dock::set_identity(std::shared_ptr<const pki::DockIdentity> identity) {
  if (!identity) return "no identity";
  if (identity->id != cfg_.identity->id)
    return "the trust directory now names dock '" + identity->id + "', not '" + cfg_.identity->id + "'; that needs a restart";
  cfg_.identity = std::move(identity);
  return std::nullopt;
}

proto::Bytes Dock::custody_receipt(const proto::Manifest& m, const std::string& object_key, const proto::Digest& stored_sha256) const {
  proto::Receipt r;
  r.camera_serial = m.camera_serial;
  r.seq = m.seq;
  r.sha256 = stored_sha256;
  r.manifest_sha256 = proto::manifest_hash(m);
  r.stored_at = sink_.describe() + " " + object_key;
  r.stored_utc_ms = std::chrono::duration_cast<std::chrono::milliseconds>(std::chrono::system_clock::now().time_since_epoch()).count();
  r.dock_cert = cfg_.identity->cert;
  return proto::encode_receipt(proto::make_receipt(std::move(r), cfg_.identity->key));
}

void Dock::pause_uploads(bool paused) {
  paused_ = paused;
  spooled_.notify();
}

void Dock::retry_now() {
  uplink_gate_ = {};
  uplink_.clock_alert.clear();
  retry_at_.clear();
  spooled_.notify();
}

std::chrono::milliseconds Dock::backoff(std::uint32_t attempt) const {
  // Exponential backoff with full jitter: retries from many docks never synchronise.
  const auto shift = std::min<std::uint32_t>(attempt, 16);
  const auto cap = std::min<std::int64_t>(cfg_.upload_retry_cap.count(), cfg_.upload_retry_base.count() << shift);
  static thread_local std::mt19937_64 rng{std::random_device{}()};
  return std::chrono::milliseconds(std::uniform_int_distribution<std::int64_t>(0, std::max<std::int64_t>(cap, 1))(rng));
}

asio::awaitable<void> Dock::run_uploader() {
  using Clock = std::chrono::steady_clock;
  while (!stopping_) {
    if (Clock::now() >= prune_at_) {
      // Often enough that no row outstays its retention by more than half of it (an hour at most).
      prune_at_ = Clock::now() + std::clamp<std::chrono::milliseconds>(cfg_.purged_retention / 2, std::chrono::seconds(1), std::chrono::hours(1));
      try {
        if (const auto n = co_await prune_purged(cfg_.purged_retention))
          log(Level::info, "state: ", n, " rows of segments purged more than ", cfg_.purged_retention.count() / 1000, " s ago pruned");
      } catch (const std::exception& e) {
        log(Level::error, "state: cannot prune purged segments: ", e.what(), "; retrying later");
      }
    }
    std::vector<SegmentRow> rows;
    try {
      rows = co_await in_state(SegState::spooled);
    } catch (const std::exception& e) {
      log(Level::error, "upload queue: cannot read the state database: ", e.what(), "; retrying");
    }
    uplink_.queued = rows.size();
    uplink_.queued_bytes = 0;
    for (const auto& r : rows) uplink_.queued_bytes += r.manifest.size;
    const auto now = Clock::now();
    auto wake = now + std::chrono::seconds(1);
    // Paused by an admin: uploads under way finish, no new one starts.
    const bool gated = now < uplink_gate_ || paused_;
    if (gated) wake = std::min(wake, uplink_gate_);
    if (uplink_.state != UplinkStatus::State::held && uplink_.state != UplinkStatus::State::retrying)
      uplink_.state = uploading_.empty() && rows.empty() ? UplinkStatus::State::idle : UplinkStatus::State::uploading;
    // Backing off or held: nothing new starts until the gate opens; then one attempt goes first
    // as a probe, and the rest follow once it succeeds.
    const bool probing = uplink_.state == UplinkStatus::State::held || uplink_.state == UplinkStatus::State::retrying;
    const std::size_t limit = probing ? 1 : cfg_.upload_concurrency;
    for (auto& row : rows) {
      if (gated || uploading_.size() >= limit) break;
      const auto key = std::make_pair(row.serial, row.seq);
      if (uploading_.contains(key)) continue;
      if (auto it = retry_at_.find(key); it != retry_at_.end() && it->second > now) {
        wake = std::min(wake, it->second);
        continue;
      }
      uploading_.insert(key);
      asio::co_spawn(ioc_, store_one(std::move(row)), [](const std::exception_ptr& e) { log_if_failed("upload queue: store", e); });
    }
    if (!gated && !shipping_ && uplink_.state != UplinkStatus::State::held) {
      shipping_ = true;
      asio::co_spawn(ioc_, ship_records(rows.empty() && uploading_.empty()), [this](const std::exception_ptr& e) {
        shipping_ = false;
        log_if_failed("upload queue: records", e);
      });
    }
    asio::steady_timer timer(ioc_, wake);
    co_await (spooled_.wait() || timer.async_wait(asio::use_awaitable));
  }
}

asio::awaitable<void> Dock::ship_records(bool queue_idle, bool now) {
  const auto markers = co_await pending_markers();
  for (const auto& [serial, recording] : markers) co_await ship_marker(serial, recording);
  const auto since = std::chrono::steady_clock::now() - audit_shipped_at_;
  if (now || since >= cfg_.audit_ship_interval || (queue_idle && since >= std::chrono::seconds(2))) co_await ship_audit();
}

AuditEvent Dock::stop_event() const {
  AuditEvent e;
  e.actor = actor_;
  e.event = "dock stopped";
  e.why = "orderly stop";
  return e;
}

asio::awaitable<void> Dock::flush_records(std::chrono::milliseconds limit) {
  if (!stop_recorded_) {
    stop_recorded_ = true;
    auto e = stop_event();
    co_await audit_by(std::move(e));
  }
  asio::steady_timer tick(ioc_);
  const auto deadline = std::chrono::steady_clock::now() + limit;
  while (shipping_ && std::chrono::steady_clock::now() < deadline) {
    tick.expires_after(std::chrono::milliseconds(10));
    co_await tick.async_wait(asio::use_awaitable);
  }
  if (shipping_ || uplink_.state == UplinkStatus::State::held || uplink_.state == UplinkStatus::State::retrying) co_return;
  // Bounded by the storage client's own deadlines; not cancelled midway (a torn request is
  // worse than a late stop).
  shipping_ = true;
  try {
    co_await ship_records(true, true);
  } catch (const std::exception& e) {
    log(Level::warning, "audit log: final chunk not stored: ", e.what());
  }
  shipping_ = false;
}

asio::awaitable<void> Dock::ship_marker(std::string serial, std::string recording_id) {
  const auto rows = co_await recording_segments(serial, recording_id);
  if (rows.empty()) co_return;
  boost::json::object j;
  j["recording_id"] = recording_id;
  j["camera"] = serial;
  j["dock_id"] = cfg_.dock_id;
  j["start_utc_ms"] = rows.front().manifest.start_utc_ms;
  j["end_utc_ms"] = rows.back().manifest.end_utc_ms;
  j["trigger_on"] = rows.front().manifest.trigger_on;
  j["trigger_off"] = rows.back().manifest.trigger_off;
  boost::json::array segs;
  for (const auto& r : rows) {
    boost::json::object o;
    o["seq"] = r.seq;
    o["index"] = r.manifest.segment_index;
    o["key"] = segment_object_key(r.manifest);
    o["sha256"] = proto::to_hex(r.manifest.sha256);
    o["size"] = r.manifest.size;
    o["manifest_sha256"] = proto::to_hex(proto::manifest_hash(r.manifest));
    segs.push_back(std::move(o));
  }
  j["segments"] = std::move(segs);
  const auto key = serial + "/recording-" + safe_key_part(recording_id) + ".json";
  if (auto failed = co_await sink_.store_record(key, boost::json::serialize(j) + "\n")) {
    log(Level::warning, serial, " recording ", recording_id, ": complete-marker not stored yet (", failed->message(), ")");
    co_return;
  }
  co_await marker_stored(serial, recording_id);
  AuditEvent e;
  e.event = "recording complete";
  e.camera = serial;
  e.why = "every segment of recording " + recording_id + " is in storage; marker stored";
  e.details["object"] = key;
  co_await audit(std::move(e));
  log(Level::info, serial, " recording ", recording_id, ": complete-marker stored as ", key);
}

Dock::AuditChunk Dock::read_audit_chunk(const std::filesystem::path& file, std::uint64_t offset) {
  constexpr std::size_t kMax = 4u << 20;
  AuditChunk c;
  std::ifstream in(file, std::ios::binary);
  if (!in) return c;
  in.seekg(static_cast<std::streamoff>(offset));
  c.lines.resize(kMax);
  in.read(c.lines.data(), static_cast<std::streamsize>(kMax));
  c.lines.resize(static_cast<std::size_t>(in.gcount()));
  const auto end = c.lines.rfind('\n');
  if (end == std::string::npos) {
    c.lines.clear();
    return c;
  }
  c.lines.resize(end + 1);
  c.end_offset = offset + c.lines.size();
  const auto seq_of = [](std::string_view line) -> std::uint64_t {
    boost::system::error_code ec;
    const auto v = boost::json::parse(line, ec);
    if (ec || !v.is_object() || !v.as_object().contains("seq") || !v.as_object().at("seq").is_number()) return 0;
    return v.as_object().at("seq").to_number<std::uint64_t>();
  };
  const auto first_end = c.lines.find('\n');
  c.first_seq = seq_of(std::string_view(c.lines).substr(0, first_end));
  const auto last_start = c.lines.rfind('\n', c.lines.size() - 2);
  c.last_seq = seq_of(std::string_view(c.lines).substr(last_start == std::string::npos ? 0 : last_start + 1));
  return c;
}

asio::awaitable<void> Dock::ship_audit() {
  auto chunk = co_await audit_chunk();
  if (chunk.lines.empty()) co_return;
  char name[64];
  std::snprintf(name, sizeof name, "%012llu-%012llu.jsonl", static_cast<unsigned long long>(chunk.first_seq),
                static_cast<unsigned long long>(chunk.last_seq));
  const auto key = "audit/" + safe_key_part(cfg_.dock_id) + "/" + name;
  if (auto failed = co_await sink_.store_record(key, std::move(chunk.lines))) {
    log(Level::warning, "audit log: chunk ", name, " not stored yet (", failed->message(), ")");
    co_return;
  }
  co_await audit_shipped(chunk.end_offset, chunk.last_seq);
  audit_shipped_at_ = std::chrono::steady_clock::now();
  log(Level::debug, "audit log: entries ", chunk.first_seq, "..", chunk.last_seq, " stored as ", key);
}

asio::awaitable<void> Dock::store_one(SegmentRow row) {
  const auto key = std::make_pair(row.serial, row.seq);
  const auto serial = row.serial;
  const auto seq = row.seq;
  try {
    Custody custody;
    custody.dock_id = cfg_.dock_id;
    custody.clock_drift_ms = row.clock_drift_ms;
    if (auto who = co_await camera_identity(serial)) {
      custody.camera_certificate = std::move(who->certificate);
      custody.officer = std::move(who->officer);
    }
    auto receipt = co_await sink_.store(SpoolFile(spool_path(serial, seq), row.spool_sum), row.manifest, custody);
    if (receipt) {
      // The custody receipt goes beside the segment before it counts as stored; the camera is
      // later shown the very same bytes. Made once, kept in the state database, so a retry
      // stores the same receipt.
      if (row.custody_receipt.empty()) {
        row.custody_receipt = custody_receipt(row.manifest, receipt->object_key, receipt->sha256);
        SegUpdate keep;
        keep.custody_receipt = row.custody_receipt;
        co_await transition(serial, seq, states(SegState::spooled), SegState::spooled, keep);
      }
      std::string receipt_bytes(row.custody_receipt.begin(), row.custody_receipt.end());
      if (auto failed = co_await sink_.store_record(beside_key(row.manifest, ".receipt"), std::move(receipt_bytes))) receipt = *failed;
    }
    if (receipt) {
      SegUpdate u;
      u.object_key = receipt->object_key;
      u.receipt = proto::to_hex(receipt->sha256);
      co_await transition(serial, seq, states(SegState::spooled), SegState::stored, u, "storage confirmed sha256 " + *u.receipt);
      totals_.stored_bytes += receipt->size;
      ++totals_.segments_stored;
      retry_at_.erase(key);
      log(Level::info, serial, " seg ", seq, ": stored as ", receipt->object_key);
      if (co_await note_recording(serial, row.manifest.recording_id)) log(Level::info, serial, " recording ", row.manifest.recording_id, ": every segment stored");
      if (uplink_.state == UplinkStatus::State::held || uplink_.state == UplinkStatus::State::retrying) {
        log(Level::notice, "uplink: storage accepts uploads again");
        AuditEvent e;
        e.event = "uplink resumed";
        e.why = "storage accepted an upload again";
        co_await audit(std::move(e));
        uplink_.alert.clear();
      }
      uplink_.state = UplinkStatus::State::uploading;
      uplink_.consecutive_failures = 0;
      uplink_gate_ = {};
      stored_.notify();
    } else {
      co_await store_failed(row, receipt.error());
    }
  } catch (const std::exception& e) {
    // Unexpected (database or file system failing): back off like any failed attempt, so a
    // broken disk is not hammered in a loop.
    log(Level::error, serial, " seg ", seq, ": store failed: ", e.what(), "; retry in ", cfg_.upload_retry_cap.count(), " ms");
    retry_at_[key] = std::chrono::steady_clock::now() + cfg_.upload_retry_cap;
  }
  uploading_.erase(key);
  spooled_.notify();
}

asio::awaitable<void> Dock::store_failed(const SegmentRow& row, const StoreFailure& failure) {
  const auto& serial = row.serial;
  const auto seq = row.seq;
  const auto now = std::chrono::steady_clock::now();
  ++uplink_.retries;
  uplink_.last_error = failure.message();
  if (failure == sink_errc::content_mismatch || failure == sink_errc::spool_unreadable) {
    // The spool copy is damaged or gone; the camera still holds the segment: pull it again.
    ++uplink_.errors["spool"];
    log(Level::error, serial, " seg ", seq, ": spool copy unusable (", failure.message(), "); will pull again");
    SegUpdate u;
    u.pulled = 0;
    u.reason = failure.message();
    co_await transition(serial, seq, states(SegState::spooled), SegState::pulling, u, "spool unusable: " + *u.reason);
    co_return;
  }
  if (failure == sink_errc::object_conflict) {
    ++uplink_.errors["conflict"];
    log(Level::error, serial, " seg ", seq, ": ", failure.message(), "; quarantined, never overwritten");
    SegUpdate u;
    u.reason = failure.message();
    co_await transition(serial, seq, states(SegState::spooled), SegState::quarantined, u, *u.reason);
    ++totals_.segments_quarantined;
    co_return;
  }
  SegUpdate u;
  u.reason = failure.message();
  u.count_attempt = true;
  co_await transition(serial, seq, states(SegState::spooled), SegState::spooled, u);
  {
    // Each failed attempt is an operation on the recording: on record, with what went wrong.
    AuditEvent e;
    e.event = "store failed";
    e.camera = serial;
    e.segment = seq;
    e.why = "attempt " + std::to_string(row.attempts + 1) + ": " + failure.message();
    co_await audit(std::move(e));
  }
  if (failure == sink_errc::storage_refused) {
    // Retrying the same request cannot help (wrong key, missing bucket, quota): hold the whole
    // queue, tell the admin, and probe now and then. The footage stays in the spool and on
    // the cameras.
    ++uplink_.errors["refused"];
    uplink_gate_ = now + cfg_.upload_hold_probe;
    if (uplink_.state != UplinkStatus::State::held) {
      uplink_.state = UplinkStatus::State::held;
      uplink_.alert = failure.message();
      log(Level::error, "uplink: ALERT ", uplink_.alert, "; uploads hold (footage stays in the spool and on the cameras), next try in ",
          cfg_.upload_hold_probe.count() / 1000, " s");
      AuditEvent e;
      e.event = "uplink held";
      e.why = uplink_.alert;
      e.camera = serial;
      e.segment = seq;
      co_await audit(std::move(e));
    }
    co_return;
  }
  const bool clock = failure == sink_errc::clock_skew;
  ++uplink_.errors[clock ? "clock" : "transient"];
  ++uplink_.consecutive_failures;
  const auto delay = backoff(row.attempts + 1);
  retry_at_[std::make_pair(serial, seq)] = now + delay;
  // The whole uplink backs off too: an outage is one problem, not one per queued segment.
  uplink_gate_ = now + backoff(uplink_.consecutive_failures);
  if (uplink_.state != UplinkStatus::State::held) uplink_.state = UplinkStatus::State::retrying;
  if (clock && uplink_.clock_alert.empty()) {
    uplink_.clock_alert = "the dock's clock and storage's disagree: " + failure.message();
    log(Level::error, "uplink: ALERT ", uplink_.clock_alert);
    AuditEvent e;
    e.event = "clock alert";
    e.why = uplink_.clock_alert;
    co_await audit(std::move(e));
  }
  log(Level::warning, serial, " seg ", seq, ": store attempt ", row.attempts + 1, " failed: ", failure.message(), "; retry in ", delay.count(), " ms");
}

// The journal, on the database thread. (The lambdas live in plain functions: none may be a
// temporary inside a co_await, see blocking.hpp.)
asio::awaitable<std::optional<UploadRecord>> Dock::find_upload(std::string key) {
  return db([key = std::move(key)](StateDb& s) { return s.find_upload(key); });
}

asio::awaitable<void> Dock::upload_begun(std::string key, std::string upload_id, std::uint64_t part_size) {
  co_await journal_begun(std::move(key), std::move(upload_id), part_size);
}

asio::awaitable<void> Dock::part_done(std::string key, unsigned number, UploadedPart part) {
  co_await journal_part(std::move(key), number, std::move(part));
}

asio::awaitable<void> Dock::upload_ended(std::string key) { co_await journal_ended(std::move(key)); }

}  // namespace bodydock::dock
