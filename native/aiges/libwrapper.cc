// libwrapper.so: the AIGES loader's C mode (AIGES_PLUGIN_MODE=c, the loader's default).
//
// The loader dlopen()s "libwrapper.so" and calls the 15 functions of aiges_wrapper.h. This
// library embeds CPython (or joins the interpreter already running in the process) and
// hands every call to server.aiges.chost.Host, the same Bridge the grpc++ plugin server
// calls, so the user code runs by the same rules and answers the same bytes.
//
//   wrapperExec        runs inline on the caller's thread (GIL taken with the shared
//                      thread-state handling of user_pool.h); request data reaches Python
//                      as aiges_embed.Buffer views of the loader's memory, no copy, released
//                      when the call returns; the result is one malloc'd DataList chain,
//                      freed by wrapperExecFree;
//   wrapperExecAsync   copies the request once (the loader's memory is only the loader's
//                      during the call), runs on the UserPool (user_pool.h, the one the
//                      grpc++ server uses) and calls the callback with the GIL released; the
//                      result passed to the callback is freed when the callback returns.
//                      The callback runs exactly once per call: with the result, or with
//                      10102 and no data when `timeout` ms passed first (one timer thread
//                      watches every deadline; a call still queued then is not run, a late
//                      result is freed, and either is logged once with the tag), or with
//                      30005 when wrapperFini comes first. After wrapperFini returns, no
//                      callback of an earlier call runs;
//   sessions           wrapperCreate/Write/Destroy through the Bridge; results pushed by
//                      the user (aiges_embed.callback) go to the session's callback, or
//                      queue for wrapperRead when it has none (free those with
//                      wrapperExecFree). Written frames are copied (session wrappers keep
//                      them for their own threads);
//   wrapperError       our codes' texts, else the wrapper's own wrapperError(code);
//   wrapperLoadRes/UnloadRes  accepted, no personalisation resources (return 0).
//
// The interpreter is not finalised by wrapperFini: CPython cannot reliably start again in
// one process once extension modules were loaded, and the loader calls wrapperFini at exit.

#include <Python.h>
#include <dlfcn.h>
#include <pybind11/pybind11.h>
#include <pybind11/stl.h>

#include <chrono>
#include <condition_variable>
#include <cstdlib>
#include <cstring>
#include <deque>
#include <map>
#include <memory>
#include <mutex>
#include <set>
#include <string>
#include <thread>
#include <unordered_map>
#include <utility>
#include <vector>

#include "aiges_wrapper.h"
#include "user_pool.h"

namespace py = pybind11;

#ifndef GF_PYTHON_EXECUTABLE
#define GF_PYTHON_EXECUTABLE ""
#endif
#ifndef GF_VERSION
#define GF_VERSION "0.1.0"
#endif

