// The log's rate limit on repeated lines: a flood prints a burst and one summary with the
// right count, a line that differs is never held back, the window reopens, JSON summaries are
// JSON, and the count survives lines pushed out of the table and several threads.
#include "dock/log.hpp"

#include <boost/json/parse.hpp>
#include <boost/json/value.hpp>
#include <boost/test/unit_test.hpp>

#include <sys/wait.h>
#include <unistd.h>

#include <cerrno>
#include <chrono>
#include <cstdlib>
#include <map>
#include <string>
#include <string_view>
#include <thread>
#include <vector>

using namespace bodydock;
using dock::Level;
using dock::Log;
using namespace std::chrono_literals;

namespace {

/// The log's output, captured; the default limit (5 per 60 s) and text format. Restored after.
struct Captured {
  std::vector<std::string> lines;

  Captured() {
    Log::set_json(false);
    Log::set_repeat_limit(5, 60s);  // forgets what earlier tests counted
    Log::set_sink([this](std::string_view text) { lines.emplace_back(text); });
  }
  ~Captured() {
    Log::set_repeat_limit(5, 60s);  // summaries still due come here, not to stderr
    Log::set_sink({});
    Log::set_json(false);
  }
  Captured(const Captured&) = delete;
  Captured& operator=(const Captured&) = delete;

  /// A text line without its "<4>" or "warning: " prefix and its newline.
  static std::string body(const std::string& line) {
    BOOST_REQUIRE(!line.empty() && line.back() == '\n');
    const auto start = line.front() == '<' ? line.find('>') + 1 : line.find(": ") + 2;
    return line.substr(start, line.size() - 1 - start);
  }
  [[nodiscard]] std::size_t count(const std::string& text) const {
    std::size_t n = 0;
    for (const auto& l : lines) n += body(l) == text ? 1 : 0;
    return n;
  }
  /// How many times each text was printed.
  [[nodiscard]] std::map<std::string, std::size_t> tally() const {
    std::map<std::string, std::size_t> out;
    for (const auto& l : lines) ++out[body(l)];
    return out;
  }
  [[nodiscard]] std::vector<std::string> bodies() const {
    std::vector<std::string> out;
    for (const auto& l : lines) out.push_back(body(l));
    return out;
  }
};

std::string summary(std::uint64_t n, const std::string& text) { return "last message repeated " + std::to_string(n) + " more times: " + text; }

/// Waits for `window` to pass on the clock the log counts with (nothing else would tell).
void outlast(std::chrono::steady_clock::time_point start, std::chrono::milliseconds window) {
  while (std::chrono::steady_clock::now() - start < window + 5ms) std::this_thread::sleep_for(window / 10);
}

}  // namespace

