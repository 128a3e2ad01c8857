#include "dock/scenario.hpp"

#include "hw/toml_text.hpp"

#include <algorithm>
#include <cctype>
#include <cerrno>
#include <cmath>
#include <fstream>
#include <sstream>
#include <system_error>

namespace bodydock::dock {

namespace {

struct KindName {
  FaultKind kind;
  const char* name;
};
constexpr KindName kKinds[] = {
    {FaultKind::unplug, "unplug"},
    {FaultKind::stall, "stall"},
    {FaultKind::hang, "hang"},
    {FaultKind::short_packets, "short_packets"},
    {FaultKind::slow_link, "slow_link"},
    {FaultKind::bit_flip, "bit_flip"},
    {FaultKind::broken_chain, "broken_chain"},
    {FaultKind::bad_signature, "bad_signature"},
    {FaultKind::malformed_frame, "malformed_frame"},
    {FaultKind::flood, "flood"},
    {FaultKind::no_enumerate, "no_enumerate"},
    {FaultKind::overheat, "overheat"},
    {FaultKind::charger_stuck, "charger_stuck"},
    {FaultKind::replay_auth, "replay_auth"},
};

/// Reads one scenario; every refusal names file:line, the key and its value.
class ScenarioReader {
 public:
  explicit ScenarioReader(std::string source) : source_(std::move(source)) {}

  Scenario read(const toml::table& doc) {
    Scenario s;
    only(doc, "", {"name", "description", "seed", "lanes", "dock", "camera", "expect"});
    const auto* name = doc.get("name");
    if (!name) throw ScenarioError(source_ + ":1: name missing: every scenario says what it is in one line");
    s.name = string(*name, "name");
    if (s.name.empty()) refuse(*name, "name", "must not be empty");
    if (auto* n = doc.get("description")) s.description = string(*n, "description");
    if (auto* n = doc.get("seed")) s.seed = static_cast<std::uint64_t>(integer(*n, "seed", 0, INT64_MAX));
    if (auto* n = doc.get("lanes")) {
      s.lanes.clear();
      for (const auto& e : array(*n, "lanes")) s.lanes.insert(one_of(e, "lanes", {"in-process", "emulated-libusb"}));
      if (s.lanes.empty()) refuse(*n, "lanes", "name at least one lane");
    }
    if (auto* n = doc.get("dock")) read_dock(table(*n, "dock"), s.dock);
    const auto* cams = doc.get("camera");
    if (!cams) throw ScenarioError(source_ + ":1: camera missing: describe each camera as [[camera]]");
    const auto* arr = cams->as_array();
    if (!arr || !arr->is_array_of_tables()) refuse(*cams, "camera", "expected [[camera]] tables");
    if (arr->empty() || arr->size() > 12) refuse(*cams, "camera", "a dock has 1..12 slots");
    for (const auto& e : *arr) s.cameras.push_back(read_camera(*e.as_table(), s.cameras));
    if (auto* n = doc.get("expect")) read_expect(table(*n, "expect"), s.expect);
    return s;
  }

 private:
  void read_dock(const toml::table& t, ScenarioDock& d) {
    only(t, "dock", {"timeout_ms", "chunk_kib", "reads_in_flight", "status_interval_ms", "chunk_retries", "redockings"});
    if (auto* n = t.get("timeout_ms")) d.timeout_ms = static_cast<unsigned>(integer(*n, "dock.timeout_ms", 10, 600000));
    if (auto* n = t.get("chunk_kib")) d.chunk_kib = static_cast<unsigned>(integer(*n, "dock.chunk_kib", 4, 1024));
    if (auto* n = t.get("reads_in_flight")) d.reads_in_flight = static_cast<unsigned>(integer(*n, "dock.reads_in_flight", 1, 64));
    if (auto* n = t.get("status_interval_ms")) d.status_interval_ms = static_cast<unsigned>(integer(*n, "dock.status_interval_ms", 50, 600000));
    if (auto* n = t.get("chunk_retries")) d.chunk_retries = static_cast<unsigned>(integer(*n, "dock.chunk_retries", 0, 100));
    if (auto* n = t.get("redockings")) d.redockings = static_cast<unsigned>(integer(*n, "dock.redockings", 0, 10));
  }

