// libwrapper.so: the AIGES loader's C mode (AIGES_PLUGIN_MODE=c, the loader's default).
//
// The loader dlopen()s "libwrapper.so" and calls the 15 functions of aiges_wrapper.h. This
// file holds those 15 functions, the interpreter (embeds CPython, or joins the one already
// running in the process) and the sessions; it hands every call to server.aiges.chost.Host,
// the same Bridge the grpc++ plugin server calls, so user code runs by the same rules and
// answers the same bytes. Its parts:
//   c_lists.h      the loader's ParamList/DataList <-> Python values, result chains, freeing
//                  (and the one decoding rule for C strings: UTF-8 with "replace");
//   async_calls.h  the pending wrapperExecAsync calls, their deadlines and the timer thread;
//   user_pool.h    the worker threads (shared with the grpc++ server).
//
//   wrapperExec        runs inline on the caller's thread; request data reaches Python as
//                      aiges_embed.Buffer views of the loader's memory, released when the
//                      call returns; the result is one malloc'd DataList chain, freed by
//                      wrapperExecFree;
//   wrapperExecAsync   copies the request once, runs on the UserPool and calls the callback
//                      without the GIL; the result passed to the callback is valid only
//                      during the callback (freed when it returns). Exactly one callback per
//                      call: the result, 10102 when `timeout` ms passed first, or 30005 when
//                      wrapperFini comes first. After wrapperFini returns, no callback of an
//                      earlier call runs;
//   sessions           wrapperCreate/Write/Destroy through the Bridge. Each session has its
//                      own key ("<usrTag>#<n>"), the tag its pushed results come back by,
//                      so sessions with the same usrTag stay apart; the wrapper itself is
//                      shown the loader's usrTag (chost.Host.create maps it to the key);
//                      results go to the session's callback, or queue for wrapperRead;
//   wrapperInit/Fini   serialised by one lock held for the whole of each; a callback thread
//                      calling them never waits for a wrapperFini in progress (it may be
//                      waiting for that thread); wrapperFini from a callback returns promptly;
//   wrapperError       our codes' texts are static; the wrapper's texts are cached, at most
//                      kMaxErrorTexts, cleared by wrapperInit and wrapperFini.
//
// Not here: converting C lists (c_lists.h), deadlines (async_calls.h), thread pools
// (user_pool.h), anything the user code does (server/aiges). The interpreter is not
// finalised by wrapperFini: CPython cannot reliably start again in one process once
// extension modules were loaded, and the loader calls wrapperFini at exit.

#include <Python.h>
#include <dlfcn.h>
#include <pybind11/pybind11.h>
#include <pybind11/stl.h>

#include <atomic>
#include <chrono>
#include <cstdlib>
#include <cstring>
#include <deque>
#include <map>
#include <memory>
#include <mutex>
#include <string>
#include <thread>
#include <unordered_map>
#include <utility>
#include <vector>

#include "aiges_wrapper.h"
#include "async_calls.h"
#include "c_lists.h"
#include "user_pool.h"

namespace py = pybind11;

#ifndef GF_PYTHON_EXECUTABLE
#define GF_PYTHON_EXECUTABLE ""
#endif
#ifndef GF_VERSION
#define GF_VERSION "0.1.0"
#endif

