/* A C stand-in for the AIGES loader's C mode: dlopen("libwrapper.so") by its bare name,
 * resolve the 15 symbols, and drive them. Built by the tests with the system C compiler.
 *
 *   driver [-c key=value]... [-p key=value]... COMMAND [ARGS]
 *   layout                 sizeof/offsetof of ParamList/DataList against the doc's numbers
 *   once IN OUT            init, wrapperExec on IN's bytes (key "text"; IN "-": no data),
 *                          OUT = the result, fini
 *   async IN OUT           the same through wrapperExecAsync and its callback
 *   session OUT            create (callback), write 3 frames (status 0,1,2), read results, destroy
 *   threads T N            T threads x N calls (exec and async alternating), outputs checked
 *   big MIB                one exec with a MIB MiB payload, output checked
 *   loop N                 N exec+free and N/10 async calls (for the leak check)
 *   bench N                N sequential exec+free calls after a warm-up; prints us/call
 *   timeouts T N MS        T threads x N wrapperExecAsync calls with timeout MS ms, the
 *                          wrapper sleeping 0, about MS, or 2*MS ms; then wrapperFini. Checks
 *                          every callback ran exactly once (ret 0 with the right data, or
 *                          10102 with none); prints "timedout TAG" per timed-out call
 *   quiet                  (-c wrapper.workers=1) a 0.3 s call with a 100 ms timeout (a late
 *                          result), a 1 s call, three 50 ms-timeout calls queued behind them
 *                          (never run); then 3.5 s without a call, "quiet mark" on stderr, fini
 *   fini-pending N         N async calls that outlast wrapperFini's wait (run -c
 *                          wrapper.workers=1), wrapperFini at once: each callback exactly once
 *   errors                 the calls that must fail, wrapperError/wrapperVersion texts
 *   deadlines              a call with a 5 s timeout answered at once, then one with 100 ms:
 *                          the timer must not wait on the first's erased deadline (ASan)
 *   concinit               (no init first) two threads call wrapperInit at once, then exec
 *   finicb N               N times: init, an async call whose callback calls wrapperFini;
 *                          prints the longest wrapperFini took and the thread count
 *   sametag OUT            two sessions with the same usrTag (and two with NULL): a result
 *                          reaches only the session written to
 *   badutf8 OUT            exec with non-UTF-8 bytes in a param key and value, the data key,
 *                          a desc key and the usrTag; and a data type/status out of range
 *   errortexts N FILE2     N distinct wrapperError codes (prints VmRSS before/after), then
 *                          re-init with wrapper.file=FILE2: wrapperError(7) must follow it
 * Exit 0 when every check passed; failures name the check on stderr.
 */
#include <dlfcn.h>
#include <pthread.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "wrapper_abi.h"

#define CHECK(cond, ...)                                    \
  do {                                                      \
    if (!(cond)) {                                          \
      fprintf(stderr, "driver: check failed: " __VA_ARGS__); \
      fprintf(stderr, " (%s:%d)\n", __FILE__, __LINE__);     \
      exit(1);                                              \
    }                                                       \
  } while (0)

static struct {
  wrapperSetCtrl_t SetCtrl;
  wrapperInit_t Init;
  wrapperFini_t Fini;
  wrapperError_t Error;
  wrapperVersion_t Version;
  wrapperLoadRes_t LoadRes;
  wrapperUnloadRes_t UnloadRes;
  wrapperCreate_t Create;
  wrapperWrite_t Write;
  wrapperRead_t Read;
  wrapperDestroy_t Destroy;
  wrapperExec_t Exec;
  wrapperExecFree_t ExecFree;
  wrapperExecAsync_t ExecAsync;
  wrapperDebugInfo_t DebugInfo;
} W;

static pParamList config = NULL, params = NULL;

static void* sym(void* lib, const char* name) {
  void* p = dlsym(lib, name);
  CHECK(p != NULL, "symbol %s missing: %s", name, dlerror());
  return p;
}

