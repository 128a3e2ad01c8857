#pragma once
// Test support: the S3 endpoint and keys of the Ceph RGW that ./tools/test-all starts
// (tests/rgw/rgw-up exports them in the standard AWS_* variables, its TLS endpoint and private
// CA in RGW_TLS_ENDPOINT_URL and RGW_CA_FILE).

#include "dock/s3/client.hpp"

#include <boost/test/unit_test.hpp>

#include <cstdlib>
#include <string>

namespace bodydock::test {

inline std::string rgw_env(const char* name) {
  const char* v = std::getenv(name);
  BOOST_REQUIRE_MESSAGE(v && *v, name << " is not set: run the S3 tests through ./tools/test-all, which starts a Ceph RGW");
  return v;
}

inline s3::Endpoint rgw_endpoint() { return s3::Endpoint::parse(rgw_env("AWS_ENDPOINT_URL"), rgw_env("AWS_REGION")); }
inline s3::Credentials rgw_credentials() { return {rgw_env("AWS_ACCESS_KEY_ID"), rgw_env("AWS_SECRET_ACCESS_KEY"), {}}; }

/// The throw-away CA (PEM) that signed the RGW's TLS certificate.
inline std::string rgw_ca_file() { return rgw_env("RGW_CA_FILE"); }
/// https://localhost:TLSPORT, trusting only the RGW's private CA.
inline s3::Endpoint rgw_tls_endpoint() {
  auto e = s3::Endpoint::parse(rgw_env("RGW_TLS_ENDPOINT_URL"), rgw_env("AWS_REGION"));
  e.ca_file = rgw_ca_file();
  return e;
}
/// Virtual-host style (BUCKET.localhost): rgw-up sets rgw_dns_name = localhost. The client
/// connects to localhost and sends Host: BUCKET.localhost, so no name needs to be in DNS.
inline s3::Endpoint rgw_virtual_host_endpoint(bool tls) {
  auto e = tls ? rgw_tls_endpoint() : rgw_endpoint();
  e.host = "localhost";
  e.path_style = false;
  return e;
}
/// The one bucket whose virtual-host name the RGW's certificate carries
/// (DNS:bodydock-vhost.localhost; OpenSSL does not let *.localhost match: a wildcard needs
/// two labels after it).
inline constexpr const char* kRgwTlsVirtualHostBucket = "bodydock-vhost";

}  // namespace bodydock::test
