#include "usb/usb_link.hpp"

#include "usb/usb_context.hpp"
#include "usb/usb_error.hpp"

#include <boost/asio/experimental/awaitable_operators.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/asio/this_coro.hpp>
#include <boost/asio/use_awaitable.hpp>

#include <libusb.h>

#include <algorithm>
#include <cstring>

namespace bodydock::usb {

namespace asio = boost::asio;
using namespace asio::experimental::awaitable_operators;
using boost::system::error_code;

struct UsbCameraLink::Transfer {
  explicit Transfer(std::size_t size) : t(libusb_alloc_transfer(0)), buf(size) {
    if (!t) throw std::bad_alloc();
  }
  ~Transfer() { libusb_free_transfer(t); }
  Transfer(const Transfer&) = delete;
  Transfer& operator=(const Transfer&) = delete;
  libusb_transfer* t;
  std::vector<std::uint8_t> buf;
  UsbCameraLink* owner = nullptr;
  bool busy = false;
  int status = LIBUSB_TRANSFER_COMPLETED;
  int actual = 0;
};

boost::system::result<CameraInterface> match_camera(libusb_device* dev, const CameraMatch& match, std::string& why_not) {
  libusb_device_descriptor dd{};
  if (int rc = libusb_get_device_descriptor(dev, &dd); rc != 0) {
    why_not = "no device descriptor";
    return libusb_error_code(rc);
  }
  if (!match.vid_pid.empty() &&
      std::find(match.vid_pid.begin(), match.vid_pid.end(), std::make_pair(dd.idVendor, dd.idProduct)) == match.vid_pid.end()) {
    char b[64];
    std::snprintf(b, sizeof b, "VID:PID %04x:%04x is not a configured camera", dd.idVendor, dd.idProduct);
    why_not = b;
    return libusb_error_code(LIBUSB_ERROR_NOT_FOUND);
  }
  libusb_config_descriptor* cfg = nullptr;
  if (int rc = libusb_get_active_config_descriptor(dev, &cfg); rc != 0) {
    why_not = std::string("no active configuration: ") + libusb_strerror(rc);
    return libusb_error_code(rc);
  }
  CameraInterface found;
  for (int i = 0; i < cfg->bNumInterfaces && found.number < 0; ++i) {
    for (int a = 0; a < cfg->interface[i].num_altsetting && found.number < 0; ++a) {
      const auto& alt = cfg->interface[i].altsetting[a];
      if (alt.bInterfaceClass != match.interface_class) continue;
      CameraInterface c;
      for (int e = 0; e < alt.bNumEndpoints; ++e) {
        const auto& ep = alt.endpoint[e];
        if ((ep.bmAttributes & LIBUSB_TRANSFER_TYPE_MASK) != LIBUSB_TRANSFER_TYPE_BULK) continue;
        if (ep.bEndpointAddress & LIBUSB_ENDPOINT_IN) c.ep_in = c.ep_in ? c.ep_in : ep.bEndpointAddress;
        else c.ep_out = c.ep_out ? c.ep_out : ep.bEndpointAddress;
      }
      if (c.ep_in && c.ep_out) {
        c.number = alt.bInterfaceNumber;
        found = c;
      }
    }
  }
  libusb_free_config_descriptor(cfg);
  if (found.number < 0) {
    char b[96];
    std::snprintf(b, sizeof b, "no interface of class 0x%02x with bulk IN and OUT endpoints", match.interface_class);
    why_not = b;
    return libusb_error_code(LIBUSB_ERROR_NOT_FOUND);
  }
  return found;
}

boost::system::result<std::unique_ptr<UsbCameraLink>> UsbCameraLink::open(const asio::any_io_executor& ex, libusb_device* dev,
                                                                            const CameraInterface& iface, UsbLinkOptions options,
                                                                            std::string where) {
  libusb_device_handle* h = nullptr;
  if (int rc = libusb_open(dev, &h); rc != 0) return libusb_error_code(rc);
  libusb_set_auto_detach_kernel_driver(h, 0);
  if (int rc = libusb_claim_interface(h, iface.number); rc != 0) {
    libusb_close(h);
    return libusb_error_code(rc);
  }
  std::unique_ptr<UsbCameraLink> link(new UsbCameraLink(ex, h, iface, options, std::move(where)));
  if (auto ec = link->refill()) {
    link->closed_ = true;
    return ec;  // nothing was submitted, or the destructor handles what was
  }
  return link;
}

UsbCameraLink::UsbCameraLink(const asio::any_io_executor& ex, libusb_device_handle* handle, CameraInterface iface, UsbLinkOptions options,
                             std::string where)
    : handle_(handle), iface_(iface), options_(options), where_(std::move(where)), changed_(ex) {
  options_.in_flight = std::max(1u, options_.in_flight);
  for (unsigned i = 0; i < options_.in_flight; ++i) in_.push_back(std::make_unique<Transfer>(options_.transfer_size));
  out_ = std::make_unique<Transfer>(4096);
}

UsbCameraLink::~UsbCameraLink() {
  if (any_busy()) {
    // Freeing a transfer libusb still owns would corrupt memory; leaking it is the safe choice.
    for (auto& t : in_)
      if (t->busy) (void)t.release();
    if (out_->busy) (void)out_.release();
  }
  libusb_release_interface(handle_, iface_.number);
  libusb_close(handle_);
}

bool UsbCameraLink::any_busy() const {
  return (out_ && out_->busy) || std::any_of(in_.begin(), in_.end(), [](const auto& t) { return t->busy; });
}

void UsbCameraLink::on_complete(libusb_transfer* t) {
  note_transfer_completed();
  auto* x = static_cast<Transfer*>(t->user_data);
  x->busy = false;
  x->status = t->status;
  x->actual = t->actual_length;
  x->owner->changed_.notify();
}

error_code UsbCameraLink::submit(Transfer& x) {
  x.owner = this;
  x.busy = true;
  const int rc = libusb_submit_transfer(x.t);
  if (rc != 0) {
    x.busy = false;
    if (rc == LIBUSB_ERROR_NO_DEVICE) gone_ = true;
    return rc == LIBUSB_ERROR_NO_DEVICE ? make_error_code(link_errc::disconnected) : libusb_error_code(rc);
  }
  return {};
}

error_code UsbCameraLink::refill() {
  for (auto& t : in_) {
    if (t->busy || std::find(in_order_.begin(), in_order_.end(), t.get()) != in_order_.end()) continue;
    libusb_fill_bulk_transfer(t->t, handle_, iface_.ep_in, t->buf.data(), static_cast<int>(t->buf.size()), &UsbCameraLink::on_complete,
                              t.get(), 0);
    if (auto ec = submit(*t)) return ec;
    in_order_.push_back(t.get());
  }
  return {};
}

asio::awaitable<error_code> UsbCameraLink::write(proto::ByteView bytes) {
  while (out_->busy) co_await changed_.wait();  // a cancelled earlier write still in flight
  if (closed_) co_return link_errc::closed;
  if (gone_) co_return link_errc::disconnected;
  if (out_->buf.size() < bytes.size()) out_->buf.resize(bytes.size());
  std::memcpy(out_->buf.data(), bytes.data(), bytes.size());
  libusb_fill_bulk_transfer(out_->t, handle_, iface_.ep_out, out_->buf.data(), static_cast<int>(bytes.size()), &UsbCameraLink::on_complete,
                            out_.get(), 0);
  if (auto ec = submit(*out_)) co_return ec;
  while (out_->busy) co_await changed_.wait();
  if (out_->status == LIBUSB_TRANSFER_COMPLETED) co_return error_code{};
  if (out_->status == LIBUSB_TRANSFER_NO_DEVICE) {
    gone_ = true;
    co_return link_errc::disconnected;
  }
  if (out_->status == LIBUSB_TRANSFER_STALL) {
    ++stalls_cleared_;
    (void)libusb_clear_halt(handle_, iface_.ep_out);
  }
  if (out_->status == LIBUSB_TRANSFER_CANCELLED && closed_) co_return link_errc::closed;
  co_return transfer_error_code(out_->status);
}

asio::awaitable<error_code> UsbCameraLink::read(proto::Bytes& out) {
  for (;;) {
    if (closed_) co_return link_errc::closed;
    if (in_order_.empty()) {
      if (gone_) co_return link_errc::disconnected;
      if (auto ec = refill()) co_return ec;
      continue;
    }
    Transfer* head = in_order_.front();
    if (head->busy) {
      co_await changed_.wait();
      continue;
    }
    in_order_.pop_front();
    switch (head->status) {
      case LIBUSB_TRANSFER_COMPLETED:
        out.insert(out.end(), head->buf.begin(), head->buf.begin() + head->actual);
        // Deliver what arrived even if resubmitting fails (the device may be gone by now): the
        // failure shows on the next read. Dropping these bytes would lose the last good chunk.
        if (!gone_) (void)refill();
        if (head->actual == 0) continue;  // zero-length packet: nothing to deliver
        co_return error_code{};
      case LIBUSB_TRANSFER_NO_DEVICE:
        gone_ = true;
        co_return link_errc::disconnected;
      case LIBUSB_TRANSFER_STALL:
        // The device halted the endpoint: clear it and go on (the protocol resynchronises by
        // request id; a lost reply shows up as a timeout above).
        ++stalls_cleared_;
        if (int rc = libusb_clear_halt(handle_, iface_.ep_in); rc == LIBUSB_ERROR_NO_DEVICE) {
          gone_ = true;
          co_return link_errc::disconnected;
        }
        if (auto ec = refill()) co_return ec;
        continue;
      case LIBUSB_TRANSFER_CANCELLED:
        if (closed_) co_return link_errc::closed;
        if (auto ec = refill()) co_return ec;
        continue;
      default:
        co_return transfer_error_code(head->status);
    }
  }
}

void UsbCameraLink::close() {
  if (closed_) return;
  closed_ = true;
  for (auto& t : in_)
    if (t->busy) libusb_cancel_transfer(t->t);
  if (out_->busy) libusb_cancel_transfer(out_->t);
  changed_.notify();
}

void UsbCameraLink::device_gone() {
  gone_ = true;
  changed_.notify();
}

asio::awaitable<void> UsbCameraLink::shutdown() {
  close();
  // libusb hands every cancelled transfer back through its callback; a vanished device does so
  // at once with NO_DEVICE. Bounded, so a wedged host controller cannot hang the daemon.
  asio::steady_timer deadline(co_await asio::this_coro::executor, std::chrono::seconds(2));
  while (any_busy()) {
    auto r = co_await (changed_.wait() || deadline.async_wait(asio::use_awaitable));
    if (r.index() == 1) break;
  }
}

}  // namespace bodydock::usb
