// The native AIGES plugin server's results queue: Responses on their way to the loader's
// `communicate` stream (part of plugin_server.cc, the `_native` module).
//
// One `communicate` stream at a time receives results: a newer stream takes over from the
// one before it (which is cancelled, so a stale stream the loader no longer reads cannot
// hold results back). While the stream is open, nothing is queued and no write is in
// progress, the thread that produced a result writes it itself (one thread hop less per
// call); otherwise results queue here and the stream's handler drains them in order. Only
// one Write is in progress per stream, and no thread waits for a write while holding the
// queue's lock: a Write blocked by flow control (a loader that does not read) holds up
// nobody but itself, and is ended by cancelling its stream (take-over, close()).
//
// The queue holds at most `limit` bytes of serialized Responses (GF_AIGES_QUEUE_MB,
// README "AIGES queue limits"): when a new result would go over it, the OLDEST queued
// results are replaced by a small Response with their tag and ret 30003 and no data
// (the loader still gets exactly one Response per tag; the newest result is always kept
// whole). Drops are counted; put() hands back, at most once a second, what was dropped
// since the last report, and take_drops() the rest, so the caller logs one warning.
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
#include <vector>

#include "aiges.grpc.pb.h"

namespace gf {

using Stream = grpc::ServerReaderWriter<aiges::Response, aiges::Request>;

constexpr int kDroppedRet = 30003;  // the ret of the Response that replaces a dropped result

// What was dropped to stay within the limit (since the last report).
struct Dropped {
  size_t count = 0;
  size_t bytes = 0;
  std::vector<std::string> first_tags;  // the first few dropped results' tags, oldest first
};

class Outbox {
 public:
  static constexpr size_t kTagsShown = 5;

  explicit Outbox(size_t limit = 256u << 20) : limit_(limit) {}

  void set_limit(size_t limit) {
    std::lock_guard<std::mutex> lock(mu_);
    limit_ = limit;
  }

  size_t queued_bytes() {
    std::lock_guard<std::mutex> lock(mu_);
    return queued_bytes_;
  }

  // Queue or write one result. Returns the drops to report now (count 0: nothing to say).
  Dropped put(aiges::Response&& response) {
    std::unique_lock<std::mutex> lock(mu_);
    if (slot_ == nullptr || closed_ || slot_->writing || !queue_.empty()) {
      enqueue_locked(std::move(response), false);
      Dropped report = report_locked(false);
      lock.unlock();
      cv_.notify_all();
      return report;
    }
    std::shared_ptr<Slot> slot = slot_;
    slot->writing = true;
    lock.unlock();
    bool ok = slot->stream->Write(response);  // no lock held: may wait on flow control
    lock.lock();
    slot->writing = false;
    if (!ok) failed_locked(slot, std::move(response));
    lock.unlock();
    cv_.notify_all();  // the handler may drain what queued meanwhile
    return {};
  }

  // The handler of a `communicate` stream: take over delivery (cancelling an older stream),
  // drain the queue, and return when the stream ends or fails, a newer stream takes over,
  // or the outbox closes.
  void serve(grpc::ServerContext* context, Stream* stream, const std::atomic<bool>& stopping) {
    using namespace std::chrono_literals;
    auto slot = std::make_shared<Slot>();
    slot->stream = stream;
    slot->context = context;
    std::shared_ptr<Slot> old;
    {
      std::lock_guard<std::mutex> lock(mu_);
      if (closed_) return;
      old = slot_;
      slot_ = slot;
      if (old) old->pins += 1;
    }
    cv_.notify_all();
    if (old) cancel(old);  // the old stream's handler and writers see a failed Write
    std::unique_lock<std::mutex> lock(mu_);
    while (!stopping.load() && !context->IsCancelled()) {
      cv_.wait_for(lock, 500ms, [&] {
        return closed_ || slot_ != slot || (!queue_.empty() && !slot->writing);
      });
      if (closed_ || slot_ != slot) break;
      if (queue_.empty() || slot->writing) continue;
      Entry entry = std::move(queue_.front());
      queued_bytes_ -= entry.size;
      queue_.pop_front();
      if (live_from_ > 0) live_from_ -= 1;
      slot->writing = true;
      lock.unlock();
      bool ok = stream->Write(entry.response);
      lock.lock();
      slot->writing = false;
      if (!ok) {
        failed_locked(slot, std::move(entry.response));
        break;
      }
      cv_.notify_all();
    }
    if (slot_ == slot) slot_ = nullptr;
    lock.unlock();
    cv_.notify_all();
    context->TryCancel();  // ends a Write still waiting on this stream (our own context)
    lock.lock();
    // No one may still write to the stream, or cancel its context, once the handler returns.
    while (slot->writing || slot->pins > 0) cv_.wait_for(lock, 50ms);
  }

