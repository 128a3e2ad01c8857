// What uploading costs the dock, in figures (release build): the dock's S3 sink storing spooled
// segments, N at a time as the upload queue does, against whatever S3 endpoint the AWS_*
// environment names. tests/bench/s3_bench.sh runs it beside rclone and s3cmd on the same files.
//
//   s3_bench make DIR GIB SEGMENT_MIB
//       Records emulated segments (hw::CameraDevice: encrypted content, signed manifests that
//       chain) and writes them as spool files, DIR/segments/<serial>-<seq>.seg, with each
//       segment's manifest in DIR/manifests/<serial>-<seq>.manifest (PROTOCOL.md encoding) and
//       the spool sum a pull records for it in DIR/manifests/<serial>-<seq>.spoolsum.
//       DIR/segments holds only footage, so other tools can copy that directory as it is.
//   s3_bench upload DIR s3://BUCKET[/PREFIX] [--part-mib N] [--concurrency N]
//       Creates the bucket, stores every segment of DIR with dock::S3Sink (part size N MiB,
//       default 16 as dockd's --s3-part-mib; concurrency default 2 as the upload queue's
//       upload_concurrency) and prints bytes, seconds, MB/s, process CPU seconds (all threads)
//       and CPU s/GiB, peak RSS. Endpoint and keys as `dockd demo` takes them: AWS_ENDPOINT_URL,
//       AWS_REGION, AWS_ACCESS_KEY_ID, AWS_SECRET_ACCESS_KEY (AWS_CA_BUNDLE for https://).
//       Exits non-zero if any store fails.
#include "dock/emulated_fleet.hpp"
#include "dock/log.hpp"
#include "dock/s3_sink.hpp"
#include "dock/spool_sum.hpp"
#include "hw/camera_device.hpp"
#include "proto/manifest.hpp"
#include "proto/sha256.hpp"

#include <boost/asio/co_spawn.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/thread_pool.hpp>

#include <sys/resource.h>

#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <fstream>
#include <iterator>
#include <optional>
#include <stdexcept>
#include <string>
#include <vector>

using namespace bodydock;
namespace asio = boost::asio;
using Clock = std::chrono::steady_clock;

