// The S3 client against a real Ceph RGW (started by the test command, tests/rgw/rgw-up, on
// 127.0.0.1; its address and the test user's keys come in the standard AWS_* variables, its
// TLS endpoint and private CA in RGW_TLS_ENDPOINT_URL and RGW_CA_FILE). The server enforces
// what the dock relies on: Signature V4, Content-MD5, x-amz-content-sha256, If-None-Match,
// multipart ETags, Object Lock; over TLS the client must refuse a certificate it cannot trust.
// First the client's pure parts (endpoint URLs, listing XML), which need no server.
#include "dock/s3/client.hpp"
#include "support/rgw.hpp"
#include "support/sandbox.hpp"

#include <boost/asio/as_tuple.hpp>
#include <boost/asio/co_spawn.hpp>
#include <boost/asio/experimental/awaitable_operators.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/use_awaitable.hpp>
#include <boost/asio/write.hpp>
#include <boost/test/unit_test.hpp>

#include <array>
#include <cstdlib>
#include <memory>
#include <random>
#include <stdexcept>

using namespace bodydock;
namespace asio = boost::asio;

namespace {

/// `what()` of an exception contains `part`.
auto says(std::string part) {
  return [part](const std::exception& e) {
    BOOST_TEST_MESSAGE("  " << e.what());
    return std::string(e.what()).find(part) != std::string::npos;
  };
}

}  // namespace

BOOST_AUTO_TEST_SUITE(s3_client_offline)

BOOST_AUTO_TEST_CASE(endpoint_urls_give_scheme_host_and_default_port) {
  const auto plain = s3::Endpoint::parse("http://127.0.0.1", "default");
  BOOST_CHECK(!plain.tls);
  BOOST_CHECK_EQUAL(plain.host, "127.0.0.1");
  BOOST_CHECK_EQUAL(plain.port, 80u);
  BOOST_CHECK_EQUAL(plain.region, "default");
  const auto tls = s3::Endpoint::parse("https://s3.example.org/", "eu-central-1");
  BOOST_CHECK(tls.tls);
  BOOST_CHECK_EQUAL(tls.host, "s3.example.org");
  BOOST_CHECK_EQUAL(tls.port, 443u);
  BOOST_CHECK(tls.ca_file.empty());
  const auto tls_port = s3::Endpoint::parse("HTTPS://localhost:8443", "default");
  BOOST_CHECK(tls_port.tls);
  BOOST_CHECK_EQUAL(tls_port.host, "localhost");
  BOOST_CHECK_EQUAL(tls_port.port, 8443u);
  BOOST_CHECK_EQUAL(s3::Endpoint::parse("http://localhost:9000", "default").port, 9000u);
}

BOOST_AUTO_TEST_CASE(endpoint_urls_that_are_not_http_or_https_are_refused_by_name) {
  for (const char* url : {"ftp://s3.example.org", "s3.example.org:443", "httpx://h", "http:/h", ""})
    BOOST_CHECK_EXCEPTION(s3::Endpoint::parse(url, "default"), std::invalid_argument, says("the scheme must be http:// or https://"));
  BOOST_CHECK_EXCEPTION(s3::Endpoint::parse("https://", "default"), std::invalid_argument, says("no host"));
  BOOST_CHECK_EXCEPTION(s3::Endpoint::parse("https://h:0", "default"), std::invalid_argument, says("bad port"));
  BOOST_CHECK_EXCEPTION(s3::Endpoint::parse("https://h:65536", "default"), std::invalid_argument, says("bad port"));
  BOOST_CHECK_EXCEPTION(s3::Endpoint::parse("https://h/bucket", "default"), std::invalid_argument, says("no path allowed"));
}

