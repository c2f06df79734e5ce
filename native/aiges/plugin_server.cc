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
//     the Outbox (outbox.h), which writes them to the loader's open `communicate` stream
//     from the producing thread (GIL released), or queues them while no stream is open.
//
// Limits (README "AIGES queue limits"): once-exec bodies accepted but not finished hold at
// most `queue_bytes` (GF_AIGES_QUEUE_MB); a body that would go over it is refused at once
// with RESOURCE_EXHAUSTED. Results queued in the Outbox hold at most as much again (the
// oldest replaced by a 30003 Response for their tag, one warning a second at most). A peer that stops answering HTTP/2 pings for keepalive_ms +
// keepalive_timeout_ms (GF_AIGES_KEEPALIVE_S / _TIMEOUT_S) is disconnected, so a frozen
// client's half-sent body is not held forever.
//
// This file: the services, the shared State and the module. Not here: the results' queue
// (outbox.h), request/response frames <-> Python (request_frames.h), the wire format
// (wire_reader.h), the user threads (user_pool.h), the process rules (native.py).

#include <grpcpp/grpcpp.h>
#include <grpcpp/health_check_service_interface.h>
#include <netinet/in.h>
#include <pybind11/pybind11.h>
#include <pybind11/stl.h>
#include <sys/socket.h>
#include <arpa/inet.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <climits>
#include <condition_variable>
#include <cstdio>
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
#include "outbox.h"
#include "plugin.grpc.pb.h"
#include "request_frames.h"
#include "user_pool.h"
#include "wire_reader.h"

namespace py = pybind11;
using namespace std::chrono_literals;

namespace {

constexpr int kInitFailed = 30001;  // engine not loaded / not initialised
constexpr int kExecFailed = 30003;  // user exec raised, returned nothing, or failed
constexpr auto kPoll = 500ms;       // how often blocked stream handlers re-check for shutdown
constexpr auto kStopPoll = 50ms;   // how often an rpc waiting on user code checks for shutdown
constexpr size_t kMiB = 1u << 20;

using gf::Outbox;
using gf::Stream;
using gf::frames::fill_frames;
using gf::frames::pairs_dict;
using gf::frames::take;
using gf::frames::to_dict;
using gf::frames::to_items;
using gf::frames::wire_items;
using gf::frames::WireRequest;
namespace wire = gf::wire;

// ---------------------------------------------------------------------------------------
// UserPool: threads that run Python (user_pool.h, shared with libwrapper.cc).
using gf::UserPool;

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
  std::shared_ptr<gf::ByteBudget> budget = std::make_shared<gf::ByteBudget>();
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

  // Queue a result (without the GIL) and say, with the GIL, what the Outbox dropped.
  void deliver(aiges::Response&& response) {
    gf::Dropped dropped;
    {
      py::gil_scoped_release nogil;
      dropped = outbox.put(std::move(response));
    }
    if (dropped.count > 0) log_dropped(dropped);
  }

  // Same, from a gRPC thread (which never takes the GIL): a drop is said on stderr.
  void deliver_nogil(aiges::Response&& response) {
    gf::Dropped dropped = outbox.put(std::move(response));
    if (dropped.count > 0) {
      std::fprintf(stderr, "aiges plugin: %s\n", dropped_text(dropped).c_str());
    }
  }

  std::string dropped_text(const gf::Dropped& d) {
    std::string tags;
    for (const auto& t : d.first_tags) tags += (tags.empty() ? "" : ", ") + t;
    if (d.count > d.first_tags.size()) tags += ", ...";
    return "no communicate stream read results and they passed GF_AIGES_QUEUE_MB (" +
           std::to_string(budget->limit() / kMiB) + " MiB): " + std::to_string(d.count) +
           " oldest result(s) (" + std::to_string(d.bytes / kMiB) + " MiB, tags " + tags +
           ") were replaced by ret " + std::to_string(gf::kDroppedRet) +
           " with no data; open communicate before sending once execs";
  }

