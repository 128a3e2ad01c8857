// The camera conformance suite: a host that checks a device against proto/PROTOCOL.md, case by
// case. Cases read top to bottom as coroutines; a failed check throws CaseFailed, which ends
// that case only (like a test framework's REQUIRE), so each case is a plain list of checks.
#include "dock/conformance.hpp"

#include "dock/emulated_fleet.hpp"
#include "dock/log.hpp"
#include "hw/emulated_link.hpp"
#include "hw/umockdev_bus.hpp"
#include "proto/messages.hpp"
#include "proto/sha256.hpp"
#include "proto/trust.hpp"
#include "usb/async_event.hpp"
#include "usb/usb_context.hpp"
#include "usb/usb_link.hpp"

#include <boost/asio/co_spawn.hpp>
#include <boost/asio/experimental/awaitable_operators.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/asio/this_coro.hpp>
#include <boost/asio/use_awaitable.hpp>

#include <libusb.h>

#include <algorithm>
#include <array>
#include <cstdio>
#include <cstdlib>
#include <ctime>
#include <deque>
#include <random>
#include <stdexcept>

namespace bodydock::dock::conformance {

namespace asio = boost::asio;
using namespace asio::experimental::awaitable_operators;
using proto::Bytes;
using proto::ByteView;
using proto::errc;
using proto::MsgType;
using Clock = std::chrono::steady_clock;

namespace {

constexpr std::uint64_t kMiB = 1u << 20;

// ---- Outcomes ----------------------------------------------------------------------------------

/// A check that failed: the message says what was sent, what was expected and what came back.
struct CaseFailed : std::runtime_error {
  using std::runtime_error::runtime_error;
};
/// The transport or the device's state cannot do what the case needs (said why).
struct NotApplicable : std::runtime_error {
  using std::runtime_error::runtime_error;
};

template <typename... Args>
[[noreturn]] void fail(Args&&... args) {
  throw CaseFailed(cat(std::forward<Args>(args)...));
}

// ---- Words for what went over the wire ---------------------------------------------------------

/// Text the device chose (an ERROR message), safe for a terminal and for XML: printable ASCII,
/// everything else as \xNN.
std::string printable(std::string_view s) {
  std::string out;
  for (const unsigned char c : s) {
    if (c >= 0x20 && c < 0x7f && c != '\\') {
      out += static_cast<char>(c);
    } else {
      char b[8];
      std::snprintf(b, sizeof b, "\\x%02x", c);
      out += b;
    }
  }
  return out;
}

/// "bad_request (5)": the names PROTOCOL.md section 7 uses.
std::string code_text(unsigned code) {
  static const char* const kNames[] = {"ok",          "malformed_frame",   "unsupported_version", "unknown_type",
                                       "too_large",   "bad_request",       "not_found",           "out_of_range",
                                       "busy",        "not_authenticated", "receipt_rejected",    "storage_full",
                                       "internal",    "bad_state",         "truncated",           "auth_failed"};
  const char* name = code < std::size(kNames) ? kNames[code] : "unknown code";
  return cat(name, " (", code, ")");
}
std::string code_text(errc e) { return code_text(static_cast<unsigned>(e)); }

std::string type_text(std::uint8_t t) {
  if (proto::is_known_type(t)) return proto::type_name(static_cast<MsgType>(t));
  char b[16];
  std::snprintf(b, sizeof b, "type 0x%02X", t);
  return b;
}

/// What a decoder's error means, in section 7's words.
std::string decode_error_text(const boost::system::error_code& ec) {
  if (ec.category() == proto::proto_category()) return code_text(static_cast<unsigned>(ec.value()));
  return ec.message();
}

std::string read_text(const proto::Read& r) { return cat("READ {seq ", r.seq, ", offset ", r.offset, ", length ", r.length, "}"); }
std::string list_text(const proto::List& l) { return cat("LIST {cursor ", l.cursor, ", max_count ", l.max_count, "}"); }
std::string hello_text(const proto::Hello& h) { return cat("HELLO {min_version ", h.min_version, ", max_version ", h.max_version, "}"); }

/// A request as the suite sent it, decoded back for the message.
std::string request_text(MsgType t, ByteView p) {
  switch (t) {
    case MsgType::hello:
      if (auto h = proto::decode_hello(p)) return hello_text(*h);
      break;
    case MsgType::status_get:
      if (p.empty()) return "STATUS_GET";
      break;
    case MsgType::set_time:
      if (auto s = proto::decode_set_time(p)) return cat("SET_TIME {utc_ms ", s->utc_ms, "}");
      break;
    case MsgType::list:
      if (auto l = proto::decode_list(p)) return list_text(*l);
      break;
    case MsgType::read:
      if (auto r = proto::decode_read(p)) return read_text(*r);
      break;
    case MsgType::erase:
      if (auto e = proto::decode_erase(p)) return cat("ERASE {seq ", e->seq, ", ", e->receipt.size(), "-byte receipt}");
      break;
    case MsgType::set_charging:
      if (auto c = proto::decode_set_charging(p)) return cat("SET_CHARGING {allow ", c->allow ? 1 : 0, "}");
      break;
    case MsgType::auth_begin:
      if (auto a = proto::decode_auth_begin(p)) return cat("AUTH_BEGIN {", a->dock_cert.size(), "-byte certificate}");
      break;
    case MsgType::auth_finish:
      if (auto a = proto::decode_auth_finish(p)) return cat("AUTH_FINISH {", a->signature.size(), "-byte signature}");
      break;
    default:
      break;
  }
  return cat(type_text(static_cast<std::uint8_t>(t)), " with a ", p.size(), "-byte payload");
}

/// The raw code and message of an ERROR payload (decode_error maps unknown codes to internal;
/// a conformance report wants the number the device sent).
struct RawError {
  unsigned code = 0;
  std::string message;
  bool decodes = false;
};
RawError raw_error(ByteView payload) {
  proto::Reader r(payload);
  RawError e;
  e.code = r.u16();
  e.message = r.str();
  e.decodes = r.finish() == errc::ok;
  return e;
}

/// A reply, for a message: "ERROR bad_state (13) "HELLO first"", "DATA {seq 2, offset 0, 4096 bytes}".
std::string reply_text(const proto::Frame& f) {
  if (f.header.type == MsgType::error) {
    const auto e = raw_error(f.payload);
    if (!e.decodes) return cat("an ERROR whose payload does not decode (", f.payload.size(), " bytes)");
    return cat("ERROR ", code_text(e.code), e.message.empty() ? "" : " \"", printable(e.message), e.message.empty() ? "" : "\"");
  }
  if (f.header.type == MsgType::data) {
    if (auto d = proto::decode_data(f.payload)) return cat("DATA {seq ", d->seq, ", offset ", d->offset, ", ", d->bytes.size(), " bytes}");
  }
  return cat(type_text(static_cast<std::uint8_t>(f.header.type)), " (", f.payload.size(), "-byte payload)");
}

std::int64_t utc_now_ms() {
  return std::chrono::duration_cast<std::chrono::milliseconds>(std::chrono::system_clock::now().time_since_epoch()).count();
}

proto::Digest random_digest() {
  const auto b = proto::crypto::random_bytes(32);
  proto::Digest d{};
  std::copy(b.begin(), b.end(), d.begin());
  return d;
}

/// A 16-byte frame header with any field, valid or not.
Bytes raw_header(std::uint16_t magic, std::uint8_t version, std::uint8_t type, std::uint32_t id, std::uint32_t length,
                 std::uint32_t reserved = 0) {
  Bytes b;
  proto::Writer w(b);
  w.u16(magic);
  w.u8(version);
  w.u8(type);
  w.u32(id);
  w.u32(length);
  w.u32(reserved);
  return b;
}

// ---- One docking, seen from the host ----------------------------------------------------------

/// What mutual authentication left behind (the cases about replay use it).
struct AuthDone {
  proto::AuthBegin begin;
  proto::AuthBeginOk answer;
  Bytes finish_signature;
};

/// One docking of the device under test: its link, request ids (from 1, as the reference dock
/// numbers them), a frame parser and the request deadline. Every failure of the link or of the
/// device's framing fails the case with what was being waited for.
class Probe {
 public:
  Probe(std::unique_ptr<usb::CameraLink> link, std::chrono::milliseconds timeout) : link_(std::move(link)), timeout_(timeout) {}

  std::uint32_t take_id() { return next_id_++; }
  /// A request frame with a fresh request id (not sent).
  Bytes frame(MsgType type, ByteView payload, std::uint32_t& id) {
    id = take_id();
    auto f = proto::encode_frame(type, id, payload);
    if (!f) throw std::logic_error("the suite built a frame over kMaxPayload");
    return std::move(*f);
  }

  /// One OUT transfer of whatever bytes (frames, pieces of frames, bad headers).
  asio::awaitable<void> write(Bytes bytes, std::string what) {
    asio::steady_timer deadline(co_await asio::this_coro::executor, timeout_);
    auto r = co_await (link().write(bytes) || deadline.async_wait(asio::use_awaitable));
    if (r.index() == 1) fail("sending ", what, ": the device did not take the OUT transfer within ", timeout_.count(), " ms");
    if (const auto ec = std::get<0>(r)) fail("sending ", what, ": ", ec.message());
  }

  /// Sends one request in its own OUT transfer; returns its request id.
  asio::awaitable<std::uint32_t> send(MsgType type, Bytes payload, std::string what) {
    std::uint32_t id = 0;
    auto bytes = frame(type, payload, id);
    co_await write(std::move(bytes), std::move(what));
    co_return id;
  }

  /// The next frame the device sends.
  asio::awaitable<proto::Frame> next(std::string waiting_for) {
    asio::steady_timer deadline(co_await asio::this_coro::executor, timeout_);
    for (;;) {
      if (auto f = parser_.next()) co_return std::move(*f);
      if (parser_.error()) fail(waiting_for, ": the device sent a bad frame header (", decode_error_text(parser_.error()), ")");
      inbuf_.clear();
      auto r = co_await (link().read(inbuf_) || deadline.async_wait(asio::use_awaitable));
      if (r.index() == 1) fail(waiting_for, ": no reply within ", timeout_.count(), " ms");
      if (const auto ec = std::get<0>(r)) fail(waiting_for, ": ", ec.message());
      if (const auto ec = parser_.feed(inbuf_)) fail(waiting_for, ": the device sent a bad frame header (", decode_error_text(ec), ")");
    }
  }

  /// The reply to request `id`, which must be the next frame.
  asio::awaitable<proto::Frame> reply_to(std::uint32_t id, std::string what) {
    auto f = co_await next(cat("waiting for the reply to ", what));
    if (f.header.request_id != id)
      fail("sent ", what, " as request ", id, ": the next reply was ", reply_text(f), " for request ", f.header.request_id,
           " (replies come one per request, in order, with the request's id: 4.1)");
    co_return f;
  }

  /// Sends a request and waits for its reply. `what` names it; empty: decoded from the payload.
  asio::awaitable<proto::Frame> call(MsgType type, Bytes payload, std::string what = {}) {
    if (what.empty()) what = request_text(type, payload);
    const auto id = co_await send(type, std::move(payload), what);
    co_return co_await reply_to(id, what);
  }

  std::unique_ptr<usb::CameraLink> release() { return std::move(link_); }
  [[nodiscard]] bool open() const { return link_ != nullptr; }

  std::optional<proto::HelloOk> hello;  ///< once HELLO succeeded in this docking
  std::optional<AuthDone> auth;         ///< once authenticated in this docking

