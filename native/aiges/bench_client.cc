// aiges-bench-client: a native, loader-emulating client for bench/bench_aiges.py.
//
// The AIGES loader (a Go program) sends every once-exec request as a unary
// `aiges.WrapperService/wrapperOnceExec(Request{tag=T})` and receives the result as a
// `Response{tag=T}` on the bidirectional `communicate` stream, which it opens once per
// plugin. This program does the same against an already started and initialised plugin
// (the Python bench did the handshake, `wrapperInit` and `wrapperSchema`; this client
// must not repeat them), so that every plugin is measured with one cheap native client
// instead of a Python client that competes with the server for the CPU.
//
//   aiges-bench-client --target 127.0.0.1:PORT --calls N --in-flight K [--warmup W]
//                      [--text "hello benchmark"] [--expect "HELLO BENCHMARK"] [--key text]
//                      [--wait-after-warmup]
//
// Load: K independent callers, each making N/K calls one after the other (K=1 is the
// sequential case), after W warm-up calls (default 200, spread the same way, not
// measured). A call's latency runs from just before its unary is sent until its result
// has arrived on `communicate` and its unary reply is in (the result usually comes last).
//
// The K callers are state machines driven by one thread from one gRPC completion queue,
// which also reads `communicate`. A first version with one OS thread per caller (sync
// unary calls plus a reader thread handing results over) cost 1.3-2.5x more CPU per call
// (the most with 8 in flight) and, with 8 in flight against the C++ plugin, capped the
// rate at about 60% of what this design reaches; on a 2-core machine shared with the
// plugin that would distort the comparison.
//
// Output: one JSON line on stdout,
//
//   {"calls": n, "errors": e, "seconds": wall, "calls_per_s": x, "p50_ms": y,
//    "p99_ms": z, "client_cpu_us": cpu_per_call}
//
// with this process's CPU time (all threads, getrusage) per measured call. An error is a
// failed unary, a result with ret != 0 or unexpected data, no result within 30 s, or a
// result with a tag nobody waits for; errors during the warm-up count too. With
// --wait-after-warmup the client prints "aiges-bench-client: warm-up done" on stderr after
// the warm-up and waits for a line on stdin before it starts measuring, so the caller can
// read the plugin's CPU counters at exactly that point.
//
// Exit status: 0 without errors, 1 with errors, 2 when the plugin cannot be reached or
// `communicate` closes early, 64 on bad usage.

#include <sys/resource.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <chrono>
#include <climits>
#include <cstdio>
#include <cstdlib>
#include <memory>
#include <string>
#include <unordered_map>
#include <unordered_set>
#include <vector>

#include <grpcpp/grpcpp.h>

#include "aiges.grpc.pb.h"

