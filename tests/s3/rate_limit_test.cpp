// The upload bandwidth cap: schedule parsing (with errors naming the bad piece), which rate
// applies at which time of day, and the token bucket holding a sender to the rate: alone, and
// in a real upload to the RGW. (Lower bounds only: a cap must never be exceeded; how fast an
// uncapped upload goes is the benchmark's business.)
#include "dock/s3/client.hpp"
#include "dock/s3/rate_limit.hpp"
#include "support/rgw.hpp"
#include "support/sandbox.hpp"

#include <boost/asio/co_spawn.hpp>
#include <boost/asio/detached.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/test/unit_test.hpp>

#include <random>

using namespace bodydock;
namespace asio = boost::asio;
using Clock = std::chrono::steady_clock;

namespace {

asio::awaitable<void> send(s3::RateLimiter& limiter, std::size_t total, std::size_t slice) {
  for (std::size_t sent = 0; sent < total; sent += slice) co_await limiter.acquire(slice);
}

double seconds_to_send(s3::RateLimiter& limiter, std::size_t total, unsigned senders) {
  asio::io_context ioc;
  const auto t0 = Clock::now();
  for (unsigned i = 0; i < senders; ++i) asio::co_spawn(ioc, send(limiter, total / senders, 64 * 1024), asio::detached);
  ioc.run();
  return std::chrono::duration<double>(Clock::now() - t0).count();
}

}  // namespace

BOOST_AUTO_TEST_SUITE(rate_limit)

BOOST_AUTO_TEST_CASE(schedules_parse_and_name_what_is_wrong) {
  const auto s = s3::RateSchedule::parse("10", "06:30-08:00=2,22:00-05:00=50");
  BOOST_CHECK_EQUAL(s.mb_per_s, 10.0);
  BOOST_REQUIRE_EQUAL(s.windows.size(), 2u);
  BOOST_CHECK_EQUAL(s.rate_at(6 * 60 + 29), 10.0);
  BOOST_CHECK_EQUAL(s.rate_at(6 * 60 + 30), 2.0);  // shift change: the site's uplink is busy
  BOOST_CHECK_EQUAL(s.rate_at(7 * 60 + 59), 2.0);
  BOOST_CHECK_EQUAL(s.rate_at(8 * 60), 10.0);      // end is exclusive
  BOOST_CHECK_EQUAL(s.rate_at(23 * 60), 50.0);     // past midnight
  BOOST_CHECK_EQUAL(s.rate_at(4 * 60 + 59), 50.0);
  BOOST_CHECK_EQUAL(s.rate_at(5 * 60), 10.0);
  BOOST_CHECK_EQUAL(s3::RateSchedule::parse("0", "").rate_at(0), 0.0);  // no cap
  const std::pair<const char*, const char*> bad[] = {
      {"fast", ""}, {"-1", ""}, {"10", "06:30-08:00"}, {"10", "6:30-08:00=2"}, {"10", "06:30-24:00=2"},
      {"10", "06:30-06:30=2"}, {"10", "06:30-08:00=x"}, {"10", "06:30-08:00=2,"},
  };
  for (const auto& [rate, windows] : bad) {
    try {
      (void)s3::RateSchedule::parse(rate, windows);
      BOOST_ERROR("accepted '" << rate << "' '" << windows << "'");
    } catch (const std::invalid_argument& e) {
      const std::string msg = e.what();
      BOOST_CHECK_MESSAGE(msg.find("upload") != std::string::npos, msg);
    }
  }
}

BOOST_AUTO_TEST_CASE(the_bucket_holds_one_or_many_senders_to_the_rate_in_force) {
  int minute = 7 * 60;  // inside the window
  s3::RateLimiter limiter(s3::RateSchedule::parse("0", "06:30-08:00=8"), [&minute] { return minute; });
  BOOST_CHECK_EQUAL(limiter.current_mb_per_s(), 8.0);
  // 8 MB at 8 MB/s from an empty bucket: at least about 1 s (half a second of burst at most).
  const double one = seconds_to_send(limiter, 8'000'000, 1);
  BOOST_CHECK_GE(one, 0.45);
  BOOST_CHECK_LT(one, 5.0);
  // Four senders share the same cap rather than getting one each.
  const double four = seconds_to_send(limiter, 8'000'000, 4);
  BOOST_CHECK_GE(four, 0.45);
  // Outside the window there is no cap: nothing waits.
  minute = 12 * 60;
  BOOST_CHECK_EQUAL(limiter.current_mb_per_s(), 0.0);
  BOOST_CHECK_LT(seconds_to_send(limiter, 100'000'000, 2), 0.5);
}

BOOST_AUTO_TEST_CASE(an_upload_to_storage_keeps_to_the_cap) {
  asio::io_context ioc;
  s3::Client client(ioc.get_executor(), test::rgw_endpoint(), test::rgw_credentials());
  client.set_rate_limiter(std::make_shared<s3::RateLimiter>(s3::RateSchedule::parse("4", "")));
  const auto bucket = "cap-" + std::to_string(std::random_device{}());
  std::string body(6'000'000, 'x');
  s3::Client::Result put = boost::system::error_code{};
  double took = 0;
  auto op = [](s3::Client& c, std::string b, std::string data, s3::Client::Result& out, double& secs) -> asio::awaitable<void> {
    auto made = co_await c.create_bucket(b, false);
    if (!made || !made->ok()) co_return;
    const auto t0 = Clock::now();
    out = co_await c.put_new_object(b, "capped", std::move(data), {});
    secs = std::chrono::duration<double>(Clock::now() - t0).count();
  };
  test::run_with_watchdog(ioc, op(client, bucket, std::move(body), put, took));
  BOOST_REQUIRE(put && put->ok());
  BOOST_CHECK_GE(took, 1.0);  // 6 MB at 4 MB/s, less at most half a second of burst
}

BOOST_AUTO_TEST_SUITE_END()
