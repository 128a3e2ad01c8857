// Slot lights: the sticker table, the LED class backend against a fake /sys/class/leds, the
// slot state and its retries, the dock's lights loop, software blinking on GPIO lines (fake
// lines, real timers) and the board file.
#include "dock/dock.hpp"
#include "dock/lights.hpp"
#include "dock/local_sink.hpp"
#include "dock/log.hpp"
#include "hw/leds.hpp"
#include "support/fleet.hpp"
#include "support/sandbox.hpp"

#include <boost/asio/co_spawn.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/asio/thread_pool.hpp>
#include <boost/test/unit_test.hpp>

#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <filesystem>
#include <fstream>
#include <functional>
#include <map>
#include <set>
#include <sstream>
#include <string>
#include <utility>
#include <vector>

using namespace bodydock;
using hw::LedColour;
using hw::LedPattern;
using hw::SlotLight;
namespace fs = std::filesystem;
namespace asio = boost::asio;
using namespace std::chrono_literals;

namespace {

// --- a fake LED class tree ------------------------------------------------------------------

void put_file(const fs::path& p, const std::string& text) {
  std::ofstream out(p, std::ios::binary | std::ios::trunc);
  out << text;
}

/// An LED directory as the kernel shows it with the timer trigger's files already present (a
/// plain directory cannot make them appear on demand).
fs::path make_led(const fs::path& root, const std::string& name, const std::string& max_brightness = "1") {
  const auto dir = root / name;
  fs::create_directories(dir);
  put_file(dir / "brightness", "0");
  put_file(dir / "trigger", "none");
  put_file(dir / "delay_on", "500");
  put_file(dir / "delay_off", "500");
  if (!max_brightness.empty()) put_file(dir / "max_brightness", max_brightness);
  return dir;
}

fs::path make_multicolour(const fs::path& root, const std::string& name, const std::string& index, const std::string& max) {
  const auto dir = make_led(root, name, max);
  put_file(dir / "multi_index", index + "\n");
  put_file(dir / "multi_intensity", "0 0 0");
  return dir;
}

std::string attr(const fs::path& led, const char* name) { return test::slurp_text(led / name); }

/// Makes an attribute refuse writes, as delay_on does between the timer trigger creating it
/// (root's) and udev handing it to the service group. Modes do not stop root, so for root a
/// directory takes the file's place (EISDIR rather than EACCES: a failed write all the same).
void refuse_writes(const fs::path& attribute) {
  if (::geteuid() == 0) {
    fs::remove(attribute);
    fs::create_directory(attribute);
  } else {
    fs::permissions(attribute, fs::perms::owner_read | fs::perms::group_read | fs::perms::others_read);
  }
}

/// udev's chgrp, as far as the service can tell: the attribute takes writes again.
void allow_writes(const fs::path& attribute) {
  if (fs::is_directory(attribute)) {
    fs::remove(attribute);
    put_file(attribute, "500");
  } else {
    fs::permissions(attribute, fs::perms(0644));
  }
}

/// A tree with slot 1 on three single-colour LEDs and slot 2 on another three.
struct SysfsTree {
  test::TempDir dir;
  std::vector<std::string> errors;
  hw::SysfsLeds leds;

  SysfsTree()
      : leds(
            {
                {1, hw::SlotLedNames{"dock:red:slot1", "dock:green:slot1", "dock:blue:slot1"}},
                {2, hw::SlotLedNames{"dock:red:slot2", "dock:green:slot2", "dock:blue:slot2"}},
            },
            [this](std::string e) { errors.push_back(std::move(e)); }, dir.path()) {
    for (int slot : {1, 2})
      for (const char* c : {"red", "green", "blue"}) make_led(dir.path(), std::string("dock:") + c + ":slot" + std::to_string(slot));
  }
  fs::path led(const char* colour, int slot = 1) const { return dir.path() / (std::string("dock:") + colour + ":slot" + std::to_string(slot)); }
  void check_dark(const char* colour, int slot = 1) const {
    BOOST_TEST_CONTEXT(colour << " of slot " << slot) {
      BOOST_CHECK_EQUAL(attr(led(colour, slot), "trigger"), "none");
      BOOST_CHECK_EQUAL(attr(led(colour, slot), "brightness"), "0");
    }
  }
};

// --- fake GPIO lines ------------------------------------------------------------------------

struct LineChange {
  std::chrono::steady_clock::time_point at;
  unsigned slot;
  bool red, green, blue;
  [[nodiscard]] bool lit() const { return red || green || blue; }
};

class FakeGpio final : public hw::GpioOutput {
 public:
  explicit FakeGpio(std::vector<LineChange>& log) : log_(log) {}
  bool set(unsigned slot, bool red, bool green, bool blue) override {
    log_.push_back({std::chrono::steady_clock::now(), slot, red, green, blue});
    if (failures > 0) {
      --failures;
      return false;
    }
    return true;
  }
  int failures = 0;  ///< the next n calls do not reach the hardware

 private:
  std::vector<LineChange>& log_;
};

struct GpioRig {
  asio::io_context ioc;
  std::vector<LineChange> log;
  FakeGpio* gpio = nullptr;
  std::unique_ptr<hw::GpioLeds> leds;

