#include "dock/s3/sigv4.hpp"

#include "proto/crypto.hpp"
#include "proto/sha256.hpp"

#include <openssl/crypto.h>
#include <openssl/evp.h>

#include <algorithm>
#include <array>
#include <cstdint>
#include <cstdio>
#include <stdexcept>
#include <utility>

namespace bodydock::s3 {
namespace {

constexpr std::string_view kAlgorithm = "AWS4-HMAC-SHA256";
constexpr std::chrono::seconds kMaxExpires{7 * 24 * 3600};

using Mac = std::array<std::uint8_t, 32>;

proto::ByteView bytes(std::string_view s) { return {reinterpret_cast<const std::uint8_t*>(s.data()), s.size()}; }

Mac hmac_sha256(proto::ByteView key, std::string_view data) {
  Mac out{};
  std::size_t n = 0;
  if (EVP_Q_mac(nullptr, "HMAC", nullptr, "SHA256", nullptr, key.data(), key.size(), bytes(data).data(), data.size(), out.data(),
                out.size(), &n) == nullptr ||
      n != out.size())
    throw proto::crypto::CryptoError("HMAC-SHA256 failed");
  return out;
}

/// kSigning = HMAC(HMAC(HMAC(HMAC("AWS4" + secret, date), region), service), "aws4_request").
/// The intermediate keys are wiped: each of them signs anything for that day.
Mac signing_key(std::string_view secret, std::string_view date, std::string_view region, std::string_view service) {
  std::string k = "AWS4";
  k += secret;
  Mac key = hmac_sha256(bytes(k), date);
  OPENSSL_cleanse(k.data(), k.size());
  for (const std::string_view part : {region, service, std::string_view("aws4_request")}) {
    const Mac next = hmac_sha256(key, part);
    OPENSSL_cleanse(key.data(), key.size());
    key = next;
  }
  return key;
}

std::string sha256_hex(std::string_view s) { return proto::to_hex(proto::Sha256::of(bytes(s))); }

char lower(char c) { return c >= 'A' && c <= 'Z' ? static_cast<char>(c - 'A' + 'a') : c; }

std::string lowercase(std::string_view s) {
  std::string out(s);
  std::transform(out.begin(), out.end(), out.begin(), lower);
  return out;
}

bool iequals(std::string_view a, std::string_view b) {
  return a.size() == b.size() && std::equal(a.begin(), a.end(), b.begin(), [](char x, char y) { return lower(x) == lower(y); });
}

/// "20150830T123600Z" (X-Amz-Date); its first 8 characters are the scope's date.
std::string amz_date(std::chrono::system_clock::time_point t) {
  using namespace std::chrono;
  const auto secs = floor<seconds>(t);
  const auto day = floor<days>(secs);
  const year_month_day ymd{day};
  const hh_mm_ss hms{secs - day};
  char buf[64];
  std::snprintf(buf, sizeof buf, "%04d%02u%02uT%02d%02d%02dZ", static_cast<int>(ymd.year()), static_cast<unsigned>(ymd.month()),
                static_cast<unsigned>(ymd.day()), static_cast<int>(hms.hours().count()), static_cast<int>(hms.minutes().count()),
                static_cast<int>(hms.seconds().count()));
  return buf;
}

/// Trims spaces and tabs at both ends and squeezes runs of spaces into one ("trimall").
std::string canonical_value(std::string_view name, std::string_view v) {
  if (v.find_first_of("\r\n") != std::string_view::npos)
    throw std::invalid_argument("SigV4: header " + std::string(name) + " has a line break in its value");
  const auto first = v.find_first_not_of(" \t");
  if (first == std::string_view::npos) return {};
  v = v.substr(first, v.find_last_not_of(" \t") - first + 1);
  std::string out;
  out.reserve(v.size());
  for (const char c : v)
    if (c != ' ' || out.empty() || out.back() != ' ') out.push_back(c);
  return out;
}

struct CanonicalHeaders {
  std::string block;  ///< "name:value\n" per distinct name, sorted
  std::string names;  ///< the signed headers: "name;name"
};

/// Lowercased names, sorted; a repeated name becomes one line with its values joined by commas
/// in the order they were given (hence the stable sort).
CanonicalHeaders canonical_headers(const std::vector<Header>& headers) {
  std::vector<Header> h;
  h.reserve(headers.size());
  bool host = false;
  for (const auto& [name, value] : headers) {
    if (name.empty()) throw std::invalid_argument("SigV4: a header without a name");
    h.push_back({lowercase(name), canonical_value(name, value)});
    host = host || h.back().name == "host";
  }
  if (!host) throw std::invalid_argument("SigV4: the request has no Host header");
  std::stable_sort(h.begin(), h.end(), [](const Header& a, const Header& b) { return a.name < b.name; });

  CanonicalHeaders c;
  for (std::size_t i = 0; i < h.size(); ++i) {
    if (i > 0 && h[i].name == h[i - 1].name) {
      c.block.back() = ',';  // the '\n' that ended the previous value of this name
    } else {
      if (!c.names.empty()) c.names += ';';
      c.names += h[i].name;
      c.block += h[i].name;
      c.block += ':';
    }
    c.block += h[i].value;
    c.block += '\n';
  }
  return c;
}

/// Drops empty and "." segments, lets ".." remove the one before; keeps a trailing slash.
std::string normalized_path(std::string_view path) {
  std::vector<std::string_view> kept;
  for (std::size_t pos = 0; pos <= path.size();) {
    const auto end = std::min(path.find('/', pos), path.size());
    const auto seg = path.substr(pos, end - pos);
    if (seg == "..") {
      if (!kept.empty()) kept.pop_back();
    } else if (!seg.empty() && seg != ".") {
      kept.push_back(seg);
    }
    pos = end + 1;
  }
  std::string out = "/";
  for (std::size_t i = 0; i < kept.size(); ++i) {
    out += kept[i];
    if (i + 1 < kept.size() || path.ends_with('/')) out += '/';
  }
  return out;
}

std::string canonical_path(std::string_view wire, const SignOptions& o) {
  const std::string path = o.normalize_path ? normalized_path(wire) : wire.empty() ? std::string("/") : std::string(wire);
  if (o.double_encode_path) return uri_encode(path, true);
  // Once-encoded: decode and re-encode each segment, so "%7e", "~" and "%7E" sign alike and an
  // escaped "/" (%2F) stays inside its segment.
  std::string out;
  for (std::size_t pos = 0;;) {
    const auto end = path.find('/', pos);
    out += uri_encode(uri_decode(std::string_view(path).substr(pos, end == std::string::npos ? std::string::npos : end - pos)));
    if (end == std::string::npos) break;
    out += '/';
    pos = end + 1;
  }
  return out;
}

/// Encoded "k=v" pairs sorted by key, then value; joined with '&'.
std::string canonical_query(const std::vector<QueryParam>& params) {
  std::vector<std::pair<std::string, std::string>> enc;
  enc.reserve(params.size());
  for (const auto& [k, v] : params) enc.emplace_back(uri_encode(k), uri_encode(v));
  std::sort(enc.begin(), enc.end());
  std::string out;
  for (const auto& [k, v] : enc) {
    if (!out.empty()) out += '&';
    out += k;
    out += '=';
    out += v;
  }
  return out;
}

/// What both forms share: the time, the scope and the checks on the request.
struct Context {
  std::string date_time;  ///< X-Amz-Date
  std::string scope;      ///< 20150830/us-east-1/service/aws4_request
  std::string credential; ///< access key id + '/' + scope
};

Context context(const SignRequest& r, const Credentials& c, const SignOptions& o) {
  if (r.method.empty()) throw std::invalid_argument("SigV4: no method");
  if (r.payload_hash.empty()) throw std::invalid_argument("SigV4: no payload hash (use kUnsignedPayload for an unsigned body)");
  if (c.access_key_id.empty() || c.secret_access_key.empty()) throw std::invalid_argument("SigV4: no credentials");
  if (o.region.empty() || o.service.empty()) throw std::invalid_argument("SigV4: no region or service");
  Context x;
  x.date_time = amz_date(o.time);
  x.scope = x.date_time.substr(0, 8) + '/' + o.region + '/' + o.service + "/aws4_request";
  x.credential = c.access_key_id + '/' + x.scope;
  return x;
}

/// Fills canonical request, string to sign and signature.
void sign(Signature& s, const SignRequest& r, std::string_view query, const CanonicalHeaders& h, const Context& x,
          const Credentials& c, const SignOptions& o) {
  s.canonical_request = r.method + '\n' + canonical_path(r.path, o) + '\n' + std::string(query) + '\n' + h.block + '\n' + h.names +
                        '\n' + r.payload_hash;
  s.string_to_sign = std::string(kAlgorithm) + '\n' + x.date_time + '\n' + x.scope + '\n' + sha256_hex(s.canonical_request);
  Mac key = signing_key(c.secret_access_key, x.date_time.substr(0, 8), o.region, o.service);
  s.signature = proto::to_hex(hmac_sha256(key, s.string_to_sign));
  OPENSSL_cleanse(key.data(), key.size());
}

void refuse_header(const SignRequest& r, std::string_view name) {
  for (const auto& h : r.headers)
    if (iequals(h.name, name)) throw std::invalid_argument("SigV4: the request already has " + std::string(name) + ", which the signer adds");
}

}  // namespace

SignOptions s3_options(std::string region, std::chrono::system_clock::time_point time) {
  SignOptions o;
  o.region = std::move(region);
  o.service = "s3";
  o.time = time;
  o.normalize_path = false;
  o.double_encode_path = false;
  o.sign_content_sha256 = true;
  return o;
}

HeaderSigning sign_headers(const SignRequest& request, const Credentials& credentials, const SignOptions& options) {
  const Context x = context(request, credentials, options);
  const bool token = !credentials.session_token.empty();
  refuse_header(request, "authorization");
  refuse_header(request, "x-amz-date");
  if (token) refuse_header(request, "x-amz-security-token");
  if (options.sign_content_sha256) refuse_header(request, "x-amz-content-sha256");

  HeaderSigning s;
  if (token) s.add_headers.push_back({"X-Amz-Security-Token", credentials.session_token});
  s.add_headers.push_back({"X-Amz-Date", x.date_time});
  if (options.sign_content_sha256) s.add_headers.push_back({"x-amz-content-sha256", request.payload_hash});

  std::vector<Header> signed_headers = request.headers;
  for (const auto& h : s.add_headers)
    if (h.name != "X-Amz-Security-Token" || options.sign_session_token) signed_headers.push_back(h);
  const CanonicalHeaders h = canonical_headers(signed_headers);

  sign(s, request, canonical_query(request.query), h, x, credentials, options);
  s.authorization = std::string(kAlgorithm) + " Credential=" + x.credential + ", SignedHeaders=" + h.names + ", Signature=" + s.signature;
  s.add_headers.push_back({"Authorization", s.authorization});
  return s;
}

QuerySigning presign(const SignRequest& request, const Credentials& credentials, const SignOptions& options) {
  const Context x = context(request, credentials, options);
  if (options.expires < std::chrono::seconds(1) || options.expires > kMaxExpires)
    throw std::invalid_argument("SigV4: a presigned URL expires after 1 s to 7 days");
  const bool token = !credentials.session_token.empty();
  for (const auto& p : request.query)
    for (const std::string_view reserved : {"X-Amz-Algorithm", "X-Amz-Credential", "X-Amz-Date", "X-Amz-SignedHeaders",
                                            "X-Amz-Expires", "X-Amz-Security-Token", "X-Amz-Signature"})
      if (iequals(p.key, reserved))
        throw std::invalid_argument("SigV4: the query already has " + std::string(reserved) + ", which the signer adds");

  const CanonicalHeaders h = canonical_headers(request.headers);
  QuerySigning s;
  s.add_query = {
      {"X-Amz-Algorithm", std::string(kAlgorithm)},
      {"X-Amz-Credential", x.credential},
      {"X-Amz-Date", x.date_time},
      {"X-Amz-SignedHeaders", h.names},
      {"X-Amz-Expires", std::to_string(options.expires.count())},
  };
  if (token) s.add_query.push_back({"X-Amz-Security-Token", credentials.session_token});

  std::vector<QueryParam> signed_query = request.query;
  for (const auto& p : s.add_query)
    if (p.key != "X-Amz-Security-Token" || options.sign_session_token) signed_query.push_back(p);

  sign(s, request, canonical_query(signed_query), h, x, credentials, options);
  s.add_query.push_back({"X-Amz-Signature", s.signature});
  for (const auto& [k, v] : s.add_query) {
    if (!s.add_query_string.empty()) s.add_query_string += '&';
    s.add_query_string += uri_encode(k) + '=' + uri_encode(v);
  }
  return s;
}

std::string uri_encode(std::string_view s, bool keep_slash) {
  static constexpr char kHex[] = "0123456789ABCDEF";
  std::string out;
  out.reserve(s.size());
  for (const char ch : s) {
    const auto c = static_cast<unsigned char>(ch);
    const bool unreserved = (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '-' || c == '.' ||
                            c == '_' || c == '~';
    if (unreserved || (keep_slash && c == '/')) {
      out.push_back(ch);
    } else {
      out.push_back('%');
      out.push_back(kHex[c >> 4]);
      out.push_back(kHex[c & 0xF]);
    }
  }
  return out;
}

std::string uri_decode(std::string_view s) {
  auto nibble = [](char c) -> int {
    if (c >= '0' && c <= '9') return c - '0';
    if (c >= 'a' && c <= 'f') return c - 'a' + 10;
    if (c >= 'A' && c <= 'F') return c - 'A' + 10;
    return -1;
  };
  std::string out;
  out.reserve(s.size());
  for (std::size_t i = 0; i < s.size(); ++i) {
    if (s[i] == '%' && i + 2 < s.size() && nibble(s[i + 1]) >= 0 && nibble(s[i + 2]) >= 0) {
      out.push_back(static_cast<char>(nibble(s[i + 1]) << 4 | nibble(s[i + 2])));
      i += 2;
    } else {
      out.push_back(s[i]);
    }
  }
  return out;
}

}  // namespace bodydock::s3
