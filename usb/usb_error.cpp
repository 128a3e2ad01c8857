#include "usb/usb_error.hpp"

#include <libusb.h>

#include <string>

namespace bodydock::usb {
namespace {

// boost::system::error_category has a protected non-virtual destructor by design (its
// categories are never deleted through a base pointer), which -Wnon-virtual-dtor flags.
#pragma GCC diagnostic push
#pragma GCC diagnostic ignored "-Wnon-virtual-dtor"
class LibusbCategory final : public boost::system::error_category {
 public:
  const char* name() const noexcept override { return "libusb"; }
  std::string message(int ev) const override { return libusb_strerror(ev); }
};

class TransferCategory final : public boost::system::error_category {
 public:
  const char* name() const noexcept override { return "libusb.transfer"; }
  std::string message(int ev) const override {
    switch (ev) {
      case LIBUSB_TRANSFER_COMPLETED: return "completed";
      case LIBUSB_TRANSFER_ERROR: return "transfer failed";
      case LIBUSB_TRANSFER_TIMED_OUT: return "transfer timed out";
      case LIBUSB_TRANSFER_CANCELLED: return "transfer cancelled";
      case LIBUSB_TRANSFER_STALL: return "endpoint stalled";
      case LIBUSB_TRANSFER_NO_DEVICE: return "device disconnected";
      case LIBUSB_TRANSFER_OVERFLOW: return "device sent more than requested";
    }
    return "unknown transfer status " + std::to_string(ev);
  }
};
#pragma GCC diagnostic pop

}  // namespace

const boost::system::error_category& libusb_category() noexcept {
  static const LibusbCategory category;
  return category;
}

const boost::system::error_category& transfer_category() noexcept {
  static const TransferCategory category;
  return category;
}

}  // namespace bodydock::usb
