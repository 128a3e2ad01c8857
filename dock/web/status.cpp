#include "dock/web/status.hpp"

#include <boost/json/serialize.hpp>

#include <cmath>
#include <cstdio>

namespace bodydock::dock::web {

namespace json = boost::json;

void RateHistory::update(std::uint64_t pulled_total, std::uint64_t stored_total, std::int64_t unix_ms) {
  if (step_start_ms_ == 0) {
    step_start_ms_ = unix_ms;
    pulled_at_start_ = pulled_total;
    stored_at_start_ = stored_total;
    return;
  }
  if (unix_ms - step_start_ms_ < kStepMs) return;
  // Steps without a call (a stalled loop) share what moved meanwhile evenly.
  const auto steps = (unix_ms - step_start_ms_) / kStepMs;
  const double seconds = static_cast<double>(steps * kStepMs) / 1000.0;
  const double pulled = static_cast<double>(pulled_total - pulled_at_start_) / seconds / 1e6;
  const double stored = static_cast<double>(stored_total - stored_at_start_) / seconds / 1e6;
  for (std::int64_t i = 1; i <= steps; ++i) {
    samples_.push_back({step_start_ms_ + i * kStepMs, pulled, stored});
    if (samples_.size() > kSamples) samples_.erase(samples_.begin());
  }
  step_start_ms_ += steps * kStepMs;
  pulled_at_start_ = pulled_total;
  stored_at_start_ = stored_total;
}

json::array RateHistory::json() const {
  json::array out;
  out.reserve(samples_.size());
  const auto round1 = [](double v) { return std::round(v * 10) / 10; };
  for (const auto& s : samples_) out.push_back(json::array{s.end_ms, round1(s.pulled_mbps), round1(s.stored_mbps)});
  return out;
}

const char* slot_state_key(hw::SlotLight light) noexcept {
  switch (light) {
    case hw::SlotLight::empty: return "empty";
    case hw::SlotLight::charging: return "charging";
    case hw::SlotLight::authenticating: return "authenticating";
    case hw::SlotLight::syncing: return "syncing";
    case hw::SlotLight::waiting_uplink: return "waiting_uplink";
    case hw::SlotLight::done: return "done";
    case hw::SlotLight::attention: return "attention";
  }
  return "attention";
}

namespace {

json::object slot_json(const SlotStatus& s) {
  const auto light = slot_light(s);
  const auto p = hw::pattern_for(light);
  json::object o;
  o["slot"] = s.index;
  o["state"] = slot_state_key(light);
  o["state_text"] = hw::light_name(light);
  o["led"] = json::object{{"colour", hw::colour_name(p.colour)}, {"pattern", p.name}, {"on_ms", p.on_ms}, {"off_ms", p.off_ms}};
  o["serial"] = s.serial.empty() ? json::value(nullptr) : json::value(s.serial);
  o["officer"] = s.officer.empty() ? json::value(nullptr) : json::value(s.officer);
  o["firmware"] = s.firmware.empty() ? json::value(nullptr) : json::value(s.firmware);
  o["battery"] = s.battery_pct < 0 ? json::value(nullptr) : json::value(s.battery_pct);
  o["charging"] = s.charging;
  o["charge_stopped_hot"] = s.charge_stopped_hot;
  o["temperature_c"] = s.temperature_c ? json::value(std::round(*s.temperature_c * 10) / 10) : json::value(nullptr);
  o["bytes_done"] = s.bytes_done;
  o["bytes_total"] = s.bytes_total;
  o["mbps"] = std::round(s.mbps * 10) / 10;
  const bool moving = light == hw::SlotLight::syncing && s.mbps > 0.05 && s.bytes_total > s.bytes_done;
  o["eta_s"] = moving ? json::value(std::llround(static_cast<double>(s.bytes_total - s.bytes_done) / (s.mbps * 1e6))) : json::value(nullptr);
  o["detail"] = s.detail;
  o["alert"] = s.alert;
  o["safe_to_take"] = light == hw::SlotLight::done || light == hw::SlotLight::charging;
  return o;
}

}  // namespace

json::object status_json(const Dock& dock, const Snapshot& snap, const RateHistory& history, const std::vector<LogEntry>& events) {
  json::object out;
  out["time_ms"] = snap.unix_ms;
  out["dock"] = json::object{{"id", dock.config().dock_id}, {"slots", dock.config().slots}};
  json::array slots;
  for (const auto& s : dock.slots()) slots.push_back(slot_json(s));
  out["slots"] = std::move(slots);

  const auto& q = snap.queue;
  const auto count = [&q](SegState st) { return q.counts.contains(st) ? q.counts.at(st) : 0; };
  json::object by_state;
  for (auto st : {SegState::listed, SegState::pulling, SegState::spooled, SegState::stored, SegState::erased, SegState::purged, SegState::quarantined})
    by_state[state_name(st)] = count(st);
  json::object queue;
  queue["items"] = count(SegState::spooled);
  queue["bytes"] = q.spooled_bytes;
  queue["oldest_waiting_s"] =
      q.oldest_spooled_ms ? json::value(std::max<std::int64_t>(0, (snap.unix_ms - *q.oldest_spooled_ms) / 1000)) : json::value(nullptr);
  queue["segments_by_state"] = std::move(by_state);
  out["queue"] = std::move(queue);

  const auto& up = dock.uplink();
  const auto& t = dock.totals();
  json::object uplink;
  uplink["state"] = uplink_state_name(up.state);
  uplink["paused"] = dock.uploads_paused();
  uplink["alert"] = up.alert;
  uplink["clock_alert"] = up.clock_alert;
  uplink["last_error"] = up.last_error;
  uplink["retries"] = up.retries;
  json::object errors;
  for (const auto& [k, v] : up.errors) errors[k] = v;
  uplink["errors"] = std::move(errors);
  uplink["stored_bytes"] = t.stored_bytes;
  uplink["stored_segments"] = t.segments_stored;
  uplink["history"] = history.json();
  out["uplink"] = std::move(uplink);

  json::object spool;
  spool["used_bytes"] = q.spool_bytes;
  spool["limit_bytes"] = dock.config().spool_limit_bytes;
  spool["free_bytes"] = snap.spool_free_bytes;
  out["spool"] = std::move(spool);

  out["totals"] = json::object{{"pulled_bytes", t.pulled_bytes},         {"stored_bytes", t.stored_bytes},
                               {"segments_stored", t.segments_stored},   {"segments_erased", t.segments_erased},
                               {"segments_quarantined", t.segments_quarantined}};
  json::array quarantine;
  for (const auto& r : snap.quarantined)
    quarantine.push_back(json::object{{"serial", r.serial}, {"segment", r.seq}, {"size", r.manifest.size}, {"reason", r.reason}, {"kept", r.kept}});
  out["quarantine"] = std::move(quarantine);
  json::array ev;
  for (const auto& e : events)
    ev.push_back(json::object{{"seq", e.seq}, {"time_ms", e.unix_ms}, {"level", level_name(e.level)}, {"text", e.text}});
  out["events"] = std::move(ev);
  return out;
}

namespace {

/// A label value in Prometheus text format: backslash, quote and newline escaped.
std::string label(std::string_view v) {
  std::string out;
  for (char c : v) {
    if (c == '\\' || c == '"') out += '\\';
    if (c == '\n') {
      out += "\\n";
      continue;
    }
    out += c;
  }
  return out;
}

class Metrics {
 public:
  void family(const char* name, const char* type, const char* help) {
    out_ += "# HELP ";
    out_ += name;
    out_ += ' ';
    out_ += help;
    out_ += "\n# TYPE ";
    out_ += name;
    out_ += ' ';
    out_ += type;
    out_ += '\n';
  }
  void sample(const char* name, std::string_view labels, double value) {
    out_ += name;
    if (!labels.empty()) {
      out_ += '{';
      out_ += labels;
      out_ += '}';
    }
    char num[48];
    if (value == std::floor(value) && std::fabs(value) < 1e15) std::snprintf(num, sizeof num, " %.0f\n", value);
    else std::snprintf(num, sizeof num, " %.6g\n", value);
    out_ += num;
  }
  std::string take() { return std::move(out_); }

