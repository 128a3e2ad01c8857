// One docked camera, top to bottom: hello -> status -> list -> pull/verify/spool each segment
// -> erase what storage confirmed -> wait for the rest of the uploads -> done.
#include "dock/chain.hpp"
#include "dock/dock.hpp"
#include "dock/files.hpp"
#include "dock/spool.hpp"
#include "dock/log.hpp"
#include "proto/messages.hpp"
#include "proto/sha256.hpp"
#include "proto/trust.hpp"

#include <boost/asio/experimental/awaitable_operators.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/asio/this_coro.hpp>
#include <boost/asio/use_awaitable.hpp>

#include <fcntl.h>
#include <unistd.h>

#include <boost/json/object.hpp>

#include <algorithm>
#include <cstdlib>
#include <deque>

namespace bodydock::dock {

namespace asio = boost::asio;
using namespace asio::experimental::awaitable_operators;
using boost::system::error_code;
using proto::Bytes;
using proto::ByteView;
using proto::MsgType;

namespace {

using Clock = std::chrono::steady_clock;

constexpr std::size_t kMaxListPages = 1000;  // x up to 256 manifests a page

/// What happened to one segment's pull.
enum class PullEnd { spooled, quarantined, skipped, link_failed };

/// A request in the pull pipeline: a READ for `chunk`, or a status poll / charging request
/// sent between READs.
struct Pending {
  std::uint32_t id = 0;
  std::uint64_t chunk = 0;
  MsgType type = MsgType::read;
  bool allow = false;  ///< SET_CHARGING: what was asked
};

std::int64_t utc_now_ms() {
  return std::chrono::duration_cast<std::chrono::milliseconds>(std::chrono::system_clock::now().time_since_epoch()).count();
}

const char* end_name(SessionEnd e) {
  switch (e) {
    case SessionEnd::done: return "done";
    case SessionEnd::attention: return "attention";
    case SessionEnd::unplugged: return "undocked";
    case SessionEnd::failed: return "failed";
    case SessionEnd::unresponsive: return "unresponsive";
    case SessionEnd::overheated: return "overheated";
    case SessionEnd::charge_only: return "charge-only";
    case SessionEnd::dock_fault: return "dock fault";
  }
  return "?";
}

std::string celsius(std::int16_t dc) {
  char b[16];
  std::snprintf(b, sizeof b, "%.1f", dc / 10.0);
  return b;
}

std::string mib(std::uint64_t bytes) {
  char b[32];
  std::snprintf(b, sizeof b, "%.1f MiB", static_cast<double>(bytes) / (1 << 20));
  return b;
}

}  // namespace

class Session {
 public:
  Session(Dock& dock, unsigned slot, usb::CameraLink& link, std::function<void(SessionEnd)> synced)
      : dock_(dock), slot_(slot), link_(link), status_(dock.slot(slot)), tag_(cat("slot ", slot)), synced_(std::move(synced)) {}
  Session(const Session&) = delete;
  Session& operator=(const Session&) = delete;

  /// run(), with any exception turned into a failed session on this slot only.
  asio::awaitable<SessionEnd> run_guarded();

 private:
  asio::awaitable<SessionEnd> run();
  asio::awaitable<error_code> send(MsgType type, const Bytes& payload, std::uint32_t& id);
  asio::awaitable<boost::system::result<proto::Frame>> receive();
  asio::awaitable<boost::system::result<proto::Frame>> call(MsgType type, const Bytes& payload, MsgType expect);
  asio::awaitable<error_code> handshake();
  /// Mutual authentication (PROTOCOL.md 5.5). A link failure is returned as the error; a camera
  /// that fails (or refuses the dock) sets `refused` to why.
  asio::awaitable<error_code> authenticate(std::string& refused);
  /// The camera failed authentication: power only, nothing read or erased, audited.
  asio::awaitable<SessionEnd> charge_only(std::string why);
  /// Checks the chain of what the camera listed against itself and what the dock holds.
  asio::awaitable<void> check_chain(const std::vector<proto::Manifest>& listed);
  asio::awaitable<error_code> refresh_status();
  /// Sets the camera's clock from the dock's and audits the drift (evidence timestamps must be explainable).
  asio::awaitable<error_code> set_clock();
  /// An audit entry about this session's camera.
  asio::awaitable<void> audit(std::string event, std::string why, boost::json::object details = {},
                              std::optional<std::uint64_t> segment = std::nullopt);
  /// Charging policy (PROTOCOL.md 4.10): shows a STATUS on the slot and decides whether
  /// charging must stop or may resume (charge_wanted_).
  void apply_status(const proto::Status& st);
  void charging_answered(bool allow, const boost::system::result<proto::SetChargingOk>& reply);
  /// Sends a pending charging change outside the pull pipeline.
  asio::awaitable<error_code> settle_charging();
  /// A status or charging reply that arrived in the pull pipeline.
  error_code side_reply(const Pending& p, const proto::Frame& f);
  SessionEnd overheated();
  /// After the sync: polls the docked camera until it leaves, the link closes or it overheats.
  asio::awaitable<SessionEnd> watch_docked();
  asio::awaitable<error_code> list_all();
  asio::awaitable<PullEnd> pull(SegmentRow row);
  asio::awaitable<error_code> erase_confirmed();
  asio::awaitable<void> purge(const SegmentRow& row);
  /// Back-pressure: returns once the spool has room for the segment (reserved for it); until
  /// then the camera keeps it, confirmed segments are erased, and the slot shows why it waits.
  asio::awaitable<error_code> wait_for_spool_room(const SegmentRow& row);
  asio::awaitable<void> quarantine(const SegmentRow& row, std::string reason);
  SessionEnd end_with(const error_code& ec, std::string_view during);
  void note_progress(std::uint64_t bytes);

