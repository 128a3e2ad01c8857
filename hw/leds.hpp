#pragma once
/// Slot lights: the LED beside each slot tells the officer what the dock is doing with the
/// camera in it, and above all when it is safe to take it. The table of lights is the dock's
/// sticker (pattern_for); the backends make it real:
///  - sysfs: the Linux LED class (/sys/class/leds), single-colour LEDs or one multicolour LED
///    per slot; blinking is done by the kernel's "timer" trigger;
///  - gpio: one GPIO line per colour through the GPIO character device (libgpiod); blinking is
///    done by a timer in the event loop;
///  - virtual: remembers what each slot shows, for the demo, the web page and tests.
/// Writing to the hardware never throws: failures go to an error sink, the backend says the
/// slot is pending, and SlotLeds shows it again soon (led_retry_delay).
///
/// The board file's [leds] table says which backend and how each slot is wired (TOML; the
/// same example is hw/board-example.toml):
///
///     [leds]
///     backend = "sysfs"               # sysfs | gpio | virtual
///     sysfs_root = "/sys/class/leds"  # optional
///     gpio_chip = "gpiochip0"         # gpio only: /dev/gpiochipN, gpiochipN, N or the chip's label
///     active_low = false              # gpio only
///     [[leds.slot]]
///     slot = 1
///     red = "dock:red:slot1"          # sysfs: LED names; gpio: line offsets (integers)
///     green = "dock:green:slot1"
///     blue = "dock:blue:slot1"
///     [[leds.slot]]
///     slot = 2
///     multicolour = "dock:rgb:slot2"  # sysfs only
///
/// Slots are 1..64, each listed once, with red/green/blue (any may be left out when the board
/// lacks that colour) or a multicolour LED. Amber is shown as red + green, white as all three.

#include <boost/asio/any_io_executor.hpp>

#include <array>
#include <chrono>
#include <cstddef>
#include <cstdint>
#include <filesystem>
#include <functional>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <variant>
#include <vector>

struct gpiod_chip;
struct gpiod_line;

namespace bodydock::hw {

/// What a slot's light says.
enum class SlotLight { empty, charging, authenticating, syncing, waiting_uplink, done, attention };
inline constexpr std::array<SlotLight, 7> all_slot_lights{SlotLight::empty,   SlotLight::charging,       SlotLight::authenticating,
                                                          SlotLight::syncing, SlotLight::waiting_uplink, SlotLight::done,
                                                          SlotLight::attention};

enum class LedColour { off, white, blue, amber, green, red };

/// How a light looks: dark when on_ms is 0 (or the colour is off), solid when off_ms is 0,
/// otherwise blinking on_ms on, off_ms off. `name` is the sticker's word for it.
struct LedPattern {
  LedColour colour;
  unsigned on_ms;
  unsigned off_ms;
  const char* name;

  [[nodiscard]] constexpr bool dark() const noexcept { return colour == LedColour::off || on_ms == 0; }
  [[nodiscard]] constexpr bool solid() const noexcept { return !dark() && off_ms == 0; }
  [[nodiscard]] constexpr bool blinking() const noexcept { return !dark() && off_ms != 0; }
};
/// Patterns are equal when they look the same (colour and timing); the name is only a label.
bool operator==(const LedPattern& a, const LedPattern& b) noexcept;

/// The sticker:
///   empty           off    "off"
///   authenticating  white  "fast blink"   250 on / 250 off
///   syncing         blue   "slow blink"   1000 / 1000
///   waiting_uplink  amber  "short flash"  200 / 1800   (stored here, waiting to go upstream)
///   charging        green  "long on"      1800 / 200   (stored and erased, still charging: safe to take)
///   done            green  "solid"                     (stored, erased, charged: safe to take)
///   attention       red    "rapid blink"  100 / 100
/// Solid is written as on_ms 1000, off_ms 0. No two lights share a timing, so the sticker can
/// be read by someone who cannot tell the colours apart.
LedPattern pattern_for(SlotLight light) noexcept;
/// "empty", "charging", "authenticating", "syncing", "waiting for uplink", "done", "attention".
const char* light_name(SlotLight light) noexcept;
/// "off", "white", "blue", "amber", "green", "red".
const char* colour_name(LedColour colour) noexcept;
/// The colour on an RGB LED (multicolour LEDs, the web page). Amber is 255,128,0 rather than
/// the nominal #FFBF00: green dies are the brightest, and 191 of green reads as yellow.
std::array<std::uint8_t, 3> rgb(LedColour colour) noexcept;

/// Receives a hardware error as one line naming the slot, the LED, the file and the reason.
using LedErrorSink = std::function<void(std::string)>;

/// Where slot lights are shown. Slots are 1-based.
class LedBackend {
 public:
  virtual ~LedBackend();
  /// Shows `p` on `slot`'s LED. Never throws for hardware errors (see LedErrorSink).
  virtual void show(unsigned slot, const LedPattern& p) = 0;
  /// True while the last pattern shown on `slot` has not fully reached the hardware (a write
  /// failed); showing it again retries. Backends that cannot fail say false.
  [[nodiscard]] virtual bool pending(unsigned /*slot*/) const { return false; }
  [[nodiscard]] virtual std::string describe() const = 0;
};

/// LEDs that exist only in memory: the demo and the web page read them back.
class VirtualLeds final : public LedBackend {
 public:
  void show(unsigned slot, const LedPattern& p) override;
  [[nodiscard]] std::string describe() const override { return "virtual LEDs"; }
  /// The last pattern shown on `slot`, nullopt before the first.
  [[nodiscard]] std::optional<LedPattern> current(unsigned slot) const;
  /// How many times show() was called, over all slots.
  [[nodiscard]] std::size_t writes() const noexcept { return writes_; }

