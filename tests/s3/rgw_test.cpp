// The S3 client against a real Ceph RGW (started by the test command, tests/rgw/rgw-up, on
// 127.0.0.1; its address and the test user's keys come in the standard AWS_* variables). The
// server enforces what the dock relies on: Signature V4, Content-MD5, x-amz-content-sha256,
// If-None-Match, multipart ETags, Object Lock.
#include "dock/s3/client.hpp"
#include "support/rgw.hpp"
#include "support/sandbox.hpp"

#include <boost/asio/io_context.hpp>
#include <boost/test/unit_test.hpp>

#include <cstdlib>
#include <random>

using namespace bodydock;
namespace asio = boost::asio;

namespace {

struct RgwFixture {
  asio::io_context ioc;
  s3::Endpoint endpoint = test::rgw_endpoint();
  s3::Credentials keys = test::rgw_credentials();
  s3::Client client{ioc.get_executor(), endpoint, keys};
  std::string bucket = "test-" + std::to_string(std::random_device{}());

  template <typename Awaitable>
  auto run(Awaitable a) {
    s3::Client::Result out = boost::system::error_code{};
    test::run_with_watchdog(ioc, [](Awaitable x, s3::Client::Result& o) -> asio::awaitable<void> { o = co_await std::move(x); }(std::move(a), out));
    return out;
  }
  s3::Response ok(s3::Client::Result r) {
    BOOST_REQUIRE_MESSAGE(r, "transport: " << r.error().message());
    BOOST_REQUIRE_MESSAGE(r->ok(), "HTTP " << r->status << " " << r->error_code() << ": " << r->body);
    return *r;
  }
};

std::string bytes(std::size_t n, unsigned seed) {
  std::string s(n, '\0');
  std::mt19937 g(seed);
  for (auto& c : s) c = static_cast<char>(g());
  return s;
}

/// An ETag without its quotes (as a header, or XML-escaped in a body).
std::string unquote(std::string e) {
  for (const std::string q : {"&quot;", "&#34;", "\""})
    for (auto at = e.find(q); at != std::string::npos; at = e.find(q)) e.erase(at, q.size());
  return e;
}

}  // namespace

BOOST_FIXTURE_TEST_SUITE(rgw, RgwFixture)

BOOST_AUTO_TEST_CASE(put_is_conditional_and_checked) {
  ok(run(client.create_bucket(bucket, false)));
  const auto body = bytes(100'000, 1);
  auto put = ok(run(client.put_new_object(bucket, "BC-0001/00000001.seg", body, {{"x-amz-meta-camera", "BC-0001"}})));
  BOOST_CHECK_EQUAL(put.header("etag"), "\"" + s3::md5_hex(body) + "\"");
  // A retry never makes a second object, nor replaces the first.
  auto again = run(client.put_new_object(bucket, "BC-0001/00000001.seg", bytes(100'000, 2), {}));
  BOOST_REQUIRE(again);
  BOOST_CHECK_EQUAL(again->status, 412u);
  auto head = ok(run(client.head_object(bucket, "BC-0001/00000001.seg")));
  BOOST_CHECK_EQUAL(head.header("x-amz-meta-camera"), "BC-0001");
  BOOST_CHECK_EQUAL(head.header("content-length"), "100000");
  BOOST_CHECK(ok(run(client.get_object(bucket, "BC-0001/00000001.seg"))).body == body);
}

BOOST_AUTO_TEST_CASE(the_server_refuses_a_wrong_secret_and_a_damaged_body) {
  ok(run(client.create_bucket(bucket, false)));
  s3::Client wrong(ioc.get_executor(), endpoint, {keys.access_key_id, keys.secret_access_key + "x", {}});
  auto r = run(wrong.put_new_object(bucket, "k", "abc", {}));
  BOOST_REQUIRE(r);
  BOOST_CHECK_EQUAL(r->status, 403u);
  BOOST_CHECK_EQUAL(r->error_code(), "SignatureDoesNotMatch");
  // A body that does not match its Content-MD5 (as if damaged on the way) is refused.
  auto bad = run(client.request("PUT", bucket, "k2", {}, {{"Content-MD5", s3::md5_base64("something else")}}, "abc"));
  BOOST_REQUIRE(bad);
  BOOST_CHECK_EQUAL(bad->status, 400u);
  auto missing = run(client.head_object(bucket, "k2"));
  BOOST_REQUIRE(missing);
  BOOST_CHECK_EQUAL(missing->status, 404u);
}

BOOST_AUTO_TEST_CASE(multipart_upload_completes_with_the_etag_the_client_computes) {
  ok(run(client.create_bucket(bucket, true)));  // object lock on
  const std::string key = "BC-0002/00000007.seg";
  auto started = ok(run(client.create_multipart(bucket, key, {{"x-amz-meta-sha256", "abc"}})));
  const auto upload_id = s3::xml_field(started.body, "UploadId");
  BOOST_REQUIRE(!upload_id.empty());
  const std::vector<std::string> parts = {bytes(5u << 20, 3), bytes(1234, 4)};
  std::vector<s3::Part> done;
  std::vector<std::string> md5s;
  for (unsigned i = 0; i < parts.size(); ++i) {
    auto p = ok(run(client.upload_part(bucket, key, upload_id, i + 1, parts[i])));
    done.push_back({i + 1, p.header("etag")});
    md5s.push_back(s3::md5_hex(parts[i]));
    BOOST_CHECK_EQUAL(p.header("etag"), "\"" + md5s.back() + "\"");
  }
  // After a restart the dock asks which parts the server holds.
  auto listed = ok(run(client.list_parts(bucket, key, upload_id)));
  BOOST_CHECK(listed.body.find("<PartNumber>2</PartNumber>") != std::string::npos);
  auto completed = ok(run(client.complete_multipart(bucket, key, upload_id, done)));
  // RGW 16 leaves the result's ETag empty on a versioned (object-lock) bucket; HEAD is the check.
  const auto result_etag = unquote(s3::xml_field(completed.body, "ETag"));
  BOOST_CHECK_MESSAGE(result_etag.empty() || result_etag == s3::multipart_etag(md5s), completed.body);
  auto head = ok(run(client.head_object(bucket, key)));
  BOOST_CHECK_EQUAL(head.header("etag"), "\"" + s3::multipart_etag(md5s) + "\"");
  BOOST_CHECK_EQUAL(head.header("content-length"), std::to_string((5u << 20) + 1234));
}

BOOST_AUTO_TEST_SUITE_END()
