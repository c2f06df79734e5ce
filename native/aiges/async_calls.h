// The wrapperExecAsync calls of libwrapper.cc not answered yet, their deadlines, and the one
// timer thread that answers 10102 ("once timeout") for those past their deadline.
//
// Every call gets exactly one callback: whoever claims it first (the worker with the result,
// the timer, wrapperFini's sweep) calls it; the others only clean up. Claiming is decided
// under AsyncCalls::mu; callbacks run after it is released. The timer thread holds no
// Python state and never takes the GIL.
//
// Also here: the count of calls that timed out (or were swept) while still queued and were
// therefore never run, and of results the wrapper gave after their callback already had
// 10102/30005 (dropped). Workers only count them (no GIL, no log); the timer thread hands
// them, at most once a second, to the reporter libwrapper.cc set (which logs one aggregated
// warning each), and take_reports(true) gives the rest at wrapperFini.
//
// Not here: running the calls (the UserPool of user_pool.h), Python, the C lists.
#pragma once

#include <atomic>
#include <chrono>
#include <condition_variable>
#include <functional>
#include <map>
#include <memory>
#include <mutex>
#include <string>
#include <thread>
#include <unordered_map>
#include <vector>

#include "aiges_wrapper.h"

namespace gf_async {

using Clock = std::chrono::steady_clock;

constexpr int kOnceTimeout = 10102;  // the loader's "once timeout": no answer within `timeout`

// What was counted since the last report.
struct Reports {
  long skipped = 0;              // answered while queued: never run
  std::string skipped_last_tag;
  long late = 0;                 // answered by the wrapper after the callback had its answer
  std::vector<std::string> late_tags;  // the first few
  bool empty() const { return skipped == 0 && late == 0; }
};

// One wrapperExecAsync call.
struct AsyncCall {
  std::string tag;
  wrapperCallback cb = nullptr;
  int timeout_ms = 0;
  bool answered = false;  // under AsyncCalls::mu
  int answer = 0;         // the ret the callback got
  bool has_due = false;
  std::multimap<Clock::time_point, AsyncCall*>::iterator due;
};

using CallPtr = std::shared_ptr<AsyncCall>;

// True on a thread while it runs one of our callbacks (and on the timer thread): such a
// thread must not block on a wrapperInit/wrapperFini in progress, which may be waiting for it.
inline thread_local bool t_in_callback_thread = false;

// Marks the current thread as inside a callback for the scope.
class InCallback {
 public:
  InCallback() : was_(t_in_callback_thread) { t_in_callback_thread = true; }
  ~InCallback() { t_in_callback_thread = was_; }
  InCallback(const InCallback&) = delete;
  InCallback& operator=(const InCallback&) = delete;

 private:
  bool was_;
};

class AsyncCalls {
 public:
  // Registers `call` (and its deadline when timeout_ms > 0); wakes the timer when it is the
  // earliest deadline.
  void add(const CallPtr& call) {
    bool earliest = false;
    {
      std::lock_guard<std::mutex> lock(mu_);
      pending_.emplace(call.get(), call);
      if (call->timeout_ms > 0) {
        call->due = deadlines_.emplace(
            Clock::now() + std::chrono::milliseconds(call->timeout_ms), call.get());
        call->has_due = true;
        earliest = call->due == deadlines_.begin();
      }
    }
    if (earliest) cv_.notify_one();
  }

  // The right to answer `call` with `answer`: false when someone already answered it (then
  // *had, when given, is that answer).
  bool claim(AsyncCall* call, int answer, int* had = nullptr) {
    std::lock_guard<std::mutex> lock(mu_);
    bool mine = claim_locked(call, answer);
    if (had != nullptr) *had = call->answer;
    return mine;
  }

  // The answer already given to `call`, 0 when none yet.
  int answered_with(AsyncCall* call) {
    std::lock_guard<std::mutex> lock(mu_);
    return call->answered ? call->answer : 0;
  }

  // Claims every unanswered call with `answer` and returns them (their callbacks are the
  // caller's to make).
  std::vector<CallPtr> claim_all(int answer) {
    std::vector<CallPtr> left;
    std::lock_guard<std::mutex> lock(mu_);
    for (auto& kv : pending_) left.push_back(kv.second);
    for (auto& c : left) claim_locked(c.get(), answer);
    return left;
  }

  // Starts a timer thread for a new generation (wrapperInit).
  void start_timer() {
    unsigned gen;
    {
      std::lock_guard<std::mutex> lock(mu_);
      gen = ++generation_;
    }
    timer_ = std::thread([this, gen] { run_timer(gen); });
  }