namespace {

using namespace gf_c;  // NOLINT: the C-list helpers are this file's vocabulary
using gf_async::AsyncCall;
using gf_async::CallPtr;
using gf_async::InCallback;

constexpr int kInitFailed = 30001;
constexpr int kUserInitFailed = 30002;
constexpr int kExecFailed = 30003;
constexpr int kBadHandle = 30004;  // a handle this library did not hand out (or destroyed)
constexpr int kOnceTimeout = gf_async::kOnceTimeout;
constexpr int kFinished = 30005;  // wrapperFini came before the wrapper answered
constexpr size_t kMaxErrorTexts = 256;  // the wrapper's wrapperError texts kept

struct Session {
  std::string handle;  // the wrapper's handle
  std::string tag;     // the loader's usrTag, given back to its callback
  std::string key;     // "<usrTag>#<n>": the tag results come back by (the wrapper sees usrTag)
  wrapperCallback cb = nullptr;
  std::deque<pDataList> unread;  // results for wrapperRead when cb is null
};

struct Lib {
  std::mutex life;                    // held for the whole of wrapperInit and of wrapperFini
  std::atomic<bool> finishing{false};  // a wrapperFini holds `life`
  std::mutex mu;                      // initialised, sessions, errors, ctrl
  bool initialised = false;
  bool owns_python = false;
  bool copy_request = false;   // wrapper.copy_request = true: bytes copies (for comparisons)
  py::object* host = nullptr;  // touched with the GIL only; never destroyed at exit
  gf::UserPool pool;
  std::map<const void*, std::shared_ptr<Session>> sessions;
  std::unordered_map<std::string, std::shared_ptr<Session>> by_key;
  unsigned long long sessions_made = 0;
  std::unordered_map<int, std::string> errors;  // the wrapper's texts (stable c_str)
  std::map<int, void*> ctrl;
  gf_async::AsyncCalls async;
};

Lib& lib() {
  static Lib* l = new Lib();  // never destroyed: threads may still call in at exit
  return *l;
}

// Takes Lib::life for wrapperInit/wrapperFini. On a thread inside one of our callbacks it
// never blocks on a wrapperFini in progress (which may be waiting for this very thread):
// false then. Called without the GIL.
bool lock_life(std::unique_lock<std::mutex>* life) {
  if (!gf_async::t_in_callback_thread) {
    life->lock();
    return true;
  }
  Lib& l = lib();
  for (;;) {
    if (life->try_lock()) return true;
    if (l.finishing.load()) return false;
    std::this_thread::sleep_for(std::chrono::milliseconds(1));
  }
}

// Logs through the host (GIL held); non-UTF-8 bytes (a loader's tag) show as \xNN.
void log_py(const char* level, const std::string& message) {
  Lib& l = lib();
  try {
    if (l.host != nullptr) {
      l.host->attr("log")(level, log_text(message));
      return;
    }
  } catch (py::error_already_set&) {
    PyErr_Clear();
  }
  fprintf(stderr, "libwrapper: %s: %s\n", level, message.c_str());
}

// End the request views; a view the wrapper kept past the call is reported.
void release_views(std::vector<py::object>* views, const std::string& what) {
  for (auto& v : *views) {
    long still = v.attr("release")().cast<long>();
    if (still > 0) {
      log_py("warning", what + ": the wrapper kept " + std::to_string(still) +
                            " view(s) of request data past the call; that memory is the "
                            "loader's again: copy with bytes(data) to keep data");
    }
  }
  views->clear();
}

py::object buffer_type() {
  static py::object* type = nullptr;  // with the GIL: no race
  if (type == nullptr) {
    type = new py::object(py::module_::import("server.aiges._embed").attr("Buffer"));
  }
  return *type;
}

// Run a once exec with the GIL held; returns (ret, malloc'd result).
std::pair<int, pDataList> run_once(py::dict params, py::list items, const std::string& tag,
                                   std::vector<py::object>* views) {
  Lib& l = lib();
  pDataList out = nullptr;
  int ret = kExecFailed;
  try {
    py::tuple result = l.host->attr("once")(params, items, text(tag));
    ret = result[0].cast<int>();
    out = result_list(result[1]);  // frees its partial chain when it throws
  } catch (py::error_already_set& e) {
    log_py("error", "wrapperExec (tag " + tag + "): " + e.what());
    out = nullptr;
    ret = kExecFailed;
  } catch (std::exception& e) {
    log_py("error", "wrapperExec (tag " + tag + "): " + e.what());
    out = nullptr;
    ret = kExecFailed;
  }
  release_views(views, "wrapperExec (tag " + tag + ")");
  return {ret, out};
}

bool ready() {
  Lib& l = lib();
  std::lock_guard<std::mutex> lock(l.mu);
  return l.initialised;
}

// Session results pushed by the wrapper: emit(session key, ret, items), GIL held.
void emit(const std::string& key, int ret, py::handle items) {
  Lib& l = lib();
  std::shared_ptr<Session> s;
  {
    std::lock_guard<std::mutex> lock(l.mu);
    auto it = l.by_key.find(key);
    if (it != l.by_key.end()) s = it->second;
  }
  if (!s) {
    log_py("warning", "session result for " + key + " dropped: no open session has it");
    return;
  }
  pDataList list = result_list(items);
  if (s->cb == nullptr) {
    std::lock_guard<std::mutex> lock(l.mu);
    s->unread.push_back(list);
    return;
  }
  gf::NoGil nogil;
  InCallback in_callback;
  s->cb(s->tag.c_str(), list, ret);  // valid during the callback only
  free_list(list);
}

// The aggregated warnings about async calls answered while still queued (never run) and
// results given after the callback already had its answer (dropped): at most one a second
// (from the timer thread), or now when `force`. Called WITHOUT the GIL; takes it only to log.
void report_skipped(bool force) {
  gf_async::Reports r = lib().async.take_reports(force);
  if (r.empty()) return;
  gf::Gil gil;
  if (lib().host == nullptr) return;
  if (r.skipped > 0) {
    log_py("warning", "wrapperExecAsync: " + std::to_string(r.skipped) +
                          " call(s) not run: their callback already had 10102 (timeout) while "
                          "they were still queued (the last: tag " +
                          r.skipped_last_tag + "); give longer timeouts or more wrapper.workers");
  }
  if (r.late > 0) {
    std::string tags;
    for (const auto& t : r.late_tags) tags += (tags.empty() ? "" : ", ") + t;
    if (static_cast<size_t>(r.late) > r.late_tags.size()) tags += ", ...";
    log_py("warning", "wrapperExecAsync: " + std::to_string(r.late) +
                          " result(s) dropped: the wrapper answered after their callback "
                          "already had 10102 (timeout) (tags " +
                          tags + "); give longer timeouts or more wrapper.workers");
  }
}

void clear_errors() {
  Lib& l = lib();
  std::lock_guard<std::mutex> lock(l.mu);
  l.errors.clear();
}

// Start Python when no interpreter runs in this process: the Python that built the
// library (GF_PYTHON overrides), so its venv's site-packages (and GlobalFunc) are found.
void start_python() {
  // The loader opened us RTLD_LOCAL: make libpython's symbols global, or extension
  // modules (which do not link libpython) cannot resolve them.
  Dl_info info;
  if (dladdr(reinterpret_cast<void*>(&Py_InitializeFromConfig), &info) != 0 &&
      info.dli_fname != nullptr) {
    dlopen(info.dli_fname, RTLD_NOW | RTLD_GLOBAL | RTLD_NOLOAD);
  }
  PyConfig config;
  PyConfig_InitPythonConfig(&config);
  config.install_signal_handlers = 0;  // the loader's signals stay the loader's
  const char* exe = getenv("GF_PYTHON");
  if (exe == nullptr || *exe == '\0') exe = GF_PYTHON_EXECUTABLE;
  if (*exe != '\0') PyConfig_SetBytesString(&config, &config.program_name, exe);
  PyStatus status = Py_InitializeFromConfig(&config);
  PyConfig_Clear(&config);
  if (PyStatus_Exception(status)) {
    fprintf(stderr, "libwrapper: cannot start Python (%s)\n",
            status.err_msg ? status.err_msg : "unknown error");
    return;
  }
  PyEval_SaveThread();  // the GIL is taken per call from here on
}

}  // namespace

