// AWS Signature Version 4: every case of aws-c-auth's SigV4 test suite, in the header and in the
// query (presigned) form, down to the signed request; then S3's own documented examples, which
// sign with S3's settings (no path normalisation, no double encoding, x-amz-content-sha256).
#include "dock/s3/sigv4.hpp"
#include "proto/sha256.hpp"

#include <boost/json.hpp>
#include <boost/test/unit_test.hpp>

#include <algorithm>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <sstream>

using namespace bodydock;
namespace fs = std::filesystem;

namespace {

constexpr std::size_t kSuiteCases = 38;

std::string read_file(const fs::path& p) {
  std::ifstream in(p, std::ios::binary);
  BOOST_TEST_REQUIRE(in.good(), "cannot read " << p);
  std::ostringstream s;
  s << in.rdbuf();
  return s.str();
}

std::string sha256_hex(std::string_view s) {
  return proto::to_hex(proto::Sha256::of({reinterpret_cast<const std::uint8_t*>(s.data()), s.size()}));
}

/// A request.txt of the suite: "METHOD target HTTP/1.1", header lines "Name:value" (a line that
/// starts with a space or tab continues the value before it), a blank line, the body.
struct RawRequest {
  std::string method;
  std::string path;                       ///< as written (may hold spaces and raw UTF-8)
  std::string query;                      ///< as written, without '?'
  std::vector<std::string> header_lines;  ///< as written, continuation lines included
  std::vector<s3::Header> headers;        ///< unfolded
  std::string body;
};

RawRequest parse_request(std::string_view text) {
  RawRequest r;
  const auto eol = text.find('\n');
  const auto line = text.substr(0, eol);
  const auto sp1 = line.find(' ');
  const auto sp2 = line.rfind(' ');
  BOOST_TEST_REQUIRE((sp1 != std::string_view::npos && sp2 > sp1 && line.substr(sp2) == " HTTP/1.1"), "bad request line: " << line);
  r.method = line.substr(0, sp1);
  const auto target = line.substr(sp1 + 1, sp2 - sp1 - 1);
  const auto q = target.find('?');
  r.path = target.substr(0, q);
  if (q != std::string_view::npos) r.query = target.substr(q + 1);

  for (auto pos = eol == std::string_view::npos ? text.size() : eol + 1; pos < text.size();) {
    const auto end = std::min(text.find('\n', pos), text.size());
    const auto l = text.substr(pos, end - pos);
    pos = end + 1;
    if (l.empty()) {
      if (pos < text.size()) r.body = text.substr(pos);
      break;
    }
    r.header_lines.emplace_back(l);
    if (l.front() == ' ' || l.front() == '\t') {
      // An obs-fold: RFC 9112 says a recipient replaces it (the line break and the blanks
      // around it) with one space before interpreting the value.
      BOOST_TEST_REQUIRE(!r.headers.empty(), "continuation line before any header");
      r.headers.back().value += ' ';
      r.headers.back().value += l.substr(l.find_first_not_of(" \t"));
    } else {
      const auto colon = l.find(':');
      BOOST_TEST_REQUIRE(colon != std::string_view::npos, "header line without ':': " << l);
      r.headers.push_back({std::string(l.substr(0, colon)), std::string(l.substr(colon + 1))});
    }
  }
  return r;
}

std::vector<s3::QueryParam> parse_query(std::string_view q) {
  std::vector<s3::QueryParam> out;
  for (std::size_t pos = 0; pos < q.size();) {
    const auto end = std::min(q.find('&', pos), q.size());
    const auto pair = q.substr(pos, end - pos);
    pos = end + 1;
    if (pair.empty()) continue;
    const auto eq = pair.find('=');
    out.push_back({s3::uri_decode(pair.substr(0, eq)), eq == std::string_view::npos ? std::string() : s3::uri_decode(pair.substr(eq + 1))});
  }
  return out;
}

std::chrono::system_clock::time_point parse_timestamp(const std::string& s) {
  int y = 0, mo = 0, d = 0, h = 0, mi = 0, sec = 0;
  BOOST_TEST_REQUIRE(std::sscanf(s.c_str(), "%d-%d-%dT%d:%d:%dZ", &y, &mo, &d, &h, &mi, &sec) == 6, "bad timestamp " << s);
  using namespace std::chrono;
  return sys_days{year{y} / month{static_cast<unsigned>(mo)} / day{static_cast<unsigned>(d)}} + hours{h} + minutes{mi} + seconds{sec};
}

/// One folder of the suite, read and turned into what the signer takes.
struct Case {
  std::string name;
  fs::path dir;
  RawRequest raw;
  s3::SignRequest request;
  s3::Credentials credentials;
  s3::SignOptions options;