static void load(void) {
  void* lib = dlopen("libwrapper.so", RTLD_NOW); /* the bare name, as the loader does */
  CHECK(lib != NULL, "dlopen(libwrapper.so): %s", dlerror());
  W.SetCtrl = (wrapperSetCtrl_t)sym(lib, "wrapperSetCtrl");
  W.Init = (wrapperInit_t)sym(lib, "wrapperInit");
  W.Fini = (wrapperFini_t)sym(lib, "wrapperFini");
  W.Error = (wrapperError_t)sym(lib, "wrapperError");
  W.Version = (wrapperVersion_t)sym(lib, "wrapperVersion");
  W.LoadRes = (wrapperLoadRes_t)sym(lib, "wrapperLoadRes");
  W.UnloadRes = (wrapperUnloadRes_t)sym(lib, "wrapperUnloadRes");
  W.Create = (wrapperCreate_t)sym(lib, "wrapperCreate");
  W.Write = (wrapperWrite_t)sym(lib, "wrapperWrite");
  W.Read = (wrapperRead_t)sym(lib, "wrapperRead");
  W.Destroy = (wrapperDestroy_t)sym(lib, "wrapperDestroy");
  W.Exec = (wrapperExec_t)sym(lib, "wrapperExec");
  W.ExecFree = (wrapperExecFree_t)sym(lib, "wrapperExecFree");
  W.ExecAsync = (wrapperExecAsync_t)sym(lib, "wrapperExecAsync");
  W.DebugInfo = (wrapperDebugInfo_t)sym(lib, "wrapperDebugInfo");
}

static pParamList add_param(pParamList head, const char* kv) {
  const char* eq = strchr(kv, '=');
  CHECK(eq != NULL, "expected key=value, got %s", kv);
  pParamList p = calloc(1, sizeof(ParamList));
  p->key = strndup(kv, (size_t)(eq - kv));
  p->value = strdup(eq + 1);
  p->vlen = (unsigned int)strlen(p->value);
  p->next = head;
  return p;
}

static char* read_file(const char* path, size_t* len) {
  FILE* f = fopen(path, "rb");
  CHECK(f != NULL, "cannot open %s", path);
  fseek(f, 0, SEEK_END);
  long n = ftell(f);
  fseek(f, 0, SEEK_SET);
  char* buf = malloc((size_t)n + 1);
  CHECK(fread(buf, 1, (size_t)n, f) == (size_t)n, "short read of %s", path);
  fclose(f);
  *len = (size_t)n;
  return buf;
}

/* "ret R\n" then per item "key type status len\n<data>\n" */
static void write_result(FILE* out, int ret, pDataList d) {
  fprintf(out, "ret %d\n", ret);
  for (; d != NULL; d = d->next) {
    fprintf(out, "%s %d %d %u\n", d->key, d->type, d->status, d->len);
    fwrite(d->data, 1, d->len, out);
    fputc('\n', out);
  }
}

static DataList request(const char* key, void* data, unsigned int len, int status) {
  DataList d;
  memset(&d, 0, sizeof d);
  d.key = (char*)key;
  d.data = data;
  d.len = len;
  d.type = 0;
  d.status = status;
  return d;
}

static void init_or_die(void) {
  int ret = W.Init(config);
  CHECK(ret == 0, "wrapperInit returned %d (%s)", ret, W.Error(ret));
}

/* -- async results ------------------------------------------------------------------- */
typedef struct {
  pthread_mutex_t mu;
  pthread_cond_t cv;
  int done;
  int ret;
  char* data;
  unsigned int len;
  char tag[64];
  FILE* out;
} Waiter;

static Waiter* waiters[4096];
static pthread_mutex_t waiters_mu = PTHREAD_MUTEX_INITIALIZER;

static int on_result(const void* usrTag, pDataList resp, int ret) {
  int slot = atoi((const char*)usrTag);
  pthread_mutex_lock(&waiters_mu);
  Waiter* w = waiters[slot];
  pthread_mutex_unlock(&waiters_mu);
  pthread_mutex_lock(&w->mu);
  snprintf(w->tag, sizeof w->tag, "%s", (const char*)usrTag);
  w->ret = ret;
  if (w->out != NULL) write_result(w->out, ret, resp);
  if (resp != NULL) {
    w->len = resp->len;
    w->data = malloc(resp->len + 1);
    memcpy(w->data, resp->data, resp->len);
  }
  w->done = 1;
  pthread_cond_signal(&w->cv);
  pthread_mutex_unlock(&w->mu);
  return 0;
}

/* One async call on slot `slot`; returns the callback's ret, result copied to *data. */
static int exec_async(int slot, pDataList req, FILE* out, char** data, unsigned int* len) {
  Waiter w;
  memset(&w, 0, sizeof w);
  pthread_mutex_init(&w.mu, NULL);
  pthread_cond_init(&w.cv, NULL);
  w.out = out;
  pthread_mutex_lock(&waiters_mu);
  waiters[slot] = &w;
  pthread_mutex_unlock(&waiters_mu);
  char tag[32];
  snprintf(tag, sizeof tag, "%d", slot);
  int ret = W.ExecAsync(tag, params, req, on_result, 10000, NULL, 0);
  CHECK(ret == 0, "wrapperExecAsync returned %d", ret);
  pthread_mutex_lock(&w.mu);
  while (!w.done) pthread_cond_wait(&w.cv, &w.mu);
  pthread_mutex_unlock(&w.mu);
  CHECK(strcmp(w.tag, tag) == 0, "callback tag %s, expected %s", w.tag, tag);
  if (data != NULL) {
    *data = w.data;
    *len = w.len;
  } else {
    free(w.data);
  }
  return w.ret;
}

