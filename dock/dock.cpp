#include "dock/dock.hpp"

#include "dock/log.hpp"
#include "proto/sha256.hpp"

#include <boost/asio/co_spawn.hpp>
#include <boost/asio/experimental/awaitable_operators.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/asio/use_awaitable.hpp>

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

LedLook led_for(SlotPhase p) noexcept {
  switch (p) {
    case SlotPhase::empty: return {"off", "off"};
    case SlotPhase::authenticating: return {"white", "fast blink"};
    case SlotPhase::syncing: return {"blue", "slow blink"};
    case SlotPhase::waiting_upload: return {"amber", "slow blink"};
    case SlotPhase::done: return {"green", "solid"};
    case SlotPhase::attention: return {"red", "fast blink"};
  }
  return {"red", "fast blink"};
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
}

Dock::~Dock() {
  // Blocking jobs may still reference coroutine frames: let them finish before anything goes.
  io_pool_.join();
  db_pool_.join();
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

asio::awaitable<void> Dock::run_uploader() {
  using Clock = std::chrono::steady_clock;
  while (!stopping_) {
    std::vector<SegmentRow> rows;
    try {
      rows = co_await in_state(SegState::spooled);
    } catch (const std::exception& e) {
      log(Level::error, "upload queue: cannot read the state database: ", e.what(), "; retrying");
    }
    const auto now = Clock::now();
    auto wake = now + std::chrono::seconds(1);
    for (auto& row : rows) {
      if (uploading_.size() >= cfg_.upload_concurrency) break;
      const auto key = std::make_pair(row.serial, row.seq);
      if (uploading_.contains(key)) continue;
      if (auto it = retry_at_.find(key); it != retry_at_.end() && it->second > now) {
        wake = std::min(wake, it->second);
        continue;
      }
      uploading_.insert(key);
      asio::co_spawn(ioc_, store_one(std::move(row)), [](std::exception_ptr e) { log_if_failed("upload queue: store", e); });
    }
    asio::steady_timer timer(ioc_, wake);
    co_await (spooled_.wait() || timer.async_wait(asio::use_awaitable));
  }
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
    auto receipt = co_await sink_.store(spool_path(serial, seq), row.manifest, custody);
    if (receipt) {
      SegUpdate u;
      u.object_key = receipt->object_key;
      u.receipt = proto::to_hex(receipt->sha256);
      co_await transition(serial, seq, states(SegState::spooled), SegState::stored, u, "storage confirmed sha256 " + *u.receipt);
      totals_.stored_bytes += receipt->size;
      ++totals_.segments_stored;
      retry_at_.erase(key);
      log(Level::info, serial, " seg ", seq, ": stored as ", receipt->object_key);
      stored_.notify();
    } else if (receipt.error() == sink_errc::content_mismatch || receipt.error() == sink_errc::spool_unreadable) {
      // The spool copy is damaged or gone; the camera still holds the segment: pull it again.
      log(Level::error, serial, " seg ", seq, ": spool copy unusable (", receipt.error().message(), "); will pull again");
      SegUpdate u;
      u.pulled = 0;
      u.reason = receipt.error().message();
      co_await transition(serial, seq, states(SegState::spooled), SegState::pulling, u, "spool unusable: " + *u.reason);
    } else if (receipt.error() == sink_errc::object_conflict) {
      log(Level::error, serial, " seg ", seq, ": ", receipt.error().message(), "; quarantined, never overwritten");
      SegUpdate u;
      u.reason = receipt.error().message();
      co_await transition(serial, seq, states(SegState::spooled), SegState::quarantined, u, *u.reason);
      ++totals_.segments_quarantined;
    } else {
      // Exponential backoff with full jitter: retries from many docks never synchronise.
      const auto attempt = std::min<std::uint32_t>(row.attempts + 1, 16);
      const auto cap = std::min<std::int64_t>(cfg_.upload_retry_cap.count(), cfg_.upload_retry_base.count() << attempt);
      static thread_local std::mt19937_64 rng{std::random_device{}()};
      const auto delay = std::chrono::milliseconds(std::uniform_int_distribution<std::int64_t>(0, cap)(rng));
      retry_at_[key] = std::chrono::steady_clock::now() + delay;
      log(Level::warning, serial, " seg ", seq, ": store attempt ", attempt, " failed: ", receipt.error().message(), "; retry in ", delay.count(), " ms");
      SegUpdate u;
      u.reason = receipt.error().message();
      u.count_attempt = true;
      co_await transition(serial, seq, states(SegState::spooled), SegState::spooled, u);
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

}  // namespace bodydock::dock
