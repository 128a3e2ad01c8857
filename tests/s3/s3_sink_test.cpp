// The S3 sink against the real Ceph RGW, in process: how storage's answers are classified,
// the clock check on RequestTimeTooSkewed, orphan multipart uploads cleared before a fresh
// upload, an upload that outlived its deadline and lands late making no second version,
// retention refused on a bucket without Object Lock, and a spool file that changed after its
// pull never stored.
#include "dock/s3_sink.hpp"
#include "dock/spool_sum.hpp"
#include "hw/camera_device.hpp"
#include "support/daemon.hpp"
#include "support/fault_proxy.hpp"
#include "support/fleet.hpp"
#include "support/rgw.hpp"
#include "support/sandbox.hpp"

#include <boost/asio/co_spawn.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/thread_pool.hpp>
#include <boost/test/unit_test.hpp>

#include <fstream>
#include <random>

using namespace bodydock;
namespace asio = boost::asio;

namespace {

/// One recorded segment of `bytes` and its spool file.
struct Segment {
  proto::Manifest m;
  std::filesystem::path spool;
};

Segment segment(const test::TempDir& dir, const std::string& serial, std::uint64_t bytes) {
  hw::CameraSpec spec;
  spec.serial = serial;
  spec.segments = 1;
  spec.segment_bytes = bytes;
  spec.chunk_size = 256 * 1024;
  spec.trust = test::camera_keys(serial);
  hw::CameraDevice dev(spec);
  Segment s{dev.recorded().at(0), dir / (serial + ".part")};
  std::vector<std::uint8_t> content(s.m.size);
  dev.content(s.m.seq, 0, content);
  std::ofstream(s.spool, std::ios::binary).write(reinterpret_cast<const char*>(content.data()), static_cast<std::streamsize>(content.size()));
  return s;
}

/// Runs one operation to its end. (co_spawn takes the awaitable itself: no coroutine gets it as
/// an argument, which g++ 12 mishandles.)
template <typename T>
T run(asio::io_context& ioc, asio::awaitable<T> op, T out) {
  bool done = false;
  asio::co_spawn(ioc, std::move(op), [&](std::exception_ptr e, T r) {
    if (e) std::rethrow_exception(e);
    out = std::move(r);
    done = true;
  });
  ioc.run_for(std::chrono::seconds(120));
  ioc.restart();
  BOOST_REQUIRE_MESSAGE(done, "operation did not finish");
  return out;
}

s3::Client::Result run(asio::io_context& ioc, asio::awaitable<s3::Client::Result> op) {
  return run(ioc, std::move(op), s3::Client::Result(boost::system::error_code{}));
}

dock::StoreResult store(asio::io_context& ioc, dock::S3Sink& sink, const Segment& s) {
  return run(ioc, sink.store(s.spool, s.m, dock::Custody{}), dock::StoreResult(dock::StoreFailure(dock::sink_errc::storage_error, "not run")));
}

std::string new_bucket(asio::io_context& ioc, s3::Client& c, bool object_lock) {
  const auto name = "sink-" + std::to_string(std::random_device{}());
  const auto r = run(ioc, c.create_bucket(name, object_lock));
  BOOST_REQUIRE(r && r->ok());
  return name;
}

s3::Response answer(unsigned status, const std::string& code) {
  s3::Response r;
  r.status = status;
  if (!code.empty()) r.body = "<?xml version=\"1.0\"?><Error><Code>" + code + "</Code></Error>";
  return r;
}

}  // namespace

BOOST_AUTO_TEST_SUITE(s3_sink)