/* -- timeouts: exactly one callback per call -------------------------------------------- */
static int* counts; /* callbacks per call id */
static int* rets;   /* the last ret per call id */
static int bad_results;
static pthread_mutex_t counts_mu = PTHREAD_MUTEX_INITIALIZER;
static pthread_cond_t counts_cv = PTHREAD_COND_INITIALIZER;

/* usrTag "to-<id>"; a timed-out or unanswered call has no result, an answered one "TO <id>" */
static int on_counted(const void* usrTag, pDataList resp, int ret) {
  int id = atoi((const char*)usrTag + 3);
  char expected[32];
  int n = snprintf(expected, sizeof expected, "TO %d", id);
  int bad = ret == 0 ? resp == NULL || resp->len != (unsigned int)n ||
                           memcmp(resp->data, expected, (size_t)n) != 0
                     : resp != NULL;
  pthread_mutex_lock(&counts_mu);
  ++counts[id];
  rets[id] = ret;
  bad_results += bad;
  pthread_cond_broadcast(&counts_cv);
  pthread_mutex_unlock(&counts_mu);
  return 0;
}

typedef struct {
  int id, calls, timeout_ms;
} TimeoutJob;

static void* timeout_worker(void* arg) {
  TimeoutJob* job = arg;
  for (int k = 0; k < job->calls; ++k) {
    int id = job->id * job->calls + k;
    /* a quarter answer at once, a quarter far too late, half within 3 ms of the deadline */
    double ms = k % 4 == 0 ? 0 : k % 4 == 1 ? 2.0 * job->timeout_ms
                                             : job->timeout_ms + (k * 5 % 7) - 3;
    char sleep_s[32], tag[32], text[32];
    snprintf(sleep_s, sizeof sleep_s, "%.4f", ms / 1000.0);
    snprintf(tag, sizeof tag, "to-%d", id);
    int n = snprintf(text, sizeof text, "to %d", id);
    ParamList sleep_param = {"sleep", sleep_s, (unsigned int)strlen(sleep_s), params};
    DataList req = request("text", text, (unsigned int)n, 3);
    int ret = W.ExecAsync(tag, &sleep_param, &req, on_counted, job->timeout_ms, NULL, 0);
    CHECK(ret == 0, "wrapperExecAsync %s returned %d", tag, ret);
    pthread_mutex_lock(&counts_mu);
    while (counts[id] == 0) pthread_cond_wait(&counts_cv, &counts_mu);
    pthread_mutex_unlock(&counts_mu);
  }
  return NULL;
}

/* Every call answered exactly once (also `settle_ms` after wrapperFini returned). */
static void check_once(int calls, int settle_ms) {
  struct timespec ts = {settle_ms / 1000, (settle_ms % 1000) * 1000000L};
  nanosleep(&ts, NULL);
  pthread_mutex_lock(&counts_mu);
  for (int id = 0; id < calls; ++id) {
    CHECK(counts[id] == 1, "call to-%d: %d callbacks, expected exactly 1", id, counts[id]);
  }
  CHECK(bad_results == 0, "%d callbacks had a wrong result for their ret", bad_results);
  pthread_mutex_unlock(&counts_mu);
}

static void upper(char* s, size_t n) {
  for (size_t i = 0; i < n; ++i)
    if (s[i] >= 'a' && s[i] <= 'z') s[i] -= 32;
}

/* -- threads --------------------------------------------------------------------------- */
typedef struct {
  int id, calls, failures;
} Job;

static void* worker(void* arg) {
  Job* job = arg;
  for (int i = 0; i < job->calls; ++i) {
    char text[64];
    int n = snprintf(text, sizeof text, "thread %d call %d %s", job->id, i, i % 2 ? "x" : "yy");
    char expected[64];
    memcpy(expected, text, (size_t)n);
    upper(expected, (size_t)n);
    DataList req = request("text", text, (unsigned int)n, 3);
    char* data = NULL;
    unsigned int len = 0;
    int ret;
    if (i % 2 == 0) {
      pDataList resp = NULL;
      char tag[32];
      snprintf(tag, sizeof tag, "t%d-%d", job->id, i);
      ret = W.Exec(tag, params, &req, &resp, NULL, 0);
      if (ret == 0 && resp != NULL) {
        len = resp->len;
        data = malloc(len);
        memcpy(data, resp->data, len);
      }
      W.ExecFree(tag, &resp);
      if (resp != NULL) ++job->failures;
    } else {
      ret = exec_async(job->id * 100 + (i % 100), &req, NULL, &data, &len);
    }
    if (ret != 0 || data == NULL || len != (unsigned int)n || memcmp(data, expected, len) != 0) {
      ++job->failures;
    }
    free(data);
  }
  return NULL;
}

