// libFuzzer target over what the dock reads from S3 storage's answers (dock/s3): the XML fields
// it takes from bodies (error codes, UploadId, ListParts parts and their ETags, the multipart
// uploads of ListMultipartUploads with their entity-decoded keys, ObjectLockEnabled), the Date
// header it follows storage's clock by, and percent-decoding. Beyond ASan and UBSan it checks
// that a field found is a piece of the body, and that a decoded key is no longer than its text.
#include "dock/s3/answers.hpp"
#include "dock/s3/sigv4.hpp"

#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <string>
#include <string_view>

using namespace bodydock;

namespace {

void require(bool ok, const char* what) {
  if (ok) return;
  std::fprintf(stderr, "s3_fuzz: %s\n", what);
  std::abort();
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  const std::string_view body(reinterpret_cast<const char*>(data), size);
  for (const std::string_view tag : {"Code", "Message", "UploadId", "ObjectLockEnabled", "IsTruncated", "ETag", "PartNumber"}) {
    const auto field = s3::xml_field(body, tag);
    require(field.empty() || body.find(field) != std::string_view::npos, "xml_field returned text that is not in the body");
  }
  std::size_t total = 0;
  for (const auto& part : s3::xml_all(body, "Part")) {
    total += part.size();
    require(body.find(part) != std::string_view::npos, "xml_all returned text that is not in the body");
    const auto etag = s3::bare_etag(s3::xml_field(part, "ETag"));
    require(etag.find('"') == std::string::npos, "bare_etag left a quote");
    (void)std::strtoul(s3::xml_field(part, "PartNumber").c_str(), nullptr, 10);
  }
  require(total <= size, "xml_all returned more text than the body holds");
  for (const auto& u : s3::multipart_uploads(body)) require(u.key.size() <= size && u.upload_id.size() <= size, "an upload longer than the body");
  (void)s3::http_date(body);
  require(s3::uri_decode(body).size() <= size, "percent-decoding made the text longer");
  return 0;
}
