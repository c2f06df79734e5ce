// The native AIGES plugin server's results queue: Responses on their way to the loader's
// `communicate` stream (part of plugin_server.cc, the `_native` module).
//
// While a `communicate` stream is open and nothing is queued, the thread that produced a
// result writes it to the stream itself (one thread hop less per call); otherwise results
// queue here and the stream's handler drains them in order. The queue holds at most
// `limit` bytes of serialized Responses (GF_AIGES_QUEUE_MB, README "AIGES queue limits"):
// when a new result would go over it, the OLDEST queued results are dropped (the newest one
// is always kept) and put() returns what was dropped, so the caller can log it. A result
// whose tag the loader stopped waiting for is worth less than the one it waits for now.
//
// What it does not do: build Responses, log (it has no GIL; the caller logs), or read the
// stream (plugin_server.cc's `communicate` handler does). Call put() WITHOUT the GIL: a
// write can wait on the network.
#pragma once

#include <grpcpp/grpcpp.h>

#include <atomic>
#include <chrono>
#include <condition_variable>
#include <cstddef>
#include <deque>
#include <memory>
#include <mutex>
#include <string>
#include <utility>

#include "aiges.grpc.pb.h"

namespace gf {

using Stream = grpc::ServerReaderWriter<aiges::Response, aiges::Request>;

// What put() dropped to stay within the limit.
struct Dropped {
  size_t count = 0;
  size_t bytes = 0;
  std::string first_tag;  // the oldest dropped result's tag
  std::string last_tag;
};

class Outbox {
 public:
  explicit Outbox(size_t limit = 256u << 20) : limit_(limit) {}

  void set_limit(size_t limit) {
    std::lock_guard<std::mutex> lock(mu_);
    limit_ = limit;
  }

  size_t queued_bytes() {
    std::lock_guard<std::mutex> lock(mu_);
    return queued_bytes_;
  }

  Dropped put(aiges::Response&& response) {
    std::unique_lock<std::mutex> lock(mu_);
    if (writer_ == nullptr || closed_ || !queue_.empty()) {
      Dropped dropped;
      size_t size = response.ByteSizeLong();
      queue_.emplace_back(std::move(response), size);
      queued_bytes_ += size;
      while (queued_bytes_ > limit_ && queue_.size() > 1) {
        auto& oldest = queue_.front();
        if (dropped.count == 0) dropped.first_tag = oldest.first.tag();
        dropped.last_tag = oldest.first.tag();
        dropped.count += 1;
        dropped.bytes += oldest.second;
        queued_bytes_ -= oldest.second;
        queue_.pop_front();
      }
      lock.unlock();
      cv_.notify_one();
      return dropped;
    }
    std::unique_lock<std::mutex> writing(write_mu_);  // lock order: mu_, then write_mu_
    Stream* stream = writer_;
    lock.unlock();
    if (stream->Write(response)) return {};
    writing.unlock();
    failed(stream, std::move(response));
    return {};
  }

  // The handler of a `communicate` stream: become the direct writer, drain the queue, and
  // return when the stream ends, fails or the outbox closes.
  void serve(grpc::ServerContext* context, Stream* stream, const std::atomic<bool>& stopping) {
    using namespace std::chrono_literals;
    {
      std::lock_guard<std::mutex> lock(mu_);
      writer_ = stream;
    }
    while (!stopping.load() && !context->IsCancelled()) {
      std::unique_lock<std::mutex> lock(mu_);
      cv_.wait_for(lock, 500ms, [this] { return closed_ || !queue_.empty(); });
      if (closed_) break;
      if (queue_.empty()) continue;
      aiges::Response response = std::move(queue_.front().first);
      queued_bytes_ -= queue_.front().second;
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
      size_t size = response.ByteSizeLong();
      queue_.emplace_front(std::move(response), size);
      queued_bytes_ += size;
    }
    cv_.notify_all();
  }

  std::mutex mu_;        // queue_, queued_bytes_, limit_, writer_, closed_
  std::mutex write_mu_;  // one Write at a time
  std::condition_variable cv_;
  std::deque<std::pair<aiges::Response, size_t>> queue_;
  size_t queued_bytes_ = 0;
  size_t limit_;
  Stream* writer_ = nullptr;
  bool closed_ = false;
};

// A byte budget for once-exec requests accepted but not finished (queued for, or in, user
// code). A request is admitted when it fits, or when nothing else is held (so one request
// larger than the budget still runs, alone).
class ByteBudget {
 public:
  explicit ByteBudget(size_t limit = 256u << 20) : limit_(limit) {}

  void set_limit(size_t limit) {
    std::lock_guard<std::mutex> lock(mu_);
    limit_ = limit;
  }

  // Take n bytes; false (and what is held now in *held) when that would exceed the limit.
  bool try_take(size_t n, size_t* held) {
    std::lock_guard<std::mutex> lock(mu_);
    if (held_ > 0 && held_ + n > limit_) {
      *held = held_;
      return false;
    }
    held_ += n;
    return true;
  }

  void give(size_t n) {
    std::lock_guard<std::mutex> lock(mu_);
    held_ -= n < held_ ? n : held_;
  }

  size_t limit() {
    std::lock_guard<std::mutex> lock(mu_);
    return limit_;
  }

 private:
  std::mutex mu_;
  size_t limit_;
  size_t held_ = 0;
};

// Gives its bytes back to the budget when the job that holds it is done (or dropped).
class BudgetHold {
 public:
  BudgetHold(std::shared_ptr<ByteBudget> budget, size_t n) : budget_(std::move(budget)), n_(n) {}
  BudgetHold(const BudgetHold&) = delete;
  BudgetHold& operator=(const BudgetHold&) = delete;
  ~BudgetHold() { budget_->give(n_); }

 private:
  std::shared_ptr<ByteBudget> budget_;
  size_t n_;
};

}  // namespace gf
