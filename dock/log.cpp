#include "dock/log.hpp"

#include <unistd.h>

#include <boost/json/object.hpp>
#include <boost/json/serialize.hpp>

#include <algorithm>
#include <chrono>
#include <ctime>
#include <cstdio>
#include <deque>
#include <functional>
#include <mutex>
#include <string>
#include <vector>

namespace bodydock::dock {
namespace {

using Clock = std::chrono::steady_clock;

constexpr std::size_t kTracked = 32;       ///< lines whose repeats are counted
constexpr std::size_t kKeptText = 512;     ///< bytes of a tracked line kept to compare with
constexpr std::size_t kSummaryText = 120;  ///< bytes of the line quoted in its summary

/// A line seen lately: what its window printed and held back.
struct Repeat {
  std::uint64_t hash = 0;
  Level level = Level::info;
  std::size_t size = 0;
  std::string text;  ///< the first kKeptText bytes
  Clock::time_point window_start;
  std::uint64_t seen = 0;        ///< in this window
  std::uint64_t suppressed = 0;  ///< not printed yet, not summarised yet
  std::uint64_t last_use = 0;    ///< for evicting the least recently seen
};

/// How lines are written, read from Log's switches by the caller.
struct Style {
  bool json;
  bool quiet;
};

struct LogState {
  std::mutex mutex;
  std::deque<LogEntry> recent;
  std::uint64_t seq = 0;
  Log::Sink sink;
  unsigned burst = 5;
  Clock::duration window = std::chrono::seconds(60);
  std::vector<Repeat> repeats;  ///< at most kTracked
  std::uint64_t uses = 0;
};

/// Summaries still due are printed when the process exits normally.
struct FlushAtExit {
  FlushAtExit() = default;
  FlushAtExit(const FlushAtExit&) = delete;
  FlushAtExit& operator=(const FlushAtExit&) = delete;
  ~FlushAtExit() { Log::flush_repeats(); }
};

LogState& state() {
  static LogState s;
  static FlushAtExit flush;  // constructed after `s`, so destroyed (and flushing) before it
  return s;
}

std::uint64_t line_hash(Level l, std::string_view line) noexcept {
  return std::hash<std::string_view>{}(line) ^ (static_cast<std::uint64_t>(l) * 0x9e3779b97f4a7c15ull);
}

/// At most `max` bytes of `text`, not ending inside a UTF-8 sequence (JSON readers reject that).
std::string_view cut(std::string_view text, std::size_t max) noexcept {
  if (text.size() <= max) return text;
  while (max > 0 && (static_cast<unsigned char>(text[max]) & 0xC0) == 0x80) --max;
  return text.substr(0, max);
}

/// Prints one line and keeps it for recent(). `repeated` > 0 marks a summary (JSON carries it).
void emit(LogState& s, Style style, Level l, std::string_view line, std::uint64_t repeated) {
  static const bool journal = ::isatty(STDERR_FILENO) == 0;
  std::string text;
  if (style.json) {
    char when[32];
    const auto t = std::chrono::system_clock::to_time_t(std::chrono::system_clock::now());
    std::tm utc{};
    ::gmtime_r(&t, &utc);
    std::strftime(when, sizeof when, "%Y-%m-%dT%H:%M:%SZ", &utc);
    boost::json::object o{{"time", when}, {"priority", static_cast<int>(l)}, {"level", level_name(l)}, {"message", line}};
    if (repeated > 0) o["repeated"] = repeated;
    text = boost::json::serialize(o) + "\n";
  } else if (journal) {
    text = "<" + std::to_string(static_cast<int>(l)) + ">" + std::string(line) + "\n";
  } else {
    text = std::string(level_name(l)) + ": " + std::string(line) + "\n";
  }
  const auto now = std::chrono::duration_cast<std::chrono::milliseconds>(std::chrono::system_clock::now().time_since_epoch()).count();
  s.recent.push_back(LogEntry{++s.seq, now, l, std::string(line)});
  if (s.recent.size() > 50) s.recent.pop_front();
  if (style.quiet) return;
  if (s.sink) s.sink(text);
  else std::fwrite(text.data(), 1, text.size(), stderr);
}

void emit_summary(LogState& s, Style style, Repeat& r) {
  if (r.suppressed == 0) return;
  const auto quoted = cut(r.text, kSummaryText);
  const bool whole = quoted.size() == r.size;
  emit(s, style, r.level,
       "last message repeated " + std::to_string(r.suppressed) + (r.suppressed == 1 ? " more time: " : " more times: ") +
           std::string(quoted) + (whole ? "" : "..."),
       r.suppressed);
  r.suppressed = 0;
}

Repeat* find(LogState& s, Level l, std::string_view line, std::uint64_t hash) {
  for (auto& r : s.repeats)
    if (r.hash == hash && r.level == l && r.size == line.size() && r.text == line.substr(0, kKeptText)) return &r;
  return nullptr;
}

/// Starts counting `line`, in place of the least recently seen line when the table is full.
Repeat& track(LogState& s, Style style, Level l, std::string_view line, std::uint64_t hash, Clock::time_point now) {
  Repeat* r = nullptr;
  if (s.repeats.size() < kTracked) {
    r = &s.repeats.emplace_back();
  } else {
    r = &s.repeats.front();
    for (auto& candidate : s.repeats)
      if (candidate.last_use < r->last_use) r = &candidate;
    emit_summary(s, style, *r);
  }
  *r = Repeat{hash, l, line.size(), std::string(line.substr(0, kKeptText)), now, 0, 0, 0};
  return *r;
}

}  // namespace

const char* level_name(Level l) noexcept {
  switch (l) {
    case Level::error: return "error";
    case Level::warning: return "warning";
    case Level::notice: return "notice";
    case Level::info: return "info";
    case Level::debug: return "debug";
  }
  return "?";
}

void Log::write(Level l, std::string_view line) {
  const auto hash = line_hash(l, line);
  const auto now = Clock::now();
  const Style style{json_.load(), quiet_.load()};
  auto& s = state();
  std::lock_guard lock(s.mutex);
  // Floods that have ended are summarised first, before anything newer.
  for (auto& r : s.repeats)
    if (r.suppressed > 0 && now - r.window_start >= s.window) emit_summary(s, style, r);
  if (s.burst > 0) {
    Repeat* r = find(s, l, line, hash);
    if (r == nullptr) {
      r = &track(s, style, l, line, hash, now);
    } else if (now - r->window_start >= s.window) {
      r->window_start = now;  // its summary went out above
      r->seen = 0;
    }
    r->last_use = ++s.uses;
    if (++r->seen > s.burst) {
      ++r->suppressed;
      return;
    }
  }
  emit(s, style, l, line, 0);
}

void Log::flush_repeats() {
  const Style style{json_.load(), quiet_.load()};
  auto& s = state();
  std::lock_guard lock(s.mutex);
  for (auto& r : s.repeats) emit_summary(s, style, r);
}

void Log::set_repeat_limit(unsigned burst, std::chrono::milliseconds window) {
  const Style style{json_.load(), quiet_.load()};
  auto& s = state();
  std::lock_guard lock(s.mutex);
  for (auto& r : s.repeats) emit_summary(s, style, r);
  s.repeats.clear();
  s.burst = burst;
  s.window = window;
}

void Log::set_sink(Sink sink) {
  auto& s = state();
  std::lock_guard lock(s.mutex);
  s.sink = std::move(sink);
}

void log_if_failed(std::string_view what, const std::exception_ptr& e) {
  if (!e) return;
  try {
    std::rethrow_exception(e);
  } catch (const std::exception& ex) {
    log(Level::error, what, " stopped unexpectedly: ", ex.what());
  } catch (...) {
    log(Level::error, what, " stopped unexpectedly");
  }
}

std::string Log::recent(std::size_t lines) {
  auto& s = state();
  std::lock_guard lock(s.mutex);
  std::string out;
  const auto n = std::min(lines, s.recent.size());
  for (auto it = s.recent.end() - static_cast<std::ptrdiff_t>(n); it != s.recent.end(); ++it) out += it->text + "\n";
  return out;
}

std::vector<LogEntry> Log::recent_entries(std::size_t lines) {
  auto& s = state();
  std::lock_guard lock(s.mutex);
  const auto n = std::min(lines, s.recent.size());
  return {s.recent.end() - static_cast<std::ptrdiff_t>(n), s.recent.end()};
}

}  // namespace bodydock::dock
