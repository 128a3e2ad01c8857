#pragma once
/// AWS Signature Version 4 (HMAC-SHA256) for the S3 sink: the Authorization header form and
/// the presigned (query-string) form. Pure code, no I/O: a request description goes in, the
/// canonical request, string to sign, signature and what to add to the request come out.
/// Checked against every case of aws-c-auth's SigV4 test suite (tests/s3/sigv4_test.cpp).
///
/// The defaults of SignOptions are those of most AWS services and of the test suite. S3 differs:
/// it neither normalises nor double-encodes the path and wants x-amz-content-sha256 signed, so
/// an S3 client sets normalize_path = false, double_encode_path = false and
/// sign_content_sha256 = true (see s3_options()).
///
/// A request the signer cannot sign safely (a header it adds itself already present, a CR or LF
/// in a header value, an expiry out of range) is a bug in the caller: std::invalid_argument.

#include <chrono>
#include <string>
#include <string_view>
#include <vector>

namespace bodydock::s3 {

/// An access key. Never logged: describe a request by its scope, not by its credentials.
struct Credentials {
  std::string access_key_id;
  std::string secret_access_key;
  std::string session_token;  ///< temporary credentials (STS); empty for long-term keys
};

struct Header {
  std::string name;   ///< as sent; the signer lowercases it
  std::string value;  ///< as sent; the signer trims it and squeezes runs of spaces
  friend bool operator==(const Header&, const Header&) = default;
};

/// One query parameter, decoded: the signer percent-encodes it itself.
struct QueryParam {
  std::string key;
  std::string value;
  friend bool operator==(const QueryParam&, const QueryParam&) = default;
};

/// The payload hash of a body the signature does not cover (S3 presigned URLs, streamed PUTs).
inline constexpr std::string_view kUnsignedPayload = "UNSIGNED-PAYLOAD";

/// What is signed: the request as it goes on the wire, without anything the signer adds.
struct SignRequest {
  std::string method;                 ///< "GET", "PUT", ...
  std::string path = "/";             ///< the path as on the wire (percent-encoded), without the query
  std::vector<QueryParam> query;      ///< decoded, in any order
  std::vector<Header> headers;        ///< must include Host; repeated names are kept in order
  std::string payload_hash;           ///< lowercase hex SHA-256 of the body, or kUnsignedPayload
};

struct SignOptions {
  std::string region;                            ///< "eu-central-1"
  std::string service;                           ///< "s3"
  std::chrono::system_clock::time_point time{};  ///< the signing time (X-Amz-Date), UTC
  /// Remove "." and ".." segments and empty segments (repeated slashes) from the path.
  bool normalize_path = true;
  /// true: percent-encode the wire path once more (a '%' becomes "%25"), as most services
  /// expect. false (S3): the path is taken as already encoded once; its escapes are decoded
  /// and re-encoded per segment, so only the canonical spelling of each byte is signed.
  bool double_encode_path = true;
  /// Header form: add x-amz-content-sha256 (the payload hash) and sign it. S3 requires it.
  bool sign_content_sha256 = false;
  /// false: the session token is still sent (header or query parameter) but left out of the
  /// signature, for the few services that want it so. Ignored without a session token.
  bool sign_session_token = true;
  /// Presigned form: how long the URL stays valid (X-Amz-Expires), 1 s to 7 days.
  std::chrono::seconds expires{3600};
};

/// The options S3 wants in a region, at a time.
SignOptions s3_options(std::string region, std::chrono::system_clock::time_point time);

/// The intermediate results of a signing, for tests and for debugging a SignatureDoesNotMatch
/// (S3 returns its own canonical request and string to sign in that error).
struct Signature {
  std::string canonical_request;
  std::string string_to_sign;
  std::string signature;  ///< lowercase hex
};

/// Header form: the request keeps its path and query, and gets `add_headers`.
struct HeaderSigning : Signature {
  std::string authorization;       ///< the Authorization header's value
  /// To append to the request, in this order: X-Amz-Security-Token (with a session token),
  /// X-Amz-Date, x-amz-content-sha256 (when signed), Authorization.
  std::vector<Header> add_headers;
};

/// Query form (a presigned URL): the request keeps its headers and gets `add_query`.
struct QuerySigning : Signature {
  /// Decoded, in the order AWS's own signers append them: X-Amz-Algorithm, X-Amz-Credential,
  /// X-Amz-Date, X-Amz-SignedHeaders, X-Amz-Expires, X-Amz-Security-Token (with a session
  /// token), X-Amz-Signature.
  std::vector<QueryParam> add_query;
  /// `add_query` encoded as "k=v&k=v", to append after the request's own query (with '&').
  std::string add_query_string;
};

/// Signs `request` for the Authorization header.
HeaderSigning sign_headers(const SignRequest& request, const Credentials& credentials, const SignOptions& options);

/// Signs `request` as a presigned URL. Headers in `request` are signed and must be sent as
/// given (usually only Host). The payload hash is normally kUnsignedPayload.
QuerySigning presign(const SignRequest& request, const Credentials& credentials, const SignOptions& options);

/// RFC 3986 percent-encoding as SigV4 wants it: every byte except A-Z a-z 0-9 - . _ ~ becomes
/// %XX (uppercase hex); with keep_slash, '/' stays (for paths and S3 object keys).
std::string uri_encode(std::string_view s, bool keep_slash = false);

/// Decodes %XX escapes; a '%' not followed by two hex digits stays as it is. '+' stays '+'.
std::string uri_decode(std::string_view s);

}  // namespace bodydock::s3
