#include "hw/leds.hpp"
#include "hw/toml_text.hpp"

#include <boost/asio/as_tuple.hpp>
#include <boost/asio/co_spawn.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/asio/use_awaitable.hpp>

#include <gpiod.h>

#include <fcntl.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <charconv>
#include <chrono>
#include <cstring>
#include <limits>
#include <set>
#include <sstream>
#include <stdexcept>
#include <system_error>

namespace bodydock::hw {

namespace asio = boost::asio;

// --- the sticker ----------------------------------------------------------------------------

bool operator==(const LedPattern& a, const LedPattern& b) noexcept {
  if (a.dark() && b.dark()) return true;
  return a.colour == b.colour && a.on_ms == b.on_ms && a.off_ms == b.off_ms;
}

LedPattern pattern_for(SlotLight light) noexcept {
  switch (light) {
    case SlotLight::empty: return {LedColour::off, 0, 0, "off"};
    case SlotLight::authenticating: return {LedColour::white, 250, 250, "fast blink"};
    case SlotLight::syncing: return {LedColour::blue, 1000, 1000, "slow blink"};
    case SlotLight::waiting_uplink: return {LedColour::amber, 200, 1800, "short flash"};
    case SlotLight::charging: return {LedColour::green, 1800, 200, "long on"};
    case SlotLight::done: return {LedColour::green, 1000, 0, "solid"};
    case SlotLight::attention: return {LedColour::red, 100, 100, "rapid blink"};
  }
  return {LedColour::red, 100, 100, "rapid blink"};  // not a SlotLight: ask for attention
}

const char* light_name(SlotLight light) noexcept {
  switch (light) {
    case SlotLight::empty: return "empty";
    case SlotLight::charging: return "charging";
    case SlotLight::authenticating: return "authenticating";
    case SlotLight::syncing: return "syncing";
    case SlotLight::waiting_uplink: return "waiting for uplink";
    case SlotLight::done: return "done";
    case SlotLight::attention: return "attention";
  }
  return "unknown";
}

const char* colour_name(LedColour colour) noexcept {
  switch (colour) {
    case LedColour::off: return "off";
    case LedColour::white: return "white";
    case LedColour::blue: return "blue";
    case LedColour::amber: return "amber";
    case LedColour::green: return "green";
    case LedColour::red: return "red";
  }
  return "unknown";
}

std::array<std::uint8_t, 3> rgb(LedColour colour) noexcept {
  switch (colour) {
    case LedColour::off: return {0, 0, 0};
    case LedColour::white: return {255, 255, 255};
    case LedColour::blue: return {0, 0, 255};
    case LedColour::amber: return {255, 128, 0};
    case LedColour::green: return {0, 255, 0};
    case LedColour::red: return {255, 0, 0};
  }
  return {0, 0, 0};
}

namespace {

/// Which of separate red, green and blue LEDs make up a colour.
std::array<bool, 3> channels(LedColour colour) noexcept {
  switch (colour) {
    case LedColour::off: return {false, false, false};
    case LedColour::white: return {true, true, true};
    case LedColour::blue: return {false, false, true};
    case LedColour::amber: return {true, true, false};
    case LedColour::green: return {false, true, false};
    case LedColour::red: return {true, false, false};
  }
  return {false, false, false};
}

std::string errno_text(int err) { return std::generic_category().message(err); }

}  // namespace

LedBackend::~LedBackend() = default;

// --- virtual --------------------------------------------------------------------------------

void VirtualLeds::show(unsigned slot, const LedPattern& p) {
  shown_.insert_or_assign(slot, p);
  ++writes_;
}

std::optional<LedPattern> VirtualLeds::current(unsigned slot) const {
  auto it = shown_.find(slot);
  if (it == shown_.end()) return std::nullopt;
  return it->second;
}

// --- sysfs ----------------------------------------------------------------------------------

namespace {

/// One attribute, one write(2), as `echo -n value > file` does: sysfs ignores the truncation,
/// and a plain file ends up holding just the value. No O_CREAT: an attribute that is not there
/// means the LED (or its trigger) is not. Returns 0 or errno.
int write_attribute(const std::filesystem::path& file, std::string_view value) {
  const int fd = ::open(file.c_str(), O_WRONLY | O_TRUNC | O_CLOEXEC);
  if (fd < 0) return errno;
  ssize_t n = 0;
  do n = ::write(fd, value.data(), value.size());
  while (n < 0 && errno == EINTR);
  int err = n < 0 ? errno : (static_cast<std::size_t>(n) == value.size() ? 0 : EIO);
  ::close(fd);
  return err;
}

/// Reads a small attribute, surrounding whitespace removed. Returns 0 or errno.
int read_attribute(const std::filesystem::path& file, std::string& out) {
  const int fd = ::open(file.c_str(), O_RDONLY | O_CLOEXEC);
  if (fd < 0) return errno;
  out.clear();
  char buf[256];
  for (;;) {
    const ssize_t n = ::read(fd, buf, sizeof buf);
    if (n < 0 && errno == EINTR) continue;
    if (n < 0) {
      const int err = errno;
      ::close(fd);
      return err;
    }
    if (n == 0) break;
    out.append(buf, static_cast<std::size_t>(n));
    if (out.size() > 4096) break;  // attributes are a page at most
  }
  ::close(fd);
  const auto first = out.find_first_not_of(" \t\r\n");
  const auto last = out.find_last_not_of(" \t\r\n");
  out = first == std::string::npos ? std::string() : out.substr(first, last - first + 1);
  return 0;
}

/// The active trigger in a trigger attribute: the kernel lists them all, the active one in
/// brackets ("none [timer] heartbeat"); a plain value (a fake tree) is the value itself.
std::string_view active_trigger(std::string_view triggers) {
  const auto open = triggers.find('[');
  if (open == std::string_view::npos) return triggers;
  const auto close = triggers.find(']', open);
  return close == std::string_view::npos ? std::string_view() : triggers.substr(open + 1, close - open - 1);
}

}  // namespace

SysfsLeds::SysfsLeds(std::map<unsigned, SysfsSlotLeds> slots, LedErrorSink on_error, std::filesystem::path root)
    : on_error_(std::move(on_error)), root_(std::move(root)) {
  for (auto& entry : slots) slots_.emplace(entry.first, Slot{std::move(entry.second), std::nullopt, false});
}

std::string SysfsLeds::describe() const {
  return "sysfs LEDs in " + root_.string() + " for " + std::to_string(slots_.size()) + " slot" + (slots_.size() == 1 ? "" : "s");
}

void SysfsLeds::show(unsigned slot, const LedPattern& p) {
  auto it = slots_.find(slot);
  if (it == slots_.end()) return;  // no LED at this slot on this board
  Slot& s = it->second;
  if (s.shown && *s.shown == p) return;
  bool ok = true;
  if (const auto* names = std::get_if<SlotLedNames>(&s.leds)) {
    const auto lit = channels(p.dark() ? LedColour::off : p.colour);
    // Every LED is driven even when one fails: a slot with a dead red LED still shows blue.
    const bool red = drive(slot, names->red, p, lit[0]);
    const bool green = drive(slot, names->green, p, lit[1]);
    const bool blue = drive(slot, names->blue, p, lit[2]);
    ok = red && green && blue;
  } else {
    ok = drive_multicolour(slot, std::get<MulticolourLed>(s.leds).name, p);
  }
  // Only a pattern that fully arrived counts as shown; anything else is written again next time.
  s.shown = ok ? std::optional<LedPattern>(p) : std::nullopt;
  s.pending = !ok;
}

bool SysfsLeds::pending(unsigned slot) const {
  auto it = slots_.find(slot);
  return it != slots_.end() && it->second.pending;
}

bool SysfsLeds::put(unsigned slot, const std::string& led, const char* attribute, const std::string& value) {
  ++writes_;
  const auto file = root_ / led / attribute;
  if (const int err = write_attribute(file, value)) {
    if (on_error_)
      on_error_("slot " + std::to_string(slot) + " LED " + led + ": cannot write \"" + value + "\" to " + file.string() + ": " +
                errno_text(err));
    return false;
  }
  return true;
}

unsigned SysfsLeds::max_brightness(const std::string& led) const {
  std::string text;
  unsigned value = 0;
  if (read_attribute(root_ / led / "max_brightness", text) != 0) return 255;
  auto [end, ec] = std::from_chars(text.data(), text.data() + text.size(), value);
  return ec == std::errc{} && end == text.data() + text.size() && value > 0 ? value : 255;
}

bool SysfsLeds::drive(unsigned slot, const std::string& led, const LedPattern& p, bool lit) {
  if (led.empty()) return true;  // the board has no LED of this colour
  if (!lit) return put(slot, led, "trigger", "none") && put(slot, led, "brightness", "0");
  const auto max = std::to_string(max_brightness(led));
  if (p.solid()) return put(slot, led, "trigger", "none") && put(slot, led, "brightness", max);
  return blink(slot, led, p, max);
}

bool SysfsLeds::blink(unsigned slot, const std::string& led, const LedPattern& p, const std::string& brightness) {
  if (!put(slot, led, "brightness", brightness)) return false;
  // Setting "timer" again would recreate delay_on and delay_off (root's until udev's chgrp)
  // and restart the blink, so a retry or a change of rhythm goes straight to the delays.
  std::string triggers;
  const bool timer_set = read_attribute(root_ / led / "trigger", triggers) == 0 && active_trigger(triggers) == "timer";
  if (!timer_set && !put(slot, led, "trigger", "timer")) return false;
  return put(slot, led, "delay_on", std::to_string(p.on_ms)) && put(slot, led, "delay_off", std::to_string(p.off_ms));
}

bool SysfsLeds::drive_multicolour(unsigned slot, const std::string& led, const LedPattern& p) {
  if (p.dark()) return put(slot, led, "trigger", "none") && put(slot, led, "brightness", "0");
  // The kernel lights each colour at brightness * intensity / max_brightness, so intensities
  // are the colour scaled to max_brightness (0..255 on most LEDs), in multi_index's order.
  // Colours other than red, green and blue in the index stay dark.
  std::string index;
  const auto index_file = root_ / led / "multi_index";
  if (const int err = read_attribute(index_file, index)) {
    if (on_error_) on_error_("slot " + std::to_string(slot) + " LED " + led + ": cannot read " + index_file.string() + ": " + errno_text(err));
    return false;
  }
  const unsigned max = max_brightness(led);
  const auto colour = rgb(p.colour);
  std::istringstream names(index);
  std::string name, intensity;
  while (names >> name) {
    unsigned v = 0;
    if (name == "red") v = colour[0];
    else if (name == "green") v = colour[1];
    else if (name == "blue") v = colour[2];
    if (!intensity.empty()) intensity += ' ';
    intensity += std::to_string((v * max + 127) / 255);
  }
  if (!put(slot, led, "multi_intensity", intensity)) return false;
  const auto bright = std::to_string(max);
  if (p.solid()) return put(slot, led, "trigger", "none") && put(slot, led, "brightness", bright);
  return blink(slot, led, p, bright);
}

// --- GPIO lines -----------------------------------------------------------------------------

GpiodOutput::GpiodOutput(std::string chip, const std::map<unsigned, GpioSlotLines>& slots, bool active_low, LedErrorSink on_error)
    : chip_name_(std::move(chip)), active_low_(active_low), on_error_(std::move(on_error)) {
  for (auto& [slot, offsets] : slots) slots_.emplace(slot, Slot{offsets, {}, false});
}

GpiodOutput::~GpiodOutput() {
  if (chip_ != nullptr) ::gpiod_chip_close(chip_);  // releases the requested lines too
}

std::string GpiodOutput::describe() const {
  return "GPIO lines on " + chip_name_ + (active_low_ ? " (active low)" : "");
}

void GpiodOutput::fail(unsigned slot, std::string message) {
  auto& last = reported_[slot];
  if (last == message) return;  // a blinking slot retries every phase; say it once
  last = message;
  if (on_error_) on_error_(std::move(message));
}

bool GpiodOutput::open_chip(unsigned slot) {
  if (chip_ != nullptr) return true;
  errno = 0;
  chip_ = ::gpiod_chip_open_lookup(chip_name_.c_str());
  if (chip_ == nullptr) {
    const int err = errno != 0 ? errno : ENOENT;
    fail(slot, "slot " + std::to_string(slot) + " LED: cannot open GPIO chip " + chip_name_ + ": " + errno_text(err));
    return false;
  }
  return true;
}

bool GpiodOutput::request(unsigned slot, Slot& s) {
  if (s.requested) return true;
  const std::array<std::optional<unsigned>, 3> offsets{s.offsets.red, s.offsets.green, s.offsets.blue};
  const std::array<const char*, 3> colours{"red", "green", "blue"};
  const int flags = active_low_ ? GPIOD_LINE_REQUEST_FLAG_ACTIVE_LOW : 0;
  for (std::size_t i = 0; i < 3; ++i) {
    if (!offsets[i] || s.lines[i] != nullptr) continue;
    gpiod_line* line = ::gpiod_chip_get_line(chip_, *offsets[i]);
    if (line == nullptr || ::gpiod_line_request_output_flags(line, "bodydock", flags, 0) != 0) {
      const int err = errno;
      fail(slot, "slot " + std::to_string(slot) + " LED " + colours[i] + ": cannot request line " + std::to_string(*offsets[i]) +
                     " of GPIO chip " + chip_name_ + ": " + errno_text(err));
      return false;  // lines already requested stay ours; the rest are tried again next time
    }
    s.lines[i] = line;
  }
  s.requested = true;
  return true;
}

bool GpiodOutput::set(unsigned slot, bool red, bool green, bool blue) {
  auto it = slots_.find(slot);
  if (it == slots_.end()) return true;  // no LED at this slot on this board
  Slot& s = it->second;
  if (!open_chip(slot) || !request(slot, s)) return false;
  const std::array<bool, 3> values{red, green, blue};
  const std::array<std::optional<unsigned>, 3> offsets{s.offsets.red, s.offsets.green, s.offsets.blue};
  const std::array<const char*, 3> colours{"red", "green", "blue"};
  for (std::size_t i = 0; i < 3; ++i) {
    if (s.lines[i] == nullptr) continue;
    if (::gpiod_line_set_value(s.lines[i], values[i] ? 1 : 0) != 0) {
      const int err = errno;
      fail(slot, "slot " + std::to_string(slot) + " LED " + colours[i] + ": cannot set line " + std::to_string(*offsets[i]) +
                     " of GPIO chip " + chip_name_ + ": " + errno_text(err));
      return false;
    }
  }
  reported_.erase(slot);
  return true;
}

// --- GPIO blinking --------------------------------------------------------------------------

struct GpioLeds::Slot {
  explicit Slot(const asio::any_io_executor& ex) : timer(ex) {}
  unsigned number = 0;
  std::optional<LedPattern> pattern;
  bool confirmed = false;       ///< the last line change reached the hardware
  unsigned generation = 0;      ///< bumped by every new pattern; an older blink sees it and stops
  GpioOutput* output = nullptr; ///< cleared when the GpioLeds goes away
  asio::steady_timer timer;
};

namespace {

bool set_lines(GpioLeds::Slot& s, const LedPattern& p, bool lit) {
  const auto c = channels(lit && !p.dark() ? p.colour : LedColour::off);
  return s.output->set(s.number, c[0], c[1], c[2]);
}

/// Toggles a slot's lines until its pattern changes. Deadlines follow each other exactly
/// (expires_at the previous one plus the phase) so the rhythm does not drift.
asio::awaitable<void> blink(std::shared_ptr<GpioLeds::Slot> s, unsigned generation, std::chrono::steady_clock::time_point start) {
  const LedPattern p = *s->pattern;
  bool lit = true;  // show() lit the lines at `start`
  auto deadline = start;
  while (s->generation == generation && s->output != nullptr) {
    deadline += std::chrono::milliseconds(lit ? p.on_ms : p.off_ms);
    s->timer.expires_at(deadline);
    auto [ec] = co_await s->timer.async_wait(asio::as_tuple(asio::use_awaitable));
    if (ec || s->generation != generation || s->output == nullptr) co_return;
    lit = !lit;
    s->confirmed = set_lines(*s, p, lit);
  }
}

}  // namespace

GpioLeds::GpioLeds(asio::any_io_executor executor, std::unique_ptr<GpioOutput> output, LedErrorSink on_error)
    : executor_(std::move(executor)), output_(std::move(output)), on_error_(std::move(on_error)) {}

GpioLeds::~GpioLeds() {
  for (auto& [slot, s] : slots_) {
    ++s->generation;
    s->output = nullptr;
    try {
      s->timer.cancel();
    } catch (...) {
      // A destructor must not throw; cancel() throws only when the reactor is broken, and the
      // blink loop stops anyway: its generation moved on and it has no output left.
    }
  }
}

std::string GpioLeds::describe() const { return output_->describe() + ", blinking in software"; }

bool GpioLeds::pending(unsigned slot) const {
  auto it = slots_.find(slot);
  return it != slots_.end() && it->second->pattern && !it->second->confirmed;
}

void GpioLeds::show(unsigned slot, const LedPattern& p) {
  auto& s = slots_[slot];
  if (!s) {
    s = std::make_shared<Slot>(executor_);
    s->number = slot;
    s->output = output_.get();
  }
  if (s->pattern && *s->pattern == p && s->confirmed) return;
  ++s->generation;
  s->timer.cancel();
  s->pattern = p;
  const auto start = std::chrono::steady_clock::now();
  s->confirmed = set_lines(*s, p, true);
  if (!p.blinking()) return;
  asio::co_spawn(executor_, blink(s, s->generation, start), [sink = on_error_, slot](const std::exception_ptr& e) {
    if (!e || !sink) return;
    try {
      std::rethrow_exception(e);
    } catch (const std::exception& x) {
      sink("slot " + std::to_string(slot) + " LED: blinking stopped: " + x.what());
    }
  });
}

// --- slot lights ----------------------------------------------------------------------------

std::chrono::milliseconds led_retry_delay(unsigned attempt) noexcept {
  constexpr std::chrono::milliseconds first(50), most(10'000);
  if (attempt >= 8) return most;  // 50 ms << 8 is past the cap already
  return std::min(std::chrono::milliseconds(first.count() << attempt), most);
}

SlotLeds::SlotLeds(LedBackend& backend, unsigned slots) : backend_(backend), lights_(slots, SlotLight::empty), retries_(slots) {
  const auto now = Clock::now();
  for (unsigned slot = 1; slot <= lights_.size(); ++slot) {
    backend_.show(slot, pattern_for(lights_[slot - 1]));
    follow_up(slot, now, false);
  }
}

void SlotLeds::set(unsigned slot, SlotLight light) {
  if (slot == 0 || slot > lights_.size()) throw std::out_of_range("slot " + std::to_string(slot) + " is not a slot of this dock");
  auto& current = lights_[slot - 1];
  if (current == light) return;
  current = light;
  backend_.show(slot, pattern_for(light));
  follow_up(slot, Clock::now(), false);
}

void SlotLeds::follow_up(unsigned slot, Clock::time_point now, bool retrying) {
  auto& r = retries_[slot - 1];
  if (!backend_.pending(slot)) {
    r = Retry{};
    return;
  }
  r.attempts = retrying && r.due ? r.attempts + 1 : 0;
  r.due = now + led_retry_delay(r.attempts);
}

void SlotLeds::retry_due(Clock::time_point now) {
  for (unsigned slot = 1; slot <= lights_.size(); ++slot) {
    const auto& due = retries_[slot - 1].due;
    if (!due || *due > now) continue;
    backend_.show(slot, pattern_for(lights_[slot - 1]));
    follow_up(slot, now, true);
  }
}

std::optional<SlotLeds::Clock::time_point> SlotLeds::next_retry() const {
  std::optional<Clock::time_point> first;
  for (const auto& r : retries_)
    if (r.due && (!first || *r.due < *first)) first = r.due;
  return first;
}

SlotLight SlotLeds::light(unsigned slot) const {
  if (slot == 0 || slot > lights_.size()) throw std::out_of_range("slot " + std::to_string(slot) + " is not a slot of this dock");
  return lights_[slot - 1];
}

void SlotLeds::refresh() {
  const auto now = Clock::now();
  for (unsigned slot = 1; slot <= lights_.size(); ++slot) {
    backend_.show(slot, pattern_for(lights_[slot - 1]));
    follow_up(slot, now, true);
  }
}

// --- board description ----------------------------------------------------------------------

const char* backend_name(LedBackendKind kind) noexcept {
  switch (kind) {
    case LedBackendKind::sysfs: return "sysfs";
    case LedBackendKind::gpio: return "gpio";
    case LedBackendKind::virtual_leds: return "virtual";
  }
  return "unknown";
}

namespace {

/// Reads [leds]; every refusal names source:line, the key and the value it refuses.
class LedBoardReader {
 public:
  LedBoardReader(std::string_view source, LedBoard& board) : source_(source), board_(board) {}

  void read(const toml::table& doc) {
    const toml::node* leds_node = doc.get("leds");
    if (leds_node == nullptr) {
      board_.warnings.push_back(source_ + ": no [leds] table: the slot lights are virtual");
      return;
    }
    const toml::table* leds = leds_node->as_table();
    if (leds == nullptr) refuse(*leds_node, "leds", "expected a table");

    const toml::node* backend = leds->get("backend");
    if (backend == nullptr) refuse_missing(*leds, "leds.backend", "sysfs | gpio | virtual");
    const auto kind = string_of(*backend, "leds.backend");
    if (kind == "sysfs") board_.backend = LedBackendKind::sysfs;
    else if (kind == "gpio") board_.backend = LedBackendKind::gpio;
    else if (kind == "virtual") board_.backend = LedBackendKind::virtual_leds;
    else refuse(*backend, "leds.backend", "unknown backend (sysfs | gpio | virtual)");

    for (auto&& [key, value] : *leds) {
      const auto k = key.str();
      if (k == "backend") continue;
      if (k == "sysfs_root") {
        const auto root = string_of(value, "leds.sysfs_root");
        if (root.empty()) refuse(value, "leds.sysfs_root", "expected a directory");
        board_.sysfs_root = root;
      } else if (k == "gpio_chip") {
        board_.gpio_chip = string_of(value, "leds.gpio_chip");
        if (board_.gpio_chip.empty()) refuse(value, "leds.gpio_chip", "expected a chip (/dev/gpiochipN, gpiochipN, N or a label)");
      } else if (k == "active_low") {
        const auto* b = value.as_boolean();
        if (b == nullptr) refuse(value, "leds.active_low", "expected true or false");
        board_.active_low = b->get();
      } else if (k == "slot") {
        const auto* slots = value.as_array();
        if (slots == nullptr || !slots->is_array_of_tables()) refuse(value, "leds.slot", "expected [[leds.slot]] tables");
        for (const auto& entry : *slots) read_slot(*entry.as_table());
      } else {
        warn(line_of(key), "unknown key leds." + std::string(k) + " ignored");
      }
    }
    if (board_.backend == LedBackendKind::gpio && board_.gpio_chip.empty())
      refuse_missing(*leds, "leds.gpio_chip", "the gpio backend needs the chip");
  }

 private:
  void read_slot(const toml::table& t) {
    const toml::node* number = t.get("slot");
    if (number == nullptr) refuse_missing(t, "leds.slot.slot", "every [[leds.slot]] needs its slot number");
    const auto* integer = number->as_integer();
    if (integer == nullptr || integer->get() < 1 || integer->get() > max_led_slots)
      refuse(*number, "leds.slot.slot", "slot numbers are 1.." + std::to_string(max_led_slots));
    const auto slot = static_cast<unsigned>(integer->get());
    if (auto [it, fresh] = seen_.emplace(slot, line_of(*number)); !fresh)
      refuse(*number, "leds.slot.slot", "slot " + std::to_string(slot) + " is already described at line " + std::to_string(it->second));

    const toml::node* colours[3] = {t.get("red"), t.get("green"), t.get("blue")};
    const char* keys[3] = {"leds.slot.red", "leds.slot.green", "leds.slot.blue"};
    const toml::node* multi = t.get("multicolour");
    for (auto&& [key, value] : t) {
      const auto k = key.str();
      if (k != "slot" && k != "red" && k != "green" && k != "blue" && k != "multicolour")
        warn(line_of(key), "unknown key leds.slot." + std::string(k) + " ignored (slot " + std::to_string(slot) + ")");
    }
    const bool any_colour = colours[0] != nullptr || colours[1] != nullptr || colours[2] != nullptr;
    if (board_.backend == LedBackendKind::virtual_leds) return;  // wiring is irrelevant without hardware
    if (!any_colour && multi == nullptr)
      refuse_missing(t, "leds.slot", "slot " + std::to_string(slot) + " has neither red/green/blue nor multicolour");
    if (any_colour && multi != nullptr)
      refuse(*multi, "leds.slot.multicolour", "slot " + std::to_string(slot) + " has red/green/blue too; use one or the other");

    if (board_.backend == LedBackendKind::gpio) {
      if (multi != nullptr) refuse(*multi, "leds.slot.multicolour", "multicolour LEDs are for the sysfs backend");
      GpioSlotLines lines;
      std::optional<unsigned>* out[3] = {&lines.red, &lines.green, &lines.blue};
      for (int i = 0; i < 3; ++i) {
        if (colours[i] == nullptr) continue;
        const auto* offset = colours[i]->as_integer();
        if (offset == nullptr || offset->get() < 0 || offset->get() > std::numeric_limits<std::uint32_t>::max())
          refuse(*colours[i], keys[i], "GPIO line offsets are non-negative integers");
        *out[i] = static_cast<unsigned>(offset->get());
      }
      board_.gpio_slots.emplace(slot, lines);
      return;
    }
    if (multi != nullptr) {
      board_.sysfs_slots.emplace(slot, MulticolourLed{led_name(*multi, "leds.slot.multicolour")});
      return;
    }
    SlotLedNames names;
    std::string* out[3] = {&names.red, &names.green, &names.blue};
    for (int i = 0; i < 3; ++i)
      if (colours[i] != nullptr) *out[i] = led_name(*colours[i], keys[i]);
    board_.sysfs_slots.emplace(slot, std::move(names));
  }

  std::string led_name(const toml::node& n, std::string_view key) const {
    auto name = string_of(n, key);
    // A name is one directory under the LED class root, never a way out of it.
    if (name.find('/') != std::string::npos || name.find("..") != std::string::npos || name == ".")
      refuse(n, key, "LED names cannot contain '/' or \"..\"");
    return name;
  }

  std::string string_of(const toml::node& n, std::string_view key) const {
    const auto* s = n.as_string();
    if (s == nullptr) refuse(n, key, "expected a string");
    return s->get();
  }

  void warn(std::uint32_t line, const std::string& what) {
    board_.warnings.push_back(source_ + ":" + std::to_string(line) + ": " + what);
  }

  template <typename Located>
  static std::uint32_t line_of(const Located& n) {
    return n.source().begin.line;
  }

  static std::string text_of(const toml::node& n) {
    std::ostringstream out;
    n.visit([&](const auto& v) { out << v; });
    auto text = out.str();
    if (text.size() > 80) text = text.substr(0, 77) + "...";
    return text;
  }

  [[noreturn]] void refuse(const toml::node& n, std::string_view key, const std::string& why) const {
    const auto what = n.is_table() ? std::string(" is a table") : n.is_array() ? std::string(" is an array") : " = " + text_of(n);
    throw std::invalid_argument(source_ + ":" + std::to_string(line_of(n)) + ": " + std::string(key) + what + ": " + why);
  }

  [[noreturn]] void refuse_missing(const toml::table& where, std::string_view key, const std::string& why) const {
    throw std::invalid_argument(source_ + ":" + std::to_string(line_of(where)) + ": " + std::string(key) + " missing: " + why);
  }

  std::string source_;
  LedBoard& board_;
  std::map<unsigned, std::uint32_t> seen_;  ///< slot -> line it was described at
};

}  // namespace

LedBoard parse_led_board(std::string_view toml_text, std::string_view source_name) {
  toml::table doc;
  try {
    doc = parse_toml(toml_text, source_name);
  } catch (const TomlError& e) {
    throw std::invalid_argument(std::string(source_name) + ":" + std::to_string(e.line) + ":" + std::to_string(e.column) + ": " + e.what());
  }
  LedBoard board;
  LedBoardReader(source_name, board).read(doc);
  return board;
}

std::unique_ptr<LedBackend> make_led_backend(const LedBoard& board, asio::any_io_executor executor, LedErrorSink on_error) {
  switch (board.backend) {
    case LedBackendKind::sysfs: return std::make_unique<SysfsLeds>(board.sysfs_slots, std::move(on_error), board.sysfs_root);
    case LedBackendKind::gpio:
      return std::make_unique<GpioLeds>(std::move(executor),
                                        std::make_unique<GpiodOutput>(board.gpio_chip, board.gpio_slots, board.active_low, on_error),
                                        on_error);
    case LedBackendKind::virtual_leds: break;
  }
  return std::make_unique<VirtualLeds>();
}

}  // namespace bodydock::hw