 private:
  std::string out_;
};

}  // namespace

std::string metrics_text(const Dock& dock, const Snapshot& snap) {
  Metrics m;
  const auto& t = dock.totals();
  const auto& up = dock.uplink();
  m.family("bodydock_pulled_bytes_total", "counter", "Bytes pulled from cameras since start.");
  m.sample("bodydock_pulled_bytes_total", "", static_cast<double>(t.pulled_bytes));
  m.family("bodydock_reread_bytes_total", "counter", "Bytes read again after a chunk failed its hash.");
  m.sample("bodydock_reread_bytes_total", "", static_cast<double>(t.reread_bytes));
  m.family("bodydock_stored_bytes_total", "counter", "Bytes central storage confirmed since start.");
  m.sample("bodydock_stored_bytes_total", "", static_cast<double>(t.stored_bytes));
  m.family("bodydock_segments_stored_total", "counter", "Segments central storage confirmed since start.");
  m.sample("bodydock_segments_stored_total", "", static_cast<double>(t.segments_stored));
  m.family("bodydock_segments_erased_total", "counter", "Segments erased on cameras since start.");
  m.sample("bodydock_segments_erased_total", "", static_cast<double>(t.segments_erased));
  m.family("bodydock_segments", "gauge", "Segments the dock knows, by state.");
  for (auto st : {SegState::listed, SegState::pulling, SegState::spooled, SegState::stored, SegState::erased, SegState::purged, SegState::quarantined}) {
    const auto it = snap.queue.counts.find(st);
    m.sample("bodydock_segments", "state=\"" + std::string(state_name(st)) + "\"", it == snap.queue.counts.end() ? 0.0 : static_cast<double>(it->second));
  }
  m.family("bodydock_queue_segments", "gauge", "Segments waiting in the spool for central storage.");
  m.sample("bodydock_queue_segments", "", static_cast<double>(up.queued));
  m.family("bodydock_queue_bytes", "gauge", "Bytes waiting in the spool for central storage.");
  m.sample("bodydock_queue_bytes", "", static_cast<double>(snap.queue.spooled_bytes));
  m.family("bodydock_queue_oldest_seconds", "gauge", "How long the longest-waiting segment has waited for storage.");
  m.sample("bodydock_queue_oldest_seconds", "",
           snap.queue.oldest_spooled_ms ? static_cast<double>(std::max<std::int64_t>(0, snap.unix_ms - *snap.queue.oldest_spooled_ms)) / 1000 : 0.0);
  m.family("bodydock_upload_retries_total", "counter", "Failed attempts to store a segment since start.");
  m.sample("bodydock_upload_retries_total", "", static_cast<double>(up.retries));
  m.family("bodydock_upload_errors_total", "counter", "Failed attempts to store, by class.");
  for (const char* cls : {"transient", "refused", "clock", "conflict", "spool"}) {
    const auto it = up.errors.find(cls);
    m.sample("bodydock_upload_errors_total", std::string("class=\"") + cls + "\"", it == up.errors.end() ? 0.0 : static_cast<double>(it->second));
  }
  m.family("bodydock_uplink_state", "gauge", "The uplink's state: 1 for the current one.");
  for (auto st : {UplinkStatus::State::idle, UplinkStatus::State::uploading, UplinkStatus::State::retrying, UplinkStatus::State::held})
    m.sample("bodydock_uplink_state", std::string("state=\"") + uplink_state_name(st) + "\"", up.state == st ? 1.0 : 0.0);
  m.family("bodydock_uploads_paused", "gauge", "1 while an admin has paused uploads.");
  m.sample("bodydock_uploads_paused", "", dock.uploads_paused() ? 1.0 : 0.0);
  m.family("bodydock_spool_bytes", "gauge", "Bytes the spool holds or has promised to pulls under way.");
  m.sample("bodydock_spool_bytes", "", static_cast<double>(snap.queue.spool_bytes));
  m.family("bodydock_spool_free_bytes", "gauge", "Free bytes on the spool's file system.");
  m.sample("bodydock_spool_free_bytes", "", static_cast<double>(snap.spool_free_bytes));
  m.family("bodydock_slot_state", "gauge", "What each slot shows: 1 for its current state.");
  for (const auto& s : dock.slots()) {
    const auto light = slot_light(s);
    for (auto l : {hw::SlotLight::empty, hw::SlotLight::charging, hw::SlotLight::authenticating, hw::SlotLight::syncing,
                   hw::SlotLight::waiting_uplink, hw::SlotLight::done, hw::SlotLight::attention})
      m.sample("bodydock_slot_state", "slot=\"" + std::to_string(s.index) + "\",state=\"" + slot_state_key(l) + "\"", l == light ? 1.0 : 0.0);
  }
  m.family("bodydock_slot_battery_percent", "gauge", "Battery of the camera in each slot, as it reports it.");
  for (const auto& s : dock.slots())
    if (s.battery_pct >= 0) m.sample("bodydock_slot_battery_percent", "slot=\"" + std::to_string(s.index) + "\"", s.battery_pct);
  m.family("bodydock_slot_charging", "gauge", "1 while the camera in a slot is charging.");
  for (const auto& s : dock.slots())
    if (!s.serial.empty()) m.sample("bodydock_slot_charging", "slot=\"" + std::to_string(s.index) + "\"", s.charging ? 1.0 : 0.0);
  m.family("bodydock_slot_pull_bytes", "gauge", "Bytes pulled in the current docking of each slot's camera.");
  for (const auto& s : dock.slots()) m.sample("bodydock_slot_pull_bytes", "slot=\"" + std::to_string(s.index) + "\"", static_cast<double>(s.bytes_done));
  m.family("bodydock_alerts", "gauge", "Active alerts for the facility admin.");
  unsigned alerts = (up.alert.empty() ? 0 : 1) + (up.clock_alert.empty() ? 0 : 1);
  for (const auto& s : dock.slots()) alerts += s.alert.empty() ? 0 : 1;
  m.sample("bodydock_alerts", "dock=\"" + label(dock.config().dock_id) + "\"", alerts);
  return m.take();
}

}  // namespace bodydock::dock::web
