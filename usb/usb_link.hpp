#pragma once
/// The camera link over real USB: a claimed vendor-specific interface (class 0xFF) with one bulk
/// OUT and one bulk IN endpoint. Several IN transfers stay submitted at all times, so the bus is
/// never idle while the dock processes a frame; a read() takes the oldest completed one. A stall
/// is cleared and the transfer resubmitted; NO_DEVICE turns into link_errc::disconnected.
/// Call shutdown() (awaitable) before destroying: libusb transfers are never freed in flight.

#include "usb/async_event.hpp"
#include "usb/camera_link.hpp"

#include <boost/system/result.hpp>

#include <cstdint>
#include <deque>
#include <memory>
#include <vector>

struct libusb_device;
struct libusb_device_handle;
struct libusb_transfer;

namespace bodydock::usb {

/// What identifies a bodydock camera on the bus.
struct CameraMatch {
  std::vector<std::pair<std::uint16_t, std::uint16_t>> vid_pid;  ///< accepted (VID, PID); empty = any
  std::uint8_t interface_class = 0xFF;
};

/// The camera interface found on a device: interface number and its bulk endpoints.
struct CameraInterface {
  int number = -1;
  std::uint8_t ep_in = 0;
  std::uint8_t ep_out = 0;
};

/// Checks VID/PID and looks for the vendor interface; the error says why a device is not one.
boost::system::result<CameraInterface> match_camera(libusb_device* dev, const CameraMatch& match, std::string& why_not);

struct UsbLinkOptions {
  std::size_t transfer_size = std::size_t{256} * 1024;  ///< bytes per IN transfer
  unsigned in_flight = 4;                               ///< IN transfers kept submitted
};

class UsbCameraLink final : public CameraLink {
 public:
  /// Opens the device and claims the interface.
  static boost::system::result<std::unique_ptr<UsbCameraLink>> open(const boost::asio::any_io_executor& ex, libusb_device* dev,
                                                                     const CameraInterface& iface, UsbLinkOptions options,
                                                                     std::string where);
  ~UsbCameraLink() override;

  boost::asio::awaitable<boost::system::error_code> write(proto::ByteView bytes) override;
  boost::asio::awaitable<boost::system::error_code> read(proto::Bytes& out) override;
  void close() override;
  [[nodiscard]] std::string describe() const override { return where_; }

  /// The device went away (hotplug removal): everything pending fails with disconnected.
  void device_gone();
  /// Cancels every transfer and waits until libusb has handed each back, then releases.
  boost::asio::awaitable<void> shutdown();
  [[nodiscard]] unsigned stalls_cleared() const { return stalls_cleared_; }

 private:
  struct Transfer;
  UsbCameraLink(const boost::asio::any_io_executor& ex, libusb_device_handle* handle, CameraInterface iface, UsbLinkOptions options,
                std::string where);
  static void on_complete(libusb_transfer* t);
  boost::system::error_code submit(Transfer& t);
  boost::system::error_code refill();
  [[nodiscard]] bool any_busy() const;

  libusb_device_handle* handle_;
  CameraInterface iface_;
  UsbLinkOptions options_;
  std::string where_;
  AsyncEvent changed_;
  std::vector<std::unique_ptr<Transfer>> in_;   ///< all IN transfers
  std::deque<Transfer*> in_order_;              ///< submitted, oldest first
  std::unique_ptr<Transfer> out_;
  bool closed_ = false;
  bool gone_ = false;
  unsigned stalls_cleared_ = 0;
};

}  // namespace bodydock::usb