  GpioRig() {
    auto out = std::make_unique<FakeGpio>(log);
    gpio = out.get();
    leds = std::make_unique<hw::GpioLeds>(ioc.get_executor(), std::move(out));
  }
  /// Runs the loop until `done`; fails after `limit` instead of hanging.
  void run_until(const std::function<bool()>& done, std::chrono::milliseconds limit = 2000ms) {
    const auto deadline = std::chrono::steady_clock::now() + limit;
    while (!done() && std::chrono::steady_clock::now() < deadline) {
      ioc.run_one_for(10ms);
      if (ioc.stopped()) ioc.restart();
    }
    BOOST_REQUIRE_MESSAGE(done(), "watchdog: the lines did not change as expected within " << limit.count() << " ms");
  }
  /// Runs the loop until it has nothing left to do; true when that happened (no timer left
  /// armed) rather than the watchdog firing.
  bool runs_dry(std::chrono::milliseconds limit = 1000ms) {
    ioc.restart();
    const auto start = std::chrono::steady_clock::now();
    ioc.run_for(limit);
    return ioc.stopped() && std::chrono::steady_clock::now() - start < limit;
  }
};

long long ms_between(const LineChange& a, const LineChange& b) {
  return std::chrono::duration_cast<std::chrono::milliseconds>(b.at - a.at).count();
}

/// Checks that every change of `log` came on `p`'s schedule counted from the first: never
/// early (timers do not fire early), and not much late, even on a busy machine. A late change
/// does not push the later ones back.
void check_schedule(const std::vector<LineChange>& log, const LedPattern& p) {
  long long due = 0;
  for (std::size_t i = 0; i < log.size(); ++i) {
    BOOST_TEST_CONTEXT("change " << i << " due at " << due << " ms") {
      BOOST_CHECK_EQUAL(log[i].lit(), i % 2 == 0);
      BOOST_CHECK_GE(ms_between(log.front(), log[i]), due - 1);
      BOOST_CHECK_LE(ms_between(log.front(), log[i]), due + 100);
    }
    due += i % 2 == 0 ? p.on_ms : p.off_ms;
  }
}

// --- board files ----------------------------------------------------------------------------

const fs::path source_dir = fs::path(__FILE__).parent_path().parent_path().parent_path();

/// The text of `parse_led_board`'s refusal, or "" when it accepted.
std::string refusal(const std::string& toml) {
  try {
    hw::parse_led_board(toml, "board.toml");
  } catch (const std::invalid_argument& e) {
    return e.what();
  }
  return {};
}

void check_refused(const std::string& toml, const std::string& key, int line, const std::string& value = {}) {
  const auto why = refusal(toml);
  BOOST_TEST_MESSAGE("refused: " << why);
  BOOST_TEST_CONTEXT("refusal: " << why) {
    BOOST_CHECK_NE(why, "");
    BOOST_CHECK_NE(why.find("board.toml:" + std::to_string(line) + ":"), std::string::npos);
    BOOST_CHECK_NE(why.find(key), std::string::npos);
    if (!value.empty()) BOOST_CHECK_NE(why.find(value), std::string::npos);
  }
}

}  // namespace

// ============================================================================================

BOOST_AUTO_TEST_SUITE(sticker)

BOOST_AUTO_TEST_CASE(every_light_has_its_sticker_pattern) {
  struct Row {
    SlotLight light;
    LedColour colour;
    unsigned on_ms, off_ms;
    std::string name;
  };
  const Row table[] = {
      {SlotLight::empty, LedColour::off, 0, 0, "off"},
      {SlotLight::authenticating, LedColour::white, 250, 250, "fast blink"},
      {SlotLight::syncing, LedColour::blue, 1000, 1000, "slow blink"},
      {SlotLight::waiting_uplink, LedColour::amber, 200, 1800, "short flash"},
      {SlotLight::charging, LedColour::green, 1800, 200, "long on"},
      {SlotLight::done, LedColour::green, 1000, 0, "solid"},
      {SlotLight::attention, LedColour::red, 100, 100, "rapid blink"},
  };
  std::set<SlotLight> covered;
  for (const auto& row : table) {
    BOOST_TEST_CONTEXT(hw::light_name(row.light)) {
      const auto p = hw::pattern_for(row.light);
      BOOST_CHECK(p.colour == row.colour);
      BOOST_CHECK_EQUAL(p.on_ms, row.on_ms);
      BOOST_CHECK_EQUAL(p.off_ms, row.off_ms);
      BOOST_CHECK_EQUAL(p.name, row.name);
      covered.insert(row.light);
    }
  }
  BOOST_CHECK_EQUAL(covered.size(), hw::all_slot_lights.size());
  BOOST_CHECK(hw::pattern_for(SlotLight::empty).dark());
  BOOST_CHECK(hw::pattern_for(SlotLight::done).solid());
  for (auto light : {SlotLight::charging, SlotLight::authenticating, SlotLight::syncing, SlotLight::waiting_uplink, SlotLight::attention})
    BOOST_CHECK(hw::pattern_for(light).blinking());
}

BOOST_AUTO_TEST_CASE(no_two_lights_share_a_timing) {
  std::set<std::pair<unsigned, unsigned>> timings;
  for (auto light : hw::all_slot_lights) {
    const auto p = hw::pattern_for(light);
    BOOST_CHECK_MESSAGE(timings.emplace(p.on_ms, p.off_ms).second, hw::light_name(light) << " repeats another light's timing");
  }
  BOOST_CHECK_EQUAL(timings.size(), 7u);
}

BOOST_AUTO_TEST_CASE(names_and_colours) {
  const std::pair<SlotLight, std::string> lights[] = {
      {SlotLight::empty, "empty"},     {SlotLight::charging, "charging"},  {SlotLight::authenticating, "authenticating"},
      {SlotLight::syncing, "syncing"}, {SlotLight::waiting_uplink, "waiting for uplink"}, {SlotLight::done, "done"},
      {SlotLight::attention, "attention"}};
  for (const auto& [light, name] : lights) BOOST_CHECK_EQUAL(hw::light_name(light), name);

  using Rgb = std::array<std::uint8_t, 3>;
  const std::tuple<LedColour, std::string, Rgb> colours[] = {
      {LedColour::off, "off", {0, 0, 0}},       {LedColour::white, "white", {255, 255, 255}}, {LedColour::blue, "blue", {0, 0, 255}},
      {LedColour::amber, "amber", {255, 128, 0}}, {LedColour::green, "green", {0, 255, 0}},       {LedColour::red, "red", {255, 0, 0}}};
  for (const auto& [colour, name, value] : colours) {
    BOOST_CHECK_EQUAL(hw::colour_name(colour), name);
    BOOST_CHECK(hw::rgb(colour) == value);
  }
}

BOOST_AUTO_TEST_CASE(patterns_compare_by_what_they_look_like) {
  BOOST_CHECK(hw::pattern_for(SlotLight::done) == (LedPattern{LedColour::green, 1000, 0, "steady"}));
  BOOST_CHECK(!(hw::pattern_for(SlotLight::done) == hw::pattern_for(SlotLight::charging)));
  BOOST_CHECK(!(hw::pattern_for(SlotLight::syncing) == (LedPattern{LedColour::red, 1000, 1000, "slow blink"})));
  BOOST_CHECK(hw::pattern_for(SlotLight::empty) == (LedPattern{LedColour::red, 0, 0, "dark"}));  // dark is dark
}

