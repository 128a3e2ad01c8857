#include "dock/log.hpp"

#include <unistd.h>

#include <boost/json/object.hpp>
#include <boost/json/serialize.hpp>

#include <chrono>
#include <ctime>
#include <cstdio>
#include <deque>
#include <mutex>

namespace bodydock::dock {
namespace {

std::mutex g_mutex;
std::deque<LogEntry> g_recent;
std::uint64_t g_seq = 0;

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
  static const bool journal = ::isatty(STDERR_FILENO) == 0;
  std::string text;
  if (json_.load()) {
    char when[32];
    const auto t = std::chrono::system_clock::to_time_t(std::chrono::system_clock::now());
    std::tm utc{};
    ::gmtime_r(&t, &utc);
    std::strftime(when, sizeof when, "%Y-%m-%dT%H:%M:%SZ", &utc);
    text = boost::json::serialize(boost::json::object{{"time", when}, {"priority", static_cast<int>(l)}, {"level", level_name(l)}, {"message", line}}) + "\n";
  } else if (journal) {
    text = "<" + std::to_string(static_cast<int>(l)) + ">" + std::string(line) + "\n";
  } else {
    text = std::string(level_name(l)) + ": " + std::string(line) + "\n";
  }
  const auto now = std::chrono::duration_cast<std::chrono::milliseconds>(std::chrono::system_clock::now().time_since_epoch()).count();
  std::lock_guard lock(g_mutex);
  g_recent.push_back(LogEntry{++g_seq, now, l, std::string(line)});
  if (g_recent.size() > 50) g_recent.pop_front();
  if (!quiet_.load()) std::fwrite(text.data(), 1, text.size(), stderr);
}

void log_if_failed(std::string_view what, std::exception_ptr e) {
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
  std::lock_guard lock(g_mutex);
  std::string out;
  const auto n = std::min(lines, g_recent.size());
  for (auto it = g_recent.end() - static_cast<std::ptrdiff_t>(n); it != g_recent.end(); ++it) out += it->text + "\n";
  return out;
}

std::vector<LogEntry> Log::recent_entries(std::size_t lines) {
  std::lock_guard lock(g_mutex);
  const auto n = std::min(lines, g_recent.size());
  return {g_recent.end() - static_cast<std::ptrdiff_t>(n), g_recent.end()};
}

}  // namespace bodydock::dock
