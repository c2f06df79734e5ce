// The AIGES plugin's gRPC server in C++: `gf aiges serve --native` / `python -m server.aiges --native`.
//
// Why it exists: with the Python gRPC server, the gRPC machinery itself costs several
// hundred microseconds of CPU per once-exec round trip, most of the plugin's time. Here the
// whole transport (aiges.WrapperService, go-plugin's GRPCController and GRPCStdio, gRPC
// health) is grpc++, and Python is entered only to run the hosted engine.
//
// Division of labour with Python (server/aiges/native.py):
//   Python  checks the magic cookie, builds the engine, prints the handshake line, watches
//           the parent process and signals, and stops the server;
//   C++     binds the port, serves every rpc, and calls the engine through a small Python
//           `Bridge` object whose methods take and return plain values (str, bytes, int,
//           dict, tuples), never protobuf.
//
// Threading model (that of the Python servicer, with one hop less):
//   - user code runs on a pool of `workers` threads; each keeps one Python thread state for
//     its whole life and holds the GIL only while running a job;
//   - wrapperOnceExec hands the request to the pool and acknowledges at once; the job always
//     produces exactly one Response for the tag, whatever the user code does. It is a raw
//     method: the body is read from gRPC's slices by wire_reader.h, not parsed by protobuf,
//     and each payload is copied once, into the bytes the wrapper gets (see WireRequest);
//   - init, schema and session rpcs wait for their pool job; gRPC threads never take the GIL;
//   - results (once exec, and session frames pushed by user threads through `emit`) go to
//     the Outbox, which writes them to the loader's open `communicate` stream from the
//     producing thread (GIL released), or queues them while no stream is open.

#include <grpcpp/grpcpp.h>
#include <grpcpp/health_check_service_interface.h>
#include <netinet/in.h>
#include <pybind11/pybind11.h>
#include <pybind11/stl.h>
#include <sys/socket.h>
#include <arpa/inet.h>
#include <unistd.h>
#ifdef __GLIBC__
#include <malloc.h>
#endif

#include <atomic>
#include <chrono>
#include <climits>
#include <condition_variable>
#include <cstring>
#include <deque>
#include <functional>
#include <future>
#include <memory>
#include <mutex>
#include <string>
#include <thread>
#include <utility>
#include <vector>

#include "aiges.grpc.pb.h"
#include "plugin.grpc.pb.h"
#include "user_pool.h"
#include "wire_reader.h"

namespace py = pybind11;
using namespace std::chrono_literals;

namespace {

constexpr int kInitFailed = 30001;  // engine not loaded / not initialised
constexpr int kExecFailed = 30003;  // user exec raised, returned nothing, or failed
constexpr auto kPoll = 500ms;       // how often blocked stream handlers re-check for shutdown
constexpr auto kStopPoll = 50ms;
constexpr size_t kTrimEvery = 8u << 20;  // give freed request memory back every 8 MiB    // how often an rpc waiting on user code checks for shutdown

// ---------------------------------------------------------------------------------------
// Outbox: where results go. While a `communicate` stream is open and nothing is queued,
// the thread that produced a result writes it to the stream itself (one thread hop less
// per call); otherwise results queue here and the stream's handler drains them in order.
// Call put() WITHOUT the GIL: a write can wait on the network.
using Stream = grpc::ServerReaderWriter<aiges::Response, aiges::Request>;

class Outbox {
 public:
  void put(aiges::Response&& response) {
    std::unique_lock<std::mutex> lock(mu_);
    if (writer_ == nullptr || closed_ || !queue_.empty()) {
      queue_.push_back(std::move(response));
      lock.unlock();
      cv_.notify_one();
      return;
    }
    std::unique_lock<std::mutex> writing(write_mu_);  // lock order: mu_, then write_mu_
    Stream* stream = writer_;
    lock.unlock();
    if (stream->Write(response)) return;
    writing.unlock();
    failed(stream, std::move(response));
  }

