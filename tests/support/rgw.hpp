#pragma once
// Test support: the S3 endpoint and keys of the Ceph RGW that ./tools/test-all starts
// (tests/rgw/rgw-up exports them in the standard AWS_* variables).

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

}  // namespace bodydock::test