namespace {

constexpr const char* kUsage =
    "usage: s3_bench make DIR GIB SEGMENT_MIB\n"
    "       s3_bench upload DIR s3://BUCKET[/PREFIX] [--part-mib N] [--concurrency N]\n";

struct Usage : std::invalid_argument {
  using std::invalid_argument::invalid_argument;
};

/// User and system CPU of the whole process (every thread, the sink's pool included).
double cpu_seconds() {
  rusage u{};
  getrusage(RUSAGE_SELF, &u);
  auto s = [](const timeval& t) { return static_cast<double>(t.tv_sec) + static_cast<double>(t.tv_usec) / 1e6; };
  return s(u.ru_utime) + s(u.ru_stime);
}

double peak_rss_mib() {
  rusage u{};
  getrusage(RUSAGE_SELF, &u);
  return static_cast<double>(u.ru_maxrss) / 1024.0;  // ru_maxrss is in KiB on Linux
}

double number(const std::string& text, const char* what) {
  char* end = nullptr;
  const double v = std::strtod(text.c_str(), &end);
  if (text.empty() || *end != '\0' || !(v > 0)) throw Usage(std::string(what) + " must be a positive number, not '" + text + "'");
  return v;
}

std::string need_env(const char* name) {
  const char* v = std::getenv(name);
  if (!v || !*v) throw Usage(std::string("upload needs ") + name + " in the environment");
  return v;
}

void write_file(const std::filesystem::path& p, const std::uint8_t* data, std::size_t size) {
  std::ofstream out(p, std::ios::binary | std::ios::trunc);
  out.write(reinterpret_cast<const char*>(data), static_cast<std::streamsize>(size));
  if (!out.flush()) throw std::runtime_error("cannot write " + p.string());
}

// ---------------------------------------------------------------------------------------- make

int make(const std::filesystem::path& dir, double gib, double segment_mib) {
  const auto segment_bytes = static_cast<std::uint64_t>(segment_mib * (1 << 20));
  const auto segments = static_cast<std::uint32_t>(std::max(1.0, std::round(gib * 1024 / segment_mib)));
  std::filesystem::create_directories(dir / "segments");
  std::filesystem::create_directories(dir / "manifests");
  const auto t0 = Clock::now();
  const auto c0 = cpu_seconds();
  // One camera, so the manifests chain as a real camera's do. The world (fleet CA, camera
  // keys) is only needed to record; it stays beside the footage, outside segments/.
  dock::EmulatedFleet world(dir / "world");
  hw::CameraSpec spec;
  spec.serial = "BC-0001";
  spec.segments = segments;
  spec.segment_bytes = segment_bytes;
  spec.chunk_size = 256 * 1024;
  spec.trust = world.camera(spec.serial, "officer-1");
  const hw::CameraDevice cam(spec);
  // Written in whole chunks, a few MiB at a time: a 1 GiB segment never sits in memory.
  std::vector<std::uint8_t> buf(std::size_t{32} * spec.chunk_size);
  std::uint64_t total = 0;
  for (const auto& m : cam.recorded()) {
    char name[64];
    std::snprintf(name, sizeof name, "%s-%08llu", m.camera_serial.c_str(), static_cast<unsigned long long>(m.seq));
    std::ofstream out(dir / "segments" / (std::string(name) + ".seg"), std::ios::binary | std::ios::trunc);
    dock::SpoolSum sum;  // as the dock's pull takes it while it writes the spool
    for (std::uint64_t off = 0; off < m.size; off += buf.size()) {
      const auto n = static_cast<std::size_t>(std::min<std::uint64_t>(buf.size(), m.size - off));
      cam.content(m.seq, off, std::span(buf.data(), n));
      sum.update({buf.data(), n});
      out.write(reinterpret_cast<const char*>(buf.data()), static_cast<std::streamsize>(n));
    }
    if (!out.flush()) throw std::runtime_error("cannot write segment " + std::string(name));
    const auto encoded = proto::encode_manifest(m);
    write_file(dir / "manifests" / (std::string(name) + ".manifest"), encoded.data(), encoded.size());
    const auto sum_hex = sum.hex();
    write_file(dir / "manifests" / (std::string(name) + ".spoolsum"), reinterpret_cast<const std::uint8_t*>(sum_hex.data()), sum_hex.size());
    total += m.size;
  }
  const double secs = std::chrono::duration<double>(Clock::now() - t0).count();
  std::printf("s3_bench make: %u segments of %.0f MiB (%llu bytes of footage) in %s/segments, %.1f s, %.1f CPU s\n", segments, segment_mib,
              static_cast<unsigned long long>(total), dir.c_str(), secs, cpu_seconds() - c0);
  return 0;
}

// -------------------------------------------------------------------------------------- upload

struct Segment {
  std::filesystem::path spool;
  proto::Manifest m;
  std::string spool_sum;
};

/// What the uploaders share. One thread runs them all: no locking.
struct Upload {
  dock::S3Sink& sink;
  std::vector<Segment> segments;
  dock::Custody custody;
  std::size_t next = 0;
  std::uint64_t stored_bytes = 0;
  std::size_t stored = 0;
  std::optional<std::string> failure;
};

std::vector<Segment> load_segments(const std::filesystem::path& dir) {
  std::vector<Segment> out;
  for (const auto& e : std::filesystem::directory_iterator(dir / "manifests")) {
    if (e.path().extension() != ".manifest") continue;
    std::ifstream in(e.path(), std::ios::binary);
    const proto::Bytes bytes((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
    auto m = proto::decode_manifest(bytes);
    if (!m) throw std::runtime_error(e.path().string() + ": not a manifest (" + m.error().message() + ")");
    auto spool = dir / "segments" / e.path().filename().replace_extension(".seg");
    std::ifstream sum_in(std::filesystem::path(e.path()).replace_extension(".spoolsum"));
    std::string sum;
    std::getline(sum_in, sum);  // none (made by an older s3_bench): the sink checks by SHA-256
    out.push_back({std::move(spool), std::move(*m), std::move(sum)});
  }
  if (out.empty()) throw std::runtime_error(dir.string() + "/manifests holds no segment: run s3_bench make first");
  std::sort(out.begin(), out.end(), [](const Segment& a, const Segment& b) { return a.spool < b.spool; });
  return out;
}

/// One of the queue's upload slots: takes the next segment until none are left or one failed.
asio::awaitable<void> uploader(Upload& up) {
  while (!up.failure && up.next < up.segments.size()) {
    const Segment& s = up.segments[up.next++];
    auto r = co_await up.sink.store(dock::SpoolFile(s.spool, s.spool_sum), s.m, up.custody);
    if (!r) {
      up.failure = s.spool.filename().string() + ": " + r.error().message();
      co_return;
    }
    if (!proto::digest_equal(r->sha256, s.m.sha256) || r->size != s.m.size) {
      up.failure = s.spool.filename().string() + ": the receipt does not match the manifest";
      co_return;
    }
    up.stored_bytes += r->size;
    ++up.stored;
  }
}

int upload(const std::filesystem::path& dir, const std::string& url, unsigned part_mib, unsigned concurrency) {
  dock::Log::set_level(dock::Level::warning);
  const auto where = dock::S3Location::parse(url);
  auto endpoint = s3::Endpoint::parse(need_env("AWS_ENDPOINT_URL"), need_env("AWS_REGION"));
  if (const char* ca = std::getenv("AWS_CA_BUNDLE"); ca && *ca && endpoint.tls) endpoint.ca_file = ca;
  const s3::Credentials keys{need_env("AWS_ACCESS_KEY_ID"), need_env("AWS_SECRET_ACCESS_KEY"), {}};
  auto segments = load_segments(dir);

  asio::io_context ioc;
  asio::thread_pool pool(2);  // as dockd's sink pool
  s3::Client client(ioc.get_executor(), endpoint, keys);

  // A plain bucket (no Object Lock), like the ones the other tools create: the comparison is
  // of the clients, not of what storage does for retention.
  std::optional<s3::Client::Result> made;
  asio::co_spawn(ioc, client.create_bucket(where.bucket, false), [&made](std::exception_ptr e, s3::Client::Result r) {
    if (e) std::rethrow_exception(e);
    made = std::move(r);
  });
  ioc.run();
  ioc.restart();
  if (!made || !*made) {
    std::fprintf(stderr, "s3_bench: cannot reach %s:%u: %s\n", endpoint.host.c_str(), endpoint.port, made ? made->error().message().c_str() : "no answer");
    return 1;
  }
  if (const auto& r = **made; !r.ok() && r.error_code() != "BucketAlreadyOwnedByYou") {
    std::fprintf(stderr, "s3_bench: cannot create bucket %s: HTTP %u %s\n", where.bucket.c_str(), r.status, r.error_code().c_str());
    return 1;
  }

  dock::S3Sink sink(client, where, pool, std::size_t{part_mib} << 20);
  Upload up{sink, std::move(segments), {}, 0, 0, 0, std::nullopt};
  up.custody.dock_id = "s3-bench";
  up.custody.officer = "officer-1";
  up.custody.clock_drift_ms = 0;

  const auto t0 = Clock::now();
  const auto c0 = cpu_seconds();
  for (unsigned i = 0; i < concurrency; ++i)
    asio::co_spawn(ioc, uploader(up), [&up](std::exception_ptr e) {
      if (!e) return;
      try {
        std::rethrow_exception(e);
      } catch (const std::exception& x) {
        up.failure = std::string("uploader threw: ") + x.what();
      }
    });
  ioc.run();
  const double secs = std::chrono::duration<double>(Clock::now() - t0).count();
  const double cpu = cpu_seconds() - c0;
  if (up.failure) {
    std::fprintf(stderr, "s3_bench: store failed after %zu of %zu segments: %s\n", up.stored, up.segments.size(), up.failure->c_str());
    return 1;
  }
  const double gib = static_cast<double>(up.stored_bytes) / (1u << 30);
  std::printf("s3_bench upload: %zu segments, %llu bytes in %.2f s: %.1f MB/s; CPU %.2f s = %.2f CPU s/GiB; peak RSS %.1f MiB "
              "(part %u MiB, concurrency %u, %s)\n",
              up.stored, static_cast<unsigned long long>(up.stored_bytes), secs, static_cast<double>(up.stored_bytes) / 1e6 / secs, cpu,
              cpu / gib, peak_rss_mib(), part_mib, concurrency, sink.describe().c_str());
  return 0;
}

}  // namespace

int main(int argc, char** argv) {
  const std::vector<std::string> args(argv + 1, argv + argc);
  try {
    if (args.size() == 4 && args[0] == "make") return make(args[1], number(args[2], "GIB"), number(args[3], "SEGMENT_MIB"));
    if (args.size() >= 3 && args[0] == "upload") {
      unsigned part_mib = 16, concurrency = 2;
      for (std::size_t i = 3; i < args.size(); i += 2) {
        if (i + 1 >= args.size()) throw Usage(args[i] + " needs a value");
        const double v = number(args[i + 1], args[i].c_str());
        if (args[i] == "--part-mib" && v >= 5 && v <= 1024) part_mib = static_cast<unsigned>(v);
        else if (args[i] == "--concurrency" && v >= 1 && v <= 64) concurrency = static_cast<unsigned>(v);
        else throw Usage("unknown option or value out of range: " + args[i] + " " + args[i + 1] + " (--part-mib 5..1024, --concurrency 1..64)");
      }
      return upload(args[1], args[2], part_mib, concurrency);
    }
    throw Usage("unknown command");
  } catch (const Usage& e) {
    std::fprintf(stderr, "s3_bench: %s\n%s", e.what(), kUsage);
    return 2;
  } catch (const std::exception& e) {
    std::fprintf(stderr, "s3_bench: %s\n", e.what());
    return 1;
  }
}