  // The handler of a `communicate` stream: become the direct writer, drain the queue, and
  // return when the stream ends, fails or the outbox closes.
  void serve(grpc::ServerContext* context, Stream* stream, const std::atomic<bool>& stopping) {
    {
      std::lock_guard<std::mutex> lock(mu_);
      writer_ = stream;
    }
    while (!stopping.load() && !context->IsCancelled()) {
      std::unique_lock<std::mutex> lock(mu_);
      cv_.wait_for(lock, kPoll, [this] { return closed_ || !queue_.empty(); });
      if (closed_) break;
      if (queue_.empty()) continue;
      aiges::Response response = std::move(queue_.front());
      queue_.pop_front();
      std::unique_lock<std::mutex> writing(write_mu_);
      lock.unlock();
      if (!stream->Write(response)) {
        writing.unlock();
        failed(stream, std::move(response));
        break;
      }
    }
    {
      std::lock_guard<std::mutex> lock(mu_);
      if (writer_ == stream) writer_ = nullptr;
    }
    std::lock_guard<std::mutex> wait_for_writers(write_mu_);  // no one still writes to it
  }

  void close() {
    {
      std::lock_guard<std::mutex> lock(mu_);
      closed_ = true;
    }
    cv_.notify_all();
  }

 private:
  // A write failed (the stream is gone): keep the response for the next stream, first.
  void failed(Stream* stream, aiges::Response&& response) {
    {
      std::lock_guard<std::mutex> lock(mu_);
      if (writer_ == stream) writer_ = nullptr;
      queue_.push_front(std::move(response));
    }
    cv_.notify_all();
  }

  std::mutex mu_;        // queue_, writer_, closed_
  std::mutex write_mu_;  // one Write at a time
  std::condition_variable cv_;
  std::deque<aiges::Response> queue_;
  Stream* writer_ = nullptr;
  bool closed_ = false;
};

// ---------------------------------------------------------------------------------------
// UserPool: threads that run Python (user_pool.h, shared with libwrapper.cc).
using gf::UserPool;

// ---------------------------------------------------------------------------------------
// Conversions between protobuf and the Bridge's plain values. All need the GIL.

py::dict to_dict(const google::protobuf::Map<std::string, std::string>& map) {
  py::dict d;
  for (const auto& kv : map) d[py::str(kv.first)] = py::str(kv.second);
  return d;
}

// RequestData list -> [(key, data, type, status, desc), ...]. The payload is copied once,
// into the Python bytes, and the protobuf's copy is freed right after (the request is
// owned by the job), so a payload is held twice only while it is converted.
py::list to_items(google::protobuf::RepeatedPtrField<aiges::RequestData>* list) {
  py::list items(list->size());
  for (int i = 0; i < list->size(); ++i) {
    auto* d = list->Mutable(i);
    py::bytes data(d->data());
    std::string().swap(*d->mutable_data());
    items[i] = py::make_tuple(py::str(d->key()), std::move(data), d->type(), d->status(),
                              to_dict(d->desc()));
  }
  return items;
}

// ---------------------------------------------------------------------------------------
// wrapperOnceExec's request, read from gRPC's received slices by wire_reader.h instead of
// protobuf's parser (which copied each payload into a std::string while the slices were
// still held). Each payload is copied once, straight into the Python bytes the wrapper
// gets, and every slice is released as soon as nothing more is copied from it, so a
// payload is held about once, not two or three times.
namespace wire = gf::wire;

py::dict pairs_dict(const wire::Pairs& pairs) {
  py::dict d;
  for (const auto& kv : pairs) d[py::str(kv.first)] = py::str(kv.second);
  return d;
}

// RequestData list -> [(key, data, type, status, desc), ...], the same values to_items
// gives. `release(i)` is called once per piece, when no payload is still to be copied from
// it (pieces holding no payload at once). Needs the GIL; the copies run without it.
template <typename Release>
py::list wire_items(const wire::Request& message, const std::vector<wire::Piece>& pieces,
                    Release&& release) {
  std::vector<long> last_use(pieces.size(), -1);  // the last payload span read from a piece
  long span = 0;
  for (const auto& d : message.list) {
    for (const auto& s : d.spans) last_use[s.piece] = span++;
  }
  for (size_t i = 0; i < pieces.size(); ++i) {
    if (last_use[i] < 0) release(i);
  }
  py::list items(message.list.size());
  span = 0;
  for (size_t i = 0; i < message.list.size(); ++i) {
    const auto& d = message.list[i];
    PyObject* raw = PyBytes_FromStringAndSize(nullptr, static_cast<Py_ssize_t>(d.size));
    if (raw == nullptr) throw py::error_already_set();
    auto data = py::reinterpret_steal<py::bytes>(raw);
    {
      py::gil_scoped_release nogil;  // `data` is ours alone until it is in the list
      char* out = PyBytes_AS_STRING(raw);
      for (const auto& s : d.spans) {
        std::memcpy(out, pieces[s.piece].data + s.offset, s.length);
        out += s.length;
        if (last_use[s.piece] == span++) release(s.piece);
      }
    }
    items[i] = py::make_tuple(py::str(d.key), std::move(data), d.type, d.status,
                              pairs_dict(d.desc));
  }
  return items;
}

// The request a once-exec job owns: gRPC's slices (the ByteBuffer's references moved
// here) and what the wire reader found in them.
struct WireRequest {
  std::vector<grpc::Slice> slices;
  std::vector<wire::Piece> pieces;
  wire::Request message;
  size_t freed = 0;  // bytes of released slices not yet handed back to the system

