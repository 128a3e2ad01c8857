#pragma once
/// In-process link to a CameraDevice: the fast lane for tests and the demo. It behaves like a
/// bulk pipe: OUT transfers reach the device at once, the device's answers queue on IN, and a
/// read takes at most one transfer's worth. Link faults: unplug after N bytes sent to the host,
/// hang (device goes silent) after N bytes, a stall (silent for a while, then on), short IN
/// transfers, a slow link, garbage injected into the stream, and a flood of frames nobody asked
/// for. Scenario files (dock/scenario.hpp) drive them.

#include "hw/camera_device.hpp"
#include "usb/async_event.hpp"
#include "usb/camera_link.hpp"

#include <boost/asio/any_io_executor.hpp>

#include <chrono>
#include <optional>

namespace bodydock::hw {

struct LinkFaults {
  std::optional<std::uint64_t> unplug_after_bytes;
  std::optional<std::uint64_t> hang_after_bytes;
  /// A hostile or broken device: 16 bytes of garbage injected into the IN stream at this offset.
  std::optional<std::uint64_t> garbage_at_bytes;
  /// A stall: after this many bytes the device says nothing for stall_ms, then carries on.
  std::optional<std::uint64_t> stall_after_bytes;
  std::chrono::milliseconds stall_time{0};
  /// Short packets: every IN transfer carries at most this many bytes.
  std::optional<std::size_t> max_in_transfer;
  /// A slow link: IN paced to this many MB/s (10^6 bytes).
  std::optional<double> in_mbps;
  /// A hostile device: after this many bytes it pushes well-formed DATA frames that answer no
  /// request, one per IN transfer, and never stops.
  std::optional<std::uint64_t> flood_after_bytes;
};

class EmulatedLink final : public usb::CameraLink {
 public:
  static constexpr std::size_t kInTransfer = 1u << 20;

  EmulatedLink(boost::asio::any_io_executor ex, CameraDevice& device, std::string where, LinkFaults faults = {});

  boost::asio::awaitable<boost::system::error_code> write(proto::ByteView bytes) override;
  boost::asio::awaitable<boost::system::error_code> read(proto::Bytes& out) override;
  void close() override;
  [[nodiscard]] std::string describe() const override { return where_; }

  /// Pulls the camera out: pending and later operations fail with link_errc::disconnected.
  void unplug();
  [[nodiscard]] bool unplugged() const { return unplugged_; }
  [[nodiscard]] std::uint64_t delivered() const { return delivered_; }

 private:
  /// Sleeps until `until` in short steps, so a close or unplug is seen; false when it was.
  boost::asio::awaitable<bool> sleep_until(std::chrono::steady_clock::time_point until);

  boost::asio::any_io_executor ex_;
  CameraDevice& device_;
  std::string where_;
  LinkFaults faults_;
  usb::AsyncEvent arrived_;
  proto::Bytes inbox_;
  std::size_t inbox_pos_ = 0;
  std::uint64_t delivered_ = 0;
  bool unplugged_ = false;
  bool hung_ = false;
  bool closed_ = false;
  std::optional<std::chrono::steady_clock::time_point> stalled_until_;
  bool flooding_ = false;
  std::optional<std::chrono::steady_clock::time_point> paced_from_;  ///< slow link: when the first IN byte went
  std::uint64_t paced_bytes_ = 0;
};

}  // namespace bodydock::hw