BOOST_AUTO_TEST_SUITE_END()

// ============================================================================================

BOOST_AUTO_TEST_SUITE(sysfs_leds)

BOOST_FIXTURE_TEST_CASE(white_fast_blink_sets_the_timer_trigger_on_all_three, SysfsTree) {
  leds.show(1, hw::pattern_for(SlotLight::authenticating));
  BOOST_CHECK(errors.empty());
  for (const char* c : {"red", "green", "blue"}) {
    BOOST_TEST_CONTEXT(c) {
      // Exactly the value, without a trailing newline.
      BOOST_CHECK_EQUAL(attr(led(c), "trigger"), "timer");
      BOOST_CHECK_EQUAL(attr(led(c), "delay_on"), "250");
      BOOST_CHECK_EQUAL(attr(led(c), "delay_off"), "250");
      BOOST_CHECK_EQUAL(attr(led(c), "brightness"), "1");
    }
  }
  for (const char* c : {"red", "green", "blue"}) check_dark(c, 2);  // untouched
}

BOOST_FIXTURE_TEST_CASE(off_clears_the_trigger_then_the_brightness, SysfsTree) {
  leds.show(1, hw::pattern_for(SlotLight::attention));
  BOOST_CHECK_EQUAL(attr(led("red"), "trigger"), "timer");
  leds.show(1, hw::pattern_for(SlotLight::empty));
  for (const char* c : {"red", "green", "blue"}) check_dark(c);
  BOOST_CHECK(errors.empty());
}

BOOST_FIXTURE_TEST_CASE(solid_is_max_brightness_without_trigger, SysfsTree) {
  put_file(led("green") / "max_brightness", "7\n");
  leds.show(1, hw::pattern_for(SlotLight::syncing));
  leds.show(1, hw::pattern_for(SlotLight::done));
  BOOST_CHECK_EQUAL(attr(led("green"), "trigger"), "none");
  BOOST_CHECK_EQUAL(attr(led("green"), "brightness"), "7");
  check_dark("red");
  check_dark("blue");
  BOOST_CHECK(errors.empty());
}

BOOST_FIXTURE_TEST_CASE(unreadable_max_brightness_means_255, SysfsTree) {
  fs::remove(led("red") / "max_brightness");
  leds.show(1, hw::pattern_for(SlotLight::attention));
  BOOST_CHECK_EQUAL(attr(led("red"), "brightness"), "255");
  BOOST_CHECK_EQUAL(attr(led("red"), "delay_on"), "100");
  BOOST_CHECK_EQUAL(attr(led("red"), "delay_off"), "100");
}

BOOST_FIXTURE_TEST_CASE(amber_is_red_and_green_and_switches_blue_off, SysfsTree) {
  leds.show(1, hw::pattern_for(SlotLight::authenticating));
  leds.show(1, hw::pattern_for(SlotLight::waiting_uplink));
  for (const char* c : {"red", "green"}) {
    BOOST_TEST_CONTEXT(c) {
      BOOST_CHECK_EQUAL(attr(led(c), "trigger"), "timer");
      BOOST_CHECK_EQUAL(attr(led(c), "delay_on"), "200");
      BOOST_CHECK_EQUAL(attr(led(c), "delay_off"), "1800");
    }
  }
  check_dark("blue");
}

BOOST_FIXTURE_TEST_CASE(the_same_pattern_twice_writes_nothing, SysfsTree) {
  leds.show(1, hw::pattern_for(SlotLight::charging));
  const auto writes = leds.attribute_writes();
  BOOST_CHECK_GT(writes, 0u);
  // Were anything written, the trigger file would be missing (sysfs files are never created).
  fs::remove(led("green") / "trigger");
  leds.show(1, hw::pattern_for(SlotLight::charging));
  BOOST_CHECK_EQUAL(leds.attribute_writes(), writes);
  BOOST_CHECK(!fs::exists(led("green") / "trigger"));
  BOOST_CHECK(errors.empty());
}

BOOST_FIXTURE_TEST_CASE(a_missing_led_is_reported_not_thrown_and_retried, SysfsTree) {
  fs::remove_all(led("blue"));
  BOOST_CHECK_NO_THROW(leds.show(1, hw::pattern_for(SlotLight::syncing)));
  BOOST_REQUIRE_EQUAL(errors.size(), 1u);
  BOOST_CHECK_NE(errors[0].find("slot 1"), std::string::npos);
  BOOST_CHECK_NE(errors[0].find("dock:blue:slot1"), std::string::npos);
  BOOST_CHECK_NE(errors[0].find("No such file or directory"), std::string::npos);
  // The slot's other LEDs and the other slot still work.
  check_dark("red");
  leds.show(2, hw::pattern_for(SlotLight::syncing));
  BOOST_CHECK_EQUAL(attr(led("blue", 2), "trigger"), "timer");
  BOOST_CHECK_EQUAL(attr(led("blue", 2), "delay_on"), "1000");
  BOOST_CHECK_EQUAL(errors.size(), 1u);
  // The LED turns up (its driver loaded late): the same pattern is written this time.
  make_led(dir.path(), "dock:blue:slot1");
  leds.show(1, hw::pattern_for(SlotLight::syncing));
  BOOST_CHECK_EQUAL(attr(led("blue"), "trigger"), "timer");
  BOOST_CHECK_EQUAL(attr(led("blue"), "delay_off"), "1000");
  BOOST_CHECK_EQUAL(errors.size(), 1u);
}

