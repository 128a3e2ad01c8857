#include "usb/usb_context.hpp"

#include <boost/asio/post.hpp>
#include <boost/asio/posix/stream_descriptor.hpp>

#include <libusb.h>
#include <poll.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <mutex>
#include <stdexcept>

namespace bodydock::usb {

namespace asio = boost::asio;

DeviceRef::DeviceRef(libusb_device* d) : dev_(d) {
  if (dev_) libusb_ref_device(dev_);
}
DeviceRef::~DeviceRef() {
  if (dev_) libusb_unref_device(dev_);
}
DeviceRef::DeviceRef(const DeviceRef& o) : DeviceRef(o.dev_) {}
DeviceRef& DeviceRef::operator=(const DeviceRef& o) {
  if (this != &o) {
    if (o.dev_) libusb_ref_device(o.dev_);
    if (dev_) libusb_unref_device(dev_);
    dev_ = o.dev_;
  }
  return *this;
}

std::string port_path(libusb_device* dev) {
  std::uint8_t ports[8];
  const int n = libusb_get_port_numbers(dev, ports, sizeof ports);
  if (n <= 0) return {};
  std::string path = std::to_string(libusb_get_bus_number(dev)) + "-";
  for (int i = 0; i < n; ++i) path += (i ? "." : "") + std::to_string(ports[i]);
  return path;
}

/// One libusb pollfd. The descriptor is released (never closed: libusb owns the fd).
struct UsbContext::Watch {
  Watch(const asio::any_io_executor& ex, int fd_, short events_) : fd(fd_), events(events_), sd(ex, fd_) {}
  ~Watch() {
    boost::system::error_code ignored;  // a destructor must not throw; the fd is released anyway
    sd.cancel(ignored);
    sd.release();
  }
  int fd;
  short events;
  asio::posix::stream_descriptor sd;
  /// An fd epoll cannot watch (a regular file, as under umockdev) is always "ready": it is
  /// serviced on the shared timer instead of a busy loop.
  bool pollable = true;
};

namespace {
std::atomic<std::uint64_t> g_completions{0};
}  // namespace

void note_transfer_completed() noexcept { g_completions.fetch_add(1, std::memory_order_relaxed); }

namespace {

// libusb's log callback has no user pointer: map the context to its owner's log function.
// It may be called from libusb's own threads (the udev monitor), hence the lock.
std::mutex g_log_mutex;
std::map<libusb_context*, UsbContext::LogFn> g_logs;

void log_trampoline(libusb_context* ctx, enum libusb_log_level level, const char* str) {
  std::lock_guard lock(g_log_mutex);
  auto it = g_logs.find(ctx);
  if (it == g_logs.end() || !it->second || str == nullptr) return;
  std::string_view text(str);
  while (!text.empty() && (text.back() == '\n' || text.back() == '\r')) text.remove_suffix(1);
  const auto l = level == LIBUSB_LOG_LEVEL_ERROR     ? UsbContext::LogLevel::error
                 : level == LIBUSB_LOG_LEVEL_WARNING ? UsbContext::LogLevel::warning
                 : level == LIBUSB_LOG_LEVEL_INFO    ? UsbContext::LogLevel::info
                                                     : UsbContext::LogLevel::debug;
  it->second(l, std::string("libusb: ") + std::string(text));
}

}  // namespace

UsbContext::UsbContext(asio::any_io_executor ex, LogFn log) : ex_(std::move(ex)), log_(std::move(log)), unpollable_timer_(ex_) {
  const int rc = libusb_init(&ctx_);
  if (rc != 0) throw std::runtime_error(std::string("libusb_init failed: ") + libusb_strerror(rc));
  if (libusb_pollfds_handle_timeouts(ctx_) != 1) {
    libusb_exit(ctx_);
    throw std::runtime_error("this libusb cannot run inside an event loop (no timerfd)");
  }
  {
    std::lock_guard lock(g_log_mutex);
    g_logs[ctx_] = log_;
  }
  libusb_set_log_cb(ctx_, &log_trampoline, LIBUSB_LOG_CB_CONTEXT);
  libusb_set_option(ctx_, LIBUSB_OPTION_LOG_LEVEL, LIBUSB_LOG_LEVEL_WARNING);
  libusb_set_pollfd_notifiers(ctx_, &UsbContext::pollfd_added, &UsbContext::pollfd_removed, this);
  if (const libusb_pollfd** fds = libusb_get_pollfds(ctx_)) {
    for (auto** p = fds; *p; ++p) add_watch((*p)->fd, (*p)->events);
    libusb_free_pollfds(fds);
  }
}

UsbContext::~UsbContext() {
  if (hotplug_registered_) libusb_hotplug_deregister_callback(ctx_, hotplug_handle_);
  libusb_set_pollfd_notifiers(ctx_, nullptr, nullptr, nullptr);
  watches_.clear();
  readiness_.reset();
  libusb_exit(ctx_);
  std::lock_guard lock(g_log_mutex);
  g_logs.erase(ctx_);
}

void UsbContext::pollfd_added(int fd, short events, void* self) { static_cast<UsbContext*>(self)->add_watch(fd, events); }
void UsbContext::pollfd_removed(int fd, void* self) { static_cast<UsbContext*>(self)->remove_watch(fd); }

void UsbContext::add_watch(int fd, short events) {
  remove_watch(fd);
  auto w = std::make_shared<Watch>(ex_, fd, events);
  // A regular file (an emulated device node) is always "ready" to epoll's eyes; waiting on it
  // would spin the loop. It is serviced on readiness from elsewhere, or on the timer.
  struct stat st {};
  if (::fstat(fd, &st) == 0 && S_ISREG(st.st_mode)) w->pollable = false;
  watches_[fd] = w;
  if (events & POLLIN) arm(w, false);
  if (events & POLLOUT) arm(w, true);
}

void UsbContext::remove_watch(int fd) {
  auto it = watches_.find(fd);
  if (it == watches_.end()) return;
  watches_.erase(it);  // the Watch cancels and releases; pending handlers see it expired
}

void UsbContext::arm(const std::shared_ptr<Watch>& w, bool for_write) {
  std::weak_ptr<Watch> weak = w;
  auto on_ready = [this, weak, for_write](const boost::system::error_code& ec) {
    auto watch = weak.lock();
    if (!watch || watches_.find(watch->fd) == watches_.end() || watches_[watch->fd] != watch) return;
    if (ec == asio::error::operation_not_supported) watch->pollable = false;
    else if (ec) return;
    handle_events();
    if (watches_.find(watch->fd) != watches_.end() && watches_[watch->fd] == watch) arm(watch, for_write);
  };
  if (!w->pollable) {
    arm_unpollable();
    return;
  }
  w->sd.async_wait(for_write ? asio::posix::stream_descriptor::wait_write : asio::posix::stream_descriptor::wait_read, std::move(on_ready));
}

void UsbContext::add_readiness_source(int fd) {
  readiness_ = std::make_unique<Watch>(ex_, fd, POLLIN);
  arm_readiness();
}

void UsbContext::arm_readiness() {
  readiness_->sd.async_wait(asio::posix::stream_descriptor::wait_read, [this](const boost::system::error_code& ec) {
    if (ec) return;  // cancelled: the context is going away
    std::uint64_t n = 0;
    (void)::read(readiness_->fd, &n, sizeof n);  // reset the eventfd, then look at everything
    handle_events();
    arm_readiness();
  });
}

void UsbContext::arm_unpollable() {
  if (unpollable_armed_) return;
  unpollable_armed_ = true;
  // With a readiness source the timer is only a safety net.
  unpollable_timer_.expires_after(readiness_ ? std::chrono::microseconds(50000) : unpollable_interval_);
  unpollable_timer_.async_wait([this](const boost::system::error_code& ec) {
    if (ec) return;  // cancelled: the context is going away
    unpollable_armed_ = false;
    if (std::none_of(watches_.begin(), watches_.end(), [](const auto& w) { return !w.second->pollable; })) return;
    const auto before = g_completions.load(std::memory_order_relaxed);
    handle_events();
    const bool busy = g_completions.load(std::memory_order_relaxed) != before;
    unpollable_interval_ = busy ? std::chrono::microseconds(250) : std::min(unpollable_interval_ * 2, std::chrono::microseconds(4000));
    arm_unpollable();
  });
}

void UsbContext::handle_events() {
  timeval zero{0, 0};
  const int rc = libusb_handle_events_timeout_completed(ctx_, &zero, nullptr);
  if (rc != 0 && log_) log_(LogLevel::warning, std::string("libusb event handling: ") + libusb_strerror(rc));
}

void UsbContext::start_hotplug(HotplugFn on_event) {
  on_hotplug_ = std::move(on_event);
  auto cb = [](libusb_context*, libusb_device* dev, libusb_hotplug_event event, void* self) -> int {
    auto* me = static_cast<UsbContext*>(self);
    // No I/O here: take a reference and let the event loop deal with it.
    asio::post(me->ex_, [me, ref = DeviceRef(dev), arrived = event == LIBUSB_HOTPLUG_EVENT_DEVICE_ARRIVED] {
      if (me->on_hotplug_) me->on_hotplug_(ref, arrived);
    });
    return 0;
  };
  const int rc = libusb_hotplug_register_callback(
      ctx_, static_cast<libusb_hotplug_event>(LIBUSB_HOTPLUG_EVENT_DEVICE_ARRIVED | LIBUSB_HOTPLUG_EVENT_DEVICE_LEFT),
      LIBUSB_HOTPLUG_ENUMERATE, LIBUSB_HOTPLUG_MATCH_ANY, LIBUSB_HOTPLUG_MATCH_ANY, LIBUSB_HOTPLUG_MATCH_ANY, cb, this,
      &hotplug_handle_);
  if (rc != LIBUSB_SUCCESS) throw std::runtime_error(std::string("libusb hotplug registration failed: ") + libusb_strerror(rc));
  hotplug_registered_ = true;
}

}  // namespace bodydock::usb