 private:
  usb::CameraLink& link() {
    if (!link_) throw std::logic_error("a case used a docking after ending it");
    return *link_;
  }
  std::unique_ptr<usb::CameraLink> link_;
  std::chrono::milliseconds timeout_;
  proto::FrameParser parser_;
  Bytes inbuf_;
  std::uint32_t next_id_ = 1;
};

// ---- Checks on replies ------------------------------------------------------------------------

void expect_type(const proto::Frame& f, MsgType want, const std::string& what) {
  if (f.header.type != want) fail("sent ", what, ": expected ", proto::type_name(want), ", got ", reply_text(f));
}

void expect_error(const proto::Frame& f, errc want, const std::string& what, std::string_view why = {}) {
  if (f.header.type == MsgType::error) {
    const auto e = raw_error(f.payload);
    if (e.decodes && e.code == static_cast<unsigned>(want)) return;
  }
  fail("sent ", what, ": expected ERROR ", code_text(want), why.empty() ? "" : " (", why, why.empty() ? "" : ")", ", got ", reply_text(f));
}

template <typename T>
T decoded(boost::system::result<T> r, const proto::Frame& f, const std::string& what) {
  if (!r) fail("sent ", what, ": the reply ", reply_text(f), " does not decode: ", decode_error_text(r.error()));
  return std::move(*r);
}

/// Sends a request whose reply must be `want`; returns it.
asio::awaitable<proto::Frame> expect_reply(Probe& p, MsgType type, Bytes payload, MsgType want, std::string what = {}) {
  if (what.empty()) what = request_text(type, payload);
  auto f = co_await p.call(type, std::move(payload), what);
  expect_type(f, want, what);
  co_return f;
}

/// Sends a request whose reply must be ERROR `code`.
asio::awaitable<void> expect_refusal(Probe& p, MsgType type, Bytes payload, errc code, std::string what = {}, std::string why = {}) {
  if (what.empty()) what = request_text(type, payload);
  auto f = co_await p.call(type, std::move(payload), what);
  expect_error(f, code, what, why);
}

asio::awaitable<proto::Status> get_status(Probe& p) {
  auto f = co_await expect_reply(p, MsgType::status_get, Bytes(), MsgType::status);
  co_return decoded(proto::decode_status(f.payload), f, "STATUS_GET");
}

/// HELLO offering [2, 2]: HELLO_OK must choose 2 and pass the host's checks of 4.3.
asio::awaitable<proto::HelloOk> say_hello(Probe& p) {
  proto::Hello h;
  h.min_version = proto::kProtocolVersion;
  h.max_version = proto::kProtocolVersion;
  h.host_id = "bodydock-conformance";
  const auto what = hello_text(h);
  auto f = co_await expect_reply(p, MsgType::hello, proto::encode(h), MsgType::hello_ok, what);
  auto ok = decoded(proto::decode_hello_ok(f.payload), f, what);
  if (ok.version != proto::kProtocolVersion) fail("sent ", what, ": HELLO_OK chose version ", ok.version, ", outside the offered range (5.2)");
  p.hello = ok;
  co_return ok;
}

/// AUTH_BEGIN with a fresh dock nonce and `dock_cert`: the camera must answer AUTH_BEGIN_OK.
struct Challenge {
  proto::AuthBegin begin;
  proto::AuthBeginOk answer;
};
asio::awaitable<Challenge> begin_auth(Probe& p, const Bytes& dock_cert, std::string what) {
  Challenge c;
  c.begin.dock_nonce = random_digest();
  c.begin.dock_cert = dock_cert;
  auto f = co_await expect_reply(p, MsgType::auth_begin, proto::encode(c.begin), MsgType::auth_begin_ok, what);
  c.answer = decoded(proto::decode_auth_begin_ok(f.payload), f, what);
  co_return c;
}

/// Mutual authentication as dock `id`. Lenient on purpose: it needs the device to accept the
/// dock, and leaves judging the camera's proof to the authentication cases.
asio::awaitable<void> authenticate(Probe& p, const pki::DockIdentity& id) {
  if (!p.hello) throw std::logic_error("authenticate before HELLO");
  auto [b, a] = co_await begin_auth(p, id.cert, "AUTH_BEGIN {a fleet dock's certificate} (authenticating, which this case needs)");
  proto::AuthFinish fin;
  fin.signature = id.key.sign(proto::auth_transcript(proto::AuthRole::dock, b.dock_nonce, a.camera_nonce, id.cert, a.camera_cert, p.hello->serial));
  co_await expect_reply(p, MsgType::auth_finish, proto::encode(fin), MsgType::auth_finish_ok,
                        "AUTH_FINISH {the fleet dock's signature over T(dock)} (authenticating, which this case needs)");
  p.auth = AuthDone{std::move(b), std::move(a), std::move(fin.signature)};
}

// ---- Listing ----------------------------------------------------------------------------------

struct Page {
  std::vector<proto::Manifest> manifests;
  std::vector<Bytes> encoded;  ///< as the device sent them
  std::uint64_t next_cursor = 0;
  bool more = false;
};

/// One LIST, with the rules one page can be checked against (4.6).
asio::awaitable<Page> list_page(Probe& p, std::uint64_t cursor, std::uint16_t max_count) {
  proto::List l;
  l.cursor = cursor;
  l.max_count = max_count;
  const auto what = list_text(l);
  auto f = co_await expect_reply(p, MsgType::list, proto::encode(l), MsgType::list_ok, what);
  auto ok = decoded(proto::decode_list_ok(f.payload), f, what);
  Page page;
  proto::Reader r(f.payload);
  const auto count = r.u16();
  for (unsigned i = 0; i < count; ++i) {
    const auto blob = r.blob(proto::kMaxManifestSize);
    page.encoded.emplace_back(blob.begin(), blob.end());
  }
  page.manifests = std::move(ok.manifests);
  page.next_cursor = ok.next_cursor;
  page.more = ok.more;
  if (page.manifests.size() > max_count) fail("sent ", what, ": LIST_OK carries ", page.manifests.size(), " manifests, more than max_count (4.6)");
  std::optional<std::uint64_t> last;
  for (const auto& m : page.manifests) {
    if (m.seq < cursor) fail("sent ", what, ": LIST_OK lists seq ", m.seq, ", below the cursor (4.6)");
    if (last && m.seq <= *last) fail("sent ", what, ": LIST_OK is not in strictly ascending seq order (", *last, " then ", m.seq, ") (4.6)");
    last = m.seq;
  }
  const auto want_next = last ? *last + 1 : cursor;
  if (page.next_cursor != want_next)
    fail("sent ", what, ": LIST_OK next_cursor is ", page.next_cursor, ", expected ", want_next,
         last ? " (the last listed seq + 1)" : " (the cursor, as nothing was listed)", " (4.6)");
  co_return page;
}

struct Listing {
  std::vector<proto::Manifest> manifests;
  std::vector<Bytes> encoded;
  [[nodiscard]] const proto::Manifest* find(std::uint64_t seq) const {
    for (const auto& m : manifests)
      if (m.seq == seq) return &m;
    return nullptr;
  }
};

/// Everything the device lists, as the reference dock lists it: cursor 0, max_count 256, on
/// from next_cursor while more = 1.
asio::awaitable<Listing> list_all(Probe& p) {
  Listing all;
  std::uint64_t cursor = 0;
  for (unsigned pages = 0;; ++pages) {
    if (pages == 1000) fail("LIST: more than 1000 pages of 256 manifests; the device keeps saying more = 1");
    auto page = co_await list_page(p, cursor, proto::kMaxListCount);
    if (!all.manifests.empty() && !page.manifests.empty() && page.manifests.front().seq <= all.manifests.back().seq)
      fail("LIST from cursor ", cursor, " repeated or reordered seq ", page.manifests.front().seq, " (4.6)");
    if (pages > 0 && page.manifests.empty())
      fail("LIST {cursor ", cursor, "}: the previous page said more = 1, but nothing is listed from its next_cursor (4.6)");
    for (std::size_t i = 0; i < page.manifests.size(); ++i) {
      all.manifests.push_back(std::move(page.manifests[i]));
      all.encoded.push_back(std::move(page.encoded[i]));
    }
    if (!page.more) break;
    if (page.next_cursor <= cursor) fail("LIST {cursor ", cursor, "}: more = 1 but next_cursor ", page.next_cursor, " does not advance (4.6)");
    cursor = page.next_cursor;
  }
  co_return all;
}

// ---- Reading ----------------------------------------------------------------------------------

/// Checks a DATA reply to READ `r` of a segment of `size` bytes; returns its content.
ByteView check_data(const proto::Frame& f, const proto::Read& r, std::uint64_t size, const std::string& what) {
  expect_type(f, MsgType::data, what);
  auto d = decoded(proto::decode_data(f.payload), f, what);
  if (d.seq != r.seq || d.offset != r.offset)
    fail("sent ", what, ": DATA echoes seq ", d.seq, " offset ", d.offset, " instead of the READ's (4.7)");
  const auto want = std::min<std::uint64_t>(r.length, size - r.offset);
  if (d.bytes.size() != want)
    fail("sent ", what, ": DATA carries ", d.bytes.size(), " bytes, expected exactly ", want, " (min(length, size - offset), 4.7)");
  return d.bytes;
}

/// How many READs to keep queued at the device: the reference dock's 4, within its max_inflight.
unsigned read_window(const Probe& p) { return std::min<unsigned>(4, p.hello ? p.hello->max_inflight : 1); }

/// Reads chunks [first, end) of `m`, pipelined, each checked against its chunk_sha256; appends
/// the content to `out` (and feeds `whole`, when given).
asio::awaitable<void> pull_chunks(Probe& p, const proto::Manifest& m, std::uint64_t first, std::uint64_t end, Bytes& out,
                                  proto::Sha256* whole) {
  if (m.chunk_size > p.hello->max_read)
    fail("seq ", m.seq, ": chunk_size ", m.chunk_size, " exceeds the device's max_read ", p.hello->max_read, " (4.3)");
  const auto window = read_window(p);
  std::deque<std::pair<std::uint32_t, std::uint64_t>> in_flight;  // request id, chunk
  std::uint64_t next = first;
  while (next < end || !in_flight.empty()) {
    while (next < end && in_flight.size() < window) {
      proto::Read r{m.seq, next * m.chunk_size, m.chunk_length(next)};
      const auto id = co_await p.send(MsgType::read, proto::encode(r), read_text(r));
      in_flight.emplace_back(id, next);
      ++next;
    }
    const auto id = in_flight.front().first;
    const auto chunk = in_flight.front().second;
    in_flight.pop_front();
    const proto::Read r{m.seq, chunk * m.chunk_size, m.chunk_length(chunk)};
    const auto what = read_text(r);
    auto f = co_await p.reply_to(id, what);
    const auto bytes = check_data(f, r, m.size, what);
    if (!proto::digest_equal(proto::Sha256::of(bytes), m.chunk_sha256[chunk]))
      fail("sent ", what, ": the content of chunk ", chunk, " does not match the manifest's chunk_sha256[", chunk, "] (8)");
    out.insert(out.end(), bytes.begin(), bytes.end());
    if (whole) whole->update(bytes);
  }
}

/// Footage the suite has read and verified (chunk hashes, and the whole-segment SHA-256 when it
/// read it all), to compare reads at arbitrary offsets against.
struct RefSegment {
  proto::Manifest m;
  Bytes bytes;  ///< content [0, bytes.size())
  [[nodiscard]] bool whole() const { return bytes.size() == m.size; }
};

/// Reads the smallest segments, whole, within the budget (or a prefix of the smallest), at most
/// `max_segments`.
asio::awaitable<std::vector<RefSegment>> load_reference(Probe& p, const Listing& listing, std::uint64_t budget, std::size_t max_segments) {
  std::vector<const proto::Manifest*> by_size;
  for (const auto& m : listing.manifests) by_size.push_back(&m);
  std::stable_sort(by_size.begin(), by_size.end(), [](const auto* a, const auto* b) { return a->size < b->size; });
  std::vector<RefSegment> refs;
  for (const auto* m : by_size) {
    if (refs.size() == max_segments) break;
    RefSegment ref{*m, {}};
    if (m->size <= budget) {
      proto::Sha256 whole;
      co_await pull_chunks(p, *m, 0, m->chunk_count(), ref.bytes, &whole);
      if (!proto::digest_equal(whole.finish(), m->sha256))
        fail("seq ", m->seq, ": every chunk matches its hash, but the whole content does not match the manifest's sha256 (6.1, 8)");
      budget -= m->size;
    } else if (refs.empty()) {
      const auto chunks = std::max<std::uint64_t>(1, budget / m->chunk_size);
      co_await pull_chunks(p, *m, 0, chunks, ref.bytes, nullptr);
      budget = 0;
    } else {
      break;
    }
    refs.push_back(std::move(ref));
  }
  co_return refs;
}

// ---- The context a case runs in ---------------------------------------------------------------

class CaseContext {
 public:
  CaseContext(Target& t, const SuiteTrust& trust, const pki::DockIdentity& rogue_dock, const SuiteOptions& o, std::uint64_t seed)
      : target(t), fleet_dock(*trust.fleet_dock), rogue(rogue_dock), options(o), rng(seed) {}
  CaseContext(const CaseContext&) = delete;
  CaseContext& operator=(const CaseContext&) = delete;

  /// A fresh docking, nothing said yet.
  asio::awaitable<Probe*> connect(Camera which = Camera::under_test) {
    auto link = co_await target.connect(which);
    probes_.push_back(std::make_unique<Probe>(std::move(link), options.request_timeout));
    co_return probes_.back().get();
  }
  /// A fresh docking after HELLO, and mutual authentication when `authenticated`.
  asio::awaitable<Probe*> session(bool authenticated, Camera which = Camera::under_test) {
    auto* p = co_await connect(which);
    const auto hello = co_await say_hello(*p);
    if (which == Camera::under_test && !device_hello) device_hello = hello;
    if (authenticated) co_await authenticate(*p, fleet_dock);
    co_return p;
  }
  /// Ends a docking now (the case's other dockings end with the case).
  asio::awaitable<void> disconnect(Probe* p) {
    if (p->open()) co_await target.disconnect(p->release());
  }
  asio::awaitable<void> disconnect_all() {
    for (auto& p : probes_)
      if (p->open()) co_await target.disconnect(p->release());
    probes_.clear();
  }

  Target& target;
  std::optional<proto::HelloOk> device_hello;  ///< the first HELLO_OK of the device under test
  const pki::DockIdentity& fleet_dock;
  const pki::DockIdentity& rogue;  ///< a dock of another CA
  const SuiteOptions& options;
  std::mt19937_64 rng;

