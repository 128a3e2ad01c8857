// The upload queue against the real Ceph RGW, with dockd as a process: storage that refuses
// the dock (wrong secret), storage that is down and comes back, a spool at its high-water
// mark, dockd killed in the middle of a multipart upload, and a network that resets, stalls
// and corrupts (tests/support/fault_proxy.hpp). In every case nothing is erased on a camera
// before storage holds it intact, and in the end everything arrives exactly once.
#include "dock/local_sink.hpp"
#include "dock/s3/client.hpp"
#include "dock/state_db.hpp"
#include "hw/camera_device.hpp"
#include "proto/sha256.hpp"
#include "support/daemon.hpp"
#include "support/fault_proxy.hpp"
#include "support/rgw.hpp"
#include "support/sandbox.hpp"

#include <boost/asio/io_context.hpp>
#include <boost/test/unit_test.hpp>

#include <cstdlib>
#include <random>
#include <thread>

using namespace bodydock;
namespace asio = boost::asio;

namespace {

using Ms = std::chrono::milliseconds;

std::string new_bucket(const char* what) { return std::string(what) + "-" + std::to_string(std::random_device{}()); }

std::vector<std::string> demo_args(const std::string& store, const std::filesystem::path& state, unsigned cameras, unsigned segments,
                                   const std::string& mib, std::vector<std::string> extra = {}) {
  std::vector<std::string> a = {"/usr/bin/env"};
  // Leading NAME=VALUE items of `extra` go to env, the rest to dockd.
  std::size_t i = 0;
  for (; i < extra.size() && extra[i].find('=') != std::string::npos && extra[i][0] != '-'; ++i) a.push_back(extra[i]);
  for (const auto& s : {DOCKD_PATH, "demo", "--store"}) a.emplace_back(s);
  a.push_back(store);
  for (const auto& s : {"--state", state.c_str(), "--no-table", "--cameras"}) a.emplace_back(s);
  a.push_back(std::to_string(cameras));
  a.emplace_back("--segments");
  a.push_back(std::to_string(segments));
  a.emplace_back("--segment-mib");
  a.push_back(mib);
  a.insert(a.end(), extra.begin() + static_cast<std::ptrdiff_t>(i), extra.end());
  return a;
}

/// Waits (polling the log) until `text` appears `times` times; false after `limit`.
bool wait_for_log(const std::filesystem::path& log, const std::string& text, Ms limit, std::size_t times = 1) {
  const auto until = std::chrono::steady_clock::now() + limit;
  for (;;) {
    const auto all = test::slurp(log);
    std::size_t n = 0;
    for (auto at = all.find(text); at != std::string::npos; at = all.find(text, at + 1)) ++n;
    if (n >= times) return true;
    if (std::chrono::steady_clock::now() > until) return false;
    std::this_thread::sleep_for(Ms(100));
  }
}

/// A whole S3 request from the test (not through the dock).
s3::Response s3_call(const std::string& method, const std::string& bucket, const std::string& key, std::vector<s3::QueryParam> query = {},
                     s3::Client::Headers headers = {}) {
  asio::io_context ioc;
  s3::Client client(ioc.get_executor(), test::rgw_endpoint(), test::rgw_credentials());
  s3::Client::Result out = boost::system::error_code{};
  auto op = [](s3::Client& c, std::string m, std::string b, std::string k, std::vector<s3::QueryParam> q, s3::Client::Headers h,
               s3::Client::Result& o) -> asio::awaitable<void> { o = co_await c.request(std::move(m), std::move(b), std::move(k), std::move(q), std::move(h), {}); };
  test::run_with_watchdog(ioc, op(client, method, bucket, key, std::move(query), std::move(headers), out));
  BOOST_REQUIRE_MESSAGE(out, "transport: " << out.error().message());
  return *out;
}

void create_bucket(const std::string& bucket) {
  s3::Client::Headers h;
  h.push_back({"x-amz-bucket-object-lock-enabled", "true"});
  const auto r = s3_call("PUT", bucket, "", {}, h);
  BOOST_REQUIRE_MESSAGE(r.ok(), "create bucket " << bucket << ": HTTP " << r.status << " " << r.error_code());
}

hw::CameraDevice camera(const std::filesystem::path& state, const std::string& serial) {
  hw::CameraSpec spec;
  spec.serial = serial;
  return hw::CameraDevice::open_persistent(spec, std::filesystem::path(state.string() + ".world") / "cameras");
}

std::string serial_of(unsigned i) {
  char s[16];
  std::snprintf(s, sizeof s, "BC-%04u", i);
  return s;
}

/// Every segment of every camera is in the bucket once, byte-exact, and erased on the camera;
/// no multipart upload is left behind. Returns the number of segments checked.
std::size_t check_all_stored(const std::filesystem::path& state, const std::string& bucket, const std::string& prefix, unsigned cameras) {
  std::size_t checked = 0;
  for (unsigned i = 1; i <= cameras; ++i) {
    const auto cam = camera(state, serial_of(i));
    for (const auto& m : cam.recorded()) {
      BOOST_CHECK_MESSAGE(cam.is_erased(m.seq), serial_of(i) << " seg " << m.seq << " not erased");
      const auto key = prefix + dock::LocalDirSink::object_key(m);
      const auto got = s3_call("GET", bucket, key);
      BOOST_REQUIRE_MESSAGE(got.ok(), key << ": HTTP " << got.status);
      BOOST_CHECK_MESSAGE(proto::Sha256::of(proto::ByteView(reinterpret_cast<const std::uint8_t*>(got.body.data()), got.body.size())) == m.sha256,
                          key << ": stored bytes differ from the camera's");
      // Exactly one object (one version in the versioned bucket): no retry made a second.
      std::vector<s3::QueryParam> q{{"versions", ""}, {"prefix", key}};
      const auto versions = s3_call("GET", bucket, "", q);
      BOOST_REQUIRE(versions.ok());
      BOOST_CHECK_EQUAL(test::count_of(versions.body, "<Version>"), 1u);
      ++checked;
    }
  }
  std::vector<s3::QueryParam> q{{"uploads", ""}};
  const auto uploads = s3_call("GET", bucket, "", q);
  BOOST_REQUIRE(uploads.ok());
  BOOST_CHECK_MESSAGE(uploads.body.find("<Upload>") == std::string::npos, "multipart uploads left behind: " << uploads.body);
  return checked;
}

/// The upload ids the dock started, in order (log lines "S3 KEY: upload ID started").
/// (Plain string search: std::regex trips a g++ 12 -Wmaybe-uninitialized false positive.)
std::vector<std::string> uploads_started(const std::string& log) {
  std::vector<std::string> ids;
  const std::string mark = ": upload ";
  for (auto at = log.find(mark); at != std::string::npos; at = log.find(mark, at + 1)) {
    const auto id = at + mark.size();
    const auto space = log.find(' ', id);
    if (space == std::string::npos || log.compare(space, 9, " started\n") != 0) continue;
    ids.push_back(log.substr(id, space - id));
  }
  return ids;
}

/// The rest of the line after `prefix`, empty if absent.
std::string line_after(const std::string& text, const std::string& prefix) {
  const auto at = text.find(prefix);
  if (at == std::string::npos) return {};
  const auto start = at + prefix.size();
  return text.substr(start, text.find('\n', start) - start);
}

std::size_t spool_files(const std::filesystem::path& state) {
  std::size_t n = 0;
  for (const auto& e : std::filesystem::recursive_directory_iterator(state / "spool")) n += e.is_regular_file() ? 1 : 0;
  return n;
}

std::size_t erased_on(const std::filesystem::path& state, unsigned cameras) {
  std::size_t n = 0;
  for (unsigned i = 1; i <= cameras; ++i) n += camera(state, serial_of(i)).erased().size();
  return n;
}

}  // namespace