  // Throws wire::WireError for a body that is not a well-formed aiges.Request.
  static std::shared_ptr<WireRequest> take(const grpc::ByteBuffer* request) {
    auto owned = std::make_shared<WireRequest>();
    {
      // The handler's buffer is not read again once the handler returns: take its slices.
      grpc::ByteBuffer buffer;
      buffer.Swap(const_cast<grpc::ByteBuffer*>(request));
      if (!buffer.Dump(&owned->slices).ok()) owned->slices.clear();  // no body: empty
    }
    size_t total = 0;
    owned->pieces.reserve(owned->slices.size());
    for (const auto& slice : owned->slices) {
      owned->pieces.push_back(wire::Piece{slice.begin(), slice.size()});
      total += slice.size();
    }
    owned->message = wire::parse_request(owned->pieces, total);
    return owned;
  }

  py::list items() {
    return wire_items(message, pieces, [this](size_t i) {
      freed += slices[i].size();
      slices[i] = grpc::Slice();
#ifdef __GLIBC__
      // glibc keeps freed heap memory mapped; without giving it back as we go, the slices'
      // pages stay resident beside the new bytes and the peak is two payloads, not one.
      if (freed >= kTrimEvery) {
        freed = 0;
        malloc_trim(0);
      }
#endif
    });
  }
};

// The handler's request, moved (not copied) into an object the job owns: the sync server
// does not read it after the handler returns.
template <typename Message>
std::shared_ptr<Message> take(const Message* request) {
  auto owned = std::make_shared<Message>();
  owned->Swap(const_cast<Message*>(request));
  return owned;
}

// [(key, data, type, status, desc), ...] -> Response.list
void fill_frames(aiges::Response* response, py::handle frames) {
  for (py::handle frame : frames) {
    auto t = frame.cast<py::tuple>();
    auto* d = response->add_list();
    d->set_key(t[0].cast<std::string>());
    std::string data = t[1].cast<std::string>();
    d->set_len(data.size());
    d->set_data(std::move(data));
    d->set_type(t[2].cast<uint32_t>());
    d->set_status(t[3].cast<uint32_t>());
    for (auto kv : t[4].cast<py::dict>()) {
      (*d->mutable_desc())[kv.first.cast<std::string>()] = kv.second.cast<std::string>();
    }
  }
}

aiges::Response failure(const std::string& tag, int ret) {
  aiges::Response r;
  r.set_tag(tag);
  r.set_ret(ret);
  return r;
}

// ---------------------------------------------------------------------------------------
// State shared by the services, the pool and the Python `emit` callback.
struct State {
  py::object bridge;  // touched only with the GIL held
  Outbox outbox;
  UserPool pool;
  std::atomic<bool> stopping{false};
  std::mutex stop_mu;
  std::condition_variable stop_cv;
  bool shutdown_requested = false;

  // Log through the bridge (Python logging). Needs the GIL.
  void log(const char* level, const std::string& message) {
    try {
      bridge.attr("log")(level, message);
    } catch (py::error_already_set&) {
      PyErr_Clear();
    }
  }