 private:
  std::vector<std::unique_ptr<Probe>> probes_;
};

/// The first listed segment, or a failure saying the case needs footage on the camera.
const proto::Manifest& need_segment(const Listing& l, std::size_t at_least = 1) {
  if (l.manifests.size() < at_least)
    fail("this case needs at least ", at_least, " segment(s) on the camera, it lists ", l.manifests.size(), ": record footage and run it again");
  return l.manifests.front();
}

/// A custody receipt for `m` as the reference dock makes one (9), signed by `signer`.
proto::Receipt receipt_fields(const proto::Manifest& m, const pki::DockIdentity& signer) {
  proto::Receipt r;
  r.camera_serial = m.camera_serial;
  r.seq = m.seq;
  r.sha256 = m.sha256;
  r.manifest_sha256 = proto::manifest_hash(m);
  r.stored_at = "conformance-suite (nothing was stored)";
  r.stored_utc_ms = utc_now_ms();
  r.dock_cert = signer.cert;
  return r;
}
Bytes signed_receipt(proto::Receipt r, const pki::DockIdentity& signer) { return proto::encode_receipt(proto::make_receipt(std::move(r), signer.key)); }

Bytes erase_payload(std::uint64_t seq, Bytes receipt) { return proto::encode(proto::Erase{seq, std::move(receipt)}); }

// ---- The cases --------------------------------------------------------------------------------

asio::awaitable<void> usb_descriptors(CaseContext& ctx) {
  co_await ctx.connect();  // the camera is docked and enumerated
  const auto facts = ctx.target.usb_facts();
  if (!facts) throw NotApplicable("the in-process link has no USB descriptors (run with --usb, or against --device)");
  std::vector<const UsbInterfaceFacts*> vendor;
  std::string seen;
  for (const auto& i : facts->interfaces) {
    seen += cat(seen.empty() ? "" : ", ", "interface ", i.number, " alt ", i.alternate, " class 0x", std::hex, int(i.interface_class), std::dec);
    if (i.interface_class == 0xFF && i.alternate == 0) vendor.push_back(&i);
  }
  if (vendor.size() != 1)
    fail("the active configuration has ", vendor.size(), " vendor-specific interfaces (class 0xFF, alternate setting 0); exactly one is required (1). Seen: ",
         seen.empty() ? "no interface" : seen);
  unsigned bulk_in = 0, bulk_out = 0;
  std::string eps;
  for (const auto& e : vendor.front()->endpoints) {
    char b[64];
    std::snprintf(b, sizeof b, "%s0x%02x attributes 0x%02x max packet %u", eps.empty() ? "" : ", ", e.address, e.attributes, e.max_packet);
    eps += b;
    const bool bulk = (e.attributes & 0x03) == LIBUSB_TRANSFER_TYPE_BULK;
    if (bulk && (e.address & 0x80)) ++bulk_in;
    if (bulk && !(e.address & 0x80)) ++bulk_out;
  }
  if (bulk_in != 1 || bulk_out != 1 || vendor.front()->endpoints.size() != 2)
    fail("the vendor interface ", vendor.front()->number, " must have exactly one bulk OUT and one bulk IN endpoint (1); it has: ",
         eps.empty() ? "no endpoints" : eps);
  if (facts->speed < LIBUSB_SPEED_HIGH)
    fail("the camera runs at ", facts->speed == LIBUSB_SPEED_FULL ? "Full" : facts->speed == LIBUSB_SPEED_LOW ? "Low" : "an unknown",
         " Speed; the dock needs High-Speed or better to move footage (1; usb/EMULATION.md)");
  if (facts->speed == LIBUSB_SPEED_HIGH)
    for (const auto& e : vendor.front()->endpoints)
      if ((e.max_packet & 0x7FF) != 512)
        fail("at High-Speed a bulk endpoint's wMaxPacketSize is 512 (USB 2.0 5.8.3); endpoint ", int(e.address), " says ", e.max_packet);
}

asio::awaitable<void> hello_first(CaseContext& ctx) {
  auto& p = *co_await ctx.connect();
  const std::string why = "before a successful HELLO every other frame is refused (5.1)";
  co_await expect_refusal(p, MsgType::status_get, Bytes(), errc::bad_state, "STATUS_GET before HELLO", why);
  proto::List l;
  co_await expect_refusal(p, MsgType::list, proto::encode(l), errc::bad_state, "LIST before HELLO", why);
  proto::SetCharging c{true};
  co_await expect_refusal(p, MsgType::set_charging, proto::encode(c), errc::bad_state, "SET_CHARGING before HELLO", why);
  proto::AuthBegin b;
  b.dock_nonce = random_digest();
  b.dock_cert = ctx.fleet_dock.cert;
  co_await expect_refusal(p, MsgType::auth_begin, proto::encode(b), errc::bad_state, "AUTH_BEGIN before HELLO", why);
  proto::HelloOk reply_type;
  reply_type.serial = "BC-0001";
  co_await expect_refusal(p, MsgType::hello_ok, proto::encode(reply_type), errc::bad_state, "HELLO_OK (a reply type) sent before HELLO",
                          "reply types sent before HELLO are refused with bad_state (4.1)");
  co_await say_hello(p);
  co_await get_status(p);
}

asio::awaitable<void> hello_negotiation(CaseContext& ctx) {
  auto& p = *co_await ctx.connect();
  struct Offer {
    std::uint16_t min, max;
  };
  // (Named arrays, not braced lists, in coroutines: g++ 12 mishandles those temporaries.)
  static constexpr std::array<Offer, 4> kOffers = {{{2, 2}, {1, 3}, {1, 2}, {2, 0xFFFF}}};
  for (const Offer o : kOffers) {
    proto::Hello h;
    h.min_version = o.min;
    h.max_version = o.max;
    h.host_id = "conformance";
    const auto what = hello_text(h);
    auto f = co_await expect_reply(p, MsgType::hello, proto::encode(h), MsgType::hello_ok, what);
    auto ok = decoded(proto::decode_hello_ok(f.payload), f, what);
    if (ok.version != 2) fail("sent ", what, ": HELLO_OK chose version ", ok.version, "; the highest version both speak is 2 (5.2)");
    if (!proto::valid_serial(ok.serial)) fail("sent ", what, ": HELLO_OK serial \"", printable(ok.serial), "\" breaks the serial rule (4.3)");
  }
  // Field values that decode but make no sense.
  proto::Hello zero;
  zero.min_version = 0;
  zero.max_version = 2;
  co_await expect_refusal(p, MsgType::hello, proto::encode(zero), errc::bad_request, hello_text(zero), "min_version 0 (4.3)");
  proto::Hello inverted;
  inverted.min_version = 3;
  inverted.max_version = 2;
  co_await expect_refusal(p, MsgType::hello, proto::encode(inverted), errc::bad_request, hello_text(inverted), "min_version > max_version (4.3)");
  // Payloads that do not decode.
  Bytes cut = {0x02, 0x00, 0x02, 0x00, 0x0A, 'd', 'o', 'c'};
  co_await expect_refusal(p, MsgType::hello, std::move(cut), errc::truncated, "HELLO whose host_id says 10 bytes and has 3", "3");
  proto::Hello empty_id;
  auto trailing = proto::encode(empty_id);
  trailing.push_back(0);
  co_await expect_refusal(p, MsgType::hello, std::move(trailing), errc::malformed_frame, "HELLO with a trailing byte", "3");
  co_await expect_reply(p, MsgType::hello, proto::encode(empty_id), MsgType::hello_ok, "HELLO {versions 2..2, empty host_id}");
}

asio::awaitable<void> hello_future_version(CaseContext& ctx) {
  auto& p = *co_await ctx.connect();
  proto::Hello future;
  future.min_version = 3;
  future.max_version = 9;
  future.host_id = "a dock from the future";
  co_await expect_refusal(p, MsgType::hello, proto::encode(future), errc::unsupported_version, hello_text(future),
                          "no version in common with a v2 device (5.2)");
  co_await expect_refusal(p, MsgType::status_get, Bytes(), errc::bad_state, "STATUS_GET after a HELLO that failed",
                          "a failed HELLO leaves the session without a handshake (5.1)");
  static constexpr std::array<std::uint16_t, 2> kOnly = {1, 3};
  for (const std::uint16_t v : kOnly) {
    proto::Hello only;
    only.min_version = v;
    only.max_version = v;
    co_await expect_refusal(p, MsgType::hello, proto::encode(only), errc::unsupported_version, hello_text(only), "5.2");
  }
  proto::Hello wide;
  wide.min_version = 2;
  wide.max_version = 9;
  const auto what = hello_text(wide);
  auto f = co_await expect_reply(p, MsgType::hello, proto::encode(wide), MsgType::hello_ok, what);
  auto ok = decoded(proto::decode_hello_ok(f.payload), f, what);
  if (ok.version != 2) fail("sent ", what, ": HELLO_OK chose version ", ok.version, ", expected 2 (the highest version both speak, 5.2)");
  co_await get_status(p);
}

asio::awaitable<void> auth_required(CaseContext& ctx) {
  auto& p = *co_await ctx.session(false);
  const std::string why = "needs a completed mutual authentication (5.1)";
  proto::SetTime t{utc_now_ms()};
  co_await expect_refusal(p, MsgType::set_time, proto::encode(t), errc::not_authenticated, "SET_TIME before authentication", why);
  proto::List l;
  co_await expect_refusal(p, MsgType::list, proto::encode(l), errc::not_authenticated, "LIST before authentication", why);
  proto::Read r{1, 0, 4096};
  co_await expect_refusal(p, MsgType::read, proto::encode(r), errc::not_authenticated, "READ {seq 1} before authentication", why);
  co_await expect_refusal(p, MsgType::erase, erase_payload(1, Bytes()), errc::not_authenticated, "ERASE {seq 1, no receipt} before authentication",
                          "9 step 1 comes before any receipt check");
  co_await get_status(p);
  proto::SetCharging c{true};
  co_await expect_reply(p, MsgType::set_charging, proto::encode(c), MsgType::set_charging_ok, "SET_CHARGING {allow 1} before authentication");
  proto::AuthFinish stray;
  stray.signature = ctx.fleet_dock.key.sign(Bytes(32, 0));
  co_await expect_refusal(p, MsgType::auth_finish, proto::encode(stray), errc::bad_state, "AUTH_FINISH without AUTH_BEGIN", "4.12");
  co_await authenticate(p, ctx.fleet_dock);
  co_await list_page(p, 0, 1);
  // A second HELLO renegotiates and ends the authentication (5.1).
  co_await say_hello(p);
  co_await expect_refusal(p, MsgType::list, proto::encode(l), errc::not_authenticated, "LIST after a second HELLO",
                          "a HELLO after a successful one ends the authentication (5.1)");
}

/// The camera's certificate must be of the fleet and name the HELLO serial; its key.
proto::crypto::PublicKey fleet_camera_key(const CaseContext& ctx, const Probe& p, const proto::AuthBeginOk& a) {
  if (a.camera_cert.empty()) fail("AUTH_BEGIN_OK carries no camera certificate: the camera is not enrolled in the fleet (5.5)");
  const auto verdict = ctx.fleet_dock.fleet.check(a.camera_cert, "camera", p.hello->serial);
  if (const auto* why = std::get_if<std::string>(&verdict))
    fail("the camera certificate in AUTH_BEGIN_OK is not a fleet camera certificate for serial ", p.hello->serial, ": ", *why, " (5.5)");
  return std::get<proto::crypto::CertInfo>(verdict).key;
}

asio::awaitable<void> auth_camera_proof(CaseContext& ctx) {
  auto& p = *co_await ctx.session(false);
  const std::string what = "AUTH_BEGIN {fresh dock nonce, fleet dock certificate}";
  auto [b, a] = co_await begin_auth(p, ctx.fleet_dock.cert, what);
  const auto key = fleet_camera_key(ctx, p, a);
  const auto transcript = proto::auth_transcript(proto::AuthRole::camera, b.dock_nonce, a.camera_nonce, b.dock_cert, a.camera_cert, p.hello->serial);
  if (!key.verify(transcript, a.signature))
    fail("sent ", what, ": the AUTH_BEGIN_OK signature does not verify over T(camera) for this docking's nonces with the certificate's key (5.5)");
  if (a.camera_nonce == proto::Digest{}) fail("sent ", what, ": the camera nonce is all zeros; it must be 32 fresh random bytes (4.11)");
  proto::AuthFinish fin;
  fin.signature = ctx.fleet_dock.key.sign(
      proto::auth_transcript(proto::AuthRole::dock, b.dock_nonce, a.camera_nonce, b.dock_cert, a.camera_cert, p.hello->serial));
  co_await expect_reply(p, MsgType::auth_finish, proto::encode(fin), MsgType::auth_finish_ok, "AUTH_FINISH {the fleet dock's signature over T(dock)}");
  co_await list_page(p, 0, 1);
}

asio::awaitable<void> auth_camera_fresh_nonce(CaseContext& ctx) {
  struct Answer {
    proto::Digest dock_nonce;
    proto::AuthBeginOk ok;
    unsigned docking;
  };
  std::vector<Answer> answers;
  Probe* p = nullptr;
  for (unsigned docking = 1; docking <= 2; ++docking) {
    p = co_await ctx.session(false);
    for (unsigned i = 0; i < (docking == 1 ? 2u : 1u); ++i) {
      proto::AuthBegin b;
      b.dock_nonce = random_digest();
      b.dock_cert = ctx.fleet_dock.cert;
      const auto what = cat("AUTH_BEGIN #", answers.size() + 1, " {fresh dock nonce} in docking ", docking);
      auto f = co_await expect_reply(*p, MsgType::auth_begin, proto::encode(b), MsgType::auth_begin_ok, what);
      auto a = decoded(proto::decode_auth_begin_ok(f.payload), f, what);
      for (const auto& earlier : answers)
        if (earlier.ok.camera_nonce == a.camera_nonce)
          fail("sent ", what, ": the camera answered with the same camera nonce as AUTH_BEGIN #", &earlier - answers.data() + 1, " in docking ",
               earlier.docking, " (a replayed answer; nonces must be fresh every time, 5.5)");
      const auto key = proto::crypto::cert_public_key(a.camera_cert);
      const auto t = proto::auth_transcript(proto::AuthRole::camera, b.dock_nonce, a.camera_nonce, b.dock_cert, a.camera_cert, p->hello->serial);
      if (!key.verify(t, a.signature))
        fail("sent ", what, ": the answer's signature does not cover this AUTH_BEGIN's dock nonce (replayed or forged, 5.5)");
      answers.push_back({b.dock_nonce, std::move(a), docking});
    }
    if (docking == 1) co_await ctx.disconnect(p);
  }
  // The last, fresh challenge still completes.
  const auto& last = answers.back();
  proto::AuthFinish fin;
  fin.signature = ctx.fleet_dock.key.sign(proto::auth_transcript(proto::AuthRole::dock, last.dock_nonce, last.ok.camera_nonce, ctx.fleet_dock.cert,
                                                                 last.ok.camera_cert, p->hello->serial));
  co_await expect_reply(*p, MsgType::auth_finish, proto::encode(fin), MsgType::auth_finish_ok, "AUTH_FINISH for the last AUTH_BEGIN");
}

asio::awaitable<void> auth_dock_wrong_ca(CaseContext& ctx) {
  auto& p = *co_await ctx.session(true);
  const auto camera_cert = p.auth->answer.camera_cert;
  proto::AuthBegin rogue;
  rogue.dock_nonce = random_digest();
  rogue.dock_cert = ctx.rogue.cert;
  co_await expect_refusal(p, MsgType::auth_begin, proto::encode(rogue), errc::auth_failed, "AUTH_BEGIN with a dock certificate from another CA",
                          "the device checks the dock certificate against its fleet CA before it signs anything (4.11)");
  proto::List l;
  l.max_count = 1;
  co_await expect_refusal(p, MsgType::list, proto::encode(l), errc::not_authenticated, "LIST after that refused AUTH_BEGIN",
                          "any AUTH_BEGIN discards the earlier authentication (4.11)");
  proto::AuthFinish fin;
  fin.signature = ctx.rogue.key.sign(Bytes(64, 0x5A));
  co_await expect_refusal(p, MsgType::auth_finish, proto::encode(fin), errc::bad_state, "AUTH_FINISH after the refused AUTH_BEGIN",
                          "no AUTH_BEGIN was answered with AUTH_BEGIN_OK (4.12)");
  proto::AuthBegin wrong_role;
  wrong_role.dock_nonce = random_digest();
  wrong_role.dock_cert = camera_cert;
  co_await expect_refusal(p, MsgType::auth_begin, proto::encode(wrong_role), errc::auth_failed,
                          "AUTH_BEGIN with a fleet certificate of another role (the camera's own, OU=camera)", "OU must be dock (4.11)");
  co_await expect_refusal(p, MsgType::list, proto::encode(l), errc::not_authenticated, "LIST after two refused AUTH_BEGINs", "5.1");
}

asio::awaitable<void> auth_dock_replayed(CaseContext& ctx) {
  // An earlier docking's exchange, as an eavesdropper on the cable would record it.
  auto* first = co_await ctx.session(true);
  const AuthDone recorded = *first->auth;
  co_await ctx.disconnect(first);

  auto& p = *co_await ctx.session(false);
  const auto& serial = p.hello->serial;
  proto::List l;
  l.max_count = 1;
  // The recorded AUTH_BEGIN (same dock nonce) and then the recorded AUTH_FINISH.
  {
    const std::string what = "AUTH_BEGIN replaying an earlier docking's dock nonce";
    auto f = co_await expect_reply(p, MsgType::auth_begin, proto::encode(recorded.begin), MsgType::auth_begin_ok, what);
    auto a = decoded(proto::decode_auth_begin_ok(f.payload), f, what);
    proto::AuthFinish replay;
    replay.signature = recorded.finish_signature;
    const std::string why = a.camera_nonce == recorded.answer.camera_nonce
                                ? "the camera reused its nonce from the earlier docking, so the recorded signature verifies (5.5)"
                                : "T(dock) holds this docking's camera nonce (5.5)";
    co_await expect_refusal(p, MsgType::auth_finish, proto::encode(replay), errc::auth_failed, "AUTH_FINISH replaying the earlier docking's signature", why);
    co_await expect_refusal(p, MsgType::list, proto::encode(l), errc::not_authenticated, "LIST after the replay was refused", "5.1");
    co_await expect_refusal(p, MsgType::auth_finish, proto::encode(replay), errc::bad_state, "a second AUTH_FINISH for the same challenge",
                            "a failed AUTH_FINISH uses the challenge up (4.12)");
  }
  // The camera's own signature reflected back as the dock's.
  {
    auto [b, a] = co_await begin_auth(p, ctx.fleet_dock.cert, "AUTH_BEGIN {fresh dock nonce}");
    proto::AuthFinish reflected;
    reflected.signature = a.signature;
    co_await expect_refusal(p, MsgType::auth_finish, proto::encode(reflected), errc::auth_failed, "AUTH_FINISH carrying the camera's own signature",
                            "the role labels keep one side's signature from passing as the other's (5.5)");
  }
  // The right transcript, signed by a key that is not the certificate's.
  {
    auto [b, a] = co_await begin_auth(p, ctx.fleet_dock.cert, "AUTH_BEGIN {fresh dock nonce}");
    proto::AuthFinish forged;
    forged.signature = ctx.rogue.key.sign(proto::auth_transcript(proto::AuthRole::dock, b.dock_nonce, a.camera_nonce, b.dock_cert, a.camera_cert, serial));
    co_await expect_refusal(p, MsgType::auth_finish, proto::encode(forged), errc::auth_failed,
                            "AUTH_FINISH over the right T(dock), signed with a key that is not the dock certificate's", "4.12");
  }
  co_await expect_refusal(p, MsgType::list, proto::encode(l), errc::not_authenticated, "LIST after three refused AUTH_FINISHes", "5.1");
  // After all that, a genuine dock still gets in.
  co_await authenticate(p, ctx.fleet_dock);
  co_await list_page(p, 0, 1);
}

asio::awaitable<void> status_report(CaseContext& ctx) {
  auto& p = *co_await ctx.session(false);
  const auto before = co_await get_status(p);  // decode checks battery_pct, charging and storage_used <= storage_total
  co_await authenticate(p, ctx.fleet_dock);
  const auto after = co_await get_status(p);
  if (after.storage_total != before.storage_total)
    fail("STATUS storage_total changed from ", before.storage_total, " to ", after.storage_total, " within one docking (4.4)");
  auto trailing = Bytes(1, 0);
  co_await expect_refusal(p, MsgType::status_get, std::move(trailing), errc::malformed_frame, "STATUS_GET with a 1-byte payload",
                          "STATUS_GET has an empty payload; any byte is a trailing byte (4.4)");
}

/// Sets the clock to `utc`; checks SET_TIME_OK and the next STATUS against the host's clock.
asio::awaitable<void> set_and_check_clock(Probe& p, std::int64_t utc, std::int64_t device_before, std::int64_t host_before) {
  constexpr std::int64_t kSlack = 2000;  // ms: device clock granularity plus round trips
  proto::SetTime t{utc};
  const auto what = request_text(MsgType::set_time, proto::encode(t));
  const auto host_at = utc_now_ms();
  auto f = co_await expect_reply(p, MsgType::set_time, proto::encode(t), MsgType::set_time_ok, what);
  const auto ok = decoded(proto::decode_set_time_ok(f.payload), f, what);
  const auto expected = utc - (device_before + (host_at - host_before));
  if (std::llabs(ok.adjusted_by_ms - expected) > kSlack)
    fail("sent ", what, ": SET_TIME_OK adjusted_by_ms is ", ok.adjusted_by_ms, ", expected about ", expected,
         " (utc_ms minus the device clock just before, 4.5)");
  const auto st = co_await get_status(p);
  const auto expect_clock = utc + (utc_now_ms() - host_at);
  if (std::llabs(st.clock_utc_ms - expect_clock) > kSlack)
    fail("after ", what, ": STATUS clock_utc_ms is ", st.clock_utc_ms, ", expected about ", expect_clock, " (the device reads utc_ms from then on, 4.5)");
}

asio::awaitable<void> status_set_time(CaseContext& ctx) {
  auto& p = *co_await ctx.session(true);
  std::string failure;
  try {
    const std::array<std::int64_t, 3> targets = {utc_now_ms() + 3'600'000, 0, utc_now_ms() - 86'400'000};
    for (const auto to : targets) {
      const auto host = utc_now_ms();
      const auto st = co_await get_status(p);
      co_await set_and_check_clock(p, to, st.clock_utc_ms, host);
    }
  } catch (const CaseFailed& e) {
    failure = e.what();
  }
  // Whatever happened, leave the camera with the right time.
  proto::SetTime now{utc_now_ms()};
  co_await expect_reply(p, MsgType::set_time, proto::encode(now), MsgType::set_time_ok, "SET_TIME {the host's clock} (putting the clock right)");
  if (!failure.empty()) throw CaseFailed(failure);
}

asio::awaitable<void> status_charging(CaseContext& ctx) {
  auto& p = *co_await ctx.session(false);
  proto::SetCharging off{false};
  auto f = co_await expect_reply(p, MsgType::set_charging, proto::encode(off), MsgType::set_charging_ok, "SET_CHARGING {allow 0}");
  if (decoded(proto::decode_set_charging_ok(f.payload), f, "SET_CHARGING {allow 0}").charging)
    fail("sent SET_CHARGING {allow 0}: SET_CHARGING_OK says charging = 1; the device must stop charging before it replies (4.10)");
  const auto st = co_await get_status(p);
  if (st.charging) fail("after SET_CHARGING {allow 0}: STATUS says charging = 1 (4.10)");
  proto::SetCharging on{true};
  co_await expect_reply(p, MsgType::set_charging, proto::encode(on), MsgType::set_charging_ok, "SET_CHARGING {allow 1}");
  co_await get_status(p);
}

asio::awaitable<void> list_cursor(CaseContext& ctx) {
  auto& p = *co_await ctx.session(true);
  const auto all = co_await list_all(p);
  need_segment(all, 2);
  // One manifest a page, walking next_cursor: the same segments, byte for byte (6.3).
  std::uint64_t cursor = 0;
  for (std::size_t i = 0; i < all.manifests.size(); ++i) {
    auto page = co_await list_page(p, cursor, 1);
    if (page.manifests.size() != 1)
      fail("LIST {cursor ", cursor, ", max_count 1}: ", page.manifests.size(), " manifests, expected seq ", all.manifests[i].seq, " (4.6)");
    if (page.encoded.front() != all.encoded[i])
      fail("LIST {cursor ", cursor, ", max_count 1}: seq ", page.manifests.front().seq,
           " is not the manifest listed before, byte for byte (listings must be byte-identical, 6.3)");
    const bool last = i + 1 == all.manifests.size();
    if (page.more == last) fail("LIST {cursor ", cursor, ", max_count 1}: more = ", page.more ? 1 : 0, " with ", all.manifests.size() - i - 1, " segments after it (4.6)");
    cursor = page.next_cursor;
  }
  // Cursors at and between segments.
  const std::size_t probes = std::min<std::size_t>(all.manifests.size(), 16);
  for (std::size_t k = 0; k < probes; ++k) {
    const auto i = k * all.manifests.size() / probes;
    const auto seq = all.manifests[i].seq;
    auto at = co_await list_page(p, seq, 2);
    if (at.manifests.empty() || at.manifests.front().seq != seq)
      fail("LIST {cursor ", seq, ", max_count 2}: the first manifest must be seq ", seq, " (segments with seq >= cursor, 4.6)");
    if (i > 0 && all.manifests[i - 1].seq + 1 < seq) {
      const auto between = all.manifests[i - 1].seq + 1;
      auto gap = co_await list_page(p, between, 1);
      if (gap.manifests.empty() || gap.manifests.front().seq != seq)
        fail("LIST {cursor ", between, ", max_count 1}: expected seq ", seq, ", the next segment at or after the cursor (4.6)");
    }
  }
  // Past the end.
  const std::array<std::uint64_t, 2> pasts = {all.manifests.back().seq + 1, ~std::uint64_t{0}};
  for (const auto past : pasts) {
    auto none = co_await list_page(p, past, proto::kMaxListCount);
    if (!none.manifests.empty() || none.more)
      fail("LIST {cursor ", past, "}: past the last segment: expected count 0, more 0; got ", none.manifests.size(), " manifests, more ", none.more ? 1 : 0, " (4.6)");
  }
  static constexpr std::array<std::uint16_t, 2> kBadCounts = {0, proto::kMaxListCount + 1};
  for (const auto bad : kBadCounts) {
    Bytes payload;
    proto::Writer w(payload);
    w.u64(0);
    w.u16(bad);
    co_await expect_refusal(p, MsgType::list, std::move(payload), errc::bad_request, cat("LIST {cursor 0, max_count ", bad, "}"), "max_count 1..256 (4.6)");
  }
}

asio::awaitable<void> list_manifests(CaseContext& ctx) {
  auto& p = *co_await ctx.session(true);
  const auto key = fleet_camera_key(ctx, p, p.auth->answer);
  const auto all = co_await list_all(p);
  need_segment(all);
  for (const auto& m : all.manifests) {
    if (m.camera_serial != p.hello->serial)
      fail("seq ", m.seq, ": the manifest names camera \"", printable(m.camera_serial), "\", HELLO_OK said \"", p.hello->serial, "\" (4.3, 6.1)");
    if (!proto::manifest_signature_valid(m, key))
      fail("seq ", m.seq, ": the manifest's signature does not verify with the key of the camera's fleet certificate (6.1)");
    if (m.chunk_size > p.hello->max_read)
      fail("seq ", m.seq, ": chunk_size ", m.chunk_size, " exceeds HELLO_OK max_read ", p.hello->max_read, " (4.3)");
    if (!m.key_wrap.empty() && m.key_wrap.front() == proto::kWrapEcdhP256Hkdf && m.key_wrap.size() != proto::kKeyWrapSize)
      fail("seq ", m.seq, ": key wrap scheme 1 is ", proto::kKeyWrapSize, " bytes, this one ", m.key_wrap.size(), " (6.5)");
  }
}

asio::awaitable<void> list_complete(CaseContext& ctx) {
  auto& p = *co_await ctx.session(true);
  const auto st = co_await get_status(p);
  const auto all = co_await list_all(p);
  if (st.segment_count != all.manifests.size())
    fail("STATUS segment_count is ", st.segment_count, " but LIST returns ", all.manifests.size(),
         " segments (every segment held and not erased is listed, 4.4, 4.6)");
  std::uint64_t bytes = 0;
  for (std::size_t i = 0; i < all.manifests.size(); ++i) {
    const auto& m = all.manifests[i];
    bytes += m.size;
    if (i == 0) continue;
    const auto& prev = all.manifests[i - 1];
    // Only neighbours in number: anything between them may have been erased before.
    if (prev.seq + 1 == m.seq && !proto::digest_equal(m.prev_manifest_sha256, proto::manifest_hash(prev)))
      fail("seq ", m.seq, ": prev_manifest_sha256 is not the manifest hash of seq ", prev.seq, " (the chain, 6.1)");
  }
  if (bytes > st.storage_used)
    fail("the listed segments hold ", bytes, " bytes but STATUS storage_used is ", st.storage_used, " (4.4)");
}

asio::awaitable<void> read_offsets(CaseContext& ctx) {
  auto& p = *co_await ctx.session(true);
  const auto all = co_await list_all(p);
  need_segment(all);
  const auto refs = co_await load_reference(p, all, ctx.options.reference_budget, 1);
  const auto& ref = refs.front();
  const auto& m = ref.m;
  const std::uint64_t size = m.size, cs = m.chunk_size, have = ref.bytes.size();
  const std::uint32_t max_read = p.hello->max_read;
  struct At {
    std::uint64_t offset;
    std::uint32_t length;
  };
  std::vector<At> reads = {{0, 1}, {1, 1}, {7, 4093}, {cs - 1, 2}, {cs / 2 + 3, static_cast<std::uint32_t>(cs)}, {0, max_read},
                           {size - 1, 1}, {size - 1, 4096}, {size > cs ? size - cs + 5 : 5, max_read}, {size / 3, 1000}};
  std::uniform_int_distribution<std::uint64_t> any_offset(0, have - 1);
  std::uniform_int_distribution<std::uint32_t> any_length(1, max_read);
  for (int i = 0; i < 16; ++i) reads.push_back({any_offset(ctx.rng), any_length(ctx.rng)});
  unsigned done = 0;
  for (const auto& at : reads) {
    if (at.offset >= size) continue;
    const auto n = std::min<std::uint64_t>(at.length, size - at.offset);
    if (at.offset + n > have) continue;  // beyond what the suite verified (a very large segment)
    const proto::Read r{m.seq, at.offset, at.length};
    const auto what = read_text(r);
    auto f = co_await p.call(MsgType::read, proto::encode(r), what);
    const auto bytes = check_data(f, r, size, what);
    if (!std::equal(bytes.begin(), bytes.end(), ref.bytes.begin() + static_cast<std::ptrdiff_t>(at.offset))) {
      const auto diff = std::mismatch(bytes.begin(), bytes.end(), ref.bytes.begin() + static_cast<std::ptrdiff_t>(at.offset)).first - bytes.begin();
      fail("sent ", what, ": byte ", at.offset + static_cast<std::uint64_t>(diff),
           " of the segment differs from the content verified against the manifest's chunk hashes (4.7, 8)");
    }
    ++done;
  }
  if (done < 5) fail("only ", done, " reads could be checked: the suite verified ", have, " bytes of seq ", m.seq);
}

asio::awaitable<void> read_errors(CaseContext& ctx) {
  auto& p = *co_await ctx.session(true);
  const auto all = co_await list_all(p);
  const auto& m = need_segment(all);
  const auto unknown = all.manifests.back().seq + 1;
  const proto::Read nothing{unknown, 0, 1};
  co_await expect_refusal(p, MsgType::read, proto::encode(nothing), errc::not_found, cat(read_text(nothing), " (a seq the camera does not list)"), "4.7");
  const proto::Read max_seq{~std::uint64_t{0}, 0, 1};
  co_await expect_refusal(p, MsgType::read, proto::encode(max_seq), errc::not_found, read_text(max_seq), "4.7");
  const proto::Read at_end{m.seq, m.size, 1};
  co_await expect_refusal(p, MsgType::read, proto::encode(at_end), errc::out_of_range, cat(read_text(at_end), " (offset = size)"), "offset >= size (4.7)");
  const proto::Read far{m.seq, ~std::uint64_t{0}, 1};
  co_await expect_refusal(p, MsgType::read, proto::encode(far), errc::out_of_range, read_text(far), "4.7");
  const proto::Read zero{m.seq, 0, 0};
  co_await expect_refusal(p, MsgType::read, proto::encode(zero), errc::bad_request, read_text(zero), "length 0 (4.7)");
  const proto::Read huge{m.seq, 0, proto::kMaxReadLength + 1};
  co_await expect_refusal(p, MsgType::read, proto::encode(huge), errc::too_large, read_text(huge), "length > 1 MiB (4.7)");
  if (p.hello->max_read < proto::kMaxReadLength) {
    const proto::Read over{m.seq, 0, p.hello->max_read + 1};
    co_await expect_refusal(p, MsgType::read, proto::encode(over), errc::too_large, cat(read_text(over), " (max_read + 1)"), "4.7");
  }
  auto shorter = proto::encode(proto::Read{m.seq, 0, 1});
  shorter.pop_back();
  co_await expect_refusal(p, MsgType::read, std::move(shorter), errc::truncated, "READ with a 19-byte payload", "3");
  auto longer = proto::encode(proto::Read{m.seq, 0, 1});
  longer.push_back(0);
  co_await expect_refusal(p, MsgType::read, std::move(longer), errc::malformed_frame, "READ with a 21-byte payload (trailing byte)", "3");
  const proto::Read fine{m.seq, 0, 1};
  auto f = co_await p.call(MsgType::read, proto::encode(fine), read_text(fine));
  check_data(f, fine, m.size, read_text(fine) + " after the refused READs");
}

asio::awaitable<void> read_resume(CaseContext& ctx) {
  auto* first = co_await ctx.session(true);
  const auto listed = co_await list_all(*first);
  need_segment(listed);
  // The smallest segment of at least two chunks (the smallest of all when none has two).
  const proto::Manifest* m = nullptr;
  std::size_t index = 0;
  for (std::size_t i = 0; i < listed.manifests.size(); ++i) {
    const auto& c = listed.manifests[i];
    const bool better = !m || (c.chunk_count() >= 2 && (m->chunk_count() < 2 || c.size < m->size));
    if (better) {
      m = &c;
      index = i;
    }
  }
  if (m->chunk_count() < 2) fail("this case needs a segment of at least two chunks; the largest listed has one");
  const auto budget_chunks = std::max<std::uint64_t>(2, ctx.options.reference_budget / m->chunk_size);
  const auto chunks = std::min<std::uint64_t>(m->chunk_count(), budget_chunks);
  const auto cut = std::max<std::uint64_t>(1, chunks / 2);
  Bytes content;
  proto::Sha256 whole;
  co_await pull_chunks(*first, *m, 0, cut, content, &whole);
  // READs queued, their replies on the way, and the cable comes out (the IN transfers are
  // cancelled mid-flight).
  const auto window = read_window(*first);
  for (std::uint64_t c = cut; c < std::min<std::uint64_t>(chunks, cut + window); ++c) {
    const proto::Read r{m->seq, c * m->chunk_size, m->chunk_length(c)};
    co_await first->send(MsgType::read, proto::encode(r), read_text(r));
  }
  co_await ctx.disconnect(first);

  // The next docking: the same manifest, no stale reply, and the pull continues from the cut.
  auto& p = *co_await ctx.session(true);
  const auto again = co_await list_all(p);
  const auto* same = again.find(m->seq);
  if (!same) fail("after re-docking, seq ", m->seq, " is no longer listed (nothing was erased)");
  if (again.encoded[static_cast<std::size_t>(same - again.manifests.data())] != listed.encoded[index])
    fail("after re-docking, the manifest of seq ", m->seq, " is not byte-identical to the one listed before (6.3)");
  co_await pull_chunks(p, *m, cut, chunks, content, &whole);
  if (chunks == m->chunk_count() && !proto::digest_equal(whole.finish(), m->sha256))
    fail("seq ", m->seq, ": the content read across two dockings does not match the manifest's sha256 (8)");
}

asio::awaitable<void> frames_stream(CaseContext& ctx) {
  auto& p = *co_await ctx.session(false);
  // Several frames in one OUT transfer.
  {
    std::uint32_t a = 0, b = 0, c = 0;
    Bytes transfer = p.frame(MsgType::status_get, {}, a);
    const auto sc = proto::encode(proto::SetCharging{true});
    const auto fb = p.frame(MsgType::set_charging, sc, b);
    const auto fc = p.frame(MsgType::status_get, {}, c);
    transfer.insert(transfer.end(), fb.begin(), fb.end());
    transfer.insert(transfer.end(), fc.begin(), fc.end());
    co_await p.write(std::move(transfer), "STATUS_GET, SET_CHARGING and STATUS_GET in one OUT transfer");
    const std::string what = "three requests in one OUT transfer (1)";
    const auto ra = co_await p.reply_to(a, what);
    expect_type(ra, MsgType::status, what);
    const auto rb = co_await p.reply_to(b, what);
    expect_type(rb, MsgType::set_charging_ok, what);
    const auto rc = co_await p.reply_to(c, what);
    expect_type(rc, MsgType::status, what);
  }
  // One frame cut into pieces, one OUT transfer each, the header itself split.
  {
    proto::Hello h;
    h.host_id = "split across transfers";
    std::uint32_t id = 0;
    const auto f = p.frame(MsgType::hello, proto::encode(h), id);
    for (std::size_t at = 0, piece = 1; at < f.size(); at += piece, piece = std::min<std::size_t>(piece * 3, 11)) {
      const auto end = std::min(f.size(), at + piece);
      co_await p.write(Bytes(f.begin() + static_cast<std::ptrdiff_t>(at), f.begin() + static_cast<std::ptrdiff_t>(end)),
                       cat("bytes ", at, "..", end, " of a HELLO frame"));
    }
    const std::string what = "a HELLO frame split over several OUT transfers (1)";
    const auto r = co_await p.reply_to(id, what);
    expect_type(r, MsgType::hello_ok, what);
  }
  // A transfer ending inside the next frame.
  {
    std::uint32_t a = 0, b = 0;
    auto fa = p.frame(MsgType::status_get, {}, a);
    const auto fb = p.frame(MsgType::set_charging, proto::encode(proto::SetCharging{true}), b);
    fa.insert(fa.end(), fb.begin(), fb.begin() + 7);
    co_await p.write(std::move(fa), "a STATUS_GET frame and the first 7 bytes of the next");
    co_await p.write(Bytes(fb.begin() + 7, fb.end()), "the rest of that SET_CHARGING frame");
    const std::string what = "a frame completed by the next OUT transfer (1)";
    const auto ra = co_await p.reply_to(a, what);
    expect_type(ra, MsgType::status, what);
    const auto rb = co_await p.reply_to(b, what);
    expect_type(rb, MsgType::set_charging_ok, what);
  }
  // Pipelining up to max_inflight.
  {
    const unsigned n = std::min<unsigned>(p.hello->max_inflight, 16);
    std::vector<std::uint32_t> ids;
    for (unsigned i = 0; i < n; ++i) ids.push_back(co_await p.send(MsgType::status_get, Bytes(), cat("STATUS_GET #", i + 1, " of ", n, " pipelined")));
    for (unsigned i = 0; i < n; ++i) {
      const auto what = cat("STATUS_GET #", i + 1, " of ", n, " sent before reading any reply (max_inflight, 4.1)");
      const auto r = co_await p.reply_to(ids[i], what);
      expect_type(r, MsgType::status, what);
    }
  }
}

struct BadHeader {
  const char* what;
  Bytes header;
  errc code;
};

asio::awaitable<void> frames_bad_header(CaseContext& ctx) {
  auto& p = *co_await ctx.session(false);
  constexpr auto kStatus = static_cast<std::uint8_t>(MsgType::status_get);
  const std::uint32_t over = proto::kMaxPayload + 1;
  std::uint32_t id = 0xB0D00000;
  std::vector<BadHeader> cases = {
      {"magic 0xB0DD", raw_header(0xB0DD, 1, kStatus, ++id, 0), errc::malformed_frame},
      {"magic with its bytes swapped (B0 DC on the wire)", raw_header(0xDCB0, 1, kStatus, ++id, 0), errc::malformed_frame},
      {"reserved = 0x100", raw_header(proto::kMagic, 1, kStatus, ++id, 0, 0x100), errc::malformed_frame},
      {"frame_version 0", raw_header(proto::kMagic, 0, kStatus, ++id, 0), errc::unsupported_version},
      {"frame_version 2", raw_header(proto::kMagic, 2, kStatus, ++id, 0), errc::unsupported_version},
      {"type 0x00", raw_header(proto::kMagic, 1, 0x00, ++id, 0), errc::unknown_type},
      {"type 0x0A (the next request type a later version might define)", raw_header(proto::kMagic, 1, 0x0A, ++id, 0), errc::unknown_type},
      {"type 0x80", raw_header(proto::kMagic, 1, 0x80, ++id, 0), errc::unknown_type},
      {"type 0x8A", raw_header(proto::kMagic, 1, 0x8A, ++id, 0), errc::unknown_type},
      {"type 0xFE announcing a 32-byte payload it never sends (refused on the header alone)", raw_header(proto::kMagic, 1, 0xFE, ++id, 32),
       errc::unknown_type},
      // The order of the checks (2.3): the first failing check names the error.
      {"bad magic and frame_version 2", raw_header(0x1234, 2, kStatus, ++id, 0), errc::malformed_frame},
      {"reserved bits set and type 0x0A", raw_header(proto::kMagic, 1, 0x0A, ++id, 0, 1), errc::malformed_frame},
      {"frame_version 2 and length over kMaxPayload", raw_header(proto::kMagic, 2, kStatus, ++id, over), errc::unsupported_version},
      {"length over kMaxPayload and type 0x0A", raw_header(proto::kMagic, 1, 0x0A, ++id, over), errc::too_large},
  };
  for (auto& c : cases) {
    proto::Reader r(c.header);
    r.take(4);
    const auto echoed = r.u32();
    const auto what = cat("a frame header with ", c.what, " (request id 0x", std::hex, echoed, std::dec, ")");
    co_await p.write(c.header, what);
    auto f = co_await p.next(cat("waiting for the reply to ", what));
    expect_error(f, c.code, what, "2.3");
    if (f.header.request_id != echoed)
      fail("sent ", what, ": the ERROR carries request id 0x", std::hex, f.header.request_id, ", not the id of the bad header, 0x", echoed, std::dec, " (2.4)");
    // The stream starts afresh: a new HELLO works (2.4).
    co_await say_hello(p);
  }
  co_await get_status(p);
}

asio::awaitable<void> frames_resync(CaseContext& ctx) {
  auto& p = *co_await ctx.session(false);
  std::uint32_t a = 0, c = 0;
  Bytes transfer = p.frame(MsgType::status_get, {}, a);
  const auto bad = raw_header(0xDEAD, 1, static_cast<std::uint8_t>(MsgType::status_get), 0xBADBAD01, 8);
  transfer.insert(transfer.end(), bad.begin(), bad.end());
  transfer.insert(transfer.end(), 8, 0xEE);  // the payload the bad header announced
  const auto fc = p.frame(MsgType::status_get, {}, c);
  transfer.insert(transfer.end(), fc.begin(), fc.end());
  const std::string what = "one OUT transfer: STATUS_GET, a header with bad magic (request id 0xBADBAD01), 8 payload bytes, STATUS_GET";
  co_await p.write(std::move(transfer), what);
  auto first = co_await p.next("waiting for the replies to " + what);
  if (first.header.request_id != a || first.header.type != MsgType::status)
    fail("sent ", what, ": the first reply must be STATUS for request ", a, " (frames complete before a bad header are served first, 2.4); got ",
         reply_text(first), " for request ", first.header.request_id);
  auto second = co_await p.next("waiting for the replies to " + what);
  expect_error(second, errc::malformed_frame, what, "2.3");
  if (second.header.request_id != 0xBADBAD01)
    fail("sent ", what, ": the ERROR carries request id ", second.header.request_id, ", not 0xBADBAD01 from the bad header (2.4)");
  // The STATUS_GET behind the bad header was discarded with the rest of the transfer: the next
  // reply answers the next request.
  proto::Hello h;
  std::uint32_t hid = 0;
  co_await p.write(p.frame(MsgType::hello, proto::encode(h), hid), "HELLO in a new OUT transfer");
  auto next = co_await p.next("waiting for the reply to HELLO");
  if (next.header.request_id == c)
    fail("sent ", what, ": the STATUS_GET after the bad header was answered; everything after a bad header in the buffered input is discarded (2.4)");
  if (next.header.request_id != hid || next.header.type != MsgType::hello_ok)
    fail("sent HELLO after the bad header: expected HELLO_OK for request ", hid, ", got ", reply_text(next), " for request ", next.header.request_id);
  co_await get_status(p);
}

asio::awaitable<void> frames_oversized(CaseContext& ctx) {
  auto& p = *co_await ctx.session(false);
  constexpr auto kStatus = static_cast<std::uint8_t>(MsgType::status_get);
  static constexpr std::array<std::uint32_t, 2> kLengths = {proto::kMaxPayload + 1, 0xFFFFFFFFu};
  for (const auto length : kLengths) {
    const std::uint32_t id = 0x0B16F000 + (length & 0xFF);
    const auto what = cat("a STATUS_GET header announcing a ", length, "-byte payload, and no payload");
    co_await p.write(raw_header(proto::kMagic, 1, kStatus, id, length), what);
    auto f = co_await p.next(cat("waiting for the reply to ", what, " (refused on the header, before any payload, 2.2)"));
    expect_error(f, errc::too_large, what, "length > kMaxPayload is refused before any payload is buffered (2.2, 2.3)");
    if (f.header.request_id != id) fail("sent ", what, ": the ERROR carries request id ", f.header.request_id, ", not ", id, " (2.4)");
    co_await say_hello(p);
  }
  // The largest frame allowed: read whole and refused for its payload, not a stream error.
  std::uint32_t id = 0;
  const auto big = p.frame(MsgType::status_get, Bytes(proto::kMaxPayload, 0), id);
  const std::size_t piece = std::size_t{64} * 1024;
  for (std::size_t at = 0; at < big.size(); at += piece) {
    const auto end = std::min(big.size(), at + piece);
    co_await p.write(Bytes(big.begin() + static_cast<std::ptrdiff_t>(at), big.begin() + static_cast<std::ptrdiff_t>(end)),
                     "a STATUS_GET frame with a kMaxPayload payload, in 64 KiB OUT transfers");
  }
  const std::string what = "STATUS_GET with a payload of exactly kMaxPayload bytes";
  const auto r = co_await p.reply_to(id, what);
  expect_error(r, errc::malformed_frame, what, "a valid header; the payload has trailing bytes (3)");
  co_await get_status(p);  // no new HELLO: a payload error is not a stream error (2.4)
}

struct BadPayload {
  MsgType type;
  Bytes payload;
  errc code;
  const char* what;
};

asio::awaitable<void> frames_bad_payload(CaseContext& ctx) {
  auto& p = *co_await ctx.session(true);
  auto with = [](Bytes b, std::initializer_list<std::uint8_t> more) {
    b.insert(b.end(), more);
    return b;
  };
  auto cut = [](Bytes b, std::size_t n) {
    b.resize(n < b.size() ? b.size() - n : 0);  // the bound also keeps g++'s -Wstringop-overflow quiet
    return b;
  };
  Bytes big_receipt;
  {
    proto::Writer w(big_receipt);
    w.u64(1);
    w.u32(proto::kMaxReceipt + 1);
    big_receipt.resize(big_receipt.size() + proto::kMaxReceipt + 1, 0x42);
  }
  Bytes short_receipt;
  {
    proto::Writer w(short_receipt);
    w.u64(1);
    w.u32(10);
    w.u32(0);
  }
  const auto now = proto::encode(proto::SetTime{utc_now_ms()});
  const auto list = proto::encode(proto::List{0, 1});
  const auto read = proto::encode(proto::Read{1, 0, 1});
  std::vector<BadPayload> cases = {
      {MsgType::set_time, cut(now, 4), errc::truncated, "SET_TIME with a 4-byte payload"},
      {MsgType::set_time, with(now, {0}), errc::malformed_frame, "SET_TIME with a 9-byte payload (trailing byte)"},
      {MsgType::list, cut(list, 1), errc::truncated, "LIST with a 9-byte payload"},
      {MsgType::list, with(list, {0}), errc::malformed_frame, "LIST with an 11-byte payload (trailing byte)"},
      {MsgType::read, cut(read, 3), errc::truncated, "READ with a 17-byte payload"},
      {MsgType::set_charging, Bytes(), errc::truncated, "SET_CHARGING with an empty payload"},
      {MsgType::set_charging, Bytes{2}, errc::bad_request, "SET_CHARGING {allow 2} (a bool is 0 or 1)"},
      {MsgType::set_charging, Bytes{1, 0}, errc::malformed_frame, "SET_CHARGING with a trailing byte"},
      {MsgType::erase, big_receipt, errc::too_large, "ERASE with a 4097-byte receipt (over kMaxReceipt)"},
      {MsgType::erase, short_receipt, errc::truncated, "ERASE whose receipt blob says 10 bytes and has 4"},
      {MsgType::status, Bytes(32, 0), errc::bad_request, "STATUS (a reply type) sent as a request after HELLO"},
      {MsgType::error, Bytes{5, 0, 0}, errc::bad_request, "ERROR (a reply type) sent as a request after HELLO"},
  };
  for (auto& c : cases) co_await expect_refusal(p, c.type, std::move(c.payload), c.code, c.what, "3, 7");
  // A refused payload ends only that request: the next frame in the same transfer is served.
  {
    std::uint32_t a = 0, b = 0;
    Bytes transfer = p.frame(MsgType::status_get, Bytes(3, 0), a);
    const auto good = p.frame(MsgType::status_get, {}, b);
    transfer.insert(transfer.end(), good.begin(), good.end());
    const std::string what = "one OUT transfer: STATUS_GET with a 3-byte payload, then a good STATUS_GET";
    co_await p.write(std::move(transfer), what);
    const auto ra = co_await p.reply_to(a, what);
    expect_error(ra, errc::malformed_frame, what, "3");
    const auto rb = co_await p.reply_to(b, what);
    expect_type(rb, MsgType::status, what);
  }
  // Nothing of that touched the session: still authenticated.
  co_await list_page(p, 0, 1);
  Bytes big_cert;
  {
    proto::Writer w(big_cert);
    w.digest(random_digest());
    w.u32(proto::kMaxCertificate + 1);
    big_cert.resize(big_cert.size() + proto::kMaxCertificate + 1, 0x30);
  }
  co_await expect_refusal(p, MsgType::auth_begin, std::move(big_cert), errc::too_large, "AUTH_BEGIN with a 2049-byte certificate (over kMaxCertificate)",
                          "4.11");
}

asio::awaitable<void> erase_no_receipt(CaseContext& ctx) {
  auto& p = *co_await ctx.session(true);
  const auto before = co_await get_status(p);
  const auto all = co_await list_all(p);
  const auto& m = need_segment(all);
  co_await expect_refusal(p, MsgType::erase, erase_payload(m.seq, Bytes()), errc::receipt_rejected, cat("ERASE {seq ", m.seq, ", empty receipt}"), "9 step 3");
  auto noise = proto::crypto::random_bytes(200);
  co_await expect_refusal(p, MsgType::erase, erase_payload(m.seq, std::move(noise)), errc::receipt_rejected,
                          cat("ERASE {seq ", m.seq, ", 200 random bytes as the receipt}"), "9 step 3");
  const auto unknown = all.manifests.back().seq + 1;
  co_await expect_refusal(p, MsgType::erase, erase_payload(unknown, Bytes()), errc::not_found, cat("ERASE {seq ", unknown, " (not listed), empty receipt}"),
                          "an unknown seq is checked before the receipt (9 step 2)");
  const auto after = co_await list_all(p);
  if (!after.find(m.seq)) fail("after the refused ERASEs, seq ", m.seq, " is no longer listed: the device erased without a receipt (9)");
  const proto::Read r{m.seq, 0, 1};
  auto f = co_await p.call(MsgType::read, proto::encode(r), read_text(r));
  check_data(f, r, m.size, cat(read_text(r), " after the refused ERASEs"));
  const auto st = co_await get_status(p);
  if (st.segment_count != before.segment_count) fail("STATUS segment_count went from ", before.segment_count, " to ", st.segment_count, " with every ERASE refused (9)");
}

asio::awaitable<void> erase_forged_receipt(CaseContext& ctx) {
  auto& p = *co_await ctx.session(true);
  const auto before = co_await get_status(p);
  const auto all = co_await list_all(p);
  const auto& m = need_segment(all);
  const auto& ours = ctx.fleet_dock;  // a dock of the fleet
  struct Forged {
    std::string what;
    Bytes receipt;
  };
  std::vector<Forged> forged;
  forged.push_back({"signed by a dock of another CA (its own certificate inside)", signed_receipt(receipt_fields(m, ctx.rogue), ctx.rogue)});
  {
    auto r = receipt_fields(m, ours);
    r.sha256[0] ^= 0x01;
    forged.push_back({"for a sha256 other than the manifest's, validly signed", signed_receipt(std::move(r), ours)});
  }
  {
    auto r = receipt_fields(m, ours);
    r.manifest_sha256[31] ^= 0x80;
    forged.push_back({"for another manifest hash, validly signed", signed_receipt(std::move(r), ours)});
  }
  {
    auto r = receipt_fields(m, ours);
    r.seq = m.seq + 1;
    forged.push_back({cat("for seq ", m.seq + 1, ", presented to erase seq ", m.seq), signed_receipt(std::move(r), ours)});
  }
  {
    auto r = receipt_fields(m, ours);
    r.camera_serial += "X";
    forged.push_back({"for another camera serial, validly signed", signed_receipt(std::move(r), ours)});
  }
  {
    auto r = proto::make_receipt(receipt_fields(m, ours), ours.key);
    r.signature[r.signature.size() / 2] ^= 0x01;
    forged.push_back({"with one bit of the signature flipped", proto::encode_receipt(r)});
  }
  {
    auto r = receipt_fields(m, ours);
    r.signature.clear();
    forged.push_back({"unsigned", proto::encode_receipt(r)});
  }
  {
    auto bytes = signed_receipt(receipt_fields(m, ours), ours);
    bytes[0] = 3;
    forged.push_back({"of receipt_version 3", std::move(bytes)});
  }
  for (auto& f : forged)
    co_await expect_refusal(p, MsgType::erase, erase_payload(m.seq, std::move(f.receipt)), errc::receipt_rejected,
                            cat("ERASE {seq ", m.seq, "} with a custody receipt ", f.what), "9 step 3");
  const auto after = co_await list_all(p);
  if (!after.find(m.seq)) fail("after the forged receipts, seq ", m.seq, " is no longer listed: the device erased on a forged receipt (9)");
  const auto st = co_await get_status(p);
  if (st.segment_count != before.segment_count) fail("STATUS segment_count went from ", before.segment_count, " to ", st.segment_count, " with every ERASE refused (9)");
}

/// Erases the first listed segment with a valid receipt and checks it is gone everywhere (9).
asio::awaitable<void> erase_and_check(CaseContext& ctx, Probe& p, const Listing& all, const proto::Status& before) {
  const auto& m = need_segment(all);
  const auto seq = m.seq;
  const auto receipt = signed_receipt(receipt_fields(m, ctx.fleet_dock), ctx.fleet_dock);
  const auto what = cat("ERASE {seq ", seq, "} with a valid custody receipt");
  auto f = co_await expect_reply(p, MsgType::erase, erase_payload(seq, receipt), MsgType::erase_ok, what);
  if (decoded(proto::decode_erase_ok(f.payload), f, what).seq != seq) fail("sent ", what, ": ERASE_OK names another seq (4.8)");
  const auto after = co_await list_all(p);
  if (after.find(seq)) fail("after ERASE_OK, seq ", seq, " is still listed (9)");
  const proto::Read r{seq, 0, 1};
  co_await expect_refusal(p, MsgType::read, proto::encode(r), errc::not_found, cat(read_text(r), " of the erased segment"), "9");
  co_await expect_refusal(p, MsgType::erase, erase_payload(seq, receipt), errc::not_found, cat("ERASE {seq ", seq, "} again"),
                          "an erased segment is gone: a repeated ERASE gets not_found (9)");
  const auto st = co_await get_status(p);
  if (st.segment_count + 1 != before.segment_count)
    fail("after erasing one segment, STATUS segment_count went from ", before.segment_count, " to ", st.segment_count, " (9)");
  if (st.storage_used >= before.storage_used)
    fail("after erasing ", m.size, " bytes, STATUS storage_used went from ", before.storage_used, " to ", st.storage_used, " (9)");
}

asio::awaitable<void> erase_valid(CaseContext& ctx) {
  auto* p = co_await ctx.session(true);
  const auto before = co_await get_status(*p);
  const auto all = co_await list_all(*p);
  co_await erase_and_check(ctx, *p, all, before);
  const auto seq = all.manifests.front().seq;
  co_await ctx.disconnect(p);
  auto& again = *co_await ctx.session(true);
  const auto listed = co_await list_all(again);
  if (listed.find(seq)) fail("seq ", seq, " is listed again at the next docking: an acknowledged erase was undone (9)");
}

asio::awaitable<void> storage_full(CaseContext& ctx) {
  const auto which = ctx.target.has_full_twin() ? Camera::storage_full : Camera::under_test;
  auto& p = *co_await ctx.session(true, which);
  const auto before = co_await get_status(p);
  if (before.storage_used < before.storage_total) {
    if (which == Camera::under_test)
      throw NotApplicable(cat("the camera reports ", before.storage_total - before.storage_used,
                              " bytes free; the host cannot fill a camera: fill it and run this case again"));
    fail("the emulated camera with no free storage reports ", before.storage_total - before.storage_used, " bytes free");
  }
  // Full storage changes nothing the dock asks for: listing, reading and erasing all work (no
  // request produces storage_full, 7), and erasing is how the space comes back.
  const auto all = co_await list_all(p);
  const auto& m = need_segment(all);
  const proto::Read r{m.seq, 0, std::min<std::uint32_t>(4096, p.hello->max_read)};
  auto f = co_await p.call(MsgType::read, proto::encode(r), cat(read_text(r), " with no storage free"));
  check_data(f, r, m.size, read_text(r));
  proto::SetTime t{utc_now_ms()};
  co_await expect_reply(p, MsgType::set_time, proto::encode(t), MsgType::set_time_ok, "SET_TIME with no storage free");
  co_await erase_and_check(ctx, p, all, before);
}

asio::awaitable<void> stress_random(CaseContext& ctx) {
  auto& p = *co_await ctx.session(true);
  const auto first_status = co_await get_status(p);
  const auto all = co_await list_all(p);
  need_segment(all);
  const auto refs = co_await load_reference(p, all, ctx.options.reference_budget, 64);
  const unsigned window = std::min<unsigned>(p.hello->max_inflight, 16);
  const auto total = ctx.options.stress_requests;

  struct Sent {
    std::uint32_t id;
    MsgType type;
    std::string what;
    proto::Read read;
    const RefSegment* ref = nullptr;
    proto::List list;
  };
  std::deque<Sent> in_flight;
  std::uniform_int_distribution<int> kind(0, 99);
  std::uniform_int_distribution<std::size_t> pick_ref(0, refs.size() - 1);
  const auto last_seq = all.manifests.back().seq;

  // Checks the reply to the oldest request in flight.
  auto check = [&](const Sent& s, const proto::Frame& f) {
    const auto& what = s.what;
    switch (s.type) {
      case MsgType::read: {
        const auto bytes = check_data(f, s.read, s.ref->m.size, what);
        if (!std::equal(bytes.begin(), bytes.end(), s.ref->bytes.begin() + static_cast<std::ptrdiff_t>(s.read.offset)))
          fail("sent ", what, ": the content differs from the verified reference bytes (4.7, 8)");
        break;
      }
      case MsgType::list: {
        expect_type(f, MsgType::list_ok, what);
        auto ok = decoded(proto::decode_list_ok(f.payload), f, what);
        const auto from = std::lower_bound(all.manifests.begin(), all.manifests.end(), s.list.cursor,
                                           [](const proto::Manifest& m, std::uint64_t c) { return m.seq < c; });
        const auto expected = static_cast<std::size_t>(all.manifests.end() - from);
        if (ok.manifests.empty() && expected > 0) fail("sent ", what, ": nothing listed, ", expected, " segments have seq >= cursor (4.6)");
        if (ok.manifests.size() > std::min<std::size_t>(expected, s.list.max_count))
          fail("sent ", what, ": ", ok.manifests.size(), " manifests listed, at most ", std::min<std::size_t>(expected, s.list.max_count), " expected (4.6)");
        for (std::size_t i = 0; i < ok.manifests.size(); ++i) {
          const auto at = static_cast<std::size_t>(from - all.manifests.begin()) + i;
          if (proto::encode_manifest(ok.manifests[i]) != all.encoded[at])
            fail("sent ", what, ": manifest ", i, " is not seq ", all.manifests[at].seq, " as listed before, byte for byte (4.6, 6.3)");
        }
        const bool more = ok.manifests.size() < expected;
        const auto next = ok.manifests.empty() ? s.list.cursor : ok.manifests.back().seq + 1;
        if (ok.more != more || ok.next_cursor != next)
          fail("sent ", what, ": more ", ok.more ? 1 : 0, " next_cursor ", ok.next_cursor, ", expected more ", more ? 1 : 0, " next_cursor ", next, " (4.6)");
        break;
      }
      case MsgType::status_get: {
        expect_type(f, MsgType::status, what);
        const auto st = decoded(proto::decode_status(f.payload), f, what);
        if (st.segment_count != first_status.segment_count || st.storage_total != first_status.storage_total)
          fail("sent ", what, ": segment_count ", st.segment_count, " / storage_total ", st.storage_total, " changed without any erase (4.4)");
        break;
      }
      default:
        expect_type(f, MsgType::set_charging_ok, what);
        decoded(proto::decode_set_charging_ok(f.payload), f, what);
        break;
    }
  };

  for (unsigned i = 0; i < total || !in_flight.empty();) {
    if (i < total && in_flight.size() < window) {
      Sent s;
      const auto k = kind(ctx.rng);
      Bytes payload;
      if (k < 70) {
        s.type = MsgType::read;
        s.ref = &refs[pick_ref(ctx.rng)];
        const auto have = s.ref->bytes.size();
        const auto offset = std::uniform_int_distribution<std::uint64_t>(0, have - 1)(ctx.rng);
        // Mostly small reads, sometimes up to max_read; never past what the suite verified.
        const std::uint64_t cap = kind(ctx.rng) < 90 ? 16384 : p.hello->max_read;
        auto length = std::uniform_int_distribution<std::uint64_t>(1, cap)(ctx.rng);
        if (offset + length > have && have < s.ref->m.size) length = have - offset;
        s.read = proto::Read{s.ref->m.seq, offset, static_cast<std::uint32_t>(length)};
        payload = proto::encode(s.read);
      } else if (k < 80) {
        s.type = MsgType::list;
        s.list.cursor = std::uniform_int_distribution<std::uint64_t>(0, last_seq + 2)(ctx.rng);
        s.list.max_count = static_cast<std::uint16_t>(std::uniform_int_distribution<int>(1, proto::kMaxListCount)(ctx.rng));
        payload = proto::encode(s.list);
      } else if (k < 95) {
        s.type = MsgType::status_get;
      } else {
        s.type = MsgType::set_charging;
        payload = proto::encode(proto::SetCharging{kind(ctx.rng) < 50});
      }
      s.what = cat("request ", i + 1, " of ", total, " (seed ", ctx.options.seed, "): ", request_text(s.type, payload));
      s.id = co_await p.send(s.type, std::move(payload), s.what);
      in_flight.push_back(std::move(s));
      ++i;
      continue;
    }
    const auto& s = in_flight.front();
    auto f = co_await p.reply_to(s.id, s.what);
    check(s, f);
    in_flight.pop_front();
  }
  proto::SetCharging on{true};
  co_await expect_reply(p, MsgType::set_charging, proto::encode(on), MsgType::set_charging_ok, "SET_CHARGING {allow 1} (as a docking starts)");
}

// ---- The table --------------------------------------------------------------------------------

using CaseFn = asio::awaitable<void> (*)(CaseContext&);

struct Case {
  const char* name;
  const char* sections;
  const char* checks;
  CaseFn run;
  unsigned deadline_factor = 1;
};

const Case kCases[] = {
    {"usb.descriptors", "1", "one vendor interface (class 0xFF) with exactly one bulk OUT and one bulk IN endpoint; High-Speed, 512-byte bulk packets",
     usb_descriptors},
    {"hello.first", "5.1, 4.1", "before HELLO every other request, reply types included, is refused with bad_state; then HELLO works", hello_first},
    {"hello.negotiation", "4.3, 5.2", "HELLO [2,2], [1,3], [1,2], [2,65535] choose 2 with a valid HELLO_OK; min 0, min > max, cut or trailing payloads refused",
     hello_negotiation},
    {"hello.future_version", "5.2, 5.3, 5.1",
     "HELLO offering only an unknown future version [3,9] (and [1,1], [3,3]) gets unsupported_version and leaves no handshake; [2,9] chooses 2",
     hello_future_version},
    {"auth.required", "5.1, 4.12",
     "SET_TIME, LIST, READ, ERASE need authentication, STATUS_GET and SET_CHARGING do not; AUTH_FINISH without AUTH_BEGIN is bad_state; a second HELLO ends "
     "the authentication",
     auth_required},
    {"auth.camera_proof", "4.11, 5.5",
     "the camera's certificate is a fleet camera certificate for its HELLO serial and its signature covers T(camera) for this docking; a fleet dock gets in",
     auth_camera_proof},
    {"auth.camera_fresh_nonce", "5.5", "three AUTH_BEGINs over two dockings get three different camera nonces, each answer signed over its own dock nonce",
     auth_camera_fresh_nonce},
    {"auth.dock_wrong_ca", "4.11, 5.5",
     "a dock certificate from another CA, or a fleet certificate of another role, is refused with auth_failed and drops the earlier authentication",
     auth_dock_wrong_ca},
    {"auth.dock_replayed", "4.12, 5.5",
     "a recorded AUTH_BEGIN/AUTH_FINISH of an earlier docking, the camera's own signature reflected, and a signature by the wrong key are refused with "
     "auth_failed; a failed AUTH_FINISH uses up the challenge",
     auth_dock_replayed},
    {"status.report", "4.4", "STATUS before and after authentication decodes within its limits; STATUS_GET with a payload is refused", status_report},
    {"status.set_time", "4.5", "SET_TIME to an hour ahead, to the epoch and to a day back: adjusted_by_ms and the next STATUS clock agree; clock put right after",
     status_set_time},
    {"status.charging", "4.10", "SET_CHARGING allow 0 stops charging before the reply (charging = 0, and in STATUS); allow 1 answered", status_charging},
    {"list.cursor", "4.6, 6.3",
     "pages of one walk the same segments byte for byte; cursors at, between and past segments; next_cursor and more; max_count 0 and 257 refused",
     list_cursor},
    {"list.manifests", "6.1, 6.2, 4.3",
     "every listed manifest names the HELLO serial, is signed with the key of the camera's fleet certificate, has chunk_size <= max_read",
     list_manifests},
    {"list.complete", "4.4, 4.6, 6.1", "STATUS segment_count equals the segments listed; neighbouring segments chain; storage_used covers them",
     list_complete},
    {"read.offsets", "4.7, 8",
     "READs at arbitrary offsets and lengths (first and last byte, across chunk boundaries, clipped at the end, max_read) return exactly the verified bytes",
     read_offsets},
    {"read.errors", "4.7, 3, 7", "unknown seq, offset at or past the end, length 0, over 1 MiB or max_read, cut or trailing payloads: the right error each",
     read_errors},
    {"read.resume", "8, 5.1, 6.3",
     "READs cut off mid-flight by dropping the link; at the next docking the manifest is unchanged, no stale reply arrives, and the pull completes from the cut "
     "with matching hashes",
     read_resume},
    {"frames.stream", "1, 2, 4.1", "frames coalesced in one OUT transfer, split over several, ending mid-frame, and pipelined to max_inflight: one reply each, in order",
     frames_stream},
    {"frames.bad_header", "2.3, 2.4",
     "bad magic, reserved bits, frame version and unknown types (and their check order) give one ERROR with the bad header's id; HELLO works again",
     frames_bad_header},
    {"frames.resync", "2.4", "a bad header mid-transfer: frames before it answered first, then one ERROR, the rest of the transfer discarded", frames_resync},
    {"frames.oversized", "2.2, 2.3",
     "a header announcing more than kMaxPayload is refused at once, before any payload; a kMaxPayload frame is read and refused for its payload only",
     frames_oversized},
    {"frames.bad_payload", "3, 7, 4.1",
     "truncated, trailing, out-of-range bool, oversized blobs and reply types as requests: the right error for that request only, the session unharmed",
     frames_bad_payload},
    {"erase.no_receipt", "9, 4.8", "ERASE with an empty or garbage receipt is refused (receipt_rejected), an unknown seq gets not_found first; nothing is erased",
     erase_no_receipt},
    {"erase.forged_receipt", "9",
     "receipts from another CA, for another hash, manifest, seq or camera, with a flipped or no signature, or an unknown version: all refused, nothing erased",
     erase_forged_receipt},
    {"erase.valid", "9, 4.8",
     "a valid custody receipt erases one segment: ERASE_OK, then not listed, READ and ERASE not_found, STATUS counts drop, still gone at the next docking",
     erase_valid},
    {"storage.full", "4.4, 7, 9", "with no storage free: STATUS says so, LIST, READ and SET_TIME work, a valid ERASE frees the segment's bytes", storage_full},
    {"stress.random", "4.1, 4.4, 4.6, 4.7, 8",
     "random valid requests (READ at random offsets and lengths, LIST from random cursors, STATUS_GET, SET_CHARGING), pipelined to max_inflight: every reply "
     "right",
     stress_random, 10},
};

struct Verdict {
  Outcome outcome = Outcome::pass;
  std::string message;
};

asio::awaitable<Verdict> run_guarded(CaseContext& ctx, CaseFn fn) {
  Verdict v;
  try {
    co_await fn(ctx);
  } catch (const NotApplicable& e) {
    v = {Outcome::not_applicable, e.what()};
  } catch (const CaseFailed& e) {
    v = {Outcome::fail, e.what()};
  } catch (const std::exception& e) {
    v = {Outcome::fail, cat("the case stopped: ", e.what())};
  }
  co_return v;
}

/// A dock identity from a CA the camera has never seen, made for this run (in memory; its files
/// are gone once it is loaded).
pki::DockIdentity make_rogue_dock() {
  std::string templ = (std::filesystem::temp_directory_path() / "bodydock-conformance-XXXXXX").string();
  if (::mkdtemp(templ.data()) == nullptr) throw std::runtime_error("cannot make a temporary directory for the rogue dock's CA");
  const std::filesystem::path dir = templ;
  try {
    auto ca = pki::Fleet::create(dir / "ca", "rogue fleet (conformance suite)");
    pki::provision_dock(ca, "rogue-dock", dir / "trust");
    auto id = pki::load_dock_identity(dir / "trust");
    std::error_code ec;
    std::filesystem::remove_all(dir, ec);
    return id;
  } catch (...) {
    std::error_code ec;
    std::filesystem::remove_all(dir, ec);
    throw;
  }
}

std::string seconds_text(std::chrono::duration<double> d) {
  char b[32];
  if (d.count() < 1) std::snprintf(b, sizeof b, "%.1f ms", d.count() * 1000);
  else std::snprintf(b, sizeof b, "%.2f s", d.count());
  return b;
}

const char* outcome_text(Outcome o) {
  switch (o) {
    case Outcome::pass: return "PASS";
    case Outcome::fail: return "FAIL";
    case Outcome::not_applicable: return "N/A";
  }
  return "?";
}

/// XML text: the five entities escaped; characters XML 1.0 cannot carry (controls, broken
/// UTF-8) written as \xNN, so the file is well-formed whatever a device sent.
std::string xml(std::string_view s) {
  std::string out;
  for (std::size_t i = 0; i < s.size();) {
    const auto c = static_cast<unsigned char>(s[i]);
    auto escaped = [&](unsigned char byte) {
      char b[8];
      std::snprintf(b, sizeof b, "\\x%02x", byte);
      out += b;
    };
    if (c < 0x80) {
      switch (c) {
        case '&': out += "&amp;"; break;
        case '<': out += "&lt;"; break;
        case '>': out += "&gt;"; break;
        case '"': out += "&quot;"; break;
        case '\'': out += "&apos;"; break;
        case '\t': out += "&#9;"; break;
        case '\n': out += "&#10;"; break;
        case '\r': out += "&#13;"; break;
        default:
          if (c < 0x20 || c == 0x7f) escaped(c);
          else out += static_cast<char>(c);
      }
      ++i;
      continue;
    }
    // A well-formed UTF-8 sequence passes; anything else byte by byte as \xNN.
    const std::size_t n = c >= 0xF0 && c <= 0xF4 ? 4 : c >= 0xE0 ? 3 : c >= 0xC2 && c <= 0xDF ? 2 : 0;
    bool ok = n > 0 && i + n <= s.size();
    for (std::size_t k = 1; ok && k < n; ++k) ok = (static_cast<unsigned char>(s[i + k]) & 0xC0) == 0x80;
    if (ok && n == 3) {
      const auto c1 = static_cast<unsigned char>(s[i + 1]);
      ok = !(c == 0xE0 && c1 < 0xA0) && !(c == 0xED && c1 >= 0xA0);  // overlong, surrogates
    }
    if (ok && n == 4) {
      const auto c1 = static_cast<unsigned char>(s[i + 1]);
      ok = !(c == 0xF0 && c1 < 0x90) && !(c == 0xF4 && c1 >= 0x90);
    }
    if (ok) {
      out.append(s.substr(i, n));
      i += n;
    } else {
      escaped(c);
      ++i;
    }
  }
  return out;
}

std::string utc_timestamp(std::int64_t unix_ms) {
  const std::time_t t = unix_ms / 1000;
  std::tm tm{};
  ::gmtime_r(&t, &tm);
  char b[32];
  std::strftime(b, sizeof b, "%Y-%m-%dT%H:%M:%S", &tm);
  return b;
}

}  // namespace

// ---- The suite --------------------------------------------------------------------------------

std::size_t Report::count(Outcome o) const {
  return static_cast<std::size_t>(std::count_if(results.begin(), results.end(), [o](const CaseResult& r) { return r.outcome == o; }));
}

std::vector<CaseInfo> cases() {
  std::vector<CaseInfo> out;
  for (const auto& c : kCases) out.push_back({c.name, c.sections, c.checks});
  return out;
}

asio::awaitable<Report> run_suite(Target& target, SuiteTrust trust, SuiteOptions options) {
  if (!trust.fleet_dock) throw std::invalid_argument("the conformance suite needs a dock identity of the camera's fleet");
  Report report;
  report.target = target.describe();
  report.started_unix_ms = utc_now_ms();
  const auto started = Clock::now();
  const auto rogue = make_rogue_dock();
  auto ex = co_await asio::this_coro::executor;
  std::uint64_t n = 0;
  for (const auto& c : kCases) {
    ++n;
    if (!options.only.empty() && std::find(options.only.begin(), options.only.end(), c.name) == options.only.end()) continue;
    CaseResult result;
    result.name = c.name;
    result.sections = c.sections;
    result.checks = c.checks;
    const auto t0 = Clock::now();
    // Each case its own random stream: a case's requests do not depend on which others ran.
    CaseContext ctx(target, trust, rogue, options, options.seed * 1000003 + n);
    const auto limit = options.case_deadline * c.deadline_factor;
    asio::steady_timer deadline(ex, limit);
    auto v = co_await (run_guarded(ctx, c.run) || deadline.async_wait(asio::use_awaitable));
    if (v.index() == 0) {
      result.outcome = std::get<0>(v).outcome;
      result.message = std::move(std::get<0>(v).message);
    } else {
      result.outcome = Outcome::fail;
      result.message = cat("no result within ", seconds_text(limit), ": the case was cut off (a device that stops answering, or answers too slowly)");
    }
    try {
      co_await ctx.disconnect_all();
    } catch (const std::exception& e) {
      // Ending the docking failed (the device went away): the next case re-docks anyway.
      log(Level::warning, "conformance: ", c.name, ": ending the docking: ", e.what());
    }
    result.took = Clock::now() - t0;
    report.results.push_back(std::move(result));
    if (report.device.empty() && ctx.device_hello)
      report.device = cat("serial ", printable(ctx.device_hello->serial), ", model ", printable(ctx.device_hello->model), ", firmware ",
                          printable(ctx.device_hello->firmware));
  }
  report.took = Clock::now() - started;
  co_return report;
}

Report run_suite_blocking(asio::io_context& ioc, Target& target, SuiteTrust trust, SuiteOptions options) {
  std::optional<Report> report;
  std::exception_ptr failure;
  bool finished = false;
  asio::co_spawn(ioc, run_suite(target, std::move(trust), std::move(options)), [&](const std::exception_ptr& e, Report r) {
    finished = true;
    failure = e;
    if (!e) report = std::move(r);
  });
  // run_one, not run: a libusb context keeps watches on the loop that never run out of work.
  while (!finished)
    if (ioc.run_one() == 0) ioc.restart();
  if (failure) std::rethrow_exception(failure);
  return std::move(*report);
}

std::string render_table(const Report& report) {
  std::string out = cat("bodydock camera conformance (proto/PROTOCOL.md, protocol version ", proto::kProtocolVersion, ")\n",
                        "device under test: ", report.target, "\n",
                        report.device.empty() ? std::string() : cat("it says it is: ", report.device, "\n"), "\n");
  char line[512];
  std::snprintf(line, sizeof line, "%-24s %-22s %-6s %10s  %s\n", "CASE", "SECTION", "RESULT", "TIME", "MESSAGE");
  out += line;
  for (const auto& r : report.results) {
    std::snprintf(line, sizeof line, "%-24s %-22s %-6s %10s  ", r.name.c_str(), r.sections.c_str(), outcome_text(r.outcome), seconds_text(r.took).c_str());
    out += line;
    out += r.message;
    out += "\n";
  }
  out += cat("\n", report.results.size(), report.results.size() == 1 ? " case: " : " cases: ", report.count(Outcome::pass), " passed, ", report.count(Outcome::fail), " failed, ",
             report.count(Outcome::not_applicable), " not applicable (not counted as passed)\n");
  out += cat("suite run time: ", seconds_text(report.took), "\n");
  return out;
}

std::string render_junit(const Report& report) {
  const auto tests = report.results.size();
  const auto failures = report.count(Outcome::fail);
  const auto skipped = report.count(Outcome::not_applicable);
  char secs[32];
  std::snprintf(secs, sizeof secs, "%.3f", report.took.count());
  std::string out = "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n";
  out += cat("<testsuites name=\"bodydock camera conformance\" tests=\"", tests, "\" failures=\"", failures, "\" errors=\"0\" skipped=\"", skipped,
             "\" time=\"", secs, "\">\n");
  out += cat("  <testsuite name=\"bodydock.conformance\" tests=\"", tests, "\" failures=\"", failures, "\" errors=\"0\" skipped=\"", skipped,
             "\" time=\"", secs, "\" timestamp=\"", utc_timestamp(report.started_unix_ms), "\">\n");
  out += "    <properties>\n";
  out += cat("      <property name=\"device\" value=\"", xml(report.target), "\"/>\n");
  if (!report.device.empty()) out += cat("      <property name=\"device_hello\" value=\"", xml(report.device), "\"/>\n");
  out += cat("      <property name=\"specification\" value=\"proto/PROTOCOL.md, protocol version ", proto::kProtocolVersion, "\"/>\n");
  out += "    </properties>\n";
  for (const auto& r : report.results) {
    std::snprintf(secs, sizeof secs, "%.3f", r.took.count());
    const auto section = cat("PROTOCOL.md ", r.sections);
    out += cat("    <testcase classname=\"bodydock.conformance\" name=\"", xml(r.name), " (", xml(section), ")\" time=\"", secs, "\">\n");
    out += "      <properties>\n";
    out += cat("        <property name=\"case\" value=\"", xml(r.name), "\"/>\n");
    out += cat("        <property name=\"section\" value=\"", xml(r.sections), "\"/>\n");
    out += cat("        <property name=\"checks\" value=\"", xml(r.checks), "\"/>\n");
    out += "      </properties>\n";
    if (r.outcome == Outcome::fail)
      out += cat("      <failure type=\"nonconformance\" message=\"", xml(section + ": " + r.message), "\">", xml(r.message), "</failure>\n");
    else if (r.outcome == Outcome::not_applicable)
      out += cat("      <skipped message=\"", xml("not applicable: " + r.message), "\"/>\n");
    out += cat("      <system-out>", xml(section + ": checks that " + r.checks), "</system-out>\n");
    out += "    </testcase>\n";
  }
  out += "  </testsuite>\n</testsuites>\n";
  return out;
}

// ---- Targets ----------------------------------------------------------------------------------

EmulatorTarget::EmulatorTarget(asio::any_io_executor ex, hw::CameraDevice& camera, hw::CameraDevice* full_twin)
    : ex_(std::move(ex)), camera_(camera), full_(full_twin) {}

std::string EmulatorTarget::describe() const {
  return cat("emulator ", camera_.spec().serial, " (", camera_.spec().model, " ", camera_.spec().firmware, ") over the in-process link");
}

asio::awaitable<std::unique_ptr<usb::CameraLink>> EmulatorTarget::connect(Camera which) {
  if (which == Camera::storage_full && !full_) throw std::logic_error("this emulator target has no full-storage twin");
  auto& device = which == Camera::storage_full ? *full_ : camera_;
  // A new link is a new docking: it resets the device's session.
  co_return std::make_unique<hw::EmulatedLink>(ex_, device, "emulated:conformance");
}

asio::awaitable<void> EmulatorTarget::disconnect(std::unique_ptr<usb::CameraLink> link) {
  link->close();
  co_return;
}

struct UsbTarget::Presence {
  explicit Presence(const asio::any_io_executor& ex) : changed(ex) {}
  std::map<std::string, usb::DeviceRef> devices;  ///< port path -> the device there now
  std::map<std::string, unsigned> generations;    ///< port path -> arrivals seen
  usb::AsyncEvent changed;
};

UsbTarget::UsbTarget(asio::any_io_executor ex, usb::UsbContext& usb, std::string port)
    : ex_(std::move(ex)), usb_(usb), port_(std::move(port)), presence_(std::make_shared<Presence>(ex_)) {
  usb_.start_hotplug([presence = presence_](const usb::DeviceRef& dev, bool arrived) {
    const auto where = usb::port_path(dev.get());
    if (arrived) {
      presence->devices[where] = dev;
      ++presence->generations[where];
    } else if (auto it = presence->devices.find(where); it != presence->devices.end() && it->second.get() == dev.get()) {
      presence->devices.erase(it);  // (a late removal of an older device must not hide a newer one)
    }
    presence->changed.notify();
  });
}

UsbTarget::~UsbTarget() = default;

std::string UsbTarget::describe() const {
  return cat("USB camera at port ", port_, reset_note_.empty() ? "" : " (", reset_note_, reset_note_.empty() ? "" : ")");
}

unsigned UsbTarget::generation(const std::string& port) const {
  const auto it = presence_->generations.find(port);
  return it == presence_->generations.end() ? 0 : it->second;
}

std::vector<std::string> UsbTarget::ports_seen() const {
  std::vector<std::string> out;
  for (const auto& [port, dev] : presence_->devices) out.push_back(port);
  return out;
}

asio::awaitable<std::optional<usb::DeviceRef>> UsbTarget::arrived(std::string port, unsigned after, std::chrono::milliseconds limit) {
  const auto deadline = Clock::now() + limit;
  for (;;) {
    if (generation(port) > after)
      if (auto it = presence_->devices.find(port); it != presence_->devices.end()) co_return it->second;
    const auto now = Clock::now();
    if (now >= deadline) co_return std::nullopt;
    asio::steady_timer t(ex_, deadline - now);
    co_await (presence_->changed.wait() || t.async_wait(asio::use_awaitable));
  }
}

asio::awaitable<bool> UsbTarget::wait_present(std::chrono::milliseconds limit) {
  co_return (co_await arrived(port_, 0, limit)).has_value();
}

asio::awaitable<unsigned> UsbTarget::redock(Camera, std::string port) {
  if (docked_before_.insert(port).second) co_return 0;  // the first docking is the one in place
  const auto it = presence_->devices.find(port);
  if (it == presence_->devices.end()) co_return 0;
  const auto before = generation(port);
  libusb_device_handle* h = nullptr;
  int rc = libusb_open(it->second.get(), &h);
  if (rc == 0) {
    rc = libusb_reset_device(h);
    libusb_close(h);
  }
  if (rc == LIBUSB_ERROR_NOT_FOUND) co_return before;  // it re-enumerated: wait for it to come back
  if (rc != 0 && reset_note_.empty()) {
    reset_note_ = cat("the port cannot be reset (", libusb_strerror(static_cast<libusb_error>(rc)), "): cases re-dock by reopening only");
    log(Level::warning, "conformance: ", port, ": ", reset_note_);
  }
  co_return 0;
}

asio::awaitable<std::unique_ptr<usb::CameraLink>> UsbTarget::connect(Camera which) {
  const auto port = port_of(which);
  const auto after = co_await redock(which, port);
  const auto dev = co_await arrived(port, after, std::chrono::seconds(10));
  if (!dev) throw std::runtime_error(cat("no device on USB port ", port, " within 10 s"));
  std::string why;
  auto iface = usb::match_camera(dev->get(), usb::CameraMatch{}, why);
  if (!iface) throw std::runtime_error(cat("the device on USB port ", port, " is not a camera: ", why));
  auto link = usb::UsbCameraLink::open(ex_, dev->get(), *iface, usb::UsbLinkOptions{}, port);
  if (!link) throw std::runtime_error(cat("cannot open the camera on USB port ", port, ": ", link.error().message()));
  co_return std::unique_ptr<usb::CameraLink>(std::move(*link));
}

asio::awaitable<void> UsbTarget::disconnect(std::unique_ptr<usb::CameraLink> link) {
  if (auto* l = dynamic_cast<usb::UsbCameraLink*>(link.get())) co_await l->shutdown();
  link.reset();
}

std::optional<UsbFacts> UsbTarget::usb_facts() {
  const auto it = presence_->devices.find(port_);
  if (it == presence_->devices.end()) throw std::runtime_error(cat("no device on USB port ", port_));
  libusb_device* dev = it->second.get();
  UsbFacts facts;
  facts.port = port_;
  libusb_device_descriptor dd{};
  if (const int rc = libusb_get_device_descriptor(dev, &dd); rc != 0)
    throw std::runtime_error(cat("cannot read the device descriptor: ", libusb_strerror(static_cast<libusb_error>(rc))));
  facts.vid = dd.idVendor;
  facts.pid = dd.idProduct;
  facts.speed = libusb_get_device_speed(dev);
  libusb_config_descriptor* cfg = nullptr;
  if (const int rc = libusb_get_active_config_descriptor(dev, &cfg); rc != 0)
    throw std::runtime_error(cat("cannot read the active configuration: ", libusb_strerror(static_cast<libusb_error>(rc))));
  for (int i = 0; i < cfg->bNumInterfaces; ++i)
    for (int a = 0; a < cfg->interface[i].num_altsetting; ++a) {
      const auto& alt = cfg->interface[i].altsetting[a];
      UsbInterfaceFacts f;
      f.number = alt.bInterfaceNumber;
      f.alternate = alt.bAlternateSetting;
      f.interface_class = alt.bInterfaceClass;
      for (int e = 0; e < alt.bNumEndpoints; ++e) f.endpoints.push_back({alt.endpoint[e].bEndpointAddress, alt.endpoint[e].bmAttributes, alt.endpoint[e].wMaxPacketSize});
      facts.interfaces.push_back(std::move(f));
    }
  libusb_free_config_descriptor(cfg);
  return facts;
}

UmockdevTarget::UmockdevTarget(asio::any_io_executor ex, hw::UmockdevBus& bus, usb::UsbContext& usb, hw::CameraDevice& camera,
                               hw::CameraDevice* full_twin)
    : UsbTarget(std::move(ex), usb, "1-1.1"), bus_(bus), camera_(camera), full_(full_twin) {}

UmockdevTarget::~UmockdevTarget() {
  // The devices are served from umockdev's thread while plugged: pull them before they go.
  for (const auto port : plugged_) bus_.unplug(port);
}

std::string UmockdevTarget::describe() const {
  return cat("emulator ", camera_.spec().serial, " (", camera_.spec().model, " ", camera_.spec().firmware,
             ") on the umockdev lane, real libusb, port ", port_);
}

std::string UmockdevTarget::port_of(Camera which) const { return which == Camera::storage_full ? "1-1.2" : port_; }

asio::awaitable<unsigned> UmockdevTarget::redock(Camera which, std::string port) {
  if (which == Camera::storage_full && !full_) throw std::logic_error("this emulator target has no full-storage twin");
  const unsigned number = which == Camera::storage_full ? 2 : 1;
  const auto before = generation(port);
  // Pulled and plugged back, as an officer would: plug() starts the device's new session.
  if (plugged_.contains(number)) bus_.unplug(number);
  bus_.plug(number, which == Camera::storage_full ? *full_ : camera_);
  plugged_.insert(number);
  co_return before;
}

// ---- The built-in emulator --------------------------------------------------------------------

EmulatorRig::EmulatorRig(const std::filesystem::path& dir) {
  world_ = std::make_unique<EmulatedFleet>(dir / "world");
  dock_identity_ = world_->dock("conformance-dock", dir / "dock-trust");
  hw::CameraSpec spec;
  spec.serial = "BC-0001";
  spec.seed = 7;
  spec.segments = 6;
  spec.segment_bytes = 600 * 1024 + 123;  // ten chunks, the last one short
  spec.chunk_size = 64 * 1024;
  spec.battery_pct = 30;
  spec.trust = world_->camera(spec.serial, "officer-0001");
  camera_ = std::make_unique<hw::CameraDevice>(spec);
  hw::CameraSpec full = spec;
  full.serial = "BC-0002";
  full.segments = 3;
  full.trust = world_->camera(full.serial, "officer-0002");
  // Storage exactly as large as what it holds: 0 bytes free.
  full.storage_total = proto::ciphertext_size(full.segment_bytes, full.chunk_size) * full.segments;
  full_ = std::make_unique<hw::CameraDevice>(full);
}

EmulatorRig::~EmulatorRig() = default;

void EmulatorRig::apply_fault(const std::string& spec) {
  auto& f = camera_->faults();
  auto seq_of = [&spec](std::string_view value) {
    std::uint64_t v = 0;
    std::size_t used = 0;
    try {
      v = std::stoull(std::string(value), &used);
    } catch (const std::exception&) {
      used = 0;
    }
    if (used == 0 || used != value.size()) throw std::invalid_argument("--emulator-fault " + spec + ": '" + std::string(value) + "' is not a segment number");
    return v;
  };
  const auto eq = spec.find('=');
  const auto name = spec.substr(0, eq);
  const std::string_view value = eq == std::string::npos ? std::string_view{} : std::string_view(spec).substr(eq + 1);
  if (name == "replay-auth" && eq == std::string::npos) f.replay_auth = true;
  else if (name == "charger-stuck" && eq == std::string::npos) f.charger_uncontrollable = true;
  else if (name == "bad-signature" && eq != std::string::npos) f.bad_signature.insert(seq_of(value));
  else if (name == "hide" && eq != std::string::npos) f.hide_from_list.insert(seq_of(value));
  else throw std::invalid_argument("--emulator-fault " + spec + ": not one of replay-auth, charger-stuck, bad-signature=SEQ, hide=SEQ");
}

}  // namespace bodydock::dock::conformance
