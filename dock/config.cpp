#include "dock/config.hpp"

#include "dock/s3/rate_limit.hpp"
#include "dock/web/listen.hpp"
#include "hw/toml_text.hpp"

#include <sys/stat.h>

#include <algorithm>
#include <cerrno>
#include <cstdlib>
#include <fstream>
#include <map>
#include <set>
#include <sstream>
#include <system_error>

namespace bodydock::dock {

namespace {

/// One 4-character half of "VID:PID", read as sscanf's "%4x" reads it (strtoul, base 16);
/// false unless all of it is the number.
bool hex_half(const std::string& half, unsigned& value) {
  const char* begin = half.c_str();
  char* end = nullptr;
  errno = 0;
  const unsigned long v = std::strtoul(begin, &end, 16);
  if (end == begin || end != begin + half.size() || errno == ERANGE) return false;
  value = static_cast<unsigned>(v);
  return true;
}

/// Reads the tables of dockd.toml; every refusal names source:line, the key and its value.
class Reader {
 public:
  Reader(std::string_view source, Config& c) : source_(source), c_(c) {}

  void read(const toml::table& doc) {
    for (auto&& [key, value] : doc) {
      const auto k = std::string(key.str());
      if (!kSections.contains(k)) warn(key.source().begin.line, "unknown table [" + k + "] ignored");
      else if (!value.is_table()) refuse(value, k, "expected a table [" + k + "]");
    }
    if (const auto* t = section(doc, "dock")) read_dock(*t);
    const auto* board = section(doc, "board");
    if (!board) throw ConfigError(source_ + ": [board] missing: the dock needs its slots ([[board.slot]] with slot and port)");
    read_board(*board);
    if (const auto* t = section(doc, "cameras")) read_cameras(*t);
    if (const auto* t = section(doc, "storage")) read_storage(*t);
    if (const auto* t = section(doc, "queue")) read_queue(*t);
    if (const auto* t = section(doc, "spool")) read_spool(*t);
    if (const auto* t = section(doc, "web")) read_web(*t);
  }

 private:
  inline static const std::set<std::string> kSections = {"dock", "board", "leds", "cameras", "storage", "queue", "spool", "web"};

  const toml::table* section(const toml::table& doc, const char* name) { return doc.get_as<toml::table>(name); }

  void read_dock(const toml::table& t) {
    only(t, "dock", {"state_dir", "trust_dir", "log_level", "log_format", "control_socket", "purged_retention_days"});
    if (auto* n = t.get("control_socket")) c_.control_socket = string(*n, "dock.control_socket");  // "": none
    if (auto* n = t.get("state_dir")) c_.state_dir = path(*n, "dock.state_dir");
    if (auto* n = t.get("trust_dir")) c_.trust_dir = path(*n, "dock.trust_dir");
    if (auto* n = t.get("purged_retention_days"))
      c_.purged_retention_days = static_cast<unsigned>(integer(*n, "dock.purged_retention_days", 0, 3650));
    if (auto* n = t.get("log_level")) c_.log_level = one_of(*n, "dock.log_level", {"error", "warning", "notice", "info", "debug"});
    if (auto* n = t.get("log_format")) c_.log_format = one_of(*n, "dock.log_format", {"journal", "json"});
  }

  void read_board(const toml::table& t) {
    only(t, "board", {"slot", "port_power"});
    if (auto* n = t.get("port_power")) c_.port_power = one_of(*n, "board.port_power", {"hub", "sysfs", "none"});
    const auto* slots = t.get("slot");
    if (!slots) throw ConfigError(where(t) + "board.slot missing: describe each slot as [[board.slot]] with slot and port");
    const auto* arr = slots->as_array();
    if (!arr || !arr->is_array_of_tables()) refuse(*slots, "board.slot", "expected [[board.slot]] tables");
    std::map<unsigned, std::uint32_t> seen_slot;
    std::map<std::string, std::uint32_t> seen_port;
    for (const auto& e : *arr) {
      const auto& s = *e.as_table();
      only(s, "board.slot", {"slot", "port"});
      Config::Slot slot;
      const auto* n = s.get("slot");
      if (!n) throw ConfigError(where(s) + "board.slot.slot missing: every [[board.slot]] needs its slot number");
      slot.slot = static_cast<unsigned>(integer(*n, "board.slot.slot", 1, hw::max_led_slots));
      const auto* p = s.get("port");
      if (!p) throw ConfigError(where(s) + "board.slot.port missing: the USB port path of slot " + std::to_string(slot.slot) + ", e.g. \"1-1.3\"");
      slot.port = string(*p, "board.slot.port");
      if (!valid_port(slot.port)) refuse(*p, "board.slot.port", "a USB port path is BUS-PORT[.PORT...], e.g. \"1-1.3\"");
      if (auto [it, fresh] = seen_slot.emplace(slot.slot, line(*n)); !fresh)
        refuse(*n, "board.slot.slot", "slot " + std::to_string(slot.slot) + " is already described at line " + std::to_string(it->second));
      if (auto [it, fresh] = seen_port.emplace(slot.port, line(*p)); !fresh)
        refuse(*p, "board.slot.port", "port " + slot.port + " is already slot of line " + std::to_string(it->second));
      c_.slots.push_back(std::move(slot));
    }
    if (c_.slots.empty()) throw ConfigError(where(t) + "board.slot: the dock needs at least one slot");
  }