BOOST_FIXTURE_TEST_CASE(a_retry_does_not_set_the_timer_trigger_again, SysfsTree) {
  refuse_writes(led("red") / "delay_on");
  leds.show(1, hw::pattern_for(SlotLight::attention));
  BOOST_CHECK(leds.pending(1));
  BOOST_CHECK(!leds.pending(2));
  BOOST_REQUIRE_EQUAL(errors.size(), 1u);
  BOOST_CHECK_NE(errors[0].find("delay_on"), std::string::npos);
  BOOST_CHECK_EQUAL(attr(led("red"), "trigger"), "timer");
  // As the kernel lists it. Written again, "timer" would recreate delay_on (root's again: the
  // same race) and the file would read just "timer".
  put_file(led("red") / "trigger", "none [timer] heartbeat");
  allow_writes(led("red") / "delay_on");
  leds.show(1, hw::pattern_for(SlotLight::attention));
  BOOST_CHECK(!leds.pending(1));
  BOOST_CHECK_EQUAL(attr(led("red"), "trigger"), "none [timer] heartbeat");
  BOOST_CHECK_EQUAL(attr(led("red"), "delay_on"), "100");
  BOOST_CHECK_EQUAL(attr(led("red"), "delay_off"), "100");
  BOOST_CHECK_EQUAL(errors.size(), 1u);
}

BOOST_FIXTURE_TEST_CASE(a_slot_without_leds_is_left_alone, SysfsTree) {
  const auto writes = leds.attribute_writes();
  leds.show(9, hw::pattern_for(SlotLight::attention));
  BOOST_CHECK_EQUAL(leds.attribute_writes(), writes);
  BOOST_CHECK(errors.empty());
}

BOOST_AUTO_TEST_CASE(a_board_lacking_a_colour_drives_what_it_has) {
  test::TempDir dir;
  std::vector<std::string> errors;
  const auto red = make_led(dir.path(), "dock:red:slot1");
  const auto green = make_led(dir.path(), "dock:green:slot1");
  hw::SysfsLeds leds({{1, hw::SlotLedNames{"dock:red:slot1", "dock:green:slot1", ""}}}, [&](std::string e) { errors.push_back(e); },
                     dir.path());
  leds.show(1, hw::pattern_for(SlotLight::authenticating));
  BOOST_CHECK_EQUAL(attr(red, "trigger"), "timer");
  BOOST_CHECK_EQUAL(attr(green, "trigger"), "timer");
  BOOST_CHECK(errors.empty());
}

BOOST_AUTO_TEST_CASE(multicolour_intensities_follow_multi_index) {
  test::TempDir dir;
  std::vector<std::string> errors;
  const auto rgb = make_multicolour(dir.path(), "dock:rgb:slot2", "green red blue", "255");
  hw::SysfsLeds leds({{2, hw::MulticolourLed{"dock:rgb:slot2"}}}, [&](std::string e) { errors.push_back(e); }, dir.path());

  leds.show(2, hw::pattern_for(SlotLight::waiting_uplink));  // amber 255,128,0
  BOOST_CHECK_EQUAL(attr(rgb, "multi_intensity"), "128 255 0");
  BOOST_CHECK_EQUAL(attr(rgb, "brightness"), "255");
  BOOST_CHECK_EQUAL(attr(rgb, "trigger"), "timer");
  BOOST_CHECK_EQUAL(attr(rgb, "delay_on"), "200");
  BOOST_CHECK_EQUAL(attr(rgb, "delay_off"), "1800");

  leds.show(2, hw::pattern_for(SlotLight::done));
  BOOST_CHECK_EQUAL(attr(rgb, "multi_intensity"), "255 0 0");
  BOOST_CHECK_EQUAL(attr(rgb, "trigger"), "none");
  BOOST_CHECK_EQUAL(attr(rgb, "brightness"), "255");

  leds.show(2, hw::pattern_for(SlotLight::empty));
  BOOST_CHECK_EQUAL(attr(rgb, "trigger"), "none");
  BOOST_CHECK_EQUAL(attr(rgb, "brightness"), "0");
  BOOST_CHECK(errors.empty());
}

BOOST_AUTO_TEST_CASE(multicolour_intensities_scale_to_max_brightness) {
  test::TempDir dir;
  std::vector<std::string> errors;
  const auto led = make_multicolour(dir.path(), "status", "red green blue white", "100");
  hw::SysfsLeds leds({{1, hw::MulticolourLed{"status"}}}, [&](std::string e) { errors.push_back(e); }, dir.path());
  leds.show(1, hw::pattern_for(SlotLight::waiting_uplink));
  BOOST_CHECK_EQUAL(attr(led, "multi_intensity"), "100 50 0 0");  // a white channel stays dark
  BOOST_CHECK_EQUAL(attr(led, "brightness"), "100");
  BOOST_CHECK(errors.empty());
}

BOOST_AUTO_TEST_CASE(multicolour_without_multi_index_is_reported) {
  test::TempDir dir;
  std::vector<std::string> errors;
  const auto led = make_led(dir.path(), "dock:rgb:slot1", "255");
  hw::SysfsLeds leds({{1, hw::MulticolourLed{"dock:rgb:slot1"}}}, [&](std::string e) { errors.push_back(e); }, dir.path());
  BOOST_CHECK_NO_THROW(leds.show(1, hw::pattern_for(SlotLight::done)));
  BOOST_REQUIRE_EQUAL(errors.size(), 1u);
  BOOST_CHECK_NE(errors[0].find("multi_index"), std::string::npos);
  BOOST_CHECK_NE(errors[0].find("dock:rgb:slot1"), std::string::npos);
  BOOST_CHECK_EQUAL(attr(led, "brightness"), "0");
}

BOOST_AUTO_TEST_SUITE_END()

// ============================================================================================

BOOST_AUTO_TEST_SUITE(slot_leds)

BOOST_AUTO_TEST_CASE(starts_dark_and_shows_every_light_on_every_slot) {
  hw::VirtualLeds backend;
  hw::SlotLeds lights(backend, 4);
  BOOST_CHECK_EQUAL(backend.writes(), 4u);
  for (unsigned slot = 1; slot <= 4; ++slot) {
    BOOST_CHECK(lights.light(slot) == SlotLight::empty);
    BOOST_REQUIRE(backend.current(slot));
    BOOST_CHECK(backend.current(slot)->dark());
  }
  BOOST_CHECK(!backend.current(5));
  for (unsigned slot = 1; slot <= 4; ++slot) {
    for (auto light : hw::all_slot_lights) {
      lights.set(slot, light);
      BOOST_CHECK(lights.light(slot) == light);
      BOOST_REQUIRE(backend.current(slot));
      BOOST_CHECK_EQUAL(backend.current(slot)->name, hw::pattern_for(light).name);
    }
  }
  // Slot 1 ends on attention, whatever the others do.
  BOOST_CHECK(lights.light(1) == SlotLight::attention);
}

