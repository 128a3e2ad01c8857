#include "dock/web/status_text.hpp"

#include <boost/json/value.hpp>

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <ctime>
#include <sstream>

namespace bodydock::dock::web {

namespace json = boost::json;

namespace {

std::string bar(double fraction, int width) {
  const int full = static_cast<int>(std::lround(std::clamp(fraction, 0.0, 1.0) * width));
  return std::string(static_cast<std::size_t>(full), '#') + std::string(static_cast<std::size_t>(width - full), '.');
}

const char* ansi_colour(std::string_view colour) {
  if (colour == "green") return "\x1b[32m";
  if (colour == "blue") return "\x1b[34m";
  if (colour == "amber") return "\x1b[33m";
  if (colour == "red") return "\x1b[31m";
  if (colour == "white") return "\x1b[37m";
  return "\x1b[90m";
}

std::string text(const json::value& v) { return v.is_string() ? std::string(v.as_string()) : std::string(); }
double number(const json::value& v) { return v.is_number() ? v.to_number<double>() : 0.0; }
const json::value& at(const json::object& o, std::string_view key) {
  static const json::value null;
  const auto it = o.find(key);
  return it == o.end() ? null : it->value();
}

std::string mib(double bytes) {
  char b[32];
  std::snprintf(b, sizeof b, "%.1f MiB", bytes / (1 << 20));
  return b;
}

}  // namespace

std::string render_status_text(const json::object& st, bool ansi, std::size_t events) {
  const char* reset = ansi ? "\x1b[0m" : "";
  std::ostringstream out;
  char line[512];
  std::snprintf(line, sizeof line, "%-4s %-18s %-18s %-9s %-5s %-6s %-24s %8s  %s\n", "slot", "LED", "state", "camera", "batt", "temp", "progress",
                "MB/s", "detail");
  out << line;
  const auto& slots = at(st, "slots");
  if (slots.is_array()) {
    for (const auto& v : slots.as_array()) {
      if (!v.is_object()) continue;
      const auto& s = v.as_object();
      const auto& led = at(s, "led").is_object() ? at(s, "led").as_object() : json::object();
      const auto colour = text(at(led, "colour"));
      const auto pattern = text(at(led, "pattern"));
      std::string led_text = colour;
      if (pattern != "off" && !pattern.empty()) led_text.append(" ").append(pattern);
      const auto state = text(at(s, "state"));
      const double total = number(at(s, "bytes_total")), done = number(at(s, "bytes_done"));
      const bool safe = state == "done" || state == "charging";
      const double frac = total > 0 ? done / total : (safe ? 1.0 : 0.0);
      // Battery: "55%+" while charging, "55%!" when the dock stopped charging for heat.
      std::string batt = "-";
      if (at(s, "battery").is_number()) {
        batt = std::to_string(static_cast<int>(number(at(s, "battery")))) + "%";
        if (at(s, "charge_stopped_hot") == true) batt += "!";
        else if (at(s, "charging") == true) batt += "+";
      }
      char temp[16] = "-";
      if (at(s, "temperature_c").is_number()) std::snprintf(temp, sizeof temp, "%.1fC", number(at(s, "temperature_c")));
      const auto alert = text(at(s, "alert"));
      const std::string detail = alert.empty() ? text(at(s, "detail")) : "ALERT " + alert;
      const auto serial = text(at(s, "serial"));
      std::snprintf(line, sizeof line, "%-4d %s%-18s%s %-18s %-9s %-5s %-6s [%s] %8.1f  %s\n", static_cast<int>(number(at(s, "slot"))),
                    ansi ? ansi_colour(colour) : "", led_text.c_str(), reset, text(at(s, "state_text")).c_str(), serial.empty() ? "-" : serial.c_str(),
                    batt.c_str(), temp, bar(frac, 20).c_str(), number(at(s, "mbps")), detail.substr(0, 70).c_str());
      out << line;
    }
  }
  const auto& totals = at(st, "totals").is_object() ? at(st, "totals").as_object() : json::object();
  std::snprintf(line, sizeof line, "\nstored %.0f segments (%s), erased %.0f, quarantined %.0f\n", number(at(totals, "segments_stored")),
                mib(number(at(totals, "stored_bytes"))).c_str(), number(at(totals, "segments_erased")), number(at(totals, "segments_quarantined")));
  out << line;
  const auto& up = at(st, "uplink").is_object() ? at(st, "uplink").as_object() : json::object();
  const auto& queue = at(st, "queue").is_object() ? at(st, "queue").as_object() : json::object();
  const auto alert = text(at(up, "alert"));
  std::string oldest;
  if (at(queue, "oldest_waiting_s").is_number()) oldest = ", oldest waiting " + std::to_string(static_cast<long long>(number(at(queue, "oldest_waiting_s")))) + " s";
  std::snprintf(line, sizeof line, "uplink: %s%s, %.0f segment(s) (%s) waiting%s, %.0f failed attempt(s)%s%s%s\n", text(at(up, "state")).c_str(),
                at(up, "paused") == true ? " (paused)" : "", number(at(queue, "items")), mib(number(at(queue, "bytes"))).c_str(), oldest.c_str(),
                number(at(up, "retries")), alert.empty() ? "" : (ansi ? "\x1b[31m ALERT " : " ALERT "), alert.substr(0, 120).c_str(),
                alert.empty() ? "" : reset);
  out << line;
  const auto clock = text(at(up, "clock_alert"));
  if (!clock.empty()) out << (ansi ? "\x1b[31m" : "") << "ALERT " << clock.substr(0, 160) << reset << "\n";
  const auto& spool = at(st, "spool").is_object() ? at(st, "spool").as_object() : json::object();
  if (!spool.empty()) {
    const double used = number(at(spool, "used_bytes")), limit = number(at(spool, "limit_bytes")), free = number(at(spool, "free_bytes"));
    out << "spool: " << mib(used) << " used" << (limit > 0 ? ", limit " + mib(limit) : std::string()) << ", " << mib(free) << " free on disk\n";
  }
  const auto& q = at(st, "quarantine");
  if (q.is_array() && !q.as_array().empty()) {
    out << "quarantine:\n";
    for (const auto& v : q.as_array()) {
      if (!v.is_object()) continue;
      const auto& e = v.as_object();
      out << "  " << text(at(e, "serial")) << " segment " << static_cast<long long>(number(at(e, "segment"))) << ": " << text(at(e, "reason"))
          << (at(e, "kept") == true ? " (kept on the camera)" : "") << "\n";
    }
  }
  const auto& ev = at(st, "events");
  if (ev.is_array() && events > 0) {
    out << "\nrecent events:\n";
    const auto& a = ev.as_array();
    const auto first = a.size() > events ? a.size() - events : 0;
    for (std::size_t i = first; i < a.size(); ++i)
      if (a[i].is_object()) out << text(at(a[i].as_object(), "text")) << "\n";
  }
  return out.str();
}

}  // namespace bodydock::dock::web
