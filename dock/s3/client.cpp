#include "dock/s3/client.hpp"

#include "proto/sha256.hpp"

#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/redirect_error.hpp>
#include <boost/asio/this_coro.hpp>
#include <boost/asio/use_awaitable.hpp>
#include <boost/beast/core/flat_buffer.hpp>
#include <boost/beast/core/string.hpp>
#include <boost/beast/core/tcp_stream.hpp>
#include <boost/beast/http.hpp>

#include <openssl/evp.h>

#include <algorithm>
#include <cctype>
#include <stdexcept>

namespace bodydock::s3 {

namespace asio = boost::asio;
namespace beast = boost::beast;
namespace http = beast::http;

namespace {

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

std::string xml_field(std::string_view xml, std::string_view tag) {
  const std::string open = "<" + std::string(tag) + ">";
  const std::string close = "</" + std::string(tag) + ">";
  const auto a = xml.find(open);
  if (a == std::string_view::npos) return {};
  const auto b = xml.find(close, a + open.size());
  if (b == std::string_view::npos) return {};
  return std::string(xml.substr(a + open.size(), b - a - open.size()));
}

std::string Response::error_code() const { return xml_field(body, "Code"); }

std::string Response::header(const std::string& name) const {
  auto it = headers.find(name);
  return it == headers.end() ? std::string() : it->second;
}

Endpoint Endpoint::parse(std::string_view url, std::string region) {
  Endpoint e;
  e.region = std::move(region);
  constexpr std::string_view scheme = "http://";
  if (!url.starts_with(scheme))
    throw std::invalid_argument("S3 endpoint '" + std::string(url) + "': only http:// is supported so far (TLS comes with the sink)");
  auto rest = url.substr(scheme.size());
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

Client::Client(asio::any_io_executor ex, Endpoint endpoint, Credentials credentials, std::chrono::milliseconds timeout)
    : ex_(std::move(ex)), endpoint_(std::move(endpoint)), credentials_(std::move(credentials)), timeout_(timeout) {}

asio::awaitable<Client::Result> Client::request(std::string method, std::string bucket, std::string key, std::vector<QueryParam> query,
                                                Headers headers, std::string body) {
  std::string host = endpoint_.path_style || bucket.empty() ? endpoint_.host : bucket + "." + endpoint_.host;
  if (endpoint_.port != 80) host += ":" + std::to_string(endpoint_.port);
  std::string path = "/";
  if (endpoint_.path_style && !bucket.empty()) path += uri_encode(bucket) + (key.empty() ? "" : "/");
  path += uri_encode(key, true);
  std::string target = path;
  for (std::size_t i = 0; i < query.size(); ++i)
    target += (i == 0 ? "?" : "&") + uri_encode(query[i].key) + "=" + uri_encode(query[i].value);

  headers.push_back({"Host", host});
  const bool has_md5 = std::any_of(headers.begin(), headers.end(), [](const Header& h) { return beast::iequals(h.name, "Content-MD5"); });
  if (!body.empty() && !has_md5) headers.push_back({"Content-MD5", md5_base64(body)});
  SignRequest sr{method, path, query, headers, sha256_hex(body)};
  const auto signing = sign_headers(sr, credentials_, s3_options(endpoint_.region, std::chrono::system_clock::now()));

  http::request<http::string_body> req{http::string_to_verb(method), target, 11};
  for (const auto& h : headers) req.insert(h.name, h.value);
  for (const auto& h : signing.add_headers) req.insert(h.name, h.value);
  req.body() = std::move(body);
  req.prepare_payload();

  beast::tcp_stream stream(ex_);
  asio::ip::tcp::resolver resolver(ex_);
  boost::system::error_code ec;
  auto redirect = asio::redirect_error(asio::use_awaitable, ec);
  const auto addresses = co_await resolver.async_resolve(endpoint_.host, std::to_string(endpoint_.port), redirect);
  if (ec) co_return ec;
  stream.expires_after(timeout_);
  co_await stream.async_connect(addresses, redirect);
  if (ec) co_return ec;
  stream.expires_after(timeout_);
  co_await http::async_write(stream, req, redirect);
  if (ec) co_return ec;
  beast::flat_buffer buffer;
  http::response_parser<http::string_body> parser;
  parser.body_limit(64u << 20);
  if (req.method() == http::verb::head) parser.skip(true);  // a HEAD answer has no body, whatever its Content-Length says
  stream.expires_after(timeout_);
  co_await http::async_read(stream, buffer, parser, redirect);
  if (ec) co_return ec;
  stream.socket().shutdown(asio::ip::tcp::socket::shutdown_both, ec);
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

asio::awaitable<Client::Result> Client::upload_part(std::string bucket, std::string key, std::string upload_id, unsigned number, std::string body) {
  std::vector<QueryParam> q{{"partNumber", std::to_string(number)}, {"uploadId", std::move(upload_id)}};
  co_return co_await request("PUT", std::move(bucket), std::move(key), std::move(q), {}, std::move(body));
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

}  // namespace bodydock::s3
