#include "proto/errors.hpp"

#include <string>

namespace bodydock::proto {
namespace {

// boost::system::error_category has a protected non-virtual destructor by design (its
// categories are never deleted through a base pointer), which -Wnon-virtual-dtor flags.
#pragma GCC diagnostic push
#pragma GCC diagnostic ignored "-Wnon-virtual-dtor"
class ProtoCategory final : public boost::system::error_category {
 public:
  const char* name() const noexcept override { return "bodydock.proto"; }
  std::string message(int ev) const override {
    return std::string(errc_name(static_cast<errc>(ev)));
  }
};
#pragma GCC diagnostic pop

}  // namespace

const boost::system::error_category& proto_category() noexcept {
  static const ProtoCategory category;
  return category;
}

std::string_view errc_name(errc e) noexcept {
  switch (e) {
    case errc::ok: return "ok";
    case errc::malformed_frame: return "malformed frame";
    case errc::unsupported_version: return "unsupported protocol version";
    case errc::unknown_type: return "unknown frame type";
    case errc::too_large: return "over a size limit";
    case errc::bad_request: return "bad request";
    case errc::not_found: return "no such segment";
    case errc::out_of_range: return "offset or length out of range";
    case errc::busy: return "busy";
    case errc::not_authenticated: return "not authenticated";
    case errc::receipt_rejected: return "custody receipt rejected";
    case errc::storage_full: return "device storage full";
    case errc::internal: return "internal device error";
    case errc::bad_state: return "request out of order";
    case errc::truncated: return "truncated payload";
    case errc::auth_failed: return "authentication failed";
  }
  return "unknown protocol error";
}

}  // namespace bodydock::proto
