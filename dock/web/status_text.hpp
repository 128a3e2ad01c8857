#pragma once
/// The status (web/status.hpp's JSON) as a terminal table: one row per slot with its LED,
/// state, camera, battery, temperature, progress bar and rate; the uplink, queue and spool;
/// the last events. `dockctl status` and the demo's live table both print it.

#include <boost/json/object.hpp>

#include <string>

namespace bodydock::dock::web {

/// `ansi`: colour the LED column and alerts with ANSI escapes (a terminal).
std::string render_status_text(const boost::json::object& status, bool ansi, std::size_t events = 6);

}  // namespace bodydock::dock::web