 private:
  std::map<unsigned, LedPattern> shown_;
  std::size_t writes_ = 0;
};

/// Names of a slot's single-colour LEDs in the LED class; empty when the board lacks the colour.
struct SlotLedNames {
  std::string red, green, blue;
};
/// A multicolour LED (leds-class-multicolor: `multi_index`, `multi_intensity`).
struct MulticolourLed {
  std::string name;
};
using SysfsSlotLeds = std::variant<SlotLedNames, MulticolourLed>;

/// The Linux LED class. Solid: trigger "none", brightness = max_brightness. Off: trigger "none",
/// brightness 0. Blinking: brightness = max_brightness (the kernel blinks at the brightness it
/// had), trigger "timer", then delay_on and delay_off, which appear once the trigger is set.
/// Every value is written whole in one write(2), without a newline. A pattern already shown on
/// a slot is not written again, so a blink is not restarted mid-phase; nor is the timer trigger
/// set on an LED that has it already (setting it again would recreate delay_on and delay_off,
/// root's until udev hands them to the service group: a retry would meet the same race).
class SysfsLeds final : public LedBackend {
 public:
  static constexpr const char* default_root = "/sys/class/leds";

  SysfsLeds(std::map<unsigned, SysfsSlotLeds> slots, LedErrorSink on_error, std::filesystem::path root = default_root);
  void show(unsigned slot, const LedPattern& p) override;
  [[nodiscard]] bool pending(unsigned slot) const override;
  [[nodiscard]] std::string describe() const override;
  /// Attribute writes attempted so far (diagnostics; shows that repeats write nothing).
  [[nodiscard]] std::size_t attribute_writes() const noexcept { return writes_; }

 private:
  struct Slot {
    SysfsSlotLeds leds;
    std::optional<LedPattern> shown;  ///< set only once every write of it succeeded
    bool pending = false;             ///< the last show() did not fully arrive
  };
  bool drive(unsigned slot, const std::string& led, const LedPattern& p, bool lit);
  bool drive_multicolour(unsigned slot, const std::string& led, const LedPattern& p);
  bool blink(unsigned slot, const std::string& led, const LedPattern& p, const std::string& brightness);
  bool put(unsigned slot, const std::string& led, const char* attribute, const std::string& value);
  [[nodiscard]] unsigned max_brightness(const std::string& led) const;

  std::map<unsigned, Slot> slots_;
  LedErrorSink on_error_;
  std::filesystem::path root_;
  std::size_t writes_ = 0;
};

/// GPIO line offsets of a slot's LED colours; nullopt when the board lacks the colour.
struct GpioSlotLines {
  std::optional<unsigned> red, green, blue;
};

/// Sets a slot's colour lines. Kept this small so the blinking can be tested without a chip.
class GpioOutput {
 public:
  virtual ~GpioOutput() = default;
  /// Drives the slot's lines (true = lit). Returns false when the hardware was not reached;
  /// the caller tries again later.
  virtual bool set(unsigned slot, bool red, bool green, bool blue) = 0;
  [[nodiscard]] virtual std::string describe() const { return "GPIO lines"; }
};

/// libgpiod (v1 API): lines requested as outputs with consumer "bodydock", initially dark. The
/// chip is opened and each slot's lines requested on first use, and again after a failure, so
/// a missing chip or a line held by someone else darkens those LEDs without stopping the dock.
/// A failure is reported once until it changes or clears.
class GpiodOutput final : public GpioOutput {
 public:
  GpiodOutput(std::string chip, const std::map<unsigned, GpioSlotLines>& slots, bool active_low, LedErrorSink on_error);
  ~GpiodOutput() override;
  GpiodOutput(const GpiodOutput&) = delete;
  GpiodOutput& operator=(const GpiodOutput&) = delete;
  bool set(unsigned slot, bool red, bool green, bool blue) override;
  [[nodiscard]] std::string describe() const override;

