#include "hw/emulated_link.hpp"

#include <algorithm>

namespace bodydock::hw {

using boost::system::error_code;
using usb::link_errc;

EmulatedLink::EmulatedLink(boost::asio::any_io_executor ex, CameraDevice& device, std::string where, LinkFaults faults)
    : device_(device), where_(std::move(where)), faults_(faults), arrived_(ex) {
  device_.reset_session();
}

boost::asio::awaitable<error_code> EmulatedLink::write(proto::ByteView bytes) {
  if (closed_) co_return link_errc::closed;
  if (unplugged_) co_return link_errc::disconnected;
  if (hung_) co_return error_code{};  // a hung device still ACKs at the USB level, then says nothing
  auto reply = device_.handle(bytes);
  if (faults_.garbage_at_bytes) {
    // Offset in the IN stream where this reply starts; inject once when the target falls in it.
    const auto start = delivered_ + (inbox_.size() - inbox_pos_);
    const auto at = *faults_.garbage_at_bytes;
    if (at >= start && at <= start + reply.size()) {
      reply.insert(reply.begin() + static_cast<std::ptrdiff_t>(at - start), 16, 0xEE);
      faults_.garbage_at_bytes.reset();
    }
  }
  if (inbox_pos_ == inbox_.size()) {
    inbox_ = std::move(reply);
    inbox_pos_ = 0;
  } else {
    inbox_.insert(inbox_.end(), reply.begin(), reply.end());
  }
  arrived_.notify();
  co_return error_code{};
}

boost::asio::awaitable<error_code> EmulatedLink::read(proto::Bytes& out) {
  for (;;) {
    if (closed_) co_return link_errc::closed;
    if (unplugged_) co_return link_errc::disconnected;
    if (!hung_ && inbox_pos_ < inbox_.size()) break;
    co_await arrived_.wait();
  }
  std::size_t n = std::min(kInTransfer, inbox_.size() - inbox_pos_);
  if (faults_.unplug_after_bytes && delivered_ + n >= *faults_.unplug_after_bytes) {
    n = static_cast<std::size_t>(*faults_.unplug_after_bytes - std::min(delivered_, *faults_.unplug_after_bytes));
    unplugged_ = true;
  }
  if (faults_.hang_after_bytes && delivered_ + n >= *faults_.hang_after_bytes) {
    n = static_cast<std::size_t>(*faults_.hang_after_bytes - std::min(delivered_, *faults_.hang_after_bytes));
    hung_ = true;
  }
  const auto begin = inbox_.begin() + static_cast<std::ptrdiff_t>(inbox_pos_);
  out.insert(out.end(), begin, begin + static_cast<std::ptrdiff_t>(n));
  inbox_pos_ += n;
  delivered_ += n;
  if (n == 0 && unplugged_) co_return link_errc::disconnected;
  if (n == 0 && hung_) {
    // Silent from now on: wait until closed or unplugged (the caller's deadline fires first).
    for (;;) {
      co_await arrived_.wait();
      if (closed_) co_return link_errc::closed;
      if (unplugged_) co_return link_errc::disconnected;
    }
  }
  co_return error_code{};
}

void EmulatedLink::close() {
  closed_ = true;
  arrived_.notify();
}

void EmulatedLink::unplug() {
  unplugged_ = true;
  arrived_.notify();
}

}  // namespace bodydock::hw