BOOST_AUTO_TEST_CASE(a_ca_file_is_for_tls_only_and_must_load) {
  asio::io_context ioc;
  auto plain = s3::Endpoint::parse("http://127.0.0.1:9000", "default");
  plain.ca_file = "/nonexistent/ca.pem";
  BOOST_CHECK_EXCEPTION(s3::Client(ioc.get_executor(), plain, {}), std::invalid_argument, says("plain http://"));
  auto tls = s3::Endpoint::parse("https://127.0.0.1:9443", "default");
  tls.ca_file = "/nonexistent/ca.pem";
  BOOST_CHECK_EXCEPTION(s3::Client(ioc.get_executor(), tls, {}), std::invalid_argument, says("cannot load the CA file '/nonexistent/ca.pem'"));
  tls.ca_file.clear();  // the system's trust store
  BOOST_CHECK_NO_THROW(s3::Client(ioc.get_executor(), tls, {}));
}

BOOST_AUTO_TEST_CASE(multipart_uploads_lists_every_upload_with_its_key_decoded) {
  const std::string xml =
      R"(<?xml version="1.0" encoding="UTF-8"?><ListMultipartUploadsResult xmlns="http://s3.amazonaws.com/doc/2006-03-01/">)"
      "<Bucket>b</Bucket><KeyMarker></KeyMarker><UploadIdMarker></UploadIdMarker><NextKeyMarker>x</NextKeyMarker>"
      "<Prefix>BC-0003/</Prefix><MaxUploads>1000</MaxUploads><IsTruncated>false</IsTruncated>"
      "<Upload><Key>BC-0003/a&amp;b.seg</Key><UploadId>2~abc</UploadId><Initiator><ID>u</ID></Initiator></Upload>"
      "<Upload><Key>BC-0003/&#34;q&#x22; &lt;x&gt;</Key><UploadId>2~def</UploadId></Upload>"
      "</ListMultipartUploadsResult>";
  const auto uploads = s3::multipart_uploads(xml);
  BOOST_REQUIRE_EQUAL(uploads.size(), 2u);
  BOOST_CHECK_EQUAL(uploads[0].key, "BC-0003/a&b.seg");
  BOOST_CHECK_EQUAL(uploads[0].upload_id, "2~abc");
  BOOST_CHECK_EQUAL(uploads[1].key, "BC-0003/\"q\" <x>");
  BOOST_CHECK_EQUAL(uploads[1].upload_id, "2~def");
  BOOST_CHECK(s3::multipart_uploads("<ListMultipartUploadsResult><IsTruncated>false</IsTruncated></ListMultipartUploadsResult>").empty());
  BOOST_CHECK(s3::multipart_uploads("<Upload><Key>cut off").empty());
}