  void log_current_exception(const std::string& what, py::error_already_set& e) {
    log("error", what + ": " + e.what());
  }

  // Run `fn` on the user pool and wait for it; `fallback` when it cannot run, raises, or
  // the server starts stopping while it runs (a user call that never returns must not
  // hold the rpc, and with it the server's shutdown). `fn` may outlive the rpc, so it
  // must own copies of whatever it reads from the request.
  template <typename T>
  T run_sync(const char* what, std::function<T()> fn, T fallback) {
    auto promise = std::make_shared<std::promise<T>>();
    auto future = promise->get_future();
    bool queued = pool.submit([this, what, fn = std::move(fn), promise, fallback] {
      try {
        promise->set_value(fn());
      } catch (py::error_already_set& e) {
        log_current_exception(what, e);
        promise->set_value(fallback);
      } catch (std::exception& e) {
        log("error", std::string(what) + ": " + e.what());
        promise->set_value(fallback);
      }
    });
    if (!queued) return fallback;
    while (future.wait_for(kStopPoll) != std::future_status::ready) {
      if (stopping.load()) return fallback;
    }
    try {
      return future.get();
    } catch (std::future_error&) {  // the pool stopped and dropped the job
      return fallback;
    }
  }

  void request_shutdown() {
    {
      std::lock_guard<std::mutex> lock(stop_mu);
      shutdown_requested = true;
    }
    stop_cv.notify_all();
  }