BOOST_AUTO_TEST_CASE(storage_answers_are_classified_retry_hold_or_clock) {
  using dock::sink_errc;
  const std::pair<s3::Response, sink_errc> cases[] = {
      {answer(503, "SlowDown"), sink_errc::storage_error},
      {answer(500, "InternalError"), sink_errc::storage_error},
      {answer(502, ""), sink_errc::storage_error},
      {answer(429, ""), sink_errc::storage_error},
      {answer(400, "BadDigest"), sink_errc::storage_error},  // damaged on the way: send again
      {answer(400, "XAmzContentSHA256Mismatch"), sink_errc::storage_error},
      {answer(404, "NoSuchUpload"), sink_errc::storage_error},
      {answer(403, "RequestTimeTooSkewed"), sink_errc::clock_skew},
      {answer(403, "SignatureDoesNotMatch"), sink_errc::storage_refused},
      {answer(403, "InvalidAccessKeyId"), sink_errc::storage_refused},
      {answer(403, "AccessDenied"), sink_errc::storage_refused},
      {answer(403, "QuotaExceeded"), sink_errc::storage_refused},
      {answer(404, "NoSuchBucket"), sink_errc::storage_refused},
      {answer(400, "InvalidRequest"), sink_errc::storage_refused},
  };
  for (const auto& [r, want] : cases) {
    const auto f = dock::classify_answer(r, "PUT k");
    BOOST_CHECK_MESSAGE(f == want, r.status << " " << r.error_code() << " classified as " << f.code.message());
    BOOST_CHECK_MESSAGE(f.detail.find(std::to_string(r.status)) != std::string::npos && f.detail.find("PUT k") != std::string::npos, f.detail);
  }
}