  [[nodiscard]] std::string expected(const char* file) const { return read_file(dir / file); }
};

Case load_case(const fs::path& dir) {
  Case c;
  c.name = dir.filename().string();
  c.dir = dir;
  const auto ctx = boost::json::parse(read_file(dir / "context.json")).as_object();
  const auto& cred = ctx.at("credentials").as_object();
  c.credentials.access_key_id = cred.at("access_key_id").as_string();
  c.credentials.secret_access_key = cred.at("secret_access_key").as_string();
  if (const auto* t = cred.if_contains("token")) c.credentials.session_token = t->as_string();

  c.options.region = ctx.at("region").as_string();
  c.options.service = ctx.at("service").as_string();
  c.options.time = parse_timestamp(std::string(ctx.at("timestamp").as_string()));
  c.options.normalize_path = ctx.at("normalize").as_bool();
  c.options.double_encode_path = true;  // the suite runs with aws-c-auth's use_double_uri_encode
  const bool sign_body = ctx.at("sign_body").as_bool();
  c.options.sign_content_sha256 = sign_body;
  c.options.expires = std::chrono::seconds(ctx.at("expiration_in_seconds").to_number<std::int64_t>());
  if (const auto* o = ctx.if_contains("omit_session_token")) c.options.sign_session_token = !o->as_bool();

  c.raw = parse_request(read_file(dir / "request.txt"));
  c.request.method = c.raw.method;
  c.request.path = c.raw.path;
  c.request.query = parse_query(c.raw.query);
  c.request.headers = c.raw.headers;
  // "sign_body": false means the suite signs the hash of an empty body (its bodies are empty
  // then anyway); true means the body's hash, also sent and signed as x-amz-content-sha256.
  c.request.payload_hash = sha256_hex(sign_body ? c.raw.body : "");
  return c;
}

std::vector<Case> load_suite() {
  const fs::path root = SIGV4_VECTORS_DIR;
  BOOST_TEST_REQUIRE(fs::is_directory(root), "the SigV4 test vectors are missing: " << root << " (set BODYDOCK_SIGV4_VECTORS)");
  std::vector<fs::path> dirs;
  for (const auto& e : fs::directory_iterator(root))
    if (e.is_directory()) dirs.push_back(e.path());
  std::sort(dirs.begin(), dirs.end());
  BOOST_TEST_REQUIRE(dirs.size() >= kSuiteCases, "only " << dirs.size() << " SigV4 cases in " << root << ", expected " << kSuiteCases);
  std::vector<Case> cases;
  for (const auto& d : dirs) {
    BOOST_TEST_CONTEXT(d.filename().string()) { cases.push_back(load_case(d)); }
  }
  return cases;
}

std::string header_block(const std::vector<std::string>& lines) {
  std::string s;
  for (const auto& l : lines) s += l + '\n';
  return s;
}

}  // namespace

BOOST_AUTO_TEST_SUITE(sigv4)