BOOST_AUTO_TEST_CASE(writes_only_on_change) {
  hw::VirtualLeds backend;
  hw::SlotLeds lights(backend, 2);
  const auto start = backend.writes();
  lights.set(1, SlotLight::empty);
  BOOST_CHECK_EQUAL(backend.writes(), start);
  lights.set(1, SlotLight::syncing);
  lights.set(1, SlotLight::syncing);
  lights.set(1, SlotLight::syncing);
  BOOST_CHECK_EQUAL(backend.writes(), start + 1);
  lights.set(2, SlotLight::syncing);
  lights.set(1, SlotLight::done);
  lights.set(1, SlotLight::done);
  BOOST_CHECK_EQUAL(backend.writes(), start + 3);
  BOOST_CHECK(backend.current(2) == hw::pattern_for(SlotLight::syncing));
  BOOST_CHECK(backend.current(1) == hw::pattern_for(SlotLight::done));
}

BOOST_AUTO_TEST_CASE(slots_outside_the_dock_are_a_bug) {
  hw::VirtualLeds backend;
  hw::SlotLeds lights(backend, 2);
  BOOST_CHECK_THROW(lights.set(0, SlotLight::done), std::out_of_range);
  BOOST_CHECK_THROW(lights.set(3, SlotLight::done), std::out_of_range);
  BOOST_CHECK_THROW((void)lights.light(3), std::out_of_range);
}

BOOST_AUTO_TEST_CASE(refresh_retries_what_the_hardware_missed) {
  test::TempDir dir;
  std::vector<std::string> errors;
  hw::SysfsLeds backend({{1, hw::SlotLedNames{"dock:red:slot1", "", ""}}}, [&](std::string e) { errors.push_back(e); }, dir.path());
  hw::SlotLeds lights(backend, 1);
  lights.set(1, SlotLight::attention);
  BOOST_CHECK_EQUAL(errors.size(), 2u);  // dark at start, then attention: the LED is not there yet
  const auto red = make_led(dir.path(), "dock:red:slot1");
  lights.refresh();
  BOOST_CHECK_EQUAL(attr(red, "trigger"), "timer");
  BOOST_CHECK_EQUAL(attr(red, "delay_on"), "100");
  const auto writes = backend.attribute_writes();
  lights.refresh();  // shown already: nothing to do
  BOOST_CHECK_EQUAL(backend.attribute_writes(), writes);
  BOOST_CHECK_EQUAL(errors.size(), 2u);
}

BOOST_AUTO_TEST_CASE(retries_back_off_from_50_ms_to_10_s) {
  const std::vector<long long> expected{50, 100, 200, 400, 800, 1600, 3200, 6400, 10000, 10000};
  for (unsigned i = 0; i < expected.size(); ++i) BOOST_TEST_CONTEXT("retry " << i) BOOST_CHECK_EQUAL(hw::led_retry_delay(i).count(), expected[i]);
  BOOST_CHECK_EQUAL(hw::led_retry_delay(64).count(), 10000);
  BOOST_CHECK_EQUAL(hw::led_retry_delay(~0u).count(), 10000);
}

BOOST_AUTO_TEST_CASE(a_failed_slot_is_retried_on_the_schedule_until_it_shows) {
  test::TempDir dir;
  std::vector<std::string> errors;
  make_led(dir.path(), "dock:red:slot1");  // slot 2's LED has not turned up
  hw::SysfsLeds backend({{1, hw::SlotLedNames{"dock:red:slot1", "", ""}}, {2, hw::SlotLedNames{"dock:red:slot2", "", ""}}},
                        [&](std::string e) { errors.push_back(e); }, dir.path());
  hw::SlotLeds lights(backend, 2);
  BOOST_CHECK(!backend.pending(1));
  BOOST_CHECK(backend.pending(2));
  auto due = lights.next_retry();
  BOOST_REQUIRE(due);
  const auto writes = backend.attribute_writes();
  lights.retry_due(*due - 1ms);  // not yet
  BOOST_CHECK_EQUAL(backend.attribute_writes(), writes);
  // Each retry that fails puts the next one twice as far off, up to 10 s.
  for (unsigned n = 1; n <= 10; ++n) {
    BOOST_TEST_CONTEXT("retry " << n) {
      lights.retry_due(*due);
      const auto next = lights.next_retry();
      BOOST_REQUIRE(next);
      BOOST_CHECK(*next - *due == hw::led_retry_delay(n));
      due = next;
    }
  }
  // A new light starts the schedule over: one failure now is not a 10 s wait.
  const auto before = std::chrono::steady_clock::now();
  lights.set(2, SlotLight::attention);
  BOOST_REQUIRE(lights.next_retry());
  BOOST_CHECK(*lights.next_retry() >= before + 50ms);
  BOOST_CHECK(*lights.next_retry() < before + 1s);
  // The LED turns up: the next retry shows it, and that is the end of the retries.
  const auto red2 = make_led(dir.path(), "dock:red:slot2");
  lights.retry_due(*lights.next_retry());
  BOOST_CHECK(!lights.next_retry());
  BOOST_CHECK(!backend.pending(2));
  BOOST_CHECK_EQUAL(attr(red2, "trigger"), "timer");
  BOOST_CHECK_EQUAL(attr(red2, "delay_on"), "100");
}

BOOST_AUTO_TEST_SUITE_END()

// ============================================================================================

BOOST_AUTO_TEST_SUITE(slot_lights)

