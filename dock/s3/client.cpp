#include "dock/s3/client.hpp"

#include "proto/sha256.hpp"

#include <boost/asio/ip/address.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/redirect_error.hpp>
#include <boost/asio/ssl/context.hpp>
#include <boost/asio/ssl/error.hpp>
#include <boost/asio/this_coro.hpp>
#include <boost/asio/use_awaitable.hpp>
#include <boost/beast/core/flat_buffer.hpp>
#include <boost/beast/core/string.hpp>
#include <boost/beast/core/tcp_stream.hpp>
#include <boost/beast/http.hpp>
#include <boost/beast/http/span_body.hpp>
#include <boost/beast/ssl/ssl_stream.hpp>

#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/ssl.h>
#include <openssl/x509_vfy.h>
#include <openssl/x509v3.h>

#include <algorithm>
#include <ctime>
#include <cctype>
#include <stdexcept>

namespace bodydock::s3 {

namespace asio = boost::asio;
namespace beast = boost::beast;
namespace http = beast::http;
namespace ssl = asio::ssl;

namespace {

// The request body is borrowed from the caller (a part buffer the sink reuses): a 16 MiB part is
// neither copied nor allocated afresh for every request.
using HttpRequest = http::request<http::span_body<const char>>;

// boost::system::error_category has a protected non-virtual destructor by design (its
// categories are never deleted through a base pointer), which -Wnon-virtual-dtor flags.
#pragma GCC diagnostic push
#pragma GCC diagnostic ignored "-Wnon-virtual-dtor"
class CertificateCategory final : public boost::system::error_category {
 public:
  const char* name() const noexcept override { return "bodydock.s3.certificate"; }
  std::string message(int ev) const override {
    return std::string("TLS: the server's certificate was not trusted (certificate verification failed: ") +
           X509_verify_cert_error_string(ev) + ")";
  }
};
#pragma GCC diagnostic pop

std::string md5_raw(std::string_view bytes) {
  unsigned char d[EVP_MAX_MD_SIZE];
  unsigned int n = 0;
  if (EVP_Digest(bytes.data(), bytes.size(), d, &n, EVP_md5(), nullptr) != 1) throw std::runtime_error("MD5 failed");
  return {reinterpret_cast<const char*>(d), n};
}

std::string hex(std::string_view raw) {
  return proto::to_hex(proto::ByteView(reinterpret_cast<const std::uint8_t*>(raw.data()), raw.size()));
}

std::string sha256_hex(std::string_view bytes) {
  return proto::to_hex(proto::Sha256::of(proto::ByteView(reinterpret_cast<const std::uint8_t*>(bytes.data()), bytes.size())));
}

}  // namespace

std::string md5_hex(std::string_view bytes) { return hex(md5_raw(bytes)); }

std::string md5_base64_of_hex(std::string_view hex) {
  std::string raw;
  for (std::size_t i = 0; i + 1 < hex.size(); i += 2) raw.push_back(static_cast<char>(std::stoi(std::string(hex.substr(i, 2)), nullptr, 16)));
  unsigned char out[32] = {};
  const int n = EVP_EncodeBlock(out, reinterpret_cast<const unsigned char*>(raw.data()), static_cast<int>(raw.size()));
  return {reinterpret_cast<const char*>(out), static_cast<std::size_t>(n)};
}

std::string md5_base64(std::string_view bytes) {
  const auto raw = md5_raw(bytes);
  unsigned char out[32] = {};
  const int n = EVP_EncodeBlock(out, reinterpret_cast<const unsigned char*>(raw.data()), static_cast<int>(raw.size()));
  return {reinterpret_cast<const char*>(out), static_cast<std::size_t>(n)};
}

std::string multipart_etag(const std::vector<std::string>& part_md5_hex) {
  std::string joined;
  for (const auto& h : part_md5_hex) {
    for (std::size_t i = 0; i + 1 < h.size(); i += 2) joined.push_back(static_cast<char>(std::stoi(h.substr(i, 2), nullptr, 16)));
  }
  return md5_hex(joined) + "-" + std::to_string(part_md5_hex.size());
}

const boost::system::error_category& certificate_category() noexcept {
  static const CertificateCategory category;
  return category;
}

std::string Response::error_code() const { return xml_field(body, "Code"); }

std::string Response::header(const std::string& name) const {
  auto it = headers.find(name);
  return it == headers.end() ? std::string() : it->second;
}

Endpoint Endpoint::parse(std::string_view url, std::string region) {
  Endpoint e;
  e.region = std::move(region);
  const auto has_scheme = [url](std::string_view scheme) { return url.size() >= scheme.size() && beast::iequals(url.substr(0, scheme.size()), scheme); };
  std::string_view rest;
  if (has_scheme("https://")) {
    e.tls = true;
    e.port = 443;
    rest = url.substr(8);
  } else if (has_scheme("http://")) {
    e.port = 80;
    rest = url.substr(7);
  } else {
    throw std::invalid_argument("S3 endpoint '" + std::string(url) + "': the scheme must be http:// or https://");
  }
  if (const auto slash = rest.find('/'); slash != std::string_view::npos) {
    if (rest.substr(slash) != "/") throw std::invalid_argument("S3 endpoint '" + std::string(url) + "': no path allowed");
    rest = rest.substr(0, slash);
  }
  const auto colon = rest.rfind(':');
  if (colon != std::string_view::npos) {
    const auto port = rest.substr(colon + 1);
    unsigned long p = 0;
    if (port.empty() || port.size() > 5 || !std::all_of(port.begin(), port.end(), [](char c) { return std::isdigit(static_cast<unsigned char>(c)); }) ||
        (p = std::stoul(std::string(port))) == 0 || p > 65535)
      throw std::invalid_argument("S3 endpoint '" + std::string(url) + "': bad port");
    e.port = static_cast<std::uint16_t>(p);
    rest = rest.substr(0, colon);
  }
  if (rest.empty()) throw std::invalid_argument("S3 endpoint '" + std::string(url) + "': no host");
  e.host = std::string(rest);
  return e;
}

namespace {

std::uint16_t default_port(bool tls) { return tls ? 443 : 80; }

/// How long a TLS close waits for the server's close_notify. The response is complete by then,
/// so this only keeps an unresponsive server from holding up the next request.
constexpr std::chrono::milliseconds kCloseNotifyWait{2000};

/// OpenSSL's last error as an error_code; never success, even if OpenSSL queued no reason.
boost::system::error_code last_ssl_error() {
  const auto e = ::ERR_get_error();
  if (e == 0) return asio::error::invalid_argument;
  return {static_cast<int>(e), asio::error::get_ssl_category()};
}

std::shared_ptr<ssl::context> make_tls_context(const Endpoint& e) {
  auto ctx = std::make_shared<ssl::context>(ssl::context::tls_client);
  if (SSL_CTX_set_min_proto_version(ctx->native_handle(), TLS1_2_VERSION) != 1)
    throw std::runtime_error("OpenSSL refuses to set TLS 1.2 as the minimum version");
  ctx->set_verify_mode(ssl::verify_peer);
  boost::system::error_code ec;
  if (e.ca_file.empty()) {
    ctx->set_default_verify_paths(ec);
    if (ec) throw std::invalid_argument("S3 endpoint " + e.host + ": cannot load the system's CA certificates: " + ec.message());
  } else {
    ctx->load_verify_file(e.ca_file, ec);
    if (ec) throw std::invalid_argument("S3 endpoint " + e.host + ": cannot load the CA file '" + e.ca_file + "': " + ec.message());
  }
  return ctx;
}

/// Sets the name the server's certificate must carry: the name the client asked for, which in
/// virtual-host style is bucket.host. OpenSSL checks it during the handshake (RFC 6125 rules,
/// so a wildcard covers one whole label and only with two or more labels after it). A host
/// name is also sent as SNI; an IP literal is matched against the certificate's IP addresses
/// and never sent as SNI (RFC 6066).
boost::system::error_code expect_name(SSL* ssl, const std::string& name) {
  X509_VERIFY_PARAM* param = SSL_get0_param(ssl);
  X509_VERIFY_PARAM_set_hostflags(param, X509_CHECK_FLAG_NO_PARTIAL_WILDCARDS);
  boost::system::error_code not_ip;
  (void)asio::ip::make_address(name, not_ip);
  if (!not_ip) return X509_VERIFY_PARAM_set1_ip_asc(param, name.c_str()) == 1 ? boost::system::error_code() : last_ssl_error();
  if (SSL_set_tlsext_host_name(ssl, name.c_str()) != 1) return last_ssl_error();
  if (SSL_set1_host(ssl, name.c_str()) != 1) return last_ssl_error();
  return {};
}

/// A failed handshake: "certificate not trusted, because ..." when verification failed,
/// otherwise the handshake's own error.
boost::system::error_code handshake_error(SSL* ssl, boost::system::error_code ec) {
  const long verdict = SSL_get_verify_result(ssl);
  if (verdict != X509_V_OK) return {static_cast<int>(verdict), certificate_category()};
  if (ec.category() == asio::error::get_ssl_category() &&
      ERR_GET_REASON(static_cast<unsigned long>(ec.value())) == SSL_R_CERTIFICATE_VERIFY_FAILED)
    return {X509_V_ERR_UNSPECIFIED, certificate_category()};
  return ec;
}

/// Resolves the endpoint's host (never bucket.host: that name need not be in DNS, e.g. on
/// loopback) and connects.
asio::awaitable<boost::system::error_code> connect(beast::tcp_stream& stream, const Endpoint& e, std::chrono::milliseconds timeout) {
  asio::ip::tcp::resolver resolver(stream.get_executor());
  boost::system::error_code ec;
  auto redirect = asio::redirect_error(asio::use_awaitable, ec);
  const auto addresses = co_await resolver.async_resolve(e.host, std::to_string(e.port), redirect);
  if (ec) co_return ec;
  stream.expires_after(timeout);
  co_await stream.async_connect(addresses, redirect);
  co_return ec;
}

constexpr std::size_t kWriteSlice = std::size_t{128} * 1024;

/// One request and its response on a connected stream (plain or TLS).
template <typename Stream>
asio::awaitable<Client::Result> exchange(Stream& stream, HttpRequest& req, std::chrono::milliseconds timeout, RateLimiter* limiter) {
  boost::system::error_code ec;
  auto redirect = asio::redirect_error(asio::use_awaitable, ec);
  // The request goes out in slices: each must make progress within the timeout (a stalled
  // link is caught however large the body), and each is paid for under the bandwidth cap.
  http::request_serializer<http::span_body<const char>> sr(req);
  sr.limit(kWriteSlice);
  while (!sr.is_done()) {
    if (limiter) co_await limiter->acquire(kWriteSlice);
    beast::get_lowest_layer(stream).expires_after(timeout);
    co_await http::async_write_some(stream, sr, redirect);
    if (ec) co_return ec;
  }
  beast::flat_buffer buffer;
  http::response_parser<http::string_body> parser;
  parser.body_limit(64u << 20);
  if (req.method() == http::verb::head) parser.skip(true);  // a HEAD answer has no body, whatever its Content-Length says
  beast::get_lowest_layer(stream).expires_after(timeout);
  co_await http::async_read(stream, buffer, parser, redirect);
  if (ec) co_return ec;
  auto res = parser.release();
  Response out;
  out.status = res.result_int();
  for (const auto& f : res) {
    std::string name(f.name_string());
    std::transform(name.begin(), name.end(), name.begin(), [](unsigned char c) { return static_cast<char>(std::tolower(c)); });
    out.headers[name] = std::string(f.value());
  }
  out.body = std::move(res.body());
  co_return out;
}

asio::awaitable<Client::Result> over_tcp(asio::any_io_executor ex, const Endpoint& e, HttpRequest& req, std::chrono::milliseconds timeout,
                                         RateLimiter* limiter) {
  beast::tcp_stream stream(ex);
  const auto ec = co_await connect(stream, e, timeout);
  if (ec) co_return ec;
  auto result = co_await exchange(stream, req, timeout, limiter);
  if (result) {
    boost::system::error_code ignored;
    stream.socket().shutdown(asio::ip::tcp::socket::shutdown_both, ignored);
  }
  co_return std::move(result);
}

/// `name`: the host name the certificate must carry (see expect_name).
asio::awaitable<Client::Result> over_tls(asio::any_io_executor ex, ssl::context& ctx, const Endpoint& e, const std::string& name,
                                         HttpRequest& req, std::chrono::milliseconds timeout, RateLimiter* limiter) {
  beast::ssl_stream<beast::tcp_stream> stream(ex, ctx);
  auto ec = expect_name(stream.native_handle(), name);
  if (ec) co_return ec;
  ec = co_await connect(beast::get_lowest_layer(stream), e, timeout);
  if (ec) co_return ec;
  auto redirect = asio::redirect_error(asio::use_awaitable, ec);
  beast::get_lowest_layer(stream).expires_after(timeout);
  co_await stream.async_handshake(ssl::stream_base::client, redirect);
  // Nothing of the request has been written yet: an untrusted server gets no byte of it.
  if (ec) co_return handshake_error(stream.native_handle(), ec);
  auto result = co_await exchange(stream, req, timeout, limiter);
  if (!result) co_return std::move(result);
  // Say goodbye with close_notify. The response was complete (its length known from its
  // framing), so whatever the shutdown reports is no failure: RGW 16 answers close_notify by
  // closing the connection without its own (stream_truncated, every time), others time out.
  // Skipped when cancelled: a new operation would throw.
  const auto cancellation = co_await asio::this_coro::cancellation_state;
  if (cancellation.cancelled() == asio::cancellation_type::none) {
    beast::get_lowest_layer(stream).expires_after(std::min(timeout, kCloseNotifyWait));
    co_await stream.async_shutdown(redirect);
  }
  co_return std::move(result);
}

}  // namespace

Client::Client(asio::any_io_executor ex, Endpoint endpoint, Credentials credentials, std::chrono::milliseconds timeout)
    : ex_(std::move(ex)), endpoint_(std::move(endpoint)), credentials_(std::move(credentials)), timeout_(timeout) {
  if (endpoint_.tls) {
    tls_ = make_tls_context(endpoint_);
  } else if (!endpoint_.ca_file.empty()) {
    throw std::invalid_argument("S3 endpoint " + endpoint_.host + ": a CA file ('" + endpoint_.ca_file +
                                "') is set, but the endpoint is plain http://; use https://");
  }
}

asio::awaitable<Client::Result> Client::request(std::string method, std::string bucket, std::string key, std::vector<QueryParam> query,
                                                Headers headers, std::string body) {
  co_return co_await send(std::move(method), std::move(bucket), std::move(key), std::move(query), std::move(headers), body);
}

asio::awaitable<Client::Result> Client::send(std::string method, std::string bucket, std::string key, std::vector<QueryParam> query,
                                             Headers headers, std::string_view body) {
  // The name the request is addressed to: the Host header, and over TLS the SNI and the name
  // the certificate must carry. The connection itself always goes to endpoint_.host.
  const std::string authority = endpoint_.path_style || bucket.empty() ? endpoint_.host : bucket + "." + endpoint_.host;
  std::string host = authority;
  if (endpoint_.port != default_port(endpoint_.tls)) host += ":" + std::to_string(endpoint_.port);
  std::string path = "/";
  if (endpoint_.path_style && !bucket.empty()) path += uri_encode(bucket) + (key.empty() ? "" : "/");
  path += uri_encode(key, true);
  std::string target = path;
  for (std::size_t i = 0; i < query.size(); ++i)
    target += (i == 0 ? "?" : "&") + uri_encode(query[i].key) + "=" + uri_encode(query[i].value);

  headers.push_back({"Host", host});
  // Digests the caller computed already (over these very bytes) are not computed again.
  const bool has_md5 = std::any_of(headers.begin(), headers.end(), [](const Header& h) { return beast::iequals(h.name, "Content-MD5"); });
  if (!body.empty() && !has_md5) headers.push_back({"Content-MD5", md5_base64(body)});
  std::string payload_hash;
  const auto given = std::find_if(headers.begin(), headers.end(), [](const Header& h) { return beast::iequals(h.name, "x-amz-content-sha256"); });
  if (given != headers.end()) {
    payload_hash = given->value;  // signing adds the header itself
    headers.erase(given);
  } else {
    payload_hash = sha256_hex(body);
  }
  SignRequest sr{method, path, query, headers, payload_hash};
  const auto signing = sign_headers(sr, credentials_, s3_options(endpoint_.region, std::chrono::system_clock::now() + clock_offset_));

  HttpRequest req{http::string_to_verb(method), target, 11};
  for (const auto& h : headers) req.insert(h.name, h.value);
  for (const auto& h : signing.add_headers) req.insert(h.name, h.value);
  req.body() = http::span_body<const char>::value_type(body.data(), body.size());
  req.prepare_payload();

  if (tls_) co_return co_await over_tls(ex_, *tls_, endpoint_, authority, req, timeout_, limiter_.get());
  co_return co_await over_tcp(ex_, endpoint_, req, timeout_, limiter_.get());
}

asio::awaitable<Client::Result> Client::create_bucket(std::string bucket, bool object_lock) {
  Headers h;
  if (object_lock) h.push_back({"x-amz-bucket-object-lock-enabled", "true"});
  co_return co_await request("PUT", std::move(bucket), {}, {}, std::move(h), {});
}

asio::awaitable<Client::Result> Client::put_new_object(std::string bucket, std::string key, std::string body, Headers headers) {
  headers.push_back({"If-None-Match", "*"});
  co_return co_await request("PUT", std::move(bucket), std::move(key), {}, std::move(headers), std::move(body));
}

asio::awaitable<Client::Result> Client::head_object(std::string bucket, std::string key) {
  co_return co_await request("HEAD", std::move(bucket), std::move(key), {}, {}, {});
}

asio::awaitable<Client::Result> Client::get_object(std::string bucket, std::string key) {
  co_return co_await request("GET", std::move(bucket), std::move(key), {}, {}, {});
}

asio::awaitable<Client::Result> Client::create_multipart(std::string bucket, std::string key, Headers headers) {
  std::vector<QueryParam> q{{"uploads", ""}};
  co_return co_await request("POST", std::move(bucket), std::move(key), std::move(q), std::move(headers), {});
}

asio::awaitable<Client::Result> Client::upload_part(std::string bucket, std::string key, std::string upload_id, unsigned number,
                                                    std::string_view body, Headers headers) {
  std::vector<QueryParam> q{{"partNumber", std::to_string(number)}, {"uploadId", std::move(upload_id)}};
  co_return co_await send("PUT", std::move(bucket), std::move(key), std::move(q), std::move(headers), body);
}

asio::awaitable<Client::Result> Client::complete_multipart(std::string bucket, std::string key, std::string upload_id, std::vector<Part> parts) {
  std::string xml = "<CompleteMultipartUpload>";
  for (const auto& p : parts) xml += "<Part><PartNumber>" + std::to_string(p.number) + "</PartNumber><ETag>" + p.etag + "</ETag></Part>";
  xml += "</CompleteMultipartUpload>";
  std::vector<QueryParam> q{{"uploadId", std::move(upload_id)}};
  co_return co_await request("POST", std::move(bucket), std::move(key), std::move(q), {}, std::move(xml));
}

asio::awaitable<Client::Result> Client::abort_multipart(std::string bucket, std::string key, std::string upload_id) {
  std::vector<QueryParam> q{{"uploadId", std::move(upload_id)}};
  co_return co_await request("DELETE", std::move(bucket), std::move(key), std::move(q), {}, {});
}

asio::awaitable<Client::Result> Client::list_parts(std::string bucket, std::string key, std::string upload_id) {
  std::vector<QueryParam> q{{"uploadId", std::move(upload_id)}};
  co_return co_await request("GET", std::move(bucket), std::move(key), std::move(q), {}, {});
}

asio::awaitable<Client::Result> Client::list_multipart_uploads(std::string bucket, std::string prefix) {
  std::vector<QueryParam> q{{"uploads", ""}};
  if (!prefix.empty()) q.push_back({"prefix", std::move(prefix)});
  co_return co_await request("GET", std::move(bucket), {}, std::move(q), {}, {});
}

}  // namespace bodydock::s3