namespace {

constexpr int kInitFailed = 30001;
constexpr int kExecFailed = 30003;
constexpr int kBadHandle = 30004;  // a handle this library did not hand out (or destroyed)
constexpr int kOnceTimeout = 10102;  // the loader's "once timeout": no answer within `timeout`
constexpr int kFinished = 30005;     // wrapperFini came before the wrapper answered

using Clock = std::chrono::steady_clock;

// One wrapperExecAsync call. Whoever sets `answered` under Async::mu first (the worker with
// the result, the timer, wrapperFini) calls the callback; everyone else only cleans up.
struct AsyncCall {
  std::string tag;
  wrapperCallback cb = nullptr;
  int timeout_ms = 0;
  bool answered = false;
  int answer = 0;  // the ret the callback got
  bool has_due = false;
  std::multimap<Clock::time_point, AsyncCall*>::iterator due;
};

// The calls not answered yet, and the one timer thread that answers those past their
// deadline (started by wrapperInit, joined by wrapperFini).
struct Async {
  std::mutex mu;
  std::condition_variable cv;  // the timer: a new earliest deadline, or stop
  std::unordered_map<AsyncCall*, std::shared_ptr<AsyncCall>> pending;
  std::multimap<Clock::time_point, AsyncCall*> deadlines;
  bool stop = false;
  std::thread timer;
};

struct Session {
  std::string handle;  // the wrapper's handle
  std::string tag;     // the usrTag of wrapperCreate: where pushed results are routed
  wrapperCallback cb;
  std::deque<pDataList> unread;  // results for wrapperRead when cb is null
};

struct OwnedItem {
  std::string key, data;
  int type, status;
  std::vector<std::pair<std::string, std::string>> desc;
};

struct Lib {
  std::mutex mu;  // initialised, sessions, errors, ctrl
  bool initialised = false;
  bool owns_python = false;
  bool copy_request = false;  // wrapper.copy_request = true: bytes copies (for comparisons)
  py::object* host = nullptr;  // touched with the GIL only; never destroyed at exit
  gf::UserPool pool;
  std::map<const void*, std::shared_ptr<Session>> sessions;
  std::unordered_map<std::string, std::shared_ptr<Session>> by_tag;
  std::map<int, std::string> errors;  // wrapperError texts (stable c_str)
  std::map<int, void*> ctrl;
  std::string version;
  Async async;
};

Lib& lib() {
  static Lib* l = new Lib();  // never destroyed: threads may still call in at exit
  return *l;
}

// Take the right to answer `c` (Async::mu held): false when someone already answered it.
bool claim(Async& a, AsyncCall* c, int answer) {
  if (c->answered) return false;
  c->answered = true;
  c->answer = answer;
  if (c->has_due) {
    a.deadlines.erase(c->due);
    c->has_due = false;
  }
  a.pending.erase(c);
  return true;
}

// The timer thread: answers 10102 for calls past their deadline. Holds no Python state.
void run_timer() {
  Async& a = lib().async;
  std::unique_lock<std::mutex> lock(a.mu);
  while (!a.stop) {
    if (a.deadlines.empty()) {
      a.cv.wait(lock);
      continue;
    }
    Clock::time_point now = Clock::now();
    if (now < a.deadlines.begin()->first) {
      a.cv.wait_until(lock, a.deadlines.begin()->first);
      continue;
    }
    std::vector<std::shared_ptr<AsyncCall>> expired;
    while (!a.deadlines.empty() && a.deadlines.begin()->first <= now) {
      AsyncCall* c = a.deadlines.begin()->second;
      expired.push_back(a.pending.at(c));
      claim(a, c, kOnceTimeout);
    }
    lock.unlock();
    for (auto& c : expired) {
      if (c->cb != nullptr) c->cb(c->tag.c_str(), nullptr, kOnceTimeout);
    }
    lock.lock();
  }
}

// ---------------------------------------------------------------------------------------
// C structs <-> Python values

std::string str_of(const char* s, size_t n) { return s == nullptr ? std::string() : std::string(s, n); }

py::dict params_dict(pParamList p) {
  py::dict d;
  for (; p != nullptr; p = p->next) {
    if (p->key == nullptr) continue;
    size_t n = p->value == nullptr ? 0 : (p->vlen ? p->vlen : strlen(p->value));
    d[py::str(p->key)] = py::reinterpret_steal<py::object>(
        PyUnicode_DecodeUTF8(p->value == nullptr ? "" : p->value, static_cast<Py_ssize_t>(n),
                             "replace"));
  }
  return d;
}

std::vector<std::pair<std::string, std::string>> params_vector(pParamList p) {
  std::vector<std::pair<std::string, std::string>> v;
  for (; p != nullptr; p = p->next) {
    if (p->key == nullptr) continue;
    size_t n = p->value == nullptr ? 0 : (p->vlen ? p->vlen : strlen(p->value));
    v.emplace_back(p->key, str_of(p->value, n));
  }
  return v;
}

py::dict pairs_dict(const std::vector<std::pair<std::string, std::string>>& v) {
  py::dict d;
  for (const auto& kv : v) {
    d[py::str(kv.first)] = py::reinterpret_steal<py::object>(PyUnicode_DecodeUTF8(
        kv.second.data(), static_cast<Py_ssize_t>(kv.second.size()), "replace"));
  }
  return d;
}

// A zero-copy aiges_embed.Buffer over [data, data+len). Collects it in `views` for release.
py::object view_of(const py::object& buffer_type, const void* data, size_t len,
                   std::vector<py::object>* views) {
  static char empty = 0;
  PyObject* mv = PyMemoryView_FromMemory(
      const_cast<char*>(data == nullptr ? &empty : static_cast<const char*>(data)),
      static_cast<Py_ssize_t>(data == nullptr ? 0 : len), PyBUF_READ);
  if (mv == nullptr) throw py::error_already_set();
  py::object buffer = buffer_type(py::reinterpret_steal<py::object>(mv));
  views->push_back(buffer);
  return buffer;
}

// DataList -> [(key, data, type, status, desc)], data as Buffer views (or bytes copies).
py::list request_items(pDataList d, const py::object& buffer_type, std::vector<py::object>* views,
                       bool copy) {
  py::list items;
  for (; d != nullptr; d = d->next) {
    py::object data = copy ? py::object(py::bytes(static_cast<const char*>(d->data),
                                                  d->data == nullptr ? 0 : d->len))
                           : view_of(buffer_type, d->data, d->len, views);
    items.append(py::make_tuple(py::str(d->key == nullptr ? "" : d->key), data,
                                static_cast<int>(d->type), static_cast<int>(d->status),
                                params_dict(d->desc)));
  }
  return items;
}

py::list owned_items(const std::vector<OwnedItem>& owned, const py::object& buffer_type,
                     std::vector<py::object>* views) {
  py::list items;
  for (const auto& it : owned) {
    items.append(py::make_tuple(py::str(it.key),
                                view_of(buffer_type, it.data.data(), it.data.size(), views),
                                it.type, it.status, pairs_dict(it.desc)));
  }
  return items;
}

std::vector<OwnedItem> copy_items(pDataList d) {
  std::vector<OwnedItem> v;
  for (; d != nullptr; d = d->next) {
    v.push_back(OwnedItem{d->key == nullptr ? "" : d->key,
                          str_of(static_cast<const char*>(d->data), d->data ? d->len : 0),
                          static_cast<int>(d->type), static_cast<int>(d->status),
                          params_vector(d->desc)});
  }
  return v;
}

char* dup(const char* s, size_t n) {
  char* out = static_cast<char*>(malloc(n + 1));
  if (n) memcpy(out, s, n);
  out[n] = '\0';
  return out;
}

void free_params(pParamList p) {
  while (p != nullptr) {
    pParamList next = p->next;
    free(p->key);
    free(p->value);
    free(p);
    p = next;
  }
}

void free_list(pDataList d) {
  while (d != nullptr) {
    pDataList next = d->next;
    free(d->key);
    free(d->data);
    free_params(d->desc);
    free(d);
    d = next;
  }
}

// [(key, bytes, type, status, desc)] (normalised by the Bridge) -> a malloc'd DataList chain.
pDataList result_list(py::handle items) {
  pDataList head = nullptr;
  pDataList* tail = &head;
  for (py::handle item : items) {
    auto t = py::reinterpret_borrow<py::tuple>(item);
    auto* node = static_cast<pDataList>(calloc(1, sizeof(DataList)));
    *tail = node;
    tail = &node->next;
    std::string key = t[0].cast<std::string>();
    node->key = dup(key.data(), key.size());
    char* bytes = nullptr;
    Py_ssize_t n = 0;
    if (PyBytes_AsStringAndSize(t[1].ptr(), &bytes, &n) != 0) throw py::error_already_set();
    node->data = dup(bytes, static_cast<size_t>(n));
    node->len = static_cast<unsigned int>(n);
    node->type = static_cast<DataType>(t[2].cast<int>());
    node->status = static_cast<DataStatus>(t[3].cast<int>());
    pParamList* dtail = &node->desc;
    for (auto kv : t[4].cast<py::dict>()) {
      std::string k = kv.first.cast<std::string>(), v = kv.second.cast<std::string>();
      auto* p = static_cast<pParamList>(calloc(1, sizeof(ParamList)));
      p->key = dup(k.data(), k.size());
      p->value = dup(v.data(), v.size());
      p->vlen = static_cast<unsigned int>(v.size());
      *dtail = p;
      dtail = &p->next;
    }
  }
  return head;
}

void log_py(const char* level, const std::string& message) {
  Lib& l = lib();
  try {
    if (l.host != nullptr) {
      l.host->attr("log")(level, message);
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
    py::tuple result = l.host->attr("once")(params, items, tag);
    ret = result[0].cast<int>();
    out = result_list(result[1]);
  } catch (py::error_already_set& e) {
    log_py("error", "wrapperExec (tag " + tag + "): " + e.what());
    free_list(out);
    out = nullptr;
    ret = kExecFailed;
  } catch (std::exception& e) {
    log_py("error", "wrapperExec (tag " + tag + "): " + e.what());
    free_list(out);
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

// Session results pushed by the wrapper: emit(tag, ret, items), GIL held.
void emit(const std::string& tag, int ret, py::handle items) {
  Lib& l = lib();
  std::shared_ptr<Session> s;
  {
    std::lock_guard<std::mutex> lock(l.mu);
    auto it = l.by_tag.find(tag);
    if (it != l.by_tag.end()) s = it->second;
  }
  if (!s) {
    log_py("warning", "session result for tag " + tag + " dropped: no open session has it");
    return;
  }
  pDataList list = result_list(items);
  if (s->cb == nullptr) {
    std::lock_guard<std::mutex> lock(l.mu);
    s->unread.push_back(list);
    return;
  }
  gf::NoGil nogil;
  s->cb(s->tag.c_str(), list, ret);
  free_list(list);
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
  int ret = kInitFailed;
  {
    gf::Gil gil;
    try {
      if (l.host == nullptr) {
        py::object host =
            py::module_::import("server.aiges.chost").attr("Host")(l.owns_python);
        host.attr("bind")(py::cpp_function(
            [](const std::string& tag, int code, py::handle items) { emit(tag, code, items); }));
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
  {
    std::lock_guard<std::mutex> lock(l.async.mu);
    l.async.stop = false;
  }
  l.async.timer = std::thread(run_timer);
  std::lock_guard<std::mutex> lock(l.mu);
  l.initialised = true;
  return 0;
}

int wrapperFini(void) {
  Lib& l = lib();
  {
    std::lock_guard<std::mutex> lock(l.mu);
    if (!l.initialised) return 0;
    l.initialised = false;
  }
  l.pool.stop(2.0);
  // Async calls still unanswered: queued (the pool dropped them) or still in user code
  // past the wait. Each gets its one callback now; a late result is dropped by its worker.
  std::vector<std::shared_ptr<AsyncCall>> left;
  {
    std::lock_guard<std::mutex> lock(l.async.mu);
    for (auto& kv : l.async.pending) left.push_back(kv.second);
    for (auto& c : left) claim(l.async, c.get(), kFinished);
    l.async.stop = true;
  }
  l.async.cv.notify_all();
  if (l.async.timer.joinable()) {
    if (l.async.timer.get_id() == std::this_thread::get_id()) {
      l.async.timer.detach();  // wrapperFini from a timeout callback: it ends after that
    } else {
      l.async.timer.join();
    }
  }
  for (auto& c : left) {
    if (c->cb != nullptr) c->cb(c->tag.c_str(), nullptr, kFinished);
  }
  std::map<const void*, std::shared_ptr<Session>> sessions;
  {
    std::lock_guard<std::mutex> lock(l.mu);
    sessions.swap(l.sessions);
    l.by_tag.clear();
  }
  for (auto& kv : sessions) {
    for (pDataList d : kv.second->unread) free_list(d);
  }
  gf::Gil gil;
  try {
    return l.host->attr("fini")().cast<int>();
  } catch (py::error_already_set& e) {
    log_py("error", std::string("wrapperFini: ") + e.what());
    return kExecFailed;
  }
}

const char* wrapperError(int errNum) {
  Lib& l = lib();
  {
    std::lock_guard<std::mutex> lock(l.mu);
    auto it = l.errors.find(errNum);
    if (it != l.errors.end()) return it->second.c_str();
  }
  std::string text = "error " + std::to_string(errNum);
  if (errNum == kOnceTimeout) {
    return "once timeout: the wrapper did not answer within the wrapperExecAsync timeout; "
           "its late result is dropped (give a longer timeout or make the call faster)";
  } else if (errNum == kFinished) {
    return "wrapperFini came before the wrapper answered this wrapperExecAsync call; its "
           "result, if any, is dropped";
  } else if (errNum == kBadHandle) {
    text = "unknown session handle: not one wrapperCreate returned, or already destroyed";
  } else if (l.host == nullptr) {  // before the first wrapperInit: ours only, not cached
    if (errNum == kInitFailed) {
      return "the wrapper is not loaded or not initialised (wrapperInit failed or not called)";
    }
    return errNum == kExecFailed ? "the wrapper's call failed" : "error (wrapperInit not called)";
  } else if (Py_IsInitialized()) {
    gf::Gil gil;
    try {
      text = l.host->attr("error_text")(errNum).cast<std::string>();
    } catch (py::error_already_set&) {
      PyErr_Clear();
    }
  }
  std::lock_guard<std::mutex> lock(l.mu);
  return l.errors.emplace(errNum, std::move(text)).first->second.c_str();
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
  auto owned_params = std::make_shared<std::vector<std::pair<std::string, std::string>>>(
      params_vector(params));
  auto owned = std::make_shared<std::vector<OwnedItem>>(copy_items(reqData));
  bool earliest = false;
  {
    std::lock_guard<std::mutex> lock(l.async.mu);
    l.async.pending.emplace(call.get(), call);
    if (timeout > 0) {
      call->due = l.async.deadlines.emplace(Clock::now() + std::chrono::milliseconds(timeout),
                                            call.get());
      call->has_due = true;
      earliest = call->due == l.async.deadlines.begin();
    }
  }
  if (earliest) l.async.cv.notify_one();
  bool queued = l.pool.submit([call, owned_params, owned] {
    Async& a = lib().async;
    int answered_with = 0;
    {
      std::lock_guard<std::mutex> lock(a.mu);
      if (call->answered) answered_with = call->answer;
    }
    if (answered_with != 0) {  // timed out (or fini) while queued: the loader gave up
      log_py("warning", "wrapperExecAsync (tag " + call->tag + "): not run, the callback " +
                            "already had " + std::to_string(answered_with) +
                            (answered_with == kOnceTimeout
                                 ? " (no answer within " + std::to_string(call->timeout_ms) +
                                       " ms, still queued)"
                                 : std::string()));
      return;
    }
    std::vector<py::object> views;
    std::pair<int, pDataList> result{kExecFailed, nullptr};
    try {
      py::list items = owned_items(*owned, buffer_type(), &views);
      result = run_once(pairs_dict(*owned_params), items, call->tag, &views);
    } catch (py::error_already_set& e) {
      log_py("error", "wrapperExecAsync (tag " + call->tag + "): " + e.what());
      release_views(&views, "wrapperExecAsync");
    }
    bool mine;
    {
      std::lock_guard<std::mutex> lock(a.mu);
      mine = claim(a, call.get(), result.first);
      answered_with = call->answer;
    }
    if (!mine) {
      free_list(result.second);
      log_py("warning", "wrapperExecAsync (tag " + call->tag + "): the wrapper answered after " +
                            "the callback already had " + std::to_string(answered_with) +
                            (answered_with == kOnceTimeout
                                 ? " (timeout " + std::to_string(call->timeout_ms) + " ms)"
                                 : std::string(" (wrapperFini)")) +
                            "; its result is dropped");
      return;
    }
    if (call->cb != nullptr) {
      gf::NoGil nogil;
      call->cb(call->tag.c_str(), result.second, result.first);
    }
    free_list(result.second);
  });
  if (queued) return 0;
  std::lock_guard<std::mutex> lock(l.async.mu);  // wrapperFini is stopping the pool
  // Not answered yet: the caller learns it from our return. Answered: wrapperFini's sweep
  // took it and calls (or called) its callback, which is the one answer.
  return claim(l.async, call.get(), kExecFailed) ? kExecFailed : 0;
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
  {
    std::lock_guard<std::mutex> lock(l.mu);
    l.by_tag[s->tag] = s;  // results pushed during wrapperCreate already find it
  }
  int code = kExecFailed;
  {
    gf::Gil gil;
    try {
      py::dict p = params_dict(params);
      std::string sid = p.contains("sid") ? p["sid"].cast<std::string>() : std::string();
      py::tuple r = l.host->attr("create")(p, sid, s->tag);
      s->handle = r[0].cast<std::string>();
      code = r[1].cast<int>();
    } catch (py::error_already_set& e) {
      log_py("error", "wrapperCreate (tag " + s->tag + "): " + e.what());
    }
  }
  std::lock_guard<std::mutex> lock(l.mu);
  if (code != 0) {
    if (l.by_tag[s->tag] == s) l.by_tag.erase(s->tag);
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
  auto it = l.by_tag.find(s->tag);
  if (it != l.by_tag.end() && it->second == s) l.by_tag.erase(it);
  for (pDataList d : s->unread) free_list(d);
  s->unread.clear();
  return ret;
}

const char* wrapperDebugInfo(const void* handle) {
  thread_local std::string info;
  auto s = session_of(handle);
  info = s ? "session " + s->handle + " (tag " + s->tag + ")" : std::string();
  return info.c_str();
}

}  // extern "C"
