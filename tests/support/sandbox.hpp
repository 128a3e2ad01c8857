#pragma once
// Test support: a private temporary directory per test, and an io_context runner with a
// watchdog so a stuck coroutine fails the test instead of hanging the suite.

#include <boost/asio/co_spawn.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/test/unit_test.hpp>

#include <chrono>
#include <cstdlib>
#include <exception>
#include <filesystem>
#include <fstream>
#include <string>

namespace bodydock::test {

class TempDir {
 public:
  TempDir() {
    std::string templ = (std::filesystem::temp_directory_path() / "bodydock-test-XXXXXX").string();
    if (::mkdtemp(templ.data()) == nullptr) throw std::runtime_error("mkdtemp failed");
    path_ = templ;
  }
  ~TempDir() {
    std::error_code ec;
    std::filesystem::remove_all(path_, ec);
  }
  TempDir(const TempDir&) = delete;
  TempDir& operator=(const TempDir&) = delete;
  [[nodiscard]] const std::filesystem::path& path() const { return path_; }
  std::filesystem::path operator/(const std::string& sub) const { return path_ / sub; }

 private:
  std::filesystem::path path_;
};

/// The whole text of a small file.
inline std::string slurp_text(const std::filesystem::path& p) {
  std::ifstream in(p, std::ios::binary);
  return {std::istreambuf_iterator<char>(in), std::istreambuf_iterator<char>()};
}

/// Runs `main` (an awaitable) on `ioc` until it completes; fails the test after `limit`.
template <typename Awaitable>
void run_with_watchdog(boost::asio::io_context& ioc, Awaitable main, std::chrono::seconds limit = std::chrono::seconds(60)) {
  bool finished = false;
  std::exception_ptr failure;
  boost::asio::co_spawn(ioc, std::move(main), [&](std::exception_ptr e) {
    finished = true;
    failure = e;
  });
  const auto deadline = std::chrono::steady_clock::now() + limit;
  while (!finished && std::chrono::steady_clock::now() < deadline) {
    ioc.run_for(std::chrono::milliseconds(100));
    if (ioc.stopped() && !finished) ioc.restart();
  }
  BOOST_REQUIRE_MESSAGE(finished, "watchdog: test coroutine did not finish within " << limit.count() << " s");
  if (failure) std::rethrow_exception(failure);
}

}  // namespace bodydock::test