static long rss_kb(void) {
  FILE* f = fopen("/proc/self/status", "r");
  char line[256];
  long kb = -1;
  while (f != NULL && fgets(line, sizeof line, f) != NULL) {
    if (strncmp(line, "VmRSS:", 6) == 0) kb = atol(line + 6);
  }
  if (f != NULL) fclose(f);
  return kb;
}

static int thread_count(void) {
  FILE* f = fopen("/proc/self/status", "r");
  char line[256];
  int n = -1;
  while (f != NULL && fgets(line, sizeof line, f) != NULL) {
    if (strncmp(line, "Threads:", 8) == 0) n = atoi(line + 8);
  }
  if (f != NULL) fclose(f);
  return n;
}

static void* init_thread(void* arg) {
  *(int*)arg = W.Init(config);
  return NULL;
}

/* finicb: the callback calls wrapperFini */
static pthread_mutex_t fini_mu = PTHREAD_MUTEX_INITIALIZER;
static pthread_cond_t fini_cv = PTHREAD_COND_INITIALIZER;
static int fini_done, fini_ret;
static double fini_took;
static double now(void);

static int on_fini(const void* usrTag, pDataList resp, int ret) {
  (void)usrTag;
  (void)resp;
  (void)ret;
  double t0 = now();
  int r = W.Fini();
  pthread_mutex_lock(&fini_mu);
  fini_took = now() - t0;
  fini_ret = r;
  fini_done = 1;
  pthread_cond_signal(&fini_cv);
  pthread_mutex_unlock(&fini_mu);
  return 0;
}

/* sametag: results counted per session callback */
static int same_hits[4];
static int on_same0(const void* t, pDataList r, int ret) { (void)t; (void)r; (void)ret; __sync_fetch_and_add(&same_hits[0], 1); return 0; }
static int on_same1(const void* t, pDataList r, int ret) { (void)t; (void)r; (void)ret; __sync_fetch_and_add(&same_hits[1], 1); return 0; }
static int on_same2(const void* t, pDataList r, int ret) { (void)t; (void)r; (void)ret; __sync_fetch_and_add(&same_hits[2], 1); return 0; }
static int on_same3(const void* t, pDataList r, int ret) { (void)t; (void)r; (void)ret; __sync_fetch_and_add(&same_hits[3], 1); return 0; }

static void wait_hits(int slot, int want) {
  double deadline = now() + 10;
  while (__sync_fetch_and_add(&same_hits[slot], 0) < want && now() < deadline) {
    struct timespec ts = {0, 1000000};
    nanosleep(&ts, NULL);
  }
}

static double now(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return ts.tv_sec + ts.tv_nsec / 1e9;
}