  void read_cameras(const toml::table& t) {
    only(t, "cameras", {"usb_ids", "reads_in_flight", "request_timeout_ms", "usb_transfer_kib", "usb_in_flight"});
    if (const auto* n = t.get("usb_ids")) {
      const auto* arr = n->as_array();
      if (!arr || arr->empty()) refuse(*n, "cameras.usb_ids", "expected a list of \"VID:PID\" in hex, e.g. [\"1d50:6160\"]");
      c_.usb_ids.clear();
      for (const auto& e : *arr) {
        const auto text = string(e, "cameras.usb_ids");
        unsigned vid = 0, pid = 0;
        if (text.size() != 9 || text[4] != ':' || !hex_half(text.substr(0, 4), vid) || !hex_half(text.substr(5), pid))
          refuse(e, "cameras.usb_ids", "each is \"VID:PID\" in hex, e.g. \"1d50:6160\"");
        c_.usb_ids.emplace_back(static_cast<std::uint16_t>(vid), static_cast<std::uint16_t>(pid));
      }
    }
    if (auto* n = t.get("reads_in_flight")) c_.reads_in_flight = static_cast<unsigned>(integer(*n, "cameras.reads_in_flight", 1, 64));
    if (auto* n = t.get("request_timeout_ms")) c_.request_timeout = std::chrono::milliseconds(integer(*n, "cameras.request_timeout_ms", 10, 600000));
    if (auto* n = t.get("usb_transfer_kib")) c_.usb_transfer_kib = static_cast<unsigned>(integer(*n, "cameras.usb_transfer_kib", 4, 4096));
    if (auto* n = t.get("usb_in_flight")) c_.usb_in_flight = static_cast<unsigned>(integer(*n, "cameras.usb_in_flight", 1, 32));
  }

  void read_storage(const toml::table& t) {
    only(t, "storage", {"store", "endpoint", "region", "credentials_file", "ca_file", "virtual_host", "part_mib", "timeout_ms", "retention_days",
                        "retention_mode"});
    if (auto* n = t.get("store")) {
      c_.store = string(*n, "storage.store");
      if (c_.store.empty()) refuse(*n, "storage.store", "a directory or s3://BUCKET[/PREFIX]");
    }
    if (auto* n = t.get("endpoint")) {
      c_.s3_endpoint = string(*n, "storage.endpoint");
      if (!c_.s3_endpoint.starts_with("https://") && !c_.s3_endpoint.starts_with("http://"))
        refuse(*n, "storage.endpoint", "expected https://HOST[:PORT] (or http:// on a trusted network)");
    }
    if (auto* n = t.get("region")) c_.s3_region = string(*n, "storage.region");
    if (auto* n = t.get("credentials_file")) c_.s3_credentials_file = path(*n, "storage.credentials_file");
    if (auto* n = t.get("ca_file")) c_.s3_ca_file = path(*n, "storage.ca_file");
    if (auto* n = t.get("virtual_host")) c_.s3_virtual_host = boolean(*n, "storage.virtual_host");
    if (auto* n = t.get("part_mib")) c_.s3_part_mib = static_cast<unsigned>(integer(*n, "storage.part_mib", 5, 1024));
    if (auto* n = t.get("timeout_ms")) c_.s3_timeout = std::chrono::milliseconds(integer(*n, "storage.timeout_ms", 100, 600000));
    if (auto* n = t.get("retention_days")) c_.retention_days = static_cast<unsigned>(integer(*n, "storage.retention_days", 0, 36500));
    if (auto* n = t.get("retention_mode")) c_.retention_mode = one_of(*n, "storage.retention_mode", {"compliance", "governance"});
    if (c_.store.starts_with("s3://")) {
      if (c_.s3_endpoint.empty()) throw ConfigError(where(t) + "storage.endpoint missing: an s3:// store needs the endpoint");
      if (c_.s3_credentials_file.empty())
        throw ConfigError(where(t) + "storage.credentials_file missing: an s3:// store needs its keys (kept out of dockd.toml)");
    }
  }

