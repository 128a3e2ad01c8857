#pragma once
/// A level-triggered wake-up for coroutines on one io_context thread: wait() suspends until
/// notify() (or returns at once if notified since the last wait). Built on a steady_timer, so a
/// waiter honours per-operation cancellation and can be raced against a deadline with `||`.

#include <boost/asio/as_tuple.hpp>
#include <boost/asio/awaitable.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/asio/use_awaitable.hpp>

namespace bodydock::usb {

class AsyncEvent {
 public:
  explicit AsyncEvent(const boost::asio::any_io_executor& ex) : timer_(ex, boost::asio::steady_timer::time_point::max()) {}

  void notify() {
    pending_ = true;
    timer_.cancel();
  }

  /// Several coroutines may wait at once; notify() wakes them all. (The expiry is never
  /// reset: expires_at() would cancel the other waiters and make them wake each other.)
  boost::asio::awaitable<void> wait() {
    if (!pending_) co_await timer_.async_wait(boost::asio::as_tuple(boost::asio::use_awaitable));
    pending_ = false;
  }

 private:
  boost::asio::steady_timer timer_;
  bool pending_ = false;
};

}  // namespace bodydock::usb