BOOST_AUTO_TEST_SUITE(s3_queue)

BOOST_AUTO_TEST_CASE(wrong_secret_holds_the_queue_with_an_alert_and_erases_nothing) {
  test::TempDir dir;
  const auto bucket = new_bucket("held");
  create_bucket(bucket);
  const auto state = dir / "state";
  const auto log = dir / "dockd.log";
  {
    test::Daemon d(demo_args("s3://" + bucket + "/p", state, 2, 2, "1", {"AWS_SECRET_ACCESS_KEY=wrong-secret", "--upload-retry-max-ms", "300"}), log);
    BOOST_REQUIRE_MESSAGE(wait_for_log(log, "ALERT storage refuses the dock", Ms(60000)), test::slurp(log));
    BOOST_REQUIRE_MESSAGE(wait_for_log(log, ": spooled", Ms(60000), 4), test::slurp(log));
    std::this_thread::sleep_for(Ms(1500));  // a few probes go out and are refused too
    d.terminate();
    BOOST_CHECK_GE(d.wait_exit(Ms(20000)), 0);
  }
  const auto out = test::slurp(log);
  BOOST_CHECK_MESSAGE(out.find("SignatureDoesNotMatch") != std::string::npos, out);
  BOOST_CHECK_EQUAL(test::count_of(out, "ALERT storage refuses the dock"), 1u);  // one alert, not one per probe
  BOOST_CHECK(out.find("wrong-secret") == std::string::npos);             // no secret in the log
  BOOST_CHECK_EQUAL(erased_on(state, 2), 0u);
  {
    dock::StateDb db(state / "dock.sqlite");
    const auto spooled = db.in_state(dock::SegState::spooled);
    BOOST_CHECK_EQUAL(spooled.size(), 4u);
    std::uint32_t attempts = 0;
    for (const auto& r : spooled) attempts += r.attempts;
    BOOST_CHECK_GE(attempts, 2u);  // the held queue kept probing
  }
  const auto audit = test::slurp(state / "audit" / "audit.log");
  BOOST_CHECK_MESSAGE(audit.find("\"uplink held\"") != std::string::npos, audit);
  BOOST_CHECK(audit.find("wrong-secret") == std::string::npos);

  // The key fixed: the same state drains completely.
  auto [rc, again] = test::run_command(demo_args("s3://" + bucket + "/p", state, 2, 2, "1", {"--exit-when-idle"}), dir / "again.log", Ms(180000));
  BOOST_REQUIRE_MESSAGE(rc == 0, again);
  BOOST_CHECK_EQUAL(check_all_stored(state, bucket, "p/", 2), 4u);
}

