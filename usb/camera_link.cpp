#include "usb/camera_link.hpp"

#include <string>

namespace bodydock::usb {
namespace {

// boost::system::error_category has a protected non-virtual destructor by design (its
// categories are never deleted through a base pointer), which -Wnon-virtual-dtor flags.
#pragma GCC diagnostic push
#pragma GCC diagnostic ignored "-Wnon-virtual-dtor"
class LinkCategory final : public boost::system::error_category {
 public:
  const char* name() const noexcept override { return "bodydock.link"; }
  std::string message(int ev) const override {
    switch (static_cast<link_errc>(ev)) {
      case link_errc::disconnected: return "camera disconnected";
      case link_errc::timed_out: return "camera did not answer in time";
      case link_errc::closed: return "link closed";
      case link_errc::overflow: return "camera sent more than requested";
    }
    return "unknown link error";
  }
};
#pragma GCC diagnostic pop

}  // namespace

const boost::system::error_category& link_category() noexcept {
  static const LinkCategory category;
  return category;
}

}  // namespace bodydock::usb