  ScenarioCamera read_camera(const toml::table& t, const std::vector<ScenarioCamera>& before) {
    only(t, "camera", {"serial", "model", "firmware", "officer", "keys", "segments", "segment_mib", "sizes", "priority", "battery",
                       "temperature_c", "clock_skew_ms", "clock_drift_ppm", "fault", "expect"});
    ScenarioCamera c;
    c.line = line(t);
    const auto* serial = t.get("serial");
    if (!serial) throw ScenarioError(where(t) + "camera.serial missing: every [[camera]] needs its serial, e.g. \"BC-0001\"");
    c.serial = string(*serial, "camera.serial");
    if (c.serial.empty() || c.serial.size() > 32 ||
        !std::all_of(c.serial.begin(), c.serial.end(), [](char ch) { return std::isalnum(static_cast<unsigned char>(ch)) || ch == '-' || ch == '_'; }))
      refuse(*serial, "camera.serial", "1..32 letters, digits, '-' or '_'");
    for (const auto& b : before)
      if (b.serial == c.serial) refuse(*serial, "camera.serial", "already the serial of the camera at line " + std::to_string(b.line));
    c.officer = "officer-" + c.serial;
    if (auto* n = t.get("model")) c.model = nonempty(*n, "camera.model");
    if (auto* n = t.get("firmware")) c.firmware = nonempty(*n, "camera.firmware");
    if (auto* n = t.get("officer")) c.officer = nonempty(*n, "camera.officer");
    if (auto* n = t.get("keys")) c.keys = one_of(*n, "camera.keys", {"enrolled", "unenrolled", "revoked"});
    const auto* segments = t.get("segments");
    const auto* sizes = t.get("sizes");
    if (sizes && (segments || t.get("segment_mib")))
      refuse(*sizes, "camera.sizes", "give either sizes or segments and segment_mib, not both");
    if (sizes) {
      for (const auto& e : array(*sizes, "camera.sizes")) c.sizes.push_back(static_cast<std::uint64_t>(integer(e, "camera.sizes", 1, 1ll << 34)));
      if (c.sizes.empty()) refuse(*sizes, "camera.sizes", "at least one segment");
    } else {
      std::int64_t count = 3;
      double mib = 1;
      if (segments) count = integer(*segments, "camera.segments", 0, 10000);
      if (auto* n = t.get("segment_mib")) {
        mib = number(*n, "camera.segment_mib");
        if (!(mib > 0) || mib > 4096) refuse(*n, "camera.segment_mib", "must be above 0 and at most 4096");
      }
      c.sizes.assign(static_cast<std::size_t>(count), static_cast<std::uint64_t>(mib * (1 << 20)));
    }
    if (auto* n = t.get("priority"))
      for (const auto& e : array(*n, "camera.priority")) c.priority.insert(segment(e, "camera.priority", c));
    if (auto* n = t.get("battery")) c.battery = curve(*n, "camera.battery", 0, 100);
    if (auto* n = t.get("temperature_c")) c.temperature_c = curve(*n, "camera.temperature_c", -40, 120);
    if (auto* n = t.get("clock_skew_ms")) c.clock_skew_ms = integer(*n, "camera.clock_skew_ms", -(1ll << 40), 1ll << 40);
    if (auto* n = t.get("clock_drift_ppm")) {
      c.clock_drift_ppm = number(*n, "camera.clock_drift_ppm");
      if (std::fabs(c.clock_drift_ppm) > 1e6) refuse(*n, "camera.clock_drift_ppm", "must be -1000000..1000000");
    }
    if (auto* n = t.get("fault")) {
      const auto* faults = n->as_array();
      if (!faults || !faults->is_array_of_tables()) refuse(*n, "camera.fault", "expected [[camera.fault]] tables");
      for (const auto& e : *faults) c.faults.push_back(read_fault(*e.as_table(), c));
    }
    if (auto* n = t.get("expect")) read_camera_expect(table(*n, "camera.expect"), c.expect);
    return c;
  }