BOOST_AUTO_TEST_CASE(storage_down_pauses_pulling_at_the_spool_limit_and_everything_arrives_when_it_is_back) {
  test::TempDir dir;
  const auto bucket = new_bucket("down");
  create_bucket(bucket);
  const auto endpoint = test::rgw_endpoint();
  test::FaultProxy proxy(endpoint.host, endpoint.port);
  proxy.set_mode(test::FaultProxy::Mode::refuse);
  const auto state = dir / "state";
  const auto log = dir / "dockd.log";
  test::Daemon d(demo_args("s3://" + bucket, state, 2, 4, "1",
                           {"AWS_ENDPOINT_URL=" + proxy.url(), "--spool-limit-mib", "3", "--upload-retry-max-ms", "500", "--exit-when-idle"}),
                 log);
  // Both slots stop pulling at the high-water mark; the cameras keep everything.
  BOOST_REQUIRE_MESSAGE(wait_for_log(log, "pulling pauses until uploads drain", Ms(60000), 2), test::slurp(log));
  std::this_thread::sleep_for(Ms(1500));
  BOOST_CHECK_EQUAL(erased_on(state, 2), 0u);
  {
    dock::StateDb db(state / "dock.sqlite");
    BOOST_CHECK_LE(db.spool_bytes(), 3u << 20);
    BOOST_CHECK_GE(db.in_state(dock::SegState::spooled).size(), 2u);
  }
  BOOST_CHECK_GE(proxy.counters().refused, 2u);
  // Storage back: everything drains, pulling resumes, every camera ends empty.
  proxy.set_mode(test::FaultProxy::Mode::forward);
  const int rc = d.wait_exit(Ms(180000));
  BOOST_REQUIRE_MESSAGE(rc == 0, test::slurp(log));
  BOOST_CHECK_MESSAGE(test::slurp(log).find("pulling resumes") != std::string::npos, test::slurp(log));
  BOOST_CHECK_EQUAL(check_all_stored(state, bucket, "", 2), 8u);
  BOOST_CHECK_EQUAL(spool_files(state), 0u);
}

