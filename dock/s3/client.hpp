#pragma once
/// A small S3 client in the Asio loop (Boost.Beast, HTTP/1.1), enough for the dock's sink:
/// bucket creation, conditional PUT, HEAD, and multipart upload. Every request is signed with
/// Signature V4 (sigv4.hpp), carries x-amz-content-sha256 of its body, and every body-carrying
/// request a Content-MD5, so the server refuses a body damaged on the way. Path-style or
/// virtual-host style addressing. Plain HTTP for now (TLS comes with the sink).
///
/// Errors: a transport failure is the result's error (connect, reset, timeout); any HTTP
/// answer, success or not, is a Response, so callers classify S3 errors by status and code.

#include "dock/s3/sigv4.hpp"

#include <boost/asio/any_io_executor.hpp>
#include <boost/asio/awaitable.hpp>
#include <boost/system/result.hpp>

#include <chrono>
#include <map>
#include <string>
#include <string_view>
#include <vector>

namespace bodydock::s3 {

struct Endpoint {
  std::string host = "127.0.0.1";
  std::uint16_t port = 80;
  std::string region = "us-east-1";
  bool path_style = true;   ///< http://host/bucket/key; false: http://bucket.host/key
  /// Parses "http://host[:port]"; throws std::invalid_argument naming what is wrong.
  static Endpoint parse(std::string_view url, std::string region);
};

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

/// The text between <tag> and </tag> (first occurrence), empty if absent. S3's XML is simple
/// enough for this; nothing here parses untrusted XML beyond extracting a field.
std::string xml_field(std::string_view xml, std::string_view tag);
/// Lowercase hex MD5 and base64 MD5 (Content-MD5) of bytes.
std::string md5_base64(std::string_view bytes);
std::string md5_hex(std::string_view bytes);
/// The ETag S3 gives a completed multipart upload: MD5 of the parts' binary MD5s, "-N".
std::string multipart_etag(const std::vector<std::string>& part_md5_hex);

class Client {
 public:
  Client(boost::asio::any_io_executor ex, Endpoint endpoint, Credentials credentials,
         std::chrono::milliseconds timeout = std::chrono::seconds(30));

  using Result = boost::system::result<Response>;
  using Headers = std::vector<Header>;

  /// Any request: `key` may be empty (bucket operations); `query` decoded.
  boost::asio::awaitable<Result> request(std::string method, std::string bucket, std::string key, std::vector<QueryParam> query,
                                         Headers headers, std::string body);

  boost::asio::awaitable<Result> create_bucket(std::string bucket, bool object_lock);
  /// PUT that never replaces: If-None-Match: * (412 when the key exists).
  boost::asio::awaitable<Result> put_new_object(std::string bucket, std::string key, std::string body, Headers headers);
  boost::asio::awaitable<Result> head_object(std::string bucket, std::string key);
  boost::asio::awaitable<Result> get_object(std::string bucket, std::string key);
  /// Starts a multipart upload; the response body carries the UploadId (xml_field "UploadId").
  boost::asio::awaitable<Result> create_multipart(std::string bucket, std::string key, Headers headers);
  boost::asio::awaitable<Result> upload_part(std::string bucket, std::string key, std::string upload_id, unsigned number, std::string body);
  boost::asio::awaitable<Result> complete_multipart(std::string bucket, std::string key, std::string upload_id, std::vector<Part> parts);
  boost::asio::awaitable<Result> abort_multipart(std::string bucket, std::string key, std::string upload_id);
  /// Parts the server holds for an upload (to continue it after a restart).
  boost::asio::awaitable<Result> list_parts(std::string bucket, std::string key, std::string upload_id);

  [[nodiscard]] const Endpoint& endpoint() const { return endpoint_; }

 private:
  boost::asio::any_io_executor ex_;
  Endpoint endpoint_;
  Credentials credentials_;
  std::chrono::milliseconds timeout_;
};

}  // namespace bodydock::s3