  // The once-exec job: always queues exactly one Response for the tag. Runs with the GIL.
  void once_job(WireRequest& request) {
    const std::string& tag = request.message.tag;
    aiges::Response response;
    response.set_tag(tag);
    try {
      py::dict params = pairs_dict(request.message.params);
      py::list items = request.items();
      py::tuple result = bridge.attr("once")(params, items, tag);
      response.set_ret(result[0].cast<int>());
      fill_frames(&response, result[1]);
    } catch (py::error_already_set& e) {
      log_current_exception("once exec (tag " + tag + ")", e);
      response = failure(tag, kExecFailed);
    } catch (std::exception& e) {
      log("error", "once exec (tag " + tag + "): " + e.what());
      response = failure(tag, kExecFailed);
    }
    py::gil_scoped_release nogil;
    outbox.put(std::move(response));
  }
};

// ---------------------------------------------------------------------------------------
// aiges.WrapperService
class WrapperService final
    : public aiges::WrapperService::WithRawCallbackMethod_wrapperOnceExec<
          aiges::WrapperService::Service> {
 public:
  explicit WrapperService(std::shared_ptr<State> state) : st_(std::move(state)) {}

  grpc::Status wrapperInit(grpc::ServerContext*, const aiges::InitRequest* request,
                           aiges::Ret* reply) override {
    auto& st = *st_;
    auto copy = std::make_shared<aiges::InitRequest>(*request);
    int ret = st.run_sync<int>(
        "engine init",
        [&st, copy] { return st.bridge.attr("init")(to_dict(copy->config())).cast<int>(); },
        kInitFailed);
    reply->set_ret(ret);
    return grpc::Status::OK;
  }

  grpc::Status wrapperSchema(grpc::ServerContext*, const aiges::SvcId* request,
                             aiges::Schema* reply) override {
    auto& st = *st_;
    using Result = std::pair<bool, std::string>;  // (ok, schema or error)
    std::string service_id = request->serviceid();
    Result result = st.run_sync<Result>(
        "wrapperSchema",
        [&st, service_id]() -> Result {
          try {
            return {true, st.bridge.attr("schema")(service_id).cast<std::string>()};
          } catch (py::error_already_set& e) {
            st.log_current_exception("wrapperSchema", e);
            return {false, e.what()};
          }
        },
        Result{false, "plugin stopping"});
    if (!result.first) {
      return grpc::Status(grpc::StatusCode::INTERNAL, "cannot build the schema: " + result.second);
    }
    reply->set_data(std::move(result.second));
    return grpc::Status::OK;
  }

  // Raw: the body arrives as gRPC's ByteBuffer and is read by wire_reader.h (see
  // WireRequest). A callback method: it never waits, it only hands the request over.
  grpc::ServerUnaryReactor* wrapperOnceExec(grpc::CallbackServerContext* context,
                                            const grpc::ByteBuffer* request,
                                            grpc::ByteBuffer* reply) override {
    auto* reactor = context->DefaultReactor();
    std::shared_ptr<WireRequest> owned;
    try {
      owned = WireRequest::take(request);
    } catch (wire::WireError& e) {
      reactor->Finish(grpc::Status(grpc::StatusCode::INVALID_ARGUMENT,
                                   std::string("wrapperOnceExec: the body is not a valid "
                                               "aiges.Request (") +
                                       e.what() + "); send a serialized aiges.Request"));
      return reactor;
    }
    auto st = st_;
    aiges::Response ack;
    ack.set_tag(owned->message.tag);
    ack.set_ret(0);
    if (!st->pool.submit([st, owned] { st->once_job(*owned); })) {
      st->outbox.put(failure(ack.tag(), kExecFailed));
      ack.set_ret(kExecFailed);
    }
    grpc::Slice slice(ack.SerializeAsString());
    *reply = grpc::ByteBuffer(&slice, 1);
    reactor->Finish(grpc::Status::OK);
    return reactor;
  }

  grpc::Status wrapperCreate(grpc::ServerContext*, const aiges::CreateRequest* request,
                             aiges::Handle* reply) override {
    auto& st = *st_;
    using Pair = std::pair<std::string, int>;
    auto copy = std::make_shared<aiges::CreateRequest>(*request);
    Pair result = st.run_sync<Pair>(
        "create",
        [&st, copy]() -> Pair {
          py::tuple t =
              st.bridge.attr("create")(to_dict(copy->params()), copy->sid(), copy->tag());
          return {t[0].cast<std::string>(), t[1].cast<int>()};
        },
        Pair{std::string(), kExecFailed});
    reply->set_handle(result.first);
    reply->set_err_code(result.second);
    return grpc::Status::OK;
  }

  grpc::Status wrapperWrite(grpc::ServerContext*, const aiges::WriteMessage* request,
                            aiges::Ret* reply) override {
    auto& st = *st_;
    auto copy = take(request);
    int ret = st.run_sync<int>(
        "write",
        [&st, copy] {
          return st.bridge
              .attr("write")(copy->handle(), to_items(copy->mutable_req()->mutable_list()),
                             copy->sid())
              .cast<int>();
        },
        kExecFailed);
    reply->set_ret(ret);
    return grpc::Status::OK;
  }

  grpc::Status wrapperDestroy(grpc::ServerContext*, const aiges::Handle* request,
                              aiges::Ret* reply) override {
    auto& st = *st_;
    std::string handle = request->handle();
    int ret = st.run_sync<int>(
        "destroy", [&st, handle] { return st.bridge.attr("destroy")(handle).cast<int>(); },
        kExecFailed);
    reply->set_ret(ret);
    return grpc::Status::OK;
  }

  grpc::Status communicate(grpc::ServerContext* context, Stream* stream) override {
    // The loader does not send on this stream; whatever it sends is read and dropped.
    std::thread reader([stream] {
      aiges::Request ignored;
      while (stream->Read(&ignored)) {
      }
    });
    st_->outbox.serve(context, stream, st_->stopping);
    context->TryCancel();  // ends the reader's Read
    reader.join();
    return grpc::Status::OK;
  }

  grpc::Status testStream(grpc::ServerContext*,
                          grpc::ServerReaderWriter<aiges::Response, aiges::StreamRequest>* stream) override {
    aiges::StreamRequest message;
    for (int i = 0; stream->Read(&message); ++i) {
      aiges::Response r;
      r.set_tag(std::to_string(i));
      auto* d = r.add_list();
      d->set_key("data");
      d->set_len(message.data().size());
      d->set_data(message.data());
      d->set_status(1);
      if (!stream->Write(r)) break;
    }
    return grpc::Status::OK;
  }

 private:
  std::shared_ptr<State> st_;
};

// go-plugin's controller: Shutdown asks the plugin to exit.
class Controller final : public plugin::GRPCController::Service {
 public:
  explicit Controller(std::shared_ptr<State> state) : st_(std::move(state)) {}
  grpc::Status Shutdown(grpc::ServerContext*, const plugin::Empty*, plugin::Empty*) override {
    st_->request_shutdown();
    return grpc::Status::OK;
  }

