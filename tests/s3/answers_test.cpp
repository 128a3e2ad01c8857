// What the dock reads out of S3 answers (dock/s3/answers): XML fields, ListParts parts, ETags
// without their quotes, entity-decoded upload keys, and the Date header, including the inputs
// the fuzz target (tests/fuzz/s3_fuzz.cpp) found or keeps as seeds.
#include "dock/s3/answers.hpp"

#include <boost/test/unit_test.hpp>

using namespace bodydock;

BOOST_AUTO_TEST_SUITE(s3_answers)

BOOST_AUTO_TEST_CASE(fields_parts_and_etags) {
  BOOST_TEST(s3::xml_field("<Error><Code>SlowDown</Code></Error>", "Code") == "SlowDown");
  BOOST_TEST(s3::xml_field("<Code>open", "Code") == "");
  BOOST_TEST(s3::xml_field("", "Code") == "");
  const auto parts = s3::xml_all("<Part><PartNumber>1</PartNumber></Part>x<Part>2</Part><Part>3", "Part");
  BOOST_REQUIRE_EQUAL(parts.size(), 2u);
  BOOST_TEST(parts[0] == "<PartNumber>1</PartNumber>");
  BOOST_TEST(parts[1] == "2");
  for (const auto* quoted : {"\"9b2c\"", "&quot;9b2c&quot;", "&#34;9b2c&#34;", "9b2c"}) BOOST_TEST(s3::bare_etag(quoted) == "9b2c");
}

BOOST_AUTO_TEST_CASE(upload_keys_are_entity_decoded_and_unknown_entities_kept) {
  const auto uploads = s3::multipart_uploads(
      "<Upload><Key>a&amp;b&#34;c&#x1F600;&lt;&gt;&apos;</Key><UploadId>2~a</UploadId></Upload>"
      "<Upload><Key>&#0;&#x110000;&bogus;&#xZZ;</Key><UploadId>2~b</UploadId></Upload><Upload><Key>cut");
  BOOST_REQUIRE_EQUAL(uploads.size(), 2u);
  BOOST_TEST(uploads[0].key == "a&b\"c\xF0\x9F\x98\x80<>'");
  BOOST_TEST(uploads[0].upload_id == "2~a");
  BOOST_TEST(uploads[1].key == "&#0;&#x110000;&bogus;&#xZZ;");
}

BOOST_AUTO_TEST_CASE(the_date_header_is_read_within_the_years_a_clock_can_show) {
  const auto t = s3::http_date("Fri, 04 Dec 2026 19:46:34 GMT");
  BOOST_REQUIRE(t);
  BOOST_TEST(std::chrono::duration_cast<std::chrono::seconds>(t->time_since_epoch()).count() == 1796413594);
  BOOST_TEST(!s3::http_date("Fri, 04 Dec 2026 19:46:34 GMT+1"));
  BOOST_TEST(!s3::http_date("yesterday"));
  // Found by the fuzz target: a year past 2262 overflowed system_clock (undefined behaviour).
  BOOST_TEST(!s3::http_date("Fri, 05 Dec 4052 19:46:34 GMT"));
  BOOST_TEST(!s3::http_date("Thu, 01 Jan 1960 00:00:00 GMT"));
  BOOST_TEST(s3::http_date("Sat, 31 Dec 2199 23:59:59 GMT").has_value());
}

BOOST_AUTO_TEST_SUITE_END()