  ScenarioFault read_fault(const toml::table& t, const ScenarioCamera& c) {
    ScenarioFault f;
    f.line = line(t);
    const auto* kind = t.get("kind");
    if (!kind) throw ScenarioError(where(t) + "camera.fault.kind missing: every [[camera.fault]] names its kind");
    const auto k = string(*kind, "camera.fault.kind");
    const auto* found = std::find_if(std::begin(kKinds), std::end(kKinds), [&](const KindName& kn) { return k == kn.name; });
    if (found == std::end(kKinds)) {
      std::string list;
      for (const auto& kn : kKinds) list += (list.empty() ? "" : ", ") + std::string(kn.name);
      refuse(*kind, "camera.fault.kind", "unknown fault; one of " + list);
    }
    f.kind = found->kind;
    // Each kind takes exactly the keys that mean something for it.
    std::vector<const char*> keys = {"kind"};
    switch (f.kind) {
      case FaultKind::unplug:
      case FaultKind::hang:
      case FaultKind::malformed_frame:
      case FaultKind::flood: keys.insert(keys.end(), {"at_byte", "docking"}); break;
      case FaultKind::stall: keys.insert(keys.end(), {"at_byte", "stall_ms", "docking"}); break;
      case FaultKind::short_packets: keys.insert(keys.end(), {"max_bytes", "docking"}); break;
      case FaultKind::slow_link: keys.insert(keys.end(), {"mbps", "docking"}); break;
      case FaultKind::bit_flip: keys.insert(keys.end(), {"segment", "chunk", "times"}); break;
      case FaultKind::broken_chain:
      case FaultKind::bad_signature: keys.push_back("segment"); break;
      case FaultKind::no_enumerate:
      case FaultKind::overheat:
      case FaultKind::charger_stuck:
      case FaultKind::replay_auth: break;
    }
    for (auto&& [key, value] : t) {
      const auto name = key.str();  // (clang 14 cannot capture a structured binding in a lambda)
      if (std::none_of(keys.begin(), keys.end(), [&](const char* known) { return name == known; }))
        refuse(value, "camera.fault." + std::string(name), std::string("not a key of fault kind ") + found->name);
    }
    auto need = [&](const char* key) -> const toml::node& {
      const auto* n = t.get(key);
      if (!n) throw ScenarioError(where(t) + "camera.fault." + key + " missing: a " + found->name + " fault needs it");
      return *n;
    };
    if (auto* n = t.get("docking")) f.docking = static_cast<unsigned>(integer(*n, "camera.fault.docking", 1, 10));
    if (std::find_if(keys.begin(), keys.end(), [](const char* x) { return std::string_view(x) == "at_byte"; }) != keys.end())
      f.at_byte = static_cast<std::uint64_t>(integer(need("at_byte"), "camera.fault.at_byte", 0, INT64_MAX));
    if (f.kind == FaultKind::stall) f.stall_ms = static_cast<std::uint32_t>(integer(need("stall_ms"), "camera.fault.stall_ms", 1, 600000));
    if (f.kind == FaultKind::short_packets)
      f.max_bytes = static_cast<std::uint32_t>(integer(need("max_bytes"), "camera.fault.max_bytes", 1, 1 << 20));
    if (f.kind == FaultKind::slow_link) {
      const auto& n = need("mbps");
      f.mbps = number(n, "camera.fault.mbps");
      if (!(f.mbps >= 0.01) || f.mbps > 100000) refuse(n, "camera.fault.mbps", "must be 0.01..100000 (MB/s)");
    }
    if (f.kind == FaultKind::bit_flip || f.kind == FaultKind::broken_chain || f.kind == FaultKind::bad_signature)
      f.segment = segment(need("segment"), "camera.fault.segment", c);
    if (f.kind == FaultKind::bit_flip) {
      const auto& n = need("chunk");
      f.chunk = static_cast<std::uint64_t>(integer(n, "camera.fault.chunk", 0, INT64_MAX));
      if (auto* x = t.get("times")) {
        if (x->is_string()) {
          if (string(*x, "camera.fault.times") != "always") refuse(*x, "camera.fault.times", "a count, or \"always\"");
          f.times = 0;
        } else {
          f.times = static_cast<std::uint32_t>(integer(*x, "camera.fault.times", 1, 1000000));
        }
      }
    }
    return f;
  }