namespace {

using Clock = std::chrono::steady_clock;  // latencies and result deadlines

constexpr auto kCallTimeout = std::chrono::seconds(30);
constexpr auto kConnectTimeout = std::chrono::seconds(10);
constexpr long kMaxErrorMessages = 5;  // details printed to stderr; the rest only counted

// gRPC deadlines are system_clock time points.
std::chrono::system_clock::time_point grpc_deadline(std::chrono::seconds from_now) {
  return std::chrono::system_clock::now() + from_now;
}

struct Options {
  std::string target;
  long calls = 0;
  long in_flight = 1;
  long warmup = 200;
  std::string text = "hello benchmark";
  std::string expect;
  bool check_data = false;  // --expect given
  std::string key = "text";
  bool wait_after_warmup = false;
};

[[noreturn]] void usage(const std::string& message) {
  std::fprintf(stderr,
               "aiges-bench-client: %s\n"
               "usage: aiges-bench-client --target HOST:PORT --calls N --in-flight K "
               "[--warmup W] [--text TEXT] [--expect TEXT] [--key KEY] "
               "[--wait-after-warmup]\n",
               message.c_str());
  std::exit(64);
}

[[noreturn]] void fail(const std::string& message) {
  std::fprintf(stderr, "aiges-bench-client: %s\n", message.c_str());
  std::fflush(stderr);
  std::_Exit(2);  // skip destructors: gRPC operations may still be pending
}

long parse_count(const std::string& flag, const char* value, long minimum) {
  char* end = nullptr;
  errno = 0;
  const long n = std::strtol(value, &end, 10);
  if (errno != 0 || end == value || *end != '\0' || n < minimum) {
    usage(flag + " needs an integer >= " + std::to_string(minimum));
  }
  return n;
}

Options parse_args(int argc, char** argv) {
  Options opt;
  for (int i = 1; i < argc; ++i) {
    const std::string flag = argv[i];
    if (flag == "-h" || flag == "--help") usage("a loader-emulating once-exec benchmark client");
    if (flag == "--wait-after-warmup") {
      opt.wait_after_warmup = true;
      continue;
    }
    if (i + 1 >= argc) usage(flag + " needs a value");
    const char* value = argv[++i];
    if (flag == "--target") {
      opt.target = value;
    } else if (flag == "--calls") {
      opt.calls = parse_count(flag, value, 1);
    } else if (flag == "--in-flight") {
      opt.in_flight = parse_count(flag, value, 1);
    } else if (flag == "--warmup") {
      opt.warmup = parse_count(flag, value, 0);
    } else if (flag == "--text") {
      opt.text = value;
    } else if (flag == "--expect") {
      opt.expect = value;
      opt.check_data = true;
    } else if (flag == "--key") {
      opt.key = value;
    } else {
      usage("unknown option " + flag);
    }
  }
  if (opt.target.empty()) usage("--target is required");
  if (opt.calls == 0) usage("--calls is required");
  if (opt.calls < opt.in_flight) usage("--calls must be at least --in-flight");
  return opt;
}

double cpu_seconds() {
  rusage usage{};
  getrusage(RUSAGE_SELF, &usage);
  auto seconds = [](const timeval& tv) { return tv.tv_sec + tv.tv_usec / 1e6; };
  return seconds(usage.ru_utime) + seconds(usage.ru_stime);
}

double percentile(std::vector<double> values, double q) {
  if (values.empty()) return 0.0;
  std::sort(values.begin(), values.end());
  const size_t index = std::min(values.size() - 1, static_cast<size_t>(q * values.size()));
  return values[index];
}

// One logical caller: makes its calls one after the other. Its address is the
// completion-queue tag of its current unary.
struct Caller {
  long left = 0;  // calls still to start
  std::string tag;
  std::unique_ptr<grpc::ClientContext> context;
  std::unique_ptr<grpc::ClientAsyncResponseReader<aiges::Response>> unary;
  aiges::Response reply;  // the unary's reply: ignored, as the loader does
  grpc::Status status;
  bool replied = false;  // the unary completed
  bool arrived = false;  // the result came on communicate
  bool failed = false;   // already counted as an error
  Clock::time_point began, replied_at, arrived_at, deadline;
};

// The client: one completion queue serving the `communicate` stream and every caller.
class Bench {
 public:
  explicit Bench(const Options& opt) : opt_(opt) {
    grpc::ChannelArguments args;
    args.SetMaxSendMessageSize(INT_MAX);
    args.SetMaxReceiveMessageSize(INT_MAX);
    channel_ = grpc::CreateCustomChannel(opt.target, grpc::InsecureChannelCredentials(), args);
    stub_ = aiges::WrapperService::NewStub(channel_);
    auto* item = request_.add_list();
    item->set_key(opt.key);
    item->set_data(opt.text);
    item->set_len(opt.text.size());
    item->set_type(0);    // text
    item->set_status(3);  // once
    prefix_ = "bench-" + std::to_string(getpid()) + "-";
  }

  // Connects and opens `communicate`; exits with status 2 when either fails.
  void open() {
    if (!channel_->WaitForConnected(grpc_deadline(kConnectTimeout))) {
      fail("cannot connect to " + opt_.target + " within 10 s");
    }
    // Starting the call sends its initial metadata, so the plugin sees the stream open
    // before the first request goes out.
    stream_ = stub_->Asynccommunicate(&stream_context_, &cq_, kStreamStarted);
    void* tag = nullptr;
    bool ok = false;
    if (!cq_.Next(&tag, &ok) || tag != kStreamStarted) fail("completion queue broke");
    if (!ok) {  // the call could not start: fetch its status for the message
      stream_->Finish(&stream_status_, kStreamFinished);
      while (cq_.Next(&tag, &ok) && tag != kStreamFinished) {
      }
      stream_closed();
    }
    stream_->Read(&incoming_, kStreamRead);
  }

