#pragma once
/// Scenario files for `dockd demo --scenario FILE` and the scenario test suite: the cameras a
/// dock meets (model, serial, keys, officer, segments, battery and temperature over time, clock
/// skew and drift), the faults they bring at given points, and what the dock must have done by
/// the end. The format is TOML, documented key by key in tests/scenarios/README.md. Parsing is
/// strict: an unknown key, a wrong type or a value out of range is refused with
/// `FILE:LINE: key = value: why`, so a typo never silently drops a fault.

#include <chrono>
#include <cstdint>
#include <filesystem>
#include <map>
#include <optional>
#include <set>
#include <stdexcept>
#include <string>
#include <utility>
#include <vector>

namespace bodydock::dock {

/// A scenario file that cannot be used; what() is `FILE:LINE: key = value: why`.
struct ScenarioError : std::runtime_error {
  using std::runtime_error::runtime_error;
};

/// The ways a camera can misbehave. The README of tests/scenarios says what each one does.
enum class FaultKind {
  unplug,          ///< the link drops after at_byte bytes sent to the dock (the officer pulls it)
  stall,           ///< silent for stall_ms after at_byte, then carries on
  hang,            ///< silent after at_byte until the dock gives up (its request timeout)
  short_packets,   ///< every IN transfer cut to at most max_bytes
  slow_link,       ///< IN paced to mbps MB/s
  bit_flip,        ///< chunk `chunk` of segment `segment` served with one bit flipped, `times` times
  broken_chain,    ///< segment `segment` left out of LIST while still held
  bad_signature,   ///< segment `segment`'s manifest signature does not verify
  malformed_frame, ///< 16 bytes of garbage in the IN stream at at_byte
  flood,           ///< from at_byte on, the device pushes garbage frames nobody asked for, without end
  no_enumerate,    ///< attached but invisible on the bus until its port is power-cycled (USB lane)
  overheat,        ///< the battery heats 20 C above resting while it charges
  charger_stuck,   ///< overheat, and the charger cannot be switched off
  replay_auth,     ///< answers authentication with an earlier session's nonce and signature
};
const char* fault_kind_name(FaultKind k) noexcept;

struct ScenarioFault {
  FaultKind kind = FaultKind::unplug;
  std::uint32_t line = 0;             ///< where it is in the file, for refusals made later
  unsigned docking = 1;               ///< link faults: the docking they happen on (1 = first)
  std::uint64_t at_byte = 0;
  std::uint32_t stall_ms = 0;
  std::uint32_t max_bytes = 0;
  double mbps = 0;
  std::uint64_t segment = 0;
  std::uint64_t chunk = 0;
  std::uint32_t times = 1;            ///< bit_flip: 0 = every time
};

/// What the dock must have done with one camera by the end.
struct CameraExpect {
  std::optional<std::uint64_t> stored;            ///< segments of this camera in storage
  std::optional<std::uint64_t> erased;            ///< segments the camera erased
  std::optional<std::uint64_t> left_on_camera;    ///< segments still on the camera
  std::optional<std::uint64_t> quarantined;       ///< segments the dock quarantined
  std::optional<std::string> session_end;         ///< how its last session ended (done, attention, charge_only, ...)
  std::optional<unsigned> dockings;               ///< sessions the dock ran for it
  std::vector<std::string> audit;                 ///< audit events that must be there for this camera
  std::vector<std::string> no_audit;              ///< audit events that must not be
  std::optional<std::string> alert;               ///< text the slot's alert must contain
  std::optional<int> battery_min;                 ///< last reported battery, at least
  std::optional<double> temperature_min_c;        ///< highest reported temperature, at least
  std::optional<std::int64_t> clock_off_min_ms;   ///< |camera minus dock| at docking, at least (audited)
};

struct ScenarioCamera {
  std::uint32_t line = 0;
  std::string serial;
  std::string model = "bodydock-emulator";
  std::string firmware = "emu-1.0.0";
  std::string officer;
  std::string keys = "enrolled";                  ///< enrolled | unenrolled | revoked
  std::vector<std::uint64_t> sizes;               ///< bytes of each segment
  std::set<std::uint64_t> priority;
  std::vector<std::pair<double, double>> battery;        ///< (seconds since docking, percent)
  std::vector<std::pair<double, double>> temperature_c;  ///< (seconds since docking, degrees C)
  std::int64_t clock_skew_ms = 0;
  double clock_drift_ppm = 0;
  std::vector<ScenarioFault> faults;
  CameraExpect expect;
};

struct ScenarioDock {
  std::optional<unsigned> timeout_ms;
  std::optional<unsigned> chunk_kib;
  std::optional<unsigned> reads_in_flight;
  std::optional<unsigned> status_interval_ms;
  std::optional<unsigned> chunk_retries;
  std::optional<unsigned> redockings;             ///< times an unplugged camera is put back (default 3)
};

struct ScenarioExpect {
  std::optional<std::uint64_t> stored;
  std::optional<std::uint64_t> erased;
  std::optional<std::uint64_t> quarantined;
  std::optional<double> max_seconds;
  std::optional<double> min_seconds;               ///< e.g. a slow link must really be slow
  std::vector<std::string> audit;
};

struct Scenario {
  std::filesystem::path file;
  std::string name;
  std::string description;
  std::uint64_t seed = 1;
  std::set<std::string> lanes = {"in-process"};   ///< where the test suite runs it
  ScenarioDock dock;
  std::vector<ScenarioCamera> cameras;
  ScenarioExpect expect;
};

/// Reads and checks a scenario file; throws ScenarioError.
Scenario load_scenario(const std::filesystem::path& file);

}  // namespace bodydock::dock
