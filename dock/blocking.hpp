#pragma once
/// Runs blocking work (SQLite, fsync, hashing a spool file) on a thread pool and resumes the
/// awaiting coroutine on its own executor, so the io_context thread never blocks.
/// Exceptions thrown by the work are rethrown in the coroutine.
///
/// Deliberately a plain function, not a coroutine: g++ 12 mishandles class-type prvalue
/// arguments of coroutines (a lambda passed straight into a coroutine is destroyed twice), so
/// the work object is moved into the initiation instead of a coroutine frame.

#include <boost/asio/associated_executor.hpp>
#include <boost/asio/async_result.hpp>
#include <boost/asio/awaitable.hpp>
#include <boost/asio/post.hpp>
#include <boost/asio/thread_pool.hpp>
#include <boost/asio/use_awaitable.hpp>

#include <exception>
#include <type_traits>

namespace bodydock::dock {

template <typename F>
auto run_blocking(boost::asio::thread_pool& pool, F work) {
  using R = std::invoke_result_t<F&>;
  using Value = std::conditional_t<std::is_void_v<R>, bool, R>;
  static_assert(std::is_default_constructible_v<Value>, "blocking work must return a default-constructible value");
  auto initiate = [&pool](auto handler, F fn) {
    auto home = boost::asio::get_associated_executor(handler);
    boost::asio::post(pool, [handler = std::move(handler), fn = std::move(fn), home]() mutable {
      std::exception_ptr error;
      Value value{};
      try {
        if constexpr (std::is_void_v<R>) {
          fn();
        } else {
          value = fn();
        }
      } catch (...) {
        error = std::current_exception();
      }
      boost::asio::post(home, [handler = std::move(handler), error, value = std::move(value)]() mutable {
        std::move(handler)(error, std::move(value));
      });
    });
  };
  return boost::asio::async_initiate<decltype(boost::asio::use_awaitable), void(std::exception_ptr, Value)>(
      std::move(initiate), boost::asio::use_awaitable, std::move(work));
}

}  // namespace bodydock::dock