  // Stop delivering: cancel the current stream (a blocked Write returns) and wake handlers.
  void close() {
    std::shared_ptr<Slot> current;
    {
      std::lock_guard<std::mutex> lock(mu_);
      closed_ = true;
      current = slot_;
      if (current) current->pins += 1;
    }
    cv_.notify_all();
    if (current) cancel(current);
  }

  // Every drop not reported yet (e.g. at shutdown).
  Dropped take_drops() {
    std::lock_guard<std::mutex> lock(mu_);
    return report_locked(true);
  }

 private:
  struct Slot {
    Stream* stream = nullptr;
    grpc::ServerContext* context = nullptr;
    bool writing = false;  // a Write to this stream is in progress (under mu_)
    int pins = 0;          // threads about to cancel its context (under mu_)
  };

  struct Entry {
    aiges::Response response;
    size_t size;
    bool stub;  // a dropped result's replacement
  };

  void cancel(const std::shared_ptr<Slot>& slot) {
    slot->context->TryCancel();  // safe: the pin keeps its handler (and context) alive
    {
      std::lock_guard<std::mutex> lock(mu_);
      slot->pins -= 1;
    }
    cv_.notify_all();
  }

  void enqueue_locked(aiges::Response&& response, bool front) {
    size_t size = response.ByteSizeLong();
    queued_bytes_ += size;
    if (front) {
      queue_.push_front(Entry{std::move(response), size, false});
      live_from_ = 0;
    } else {
      queue_.push_back(Entry{std::move(response), size, false});
    }
    // Over the limit: replace the oldest whole results (never the newest) by stubs.
    while (queued_bytes_ > limit_ && live_from_ + 1 < queue_.size()) {
      Entry& e = queue_[live_from_];
      live_from_ += 1;
      if (e.stub) continue;
      aiges::Response stub;
      stub.set_tag(e.response.tag());
      stub.set_ret(kDroppedRet);
      size_t stub_size = stub.ByteSizeLong();
      drops_.count += 1;
      drops_.bytes += e.size;
      if (drops_.first_tags.size() < kTagsShown) drops_.first_tags.push_back(stub.tag());
      queued_bytes_ = queued_bytes_ - e.size + stub_size;
      e.response = std::move(stub);
      e.size = stub_size;
      e.stub = true;
    }
  }

  // A write failed (the stream is gone): keep the response for the next stream, first.
  void failed_locked(const std::shared_ptr<Slot>& slot, aiges::Response&& response) {
    if (slot_ == slot) slot_ = nullptr;
    enqueue_locked(std::move(response), true);
  }

  Dropped report_locked(bool force) {
    if (drops_.count == 0) return {};
    auto now = std::chrono::steady_clock::now();
    if (!force && reported_once_ && now - last_report_ < std::chrono::seconds(1)) return {};
    reported_once_ = true;
    last_report_ = now;
    Dropped out = std::move(drops_);
    drops_ = Dropped{};
    return out;
  }

  std::mutex mu_;  // everything below; never held during a Write or a cancel
  std::condition_variable cv_;
  std::deque<Entry> queue_;
  size_t live_from_ = 0;  // queue_[0 .. live_from_) are stubs (or were looked at)
  size_t queued_bytes_ = 0;
  size_t limit_;
  std::shared_ptr<Slot> slot_;  // the stream results go to, if any
  bool closed_ = false;
  Dropped drops_;
  bool reported_once_ = false;
  std::chrono::steady_clock::time_point last_report_{};
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