  void read_camera_expect(const toml::table& t, CameraExpect& e) {
    only(t, "camera.expect", {"stored", "erased", "left_on_camera", "quarantined", "session_end", "dockings", "audit", "no_audit", "alert",
                              "battery_min", "temperature_min_c", "clock_off_min_ms"});
    if (auto* n = t.get("stored")) e.stored = count(*n, "camera.expect.stored");
    if (auto* n = t.get("erased")) e.erased = count(*n, "camera.expect.erased");
    if (auto* n = t.get("left_on_camera")) e.left_on_camera = count(*n, "camera.expect.left_on_camera");
    if (auto* n = t.get("quarantined")) e.quarantined = count(*n, "camera.expect.quarantined");
    if (auto* n = t.get("session_end"))
      e.session_end = one_of(*n, "camera.expect.session_end", {"done", "attention", "unplugged", "failed", "unresponsive", "overheated", "charge_only", "dock_fault"});
    if (auto* n = t.get("dockings")) e.dockings = static_cast<unsigned>(integer(*n, "camera.expect.dockings", 1, 100));
    if (auto* n = t.get("audit")) e.audit = strings(*n, "camera.expect.audit");
    if (auto* n = t.get("no_audit")) e.no_audit = strings(*n, "camera.expect.no_audit");
    if (auto* n = t.get("alert")) e.alert = nonempty(*n, "camera.expect.alert");
    if (auto* n = t.get("battery_min")) e.battery_min = static_cast<int>(integer(*n, "camera.expect.battery_min", 0, 100));
    if (auto* n = t.get("temperature_min_c")) e.temperature_min_c = number(*n, "camera.expect.temperature_min_c");
    if (auto* n = t.get("clock_off_min_ms")) e.clock_off_min_ms = integer(*n, "camera.expect.clock_off_min_ms", 0, INT64_MAX);
  }

  void read_expect(const toml::table& t, ScenarioExpect& e) {
    only(t, "expect", {"stored", "erased", "quarantined", "max_seconds", "min_seconds", "audit"});
    if (auto* n = t.get("stored")) e.stored = count(*n, "expect.stored");
    if (auto* n = t.get("erased")) e.erased = count(*n, "expect.erased");
    if (auto* n = t.get("quarantined")) e.quarantined = count(*n, "expect.quarantined");
    if (auto* n = t.get("max_seconds")) {
      e.max_seconds = number(*n, "expect.max_seconds");
      if (!(*e.max_seconds > 0)) refuse(*n, "expect.max_seconds", "must be above 0");
    }
    if (auto* n = t.get("min_seconds")) {
      e.min_seconds = number(*n, "expect.min_seconds");
      if (!(*e.min_seconds >= 0)) refuse(*n, "expect.min_seconds", "must not be negative");
    }
    if (auto* n = t.get("audit")) e.audit = strings(*n, "expect.audit");
  }

  // --- typed readers; each refuses naming file:line, key and value -----------------------