 private:
  std::shared_ptr<State> st_;
};

// go-plugin's stdio stream. Our output reaches the loader through the process's pipes,
// so the stream stays open and carries nothing.
class Stdio final : public plugin::GRPCStdio::Service {
 public:
  explicit Stdio(std::shared_ptr<State> state) : st_(std::move(state)) {}
  grpc::Status StreamStdio(grpc::ServerContext* context, const google::protobuf::Empty*,
                           grpc::ServerWriter<plugin::StdioData>*) override {
    std::unique_lock<std::mutex> lock(st_->stop_mu);
    while (!context->IsCancelled() && !st_->stopping.load()) st_->stop_cv.wait_for(lock, kPoll);
    return grpc::Status::OK;
  }

 private:
  std::shared_ptr<State> st_;
};

// True when nothing listens on host:port (a plain bind, no SO_REUSEADDR/SO_REUSEPORT).
bool port_is_free(const std::string& host, int port) {
  int fd = ::socket(AF_INET, SOCK_STREAM, 0);
  if (fd < 0) return false;
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_port = htons(static_cast<uint16_t>(port));
  if (::inet_pton(AF_INET, host.c_str(), &addr.sin_addr) != 1) {
    ::close(fd);
    return true;  // not an IPv4 literal: let gRPC decide
  }
  bool ok = ::bind(fd, reinterpret_cast<sockaddr*>(&addr), sizeof(addr)) == 0;
  ::close(fd);
  return ok;
}

// ---------------------------------------------------------------------------------------
// The server object Python drives.
class NativeServer {
 public:
  NativeServer(py::object bridge, const std::string& host, int port_low, int port_high,
               int workers)
      : st_(std::make_shared<State>()) {
    st_->bridge = std::move(bridge);
    std::weak_ptr<State> weak = st_;
    // Session results pushed by user threads: emit(tag, ret, frames).
    st_->bridge.attr("bind")(py::cpp_function([weak](const std::string& tag, int ret, py::handle frames) {
      auto st = weak.lock();
      if (!st) return;
      aiges::Response response;
      response.set_tag(tag);
      response.set_ret(ret);
      fill_frames(&response, frames);
      py::gil_scoped_release nogil;
      st->outbox.put(std::move(response));
    }));
    st_->pool.start(workers < 1 ? 1 : workers);

    py::gil_scoped_release release;
    grpc::EnableDefaultHealthCheckService(true);
    std::string last_error;
    if (port_low > 0 && port_high >= port_low) {
      for (int port = port_low; port <= port_high && !server_; ++port) {
        if (port_is_free(host, port)) build(host, port);
      }
      if (!server_) {
        shutdown_pool();
        throw std::runtime_error("no free port in PLUGIN_MIN_PORT..PLUGIN_MAX_PORT = " +
                                 std::to_string(port_low) + ".." + std::to_string(port_high));
      }
    } else {
      build(host, 0);
      if (!server_) {
        shutdown_pool();
        throw std::runtime_error("cannot bind an ephemeral port on " + host);
      }
    }
    auto* health = server_->GetHealthCheckService();
    if (health != nullptr) {
      health->SetServingStatus(true);
      health->SetServingStatus("plugin", true);
    }
  }

  ~NativeServer() {
    if (server_) {
      py::gil_scoped_release release;
      stop_now(0.0, 0.0);
    }
  }

  int port() const { return port_; }

  // Wait up to `timeout` seconds for the loader's Shutdown; true once it was requested.
  bool wait_shutdown(double timeout) {
    py::gil_scoped_release release;
    std::unique_lock<std::mutex> lock(st_->stop_mu);
    st_->stop_cv.wait_for(lock, std::chrono::duration<double>(timeout),
                          [this] { return st_->shutdown_requested; });
    return st_->shutdown_requested;
  }