// The timer trigger creates delay_on and delay_off root's; udev hands them to the service group
// a moment later. A write in between failed, and the light showed the wrong thing for 10 s.
BOOST_AUTO_TEST_CASE(a_late_udev_chgrp_of_delay_on_costs_milliseconds_not_10_s) {
  test::TempDir dir;
  asio::io_context ioc;
  asio::thread_pool pool{1};
  dock::LocalDirSink sink(dir / "store", pool);
  dock::DockConfig config;
  config.state_dir = dir / "state";
  config.identity = test::dock_identity();
  config.slots = 1;
  dock::Dock d(ioc, config, sink);

  const auto root = dir / "leds";
  const auto red = make_led(root, "dock:red:slot1");
  make_led(root, "dock:green:slot1");
  make_led(root, "dock:blue:slot1");
  std::vector<std::string> logged;
  dock::Log::set_sink([&](std::string_view line) { logged.emplace_back(line); });
  {
    dock::SlotLights lights(
        d, std::make_unique<hw::SysfsLeds>(std::map<unsigned, hw::SysfsSlotLeds>{{1, hw::SlotLedNames{"dock:red:slot1", "dock:green:slot1", "dock:blue:slot1"}}},
                                           dock::log_led_errors(), root));
    refuse_writes(red / "delay_on");
    d.slot(1).phase = dock::SlotPhase::attention;

    const auto start = std::chrono::steady_clock::now();
    bool chgrp = false;
    asio::steady_timer udev(ioc);
    udev.expires_after(100ms);
    udev.async_wait([&](boost::system::error_code) {
      allow_writes(red / "delay_on");
      chgrp = true;
    });
    bool ended = false;
    asio::co_spawn(ioc, lights.run(), [&](std::exception_ptr e) {
      ended = true;
      if (e) BOOST_ERROR("the lights loop threw");
    });
    const auto shown = [&] { return chgrp && attr(red, "delay_on") == "100" && attr(red, "delay_off") == "100"; };
    while (!shown() && std::chrono::steady_clock::now() - start < 2s) ioc.run_one_for(10ms);
    const auto took = std::chrono::duration_cast<std::chrono::milliseconds>(std::chrono::steady_clock::now() - start);
    BOOST_TEST_MESSAGE("attention shown " << took.count() << " ms after the light changed");
    BOOST_CHECK(shown());
    BOOST_CHECK_LT(took.count(), 1000);
    BOOST_CHECK_EQUAL(attr(red, "trigger"), "timer");
    for (const char* c : {"green", "blue"}) BOOST_CHECK_EQUAL(attr(root / (std::string("dock:") + c + ":slot1"), "brightness"), "0");

    lights.stop();
    const auto stopping = std::chrono::steady_clock::now();
    while (!ended && std::chrono::steady_clock::now() - stopping < 2s) ioc.run_one_for(10ms);
    BOOST_CHECK(ended);
  }
  dock::Log::set_sink({});
  // Retried several times, reported once.
  const auto reports = std::count_if(logged.begin(), logged.end(), [](const std::string& l) { return l.find("delay_on") != std::string::npos; });
  BOOST_CHECK_EQUAL(reports, 1);
}

BOOST_AUTO_TEST_SUITE_END()

// ============================================================================================

BOOST_AUTO_TEST_SUITE(gpio_leds)

BOOST_FIXTURE_TEST_CASE(rapid_blink_toggles_every_100_ms, GpioRig) {
  leds->show(1, hw::pattern_for(SlotLight::attention));
  BOOST_REQUIRE_EQUAL(log.size(), 1u);
  BOOST_CHECK(log[0].red && !log[0].green && !log[0].blue);
  run_until([&] { return log.size() >= 7; });  // lit, then six changes: 600 ms
  for (const auto& change : log) {
    BOOST_CHECK_EQUAL(change.slot, 1u);
    BOOST_CHECK(!change.green && !change.blue);
  }
  check_schedule(log, hw::pattern_for(SlotLight::attention));
}

BOOST_FIXTURE_TEST_CASE(on_and_off_phases_are_not_swapped, GpioRig) {
  const LedPattern flash{LedColour::amber, 30, 120, "test flash"};
  leds->show(3, flash);
  run_until([&] { return log.size() >= 5; });
  check_schedule(log, flash);
  BOOST_CHECK(log[0].red && log[0].green && !log[0].blue);  // amber = red + green
}

BOOST_FIXTURE_TEST_CASE(solid_stays_on_and_off_stays_off, GpioRig) {
  leds->show(1, hw::pattern_for(SlotLight::done));
  leds->show(2, hw::pattern_for(SlotLight::empty));
  BOOST_CHECK(runs_dry());  // no timer armed
  BOOST_REQUIRE_EQUAL(log.size(), 2u);
  BOOST_CHECK(!log[0].red && log[0].green && !log[0].blue);
  BOOST_CHECK_EQUAL(log[1].slot, 2u);
  BOOST_CHECK(!log[1].lit());
}

BOOST_FIXTURE_TEST_CASE(a_new_light_stops_the_old_blink, GpioRig) {
  leds->show(1, hw::pattern_for(SlotLight::attention));
  run_until([&] { return log.size() >= 3; });
  leds->show(1, hw::pattern_for(SlotLight::done));
  const auto changes = log.size();
  BOOST_CHECK(runs_dry());
  BOOST_REQUIRE_EQUAL(log.size(), changes);
  BOOST_CHECK(!log.back().red && log.back().green);
}

BOOST_FIXTURE_TEST_CASE(the_same_blink_again_keeps_its_phase, GpioRig) {
  leds->show(1, hw::pattern_for(SlotLight::attention));
  run_until([&] { return log.size() >= 2; });
  leds->show(1, hw::pattern_for(SlotLight::attention));
  BOOST_CHECK_EQUAL(log.size(), 2u);  // not relit
  run_until([&] { return log.size() >= 3; });
  check_schedule(log, hw::pattern_for(SlotLight::attention));
}

BOOST_FIXTURE_TEST_CASE(blinks_on_several_slots_at_once, GpioRig) {
  leds->show(1, hw::pattern_for(SlotLight::attention));
  leds->show(2, hw::pattern_for(SlotLight::authenticating));
  const auto count = [&](unsigned slot) { return std::count_if(log.begin(), log.end(), [&](const LineChange& c) { return c.slot == slot; }); };
  run_until([&] { return count(2) >= 2; });  // 250 ms: slot 1 is lit, dark, lit
  BOOST_CHECK_GE(count(1), 3);
  BOOST_CHECK_LE(count(1), 5);
  for (const auto& c : log)
    if (c.slot == 2 && c.lit()) BOOST_CHECK(c.red && c.green && c.blue);
}