BOOST_AUTO_TEST_CASE(dockd_killed_mid_multipart_continues_the_same_upload) {
  test::TempDir dir;
  const auto bucket = new_bucket("resume");
  create_bucket(bucket);
  const auto state = dir / "state";
  const auto log = dir / "dockd.log";
  // Capped at 8 MB/s, so the kill lands well inside the upload (about 5 s).
  const auto args = demo_args("s3://" + bucket, state, 1, 1, "40", {"--s3-part-mib", "5", "--upload-mbps", "8", "--log-level", "debug", "--exit-when-idle"});
  std::string upload_id;
  {
    test::Daemon d(args, log);
    BOOST_REQUIRE_MESSAGE(wait_for_log(log, ": part 3 stored", Ms(120000)), test::slurp(log));
    d.kill9();
    d.wait_exit(Ms(-1));
    const auto ids = uploads_started(test::slurp(log));
    BOOST_REQUIRE_EQUAL(ids.size(), 1u);
    upload_id = ids.front();
  }
  BOOST_CHECK_EQUAL(erased_on(state, 1), 0u);
  const auto log2 = dir / "again.log";
  auto [rc, out] = test::run_command(args, log2, Ms(180000));
  BOOST_REQUIRE_MESSAGE(rc == 0, out);
  BOOST_CHECK_MESSAGE(out.find("continuing upload " + upload_id) != std::string::npos, out);
  BOOST_CHECK_MESSAGE(uploads_started(out).empty(), "a second upload was started:\n" << out);
  BOOST_CHECK(out.find(": part 1 stored") == std::string::npos);  // parts already there are not sent again
  BOOST_CHECK_EQUAL(check_all_stored(state, bucket, "", 1), 1u);
}

BOOST_AUTO_TEST_CASE(resets_stalls_and_a_corrupted_part_are_retried_and_nothing_corrupt_is_stored) {
  test::TempDir dir;
  const auto bucket = new_bucket("faults");
  create_bucket(bucket);
  const auto endpoint = test::rgw_endpoint();
  test::FaultProxy proxy(endpoint.host, endpoint.port);
  const auto state = dir / "state";
  const auto log = dir / "dockd.log";
  // 12 MiB segments go in 5, 5 and 2 MiB parts; capped at 8 MB/s so the uploads last while
  // the faults are armed one after another.
  test::Daemon d(demo_args("s3://" + bucket, state, 2, 2, "12",
                           {"AWS_ENDPOINT_URL=" + proxy.url(), "--s3-part-mib", "5", "--s3-timeout-ms", "1500", "--upload-retry-max-ms", "500",
                            "--upload-mbps", "8", "--exit-when-idle"}),
                 log);
  // One fault at a time, each on the next request that carries that much.
  const auto wait_counter = [&proxy](auto field, std::uint64_t n) {
    for (int i = 0; i < 600 && field(proxy.counters()) < n; ++i) std::this_thread::sleep_for(Ms(100));
    return field(proxy.counters()) >= n;
  };
  proxy.flip_at(3u << 20);
  BOOST_REQUIRE(wait_counter([](const auto& c) { return c.flips; }, 1));
  proxy.reset_at(2u << 20);
  BOOST_REQUIRE(wait_counter([](const auto& c) { return c.resets; }, 1));
  proxy.stall_at(1u << 20, Ms(4000));  // longer than the request deadline
  BOOST_REQUIRE(wait_counter([](const auto& c) { return c.stalls; }, 1));
  const int rc = d.wait_exit(Ms(180000));
  const auto out = test::slurp(log);
  BOOST_REQUIRE_MESSAGE(rc == 0, out);
  // The damaged part was refused by storage (its Content-MD5 / SHA-256 no longer matched).
  BOOST_CHECK_MESSAGE(out.find("BadDigest") != std::string::npos || out.find("XAmzContentSHA256Mismatch") != std::string::npos, out);
  BOOST_CHECK_EQUAL(check_all_stored(state, bucket, "", 2), 4u);
  // Each failed attempt is on record with what went wrong: at least as many as the log reports
  // (the log may fold repeated lines; the audit log never does).
  const auto audit = test::slurp(state / "audit" / "audit.log");
  BOOST_CHECK_GE(test::count_of(audit, "\"event\":\"store failed\""), 1u);
  BOOST_CHECK_GE(test::count_of(audit, "\"event\":\"store failed\""), test::count_of(out, ": store attempt "));
}