  void read_queue(const toml::table& t) {
    only(t, "queue", {"concurrency", "retry_max_ms", "hold_probe_s", "upload_mbps", "schedule"});
    if (auto* n = t.get("concurrency")) c_.upload_concurrency = static_cast<unsigned>(integer(*n, "queue.concurrency", 1, 16));
    if (auto* n = t.get("retry_max_ms")) c_.upload_retry_max = std::chrono::milliseconds(integer(*n, "queue.retry_max_ms", 100, 3600000));
    if (auto* n = t.get("hold_probe_s")) c_.upload_hold_probe = std::chrono::seconds(integer(*n, "queue.hold_probe_s", 1, 86400));
    const toml::node* mbps = t.get("upload_mbps");
    const toml::node* schedule = t.get("schedule");
    if (mbps) {
      if (const auto* i = mbps->as_integer()) c_.upload_mbps = std::to_string(i->get());
      else if (const auto* f = mbps->as_floating_point()) c_.upload_mbps = std::to_string(f->get());
      else refuse(*mbps, "queue.upload_mbps", "expected a number of MB/s (0: no cap)");
    }
    if (schedule) c_.upload_schedule = string(*schedule, "queue.schedule");
    try {
      (void)s3::RateSchedule::parse(c_.upload_mbps, c_.upload_schedule);
    } catch (const std::invalid_argument& e) {
      const toml::node* at = schedule ? schedule : mbps;
      if (at) refuse(*at, schedule ? "queue.schedule" : "queue.upload_mbps", e.what());
      throw ConfigError(source_ + ": queue: " + e.what());
    }
  }

  void read_spool(const toml::table& t) {
    only(t, "spool", {"limit_mib", "reserve_mib"});
    if (auto* n = t.get("limit_mib")) c_.spool_limit_mib = static_cast<std::uint64_t>(integer(*n, "spool.limit_mib", 0, std::int64_t{1} << 40));
    if (auto* n = t.get("reserve_mib")) c_.spool_reserve_mib = static_cast<std::uint64_t>(integer(*n, "spool.reserve_mib", 0, std::int64_t{1} << 30));
  }

  void read_web(const toml::table& t) {
    only(t, "web", {"listen", "tls", "accounts_file", "public_status"});
    if (auto* n = t.get("listen")) {
      c_.web_listen = string(*n, "web.listen");
      try {
        (void)web::parse_listen(c_.web_listen);
      } catch (const std::invalid_argument& e) {
        refuse(*n, "web.listen", e.what());
      }
    }
    if (auto* n = t.get("tls")) c_.web_tls = boolean(*n, "web.tls");
    if (auto* n = t.get("accounts_file")) c_.web_accounts = path(*n, "web.accounts_file");
    if (auto* n = t.get("public_status")) c_.web_public_status = boolean(*n, "web.public_status");
  }

  static bool valid_port(const std::string& p) {
    const auto dash = p.find('-');
    if (dash == 0 || dash == std::string::npos || dash + 1 >= p.size() || p.size() > 32) return false;
    bool digit = false;
    for (std::size_t i = 0; i < p.size(); ++i) {
      const char c = p[i];
      if (i < dash) {
        if (!std::isdigit(static_cast<unsigned char>(c))) return false;
      } else if (i > dash) {
        if (c == '.') {
          if (!digit) return false;
          digit = false;
        } else if (std::isdigit(static_cast<unsigned char>(c))) {
          digit = true;
        } else {
          return false;
        }
      }
    }
    return digit;
  }

  void only(const toml::table& t, const std::string& name, std::initializer_list<const char*> keys) {
    for (auto&& [key, value] : t) {
      const auto k = key.str();
      if (std::none_of(keys.begin(), keys.end(), [&](const char* known) { return k == known; }))
        warn(key.source().begin.line, "unknown key " + name + "." + std::string(k) + " ignored");
    }
  }

  std::string string(const toml::node& n, std::string_view key) const {
    const auto* s = n.as_string();
    if (!s) refuse(n, key, "expected a string");
    return s->get();
  }
  std::filesystem::path path(const toml::node& n, std::string_view key) const {
    const auto p = string(n, key);
    if (p.empty()) refuse(n, key, "expected a path");
    return p;
  }
  bool boolean(const toml::node& n, std::string_view key) const {
    const auto* b = n.as_boolean();
    if (!b) refuse(n, key, "expected true or false");
    return b->get();
  }
  std::int64_t integer(const toml::node& n, std::string_view key, std::int64_t min, std::int64_t max) const {
    const auto* i = n.as_integer();
    if (!i) refuse(n, key, "expected a whole number");
    if (i->get() < min || i->get() > max) refuse(n, key, "must be " + std::to_string(min) + ".." + std::to_string(max));
    return i->get();
  }
  std::string one_of(const toml::node& n, std::string_view key, std::initializer_list<const char*> allowed) const {
    auto v = string(n, key);
    std::string list;
    for (const char* a : allowed) {
      if (v == a) return v;
      list += (list.empty() ? "" : ", ") + std::string(a);
    }
    refuse(n, key, "must be one of " + list);
  }