  // Runs `per_caller` calls on each of `callers` callers; appends every successful
  // call's latency (seconds) to `latencies`.
  void run(long callers, long per_caller, std::vector<double>* latencies) {
    std::vector<Caller> pool(callers);
    long busy = 0;
    for (auto& caller : pool) {
      caller.left = per_caller;
      start(&caller);
      ++busy;
    }
    while (busy > 0) {
      void* tag = nullptr;
      bool ok = false;
      switch (cq_.AsyncNext(&tag, &ok, next_deadline(pool))) {
        case grpc::CompletionQueue::SHUTDOWN:
          fail("completion queue shut down");
        case grpc::CompletionQueue::TIMEOUT:
          expire(&pool);
          break;
        case grpc::CompletionQueue::GOT_EVENT:
          if (tag == kStreamRead) {
            on_result(ok);
          } else if (tag == kStreamFinished) {
            stream_closed();
          } else {
            on_reply(static_cast<Caller*>(tag));
          }
          break;
      }
      // Finish the callers whose call is complete and start their next one.
      for (auto& caller : pool) {
        if (caller.context == nullptr || !caller.replied || !(caller.arrived || caller.failed)) {
          continue;
        }
        if (!caller.failed) {
          const auto done = std::max(caller.arrived_at, caller.replied_at);
          latencies->push_back(std::chrono::duration<double>(done - caller.began).count());
        }
        caller.context.reset();
        if (caller.left > 0) {
          start(&caller);
        } else {
          --busy;
        }
      }
    }
  }

  // Cancels `communicate` and waits until gRPC has released everything.
  void close() {
    stream_context_.TryCancel();
    void* tag = nullptr;
    bool ok = false;
    bool finishing = false;
    while (cq_.Next(&tag, &ok)) {
      if (tag == kStreamRead && !finishing) {
        // The read failed (cancelled) or, rarely, carried a late result: stop reading.
        if (ok) note_unknown(incoming_.tag());
        finishing = true;
        stream_->Finish(&stream_status_, kStreamFinished);
      } else if (tag == kStreamFinished) {
        cq_.Shutdown();
      }
    }
  }

  long errors() const { return errors_ + unknown_tags_; }

 private:
  // Completion-queue tags other than callers.
  static inline void* const kStreamStarted = reinterpret_cast<void*>(1);
  static inline void* const kStreamRead = reinterpret_cast<void*>(2);
  static inline void* const kStreamFinished = reinterpret_cast<void*>(3);

  void start(Caller* caller) {
    --caller->left;
    caller->tag = prefix_ + std::to_string(next_call_++);
    caller->replied = caller->arrived = caller->failed = false;
    caller->context = std::make_unique<grpc::ClientContext>();
    caller->context->set_deadline(grpc_deadline(kCallTimeout));
    waiting_.emplace(caller->tag, caller);  // before sending: the result may beat the reply
    request_.set_tag(caller->tag);
    caller->began = Clock::now();
    caller->deadline = caller->began + kCallTimeout;
    caller->unary = stub_->AsyncwrapperOnceExec(caller->context.get(), request_, &cq_);
    caller->unary->Finish(&caller->reply, &caller->status, caller);
  }

  void on_reply(Caller* caller) {
    caller->replied = true;
    caller->replied_at = Clock::now();
    if (!caller->status.ok() && !caller->failed) {
      error(caller, "wrapperOnceExec failed: status " +
                        std::to_string(caller->status.error_code()) + ": " +
                        caller->status.error_message());
    }
  }

  void on_result(bool ok) {
    if (!ok) {  // the stream ended: ask for its status, then exit (see stream_closed)
      stream_->Finish(&stream_status_, kStreamFinished);
      return;
    }
    auto found = waiting_.find(incoming_.tag());
    if (found == waiting_.end()) {
      note_unknown(incoming_.tag());
    } else {
      Caller* caller = found->second;
      waiting_.erase(found);
      caller->arrived = true;
      caller->arrived_at = Clock::now();
      if (incoming_.ret() != 0) {
        error(caller, "tag '" + caller->tag + "': ret " + std::to_string(incoming_.ret()));
      } else if (opt_.check_data &&
                 (incoming_.list_size() == 0 || incoming_.list(0).data() != opt_.expect)) {
        error(caller, "tag '" + caller->tag + "': unexpected data '" +
                          (incoming_.list_size() ? incoming_.list(0).data() : std::string()) +
                          "'");
      }
    }
    stream_->Read(&incoming_, kStreamRead);
  }

  // A result nobody waits for: an error, unless its call already failed (timed out).
  void note_unknown(const std::string& tag) {
    if (expired_.erase(tag) != 0) return;
    if (++unknown_tags_ <= kMaxErrorMessages) {
      std::fprintf(stderr, "aiges-bench-client: result with unknown tag '%s'\n", tag.c_str());
    }
  }

  // Counts one error for `caller`'s call and stops waiting for its result.
  void error(Caller* caller, const std::string& message) {
    caller->failed = true;
    if (waiting_.erase(caller->tag) != 0) expired_.insert(caller->tag);
    if (++errors_ <= kMaxErrorMessages) {
      std::fprintf(stderr, "aiges-bench-client: %s\n", message.c_str());
    }
  }