BOOST_FIXTURE_TEST_CASE(a_line_change_that_failed_is_retried_on_the_next_show, GpioRig) {
  gpio->failures = 1;
  leds->show(1, hw::pattern_for(SlotLight::done));
  leds->show(1, hw::pattern_for(SlotLight::done));
  BOOST_CHECK_EQUAL(log.size(), 2u);
  leds->show(1, hw::pattern_for(SlotLight::done));
  BOOST_CHECK_EQUAL(log.size(), 2u);  // reached the hardware: nothing more to do
}

BOOST_FIXTURE_TEST_CASE(going_away_while_blinking_stops_cleanly, GpioRig) {
  leds->show(1, hw::pattern_for(SlotLight::attention));
  run_until([&] { return log.size() >= 2; });
  leds.reset();
  const auto changes = log.size();
  BOOST_CHECK(runs_dry());
  BOOST_CHECK_EQUAL(log.size(), changes);
}

BOOST_AUTO_TEST_CASE(a_missing_chip_is_reported_once_and_not_thrown) {
  std::vector<std::string> errors;
  hw::GpiodOutput out("bodydock-no-such-chip", {{1, hw::GpioSlotLines{17, 18, 19}}}, false, [&](std::string e) { errors.push_back(e); });
  BOOST_CHECK(!out.set(1, true, false, false));
  BOOST_CHECK(!out.set(1, false, false, false));
  BOOST_REQUIRE_EQUAL(errors.size(), 1u);
  BOOST_CHECK_NE(errors[0].find("slot 1"), std::string::npos);
  BOOST_CHECK_NE(errors[0].find("bodydock-no-such-chip"), std::string::npos);
  BOOST_CHECK(out.set(2, true, true, true));  // no LED at slot 2 on this board: nothing to fail
  BOOST_CHECK_NE(out.describe().find("bodydock-no-such-chip"), std::string::npos);
}

BOOST_AUTO_TEST_SUITE_END()

// ============================================================================================

BOOST_AUTO_TEST_SUITE(led_board)

BOOST_AUTO_TEST_CASE(the_example_board_parses) {
  const auto text = test::slurp_text(source_dir / "hw" / "board-example.toml");
  BOOST_REQUIRE(!text.empty());
  const auto board = hw::parse_led_board(text, "board-example.toml");
  BOOST_CHECK(board.backend == hw::LedBackendKind::sysfs);
  BOOST_CHECK_EQUAL(board.sysfs_root, fs::path("/sys/class/leds"));
  BOOST_CHECK_EQUAL(board.gpio_chip, "gpiochip0");
  BOOST_CHECK(!board.active_low);
  BOOST_CHECK(board.warnings.empty());
  BOOST_REQUIRE_EQUAL(board.sysfs_slots.size(), 2u);
  const auto* one = std::get_if<hw::SlotLedNames>(&board.sysfs_slots.at(1));
  BOOST_REQUIRE(one);
  BOOST_CHECK_EQUAL(one->red, "dock:red:slot1");
  BOOST_CHECK_EQUAL(one->green, "dock:green:slot1");
  BOOST_CHECK_EQUAL(one->blue, "dock:blue:slot1");
  const auto* two = std::get_if<hw::MulticolourLed>(&board.sysfs_slots.at(2));
  BOOST_REQUIRE(two);
  BOOST_CHECK_EQUAL(two->name, "dock:rgb:slot2");
}

BOOST_AUTO_TEST_CASE(the_header_documents_the_example_board) {
  // The format comment in leds.hpp and hw/board-example.toml are the same text.
  std::istringstream header(test::slurp_text(source_dir / "hw" / "leds.hpp"));
  std::string documented, line;
  while (std::getline(header, line))
    if (line.rfind("///     ", 0) == 0) documented += line.substr(8) + "\n";
  std::istringstream example(test::slurp_text(source_dir / "hw" / "board-example.toml"));
  std::string file;
  while (std::getline(example, line))
    if (line.rfind("# ", 0) != 0) file += line + "\n";
  BOOST_CHECK_EQUAL(documented, file);
}

BOOST_AUTO_TEST_CASE(a_gpio_board_gives_line_offsets) {
  const auto board = hw::parse_led_board(R"([leds]
backend = "gpio"
gpio_chip = "/dev/gpiochip1"
active_low = true
[[leds.slot]]
slot = 3
red = 0
green = 17
)",
                                         "board.toml");
  BOOST_CHECK(board.backend == hw::LedBackendKind::gpio);
  BOOST_CHECK_EQUAL(board.gpio_chip, "/dev/gpiochip1");
  BOOST_CHECK(board.active_low);
  BOOST_REQUIRE_EQUAL(board.gpio_slots.size(), 1u);
  const auto& lines = board.gpio_slots.at(3);
  BOOST_CHECK(lines.red == 0u);
  BOOST_CHECK(lines.green == 17u);
  BOOST_CHECK(!lines.blue);
}

