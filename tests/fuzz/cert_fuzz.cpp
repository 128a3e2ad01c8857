// libFuzzer target over the certificates and CRLs the dock parses (proto/crypto): a camera's or
// a dock's DER certificate checked against a fleet CA and CRL (TrustAnchor::check, what every
// docking runs on the certificate a camera sends), and a CA and CRL read from PEM
// (TrustAnchor::from_pem, what the dock runs on its trust directory). Beyond ASan and UBSan it
// checks that a bad input is refused with a reason (a CryptoError or a text), never anything else.
//
// Input: byte 0 picks the check (0 a camera certificate, 1 a dock certificate, 2 a CA PEM and a
// CRL PEM separated by a zero byte). The fleet CA and CRL are tests/fuzz/data/fleet-*.
#include "proto/crypto.hpp"

#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <fstream>
#include <optional>
#include <sstream>
#include <string>
#include <variant>

using namespace bodydock::proto;

namespace {

std::optional<crypto::TrustAnchor> fleet;

std::string slurp(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  std::ostringstream s;
  s << in.rdbuf();
  if (!in) {
    std::fprintf(stderr, "cert_fuzz: cannot read %s\n", path.c_str());
    std::abort();
  }
  return s.str();
}

}  // namespace

extern "C" int LLVMFuzzerInitialize(int*, char***) {
  const std::string dir = BODYDOCK_FUZZ_DATA;
  fleet = crypto::TrustAnchor::from_pem(slurp(dir + "/fleet-ca.crt"), slurp(dir + "/fleet-crl.pem"));
  return 0;
}

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  if (size < 1) return 0;
  const ByteView rest(data + 1, size - 1);
  switch (data[0] % 3) {
    case 0:
    case 1: {
      const auto result = fleet->check(rest, data[0] % 3 == 0 ? "camera" : "dock");
      if (const auto* why = std::get_if<std::string>(&result); why && why->empty()) {
        std::fputs("cert_fuzz: a certificate refused without a reason\n", stderr);
        std::abort();
      }
      break;
    }
    default: {
      const std::string text(rest.begin(), rest.end());
      const auto split = text.find('\0');
      try {
        (void)crypto::TrustAnchor::from_pem(text.substr(0, split), split == std::string::npos ? std::string() : text.substr(split + 1));
      } catch (const crypto::CryptoError&) {
      }
      break;
    }
  }
  return 0;
}
