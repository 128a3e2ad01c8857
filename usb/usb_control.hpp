#pragma once
/// Control transfers on endpoint 0, asynchronously inside the event loop (the same libusb
/// bridge as bulk transfers: no synchronous libusb call that would run event handling on its
/// own). Used for hub-class requests (port power, port status).

#include <boost/asio/awaitable.hpp>
#include <boost/system/result.hpp>

#include <chrono>
#include <cstdint>
#include <vector>

struct libusb_device_handle;

namespace bodydock::usb {

struct ControlRequest {
  std::uint8_t request_type = 0;       ///< bmRequestType; bit 7 set = device to host
  std::uint8_t request = 0;            ///< bRequest
  std::uint16_t value = 0;             ///< wValue
  std::uint16_t index = 0;             ///< wIndex
  std::uint16_t length = 0;            ///< wLength: bytes wanted (IN) or sent (OUT, from `data`)
  std::vector<std::uint8_t> data;      ///< OUT data stage
};

/// Runs one control transfer; libusb applies `timeout`. Yields the IN data stage (empty for
/// OUT requests). A stall (the device refuses the request) is transfer status STALL; a device
/// that is gone is link_errc::disconnected. Cancellable: a cancelled wait cancels the transfer.
boost::asio::awaitable<boost::system::result<std::vector<std::uint8_t>>> control_transfer(libusb_device_handle* handle,
                                                                                          ControlRequest request,
                                                                                          std::chrono::milliseconds timeout);

}  // namespace bodydock::usb