 private:
  struct Slot {
    GpioSlotLines offsets;
    std::array<gpiod_line*, 3> lines{};  ///< red, green, blue; requested when `requested`
    bool requested = false;
  };
  bool open_chip(unsigned slot);
  bool request(unsigned slot, Slot& s);
  void fail(unsigned slot, std::string message);

  std::string chip_name_;
  std::map<unsigned, Slot> slots_;
  bool active_low_;
  LedErrorSink on_error_;
  gpiod_chip* chip_ = nullptr;
  std::map<unsigned, std::string> reported_;  ///< last error reported per slot
};

/// GPIO LEDs: solid and off are set once; blinking toggles the lines from a steady_timer per
/// slot on `executor` (on_ms lit, off_ms dark, without drift). Showing a new pattern stops the
/// old blink; showing the same one again leaves it running.
class GpioLeds final : public LedBackend {
 public:
  GpioLeds(boost::asio::any_io_executor executor, std::unique_ptr<GpioOutput> output, LedErrorSink on_error = {});
  ~GpioLeds() override;
  GpioLeds(const GpioLeds&) = delete;
  GpioLeds& operator=(const GpioLeds&) = delete;
  void show(unsigned slot, const LedPattern& p) override;
  [[nodiscard]] bool pending(unsigned slot) const override;
  [[nodiscard]] std::string describe() const override;

  struct Slot;  ///< a slot's pattern and timer, shared with its blinking coroutine

 private:
  boost::asio::any_io_executor executor_;
  std::unique_ptr<GpioOutput> output_;
  LedErrorSink on_error_;
  std::map<unsigned, std::shared_ptr<Slot>> slots_;
};

/// How long SlotLeds waits before retry number `attempt` (from 0) of a slot whose writes
/// failed: 50 ms, doubling, at most 10 s. Short at first because the commonest failure clears
/// in milliseconds (the timer trigger's delay_on and delay_off appear root's, and udev hands
/// them to the service group a moment later); long later because a missing LED stays missing.
std::chrono::milliseconds led_retry_delay(unsigned attempt) noexcept;

/// The lights of a dock's slots: remembers each slot's light and drives the backend only when
/// it changes. Construction shows every slot empty, so LEDs left on by an earlier run go dark.
/// A slot the backend could not fully show is retried on the led_retry_delay schedule, which
/// starts over whenever the slot's light changes and ends once the backend has it.
class SlotLeds {
 public:
  using Clock = std::chrono::steady_clock;

  SlotLeds(LedBackend& backend, unsigned slots);
  /// Throws std::out_of_range for a slot outside 1..slots() (a bug in the caller).
  void set(unsigned slot, SlotLight light);
  [[nodiscard]] SlotLight light(unsigned slot) const;
  [[nodiscard]] unsigned slots() const noexcept { return static_cast<unsigned>(lights_.size()); }
  /// Shows every slot's light again. Backends skip what they already show, so this only
  /// retries writes that failed (an LED driver that appeared late, a GPIO line freed).
  void refresh();
  /// Shows again the slots whose retry is due at `now`.
  void retry_due(Clock::time_point now = Clock::now());
  /// When retry_due() next has work; nullopt while every slot shows its light.
  [[nodiscard]] std::optional<Clock::time_point> next_retry() const;

 private:
  struct Retry {
    unsigned attempts = 0;                ///< retries made since the light last changed
    std::optional<Clock::time_point> due;  ///< set while the backend has the slot pending
  };
  /// After showing `slot`: schedules its next retry, or ends the schedule.
  void follow_up(unsigned slot, Clock::time_point now, bool retrying);

  LedBackend& backend_;
  std::vector<SlotLight> lights_;
  std::vector<Retry> retries_;
};

enum class LedBackendKind { sysfs, gpio, virtual_leds };
/// "sysfs", "gpio", "virtual".
const char* backend_name(LedBackendKind kind) noexcept;

/// The [leds] table of a board file.
struct LedBoard {
  LedBackendKind backend = LedBackendKind::virtual_leds;
  std::filesystem::path sysfs_root = SysfsLeds::default_root;
  std::string gpio_chip;
  bool active_low = false;
  std::map<unsigned, SysfsSlotLeds> sysfs_slots;  ///< backend sysfs
  std::map<unsigned, GpioSlotLines> gpio_slots;   ///< backend gpio
  std::vector<std::string> warnings;              ///< unknown keys, "<source>:<line>: ..."
};

inline constexpr unsigned max_led_slots = 64;

/// Parses the [leds] table of a board file; other tables are left to their readers. A board
/// file without [leds] has virtual LEDs (and a warning). Throws std::invalid_argument naming
/// the source, line, key and bad value ("board.toml:12: leds.slot.slot = 70: ...").
LedBoard parse_led_board(std::string_view toml_text, std::string_view source_name);

/// The backend a board describes. GPIO blinking runs on `executor`.
std::unique_ptr<LedBackend> make_led_backend(const LedBoard& board, boost::asio::any_io_executor executor, LedErrorSink on_error);

}  // namespace bodydock::hw