int main(int argc, char** argv) {
  int i = 1;
  for (; i + 1 < argc && argv[i][0] == '-'; i += 2) {
    if (strcmp(argv[i], "-c") == 0) config = add_param(config, argv[i + 1]);
    else if (strcmp(argv[i], "-p") == 0) params = add_param(params, argv[i + 1]);
    else CHECK(0, "unknown option %s", argv[i]);
  }
  CHECK(i < argc, "no command");
  const char* cmd = argv[i++];

  if (strcmp(cmd, "layout") == 0) {
    CHECK(sizeof(ParamList) == 32, "sizeof(ParamList) %zu", sizeof(ParamList));
    CHECK(offsetof(ParamList, key) == 0 && offsetof(ParamList, value) == 8, "ParamList key/value");
    CHECK(offsetof(ParamList, vlen) == 16 && offsetof(ParamList, next) == 24, "ParamList vlen/next");
    CHECK(sizeof(DataList) == 48, "sizeof(DataList) %zu", sizeof(DataList));
    CHECK(offsetof(DataList, key) == 0 && offsetof(DataList, data) == 8, "DataList key/data");
    CHECK(offsetof(DataList, len) == 16 && offsetof(DataList, type) == 20, "DataList len/type");
    CHECK(offsetof(DataList, status) == 24 && offsetof(DataList, desc) == 32, "DataList status/desc");
    CHECK(offsetof(DataList, next) == 40, "DataList next");
    load();
    printf("layout ok\n");
    return 0;
  }
  load();
  if (strcmp(cmd, "errors") == 0) {
    pDataList resp = NULL;
    DataList req = request("text", "x", 1, 3);
    int ret = W.Exec("early", params, &req, &resp, NULL, 0);
    CHECK(ret == 30001 && resp == NULL, "exec before init returned %d", ret);
    printf("before-init %d %s\n", ret, W.Error(ret));
    CHECK(W.SetCtrl(1, NULL) == 0, "wrapperSetCtrl");
    init_or_die();
    CHECK(W.LoadRes(NULL, 1) == 0 && W.UnloadRes(1) == 0, "wrapperLoadRes/UnloadRes");
    printf("version %s\n", W.Version());
    printf("error-30003 %s\n", W.Error(30003));
    printf("error-7 %s\n", W.Error(7));
    int dummy;
    CHECK(W.Write(&dummy, &req) == 30004, "write on a bad handle");
    CHECK(W.Destroy(&dummy) == 30004, "destroy on a bad handle");
    printf("bad-handle %s\n", W.Error(30004));
    CHECK(W.Fini() == 0, "wrapperFini");
    ret = W.Exec("late", params, &req, &resp, NULL, 0);
    CHECK(ret == 30001, "exec after fini returned %d", ret);
    printf("errors ok\n");
    return 0;
  }
  if (strcmp(cmd, "concinit") == 0) {
    int r1 = -1, r2 = -1;
    pthread_t a, b;
    pthread_create(&a, NULL, init_thread, &r1);
    pthread_create(&b, NULL, init_thread, &r2);
    pthread_join(a, NULL);
    pthread_join(b, NULL);
    CHECK(r1 == 0 && r2 == 0, "concurrent wrapperInit returned %d and %d", r1, r2);
    DataList req = request("text", "both", 4, 3);
    pDataList resp = NULL;
    CHECK(W.Exec("c", params, &req, &resp, NULL, 0) == 0 && resp != NULL, "exec after concinit");
    CHECK(resp->len == 4 && memcmp(resp->data, "BOTH", 4) == 0, "exec result after concinit");
    W.ExecFree("c", &resp);
    CHECK(W.Fini() == 0, "wrapperFini");
    printf("concinit ok threads %d\n", thread_count());
    return 0;
  }
  if (strcmp(cmd, "finicb") == 0) {
    int n = atoi(argv[i]);
    double longest = 0;
    int threads_after_first = 0;
    for (int k = 0; k < n; ++k) {
      init_or_die();
      fini_done = 0;
      DataList req = request("text", "fini", 4, 3);
      CHECK(W.ExecAsync("finicb", params, &req, on_fini, 0, NULL, 0) == 0, "async %d", k);
      pthread_mutex_lock(&fini_mu);
      while (!fini_done) pthread_cond_wait(&fini_cv, &fini_mu);
      pthread_mutex_unlock(&fini_mu);
      CHECK(fini_ret == 0, "wrapperFini in a callback returned %d", fini_ret);
      if (fini_took > longest) longest = fini_took;
      struct timespec ts = {0, 100000000L}; /* the worker ends after its callback */
      nanosleep(&ts, NULL);
      if (k == 0) threads_after_first = thread_count();
    }
    printf("finicb ok %d longest %.3f s threads %d -> %d\n", n, longest, threads_after_first,
           thread_count());
    return 0;
  }
  init_or_die();
  if (strcmp(cmd, "deadlines") == 0) {
    counts = calloc(2, sizeof *counts);
    rets = calloc(2, sizeof *rets);
    DataList req0 = request("text", "to 0", 4, 3);
    CHECK(W.ExecAsync("to-0", params, &req0, on_counted, 5000, NULL, 0) == 0, "async to-0");
    struct timespec ts = {0, 200000000L}; /* answered: its deadline node is erased */
    nanosleep(&ts, NULL);
    ParamList slow = {"sleep", "0.3", 3, params};
    DataList req1 = request("text", "to 1", 4, 3);
    CHECK(W.ExecAsync("to-1", &slow, &req1, on_counted, 100, NULL, 0) == 0, "async to-1");
    check_once(2, 500);
    CHECK(rets[0] == 0 && rets[1] == 10102, "rets %d %d", rets[0], rets[1]);
    printf("deadlines ok\n");
  } else if (strcmp(cmd, "sametag") == 0) {
    FILE* out = fopen(argv[i], "wb");
    int e[4] = {-1, -1, -1, -1};
    const void* h[4];
    h[0] = W.Create("same", params, on_same0, NULL, 0, &e[0]);
    h[1] = W.Create("same", params, on_same1, NULL, 0, &e[1]);
    h[2] = W.Create(NULL, params, on_same2, NULL, 0, &e[2]);
    h[3] = W.Create(NULL, params, on_same3, NULL, 0, &e[3]);
    for (int k = 0; k < 4; ++k) CHECK(h[k] != NULL && e[k] == 0, "wrapperCreate %d: %d", k, e[k]);
    DataList f = request("text", "abc", 3, 0);
    CHECK(W.Write(h[0], &f) == 0, "write A");
    wait_hits(0, 1);
    CHECK(W.Write(h[2], &f) == 0, "write C");
    wait_hits(2, 1);
    CHECK(W.Write(h[3], &f) == 0, "write D");
    CHECK(W.Write(h[3], &f) == 0, "write D");
    wait_hits(3, 2);
    struct timespec ts = {0, 200000000L};
    nanosleep(&ts, NULL);
    fprintf(out, "hits %d %d %d %d\n", same_hits[0], same_hits[1], same_hits[2], same_hits[3]);
    for (int k = 0; k < 4; ++k) CHECK(W.Destroy(h[k]) == 0, "destroy %d", k);
    fclose(out);
  } else if (strcmp(cmd, "badutf8") == 0) {
    FILE* out = fopen(argv[i], "wb");
    char bad_key[] = "k\xff", bad_value[] = "v\xfe", desc_key[] = "d\xff", data_key[] = "text";
    ParamList desc = {desc_key, "x", 1, NULL};
    ParamList bad = {bad_key, bad_value, 2, params};
    DataList req = request(data_key, "abc", 3, 3);
    req.desc = &desc;
    pDataList resp = NULL;
    int ret = W.Exec("tag\xff", &bad, &req, &resp, NULL, 0); /* bad key, value, desc, tag */
    write_result(out, ret, resp);
    W.ExecFree("t", &resp);
    char odd_key[] = "te\xffxt";
    DataList odd = request(odd_key, "abc", 3, 3);
    odd.type = 77;
    odd.status = 99;
    ret = W.Exec("t", params, &odd, &resp, NULL, 0); /* a bad data key, type/status out of range */
    write_result(out, ret, resp);
    W.ExecFree("t", &resp);
    fclose(out);
  } else if (strcmp(cmd, "errortexts") == 0) {
    int n = atoi(argv[i]);
    long r0 = rss_kb();
    for (int k = 0; k < n; ++k) W.Error(100000 + k);
    long r1 = rss_kb();
    printf("errortexts rss %ld %ld\n", r0, r1);
    printf("error-7 %s\n", W.Error(7));
    CHECK(W.Fini() == 0, "wrapperFini");
    ParamList file = {"wrapper.file", argv[i + 1], (unsigned int)strlen(argv[i + 1]), config};
    CHECK(W.Init(&file) == 0, "re-init with %s", argv[i + 1]);
    printf("error-7 %s\n", W.Error(7));
  } else if (strcmp(cmd, "once") == 0 || strcmp(cmd, "async") == 0) {
    size_t len = 0;
    int none = strcmp(argv[i], "-") == 0; /* "-": no request data, params only */
    char* data = none ? NULL : read_file(argv[i], &len);
    FILE* out = fopen(argv[i + 1], "wb");
    DataList req = request("text", data, (unsigned int)len, 3);
    if (cmd[0] == 'o') {
      pDataList resp = NULL;
      int ret = W.Exec("once-tag", params, none ? NULL : &req, &resp, NULL, 0);
      write_result(out, ret, resp);
      CHECK(W.ExecFree("once-tag", &resp) == 0 && resp == NULL, "wrapperExecFree");
    } else {
      exec_async(1, &req, out, NULL, NULL);
    }
    fclose(out);
    free(data);
  } else if (strcmp(cmd, "session") == 0) {
    FILE* out = fopen(argv[i], "wb");
    pthread_mutex_lock(&waiters_mu);
    Waiter w;
    memset(&w, 0, sizeof w);
    pthread_mutex_init(&w.mu, NULL);
    pthread_cond_init(&w.cv, NULL);
    waiters[7] = &w;
    pthread_mutex_unlock(&waiters_mu);
    int err = -1;
    const void* h = W.Create("7", params, on_result, NULL, 0, &err);
    CHECK(h != NULL && err == 0, "wrapperCreate: err %d", err);
    CHECK(strlen(W.DebugInfo(h)) > 0, "wrapperDebugInfo");
    const char* frames[3] = {"first", "second", "third"};
    for (int k = 0; k < 3; ++k) {
      DataList req = request("text", (void*)frames[k], (unsigned int)strlen(frames[k]), k);
      CHECK(W.Write(h, &req) == 0, "wrapperWrite frame %d", k);
      /* each frame answers once; the last also with a final frame */
      pthread_mutex_lock(&w.mu);
      double deadline = now() + 10;
      while (!w.done && now() < deadline) {
        pthread_mutex_unlock(&w.mu);
        struct timespec ts = {0, 1000000};
        nanosleep(&ts, NULL);
        pthread_mutex_lock(&w.mu);
      }
      CHECK(w.done, "no session result for frame %d", k);
      fprintf(out, "frame %d ret %d ", k, w.ret);
      fwrite(w.data, 1, w.len, out);
      fputc('\n', out);
      free(w.data);
      w.data = NULL;
      w.done = 0;
      pthread_mutex_unlock(&w.mu);
    }
    CHECK(W.Destroy(h) == 0, "wrapperDestroy");
    CHECK(W.Destroy(h) == 30004, "destroying twice");
    /* a session without callback: results wait for wrapperRead */
    const void* h2 = W.Create("pull", params, NULL, NULL, 0, &err);
    CHECK(h2 != NULL && err == 0, "wrapperCreate without callback: err %d", err);
    DataList req = request("text", "pulled", 6, 2);
    CHECK(W.Write(h2, &req) == 0, "wrapperWrite (pull)");
    pDataList got = NULL;
    double deadline = now() + 10;
    while (got == NULL && now() < deadline) {
      CHECK(W.Read(h2, &got) == 0, "wrapperRead");
      if (got == NULL) {
        struct timespec ts = {0, 1000000};
        nanosleep(&ts, NULL);
      }
    }
    CHECK(got != NULL, "wrapperRead gave nothing");
    fprintf(out, "read ");
    fwrite(got->data, 1, got->len, out);
    fputc('\n', out);
    W.ExecFree("pull", &got);
    CHECK(W.Destroy(h2) == 0, "wrapperDestroy (pull)");
    fclose(out);
  } else if (strcmp(cmd, "threads") == 0) {
    int t = atoi(argv[i]), n = atoi(argv[i + 1]);
    pthread_t th[64];
    Job jobs[64];
    CHECK(t <= 40, "at most 40 threads");
    for (int k = 0; k < t; ++k) {
      jobs[k] = (Job){k, n, 0};
      pthread_create(&th[k], NULL, worker, &jobs[k]);
    }
    int failures = 0;
    for (int k = 0; k < t; ++k) {
      pthread_join(th[k], NULL);
      failures += jobs[k].failures;
    }
    CHECK(failures == 0, "%d of %d threaded calls failed", failures, t * n);
    printf("threads ok %d calls\n", t * n);
  } else if (strcmp(cmd, "big") == 0) {
    size_t len = (size_t)atoi(argv[i]) << 20;
    char* data = malloc(len);
    for (size_t k = 0; k < len; ++k) data[k] = (char)('a' + k % 26);
    DataList req = request("text", data, (unsigned int)len, 3);
    pDataList resp = NULL;
    int ret = W.Exec("big", params, &req, &resp, NULL, 0);
    CHECK(ret == 0 && resp != NULL, "big exec returned %d", ret);
    CHECK(resp->len == len, "big result has %u bytes, sent %zu", resp->len, len);
    upper(data, len);
    CHECK(memcmp(resp->data, data, len) == 0, "big result differs");
    W.ExecFree("big", &resp);
    printf("big ok %zu\n", len);
    free(data);
  } else if (strcmp(cmd, "bench") == 0) {
    int n = atoi(argv[i]);
    DataList req = request("text", "hello aiges", 11, 3);
    for (int k = 0; k < n / 10 + 1; ++k) { /* warm-up */
      pDataList resp = NULL;
      W.Exec("bench", params, &req, &resp, NULL, 0);
      W.ExecFree("bench", &resp);
    }
    double t0 = now();
    for (int k = 0; k < n; ++k) {
      pDataList resp = NULL;
      CHECK(W.Exec("bench", params, &req, &resp, NULL, 0) == 0, "bench exec %d", k);
      W.ExecFree("bench", &resp);
    }
    printf("{\"calls\": %d, \"us_per_call\": %.3f}\n", n, (now() - t0) / n * 1e6);
  } else if (strcmp(cmd, "loop") == 0) {
    int n = atoi(argv[i]);
    double t0 = now();
    for (int k = 0; k < n; ++k) {
      char text[32];
      int m = snprintf(text, sizeof text, "call %d", k);
      DataList req = request("text", text, (unsigned int)m, 3);
      pDataList resp = NULL;
      CHECK(W.Exec("loop", params, &req, &resp, NULL, 0) == 0, "loop exec %d", k);
      W.ExecFree("loop", &resp);
      if (k % 10 == 0) CHECK(exec_async(k % 1000, &req, NULL, NULL, NULL) == 0, "loop async %d", k);
    }
    printf("loop ok %d calls %.2f us/call\n", n, (now() - t0) / n * 1e6);
  } else if (strcmp(cmd, "timeouts") == 0) {
    int t = atoi(argv[i]), n = atoi(argv[i + 1]), ms = atoi(argv[i + 2]);
    CHECK(t > 0 && t <= 40 && n > 0 && ms > 0, "timeouts T N MS");
    counts = calloc((size_t)(t * n), sizeof *counts);
    rets = calloc((size_t)(t * n), sizeof *rets);
    pthread_t th[40];
    TimeoutJob jobs[40];
    for (int k = 0; k < t; ++k) {
      jobs[k] = (TimeoutJob){k, n, ms};
      pthread_create(&th[k], NULL, timeout_worker, &jobs[k]);
    }
    for (int k = 0; k < t; ++k) pthread_join(th[k], NULL);
    CHECK(W.Fini() == 0, "wrapperFini"); /* waits for the late results to be dropped */
    check_once(t * n, 300);
    int in_time = 0, timed_out = 0;
    for (int id = 0; id < t * n; ++id) {
      if (rets[id] == 0) ++in_time;
      else if (rets[id] == 10102) {
        ++timed_out;
        printf("timedout to-%d\n", id);
      } else CHECK(0, "call to-%d: ret %d", id, rets[id]);
    }
    const char* text = W.Error(10102);
    CHECK(strstr(text, "timeout") != NULL, "wrapperError(10102) says %s", text);
    printf("error-10102 %s\n", text);
    printf("timeouts ok %d calls %d in time %d timed out\n", t * n, in_time, timed_out);
    free(counts);
    free(rets);
    return 0;
  } else if (strcmp(cmd, "quiet") == 0) {
    int n = 5;
    counts = calloc((size_t)n, sizeof *counts);
    rets = calloc((size_t)n, sizeof *rets);
    for (int id = 0; id < n; ++id) {
      char tag[32], text[32], secs[8];
      snprintf(tag, sizeof tag, "to-%d", id);
      int m = snprintf(text, sizeof text, "to %d", id);
      snprintf(secs, sizeof secs, "%s", id == 0 ? "0.3" : id == 1 ? "1" : "0");
      ParamList sleep_param = {"sleep", secs, (unsigned int)strlen(secs), params};
      DataList req = request("text", text, (unsigned int)m, 3);
      int timeout = id == 0 ? 100 : id == 1 ? 0 : 50;
      int ret = W.ExecAsync(tag, &sleep_param, &req, on_counted, timeout, NULL, 0);
      CHECK(ret == 0, "wrapperExecAsync %s returned %d", tag, ret);
    }
    struct timespec quiet = {3, 500000000L};
    nanosleep(&quiet, NULL);
    check_once(n, 0);
    fprintf(stderr, "quiet mark\n");
    printf("quiet ok\n");
    free(counts);
    free(rets);
  } else if (strcmp(cmd, "fini-pending") == 0) {
    int n = atoi(argv[i]);
    CHECK(n > 0, "fini-pending N");
    counts = calloc((size_t)n, sizeof *counts);
    rets = calloc((size_t)n, sizeof *rets);
    /* one quick call first: the worker runs Python, so it takes the next call at once */
    DataList warm = request("text", "warm", 4, 3);
    CHECK(exec_async(1, &warm, NULL, NULL, NULL) == 0, "warm-up call");
    /* 3 s each: longer than wrapperFini's 2 s wait, so none is answered by the wrapper */
    ParamList sleep_param = {"sleep", "3", 1, params};
    for (int id = 0; id < n; ++id) {
      char tag[32], text[32];
      snprintf(tag, sizeof tag, "to-%d", id);
      int m = snprintf(text, sizeof text, "to %d", id);
      DataList req = request("text", text, (unsigned int)m, 3);
      /* the first with a timeout longer than the test, the rest with none */
      int ret = W.ExecAsync(tag, &sleep_param, &req, on_counted, id == 0 ? 60000 : 0, NULL, 0);
      CHECK(ret == 0, "wrapperExecAsync %s returned %d", tag, ret);
    }
    struct timespec started = {0, 300000000L}; /* let the worker start the first call */
    nanosleep(&started, NULL);
    double t0 = now();
    CHECK(W.Fini() == 0, "wrapperFini");
    double took = now() - t0;
    check_once(n, 0);
    for (int id = 0; id < n; ++id) CHECK(rets[id] == 30005, "to-%d: ret %d", id, rets[id]);
    /* the running call ends after fini: its late result must not reach the callback */
    check_once(n, 2000);
    const char* text = W.Error(30005);
    CHECK(strstr(text, "wrapperFini") != NULL, "wrapperError(30005) says %s", text);
    printf("fini-pending ok %d calls, wrapperFini took %.1f s\n", n, took);
    free(counts);
    free(rets);
    return 0;
  } else {
    CHECK(0, "unknown command %s", cmd);
  }
  CHECK(W.Fini() == 0, "wrapperFini");
  return 0;
}