  // Ends the timer thread: joined, or detached when called from the timer thread itself (a
  // timeout callback calling wrapperFini); that thread ends after its callback returns.
  void stop_timer() {
    {
      std::lock_guard<std::mutex> lock(mu_);
      ++generation_;
    }
    cv_.notify_all();
    if (!timer_.joinable()) return;
    if (timer_.get_id() == std::this_thread::get_id()) {
      timer_.detach();
    } else {
      timer_.join();
    }
  }

  // Called by the timer thread (without any lock of ours) when reports are due.
  void set_reporter(std::function<void()> reporter) {
    std::lock_guard<std::mutex> lock(mu_);
    reporter_ = std::move(reporter);
  }

  // A call that was answered before it ran (never run).
  void count_skipped(const std::string& tag) {
    {
      std::lock_guard<std::mutex> lock(skip_mu_);
      counted_.skipped += 1;
      counted_.skipped_last_tag = tag;
    }
    unreported_.store(true);
    cv_.notify_one();  // the timer schedules the report
  }

  // A result the wrapper gave after the call's callback already had its answer (dropped).
  void count_late(const std::string& tag) {
    {
      std::lock_guard<std::mutex> lock(skip_mu_);
      counted_.late += 1;
      if (counted_.late_tags.size() < kTagsShown) counted_.late_tags.push_back(tag);
    }
    unreported_.store(true);
    cv_.notify_one();
  }

  // What was counted since the last report, when a report is due (at most one a second,
  // or now when `force`); empty otherwise.
  Reports take_reports(bool force) {
    if (!unreported_.load()) return {};
    auto now = Clock::now();
    std::lock_guard<std::mutex> lock(skip_mu_);
    if (!force && now - last_report_ < std::chrono::seconds(1)) return {};
    last_report_ = now;
    unreported_.store(false);
    Reports out = std::move(counted_);
    counted_ = Reports{};
    return out;
  }

  static constexpr size_t kTagsShown = 5;

 private:
  bool claim_locked(AsyncCall* c, int answer) {
    if (c->answered) return false;
    c->answered = true;
    c->answer = answer;
    if (c->has_due) {
      deadlines_.erase(c->due);
      c->has_due = false;
    }
    pending_.erase(c);
    return true;
  }

  // When the next report may go out (skip_mu_ is taken: lock order mu_, then skip_mu_).
  Clock::time_point report_time() {
    std::lock_guard<std::mutex> lock(skip_mu_);
    return last_report_ + std::chrono::seconds(1);
  }

  void run_timer(unsigned gen) {
    t_in_callback_thread = true;  // never cleared: this thread only runs callbacks
    std::unique_lock<std::mutex> lock(mu_);
    while (generation_ == gen) {
      Clock::time_point now = Clock::now();
      if (unreported_.load()) {
        Clock::time_point at = report_time();
        if (now >= at) {
          std::function<void()> reporter = reporter_;
          lock.unlock();
          if (reporter) {
            reporter();  // takes the GIL to log, only now
          } else {
            take_reports(true);
          }
          lock.lock();
          continue;
        }
        if (deadlines_.empty() || at < deadlines_.begin()->first) {
          cv_.wait_until(lock, at);
          continue;
        }
      }
      if (deadlines_.empty()) {
        cv_.wait(lock);
        continue;
      }
      // A copy: a worker's claim may erase the node while we wait.
      const Clock::time_point next = deadlines_.begin()->first;
      if (now < next) {
        cv_.wait_until(lock, next);
        continue;
      }
      std::vector<CallPtr> expired;
      while (!deadlines_.empty() && deadlines_.begin()->first <= now) {
        AsyncCall* c = deadlines_.begin()->second;
        expired.push_back(pending_.at(c));
        claim_locked(c, kOnceTimeout);
      }
      lock.unlock();
      for (auto& c : expired) {
        if (c->cb != nullptr) c->cb(c->tag.c_str(), nullptr, kOnceTimeout);
      }
      expired.clear();
      lock.lock();
    }
  }

  std::mutex mu_;
  std::condition_variable cv_;  // the timer: a new earliest deadline, or stop
  std::unordered_map<AsyncCall*, CallPtr> pending_;
  std::multimap<Clock::time_point, AsyncCall*> deadlines_;
  unsigned generation_ = 0;  // the timer of another generation ends
  std::thread timer_;

  std::function<void()> reporter_;  // under mu_

  std::atomic<bool> unreported_{false};  // counted_ holds something
  std::mutex skip_mu_;                   // counted_, last_report_
  Reports counted_;
  Clock::time_point last_report_{};
};

}  // namespace gf_async
