#pragma once
/// What the dock reads out of S3 storage's answers: fields of the XML bodies, ETags and the Date
/// header. Plain functions over text, apart from the client, so the fuzz target
/// (tests/fuzz/s3_fuzz.cpp) builds them without the HTTP stack.

#include <chrono>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

namespace bodydock::s3 {

/// The text between <tag> and </tag> (first occurrence), empty if absent. S3's XML is simple
/// enough for this; nothing here parses untrusted XML beyond extracting a field.
std::string xml_field(std::string_view xml, std::string_view tag);
/// Every <tag>...</tag> in order (ListParts has one <Part> per part).
std::vector<std::string> xml_all(std::string_view xml, std::string_view tag);
/// An ETag without its quotes: servers write them as ", &quot; or &#34; (in headers and XML).
std::string bare_etag(std::string etag);

/// One multipart upload the server holds (started, neither completed nor aborted).
struct MultipartUpload {
  std::string key;        ///< XML entities decoded
  std::string upload_id;
  friend bool operator==(const MultipartUpload&, const MultipartUpload&) = default;
};
/// Every <Upload> of a ListMultipartUploads answer, in order. One page: the server lists at
/// most 1000 (xml_field(body, "IsTruncated") says whether there are more).
std::vector<MultipartUpload> multipart_uploads(std::string_view list_xml);

/// An HTTP Date header (IMF-fixdate) of a year 1970..2199; nullopt if it is not one.
std::optional<std::chrono::system_clock::time_point> http_date(std::string_view text);

}  // namespace bodydock::s3