  static std::uint32_t line(const toml::node& n) { return n.source().begin.line; }
  std::string where(const toml::node& n) const { return source_ + ":" + std::to_string(line(n)) + ": "; }
  void warn(std::uint32_t at, const std::string& what) { c_.warnings.push_back(source_ + ":" + std::to_string(at) + ": " + what); }

  [[noreturn]] void refuse(const toml::node& n, std::string_view key, const std::string& why) const {
    std::ostringstream v;
    n.visit([&](const auto& x) { v << x; });
    auto value = v.str();
    if (value.size() > 80) value = value.substr(0, 77) + "...";
    const auto what = n.is_table() ? std::string(" is a table") : n.is_array() ? std::string(" = ") + value : " = " + value;
    throw ConfigError(where(n) + std::string(key) + what + ": " + why);
  }

  std::string source_;
  Config& c_;
};

std::string read_file(const std::filesystem::path& file, const char* what) {
  std::ifstream in(file, std::ios::binary);
  if (!in) throw ConfigError("cannot read " + std::string(what) + " " + file.string() + ": " + std::generic_category().message(errno), true);
  std::ostringstream text;
  text << in.rdbuf();
  return text.str();
}

/// access_key_id = ... / secret_access_key = ... (the format of the AWS CLI's credentials
/// file without its [profile] lines, which are skipped). Never echoes a value in an error.
void read_credentials(Config& c) {
  struct stat st{};
  if (::stat(c.s3_credentials_file.c_str(), &st) != 0)
    throw ConfigError("cannot read the S3 credentials file " + c.s3_credentials_file.string() + ": " + std::generic_category().message(errno), true);
  if ((st.st_mode & 0007) != 0)
    throw ConfigError("the S3 credentials file " + c.s3_credentials_file.string() + " is readable by others; chmod 0640 or tighter", true);
  std::istringstream in(read_file(c.s3_credentials_file, "the S3 credentials file"));
  unsigned n = 0;
  for (std::string line; std::getline(in, line);) {
    ++n;
    if (!line.empty() && line.back() == '\r') line.pop_back();
    const auto first = line.find_first_not_of(" \t");
    if (first == std::string::npos || line[first] == '#' || line[first] == '[') continue;
    const auto eq = line.find('=');
    if (eq == std::string::npos)
      throw ConfigError(c.s3_credentials_file.string() + ":" + std::to_string(n) + ": expected key = value");
    auto trim = [](std::string s) {
      s.erase(0, s.find_first_not_of(" \t"));
      s.erase(s.find_last_not_of(" \t") + 1);
      return s;
    };
    const auto key = trim(line.substr(0, eq));
    const auto value = trim(line.substr(eq + 1));
    if (key == "access_key_id" || key == "aws_access_key_id") c.s3_access_key_id = value;
    else if (key == "secret_access_key" || key == "aws_secret_access_key") c.s3_secret_access_key = value;
    else throw ConfigError(c.s3_credentials_file.string() + ":" + std::to_string(n) + ": unknown key '" + key + "'");
  }
  if (c.s3_access_key_id.empty() || c.s3_secret_access_key.empty())
    throw ConfigError(c.s3_credentials_file.string() + ": needs access_key_id and secret_access_key");
}

}  // namespace

Config parse_config(std::string_view text, std::string_view source) {
  toml::table doc;
  try {
    doc = hw::parse_toml(text, source);
  } catch (const hw::TomlError& e) {
    throw ConfigError(std::string(source) + ":" + std::to_string(e.line) + ": " + e.what());
  }
  Config c;
  Reader(source, c).read(doc);
  try {
    c.leds = hw::parse_led_board(text, source);
  } catch (const std::invalid_argument& e) {
    throw ConfigError(e.what());
  }
  for (auto& w : c.leds.warnings)
    if (w.find("no [leds] table") == std::string::npos) c.warnings.push_back(std::move(w));
  c.leds.warnings.clear();
  std::set<unsigned> board_slots;
  for (const auto& s : c.slots) board_slots.insert(s.slot);
  for (const auto& [slot, _] : c.leds.sysfs_slots)
    if (!board_slots.contains(slot)) c.warnings.push_back(std::string(source) + ": [leds] describes slot " + std::to_string(slot) + ", which [board] does not have");
  for (const auto& [slot, _] : c.leds.gpio_slots)
    if (!board_slots.contains(slot)) c.warnings.push_back(std::string(source) + ": [leds] describes slot " + std::to_string(slot) + ", which [board] does not have");
  return c;
}

Config load_config(const std::filesystem::path& file) {
  auto c = parse_config(read_file(file, "the config file"), file.string());
  if (!c.s3_credentials_file.empty() && c.store.starts_with("s3://")) read_credentials(c);
  return c;
}

}  // namespace bodydock::dock