BOOST_AUTO_TEST_SUITE_END()

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
  /// The request failed before any HTTP answer because the server's certificate was not trusted.
  void untrusted(const s3::Client::Result& r, const std::string& why) {
    if (r) BOOST_FAIL("expected a transport error, got HTTP " << r->status << " " << r->error_code());
    const auto message = r.error().message();
    BOOST_TEST_MESSAGE("  " << message);
    BOOST_CHECK(r.error().category() == s3::certificate_category());
    BOOST_CHECK_MESSAGE(message.find("certificate was not trusted") != std::string::npos, message);
    BOOST_CHECK_MESSAGE(message.find("certificate verification failed") != std::string::npos, message);
    BOOST_CHECK_MESSAGE(message.find(why) != std::string::npos, message << " (expected: " << why << ")");
  }
  std::vector<s3::MultipartUpload> uploads(const std::string& prefix) {
    return s3::multipart_uploads(ok(run(client.list_multipart_uploads(bucket, prefix))).body);
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

/// A TCP relay on 127.0.0.1 to a local port that keeps every byte clients send through it:
/// what an eavesdropper on the wire sees. Runs on the test's io_context (so while the fixture's
/// run() runs); its state is shared with its coroutines, so it may go before they end.
class WireTap {
 public:
  WireTap(asio::io_context& ioc, std::uint16_t target) : state_(std::make_shared<State>(ioc, target)) {
    asio::co_spawn(ioc, accept_loop(state_), [](std::exception_ptr e) { BOOST_CHECK_MESSAGE(!e, "wire tap: accept loop threw"); });
  }
  ~WireTap() {
    boost::system::error_code ignored;
    state_->acceptor.close(ignored);
  }
  WireTap(const WireTap&) = delete;
  WireTap& operator=(const WireTap&) = delete;
  [[nodiscard]] std::uint16_t port() const { return state_->acceptor.local_endpoint().port(); }
  /// Everything clients sent so far, all connections concatenated.
  [[nodiscard]] const std::string& sent() const { return state_->sent; }
  [[nodiscard]] unsigned connections() const { return state_->connections; }

 private:
  using tcp = asio::ip::tcp;
  struct State {
    State(asio::io_context& ioc, std::uint16_t port) : acceptor(ioc, {asio::ip::make_address("127.0.0.1"), 0}), target(asio::ip::make_address("127.0.0.1"), port) {}
    tcp::acceptor acceptor;
    tcp::endpoint target;
    std::string sent;
    unsigned connections = 0;
  };

  static asio::awaitable<void> pump(tcp::socket& from, tcp::socket& to, std::string* record) {
    std::array<char, 16384> buf{};
    for (;;) {
      auto [ec, n] = co_await from.async_read_some(asio::buffer(buf), asio::as_tuple(asio::use_awaitable));
      if (record != nullptr) record->append(buf.data(), n);
      if (ec) break;
      auto [wec, written] = co_await asio::async_write(to, asio::buffer(buf.data(), n), asio::as_tuple(asio::use_awaitable));
      if (wec || written != n) break;
    }
    boost::system::error_code ignored;
    to.shutdown(tcp::socket::shutdown_send, ignored);
  }
  static asio::awaitable<void> relay(std::shared_ptr<State> st, tcp::socket client) {
    tcp::socket server(client.get_executor());
    auto [ec] = co_await server.async_connect(st->target, asio::as_tuple(asio::use_awaitable));
    if (ec) co_return;
    using namespace asio::experimental::awaitable_operators;
    co_await (pump(client, server, &st->sent) && pump(server, client, nullptr));
  }
  static asio::awaitable<void> accept_loop(std::shared_ptr<State> st) {
    for (;;) {
      auto [ec, socket] = co_await st->acceptor.async_accept(asio::as_tuple(asio::use_awaitable));
      if (ec) co_return;
      ++st->connections;
      asio::co_spawn(st->acceptor.get_executor(), relay(st, std::move(socket)), [](std::exception_ptr e) { BOOST_CHECK_MESSAGE(!e, "wire tap: relay threw"); });
    }
  }

  std::shared_ptr<State> state_;
};

/// The clear text of a request that must never be on the wire outside TLS.
void nothing_in_clear(const std::string& wire, const std::vector<std::string>& secrets) {
  BOOST_REQUIRE_MESSAGE(!wire.empty(), "nothing went through the wire tap");
  BOOST_CHECK_MESSAGE(wire[0] == '\x16', "the first byte is not a TLS handshake record");
  for (const std::string& s : std::vector<std::string>{"HTTP/1.1", "Authorization", "x-amz-", "AWS4-HMAC-SHA256"})
    BOOST_CHECK_MESSAGE(wire.find(s) == std::string::npos, "'" << s << "' went over the wire in clear");
  for (const auto& s : secrets) BOOST_CHECK_MESSAGE(wire.find(s) == std::string::npos, "'" << s << "' went over the wire in clear");
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

BOOST_AUTO_TEST_CASE(https_round_trip_trusting_the_private_ca) {
  const auto endpoint_tls = test::rgw_tls_endpoint();
  BOOST_REQUIRE(endpoint_tls.tls);
  s3::Client tls(ioc.get_executor(), endpoint_tls, keys);
  ok(run(tls.create_bucket(bucket, false)));
  const auto body = bytes(3u << 20, 5);  // several TLS records, several reads
  ok(run(tls.put_new_object(bucket, "BC-0005/00000001.seg", body, {{"x-amz-meta-camera", "BC-0005"}})));
  auto head = ok(run(tls.head_object(bucket, "BC-0005/00000001.seg")));
  BOOST_CHECK_EQUAL(head.header("x-amz-meta-camera"), "BC-0005");
  BOOST_CHECK(ok(run(tls.get_object(bucket, "BC-0005/00000001.seg"))).body == body);
  // The same object over plain HTTP: one server, one store.
  BOOST_CHECK(ok(run(client.get_object(bucket, "BC-0005/00000001.seg"))).body == body);
}

BOOST_AUTO_TEST_CASE(https_without_the_private_ca_is_refused_and_sends_nothing_in_clear) {
  ok(run(client.create_bucket(bucket, false)));
  const auto real = test::rgw_tls_endpoint();
  WireTap tap(ioc, real.port);
  auto tapped = real;
  tapped.port = tap.port();
  const std::string key = "BC-0006/secret-key-name.seg", body = "footage-marker-" + bucket;

  // Trusting the system's store only: the throw-away CA is not in it.
  auto system_trust = tapped;
  system_trust.ca_file.clear();
  s3::Client stranger(ioc.get_executor(), system_trust, keys);
  untrusted(run(stranger.put_new_object(bucket, key, body, {})), "unable to get local issuer certificate");
  BOOST_CHECK_EQUAL(tap.connections(), 1u);
  nothing_in_clear(tap.sent(), {key, body, bucket, keys.access_key_id});
  auto missing = run(client.head_object(bucket, key));
  BOOST_REQUIRE(missing);
  BOOST_CHECK_EQUAL(missing->status, 404u);

  // The same request through the same tap with the CA: it arrives, and still nothing in clear.
  s3::Client trusting(ioc.get_executor(), tapped, keys);
  ok(run(trusting.put_new_object(bucket, key, body, {})));
  BOOST_CHECK_EQUAL(tap.connections(), 2u);
  nothing_in_clear(tap.sent(), {key, body, bucket, keys.access_key_id});
  BOOST_CHECK(ok(run(client.get_object(bucket, key))).body == body);
}

BOOST_AUTO_TEST_CASE(a_name_the_certificate_does_not_carry_is_refused) {
  // Virtual-host style, a bucket with a dot: the client must find "dotted.BUCKET.localhost"
  // in the certificate (localhost, *.localhost, bodydock-vhost.localhost, 127.0.0.1): it is not.
  const std::string dotted = "dotted." + bucket;
  ok(run(client.create_bucket(dotted, false)));
  s3::Client vhost(ioc.get_executor(), test::rgw_virtual_host_endpoint(true), keys);
  untrusted(run(vhost.put_new_object(dotted, "k", "abc", {})), "hostname mismatch");
  // Neither matches BUCKET.localhost through *.localhost: OpenSSL allows a wildcard only with
  // two or more labels after it, as browsers do.
  ok(run(client.create_bucket(bucket, false)));
  untrusted(run(vhost.put_new_object(bucket, "k", "abc", {})), "hostname mismatch");
  auto missing = run(client.head_object(bucket, "k"));
  BOOST_REQUIRE(missing);
  BOOST_CHECK_EQUAL(missing->status, 404u);
}

BOOST_AUTO_TEST_CASE(an_ip_address_endpoint_is_checked_against_the_certificate_ip) {
  auto by_ip = test::rgw_tls_endpoint();
  by_ip.host = "127.0.0.1";  // the certificate carries IP:127.0.0.1
  s3::Client tls(ioc.get_executor(), by_ip, keys);
  ok(run(tls.create_bucket(bucket, false)));
  ok(run(tls.put_new_object(bucket, "k", "abc", {})));
  BOOST_CHECK_EQUAL(ok(run(tls.get_object(bucket, "k"))).body, "abc");
}

BOOST_AUTO_TEST_CASE(virtual_host_style_round_trip_over_http) {
  const auto endpoint_vhost = test::rgw_virtual_host_endpoint(false);
  s3::Client vhost(ioc.get_executor(), endpoint_vhost, keys);
  ok(run(vhost.create_bucket(bucket, false)));
  const auto body = bytes(200'000, 6);
  ok(run(vhost.put_new_object(bucket, "BC-0007/00000001.seg", body, {})));
  BOOST_CHECK(ok(run(vhost.get_object(bucket, "BC-0007/00000001.seg"))).body == body);
  // Path style finds the same object in the same bucket: the Host header named the bucket.
  BOOST_CHECK(ok(run(client.get_object(bucket, "BC-0007/00000001.seg"))).body == body);
  auto started = ok(run(vhost.create_multipart(bucket, "BC-0007/00000002.seg", {})));
  const auto upload_id = s3::xml_field(started.body, "UploadId");
  ok(run(vhost.abort_multipart(bucket, "BC-0007/00000002.seg", upload_id)));
}

BOOST_AUTO_TEST_CASE(virtual_host_style_round_trip_over_https) {
  // The one bucket name the certificate carries (bodydock-vhost.localhost); it may exist from
  // an earlier run against the same RGW (creating one's own bucket again is 200), so the key
  // is new each time.
  const std::string named = test::kRgwTlsVirtualHostBucket;
  const std::string key = "BC-0008/" + bucket + ".seg";
  s3::Client vhost(ioc.get_executor(), test::rgw_virtual_host_endpoint(true), keys);
  ok(run(vhost.create_bucket(named, false)));
  const auto body = bytes(1u << 20, 7);
  ok(run(vhost.put_new_object(named, key, body, {})));
  BOOST_CHECK(ok(run(vhost.get_object(named, key))).body == body);
  BOOST_CHECK(ok(run(client.get_object(named, key))).body == body);
}

BOOST_AUTO_TEST_CASE(list_multipart_uploads_shows_an_upload_until_it_is_aborted) {
  ok(run(client.create_bucket(bucket, false)));
  const std::string prefix = "BC-0009/";
  const std::string k1 = prefix + "00000001.seg", k2 = prefix + "a&b.seg", other = "BC-0010/00000001.seg";
  BOOST_CHECK(uploads(prefix).empty());
  const auto id1 = s3::xml_field(ok(run(client.create_multipart(bucket, k1, {}))).body, "UploadId");
  const auto id2 = s3::xml_field(ok(run(client.create_multipart(bucket, k2, {}))).body, "UploadId");
  const auto id3 = s3::xml_field(ok(run(client.create_multipart(bucket, other, {}))).body, "UploadId");
  BOOST_REQUIRE(!id1.empty() && !id2.empty() && !id3.empty());

  auto listed = uploads(prefix);
  BOOST_REQUIRE_EQUAL(listed.size(), 2u);  // not the one under BC-0010/
  BOOST_CHECK_EQUAL(listed[0].key, k1);
  BOOST_CHECK_EQUAL(listed[0].upload_id, id1);
  BOOST_CHECK_EQUAL(listed[1].key, k2);  // "&" came as "&amp;"
  BOOST_CHECK_EQUAL(listed[1].upload_id, id2);
  BOOST_CHECK_EQUAL(uploads("").size(), 3u);

  ok(run(client.abort_multipart(bucket, k1, id1)));
  listed = uploads(prefix);
  BOOST_REQUIRE_EQUAL(listed.size(), 1u);
  BOOST_CHECK_EQUAL(listed[0].key, k2);
  // A completed upload is gone from the list too.
  auto part = ok(run(client.upload_part(bucket, k2, id2, 1, "last part")));
  std::vector<s3::Part> parts;
  parts.push_back({1, part.header("etag")});
  ok(run(client.complete_multipart(bucket, k2, id2, parts)));
  BOOST_CHECK(uploads(prefix).empty());
  ok(run(client.abort_multipart(bucket, other, id3)));
  BOOST_CHECK(uploads("").empty());
}

BOOST_AUTO_TEST_SUITE_END()