// Inside a namespace of ours: the suite's namespace `log` would clash with ::log from <cmath>.
namespace bodydock::test {

BOOST_AUTO_TEST_SUITE(log)

BOOST_FIXTURE_TEST_CASE(a_flood_prints_the_burst_and_one_summary, Captured) {
  const std::string flood = "slot 3 usb 1-1.4: device descriptor read error -71";
  for (int i = 0; i < 10000; ++i) dock::log(Level::warning, flood);
  BOOST_TEST(lines.size() == 5u);
  BOOST_TEST(count(flood) == 5u);
  // The web page's event list is not flooded either.
  const auto entries = Log::recent_entries(50);
  std::size_t kept = 0;
  for (const auto& e : entries) kept += e.text == flood ? 1 : 0;
  BOOST_TEST(kept == 5u);

  Log::flush_repeats();
  BOOST_REQUIRE(lines.size() == 6u);
  BOOST_TEST(body(lines[5]) == summary(9995, flood));
  BOOST_TEST((lines[5].rfind("<4>", 0) == 0 || lines[5].rfind("warning: ", 0) == 0), "the summary has the flood's level: " << lines[5]);
  BOOST_TEST(Log::recent_entries(1).at(0).text == summary(9995, flood));
  Log::flush_repeats();  // said once
  BOOST_TEST(lines.size() == 6u);
}

BOOST_FIXTURE_TEST_CASE(different_lines_are_never_suppressed, Captured) {
  const std::string flood = "camera BC-0001: bad frame";
  const std::string long_a = std::string(600, 'a') + " tail A";  // the same first 600 bytes
  const std::string long_b = std::string(600, 'a') + " tail B";
  for (int i = 0; i < 1000; ++i) {
    dock::log(Level::warning, flood);
    dock::log(Level::warning, "segment ", i, " stored");  // every one different
    if (i < 5) {
      dock::log(Level::error, flood);  // another level: another line
      dock::log(Level::warning, long_a);
      dock::log(Level::warning, long_b);
    }
  }
  auto printed = tally();
  for (int i = 0; i < 1000; ++i) BOOST_TEST_CONTEXT("segment " << i) BOOST_TEST(printed["segment " + std::to_string(i) + " stored"] == 1u);
  BOOST_TEST(printed[flood] == 10u);  // five warnings, five errors
  BOOST_TEST(printed[long_a] == 5u);
  BOOST_TEST(printed[long_b] == 5u);
  Log::flush_repeats();
  BOOST_TEST(count(summary(995, flood)) == 1u);
}

BOOST_FIXTURE_TEST_CASE(after_the_window_the_line_prints_again, Captured) {
  Log::set_repeat_limit(2, 100ms);
  const auto start = std::chrono::steady_clock::now();
  for (int i = 0; i < 7; ++i) dock::log(Level::warning, "uplink: connection refused");
  BOOST_TEST(lines.size() == 2u);
  outlast(start, 100ms);
  // Without a flush: the next line of any kind brings the summary, before itself.
  dock::log(Level::warning, "uplink: connection refused");
  const std::vector<std::string> expected{"uplink: connection refused", "uplink: connection refused",
                                          summary(5, "uplink: connection refused"), "uplink: connection refused"};
  BOOST_TEST(bodies() == expected, boost::test_tools::per_element());

  // A flood that stops is summarised by whatever is logged next, once its window is over.
  const auto second = std::chrono::steady_clock::now();
  for (int i = 0; i < 3; ++i) dock::log(Level::warning, "uplink: connection refused");
  BOOST_TEST(lines.size() == 5u);
  outlast(second, 100ms);
  dock::log(Level::notice, "slot 1: camera docked");
  BOOST_REQUIRE(lines.size() == 7u);
  BOOST_TEST(body(lines[5]) == "last message repeated 2 more times: uplink: connection refused");
  BOOST_TEST(body(lines[6]) == "slot 1: camera docked");
}

BOOST_FIXTURE_TEST_CASE(json_summary_is_valid_json, Captured) {
  Log::set_json(true);
  // Cut at 120 bytes this would end inside a two-byte character.
  std::string flood = "x";
  for (int i = 0; i < 100; ++i) flood += "\xC3\xA9";  // é
  for (int i = 0; i < 100; ++i) dock::log(Level::error, flood);
  Log::flush_repeats();
  BOOST_REQUIRE(lines.size() == 6u);
  for (const auto& line : lines) {
    BOOST_TEST_CONTEXT(line) {
      boost::system::error_code ec;
      const auto v = boost::json::parse(line, ec);
      BOOST_REQUIRE(!ec);
      BOOST_TEST(v.at("priority").to_number<int>() == 3);
      BOOST_TEST(std::string(v.at("level").as_string()) == "error");
    }
  }
  const auto last = boost::json::parse(lines.back());
  BOOST_TEST(last.at("repeated").to_number<int>() == 95);
  const std::string message(last.at("message").as_string());
  const std::string expected_start = "last message repeated 95 more times: x\xC3\xA9";
  BOOST_TEST(message.rfind(expected_start, 0) == 0u, message);
  BOOST_TEST(message.size() < flood.size());
  BOOST_TEST(message.substr(message.size() - 3) == "...");
  BOOST_TEST(!boost::json::parse(lines.front()).as_object().contains("repeated"));
}

BOOST_FIXTURE_TEST_CASE(a_line_pushed_out_of_the_table_is_summarised_not_lost, Captured) {
  dock::log(Level::warning, "the first flood");
  for (int i = 0; i < 9; ++i) dock::log(Level::warning, "the first flood");
  BOOST_TEST(count("the first flood") == 5u);
  // Far more distinct lines than the log tracks: the first flood's count is printed on its way out.
  for (int i = 0; i < 100; ++i) dock::log(Level::warning, "line ", i);
  BOOST_TEST(count(summary(5, "the first flood")) == 1u);
  auto printed = tally();
  for (int i = 0; i < 100; ++i) BOOST_TEST(printed["line " + std::to_string(i)] == 1u);
}

BOOST_FIXTURE_TEST_CASE(floods_from_several_threads_are_counted_exactly, Captured) {
  constexpr int kThreads = 4;
  constexpr int kEach = 2500;
  std::vector<std::thread> threads;
  for (int t = 0; t < kThreads; ++t)
    threads.emplace_back([] {
      for (int i = 0; i < kEach; ++i) dock::log(Level::warning, "hub 1-1: over-current");
    });
  for (auto& t : threads) t.join();
  Log::flush_repeats();
  BOOST_TEST(count("hub 1-1: over-current") == 5u);
  BOOST_TEST(count(summary(kThreads * kEach - 5, "hub 1-1: over-current")) == 1u);
  BOOST_TEST(lines.size() == 6u);
}

BOOST_AUTO_TEST_CASE(the_summary_is_printed_at_exit) {
  // A child process floods and exits with nothing else to say; its stderr comes back here.
  int fds[2];
  BOOST_REQUIRE(::pipe(fds) == 0);
  const pid_t child = ::fork();
  BOOST_REQUIRE(child >= 0);
  if (child == 0) {
    ::dup2(fds[1], STDERR_FILENO);
    ::close(fds[0]);
    Log::set_sink({});
    Log::set_json(false);
    Log::set_repeat_limit(1, 60s);
    for (int i = 0; i < 10; ++i) dock::log(Level::warning, "port 1-1.2: over-current");
    std::exit(0);  // static destructors run: that is where the summary comes from
  }
  ::close(fds[1]);
  std::string out;
  char buf[4096];
  for (ssize_t n; (n = ::read(fds[0], buf, sizeof buf)) != 0;) {
    if (n < 0 && errno == EINTR) continue;
    BOOST_REQUIRE(n > 0);
    out.append(buf, static_cast<std::size_t>(n));
  }
  ::close(fds[0]);
  int status = 0;
  ::waitpid(child, &status, 0);
  BOOST_TEST_CONTEXT(out) {
    BOOST_TEST(out.find("port 1-1.2: over-current\n") != std::string::npos);
    BOOST_TEST(out.find(summary(9, "port 1-1.2: over-current") + "\n") != std::string::npos);
  }
}

BOOST_FIXTURE_TEST_CASE(burst_zero_prints_every_line, Captured) {
  Log::set_repeat_limit(0, 60s);
  for (int i = 0; i < 50; ++i) dock::log(Level::warning, "same");
  BOOST_TEST(count("same") == 50u);
}

BOOST_AUTO_TEST_SUITE_END()

}  // namespace bodydock::test
