#pragma once
/// The camera link: what every layer above USB talks to. A link moves whole bulk transfers:
/// write() is one OUT transfer carrying one or more frames, read() waits for the next IN
/// transfer. Implementations: the real libusb link (usb/), and the in-process emulator link
/// (hw/emulated_link). Both report unplug as link_errc::disconnected and honour per-operation
/// cancellation, so a caller can race any operation against a deadline.

#include "proto/wire.hpp"

#include <boost/asio/awaitable.hpp>
#include <boost/system/error_code.hpp>

#include <string>
#include <type_traits>

namespace bodydock::usb {

enum class link_errc {
  disconnected = 1,  ///< device gone (unplugged, powered off, NO_DEVICE)
  timed_out = 2,     ///< no answer within the deadline
  closed = 3,        ///< the link was closed locally
  overflow = 4,      ///< device sent more than it was asked for
};

const boost::system::error_category& link_category() noexcept;
inline boost::system::error_code make_error_code(link_errc e) noexcept { return {static_cast<int>(e), link_category()}; }

class CameraLink {
 public:
  virtual ~CameraLink() = default;

  /// One OUT transfer. Completes when the device has taken the bytes.
  virtual boost::asio::awaitable<boost::system::error_code> write(proto::ByteView bytes) = 0;
  /// One IN transfer, appended to `out`. Cancellable; waits as long as the device is silent.
  virtual boost::asio::awaitable<boost::system::error_code> read(proto::Bytes& out) = 0;
  /// Drops the link: pending and later operations complete with link_errc::closed.
  virtual void close() = 0;
  /// Where the camera is, for logs: a USB port path or "emulated:<slot>".
  [[nodiscard]] virtual std::string describe() const = 0;
};

}  // namespace bodydock::usb

template <>
struct boost::system::is_error_code_enum<bodydock::usb::link_errc> : std::true_type {};
