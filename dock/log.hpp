#pragma once
/// One log line per event on stderr. Under journald (stderr not a terminal) lines carry the
/// syslog priority prefix "<N>"; on a terminal a short level word. Context goes first in the
/// line ("slot 2 BC-0001 seg 7: ..."). Never log keys, tokens or passwords.
///
/// Repeats are rate-limited, so a hostile or broken device cannot flood the journal (or the
/// web page's event list) with one line thousands of times a second. The rule, per line (the
/// same level and the same text; a line differing in anything else is another line):
///  - its first occurrence opens a window (60 s); the first `burst` occurrences (5) in the
///    window are printed, later ones in the window are counted, not printed;
///  - when the window has ended, the count is printed as one line at the same level,
///    "last message repeated N more times: <text, cut at 120 bytes>", and the next
///    occurrence opens a new window. That summary is written by the next log call of any line
///    (the daemon always has more to say), by flush_repeats(), and at process exit;
///  - only the 32 most recently seen lines are tracked (each keeps at most 512 bytes of its
///    text); when a 33rd pushes one out, that one's summary is printed first.
/// Lines are matched by a hash and then compared byte for byte, so a different line is never
/// suppressed (past 512 bytes the comparison is the first 512 bytes, the length and a 64-bit
/// hash of the whole). Suppressed lines are not kept for recent() either; their summary is.

#include <atomic>
#include <chrono>
#include <cstdint>
#include <exception>
#include <functional>
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
  /// instead of priority-prefixed text; a repeat summary also carries "repeated": N.
  static void set_json(bool json) { json_.store(json); }
  static bool enabled(Level l) { return static_cast<int>(l) <= static_cast<int>(max_.load()); }
  /// Prints `line` unless it is a suppressed repeat (see the top of this file).
  static void write(Level l, std::string_view line);
  /// At most `burst` identical lines are printed per `window` (defaults 5 and 60 s); burst 0
  /// prints every line. Summaries still due are printed first and the count starts afresh.
  static void set_repeat_limit(unsigned burst, std::chrono::milliseconds window);
  /// Prints the summary of every line suppressed so far, window ended or not (shutdown, tests).
  /// A flood that goes on is still limited until its window ends.
  static void flush_repeats();
  /// Receives each formatted line (newline included) instead of stderr; empty: stderr again.
  /// For tests. Called under the log's lock: a sink must not log.
  using Sink = std::function<void(std::string_view text)>;
  static void set_sink(Sink sink);
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
void log_if_failed(std::string_view what, const std::exception_ptr& e);

}  // namespace bodydock::dock