  Dock& dock_;
  unsigned slot_;
  usb::CameraLink& link_;
  SlotStatus& status_;
  std::string tag_;           ///< "slot 2 BC-0001": the context every log line starts with
  std::string serial_;
  proto::FrameParser parser_;
  Bytes inbuf_;
  std::uint32_t next_id_ = 1;
  std::uint32_t max_read_ = proto::kMaxReadLength;
  std::size_t reads_in_flight_ = 1;  ///< ours, capped by what the camera says it queues
  std::set<std::uint64_t> listed_;     ///< on the camera and ours to pull/erase
  std::set<std::uint64_t> on_camera_;  ///< everything the camera listed, conflicts included
  bool attention_ = false;
  Clock::time_point window_start_ = Clock::now();
  std::uint64_t window_bytes_ = 0;
  error_code link_error_;      ///< why the link failed, when a pull ends with link_failed
  std::function<void(SessionEnd)> synced_;
  // Charging (PROTOCOL.md 4.10); every docking starts with charging allowed.
  Clock::time_point next_status_ = Clock::now() + dock_.cfg_.status_interval;
  bool charge_target_ = true;          ///< what the dock last decided (sent or about to be)
  std::optional<bool> charge_wanted_;  ///< a SET_CHARGING to send
  Clock::time_point stopped_hot_at_{};
  bool overheated_ = false;            ///< too hot and still charging: the port must go dark
  std::int64_t clock_offset_ms_ = 0;   ///< camera clock minus dock clock at the last status
  std::optional<proto::crypto::PublicKey> camera_key_;  ///< from its certificate, once authenticated
  std::string error_message_;          ///< the text of the last ERROR reply
};

asio::awaitable<error_code> Session::send(MsgType type, const Bytes& payload, std::uint32_t& id) {
  id = next_id_++;
  auto frame = proto::encode_frame(type, id, payload);
  if (!frame) co_return frame.error();
  asio::steady_timer deadline(co_await asio::this_coro::executor, dock_.cfg_.request_timeout);
  auto r = co_await (link_.write(*frame) || deadline.async_wait(asio::use_awaitable));
  if (r.index() == 1) co_return usb::link_errc::timed_out;
  co_return std::get<0>(r);
}

asio::awaitable<boost::system::result<proto::Frame>> Session::receive() {
  // One deadline for the whole frame: a camera trickling a byte at a time cannot hold a slot.
  asio::steady_timer deadline(co_await asio::this_coro::executor, dock_.cfg_.request_timeout);
  for (;;) {
    if (auto f = parser_.next()) co_return std::move(*f);
    if (parser_.error()) co_return parser_.error();
    inbuf_.clear();
    auto r = co_await (link_.read(inbuf_) || deadline.async_wait(asio::use_awaitable));
    if (r.index() == 1) co_return usb::link_errc::timed_out;
    if (auto ec = std::get<0>(r)) co_return ec;
    if (auto ec = parser_.feed(inbuf_)) co_return ec;
  }
}

asio::awaitable<boost::system::result<proto::Frame>> Session::call(MsgType type, const Bytes& payload, MsgType expect) {
  error_message_.clear();  // the text of this call's ERROR, never an earlier one's
  std::uint32_t id = 0;
  if (auto ec = co_await send(type, payload, id)) co_return ec;
  auto f = co_await receive();
  if (!f) co_return f.error();
  if (f->header.request_id != id) co_return proto::errc::bad_request;
  if (f->header.type == MsgType::error) {
    auto e = proto::decode_error(f->payload);
    if (!e) co_return e.error();
    error_message_ = e->message;
    co_return proto::make_error_code(e->code);
  }
  if (f->header.type != expect) co_return proto::errc::malformed_frame;
  co_return f;
}

asio::awaitable<error_code> Session::handshake() {
  proto::Hello hello;
  hello.min_version = proto::kMinProtocolVersion;
  hello.host_id = dock_.cfg_.dock_id;
  auto f = co_await call(MsgType::hello, proto::encode(hello), MsgType::hello_ok);
  if (!f) co_return f.error();
  auto ok = proto::decode_hello_ok(f->payload);
  if (!ok) co_return ok.error();
  if (!dock_.begin_session(ok->serial, slot_)) {
    log(Level::error, tag_, ": camera ", ok->serial, " is already being served on slot ", dock_.active_serials_[ok->serial]);
    co_return proto::errc::busy;
  }
  serial_ = ok->serial;
  max_read_ = ok->max_read;
  if (ok->version < proto::kMinProtocolVersion || ok->version > proto::kProtocolVersion) co_return proto::errc::unsupported_version;
  reads_in_flight_ = std::min<std::size_t>(dock_.cfg_.reads_in_flight, ok->max_inflight);
  tag_ = cat("slot ", slot_, " ", serial_);
  status_.serial = ok->serial;
  status_.firmware = ok->firmware;
  co_await dock_.camera_seen(serial_, ok->model, ok->firmware);
  log(Level::info, tag_, ": camera ", ok->model, " firmware ", ok->firmware, " speaks protocol ", ok->version);
  boost::json::object d;
  d["model"] = ok->model;
  d["firmware"] = ok->firmware;
  d["protocol"] = ok->version;
  d["where"] = link_.describe();
  co_await audit("docking", "camera docked", std::move(d));
  co_return error_code{};
}

asio::awaitable<error_code> Session::authenticate(std::string& refused) {
  const auto identity = dock_.cfg_.identity;  // a reload may replace it while this docking runs
  const auto& me = *identity;
  const auto started = Clock::now();
  proto::AuthBegin begin;
  const auto nonce = proto::crypto::random_bytes(proto::kNonceSize);
  std::copy(nonce.begin(), nonce.end(), begin.dock_nonce.begin());
  begin.dock_cert = me.cert;
  auto f = co_await call(MsgType::auth_begin, proto::encode(begin), MsgType::auth_begin_ok);
  if (!f) {
    if (f.error().category() != proto::proto_category()) co_return f.error();
    refused = cat("the camera refused this dock (", f.error().message(), error_message_.empty() ? "" : ": ", error_message_, ")");
    co_return error_code{};
  }
  auto answer = proto::decode_auth_begin_ok(f->payload);
  if (!answer) {
    refused = cat("malformed authentication answer (", answer.error().message(), ")");
    co_return error_code{};
  }
  // Who it claims to be (HELLO) must be who the fleet CA says this key belongs to.
  const auto verdict = me.fleet.check(answer->camera_cert, "camera", serial_);
  if (const auto* why = std::get_if<std::string>(&verdict)) {
    refused = answer->camera_cert.empty() ? std::string("camera is not enrolled in this fleet (no certificate)")
                                          : cat("camera certificate: ", *why);
    co_return error_code{};
  }
  const auto& cert = std::get<proto::crypto::CertInfo>(verdict);
  const auto transcript = proto::auth_transcript(proto::AuthRole::camera, begin.dock_nonce, answer->camera_nonce, me.cert,
                                                 answer->camera_cert, serial_);
  if (!cert.key.verify(transcript, answer->signature)) {
    refused = "the camera's signature does not cover this docking's challenge (replayed or forged)";
    co_return error_code{};
  }
  proto::AuthFinish finish;
  finish.signature = me.key.sign(proto::auth_transcript(proto::AuthRole::dock, begin.dock_nonce, answer->camera_nonce, me.cert,
                                                        answer->camera_cert, serial_));
  auto g = co_await call(MsgType::auth_finish, proto::encode(finish), MsgType::auth_finish_ok);
  if (!g) {
    if (g.error().category() != proto::proto_category()) co_return g.error();
    refused = cat("the camera refused this dock (", g.error().message(), error_message_.empty() ? "" : ": ", error_message_, ")");
    co_return error_code{};
  }
  camera_key_ = cert.key;
  const std::chrono::duration<double, std::milli> took = Clock::now() - started;
  status_.officer = cert.officer;
  co_await dock_.camera_authenticated(serial_, answer->camera_cert, cert.officer);
  log(Level::info, tag_, ": authenticated (officer ", cert.officer, ") in ", took.count(), " ms");
  boost::json::object d;
  d["result"] = "ok";
  d["officer"] = cert.officer;
  d["camera_certificate_sha256"] = proto::to_hex(proto::Sha256::of(answer->camera_cert));
  d["took_ms"] = took.count();
  co_await audit("authentication", "mutual authentication at docking", std::move(d));
  co_return error_code{};
}

asio::awaitable<SessionEnd> Session::charge_only(std::string why) {
  log(Level::error, tag_, ": authentication failed: ", why, "; charge-only: nothing is read or erased");
  status_.phase = SlotPhase::attention;
  status_.detail = "charge-only: " + why;
  boost::json::object d;
  d["result"] = "failed";
  d["mode"] = "charge-only";
  co_await audit("authentication", "authentication failed: " + why, std::move(d));
  if (!synced_) co_return SessionEnd::charge_only;
  // The port stays powered so the camera charges; the dock watches its battery and temperature.
  synced_(SessionEnd::charge_only);
  const auto end = co_await watch_docked();
  co_return end == SessionEnd::unplugged ? end : SessionEnd::charge_only;
}

asio::awaitable<void> Session::check_chain(const std::vector<proto::Manifest>& listed) {
  std::map<std::uint64_t, KnownSegment> known;
  for (const auto& row : co_await dock_.camera_segments(serial_)) {
    if (row.state == SegState::listed && std::any_of(listed.begin(), listed.end(), [&](const auto& m) { return m.seq == row.seq; }))
      continue;  // listed for the first time just now: it is checked as listed
    KnownSegment k;
    k.manifest_hash = proto::manifest_hash(row.manifest);
    k.sha256 = row.manifest.sha256;
    k.erased = row.state == SegState::erased || row.state == SegState::purged;
    known[row.seq] = k;
  }
  const auto pruned = co_await dock_.pruned_through(serial_);
  for (const auto& f : dock::check_chain(listed, known, pruned)) {
    log(Level::error, tag_, " seg ", f.seq, ": hash chain broken: ", f.what);
    status_.detail = cat("chain broken: ", f.what);
    attention_ = true;
    co_await audit("chain broken", f.what, {}, f.seq);
    // The segment whose link does not hold is quarantined (DESIGN section 3): not pulled and
    // never erased from the camera without an admin's decision, so the evidence of the break
    // stays where it was recorded. Segments from earlier dockings keep their state.
    if (listed_.erase(f.seq) > 0) {
      SegmentRow row;
      row.serial = serial_;
      row.seq = f.seq;
      co_await quarantine(row, cat("hash chain broken: ", f.what));
    }
  }
}

asio::awaitable<error_code> Session::refresh_status() {
  auto f = co_await call(MsgType::status_get, proto::encode(proto::StatusGet{}), MsgType::status);
  if (!f) co_return f.error();
  auto st = proto::decode_status(f->payload);
  if (!st) co_return st.error();
  clock_offset_ms_ = st->clock_utc_ms - utc_now_ms();
  apply_status(*st);
  co_return co_await settle_charging();
}

asio::awaitable<void> Session::audit(std::string event, std::string why, boost::json::object details, std::optional<std::uint64_t> segment) {
  AuditEvent e;
  e.event = std::move(event);
  e.slot = slot_;
  e.camera = serial_;
  e.segment = segment;
  e.why = std::move(why);
  e.details = std::move(details);
  co_await dock_.audit(std::move(e));
}

asio::awaitable<error_code> Session::set_clock() {
  const auto drift = clock_offset_ms_;
  auto f = co_await call(MsgType::set_time, proto::encode(proto::SetTime{utc_now_ms()}), MsgType::set_time_ok);
  if (!f) co_return f.error();
  auto ok = proto::decode_set_time_ok(f->payload);
  if (!ok) co_return ok.error();
  boost::json::object d;
  d["camera_minus_dock_ms"] = drift;
  d["adjusted_by_ms"] = ok->adjusted_by_ms;
  if (std::llabs(drift) > 2000) log(Level::warning, tag_, ": camera clock was off by ", drift, " ms; set from the dock's clock");
  co_await audit("clock", "camera clock set from the dock's clock at docking", std::move(d));
  co_return error_code{};
}

void Session::apply_status(const proto::Status& st) {
  status_.battery_pct = st.battery_pct;
  status_.charging = st.charging;
  status_.temperature_c = st.temperature_dc / 10.0;
  next_status_ = Clock::now() + dock_.cfg_.status_interval;
  const auto& cfg = dock_.cfg_;
  // Decided against what was last asked (a request may still be on its way), so one
  // over-temperature gives one stop, whatever else is in flight.
  if (charge_target_ && st.temperature_dc >= cfg.charge_stop_dc) {
    log(Level::error, tag_, ": over-temperature ", celsius(st.temperature_dc), " C (limit ", celsius(cfg.charge_stop_dc), " C); stopping charging");
    status_.alert = cat("over-temperature ", celsius(st.temperature_dc), " C: charging stopped");
    stopped_hot_at_ = Clock::now();
    charge_wanted_ = charge_target_ = false;
  } else if (!charge_target_ && st.temperature_dc <= cfg.charge_resume_dc && Clock::now() - stopped_hot_at_ >= cfg.charge_cooldown) {
    log(Level::notice, tag_, ": cooled to ", celsius(st.temperature_dc), " C; charging resumes");
    charge_wanted_ = charge_target_ = true;
  }
}

void Session::charging_answered(bool allow, const boost::system::result<proto::SetChargingOk>& reply) {
  status_.charge_stopped_hot = !allow;
  if (allow) {
    if (reply) status_.charging = reply->charging;
    status_.alert.clear();
    return;
  }
  if (reply && !reply->charging) {
    status_.charging = false;
    return;
  }
  // The camera cannot be made safe over the protocol: the dock cuts the port's power.
  log(Level::error, tag_, ": camera keeps charging at over-temperature (",
      reply ? std::string("it says it still charges") : "it refused: " + reply.error().message(), "); its port must be switched off");
  status_.alert = "over-temperature and the camera does not stop charging: port power off";
  overheated_ = true;
}

asio::awaitable<error_code> Session::settle_charging() {
  if (!charge_wanted_) co_return error_code{};
  const bool allow = *charge_wanted_;
  charge_wanted_.reset();
  auto f = co_await call(MsgType::set_charging, proto::encode(proto::SetCharging{allow}), MsgType::set_charging_ok);
  if (!f && f.error().category() != proto::proto_category()) co_return f.error();  // the link failed
  if (f) charging_answered(allow, proto::decode_set_charging_ok(f->payload));
  else charging_answered(allow, f.error());
  co_return error_code{};
}

error_code Session::side_reply(const Pending& p, const proto::Frame& f) {
  if (p.type == MsgType::set_charging) {
    if (f.header.type == MsgType::set_charging_ok) charging_answered(p.allow, proto::decode_set_charging_ok(f.payload));
    else if (f.header.type == MsgType::error) charging_answered(p.allow, proto::errc::bad_request);
    else return proto::errc::malformed_frame;
    return {};
  }
  if (f.header.type == MsgType::error) {
    auto e = proto::decode_error(f.payload);
    return e ? proto::make_error_code(e->code) : e.error();
  }
  if (f.header.type != MsgType::status) return proto::errc::malformed_frame;
  auto st = proto::decode_status(f.payload);
  if (!st) return st.error();
  apply_status(*st);
  return {};
}

SessionEnd Session::overheated() {
  status_.phase = SlotPhase::attention;
  status_.detail = "over-temperature: charging could not be stopped; footage stays on the camera";
  return SessionEnd::overheated;
}

asio::awaitable<error_code> Session::list_all() {
  proto::List req;
  std::vector<proto::Manifest> listed;
  for (std::size_t pages = 0;; ++pages) {
    // A camera holds at most a few thousand segments; one that pages on and on is refused.
    if (pages > kMaxListPages) co_return proto::errc::too_large;
    auto f = co_await call(MsgType::list, proto::encode(req), MsgType::list_ok);
    if (!f) co_return f.error();
    auto ok = proto::decode_list_ok(f->payload);
    if (!ok) co_return ok.error();
    for (auto& m : ok->manifests) {
      if (m.camera_serial != serial_ || m.seq < req.cursor) {
        log(Level::error, tag_, ": camera listed segment ", m.seq, " of camera '", m.camera_serial, "'; ignored");
        attention_ = true;
        continue;
      }
      const auto seq = m.seq;
      on_camera_.insert(seq);
      // Signed by this camera's key (DESIGN 4): anything else is not its footage as recorded.
      const bool signed_ok = proto::manifest_signature_valid(m, *camera_key_);
      listed.push_back(m);
      const auto result = co_await dock_.add_listed(std::move(m), clock_offset_ms_);
      if (result == ListedResult::conflict) {
        // Same sequence number, different manifest: never overwrite what we already hold.
        log(Level::error, tag_, " seg ", seq, ": camera lists a different manifest than before; not pulled, kept for review");
        status_.detail = cat("segment ", seq, " changed on the camera");
        attention_ = true;
        co_await audit("manifest conflict", "the camera lists a different manifest for a known segment; not pulled, kept for review", {}, seq);
        continue;
      }
      if (!signed_ok) {
        SegmentRow row;
        row.serial = serial_;
        row.seq = seq;
        co_await quarantine(row, "manifest signature does not verify with the camera's certificate");
        continue;
      }
      listed_.insert(seq);
    }
    if (!ok->more) break;
    if (ok->next_cursor <= req.cursor) co_return proto::errc::bad_request;  // a cursor that does not advance
    req.cursor = ok->next_cursor;
  }
  co_await check_chain(listed);
  co_return error_code{};
}

void Session::note_progress(std::uint64_t bytes) {
  status_.bytes_done += bytes;
  window_bytes_ += bytes;
  const auto now = Clock::now();
  const std::chrono::duration<double> dt = now - window_start_;
  if (dt.count() >= 0.5) {
    status_.mbps = static_cast<double>(window_bytes_) / dt.count() / 1e6;
    window_start_ = now;
    window_bytes_ = 0;
  }
}

asio::awaitable<void> Session::quarantine(const SegmentRow& row, std::string reason) {
  log(Level::error, tag_, " seg ", row.seq, ": quarantined: ", reason, "; kept on the camera and in the spool");
  SegUpdate u;
  u.reason = reason;
  co_await dock_.transition(row.serial, row.seq, states(SegState::listed, SegState::pulling, SegState::spooled), SegState::quarantined, u, reason);
  ++dock_.totals_.segments_quarantined;
  status_.detail = cat("segment ", row.seq, " quarantined: ", reason);
  attention_ = true;
}

asio::awaitable<PullEnd> Session::pull(SegmentRow row) {
  const auto& m = row.manifest;
  if (m.chunk_size > max_read_) {
    // The footage is not suspect, the camera's configuration is: leave it on the camera.
    log(Level::error, tag_, " seg ", row.seq, ": chunk size ", m.chunk_size, " is above the camera's own read limit ", max_read_,
        "; not pulled");
    status_.detail = cat("segment ", row.seq, ": camera reports chunks larger than it can serve");
    attention_ = true;
    co_return PullEnd::skipped;
  }
  const auto path = dock_.spool_path(row.serial, row.seq);
  auto whole = std::make_unique<PullHash>();
  auto spool = co_await async_open_spool(dock_.io_pool_, path, row.pulled - row.pulled % m.chunk_size, *whole);
  const auto keep = spool.kept;
  Fd fd = std::move(spool.fd);
  const auto serial = row.serial;
  const auto seq = row.seq;
  if (row.state == SegState::listed || keep != row.pulled) {
    SegUpdate u;
    u.pulled = keep;
    co_await dock_.transition(serial, seq, states(SegState::listed, SegState::pulling), SegState::pulling, u, "pull started");
  }
  if (keep > 0) log(Level::info, tag_, " seg ", seq, ": resuming at byte ", keep, " of ", m.size);

  const std::uint64_t chunks = m.chunk_count();
  std::uint64_t next_chunk = keep / m.chunk_size;   // first chunk not yet written
  std::uint64_t next_request = next_chunk;
  std::uint64_t durable = keep;
  std::deque<Pending> in_flight;
  std::map<std::uint64_t, unsigned> failures;
  bool draining = false;  // a chunk failed: discard replies in flight, then ask again from it
  const auto started = Clock::now();
  const int raw_fd = fd.get();

  PullEnd end = PullEnd::spooled;
  std::string quarantine_reason;
  while (next_chunk < chunks) {
    while (!draining && in_flight.size() < reads_in_flight_ && next_request < chunks) {
      // Battery and temperature are watched during long pulls too: a status poll or a charging
      // change travels between READs (replies keep their order, PROTOCOL.md 4.1).
      Pending p;
      proto::Bytes payload;
      if (charge_wanted_) {
        p.type = MsgType::set_charging;
        p.allow = *charge_wanted_;
        charge_wanted_.reset();
        payload = proto::encode(proto::SetCharging{p.allow});
      } else if (Clock::now() >= next_status_ &&
                 std::none_of(in_flight.begin(), in_flight.end(), [](const Pending& q) { return q.type == MsgType::status_get; })) {
        p.type = MsgType::status_get;
        next_status_ = Clock::now() + dock_.cfg_.status_interval;
      } else {
        p.chunk = next_request;
        payload = proto::encode(proto::Read{seq, next_request * m.chunk_size, m.chunk_length(next_request)});
      }
      if (auto ec = co_await send(p.type, payload, p.id)) {
        link_error_ = ec;
        end = PullEnd::link_failed;
        break;
      }
      if (p.type == MsgType::read) ++next_request;
      in_flight.push_back(p);
    }
    if (end != PullEnd::spooled) break;
    auto f = co_await receive();
    if (!f) {
      link_error_ = f.error();
      end = PullEnd::link_failed;
      break;
    }
    if (in_flight.empty() || f->header.request_id != in_flight.front().id) {
      link_error_ = proto::errc::bad_request;
      end = PullEnd::link_failed;
      break;
    }
    const auto pending = in_flight.front();
    in_flight.pop_front();
    if (pending.type != MsgType::read) {
      if (auto ec = side_reply(pending, *f)) {
        link_error_ = ec;
        end = PullEnd::link_failed;
        break;
      }
      if (overheated_) {
        end = PullEnd::link_failed;  // stop here: what arrived is kept, the port goes dark
        break;
      }
      continue;
    }
    const auto chunk = pending.chunk;
    if (draining) {
      dock_.totals_.reread_bytes += m.chunk_length(chunk);
      if (in_flight.empty()) {
        draining = false;
        next_request = next_chunk;
      }
      continue;
    }
    if (f->header.type == MsgType::error) {
      auto e = proto::decode_error(f->payload);
      const auto code = e ? e->code : proto::errc::malformed_frame;
      if (code == proto::errc::not_found) {
        log(Level::error, tag_, " seg ", seq, ": camera no longer has this segment, which was never stored");
        status_.detail = cat("segment ", seq, " vanished from the camera");
        attention_ = true;
        end = PullEnd::skipped;
      } else {
        link_error_ = proto::make_error_code(code);
        end = PullEnd::link_failed;
      }
      break;
    }
    auto data = f->header.type == MsgType::data ? proto::decode_data(f->payload) : boost::system::result<proto::Data>(proto::errc::malformed_frame);
    if (!data || data->seq != seq || data->offset != chunk * m.chunk_size || data->bytes.size() != m.chunk_length(chunk)) {
      link_error_ = data ? proto::make_error_code(proto::errc::bad_request) : data.error();
      end = PullEnd::link_failed;
      break;
    }
    const auto bytes = data->bytes;
    const auto& expect = m.chunk_sha256[chunk];
    const auto offset = chunk * m.chunk_size;
    bool good = false;
    try {
      good = co_await async_verify_and_spool(dock_.io_pool_, raw_fd, bytes, offset, expect, *whole);
    } catch (const boost::system::system_error& e) {
      log(Level::error, tag_, " seg ", seq, ": ", e.what(), "; pulling stops, the camera keeps the segment");
      status_.detail = cat("spool write failed: ", e.code().message());
      attention_ = true;
      link_error_ = e.code();
      end = PullEnd::link_failed;
      break;
    }
    dock_.totals_.pulled_bytes += bytes.size();
    if (!good) {
      const auto n = ++failures[chunk];
      const auto what = cat("chunk ", chunk, " failed its SHA-256 (", n, " of ", dock_.cfg_.chunk_retries + 1, ")");
      if (n > dock_.cfg_.chunk_retries) {
        log(Level::warning, tag_, " seg ", seq, ": ", what);
        quarantine_reason = cat("chunk ", chunk, " failed its SHA-256 ", n, " times");
        end = PullEnd::quarantined;
        break;
      }
      // On record before the log says it: a damaged read is an event in the segment's custody.
      co_await audit("chunk failed", what + "; read again", {}, seq);
      log(Level::warning, tag_, " seg ", seq, ": ", what);
      dock_.totals_.reread_bytes += bytes.size();
      draining = !in_flight.empty();
      next_request = next_chunk;
      continue;
    }
    ++next_chunk;
    note_progress(bytes.size());
    const auto written = next_chunk * m.chunk_size;
    if (written - durable >= dock_.cfg_.sync_every_bytes && next_chunk < chunks) {
      co_await async_sync(dock_.io_pool_, raw_fd);
      SegUpdate u;
      u.pulled = written;
      co_await dock_.transition(serial, seq, states(SegState::pulling), SegState::pulling, u);
      durable = written;
    }
  }

  if (end != PullEnd::link_failed) {
    // Replies still queued for this segment must not be taken for the next one's.
    for (; !in_flight.empty(); in_flight.pop_front()) {
      auto f = co_await receive();
      if (!f) {
        link_error_ = f.error();
        end = PullEnd::link_failed;
        break;
      }
      if (in_flight.front().type != MsgType::read) (void)side_reply(in_flight.front(), *f);
    }
  }
  if (end == PullEnd::link_failed || end == PullEnd::skipped) {
    // Keep what arrived intact: sync and record it, so the next docking resumes from here.
    const auto written = std::min<std::uint64_t>(next_chunk * m.chunk_size, m.size);
    if (written > durable && end == PullEnd::link_failed) {
      co_await async_sync(dock_.io_pool_, raw_fd);
      SegUpdate u;
      u.pulled = written;
      co_await dock_.transition(serial, seq, states(SegState::pulling), SegState::pulling, u);
      durable = written;
    }
    if (end == PullEnd::link_failed) log(Level::info, tag_, " seg ", seq, ": pull stopped; ", durable, " of ", m.size, " bytes kept for the next docking");
    co_return end;
  }
  if (end == PullEnd::quarantined) {
    co_await quarantine(row, quarantine_reason);
    co_return end;
  }
  const auto digest = whole->sha256.finish();
  if (!proto::digest_equal(digest, m.sha256)) {
    if (keep > 0) {
      // Most likely the spooled prefix was damaged on disk while we were away: pull it whole.
      log(Level::warning, tag_, " seg ", seq, ": whole-segment SHA-256 fails after resuming; pulling it again from the start");
      SegUpdate u;
      u.pulled = 0;
      co_await dock_.transition(serial, seq, states(SegState::pulling), SegState::pulling, u);
      fd = Fd{};
      row.pulled = 0;
      row.state = SegState::pulling;
      co_return co_await pull(std::move(row));
    }
    co_await quarantine(row, "chunks verify but the whole-segment SHA-256 does not (inconsistent manifest)");
    co_return PullEnd::quarantined;
  }
  co_await async_sync(dock_.io_pool_, raw_fd);
  SegUpdate done;
  done.pulled = m.size;
  done.spool_sum = whole->sum.hex();
  co_await dock_.transition(serial, seq, states(SegState::pulling), SegState::spooled, done, "pulled, verified and spooled");
  const std::chrono::duration<double> took = Clock::now() - started;
  log(Level::info, tag_, " seg ", seq, ": spooled ", mib(m.size - keep), " in ", took.count(), " s");
  dock_.spooled_.notify();
  co_return PullEnd::spooled;
}

asio::awaitable<error_code> Session::wait_for_spool_room(const SegmentRow& row) {
  if (row.state != SegState::listed) co_return error_code{};  // a pull under way holds its room already
  bool paused = false;
  for (;;) {
    const auto room = co_await dock_.reserve_spool(row.serial, row.seq, row.manifest.size);
    if (room.ok) break;
    if (!paused) {
      paused = true;
      log(Level::notice, tag_, " seg ", row.seq, ": ", room.why, "; pulling pauses until uploads drain (the camera keeps its footage)");
      status_.phase = SlotPhase::waiting_upload;
      status_.detail = cat("waiting for uplink: ", room.why);
      status_.mbps = 0;
    }
    if (auto ec = co_await erase_confirmed()) co_return ec;
    asio::steady_timer tick(co_await asio::this_coro::executor, std::chrono::seconds(2));
    co_await (dock_.stored_.wait() || tick.async_wait(asio::use_awaitable));
    if (auto ec = co_await refresh_status()) co_return ec;
    if (overheated_) co_return error_code{};
  }
  if (paused) {
    log(Level::notice, tag_, " seg ", row.seq, ": spool has room again; pulling resumes");
    status_.phase = SlotPhase::syncing;
    status_.detail.clear();
  }
  co_return error_code{};
}

asio::awaitable<void> Session::purge(const SegmentRow& row) {
  co_await async_remove(dock_.io_pool_, dock_.spool_path(row.serial, row.seq));
  co_await dock_.transition(row.serial, row.seq, states(SegState::erased), SegState::purged, SegUpdate{}, "spool purged");
}

asio::awaitable<error_code> Session::erase_confirmed() {
  auto rows = co_await dock_.live_segments(serial_);
  for (const auto& row : rows) {
    if (row.state == SegState::erased) {
      co_await purge(row);
      continue;
    }
    if (row.state != SegState::stored) continue;
    const auto seq = row.seq;
    if (!on_camera_.contains(seq)) {
      // Stored, and the camera no longer has it: it erased on our request before a crash.
      co_await dock_.transition(serial_, seq, states(SegState::stored), SegState::erased, SegUpdate{}, "camera no longer lists it");
      co_await purge(row);
      continue;
    }
    const auto receipt = proto::digest_from_hex(row.receipt);
    if (!receipt || !proto::digest_equal(*receipt, row.manifest.sha256)) {
      log(Level::error, tag_, " seg ", seq, ": storage receipt does not match the manifest; not erasing");
      attention_ = true;
      continue;
    }
    // The custody receipt (PROTOCOL.md 9): signed by this dock when storage confirmed the
    // segment and stored beside it; verified by the camera. (Made now only for a segment an
    // older dock stored.)
    const auto signed_receipt =
        row.custody_receipt.empty() ? dock_.custody_receipt(row.manifest, row.object_key, *receipt) : row.custody_receipt;
    proto::Erase req{seq, signed_receipt};
    auto f = co_await call(MsgType::erase, proto::encode(req), MsgType::erase_ok);
    if (!f && f.error() != proto::errc::not_found) {
      if (f.error().category() == proto::proto_category()) {
        log(Level::error, tag_, " seg ", seq, ": camera refused erase: ", f.error().message(), " (", error_message_, ")");
        attention_ = true;
        co_await audit("erase refused", cat("the camera refused to erase: ", f.error().message(), " (", error_message_, ")"), {}, seq);
        continue;
      }
      co_return f.error();
    }
    {
      boost::json::object d;
      d["receipt_sha256"] = proto::to_hex(proto::Sha256::of(signed_receipt));
      d["stored_at"] = row.object_key;
      co_await audit("custody receipt", "signed custody receipt presented for erase", std::move(d), seq);
    }
    co_await dock_.transition(serial_, seq, states(SegState::stored), SegState::erased, SegUpdate{}, "erased by camera; storage confirmed sha256 " + row.receipt);
    ++dock_.totals_.segments_erased;
    listed_.erase(seq);
    log(Level::info, tag_, " seg ", seq, ": erased on camera (storage confirmed)");
    co_await purge(row);
  }
  co_return error_code{};
}

SessionEnd Session::end_with(const error_code& ec, std::string_view during) {
  if (ec == usb::link_errc::closed) {
    log(Level::notice, tag_, ": session stopped during ", during, " (dock shutting down); all state is durable");
    status_.detail = "dock stopped";
    return SessionEnd::unplugged;
  }
  if (ec == usb::link_errc::disconnected) {
    log(Level::notice, tag_, ": camera undocked during ", during, "; what is not stored stays on the camera");
    status_.phase = SlotPhase::empty;
    status_.detail = cat("undocked during ", during);
    return SessionEnd::unplugged;
  }
  log(Level::error, tag_, ": ", during, " failed: ", ec.message());
  status_.phase = SlotPhase::attention;
  status_.detail = cat(during, ": ", ec.message());
  return ec == usb::link_errc::timed_out ? SessionEnd::unresponsive : SessionEnd::failed;
}

asio::awaitable<SessionEnd> Session::run() {
  status_ = SlotStatus{};
  status_.index = slot_;
  status_.where = link_.describe();
  status_.phase = SlotPhase::authenticating;
  if (auto ec = co_await handshake()) {
    if (ec == proto::errc::unsupported_version)
      co_return co_await charge_only("the camera does not speak protocol 2 (mutual authentication)");
    co_return end_with(ec, "hello");
  }
  {
    std::string refused;
    if (auto ec = co_await authenticate(refused)) co_return end_with(ec, "authentication");
    if (!refused.empty()) co_return co_await charge_only(std::move(refused));
  }
  if (auto revoked = co_await dock_.camera_revoked(serial_)) {
    std::string why = "revoked at this dock by " + *revoked;
    co_return co_await charge_only(std::move(why));
  }
  if (auto ec = co_await refresh_status()) co_return end_with(ec, "status");
  if (overheated_) co_return overheated();
  if (auto ec = co_await set_clock()) co_return end_with(ec, "clock");
  if (auto ec = co_await list_all()) co_return end_with(ec, "listing");

  auto rows = co_await dock_.live_segments(serial_);
  std::vector<SegmentRow> to_pull;
  for (auto& row : rows) {
    const bool on_camera = on_camera_.contains(row.seq);
    if ((row.state == SegState::listed || row.state == SegState::pulling) && on_camera) {
      status_.bytes_total += row.manifest.size - row.pulled;
      to_pull.push_back(std::move(row));
    } else if (!on_camera && (row.state == SegState::listed || row.state == SegState::pulling || row.state == SegState::spooled)) {
      if (row.state != SegState::spooled) {
        log(Level::error, tag_, " seg ", row.seq, ": the camera no longer lists this segment and the dock never stored it");
        status_.detail = cat("segment ", row.seq, " missing on the camera");
        attention_ = true;
      }
    }
  }
  log(Level::info, tag_, ": ", listed_.size(), " segments on camera, ", to_pull.size(), " to pull (", mib(status_.bytes_total), ")");
  status_.phase = SlotPhase::syncing;
  for (auto& row : to_pull) {
    if (auto ec = co_await wait_for_spool_room(row)) co_return end_with(ec, "waiting for spool room");
    if (row.state == SegState::listed) row.state = SegState::pulling;  // the reservation moved it
    if (overheated_) co_return overheated();
    const auto end = co_await pull(std::move(row));
    if (overheated_) co_return overheated();
    if (end == PullEnd::link_failed) co_return end_with(link_error_, "pull");
    if (auto ec = co_await settle_charging()) co_return end_with(ec, "charging");
    if (overheated_) co_return overheated();
    if (auto ec = co_await erase_confirmed()) co_return end_with(ec, "erase");
  }
  status_.mbps = 0;

  // Wait for storage to confirm the rest, erasing as confirmations arrive; keep the camera
  // talking (status) so an undock or a hang is noticed.
  for (;;) {
    if (auto ec = co_await erase_confirmed()) co_return end_with(ec, "erase");
    auto now = co_await dock_.live_segments(serial_);
    std::size_t waiting = 0;
    std::size_t left_on_camera = 0;
    for (const auto& r : now) {
      if (!on_camera_.contains(r.seq)) continue;
      waiting += r.state == SegState::spooled || r.state == SegState::stored ? 1 : 0;
      // A quarantined segment an admin chose to keep is meant to stay: not a reason for attention.
      left_on_camera += r.state != SegState::erased && !r.kept ? 1 : 0;
    }
    if (waiting == 0) {
      // Green only when the camera holds nothing of ours any more; anything else (quarantined,
      // sent back to be pulled again, skipped) is for an admin to look at.
      if (left_on_camera > 0 && !attention_) {
        attention_ = true;
        status_.detail = cat(left_on_camera, " segment(s) still on the camera");
      }
      break;
    }
    status_.phase = SlotPhase::waiting_upload;
    asio::steady_timer tick(co_await asio::this_coro::executor, std::chrono::seconds(2));
    co_await (dock_.stored_.wait() || tick.async_wait(asio::use_awaitable));
    if (auto ec = co_await refresh_status()) co_return end_with(ec, "waiting for storage");
    if (overheated_) co_return overheated();
  }
  SessionEnd end = SessionEnd::done;
  if (attention_) {
    status_.phase = SlotPhase::attention;
    log(Level::warning, tag_, ": finished with attention: ", status_.detail);
    end = SessionEnd::attention;
  } else {
    status_.phase = SlotPhase::done;
    status_.detail = "all stored and erased: safe to undock";
    log(Level::notice, tag_, ": done, safe to undock");
  }
  if (!synced_) co_return end;
  synced_(end);
  co_return co_await watch_docked();
}

asio::awaitable<SessionEnd> Session::watch_docked() {
  // The camera only ever answers, so while it sits idle a read completes only when the link
  // fails (undocked, closed): it wakes us at once instead of at the next poll.
  for (;;) {
    asio::steady_timer tick(co_await asio::this_coro::executor, dock_.cfg_.status_interval);
    Bytes unsolicited;
    auto r = co_await (link_.read(unsolicited) || tick.async_wait(asio::use_awaitable));
    if (r.index() == 0) {
      const auto ec = std::get<0>(r);
      if (ec == usb::link_errc::disconnected) {
        log(Level::info, tag_, ": undocked");
        status_ = SlotStatus{};
        status_.index = slot_;
        co_return SessionEnd::unplugged;
      }
      if (ec) co_return end_with(ec, "the after-sync watch");
      log(Level::error, tag_, ": camera sent ", unsolicited.size(), " bytes nobody asked for; session ends");
      co_return end_with(proto::errc::malformed_frame, "the after-sync watch");
    }
    if (auto ec = co_await refresh_status()) co_return end_with(ec, "the after-sync watch");
    if (overheated_) co_return overheated();
  }
}

asio::awaitable<SessionEnd> Session::run_guarded() {
  std::string error;
  try {
    const auto end = co_await run();
    if (!serial_.empty()) {
      dock_.end_session(serial_);
      boost::json::object d;
      d["end"] = end_name(end);
      // (Named, not a ?: temporary inside co_await: g++ 12 destroys those twice.)
      std::string why = status_.detail;
      if (why.empty()) why = std::string("camera ") + end_name(end);
      co_await audit("session end", std::move(why), std::move(d));
    }
    co_return end;
  } catch (const std::exception& e) {
    error = e.what();
  }
  if (!serial_.empty()) dock_.end_session(serial_);
  // A failing disk or database: stop this slot loudly, keep the others going.
  log(Level::error, tag_, ": session stopped: ", error, "; everything not stored stays on the camera");
  status_.phase = SlotPhase::attention;
  status_.detail = cat("dock fault: ", error);
  co_return SessionEnd::dock_fault;
}

asio::awaitable<SessionEnd> Dock::run_session(unsigned slot, usb::CameraLink& link, std::function<void(SessionEnd)> synced) {
  Session session(*this, slot, link, std::move(synced));
  co_return co_await session.run_guarded();
}

}  // namespace bodydock::dock
