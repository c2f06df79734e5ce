// The loader's C lists (ParamList, DataList of aiges_wrapper.h) <-> Python values, for
// libwrapper.cc: reading the loader's lists into dicts/tuples (zero-copy Buffer views or
// owned copies), building the malloc'd DataList chains the library hands back, freeing them.
//
// One rule for every C string read from the loader (param keys and values, data keys, desc
// keys and values, usrTag): bytes that are not UTF-8 are decoded with "replace" (U+FFFD), so
// a bad byte never fails a call; text built for the log goes through log_text
// ("backslashreplace": the bad bytes show as \xNN). Request data is bytes, never decoded.
//
// Not here: which Python calls are made, the GIL (every function that makes Python objects
// must be called with the GIL held), threads, the async bookkeeping.
#pragma once

#include <Python.h>
#include <pybind11/pybind11.h>

#include <cstdlib>
#include <cstring>
#include <string>
#include <utility>
#include <vector>

#include "aiges_wrapper.h"

namespace gf_c {

namespace py = pybind11;

using Pairs = std::vector<std::pair<std::string, std::string>>;

// A copy of one request item, for calls that outlive the loader's memory (async, sessions).
struct OwnedItem {
  std::string key, data;
  int type, status;
  Pairs desc;
};

inline std::string str_of(const char* s, size_t n) {
  return s == nullptr ? std::string() : std::string(s, n);
}

// A C string as a Python str by the one rule above (GIL held).
inline py::str text(const char* s, size_t n) {
  PyObject* o = PyUnicode_DecodeUTF8(s == nullptr ? "" : s,
                                     static_cast<Py_ssize_t>(s == nullptr ? 0 : n), "replace");
  if (o == nullptr) throw py::error_already_set();
  return py::reinterpret_steal<py::str>(o);
}
inline py::str text(const char* s) { return text(s, s == nullptr ? 0 : strlen(s)); }
inline py::str text(const std::string& s) { return text(s.data(), s.size()); }

// Any bytes as log text: non-UTF-8 bytes as \xNN (GIL held).
inline py::str log_text(const std::string& s) {
  PyObject* o =
      PyUnicode_DecodeUTF8(s.data(), static_cast<Py_ssize_t>(s.size()), "backslashreplace");
  if (o == nullptr) throw py::error_already_set();
  return py::reinterpret_steal<py::str>(o);
}

// DataList.type/status read as the int they are in memory: the loader may put any value
// there, and loading an out-of-range enum value is undefined behaviour.
inline int int_field(const void* field) {
  int v;
  memcpy(&v, field, sizeof v);
  return v;
}

inline size_t value_len(pParamList p) {
  return p->value == nullptr ? 0 : (p->vlen ? p->vlen : strlen(p->value));
}

inline py::dict params_dict(pParamList p) {
  py::dict d;
  for (; p != nullptr; p = p->next) {
    if (p->key == nullptr) continue;
    d[text(p->key)] = text(p->value, value_len(p));
  }
  return d;
}

inline Pairs params_vector(pParamList p) {
  Pairs v;
  for (; p != nullptr; p = p->next) {
    if (p->key == nullptr) continue;
    v.emplace_back(p->key, str_of(p->value, value_len(p)));
  }
  return v;
}

inline py::dict pairs_dict(const Pairs& v) {
  py::dict d;
  for (const auto& kv : v) d[text(kv.first)] = text(kv.second);
  return d;
}

// A zero-copy aiges_embed.Buffer over [data, data+len). Collects it in `views` for release.
inline py::object view_of(const py::object& buffer_type, const void* data, size_t len,
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
inline py::list request_items(pDataList d, const py::object& buffer_type,
                              std::vector<py::object>* views, bool copy) {
  py::list items;
  for (; d != nullptr; d = d->next) {
    py::object data = copy ? py::object(py::bytes(static_cast<const char*>(d->data),
                                                  d->data == nullptr ? 0 : d->len))
                           : view_of(buffer_type, d->data, d->len, views);
    items.append(py::make_tuple(text(d->key), data, int_field(&d->type),
                                int_field(&d->status), params_dict(d->desc)));
  }
  return items;
}

inline py::list owned_items(const std::vector<OwnedItem>& owned, const py::object& buffer_type,
                            std::vector<py::object>* views) {
  py::list items;
  for (const auto& it : owned) {
    items.append(py::make_tuple(text(it.key),
                                view_of(buffer_type, it.data.data(), it.data.size(), views),
                                it.type, it.status, pairs_dict(it.desc)));
  }
  return items;
}

// A copy of the loader's DataList (no GIL needed).
inline std::vector<OwnedItem> copy_items(pDataList d) {
  std::vector<OwnedItem> v;
  for (; d != nullptr; d = d->next) {
    v.push_back(OwnedItem{d->key == nullptr ? "" : d->key,
                          str_of(static_cast<const char*>(d->data), d->data ? d->len : 0),
                          int_field(&d->type), int_field(&d->status), params_vector(d->desc)});
  }
  return v;
}

inline char* dup(const char* s, size_t n) {
  char* out = static_cast<char*>(malloc(n + 1));
  if (n) memcpy(out, s, n);
  out[n] = '\0';
  return out;
}

inline void free_params(pParamList p) {
  while (p != nullptr) {
    pParamList next = p->next;
    free(p->key);
    free(p->value);
    free(p);
    p = next;
  }
}

// Frees a chain made by result_list (no GIL needed).
inline void free_list(pDataList d) {
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
// On an exception the part built so far is freed.
inline pDataList result_list(py::handle items) {
  pDataList head = nullptr;
  pDataList* tail = &head;
  try {
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
      int type = t[2].cast<int>(), status = t[3].cast<int>();
      memcpy(&node->type, &type, sizeof type);
      memcpy(&node->status, &status, sizeof status);
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
  } catch (...) {
    free_list(head);
    throw;
  }
  return head;
}

}  // namespace gf_c