  // Earliest result deadline among callers still waiting for a result.
  std::chrono::system_clock::time_point next_deadline(const std::vector<Caller>& pool) const {
    Clock::time_point earliest = Clock::time_point::max();
    for (const auto& caller : pool) {
      if (caller.context != nullptr && !caller.arrived && !caller.failed) {
        earliest = std::min(earliest, caller.deadline);
      }
    }
    if (earliest == Clock::time_point::max()) return grpc_deadline(kCallTimeout);
    const auto wait = std::max(earliest - Clock::now(), Clock::duration::zero());
    return std::chrono::system_clock::now() +
           std::chrono::duration_cast<std::chrono::system_clock::duration>(wait);
  }

  // Fails the calls whose result is overdue; a unary still pending is cancelled so its
  // caller can go on once gRPC reports it done.
  void expire(std::vector<Caller>* pool) {
    const auto now = Clock::now();
    for (auto& caller : *pool) {
      if (caller.context == nullptr || caller.arrived || caller.failed || now < caller.deadline) {
        continue;
      }
      error(&caller, "no result for tag '" + caller.tag + "' on communicate within 30 s");
      if (!caller.replied) caller.context->TryCancel();
    }
  }

  // Exits (status 2) once the stream's status is in.
  [[noreturn]] void stream_closed() {
    std::string reason = "the plugin ended the stream";
    if (!stream_status_.ok()) {
      reason = "status " + std::to_string(stream_status_.error_code()) + ": " +
               stream_status_.error_message();
    }
    fail("communicate closed early (" + reason + ")");
  }

  const Options& opt_;
  std::shared_ptr<grpc::Channel> channel_;
  std::unique_ptr<aiges::WrapperService::Stub> stub_;
  grpc::CompletionQueue cq_;
  grpc::ClientContext stream_context_;
  std::unique_ptr<grpc::ClientAsyncReaderWriter<aiges::Request, aiges::Response>> stream_;
  grpc::Status stream_status_;
  aiges::Response incoming_;  // the read in progress on communicate
  aiges::Request request_;    // reused; only the tag changes
  std::string prefix_;
  long next_call_ = 0;
  std::unordered_map<std::string, Caller*> waiting_;  // tag -> caller awaiting its result
  std::unordered_set<std::string> expired_;            // failed calls whose result may still come
  long errors_ = 0;
  long unknown_tags_ = 0;
};

}  // namespace

int main(int argc, char** argv) {
  const Options opt = parse_args(argc, argv);
  Bench bench(opt);
  bench.open();

  // Warm-up: the same number of callers, so the plugin's pools are warm too.
  std::vector<double> ignored;
  if (opt.warmup > 0) {
    const long callers = std::min(opt.in_flight, opt.warmup);
    bench.run(callers, (opt.warmup + callers - 1) / callers, &ignored);
  }
  const long warmup_errors = bench.errors();
  if (opt.wait_after_warmup) {
    std::fprintf(stderr, "aiges-bench-client: warm-up done\n");
    std::fflush(stderr);
    char line[64];
    if (std::fgets(line, sizeof line, stdin) == nullptr) {
      std::fprintf(stderr, "aiges-bench-client: stdin closed before the go-ahead\n");
      std::_Exit(64);
    }
  }

  const long per_caller = opt.calls / opt.in_flight;
  const long measured = per_caller * opt.in_flight;
  std::vector<double> latencies;
  latencies.reserve(measured);
  const double cpu0 = cpu_seconds();
  const auto began = Clock::now();
  bench.run(opt.in_flight, per_caller, &latencies);
  const double wall = std::chrono::duration<double>(Clock::now() - began).count();
  const double cpu = cpu_seconds() - cpu0;
  bench.close();

  const long errors = bench.errors();
  std::printf(
      "{\"calls\": %ld, \"errors\": %ld, \"seconds\": %.6f, \"calls_per_s\": %.1f, "
      "\"p50_ms\": %.4f, \"p99_ms\": %.4f, \"client_cpu_us\": %.1f}\n",
      measured, errors, wall, measured / wall, percentile(latencies, 0.5) * 1e3,
      percentile(latencies, 0.99) * 1e3, cpu / measured * 1e6);
  std::fflush(stdout);
  if (errors != 0) {
    std::fprintf(stderr,
                 "aiges-bench-client: %ld error(s) (%ld during warm-up); %zu of %ld measured "
                 "calls succeeded\n",
                 errors, warmup_errors, latencies.size(), measured);
    return 1;
  }
  return 0;
}