  // Stop serving: refuse new work, cancel streams, wait up to `grace` seconds for rpcs and
  // up to `pool_wait` more for running user calls. Returns how many user threads were
  // still running and left behind (see UserPool::stop).
  int stop(double grace, double pool_wait) {
    py::gil_scoped_release release;
    return stop_now(grace, pool_wait);
  }

 private:
  void build(const std::string& host, int port) {
    std::vector<std::unique_ptr<grpc::Service>> services;
    services.push_back(std::make_unique<WrapperService>(st_));
    services.push_back(std::make_unique<Controller>(st_));
    services.push_back(std::make_unique<Stdio>(st_));
    grpc::ServerBuilder builder;
    int selected = 0;
    builder.AddListeningPort(host + ":" + std::to_string(port), grpc::InsecureServerCredentials(),
                             &selected);
    builder.SetMaxReceiveMessageSize(INT_MAX);
    builder.SetMaxSendMessageSize(INT_MAX);
    builder.AddChannelArgument(GRPC_ARG_ALLOW_REUSEPORT, 0);
    for (auto& s : services) builder.RegisterService(s.get());
    auto server = builder.BuildAndStart();
    if (server && selected > 0 && (port == 0 || selected == port)) {
      server_ = std::move(server);
      services_ = std::move(services);
      port_ = selected;
    } else if (server) {
      server->Shutdown();
      server->Wait();
    }
  }

  int stop_now(double grace, double pool_wait) {
    if (!server_) return 0;
    st_->stopping.store(true);
    st_->outbox.close();
    st_->stop_cv.notify_all();
    if (auto* health = server_->GetHealthCheckService()) health->SetServingStatus(false);
    server_->Shutdown(std::chrono::system_clock::now() +
                      std::chrono::milliseconds(static_cast<int64_t>(grace * 1000)));
    server_->Wait();
    server_.reset();
    services_.clear();
    return shutdown_pool(pool_wait);
  }

  int shutdown_pool(double wait = 0.0) {
    int detached = st_->pool.stop(wait);
    py::gil_scoped_acquire gil;
    st_->bridge = py::none();
    return detached;
  }

  std::shared_ptr<State> st_;
  std::unique_ptr<grpc::Server> server_;
  std::vector<std::unique_ptr<grpc::Service>> services_;
  int port_ = 0;
};

}  // namespace

PYBIND11_MODULE(_native, m) {
  m.doc() = "The AIGES plugin's gRPC server in C++ (see server/aiges/native.py).";
  m.attr("grpc_version") = grpc::Version();
  py::class_<NativeServer>(m, "NativeServer")
      .def(py::init<py::object, const std::string&, int, int, int>(), py::arg("bridge"),
           py::arg("host"), py::arg("port_low"), py::arg("port_high"), py::arg("workers"))
      .def_property_readonly("port", &NativeServer::port)
      .def("wait_shutdown", &NativeServer::wait_shutdown, py::arg("timeout"))
      .def("stop", &NativeServer::stop, py::arg("grace") = 1.0, py::arg("pool_wait") = 0.0);
  // For the tests: wrapperOnceExec's reading of a body split into `chunks` (as gRPC's
  // slices would be): (tag, params, items, pieces released in order); ValueError when the
  // body is not a valid aiges.Request.
  m.def(
      "_parse_request",
      [](const std::vector<py::bytes>& chunks) {
        std::vector<std::string> owned;
        owned.reserve(chunks.size());
        for (const auto& c : chunks) owned.push_back(c.cast<std::string>());
        std::vector<wire::Piece> pieces;
        size_t total = 0;
        for (const auto& c : owned) {
          pieces.push_back(wire::Piece{reinterpret_cast<const uint8_t*>(c.data()), c.size()});
          total += c.size();
        }
        wire::Request message;
        try {
          message = wire::parse_request(pieces, total);
        } catch (wire::WireError& e) {
          throw py::value_error(e.what());
        }
        py::list released;
        std::vector<size_t> order;
        py::list items = wire_items(message, pieces, [&order](size_t i) { order.push_back(i); });
        for (size_t i : order) released.append(i);
        return py::make_tuple(message.tag, pairs_dict(message.params), items, released);
      },
      py::arg("chunks"));
}
