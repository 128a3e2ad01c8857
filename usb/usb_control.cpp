#include "usb/usb_control.hpp"

#include "usb/async_event.hpp"
#include "usb/camera_link.hpp"
#include "usb/usb_context.hpp"
#include "usb/usb_error.hpp"

#include <boost/asio/this_coro.hpp>

#include <libusb.h>

#include <algorithm>
#include <memory>

namespace bodydock::usb {

namespace asio = boost::asio;

namespace {

/// One transfer and its completion. If the waiting coroutine goes away first, the transfer is
/// cancelled and the callback frees it: libusb must never see freed memory.
struct ControlOp {
  explicit ControlOp(const asio::any_io_executor& ex) : done(ex) {}
  ~ControlOp() {
    if (t) libusb_free_transfer(t);
  }
  ControlOp(const ControlOp&) = delete;
  ControlOp& operator=(const ControlOp&) = delete;
  libusb_transfer* t = nullptr;
  std::vector<std::uint8_t> buf;
  AsyncEvent done;
  bool finished = false;
  bool orphaned = false;
  int status = LIBUSB_TRANSFER_COMPLETED;
  int actual = 0;
};

void LIBUSB_CALL on_control_done(libusb_transfer* t) {
  note_transfer_completed();
  auto* op = static_cast<ControlOp*>(t->user_data);
  if (op->orphaned) {
    delete op;
    return;
  }
  op->finished = true;
  op->status = t->status;
  op->actual = t->actual_length;
  op->done.notify();
}

struct OpOwner {
  void operator()(ControlOp* op) const {
    if (op->finished) {
      delete op;
      return;
    }
    op->orphaned = true;  // the callback frees it
    libusb_cancel_transfer(op->t);
  }
};

}  // namespace

asio::awaitable<boost::system::result<std::vector<std::uint8_t>>> control_transfer(libusb_device_handle* handle, ControlRequest r,
                                                                                   std::chrono::milliseconds timeout) {
  auto op = std::make_unique<ControlOp>(co_await asio::this_coro::executor);
  op->t = libusb_alloc_transfer(0);
  if (!op->t) co_return libusb_error_code(LIBUSB_ERROR_NO_MEM);
  const bool in = (r.request_type & LIBUSB_ENDPOINT_IN) != 0;
  if (!in) r.length = static_cast<std::uint16_t>(std::min<std::size_t>(r.data.size(), 0xFFFF));
  op->buf.assign(LIBUSB_CONTROL_SETUP_SIZE + r.length, 0);
  libusb_fill_control_setup(op->buf.data(), r.request_type, r.request, r.value, r.index, r.length);
  if (!in) std::copy_n(r.data.begin(), r.length, op->buf.begin() + LIBUSB_CONTROL_SETUP_SIZE);
  libusb_fill_control_transfer(op->t, handle, op->buf.data(), &on_control_done, op.get(), static_cast<unsigned>(timeout.count()));
  if (int rc = libusb_submit_transfer(op->t); rc != 0) {
    if (rc == LIBUSB_ERROR_NO_DEVICE) co_return make_error_code(link_errc::disconnected);
    co_return libusb_error_code(rc);
  }
  std::unique_ptr<ControlOp, OpOwner> pending(op.release());
  while (!pending->finished) co_await pending->done.wait();
  if (pending->status == LIBUSB_TRANSFER_NO_DEVICE) co_return make_error_code(link_errc::disconnected);
  if (pending->status != LIBUSB_TRANSFER_COMPLETED) co_return transfer_error_code(pending->status);
  const auto* data = pending->buf.data() + LIBUSB_CONTROL_SETUP_SIZE;
  co_return std::vector<std::uint8_t>(data, data + (in ? std::clamp(pending->actual, 0, static_cast<int>(r.length)) : 0));
}

}  // namespace bodydock::usb