BOOST_AUTO_TEST_CASE(header_form_matches_every_suite_case) {
  const auto cases = load_suite();
  std::size_t passed = 0;
  for (const auto& c : cases) {
    BOOST_TEST_CONTEXT(c.name) {
      const auto s = s3::sign_headers(c.request, c.credentials, c.options);
      std::string signed_request = c.raw.method + ' ' + c.raw.path + (c.raw.query.empty() ? "" : "?" + c.raw.query) + " HTTP/1.1\n" +
                                   header_block(c.raw.header_lines);
      for (const auto& h : s.add_headers) signed_request += h.name + ':' + h.value + '\n';
      signed_request += '\n' + c.raw.body;

      const bool ok = s.canonical_request == c.expected("header-canonical-request.txt") &&
                      s.string_to_sign == c.expected("header-string-to-sign.txt") && s.signature == c.expected("header-signature.txt") &&
                      signed_request == c.expected("header-signed-request.txt");
      BOOST_TEST(s.canonical_request == c.expected("header-canonical-request.txt"));
      BOOST_TEST(s.string_to_sign == c.expected("header-string-to-sign.txt"));
      BOOST_TEST(s.signature == c.expected("header-signature.txt"));
      BOOST_TEST(signed_request == c.expected("header-signed-request.txt"));
      passed += ok;
    }
  }
  BOOST_TEST_MESSAGE("SigV4 header form: " << passed << " of " << cases.size() << " suite cases pass");
  BOOST_TEST(passed == cases.size());
}

BOOST_AUTO_TEST_CASE(query_form_matches_every_suite_case) {
  const auto cases = load_suite();
  std::size_t passed = 0;
  for (const auto& c : cases) {
    BOOST_TEST_CONTEXT(c.name) {
      const auto s = s3::presign(c.request, c.credentials, c.options);
      const std::string signed_request = c.raw.method + ' ' + c.raw.path + '?' + (c.raw.query.empty() ? "" : c.raw.query + '&') +
                                         s.add_query_string + " HTTP/1.1\n" + header_block(c.raw.header_lines) + '\n' + c.raw.body;

      const bool ok = s.canonical_request == c.expected("query-canonical-request.txt") &&
                      s.string_to_sign == c.expected("query-string-to-sign.txt") && s.signature == c.expected("query-signature.txt") &&
                      signed_request == c.expected("query-signed-request.txt");
      BOOST_TEST(s.canonical_request == c.expected("query-canonical-request.txt"));
      BOOST_TEST(s.string_to_sign == c.expected("query-string-to-sign.txt"));
      BOOST_TEST(s.signature == c.expected("query-signature.txt"));
      BOOST_TEST(signed_request == c.expected("query-signed-request.txt"));
      passed += ok;
    }
  }
  BOOST_TEST_MESSAGE("SigV4 query form: " << passed << " of " << cases.size() << " suite cases pass");
  BOOST_TEST(passed == cases.size());
}

// The worked examples of the S3 API reference ("Signature Calculations for the Authorization
// Header: Transferring Payload in a Single Chunk" and "Authenticating Requests: Using Query
// Parameters"), signed with s3_options().
namespace {

const s3::Credentials kS3DocKeys{"AKIAIOSFODNN7EXAMPLE", "wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY", ""};

s3::SignOptions s3_doc_options() {
  using namespace std::chrono;
  return s3::s3_options("us-east-1", sys_days{year{2013} / May / 24});
}

}  // namespace

BOOST_AUTO_TEST_CASE(s3_documented_get_object) {
  s3::SignRequest r;
  r.method = "GET";
  r.path = "/test.txt";
  r.headers = {{"Host", "examplebucket.s3.amazonaws.com"}, {"Range", "bytes=0-9"}};
  r.payload_hash = sha256_hex("");
  const auto s = s3::sign_headers(r, kS3DocKeys, s3_doc_options());
  BOOST_TEST(s.authorization ==
             "AWS4-HMAC-SHA256 Credential=AKIAIOSFODNN7EXAMPLE/20130524/us-east-1/s3/aws4_request, "
             "SignedHeaders=host;range;x-amz-content-sha256;x-amz-date, "
             "Signature=f0e8bdb87c964420e857bd35b5d6ed310bd44f0170aba48dd91039c6036bdb41");
  const std::vector<s3::Header> added = {{"X-Amz-Date", "20130524T000000Z"}, {"x-amz-content-sha256", r.payload_hash}, {"Authorization", s.authorization}};
  BOOST_TEST((s.add_headers == added));
}