BOOST_AUTO_TEST_CASE(rgw_killed_mid_multipart_and_restarted_the_upload_continues) {
  // A gateway of its own (killing the shared one would fail the suites running beside this).
  test::TempDir dir;
  const auto rgw_dir = dir / "rgw";
  auto [up_rc, up_out] = test::run_command({"/bin/sh", "-c", std::string(RGW_SCRIPTS) + "/rgw-up " + rgw_dir.string() + " 2>&1"}, dir / "rgw-up.log",
                                           Ms(300000));
  BOOST_REQUIRE_MESSAGE(up_rc == 0, up_out);
  struct Down {
    std::filesystem::path d;
    ~Down() { [[maybe_unused]] const int rc = std::system((std::string(RGW_SCRIPTS) + "/rgw-down " + d.string() + " >/dev/null 2>&1").c_str()); }
  } down{rgw_dir};
  const auto endpoint = line_after(up_out, "export AWS_ENDPOINT_URL=");
  BOOST_REQUIRE_MESSAGE(!endpoint.empty(), up_out);
  const auto state = dir / "state";
  const auto log = dir / "dockd.log";
  test::Daemon d(demo_args("s3://restart", state, 1, 1, "40",
                           {"AWS_ENDPOINT_URL=" + endpoint, "--s3-part-mib", "5", "--upload-mbps", "8", "--log-level", "debug",
                            "--upload-retry-max-ms", "500", "--exit-when-idle"}),
                 log);
  BOOST_REQUIRE_MESSAGE(wait_for_log(log, ": part 3 stored", Ms(120000)), test::slurp(log));
  auto [kill_rc, kill_out] = test::run_command({std::string(RGW_SCRIPTS) + "/rgw-gateway", "kill", rgw_dir.string()}, dir / "kill.log");
  BOOST_REQUIRE_MESSAGE(kill_rc == 0, kill_out);
  BOOST_REQUIRE_MESSAGE(wait_for_log(log, "store attempt", Ms(60000)), test::slurp(log));  // the dock noticed, and waits
  std::this_thread::sleep_for(Ms(1500));
  auto [start_rc, start_out] = test::run_command({std::string(RGW_SCRIPTS) + "/rgw-gateway", "start", rgw_dir.string()}, dir / "start.log", Ms(120000));
  BOOST_REQUIRE_MESSAGE(start_rc == 0, start_out);
  const int rc = d.wait_exit(Ms(180000));
  const auto out = test::slurp(log);
  BOOST_REQUIRE_MESSAGE(rc == 0, out);
  const auto ids = uploads_started(out);
  BOOST_REQUIRE_EQUAL(ids.size(), 1u);  // continued; never a second
  BOOST_CHECK_MESSAGE(out.find("continuing upload " + ids.front()) != std::string::npos, out);
  // Every object byte-exact, one version, no upload left: checked through this gateway.
  const auto cam = camera(state, "BC-0001");
  asio::io_context ioc;
  s3::Client client(ioc.get_executor(), s3::Endpoint::parse(endpoint, "default"), test::rgw_credentials());
  s3::Client::Result got = boost::system::error_code{};
  auto op = [](s3::Client& c, std::string k, s3::Client::Result& o) -> asio::awaitable<void> { o = co_await c.get_object("restart", std::move(k)); };
  test::run_with_watchdog(ioc, op(client, dock::LocalDirSink::object_key(cam.recorded().at(0)), got));
  BOOST_REQUIRE(got && got->ok());
  BOOST_CHECK(proto::Sha256::of(proto::ByteView(reinterpret_cast<const std::uint8_t*>(got->body.data()), got->body.size())) == cam.recorded().at(0).sha256);
  BOOST_CHECK(cam.is_erased(1));
}

BOOST_AUTO_TEST_SUITE_END()