  void only(const toml::table& t, const std::string& name, std::initializer_list<const char*> keys) const {
    for (auto&& [key, value] : t) {
      const auto k = key.str();
      if (std::none_of(keys.begin(), keys.end(), [&](const char* known) { return k == known; })) {
        std::string list;
        for (const char* known : keys) list += (list.empty() ? "" : ", ") + std::string(known);
        const auto full = name.empty() ? std::string(k) : name + "." + std::string(k);
        // NOLINTNEXTLINE(performance-inefficient-string-concatenation): the message of the error refuse() throws
        refuse(value, full, "unknown key" + (name.empty() ? std::string() : " in [" + name + "]") + "; known: " + list);
      }
    }
  }
  const toml::table& table(const toml::node& n, std::string_view key) const {
    const auto* t = n.as_table();
    if (!t) refuse(n, key, "expected a table");
    return *t;
  }
  const toml::array& array(const toml::node& n, std::string_view key) const {
    const auto* a = n.as_array();
    if (!a) refuse(n, key, "expected a list [...]");
    return *a;
  }
  std::string string(const toml::node& n, std::string_view key) const {
    const auto* s = n.as_string();
    if (!s) refuse(n, key, "expected a string");
    return s->get();
  }
  std::string nonempty(const toml::node& n, std::string_view key) const {
    auto v = string(n, key);
    if (v.empty()) refuse(n, key, "must not be empty");
    return v;
  }
  std::vector<std::string> strings(const toml::node& n, std::string_view key) const {
    std::vector<std::string> out;
    for (const auto& e : array(n, key)) out.push_back(nonempty(e, key));
    return out;
  }
  std::int64_t integer(const toml::node& n, std::string_view key, std::int64_t min, std::int64_t max) const {
    const auto* i = n.as_integer();
    if (!i) refuse(n, key, "expected a whole number");
    if (i->get() < min || i->get() > max) refuse(n, key, "must be " + std::to_string(min) + ".." + std::to_string(max));
    return i->get();
  }
  std::uint64_t count(const toml::node& n, std::string_view key) const { return static_cast<std::uint64_t>(integer(n, key, 0, 1000000)); }
  double number(const toml::node& n, std::string_view key) const {
    if (const auto* i = n.as_integer()) return static_cast<double>(i->get());
    const auto* f = n.as_floating_point();
    if (!f || !std::isfinite(f->get())) refuse(n, key, "expected a number");
    return f->get();
  }
  std::uint64_t segment(const toml::node& n, std::string_view key, const ScenarioCamera& c) const {
    // Segments are numbered from 1 on the camera, as it records them.
    return static_cast<std::uint64_t>(integer(n, key, 1, static_cast<std::int64_t>(std::max<std::size_t>(c.sizes.size(), 1))));
  }
  std::string one_of(const toml::node& n, std::string_view key, std::initializer_list<const char*> allowed) const {
    auto v = string(n, key);
    std::string list;
    for (const char* a : allowed) {
      if (v == a) return v;
      list += (list.empty() ? "" : ", ") + std::string(a);
    }
    refuse(n, key, "one of " + list);
  }
  /// [[seconds, value], ...] with seconds rising from 0.
  std::vector<std::pair<double, double>> curve(const toml::node& n, std::string_view key, double min, double max) const {
    std::vector<std::pair<double, double>> out;
    for (const auto& e : array(n, key)) {
      const auto* p = e.as_array();
      if (!p || p->size() != 2) refuse(e, key, "each point is [seconds since docking, value]");
      const double t = number(*p->get(0), key), v = number(*p->get(1), key);
      if (t < 0 || (!out.empty() && t <= out.back().first)) refuse(e, key, "seconds must rise from 0");
      if (v < min || v > max) refuse(e, key, "values must be " + std::to_string(static_cast<int>(min)) + ".." + std::to_string(static_cast<int>(max)));
      out.emplace_back(t, v);
    }
    if (out.empty()) refuse(n, key, "at least one point");
    return out;
  }

  static std::uint32_t line(const toml::node& n) { return n.source().begin.line; }
  std::string where(const toml::node& n) const { return source_ + ":" + std::to_string(line(n)) + ": "; }
  [[noreturn]] void refuse(const toml::node& n, std::string_view key, const std::string& why) const {
    std::ostringstream v;
    n.visit([&](const auto& x) { v << x; });
    auto value = v.str();
    if (value.size() > 80) value = value.substr(0, 77) + "...";
    const auto what = n.is_table() ? std::string(" is a table") : " = " + value;
    throw ScenarioError(where(n) + std::string(key) + what + ": " + why);
  }

  std::string source_;
};

}  // namespace

const char* fault_kind_name(FaultKind k) noexcept {
  for (const auto& kn : kKinds)
    if (kn.kind == k) return kn.name;
  return "?";
}

Scenario load_scenario(const std::filesystem::path& file) {
  std::ifstream in(file, std::ios::binary);
  if (!in) throw ScenarioError(file.string() + ": cannot read it: " + std::generic_category().message(errno));
  std::ostringstream text;
  text << in.rdbuf();
  if (in.bad()) throw ScenarioError(file.string() + ": cannot read it: " + std::generic_category().message(errno));
  toml::table doc;
  try {
    doc = hw::parse_toml(text.str(), file.string());
  } catch (const hw::TomlError& e) {
    throw ScenarioError(file.string() + ":" + std::to_string(e.line) + ": " + e.what());
  }
  auto s = ScenarioReader(file.string()).read(doc);
  s.file = file;
  return s;
}

}  // namespace bodydock::dock
