#include "hw/emulated_link.hpp"

#include "proto/frame.hpp"

#include <boost/asio/steady_timer.hpp>
#include <boost/asio/use_awaitable.hpp>

#include <algorithm>

namespace bodydock::hw {

using boost::system::error_code;
using usb::link_errc;

EmulatedLink::EmulatedLink(boost::asio::any_io_executor ex, CameraDevice& device, std::string where, LinkFaults faults)
    : ex_(std::move(ex)), device_(device), where_(std::move(where)), faults_(faults), arrived_(ex_) {
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

boost::asio::awaitable<bool> EmulatedLink::sleep_until(std::chrono::steady_clock::time_point until) {
  boost::asio::steady_timer timer(ex_);
  while (!closed_ && !unplugged_ && std::chrono::steady_clock::now() < until) {
    timer.expires_at(std::min(until, std::chrono::steady_clock::now() + std::chrono::milliseconds(20)));
    co_await timer.async_wait(boost::asio::use_awaitable);
  }
  co_return !closed_ && !unplugged_;
}

boost::asio::awaitable<error_code> EmulatedLink::read(proto::Bytes& out) {
  for (;;) {
    if (stalled_until_) {
      const auto until = *stalled_until_;
      if (!co_await sleep_until(until)) continue;  // closed or unplugged: said below
      stalled_until_.reset();
    }
    if (closed_) co_return link_errc::closed;
    if (unplugged_) co_return link_errc::disconnected;
    if (flooding_) {
      // Frames nobody asked for, as fast as the host takes them.
      static const proto::Bytes junk(4096, 0xA5);
      const auto frame = proto::encode_frame(proto::MsgType::data, 0xF100D000u + static_cast<std::uint32_t>(delivered_ & 0xFFF), junk);
      out.insert(out.end(), frame->begin(), frame->end());
      delivered_ += frame->size();
      co_return error_code{};
    }
    if (!hung_ && inbox_pos_ < inbox_.size()) break;
    co_await arrived_.wait();
  }
  std::size_t n = std::min(kInTransfer, inbox_.size() - inbox_pos_);
  if (faults_.max_in_transfer) n = std::min(n, *faults_.max_in_transfer);
  // Cuts the transfer at a fault's byte; true when it falls in this transfer.
  auto cut_at = [&](std::optional<std::uint64_t>& at) {
    if (!at || delivered_ + n < *at) return false;
    n = static_cast<std::size_t>(*at - std::min(delivered_, *at));
    return true;
  };
  if (cut_at(faults_.unplug_after_bytes)) unplugged_ = true;
  if (cut_at(faults_.hang_after_bytes)) hung_ = true;
  if (cut_at(faults_.stall_after_bytes)) {
    faults_.stall_after_bytes.reset();
    stalled_until_ = std::chrono::steady_clock::now() + faults_.stall_time;
  }
  if (cut_at(faults_.flood_after_bytes)) {
    faults_.flood_after_bytes.reset();
    flooding_ = true;
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
  if (n == 0 && (stalled_until_ || flooding_)) co_return co_await read(out);
  if (faults_.in_mbps && n > 0) {
    // Paced from the first byte: the transfer completes when the link would have carried it.
    if (!paced_from_) paced_from_ = std::chrono::steady_clock::now();
    paced_bytes_ += n;
    const auto due = *paced_from_ + std::chrono::microseconds(static_cast<std::int64_t>(static_cast<double>(paced_bytes_) / *faults_.in_mbps));
    if (!co_await sleep_until(due)) co_return closed_ ? link_errc::closed : link_errc::disconnected;
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