BOOST_AUTO_TEST_CASE(s3_documented_put_object_signs_the_escaped_key_once) {
  s3::SignRequest r;
  r.method = "PUT";
  r.headers = {{"Host", "examplebucket.s3.amazonaws.com"},
               {"Date", "Fri, 24 May 2013 00:00:00 GMT"},
               {"x-amz-storage-class", "REDUCED_REDUNDANCY"}};
  r.payload_hash = sha256_hex("Welcome to Amazon S3.");
  BOOST_TEST(r.payload_hash == "44ce7dd67c959e0d3524ffac1771dfbba87d2b6b4b4e99e42034a8b803f8b072");
  // The key "test$file.text" as a client sends it, and as a sloppier one might: S3 signs both alike.
  for (const char* path : {"/test%24file.text", "/test$file.text", "/test%24file%2etext"}) {
    BOOST_TEST_CONTEXT(path) {
      r.path = path;
      const auto s = s3::sign_headers(r, kS3DocKeys, s3_doc_options());
      BOOST_TEST(s.canonical_request.starts_with("PUT\n/test%24file.text\n\n"));
      BOOST_TEST(s.signature == "98ad721746da40c64f1a55b78f14c238d841ea1380cd77a1b5971af0ece108bd");
    }
  }
}

BOOST_AUTO_TEST_CASE(s3_documented_get_bucket_lifecycle_has_a_valueless_parameter) {
  s3::SignRequest r;
  r.method = "GET";
  r.path = "/";
  r.query = {{"lifecycle", ""}};
  r.headers = {{"Host", "examplebucket.s3.amazonaws.com"}};
  r.payload_hash = sha256_hex("");
  const auto s = s3::sign_headers(r, kS3DocKeys, s3_doc_options());
  BOOST_TEST(s.canonical_request.starts_with("GET\n/\nlifecycle=\n"));
  BOOST_TEST(s.signature == "fea454ca298b7da1c68078a5d1bdbfbbe0d65c699e0f91ac7a200a0136783543");
}

BOOST_AUTO_TEST_CASE(s3_documented_presigned_get) {
  s3::SignRequest r;
  r.method = "GET";
  r.path = "/test.txt";
  r.headers = {{"Host", "examplebucket.s3.amazonaws.com"}};
  r.payload_hash = std::string(s3::kUnsignedPayload);
  auto o = s3_doc_options();
  o.expires = std::chrono::hours(24);
  const auto s = s3::presign(r, kS3DocKeys, o);
  BOOST_TEST(s.add_query_string ==
             "X-Amz-Algorithm=AWS4-HMAC-SHA256&X-Amz-Credential=AKIAIOSFODNN7EXAMPLE%2F20130524%2Fus-east-1%2Fs3%2Faws4_request"
             "&X-Amz-Date=20130524T000000Z&X-Amz-SignedHeaders=host&X-Amz-Expires=86400"
             "&X-Amz-Signature=aeeed9bbccd4d02ee5c0109b86d86835f995330da4c265957d157751f604d404");
}

BOOST_AUTO_TEST_CASE(path_modes) {
  s3::SignRequest r;
  r.method = "GET";
  r.headers = {{"Host", "h"}};
  r.payload_hash = std::string(s3::kUnsignedPayload);
  auto canonical_path = [&r](std::string path, bool normalize, bool double_encode) {
    r.path = std::move(path);
    s3::SignOptions o;
    o.region = "r";
    o.service = "s";
    o.normalize_path = normalize;
    o.double_encode_path = double_encode;
    const auto cr = s3::sign_headers(r, {"AK", "SK", ""}, o).canonical_request;
    const auto first = cr.find('\n') + 1;
    return cr.substr(first, cr.find('\n', first) - first);
  };
  BOOST_TEST(canonical_path("/a%20b/c", false, true) == "/a%2520b/c");    // most services: encoded again
  BOOST_TEST(canonical_path("/a%20b/c", false, false) == "/a%20b/c");     // S3: signed as sent
  BOOST_TEST(canonical_path("/a%2fb/%7e", false, false) == "/a%2Fb/~");   // an escaped slash stays in its segment
  BOOST_TEST(canonical_path("/a//./b/../c/", false, false) == "/a//./b/../c/");  // S3 keys may hold all of that
  BOOST_TEST(canonical_path("/a//./b/../c/", true, false) == "/a/c/");
  BOOST_TEST(canonical_path("/a/b/..", true, true) == "/a");
  BOOST_TEST(canonical_path("/../..", true, true) == "/");
  BOOST_TEST(canonical_path("", false, false) == "/");
}

