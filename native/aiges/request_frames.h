// Frames between gRPC and Python for the native AIGES plugin server (part of
// plugin_server.cc, the `_native` module): a request's data list -> the Bridge's plain
// tuples `(key, data, type, status, desc)`, on two paths:
//   - the wire path (wrapperOnceExec): WireRequest takes gRPC's received slices, reads them
//     with wire_reader.h, copies each payload once into the Python bytes, and releases each
//     slice as soon as nothing more is copied from it;
//   - the protobuf path (wrapperWrite): to_items, from a parsed aiges.RequestData list;
// and back: fill_frames, the wrapper's tuples -> aiges.Response.list.
//
// What it does not do: run user code, queue or send responses (outbox.h), or parse the
// wire format itself (wire_reader.h). Every function here needs the GIL, except where it
// releases it around a copy.
#pragma once

#include <grpcpp/grpcpp.h>
#include <pybind11/pybind11.h>
#ifdef __GLIBC__
#include <malloc.h>
#endif

#include <cstddef>
#include <cstring>
#include <memory>
#include <string>
#include <vector>

#include "aiges.grpc.pb.h"
#include "wire_reader.h"

namespace gf::frames {

namespace py = pybind11;
namespace wire = gf::wire;

constexpr size_t kTrimEvery = 8u << 20;  // give freed request memory back every 8 MiB

// Conversions between protobuf and the Bridge's plain values. All need the GIL.

inline py::dict to_dict(const google::protobuf::Map<std::string, std::string>& map) {
  py::dict d;
  for (const auto& kv : map) d[py::str(kv.first)] = py::str(kv.second);
  return d;
}

// RequestData list -> [(key, data, type, status, desc), ...]. The payload is copied once,
// into the Python bytes, and the protobuf's copy is freed right after (the request is
// owned by the job), so a payload is held twice only while it is converted.
inline py::list to_items(google::protobuf::RepeatedPtrField<aiges::RequestData>* list) {
  py::list items(list->size());
  for (int i = 0; i < list->size(); ++i) {
    auto* d = list->Mutable(i);
    py::bytes data(d->data());
    std::string().swap(*d->mutable_data());
    items[i] = py::make_tuple(py::str(d->key()), std::move(data), d->type(), d->status(),
                              to_dict(d->desc()));
  }
  return items;
}

// wrapperOnceExec's request, read from gRPC's received slices by wire_reader.h instead of
// protobuf's parser (which copied each payload into a std::string while the slices were
// still held). Each payload is copied once, straight into the Python bytes the wrapper
// gets, and every slice is released as soon as nothing more is copied from it, so a
// payload is held about once, not two or three times.
inline py::dict pairs_dict(const wire::Pairs& pairs) {
  py::dict d;
  for (const auto& kv : pairs) d[py::str(kv.first)] = py::str(kv.second);
  return d;
}

// RequestData list -> [(key, data, type, status, desc), ...], the same values to_items
// gives. `release(i)` is called once per piece, when no payload is still to be copied from
// it (pieces holding no payload at once). Needs the GIL; the copies run without it.
template <typename Release>
py::list wire_items(const wire::Request& message, const std::vector<wire::Piece>& pieces,
                    Release&& release) {
  std::vector<long> last_use(pieces.size(), -1);  // the last payload span read from a piece
  long span = 0;
  for (const auto& d : message.list) {
    for (const auto& s : d.spans) last_use[s.piece] = span++;
  }
  for (size_t i = 0; i < pieces.size(); ++i) {
    if (last_use[i] < 0) release(i);
  }
  py::list items(message.list.size());
  span = 0;
  for (size_t i = 0; i < message.list.size(); ++i) {
    const auto& d = message.list[i];
    PyObject* raw = PyBytes_FromStringAndSize(nullptr, static_cast<Py_ssize_t>(d.size));
    if (raw == nullptr) throw py::error_already_set();
    auto data = py::reinterpret_steal<py::bytes>(raw);
    {
      py::gil_scoped_release nogil;  // `data` is ours alone until it is in the list
      char* out = PyBytes_AS_STRING(raw);
      for (const auto& s : d.spans) {
        std::memcpy(out, pieces[s.piece].data + s.offset, s.length);
        out += s.length;
        if (last_use[s.piece] == span++) release(s.piece);
      }
    }
    items[i] = py::make_tuple(py::str(d.key), std::move(data), d.type, d.status,
                              pairs_dict(d.desc));
  }
  return items;
}

// The request a once-exec job owns: gRPC's slices (the ByteBuffer's references moved
// here) and what the wire reader found in them.
struct WireRequest {
  std::vector<grpc::Slice> slices;
  std::vector<wire::Piece> pieces;
  wire::Request message;
  size_t freed = 0;  // bytes of released slices not yet handed back to the system
  size_t total = 0;  // the body's size

  // Throws wire::WireError for a body that is not a well-formed aiges.Request.
  static std::shared_ptr<WireRequest> take(const grpc::ByteBuffer* request) {
    auto owned = std::make_shared<WireRequest>();
    {
      // The handler's buffer is not read again once the handler returns: take its slices.
      grpc::ByteBuffer buffer;
      buffer.Swap(const_cast<grpc::ByteBuffer*>(request));
      if (!buffer.Dump(&owned->slices).ok()) owned->slices.clear();  // no body: empty
    }
    size_t total = 0;
    owned->pieces.reserve(owned->slices.size());
    for (const auto& slice : owned->slices) {
      owned->pieces.push_back(wire::Piece{slice.begin(), slice.size()});
      total += slice.size();
    }
    owned->total = total;
    owned->message = wire::parse_request(owned->pieces, total);
    return owned;
  }

  py::list items() {
    return wire_items(message, pieces, [this](size_t i) {
      freed += slices[i].size();
      slices[i] = grpc::Slice();
#ifdef __GLIBC__
      // glibc keeps freed heap memory mapped; without giving it back as we go, the slices'
      // pages stay resident beside the new bytes and the peak is two payloads, not one.
      if (freed >= kTrimEvery) {
        freed = 0;
        malloc_trim(0);
      }
#endif
    });
  }
};

// The handler's request, moved (not copied) into an object the job owns: the sync server
// does not read it after the handler returns.
template <typename Message>
std::shared_ptr<Message> take(const Message* request) {
  auto owned = std::make_shared<Message>();
  owned->Swap(const_cast<Message*>(request));
  return owned;
}

// [(key, data, type, status, desc), ...] -> Response.list
inline void fill_frames(aiges::Response* response, py::handle frames) {
  for (py::handle frame : frames) {
    auto t = frame.cast<py::tuple>();
    auto* d = response->add_list();
    d->set_key(t[0].cast<std::string>());
    std::string data = t[1].cast<std::string>();
    d->set_len(data.size());
    d->set_data(std::move(data));
    d->set_type(t[2].cast<uint32_t>());
    d->set_status(t[3].cast<uint32_t>());
    for (auto kv : t[4].cast<py::dict>()) {
      (*d->mutable_desc())[kv.first.cast<std::string>()] = kv.second.cast<std::string>();
    }
  }
}

}  // namespace gf::frames
