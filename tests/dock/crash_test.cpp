// Crash safety of the real daemon process: `dockd demo` is SIGKILLed at 20 random moments
// during a sync and restarted each time. After every kill, no camera may have erased anything
// the store does not hold intact; at the end every segment is in the store exactly once,
// intact, every camera is empty, and the spool is empty.
#include "dock/local_sink.hpp"
#include "hw/camera_device.hpp"
#include "proto/sha256.hpp"
#include "support/daemon.hpp"
#include "support/sandbox.hpp"

#include <boost/test/unit_test.hpp>


#include <fstream>
#include <random>

using namespace bodydock;

namespace {

constexpr unsigned kCameras = 3;
constexpr unsigned kSegments = 5;
constexpr unsigned kSegmentMib = 6;

proto::Bytes read_file(const std::filesystem::path& p) {
  std::ifstream in(p, std::ios::binary);
  return {std::istreambuf_iterator<char>(in), std::istreambuf_iterator<char>()};
}

std::string serial_of(unsigned i) {
  char s[16];
  std::snprintf(s, sizeof s, "BC-%04u", i);
  return s;
}

/// Where the demo keeps the emulated cameras' flash: beside the dock's state, never in it.
std::filesystem::path cameras_dir(const std::filesystem::path& state) { return std::filesystem::path(state.string() + ".world") / "cameras"; }

/// Every erase a camera acknowledged is of a segment the store holds with that SHA-256.
/// Returns how many erases were checked.
std::size_t check_no_erase_before_store(const std::filesystem::path& state, const std::filesystem::path& store, int round) {
  std::size_t checked = 0;
  for (unsigned i = 1; i <= kCameras; ++i) {
    const auto serial = serial_of(i);
    for (const auto& [seq, sha] : hw::CameraDevice::read_erase_log(cameras_dir(state), serial)) {
      ++checked;
      char name[32];
      std::snprintf(name, sizeof name, "%08llu-", static_cast<unsigned long long>(seq));
      const auto path = store / serial / (name + proto::to_hex(sha) + ".seg");
      BOOST_REQUIRE_MESSAGE(std::filesystem::exists(path), "round " << round << ": " << serial << " erased seq " << seq << " that is not in the store");
      BOOST_CHECK_MESSAGE(proto::Sha256::of(read_file(path)) == sha, "round " << round << ": stored copy of erased seq " << seq << " is damaged");
    }
  }
  return checked;
}

}  // namespace

BOOST_AUTO_TEST_SUITE(crash)

BOOST_AUTO_TEST_CASE(sigkill_at_20_random_moments_loses_nothing) {
  test::TempDir dir;
  const auto store = dir / "store";
  const auto state = dir / "state";
  const std::vector<std::string> args = {DOCKD_PATH, "demo", "--cameras", std::to_string(kCameras), "--segments", std::to_string(kSegments),
                                         "--segment-mib", std::to_string(kSegmentMib), "--chunk-kib", "128", "--store", store.string(),
                                         "--state", state.string(), "--exit-when-idle", "--no-table", "--log-level", "notice"};
  std::mt19937 rng(20261129);
  std::uniform_int_distribution<int> delay_ms(20, 350);
  int interrupted = 0;
  std::size_t after_start = 0;  // kills that hit a dock whose start was already on record
  const auto starts = [&] { return test::count_of(test::slurp(state / "audit" / "audit.log"), "\"event\":\"dock started\""); };
  for (int round = 1; round <= 20; ++round) {
    const auto starts_before = starts();
    test::Daemon d(args, dir / "dockd.log");
    const auto delay = std::chrono::milliseconds(delay_ms(rng));
    const int early = d.wait_exit(delay);
    if (early < 0) {
      const bool started = starts() > starts_before;
      d.kill9();
      BOOST_CHECK_EQUAL(d.wait_exit(std::chrono::milliseconds(-1)), 128 + SIGKILL);
      ++interrupted;
      after_start += started ? 1 : 0;
    } else {
      BOOST_CHECK_MESSAGE(early == 0, "round " << round << ": dockd exited " << early << " on its own");
    }
    check_no_erase_before_store(state, store, round);
  }
  BOOST_TEST_MESSAGE(interrupted << " of 20 kills landed while dockd was working");
  BOOST_CHECK_GE(interrupted, 10);

  test::Daemon last(args, dir / "dockd.log");
  const int rc = last.wait_exit(std::chrono::milliseconds(180'000));
  if (rc != 0) BOOST_TEST_MESSAGE("dockd log:\n" << std::string(reinterpret_cast<const char*>(read_file(dir / "dockd.log").data()), read_file(dir / "dockd.log").size()));
  BOOST_REQUIRE_EQUAL(rc, 0);
  BOOST_CHECK_EQUAL(check_no_erase_before_store(state, store, 21), std::size_t{kCameras} * kSegments);

  for (unsigned i = 1; i <= kCameras; ++i) {
    hw::CameraSpec spec;
    spec.serial = serial_of(i);
    auto cam = hw::CameraDevice::open_persistent(spec, cameras_dir(state));
    BOOST_REQUIRE_EQUAL(cam.recorded().size(), kSegments);
    BOOST_CHECK_EQUAL(cam.erased().size(), kSegments);
    std::size_t files = 0, receipts = 0;
    for (const auto& e : std::filesystem::directory_iterator(store / spec.serial)) {
      const auto ext = e.path().extension();
      BOOST_CHECK_MESSAGE(ext == ".seg" || ext == ".json" || ext == ".receipt", "stray file " << e.path());
      files += ext == ".seg" ? 1 : 0;
      receipts += ext == ".receipt" ? 1 : 0;
    }
    BOOST_CHECK_EQUAL(files, kSegments);  // exactly once each
    BOOST_CHECK_EQUAL(receipts, kSegments);  // and each with the custody receipt the camera saw
    for (const auto& m : cam.recorded()) {
      const auto bytes = read_file(store / dock::LocalDirSink::object_key(m));
      proto::Bytes expect(m.size);
      cam.content(m.seq, 0, expect);
      BOOST_CHECK_MESSAGE(bytes == expect, spec.serial << " seq " << m.seq << " is not intact in the store");
    }
  }
  for (const auto& e : std::filesystem::recursive_directory_iterator(state / "spool"))
    BOOST_CHECK_MESSAGE(!e.is_regular_file(), "spool not empty: " << e.path());
  // Every start is on record, and the kills show: each kill of a dock whose start was on
  // record is named by the next start ("did not stop in order"; a kill before that is not a
  // run that began), and the last run stopped in order.
  const auto audit = test::slurp(state / "audit" / "audit.log");
  const auto unclean = test::count_of(audit, "did not stop in order");
  BOOST_TEST_MESSAGE(after_start << " kills after the dock's start was on record; " << unclean << " unclean starts audited");
  BOOST_CHECK_GE(unclean, after_start);
  BOOST_CHECK_LE(unclean, static_cast<std::size_t>(interrupted));
  BOOST_CHECK_NE(audit.rfind("\"event\":\"dock stopped\""), std::string::npos);
  BOOST_CHECK_GT(audit.rfind("\"event\":\"dock stopped\""), audit.rfind("\"event\":\"dock started\""));
  // The audit log survived every kill: the chain and its anchor verify.
  const auto [vrc, vout] = test::run_command({DOCKCTL_PATH, "audit", "verify", "--state", state.string()}, dir / "verify.log");
  BOOST_CHECK_MESSAGE(vrc == 0, vout);
}

BOOST_AUTO_TEST_SUITE_END()