extern "C" {

int wrapperSetCtrl(CtrlType type, void* func) {
  Lib& l = lib();
  std::lock_guard<std::mutex> lock(l.mu);
  l.ctrl[static_cast<int>(type)] = func;
  return 0;
}

int wrapperInit(pConfig cfg) {
  Lib& l = lib();
  std::unique_lock<std::mutex> life(l.life, std::defer_lock);
  if (!lock_life(&life)) return kInitFailed;  // a callback's re-init during a wrapperFini
  {
    std::lock_guard<std::mutex> lock(l.mu);
    if (l.initialised) return 0;
  }
  auto config = params_vector(cfg);
  if (!Py_IsInitialized()) {
    start_python();
    if (!Py_IsInitialized()) return kInitFailed;
    l.owns_python = true;
  }
  int workers = 4;
  for (const auto& kv : config) {
    if (kv.first == "wrapper.workers") workers = std::max(1, atoi(kv.second.c_str()));
    if (kv.first == "wrapper.copy_request") l.copy_request = kv.second == "true";
  }
  clear_errors();  // texts of the previous wrapper
  int ret = kInitFailed;
  {
    gf::Gil gil;
    try {
      if (l.host == nullptr) {
        py::object host =
            py::module_::import("server.aiges.chost").attr("Host")(l.owns_python);
        host.attr("bind")(py::cpp_function(
            [](const std::string& key, int code, py::handle items) { emit(key, code, items); }));
        buffer_type();
        l.host = new py::object(std::move(host));
      }
      ret = l.host->attr("init")(pairs_dict(config)).cast<int>();
    } catch (py::error_already_set& e) {
      fprintf(stderr, "libwrapper: wrapperInit: %s\n", e.what());
      ret = kInitFailed;
    }
  }
  if (ret != 0) return ret;
  l.pool.reset();
  l.pool.start(workers);
  l.async.set_reporter([] { report_skipped(false); });
  l.async.start_timer();
  std::lock_guard<std::mutex> lock(l.mu);
  l.initialised = true;
  return 0;
}

int wrapperFini(void) {
  Lib& l = lib();
  std::unique_lock<std::mutex> life(l.life, std::defer_lock);
  if (!lock_life(&life)) return 0;  // from a callback while another wrapperFini runs
  {
    std::lock_guard<std::mutex> lock(l.mu);
    if (!l.initialised) return 0;
    l.initialised = false;
  }
  l.finishing = true;
  // Waits for the workers (not for the calling one, when a callback calls wrapperFini).
  l.pool.stop(2.0);
  // Async calls still unanswered: queued (the pool dropped them) or still in user code
  // past the wait. Each gets its one callback below; a late result is dropped by its worker.
  std::vector<CallPtr> left = l.async.claim_all(kFinished);
  l.async.stop_timer();
  std::map<const void*, std::shared_ptr<Session>> sessions;
  {
    std::lock_guard<std::mutex> lock(l.mu);
    sessions.swap(l.sessions);
    l.by_key.clear();
  }
  for (auto& kv : sessions) {
    for (pDataList d : kv.second->unread) free_list(d);
    kv.second->unread.clear();
  }
  report_skipped(true);
  int ret = kExecFailed;
  {
    gf::Gil gil;
    try {
      ret = l.host->attr("fini")().cast<int>();
    } catch (py::error_already_set& e) {
      log_py("error", std::string("wrapperFini: ") + e.what());
    }
  }
  clear_errors();
  l.finishing = false;
  life.unlock();
  InCallback in_callback;
  for (auto& c : left) {
    if (c->cb != nullptr) c->cb(c->tag.c_str(), nullptr, kFinished);
  }
  return ret;
}

const char* wrapperError(int errNum) {
  switch (errNum) {  // ours: static texts (the first three as chost.ERRORS says them)
    case kInitFailed:
      return "the wrapper is not loaded or not initialised (wrapperInit failed or not called)";
    case kUserInitFailed:
      return "the wrapper's wrapperInit failed";
    case kExecFailed:
      return "the wrapper's call raised, returned nothing, or returned an invalid result";
    case kBadHandle:
      return "unknown session handle: not one wrapperCreate returned, or already destroyed";
    case kOnceTimeout:
      return "once timeout: the wrapper did not answer within the wrapperExecAsync timeout; "
             "its late result is dropped (give a longer timeout or make the call faster)";
    case kFinished:
      return "wrapperFini came before the wrapper answered this wrapperExecAsync call; its "
             "result, if any, is dropped";
    default:
      break;
  }
  Lib& l = lib();
  {
    std::lock_guard<std::mutex> lock(l.mu);
    if (l.host == nullptr) return "error (wrapperInit not called)";
    auto it = l.errors.find(errNum);
    if (it != l.errors.end()) return it->second.c_str();
  }
  std::string text = "error " + std::to_string(errNum);
  if (Py_IsInitialized()) {
    gf::Gil gil;
    try {
      text = l.host->attr("error_text")(errNum).cast<std::string>();
    } catch (py::error_already_set&) {
      PyErr_Clear();
    }
  }
  std::lock_guard<std::mutex> lock(l.mu);
  if (l.errors.size() < kMaxErrorTexts || l.errors.count(errNum) != 0) {
    // valid until the next wrapperInit or wrapperFini
    return l.errors.emplace(errNum, std::move(text)).first->second.c_str();
  }
  thread_local std::string overflow;  // valid until this thread's next wrapperError
  overflow = std::move(text);
  return overflow.c_str();
}

const char* wrapperVersion(void) {
  static const std::string version =
      std::string("GlobalFunc libwrapper ") + GF_VERSION + " (Python " PY_VERSION ")";
  return version.c_str();
}

int wrapperLoadRes(pDataList, unsigned int) { return 0; }
int wrapperUnloadRes(unsigned int) { return 0; }

int wrapperExec(const char* usrTag, pParamList params, pDataList reqData, pDataList* respData,
                unsigned int[], int) {
  if (respData != nullptr) *respData = nullptr;
  if (!ready()) return kInitFailed;
  std::string tag = usrTag == nullptr ? "" : usrTag;
  gf::Gil gil;
  std::vector<py::object> views;
  std::pair<int, pDataList> result{kExecFailed, nullptr};
  try {
    py::list items = request_items(reqData, buffer_type(), &views, lib().copy_request);
    result = run_once(params_dict(params), items, tag, &views);
  } catch (py::error_already_set& e) {
    log_py("error", "wrapperExec (tag " + tag + "): " + e.what());
    release_views(&views, "wrapperExec");
  }
  if (respData != nullptr) {
    *respData = result.second;
  } else {
    free_list(result.second);
  }
  return result.first;
}

int wrapperExecFree(const char*, pDataList* respData) {
  if (respData == nullptr) return 0;
  free_list(*respData);
  *respData = nullptr;
  return 0;
}

int wrapperExecAsync(const char* usrTag, pParamList params, pDataList reqData,
                     wrapperCallback callback, int timeout, unsigned int[], int) {
  if (!ready()) return kInitFailed;
  Lib& l = lib();
  auto call = std::make_shared<AsyncCall>();
  call->tag = usrTag == nullptr ? "" : usrTag;
  call->cb = callback;
  call->timeout_ms = timeout;
  auto owned_params = std::make_shared<Pairs>(params_vector(params));
  auto owned = std::make_shared<std::vector<OwnedItem>>(copy_items(reqData));
  l.async.add(call);
  // Called without the GIL: a call answered while queued costs no Python at all.
  bool queued = l.pool.submit_nogil([call, owned_params, owned] {
    Lib& l = lib();
    if (l.async.answered_with(call.get()) != 0) {  // timed out while queued: not run
      l.async.count_skipped(call->tag);  // reported by the timer thread
      return;
    }
    std::pair<int, pDataList> result{kExecFailed, nullptr};
    {
      gf::Gil gil;
      std::vector<py::object> views;
      try {
        py::list items = owned_items(*owned, buffer_type(), &views);
        result = run_once(pairs_dict(*owned_params), items, call->tag, &views);
      } catch (py::error_already_set& e) {
        log_py("error", "wrapperExecAsync (tag " + call->tag + "): " + e.what());
        release_views(&views, "wrapperExecAsync");
      }
    }
    int had = 0;
    if (!l.async.claim(call.get(), result.first, &had)) {
      free_list(result.second);
      if (had == kOnceTimeout && ready()) {
        l.async.count_late(call->tag);  // one aggregated warning a second, from the timer
        return;
      }
      // After wrapperFini: no timer reports any more, and this is rare: say it now.
      gf::Gil gil;
      log_py("warning", "wrapperExecAsync (tag " + call->tag + "): the wrapper answered after " +
                            "the callback already had " + std::to_string(had) +
                            (had == kOnceTimeout ? " (timeout)" : " (wrapperFini)") +
                            "; its result is dropped");
      return;
    }
    if (call->cb != nullptr) {
      InCallback in_callback;
      call->cb(call->tag.c_str(), result.second, result.first);  // valid during it only
    }
    free_list(result.second);
  });
  if (queued) return 0;
  // wrapperFini is stopping the pool. Not answered yet: the caller learns it from our
  // return. Answered: wrapperFini's sweep took it and calls its callback, the one answer.
  return l.async.claim(call.get(), kExecFailed) ? kExecFailed : 0;
}

const void* wrapperCreate(const char* usrTag, pParamList params, wrapperCallback cb,
                          unsigned int[], int, int* errNum) {
  auto fail = [errNum](int code) -> const void* {
    if (errNum != nullptr) *errNum = code;
    return nullptr;
  };
  if (!ready()) return fail(kInitFailed);
  auto s = std::make_shared<Session>();
  s->tag = usrTag == nullptr ? "" : usrTag;
  s->cb = cb;
  Lib& l = lib();
  int code = kExecFailed;
  {
    gf::Gil gil;
    try {
      // The session's own key: the tag as the Python side reads it (valid UTF-8), made
      // unique. Registered before create: results pushed during wrapperCreate find it.
      std::string shown = text(s->tag).cast<std::string>();
      {
        std::lock_guard<std::mutex> lock(l.mu);
        s->key = shown + "#" + std::to_string(++l.sessions_made);
        l.by_key[s->key] = s;
      }
      py::dict p = params_dict(params);
      std::string sid = p.contains("sid") ? p["sid"].cast<std::string>() : std::string();
      py::tuple r = l.host->attr("create")(p, sid, s->key, shown);  // wrapper sees `shown`
      s->handle = r[0].cast<std::string>();
      code = r[1].cast<int>();
    } catch (py::error_already_set& e) {
      log_py("error", "wrapperCreate (tag " + s->tag + "): " + e.what());
    }
  }
  std::lock_guard<std::mutex> lock(l.mu);
  if (code != 0) {
    l.by_key.erase(s->key);
    if (errNum != nullptr) *errNum = code;
    return nullptr;
  }
  l.sessions[s.get()] = s;
  if (errNum != nullptr) *errNum = 0;
  return s.get();
}

namespace {
std::shared_ptr<Session> session_of(const void* handle) {
  Lib& l = lib();
  std::lock_guard<std::mutex> lock(l.mu);
  auto it = l.sessions.find(handle);
  return it == l.sessions.end() ? nullptr : it->second;
}
}  // namespace

int wrapperWrite(const void* handle, pDataList reqData) {
  if (!ready()) return kInitFailed;
  auto s = session_of(handle);
  if (!s) return kBadHandle;
  gf::Gil gil;
  std::vector<py::object> views;
  try {
    py::list items = request_items(reqData, buffer_type(), &views, true);
    return lib().host->attr("write")(s->handle, items, "").cast<int>();
  } catch (py::error_already_set& e) {
    log_py("error", "wrapperWrite (handle " + s->handle + "): " + e.what());
    return kExecFailed;
  }
}

int wrapperRead(const void* handle, pDataList* respData) {
  if (respData == nullptr) return kExecFailed;
  *respData = nullptr;
  auto s = session_of(handle);
  if (!s) return kBadHandle;
  Lib& l = lib();
  std::lock_guard<std::mutex> lock(l.mu);
  if (!s->unread.empty()) {
    *respData = s->unread.front();
    s->unread.pop_front();
  }
  return 0;
}

int wrapperDestroy(const void* handle) {
  auto s = session_of(handle);
  if (!s) return kBadHandle;
  Lib& l = lib();
  int ret = kExecFailed;
  if (ready()) {
    gf::Gil gil;
    try {
      ret = l.host->attr("destroy")(s->handle).cast<int>();
    } catch (py::error_already_set& e) {
      log_py("error", "wrapperDestroy (handle " + s->handle + "): " + e.what());
    }
  }
  std::lock_guard<std::mutex> lock(l.mu);
  l.sessions.erase(handle);
  l.by_key.erase(s->key);
  for (pDataList d : s->unread) free_list(d);
  s->unread.clear();
  return ret;
}

const char* wrapperDebugInfo(const void* handle) {
  thread_local std::string info;
  auto s = session_of(handle);
  info = s ? "session " + s->handle + " (" + s->key + ")" : std::string();
  return info.c_str();
}

}  // extern "C"
