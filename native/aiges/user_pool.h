// Threads that run Python for GlobalFunc's native parts: one implementation, shared by the
// grpc++ plugin server (plugin_server.cc) and the loader's C-mode library (libwrapper.cc).
//
//   KeptThreadState  gives the calling native thread one Python thread state for its whole
//                    life (created on first use, deleted when the thread ends), so taking
//                    the GIL later costs a lock, not a thread-state allocation;
//   Gil              takes the GIL on any native thread (pool worker or a loader thread);
//   UserPool         `workers` threads, each with a kept thread state, holding the GIL only
//                    while a job runs. Jobs are called with the GIL held.
//
// Not here: what the jobs do, and how results leave the process.
#pragma once

#include <Python.h>

#include <atomic>
#include <chrono>
#include <condition_variable>
#include <deque>
#include <functional>
#include <memory>
#include <mutex>
#include <thread>
#include <vector>

namespace gf {

// One Python thread state per native thread, kept until the thread exits. Construct it
// without the GIL; afterwards PyGILState_Ensure on this thread finds the state and only
// takes the GIL (the state's gilstate counter never drops to zero in between).
class KeptThreadState {
 public:
  KeptThreadState() {
    state_ = PyGILState_Ensure();
    saved_ = PyEval_SaveThread();
  }
  ~KeptThreadState() {
    // A thread ending after the interpreter was finalised must not touch it.
    if (!Py_IsInitialized() || _Py_IsFinalizing()) return;
    PyEval_RestoreThread(saved_);
    PyGILState_Release(state_);
  }
  KeptThreadState(const KeptThreadState&) = delete;
  KeptThreadState& operator=(const KeptThreadState&) = delete;

  // This thread's kept state, made on first use (call without the GIL).
  static void ensure() { thread_local KeptThreadState kept; }

 private:
  PyGILState_STATE state_;
  PyThreadState* saved_;
};

// The GIL for the current scope, on any native thread. Call without the GIL.
class Gil {
 public:
  Gil() {
    if (PyGILState_Check()) {  // already held here (a nested call)
      held_ = false;
      return;
    }
    KeptThreadState::ensure();
    state_ = PyGILState_Ensure();
    held_ = true;
  }
  ~Gil() {
    if (held_) PyGILState_Release(state_);
  }
  Gil(const Gil&) = delete;
  Gil& operator=(const Gil&) = delete;

 private:
  PyGILState_STATE state_{};
  bool held_ = false;
};

// The GIL released for the current scope (the caller holds it).
class NoGil {
 public:
  NoGil() : saved_(PyEval_SaveThread()) {}
  ~NoGil() { PyEval_RestoreThread(saved_); }
  NoGil(const NoGil&) = delete;
  NoGil& operator=(const NoGil&) = delete;

 private:
  PyThreadState* saved_;
};

class UserPool {
 public:
  void start(int workers) {
    unsigned gen;
    {
      std::lock_guard<std::mutex> lock(mu_);
      gen = generation_;
    }
    for (int i = 0; i < workers; ++i) {
      auto done = std::make_shared<std::atomic<bool>>(false);
      done_.push_back(done);
      threads_.emplace_back([this, done, gen] {
        loop(gen);
        {
          std::lock_guard<std::mutex> lock(mu_);
          done->store(true);
        }
        exited_cv_.notify_all();
      });
    }
  }

  // False when the pool is stopping (the job is not run).
  bool submit(std::function<void()> job) { return push(std::move(job), true); }

  // Like submit, but the job is called WITHOUT the GIL (it takes gf::Gil itself when it
  // needs Python): for jobs that may finish without touching Python.
  bool submit_nogil(std::function<void()> job) { return push(std::move(job), false); }

  bool running() {
    std::lock_guard<std::mutex> lock(mu_);
    return !threads_.empty() && !stopping_;
  }

  // Drop queued jobs and wait up to `wait` seconds for running ones; join the threads that
  // finished and detach the rest (user code that never returns cannot be interrupted).
  // Returns how many were detached: the process must then end with os._exit, since a
  // detached thread still owns a Python thread state. Call WITHOUT the GIL.
  // Called from one of the pool's own workers (a job stopping its pool), that worker is not
  // waited for: it is detached and ends when its job returns.
  int stop(double wait) {
    std::deque<Job> dropped;
    {
      std::lock_guard<std::mutex> lock(mu_);
      stopping_ = true;
      ++generation_;  // a detached worker of this generation never takes a later job
      dropped.swap(jobs_);
    }
    cv_.notify_all();
    const std::thread::id self = std::this_thread::get_id();
    {
      std::unique_lock<std::mutex> lock(mu_);
      exited_cv_.wait_for(lock, std::chrono::duration<double>(wait < 0 ? 0 : wait), [&] {
        for (size_t i = 0; i < done_.size(); ++i) {
          if (!done_[i]->load() && threads_[i].get_id() != self) return false;
        }
        return true;
      });
    }
    int detached = 0;
    for (size_t i = 0; i < threads_.size(); ++i) {
      if (threads_[i].get_id() == self) {
        threads_[i].detach();  // the caller: it ends after its job
      } else if (done_[i]->load()) {
        threads_[i].join();
      } else {
        threads_[i].detach();
        ++detached;
      }
    }
    threads_.clear();
    done_.clear();
    if (!dropped.empty()) {
      Gil gil;  // the jobs' captures may own Python objects
      dropped.clear();
    }
    return detached;
  }

  // Accept jobs again after stop() (a library re-initialised in the same process).
  void reset() {
    std::lock_guard<std::mutex> lock(mu_);
    stopping_ = false;
  }

 private:
  struct Job {
    std::function<void()> run;
    bool gil = true;  // called with the GIL held
  };

  bool push(std::function<void()> job, bool gil) {
    {
      std::lock_guard<std::mutex> lock(mu_);
      if (stopping_) return false;
      jobs_.push_back(Job{std::move(job), gil});
    }
    cv_.notify_one();
    return true;
  }

  void loop(unsigned gen) {
    KeptThreadState::ensure();  // this thread's Python state, kept for its whole life
    for (;;) {
      Job job;
      {
        std::unique_lock<std::mutex> lock(mu_);
        cv_.wait(lock, [this, gen] { return stopping_ || generation_ != gen || !jobs_.empty(); });
        if (stopping_ || generation_ != gen) return;
        job = std::move(jobs_.front());
        jobs_.pop_front();
      }
      if (!job.gil) {
        job.run();
        job.run = nullptr;  // a GIL-free job's captures own no Python objects
        continue;
      }
      Gil gil;  // held only while the job runs
      job.run();
      job.run = nullptr;  // release captured Python objects while the GIL is held
    }
  }

  std::mutex mu_;
  std::condition_variable cv_;
  std::condition_variable exited_cv_;
  std::deque<Job> jobs_;
  std::vector<std::thread> threads_;
  std::vector<std::shared_ptr<std::atomic<bool>>> done_;
  bool stopping_ = false;
  unsigned generation_ = 0;  // stop() starts a new one; workers of an older one exit
};

}  // namespace gf