BOOST_AUTO_TEST_CASE(refusals_name_the_key_the_value_and_the_line) {
  check_refused("[leds]\nbackend = \"i2c\"\n", "leds.backend", 2, "i2c");
  check_refused("[leds]\nbackend = 3\n", "leds.backend", 2);
  check_refused("[leds]\nsysfs_root = \"/x\"\n", "leds.backend", 1);
  check_refused("[leds]\nbackend = \"sysfs\"\n[[leds.slot]]\nslot = 0\nred = \"r\"\n", "leds.slot.slot", 4, "0");
  check_refused("[leds]\nbackend = \"sysfs\"\n[[leds.slot]]\nslot = 65\nred = \"r\"\n", "leds.slot.slot", 4, "65");
  check_refused("[leds]\nbackend = \"sysfs\"\n[[leds.slot]]\nslot = \"1\"\nred = \"r\"\n", "leds.slot.slot", 4);
  check_refused("[leds]\nbackend = \"sysfs\"\n[[leds.slot]]\nred = \"r\"\n", "leds.slot.slot", 3);
  const auto repeated = "[leds]\nbackend = \"sysfs\"\n[[leds.slot]]\nslot = 2\nred = \"a\"\n[[leds.slot]]\nslot = 2\nred = \"b\"\n";
  check_refused(repeated, "leds.slot.slot", 7, "2");
  BOOST_CHECK_NE(refusal(repeated).find("line 4"), std::string::npos);
  check_refused("[leds]\nbackend = \"sysfs\"\n[[leds.slot]]\nslot = 1\n", "leds.slot", 3);
  check_refused("[leds]\nbackend = \"sysfs\"\n[[leds.slot]]\nslot = 1\nred = \"a\"\nmulticolour = \"m\"\n", "leds.slot.multicolour", 6);
  check_refused("[leds]\nbackend = \"sysfs\"\n[[leds.slot]]\nslot = 1\nred = \"../../../dev/mem\"\n", "leds.slot.red", 5, "../../../dev/mem");
  check_refused("[leds]\nbackend = \"sysfs\"\n[[leds.slot]]\nslot = 1\ngreen = \"a/b\"\n", "leds.slot.green", 5, "a/b");
  check_refused("[leds]\nbackend = \"sysfs\"\n[[leds.slot]]\nslot = 1\nmulticolour = \"x..y\"\n", "leds.slot.multicolour", 5, "x..y");
  check_refused("[leds]\nbackend = \"sysfs\"\n[[leds.slot]]\nslot = 1\nblue = 4\n", "leds.slot.blue", 5);
  const std::string gpio = "[leds]\nbackend = \"gpio\"\ngpio_chip = \"gpiochip0\"\n[[leds.slot]]\nslot = 1\n";
  check_refused(gpio + "red = -1\n", "leds.slot.red", 6, "-1");
  check_refused(gpio + "green = \"17\"\n", "leds.slot.green", 6, "17");
  check_refused(gpio + "blue = 1.5\n", "leds.slot.blue", 6, "1.5");
  check_refused(gpio + "multicolour = \"m\"\n", "leds.slot.multicolour", 6);
  check_refused("[leds]\nbackend = \"gpio\"\n[[leds.slot]]\nslot = 1\nred = 1\n", "leds.gpio_chip", 1);
  check_refused("[leds]\nbackend = \"gpio\"\ngpio_chip = \"c\"\nactive_low = \"yes\"\n", "leds.active_low", 4, "yes");
  check_refused("[leds]\nbackend = \"sysfs\"\n[leds.slot]\nslot = 1\n", "leds.slot", 3);
  check_refused("leds = 5\n", "leds", 1);
  check_refused("[leds]\nbackend = \"sysfs\"\n\nslot = [\n", "board.toml:4", 4);  // not TOML at all
}

BOOST_AUTO_TEST_CASE(unknown_keys_are_warnings) {
  const auto board = hw::parse_led_board(R"([leds]
backend = "sysfs"
brightness = 40
[[leds.slot]]
slot = 1
red = "r"
colour = "pink"
)",
                                         "board.toml");
  BOOST_REQUIRE_EQUAL(board.warnings.size(), 2u);
  BOOST_CHECK_NE(board.warnings[0].find("board.toml:3:"), std::string::npos);
  BOOST_CHECK_NE(board.warnings[0].find("leds.brightness"), std::string::npos);
  BOOST_CHECK_NE(board.warnings[1].find("board.toml:7:"), std::string::npos);
  BOOST_CHECK_NE(board.warnings[1].find("leds.slot.colour"), std::string::npos);
  BOOST_CHECK_EQUAL(board.sysfs_slots.size(), 1u);
}

BOOST_AUTO_TEST_CASE(a_board_without_leds_has_virtual_ones) {
  const auto board = hw::parse_led_board("[ports]\nslot1 = \"1-1.3\"\n", "board.toml");
  BOOST_CHECK(board.backend == hw::LedBackendKind::virtual_leds);
  BOOST_CHECK_EQUAL(board.warnings.size(), 1u);
  const auto virt = hw::parse_led_board("[leds]\nbackend = \"virtual\"\n[[leds.slot]]\nslot = 1\n", "board.toml");
  BOOST_CHECK(virt.backend == hw::LedBackendKind::virtual_leds);
  BOOST_CHECK(virt.warnings.empty());
}

BOOST_AUTO_TEST_CASE(each_board_makes_its_backend) {
  asio::io_context ioc;
  std::vector<std::string> errors;
  const auto sink = [&](std::string e) { errors.push_back(std::move(e)); };

  test::TempDir dir;
  const auto red = make_led(dir.path(), "r1");
  auto sysfs = hw::parse_led_board("[leds]\nbackend = \"sysfs\"\nsysfs_root = \"" + dir.path().string() +
                                       "\"\n[[leds.slot]]\nslot = 1\nred = \"r1\"\n",
                                   "board.toml");
  auto leds = hw::make_led_backend(sysfs, ioc.get_executor(), sink);
  BOOST_CHECK_NE(leds->describe().find(dir.path().string()), std::string::npos);
  leds->show(1, hw::pattern_for(SlotLight::attention));
  BOOST_CHECK_EQUAL(attr(red, "trigger"), "timer");

  auto virt = hw::make_led_backend(hw::parse_led_board("[leds]\nbackend = \"virtual\"\n", "board.toml"), ioc.get_executor(), sink);
  BOOST_CHECK_EQUAL(virt->describe(), "virtual LEDs");

  auto gpio = hw::make_led_backend(
      hw::parse_led_board("[leds]\nbackend = \"gpio\"\ngpio_chip = \"bodydock-no-such-chip\"\n[[leds.slot]]\nslot = 1\nred = 4\n", "board.toml"),
      ioc.get_executor(), sink);
  BOOST_CHECK_NE(gpio->describe().find("bodydock-no-such-chip"), std::string::npos);
  BOOST_CHECK_NO_THROW(gpio->show(1, hw::pattern_for(SlotLight::done)));
  BOOST_REQUIRE_EQUAL(errors.size(), 1u);
  BOOST_CHECK_NE(errors[0].find("bodydock-no-such-chip"), std::string::npos);
}

BOOST_AUTO_TEST_SUITE_END()