BOOST_AUTO_TEST_CASE(uri_encoding) {
  BOOST_TEST(s3::uri_encode("AZaz09-._~") == "AZaz09-._~");
  BOOST_TEST(s3::uri_encode(" /+=&%\xE1\x88\xB4") == "%20%2F%2B%3D%26%25%E1%88%B4");
  BOOST_TEST(s3::uri_encode("a/b c", true) == "a/b%20c");
  BOOST_TEST(s3::uri_decode("%E1%88%b4+%zz%4") == "\xE1\x88\xB4+%zz%4");
}

BOOST_AUTO_TEST_CASE(refuses_what_it_cannot_sign_safely) {
  s3::SignRequest r;
  r.method = "PUT";
  r.path = "/k";
  r.headers = {{"Host", "h"}};
  r.payload_hash = std::string(s3::kUnsignedPayload);
  const s3::Credentials keys{"AK", "SK", "token"};
  const auto o = s3::s3_options("r", {});
  BOOST_CHECK_NO_THROW(s3::sign_headers(r, keys, o));

  for (const char* name : {"Authorization", "X-Amz-Date", "x-amz-security-token", "X-Amz-Content-SHA256"}) {
    BOOST_TEST_CONTEXT(name) {
      auto twice = r;
      twice.headers.push_back({name, "x"});
      BOOST_CHECK_THROW(s3::sign_headers(twice, keys, o), std::invalid_argument);
    }
  }
  auto split = r;
  split.headers.push_back({"x-amz-meta-note", "a\r\nX-Injected: 1"});
  BOOST_CHECK_THROW(s3::sign_headers(split, keys, o), std::invalid_argument);

  auto no_host = r;
  no_host.headers.clear();
  BOOST_CHECK_THROW(s3::sign_headers(no_host, keys, o), std::invalid_argument);

  auto presigned_twice = r;
  presigned_twice.query = {{"X-Amz-Signature", "0"}};
  BOOST_CHECK_THROW(s3::presign(presigned_twice, keys, o), std::invalid_argument);

  auto forever = o;
  forever.expires = std::chrono::hours(24 * 8);
  BOOST_CHECK_THROW(s3::presign(r, keys, forever), std::invalid_argument);
}

BOOST_AUTO_TEST_CASE(session_token_left_unsigned_is_still_sent) {
  s3::SignRequest r;
  r.method = "GET";
  r.path = "/";
  r.headers = {{"Host", "h"}};
  r.payload_hash = std::string(s3::kUnsignedPayload);
  auto o = s3::s3_options("r", {});
  o.sign_session_token = false;
  const auto h = s3::sign_headers(r, {"AK", "SK", "tok"}, o);
  BOOST_TEST(h.canonical_request.find("x-amz-security-token") == std::string::npos);
  BOOST_TEST((h.add_headers.front() == s3::Header{"X-Amz-Security-Token", "tok"}));
  const auto q = s3::presign(r, {"AK", "SK", "tok"}, o);
  BOOST_TEST(q.canonical_request.find("X-Amz-Security-Token") == std::string::npos);
  BOOST_TEST(q.add_query_string.find("&X-Amz-Security-Token=tok&") != std::string::npos);
}

BOOST_AUTO_TEST_SUITE_END()
