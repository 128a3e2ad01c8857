#pragma once
/// libusb results as boost::system error codes, in two categories: `libusb_error` (what a call
/// returned) and `libusb_transfer_status` (how an asynchronous transfer ended).

#include <boost/system/error_code.hpp>

namespace bodydock::usb {

const boost::system::error_category& libusb_category() noexcept;
const boost::system::error_category& transfer_category() noexcept;

/// From a negative libusb_error return value.
inline boost::system::error_code libusb_error_code(int rc) noexcept { return {rc, libusb_category()}; }
/// From a libusb_transfer_status (0 = completed is never an error).
inline boost::system::error_code transfer_error_code(int status) noexcept { return {status, transfer_category()}; }

}  // namespace bodydock::usb
