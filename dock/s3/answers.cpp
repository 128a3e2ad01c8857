#include "dock/s3/answers.hpp"

#include <algorithm>
#include <cctype>
#include <ctime>
#include <string>

namespace bodydock::s3 {

std::string xml_field(std::string_view xml, std::string_view tag) {
  const std::string open = "<" + std::string(tag) + ">";
  const std::string close = "</" + std::string(tag) + ">";
  const auto a = xml.find(open);
  if (a == std::string_view::npos) return {};
  const auto b = xml.find(close, a + open.size());
  if (b == std::string_view::npos) return {};
  return std::string(xml.substr(a + open.size(), b - a - open.size()));
}

std::vector<std::string> xml_all(std::string_view xml, std::string_view tag) {
  std::vector<std::string> out;
  const std::string open = "<" + std::string(tag) + ">";
  const std::string close = "</" + std::string(tag) + ">";
  for (std::size_t at = 0;;) {
    const auto a = xml.find(open, at);
    if (a == std::string_view::npos) break;
    const auto b = xml.find(close, a + open.size());
    if (b == std::string_view::npos) break;
    out.emplace_back(xml.substr(a + open.size(), b - a - open.size()));
    at = b + close.size();
  }
  return out;
}

std::string bare_etag(std::string e) {
  for (const std::string_view q : {std::string_view("&quot;"), std::string_view("&#34;"), std::string_view("\"")}) {
    for (auto at = e.find(q); at != std::string::npos; at = e.find(q)) e.erase(at, q.size());
  }
  return e;
}

namespace {

/// The five XML entities and numeric character references (&#34; &#x22;), as S3 escapes keys.
std::string xml_unescape(std::string_view s) {
  std::string out;
  out.reserve(s.size());
  for (std::size_t i = 0; i < s.size(); ++i) {
    const auto semi = s[i] == '&' ? s.find(';', i) : std::string_view::npos;
    if (semi == std::string_view::npos) {
      out.push_back(s[i]);
      continue;
    }
    const auto entity = s.substr(i + 1, semi - i - 1);
    unsigned long code = 0;
    if (entity == "amp") code = '&';
    else if (entity == "lt") code = '<';
    else if (entity == "gt") code = '>';
    else if (entity == "quot") code = '"';
    else if (entity == "apos") code = '\'';
    else if (entity.size() > 1 && entity[0] == '#') {
      const bool is_hex = entity[1] == 'x' || entity[1] == 'X';
      const auto digits = entity.substr(is_hex ? 2 : 1);
      const bool valid = !digits.empty() && digits.size() <= 6 && std::all_of(digits.begin(), digits.end(), [is_hex](char c) {
        return is_hex ? std::isxdigit(static_cast<unsigned char>(c)) != 0 : std::isdigit(static_cast<unsigned char>(c)) != 0;
      });
      if (valid) code = std::stoul(std::string(digits), nullptr, is_hex ? 16 : 10);
    }
    if (code == 0 || code > 0x10FFFF) {  // not an entity we know: keep the text as it is
      out.push_back(s[i]);
      continue;
    }
    if (code < 0x80) {  // UTF-8
      out.push_back(static_cast<char>(code));
    } else if (code < 0x800) {
      out.push_back(static_cast<char>(0xC0 | (code >> 6)));
      out.push_back(static_cast<char>(0x80 | (code & 0x3F)));
    } else if (code < 0x10000) {
      out.push_back(static_cast<char>(0xE0 | (code >> 12)));
      out.push_back(static_cast<char>(0x80 | ((code >> 6) & 0x3F)));
      out.push_back(static_cast<char>(0x80 | (code & 0x3F)));
    } else {
      out.push_back(static_cast<char>(0xF0 | (code >> 18)));
      out.push_back(static_cast<char>(0x80 | ((code >> 12) & 0x3F)));
      out.push_back(static_cast<char>(0x80 | ((code >> 6) & 0x3F)));
      out.push_back(static_cast<char>(0x80 | (code & 0x3F)));
    }
    i = semi;
  }
  return out;
}

}  // namespace

std::vector<MultipartUpload> multipart_uploads(std::string_view xml) {
  constexpr std::string_view open = "<Upload>", close = "</Upload>";
  std::vector<MultipartUpload> out;
  for (auto a = xml.find(open); a != std::string_view::npos; a = xml.find(open, a)) {
    const auto b = xml.find(close, a + open.size());
    if (b == std::string_view::npos) break;
    const auto upload = xml.substr(a + open.size(), b - a - open.size());
    out.push_back({xml_unescape(xml_field(upload, "Key")), xml_unescape(xml_field(upload, "UploadId"))});
    a = b + close.size();
  }
  return out;
}

std::optional<std::chrono::system_clock::time_point> http_date(std::string_view text) {
  // IMF-fixdate, e.g. "Sun, 29 Nov 2026 23:08:20 GMT" (RFC 9110 5.6.7); S3 sends no other form.
  std::tm tm{};
  const std::string s(text);
  const char* end = ::strptime(s.c_str(), "%a, %d %b %Y %H:%M:%S GMT", &tm);
  if (!end || *end != '\0') return std::nullopt;
  // No server's clock shows a year outside this, and system_clock (nanoseconds in 64 bits)
  // cannot hold one past 2262: a broken or hostile server's "Date: ... 4052 ..." is no date.
  if (tm.tm_year < 70 || tm.tm_year > 2199 - 1900) return std::nullopt;
  const auto t = ::timegm(&tm);
  if (t == static_cast<std::time_t>(-1)) return std::nullopt;
  return std::chrono::system_clock::from_time_t(t);
}

}  // namespace bodydock::s3