  void log_dropped(const gf::Dropped& d) { log("warning", dropped_text(d)); }

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
    deliver(std::move(response));
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
    size_t held = 0;
    if (!st->budget->try_take(owned->total, &held)) {
      size_t limit = st->budget->limit();
      reactor->Finish(grpc::Status(
          grpc::StatusCode::RESOURCE_EXHAUSTED,
          "wrapperOnceExec: tag " + owned->message.tag + ": " + std::to_string(owned->total) +
              " bytes would exceed GF_AIGES_QUEUE_MB=" + std::to_string(limit / kMiB) +
              " (requests waiting for or in user code hold " + std::to_string(held) +
              " bytes); retry when earlier calls finish, or raise GF_AIGES_QUEUE_MB"));
      return reactor;
    }
    auto hold = std::make_shared<gf::BudgetHold>(st->budget, owned->total);
    aiges::Response ack;
    ack.set_tag(owned->message.tag);
    ack.set_ret(0);
    if (!st->pool.submit([st, owned, hold] { st->once_job(*owned); })) {
      st->deliver_nogil(failure(ack.tag(), kExecFailed));
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
               int workers, size_t queue_bytes, int keepalive_ms, int keepalive_timeout_ms)
      : st_(std::make_shared<State>()),
        keepalive_ms_(keepalive_ms),
        keepalive_timeout_ms_(keepalive_timeout_ms) {
    st_->bridge = std::move(bridge);
    st_->budget->set_limit(queue_bytes);
    st_->outbox.set_limit(queue_bytes);
    std::weak_ptr<State> weak = st_;
    // Session results pushed by user threads: emit(tag, ret, frames).
    st_->bridge.attr("bind")(py::cpp_function([weak](const std::string& tag, int ret, py::handle frames) {
      auto st = weak.lock();
      if (!st) return;
      aiges::Response response;
      response.set_tag(tag);
      response.set_ret(ret);
      fill_frames(&response, frames);
      st->deliver(std::move(response));
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
    // Ping every peer; one that does not answer (SIGSTOPped, a dead host) is disconnected,
    // and with it whatever it had half sent. Pings go out also while no data flows (a stalled
    // upload sends none), and a loader's own pings are accepted as often as ours go out.
    if (keepalive_ms_ > 0) {
      builder.AddChannelArgument(GRPC_ARG_KEEPALIVE_TIME_MS, keepalive_ms_);
      builder.AddChannelArgument(GRPC_ARG_KEEPALIVE_TIMEOUT_MS, keepalive_timeout_ms_);
      builder.AddChannelArgument(GRPC_ARG_KEEPALIVE_PERMIT_WITHOUT_CALLS, 1);
      builder.AddChannelArgument(GRPC_ARG_HTTP2_MAX_PINGS_WITHOUT_DATA, 0);
      builder.AddChannelArgument(GRPC_ARG_HTTP2_MIN_RECV_PING_INTERVAL_WITHOUT_DATA_MS,
                                 std::min(keepalive_ms_, 10000));
      builder.AddChannelArgument(GRPC_ARG_HTTP2_MAX_PING_STRIKES, 0);
    }
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
    report_drops();  // now: a stop that runs out of its time still said what it dropped
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
    report_drops();
    py::gil_scoped_acquire gil;
    st_->bridge = py::none();
    return detached;
  }

  // Log what the Outbox dropped and has not said yet (called without the GIL).
  void report_drops() {
    gf::Dropped dropped = st_->outbox.take_drops();
    if (dropped.count == 0) return;
    py::gil_scoped_acquire gil;
    st_->log_dropped(dropped);
  }

  std::shared_ptr<State> st_;
  int keepalive_ms_;
  int keepalive_timeout_ms_;
  std::unique_ptr<grpc::Server> server_;
  std::vector<std::unique_ptr<grpc::Service>> services_;
  int port_ = 0;
};

}  // namespace

PYBIND11_MODULE(_native, m) {
  m.doc() = "The AIGES plugin's gRPC server in C++ (see server/aiges/native.py).";
  m.attr("grpc_version") = grpc::Version();
  py::class_<NativeServer>(m, "NativeServer")
      .def(py::init<py::object, const std::string&, int, int, int, size_t, int, int>(),
           py::arg("bridge"), py::arg("host"), py::arg("port_low"), py::arg("port_high"),
           py::arg("workers"), py::arg("queue_bytes") = size_t{256} << 20,
           py::arg("keepalive_ms") = 30000, py::arg("keepalive_timeout_ms") = 10000)
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