BOOST_AUTO_TEST_CASE(a_skewed_dock_clock_is_caught_and_signing_follows_storage_time) {
  test::TempDir dir;
  asio::io_context ioc;
  asio::thread_pool pool(1);
  s3::Client client(ioc.get_executor(), test::rgw_endpoint(), test::rgw_credentials());
  const auto bucket = new_bucket(ioc, client, false);
  dock::S3Sink sink(client, dock::S3Location::parse("s3://" + bucket), pool);
  // The dock's clock two hours fast: storage refuses every signature as too skewed.
  client.set_clock_offset(std::chrono::hours(2));
  const auto s = segment(dir, "BC-0301", 300 * 1024);
  const auto first = store(ioc, sink, s);
  BOOST_REQUIRE(!first);
  BOOST_CHECK(first.error() == dock::sink_errc::clock_skew);
  BOOST_CHECK_MESSAGE(first.error().detail.find(" s ahead of storage") != std::string::npos, first.error().detail);
  // The clock check took storage's time: within a minute of the truth (offset 0 here).
  BOOST_CHECK_LT(std::abs(client.clock_offset().count()), 60'000);
  const auto second = store(ioc, sink, s);
  BOOST_REQUIRE_MESSAGE(second.has_value(), (second ? std::string() : second.error().message()));
  BOOST_CHECK(second->sha256 == s.m.sha256);
  pool.join();
}

BOOST_AUTO_TEST_CASE(an_orphan_multipart_upload_of_the_key_is_aborted_before_a_fresh_one) {
  test::TempDir dir;
  asio::io_context ioc;
  asio::thread_pool pool(1);
  s3::Client client(ioc.get_executor(), test::rgw_endpoint(), test::rgw_credentials());
  const auto bucket = new_bucket(ioc, client, false);
  dock::S3Sink sink(client, dock::S3Location::parse("s3://" + bucket + "/x"), pool, 5u << 20);
  const auto s = segment(dir, "BC-0302", 6u << 20);
  const auto key = "x/" + dock::segment_object_key(s.m);
  // What a crash between starting an upload and noting it leaves behind.
  const auto orphan = run(ioc, client.create_multipart(bucket, key, {}));
  BOOST_REQUIRE(orphan && orphan->ok());
  auto listed = run(ioc, client.list_multipart_uploads(bucket, key));
  BOOST_REQUIRE(listed && listed->ok());
  BOOST_REQUIRE_EQUAL(s3::multipart_uploads(listed->body).size(), 1u);
  const auto r = store(ioc, sink, s);
  BOOST_REQUIRE_MESSAGE(r.has_value(), (r ? std::string() : r.error().message()));
  listed = run(ioc, client.list_multipart_uploads(bucket, key));
  BOOST_REQUIRE(listed && listed->ok());
  BOOST_CHECK(s3::multipart_uploads(listed->body).empty());
  const auto head = run(ioc, client.head_object(bucket, key));
  BOOST_REQUIRE(head && head->ok());
  BOOST_CHECK(head->header("etag").ends_with("-2\""));
  pool.join();
}

BOOST_AUTO_TEST_CASE(a_request_that_outlives_its_deadline_and_lands_late_makes_no_second_version) {
  // What chaos seed 8 found: a stalled upload is given up on and retried; the retry stores the
  // segment; then the stalled request reaches storage. With a single PUT that was a second
  // version of the object (If-None-Match is checked when a request starts); with every segment
  // a multipart upload the late request belongs to an upload that is no longer there.
  test::TempDir dir;
  asio::io_context ioc;
  asio::thread_pool pool(1);
  const auto endpoint = test::rgw_endpoint();
  s3::Client direct(ioc.get_executor(), endpoint, test::rgw_credentials());
  const auto bucket = new_bucket(ioc, direct, true);  // Object Lock: versioned, as a site's bucket
  test::FaultProxy proxy(endpoint.host, endpoint.port);
  s3::Client slow(ioc.get_executor(), s3::Endpoint::parse(proxy.url(), endpoint.region), test::rgw_credentials(), std::chrono::milliseconds(1000));
  dock::S3Sink sink(slow, dock::S3Location::parse("s3://" + bucket), pool);
  const auto s = segment(dir, "BC-0305", 300 * 1024);
  const auto key = dock::segment_object_key(s.m);
  // Past every small request and inside the segment's body, held longer than the deadline.
  proxy.stall_at(100 * 1024, std::chrono::milliseconds(2500));
  const auto stalled = store(ioc, sink, s);
  BOOST_REQUIRE_MESSAGE(!stalled, "the stalled attempt should have timed out");
  BOOST_CHECK_EQUAL(proxy.counters().stalls, 1u);
  const auto retried = store(ioc, sink, s);
  BOOST_REQUIRE_MESSAGE(retried.has_value(), (retried ? std::string() : retried.error().message()));
  // The stalled request is released and reaches storage, which answers it.
  const auto down = proxy.counters().bytes_down;
  for (int i = 0; i < 100 && proxy.counters().bytes_down == down; ++i) std::this_thread::sleep_for(std::chrono::milliseconds(50));
  BOOST_CHECK_MESSAGE(proxy.counters().bytes_down > down, "the stalled request never reached storage");
  std::this_thread::sleep_for(std::chrono::milliseconds(500));
  std::vector<s3::QueryParam> q;
  q.push_back({"versions", ""});
  q.push_back({"prefix", key});
  const auto versions = run(ioc, direct.request("GET", bucket, {}, std::move(q), {}, {}));
  BOOST_REQUIRE(versions && versions->ok());
  BOOST_CHECK_MESSAGE(test::count_of(versions->body, "<Version>") == 1, "not exactly one version: " << versions->body);
  const auto listed = run(ioc, direct.list_multipart_uploads(bucket, key));
  BOOST_REQUIRE(listed && listed->ok());
  BOOST_CHECK(s3::multipart_uploads(listed->body).empty());
  const auto head = run(ioc, direct.head_object(bucket, key));
  BOOST_REQUIRE(head && head->ok());
  BOOST_CHECK_EQUAL(head->header("x-amz-meta-sha256"), proto::to_hex(s.m.sha256));
  pool.join();
}

BOOST_AUTO_TEST_CASE(retention_on_a_bucket_without_object_lock_is_refused_not_silently_dropped) {
  test::TempDir dir;
  asio::io_context ioc;
  asio::thread_pool pool(1);
  s3::Client client(ioc.get_executor(), test::rgw_endpoint(), test::rgw_credentials());
  const auto bucket = new_bucket(ioc, client, false);
  dock::S3Sink sink(client, dock::S3Location::parse("s3://" + bucket), pool, 16u << 20, dock::Retention::make("compliance", 30));
  const auto r = store(ioc, sink, segment(dir, "BC-0303", 100 * 1024));
  BOOST_REQUIRE(!r);
  BOOST_CHECK(r.error() == dock::sink_errc::storage_refused);
  BOOST_CHECK_MESSAGE(r.error().detail.find("has no Object Lock") != std::string::npos, r.error().detail);
  BOOST_CHECK_THROW(dock::Retention::make("forever", 30), std::invalid_argument);
  BOOST_CHECK(dock::Retention::make("GOVERNANCE", 0).mode.empty());  // 0 days: none
  pool.join();
}

BOOST_AUTO_TEST_CASE(a_spool_changed_after_its_pull_is_not_stored_and_leaves_no_parts) {
  test::TempDir dir;
  asio::io_context ioc;
  asio::thread_pool pool(1);
  s3::Client client(ioc.get_executor(), test::rgw_endpoint(), test::rgw_credentials());
  const auto bucket = new_bucket(ioc, client, false);
  dock::S3Sink sink(client, dock::S3Location::parse("s3://" + bucket), pool, 5u << 20);
  const auto s = segment(dir, "BC-0304", 11u << 20);  // three parts
  const auto key = dock::segment_object_key(s.m);
  std::string good;
  {
    std::ifstream in(s.spool, std::ios::binary);
    good.assign(std::istreambuf_iterator<char>(in), std::istreambuf_iterator<char>());
  }
  const auto sum = dock::SpoolSum::of({reinterpret_cast<const std::uint8_t*>(good.data()), good.size()});
  auto write_spool = [&](const std::string& bytes) { std::ofstream(s.spool, std::ios::binary | std::ios::trunc) << bytes; };
  auto attempt = [&](const std::string& spool_sum) {
    return run(ioc, sink.store(dock::SpoolFile(s.spool, spool_sum), s.m, dock::Custody{}),
               dock::StoreResult(dock::StoreFailure(dock::sink_errc::storage_error, "not run")));
  };
  // One bit flips on disk in the last part after the pull verified the segment. The first two
  // parts are sent before the change can show; storage checks each part against what the dock
  // read, so only the dock's own check of the spool can catch it.
  auto changed = good;
  changed[(10u << 20) + 12345] ^= 0x10;
  write_spool(changed);
  for (const std::string& with : {sum, std::string()}) {  // by the pull's sum, and by SHA-256 where there is none
    const auto r = attempt(with);
    BOOST_REQUIRE(!r);
    BOOST_CHECK_MESSAGE(r.error() == dock::sink_errc::content_mismatch, r.error().message());
    const auto head = run(ioc, client.head_object(bucket, key));
    BOOST_REQUIRE(head);
    BOOST_CHECK_EQUAL(head->status, 404u);
    const auto listed = run(ioc, client.list_multipart_uploads(bucket, key));
    BOOST_REQUIRE(listed && listed->ok());
    BOOST_CHECK(s3::multipart_uploads(listed->body).empty());
  }
  // A sum that is not the spool's refuses even good bytes: it is what decides.
  write_spool(good);
  const auto wrong = attempt(dock::SpoolSum::of({reinterpret_cast<const std::uint8_t*>(changed.data()), changed.size()}));
  BOOST_REQUIRE(!wrong);
  BOOST_CHECK(wrong.error() == dock::sink_errc::content_mismatch);
  // The segment pulled again: stored, exactly once, with the manifest's SHA-256 on its receipt.
  const auto r = attempt(sum);
  BOOST_REQUIRE_MESSAGE(r.has_value(), (r ? std::string() : r.error().message()));
  BOOST_CHECK(r->sha256 == s.m.sha256);
  const auto head = run(ioc, client.head_object(bucket, key));
  BOOST_REQUIRE(head && head->ok());
  BOOST_CHECK(head->header("etag").ends_with("-3\""));
  BOOST_CHECK_EQUAL(head->header("content-length"), std::to_string(good.size()));
  pool.join();
}

BOOST_AUTO_TEST_SUITE_END()
