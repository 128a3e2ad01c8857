#pragma once
/// A small S3 client in the Asio loop (Boost.Beast, HTTP/1.1), enough for the dock's sink:
/// bucket creation, conditional PUT, HEAD, and multipart upload. Every request is signed with
/// Signature V4 (sigv4.hpp), carries x-amz-content-sha256 of its body, and every body-carrying
/// request a Content-MD5, so the server refuses a body damaged on the way. Path-style or
/// virtual-host style addressing, over plain HTTP or TLS (https://, OpenSSL).
///
/// TLS: 1.2 or newer, and the server's certificate is always verified: its chain against the
/// system's trust store or, when Endpoint::ca_file is set, against that file alone; and its
/// name against the host actually contacted (bucket.host in virtual-host style; an IP-literal
/// host against the certificate's IP addresses). There is no switch to turn this off.
///
/// Errors: a transport failure is the result's error (connect, reset, timeout, TLS handshake;
/// an untrusted certificate is an error of certificate_category()); any HTTP answer, success
/// or not, is a Response, so callers classify S3 errors by status and code.

#include "dock/s3/answers.hpp"
#include "dock/s3/rate_limit.hpp"
#include "dock/s3/sigv4.hpp"

#include <boost/asio/any_io_executor.hpp>
#include <boost/asio/awaitable.hpp>
#include <boost/system/error_code.hpp>
#include <boost/system/result.hpp>

#include <chrono>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

namespace boost::asio::ssl {
class context;
}

namespace bodydock::s3 {

struct Endpoint {
  std::string host = "127.0.0.1";  ///< resolved and connected to, also in virtual-host style
  std::uint16_t port = 80;
  std::string region = "us-east-1";
  bool path_style = true;   ///< http://host/bucket/key; false: http://bucket.host/key
  bool tls = false;         ///< https: see the TLS notes above
  /// PEM file of the CA certificate(s) to trust instead of the system's trust store (a private
  /// CA). Only for TLS: the Client refuses a CA file with a plain-HTTP endpoint.
  std::string ca_file;
  /// Parses "http://host[:port]" or "https://host[:port]" (default port 80 or 443); throws
  /// std::invalid_argument naming what is wrong.
  static Endpoint parse(std::string_view url, std::string region);
};

/// The category of "the server's certificate was not trusted": the value is OpenSSL's
/// X509_V_ERR_* verification result, the message says which check failed (unknown issuer,
/// expired, hostname mismatch, ...).
const boost::system::error_category& certificate_category() noexcept;

struct Response {
  unsigned status = 0;
  std::map<std::string, std::string> headers;  ///< lowercase names
  std::string body;
  /// The S3 error code of an error body (<Code>...</Code>), empty if none.
  [[nodiscard]] std::string error_code() const;
  /// A header's value, empty when absent.
  [[nodiscard]] std::string header(const std::string& lowercase_name) const;
  [[nodiscard]] bool ok() const { return status >= 200 && status < 300; }
};

/// One finished part of a multipart upload.
struct Part {
  unsigned number = 0;
  std::string etag;   ///< as the server returned it, quotes included
};

/// Lowercase hex MD5 and base64 MD5 (Content-MD5) of bytes.
std::string md5_base64(std::string_view bytes);
std::string md5_hex(std::string_view bytes);
/// Content-MD5 (base64) from a hex MD5.
std::string md5_base64_of_hex(std::string_view hex);
/// The ETag S3 gives a completed multipart upload: MD5 of the parts' binary MD5s, "-N".
std::string multipart_etag(const std::vector<std::string>& part_md5_hex);

class Client {
 public:
  /// Throws std::invalid_argument when endpoint.ca_file cannot be loaded or is set without TLS.
  Client(boost::asio::any_io_executor ex, Endpoint endpoint, Credentials credentials,
         std::chrono::milliseconds timeout = std::chrono::seconds(30));

  using Result = boost::system::result<Response>;
  using Headers = std::vector<Header>;

  /// Any request: `key` may be empty (bucket operations); `query` decoded. A Content-MD5 or
  /// x-amz-content-sha256 header in `headers` is taken as given (the caller hashed `body`
  /// already); otherwise they are computed here.
  boost::asio::awaitable<Result> request(std::string method, std::string bucket, std::string key, std::vector<QueryParam> query,
                                         Headers headers, std::string body);

  boost::asio::awaitable<Result> create_bucket(std::string bucket, bool object_lock);
  /// PUT that never replaces: If-None-Match: * (412 when the key exists).
  boost::asio::awaitable<Result> put_new_object(std::string bucket, std::string key, std::string body, Headers headers);
  boost::asio::awaitable<Result> head_object(std::string bucket, std::string key);
  boost::asio::awaitable<Result> get_object(std::string bucket, std::string key);
  /// Starts a multipart upload; the response body carries the UploadId (xml_field "UploadId").
  boost::asio::awaitable<Result> create_multipart(std::string bucket, std::string key, Headers headers);
  /// `headers` may carry Content-MD5 and x-amz-content-sha256 already computed over `body`.
  /// `body` is borrowed, not copied: it must stay alive and unchanged until the call completes.
  boost::asio::awaitable<Result> upload_part(std::string bucket, std::string key, std::string upload_id, unsigned number, std::string_view body,
                                             Headers headers = {});
  boost::asio::awaitable<Result> complete_multipart(std::string bucket, std::string key, std::string upload_id, std::vector<Part> parts);
  boost::asio::awaitable<Result> abort_multipart(std::string bucket, std::string key, std::string upload_id);
  /// Parts the server holds for an upload (to continue it after a restart).
  boost::asio::awaitable<Result> list_parts(std::string bucket, std::string key, std::string upload_id);
  /// Uploads in progress in a bucket whose keys start with `prefix` (GET ?uploads); read the
  /// body with multipart_uploads(). Finds what an interrupted upload left behind.
  boost::asio::awaitable<Result> list_multipart_uploads(std::string bucket, std::string prefix);

  [[nodiscard]] const Endpoint& endpoint() const { return endpoint_; }
  /// Requests are signed at local time + offset: set from storage's Date header when it says
  /// RequestTimeTooSkewed, so uploads go on while the dock's clock is being fixed.
  void set_clock_offset(std::chrono::milliseconds offset) { clock_offset_ = offset; }
  /// Every request body then goes out under this bandwidth cap (shared: give every client of
  /// the dock the same one).
  void set_rate_limiter(std::shared_ptr<RateLimiter> limiter) { limiter_ = std::move(limiter); }
  [[nodiscard]] std::chrono::milliseconds clock_offset() const { return clock_offset_; }

 private:
  /// request() with a borrowed body (alive and unchanged until it completes).
  boost::asio::awaitable<Result> send(std::string method, std::string bucket, std::string key, std::vector<QueryParam> query, Headers headers,
                                      std::string_view body);
  boost::asio::any_io_executor ex_;
  Endpoint endpoint_;
  Credentials credentials_;
  std::chrono::milliseconds timeout_;
  std::chrono::milliseconds clock_offset_{0};
  std::shared_ptr<RateLimiter> limiter_;
  /// The TLS settings and trust store, made once (loading a CA store is not cheap); null for
  /// plain HTTP. Shared by copies of the Client: it is not changed after construction.
  std::shared_ptr<boost::asio::ssl::context> tls_;
};

}  // namespace bodydock::s3
