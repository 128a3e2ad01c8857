#pragma once
/// One log line per event on stderr. Under journald (stderr not a terminal) lines carry the
/// syslog priority prefix "<N>"; on a terminal a short level word. Context goes first in the
/// line ("slot 2 BC-0001 seg 7: ..."). Never log keys, tokens or passwords.

#include <atomic>
#include <cstdint>
#include <exception>
#include <sstream>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

namespace bodydock::dock {

enum class Level { error = 3, warning = 4, notice = 5, info = 6, debug = 7 };
const char* level_name(Level l) noexcept;

/// A logged line as the web page's event list shows it.
struct LogEntry {
  std::uint64_t seq = 0;     ///< counts every line since start
  std::int64_t unix_ms = 0;
  Level level = Level::info;
  std::string text;
};

class Log {
 public:
  static void set_level(Level max) { max_.store(max); }
  /// While a live table owns the terminal, lines are kept for it instead of printed.
  static void set_quiet(bool quiet) { quiet_.store(quiet); }
  /// One JSON object per line ({"time", "priority", "level", "message"}) for log shipping,
  /// instead of priority-prefixed text.
  static void set_json(bool json) { json_.store(json); }
  static bool enabled(Level l) { return static_cast<int>(l) <= static_cast<int>(max_.load()); }
  static void write(Level l, std::string_view line);
  /// The last few lines, newest last (the live table shows them under the slots).
  static std::string recent(std::size_t lines);
  /// The last few entries (at most 50 are kept), oldest first.
  static std::vector<LogEntry> recent_entries(std::size_t lines);

 private:
  static inline std::atomic<Level> max_{Level::info};
  static inline std::atomic<bool> quiet_{false};
  static inline std::atomic<bool> json_{false};
};

/// Concatenates any streamable values: cat("slot ", 2, ": ", msg).
template <typename... Args>
std::string cat(Args&&... args) {
  std::ostringstream s;
  (s << ... << std::forward<Args>(args));
  return s.str();
}

template <typename... Args>
void log(Level l, Args&&... args) {
  if (Log::enabled(l)) Log::write(l, cat(std::forward<Args>(args)...));
}

/// Completion for co_spawn: logs what ended a coroutine with an exception, naming it.
void log_if_failed(std::string_view what, std::exception_ptr e);

}  // namespace bodydock::dock
