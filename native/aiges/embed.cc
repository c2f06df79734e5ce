// `aiges_embed` in C++: the AIGES data classes a wrapper.py exchanges with its host, and
// `Buffer`, the zero-copy view request data reaches Python through.
//
// Built as the extension `server.aiges._embed`; server/aiges/compat registers it as
// `aiges_embed` when wrappers are hosted (the pure-Python server/aiges/compat/dto.py is the
// fallback, with the same names and behaviour). libwrapper.cc and the tests use `Buffer`.
//
// Buffer: a read-only, bytes-like view of memory someone else owns (any object with the
// buffer protocol: a memoryview over the loader's request, a bytes object, ...). It never
// copies: memoryview(buf), numpy.frombuffer(buf, ...), buf[0], len(buf), buf.decode() read
// the memory in place. Methods bytes has and Buffer lacks (split, startswith, ...) run on a
// bytes copy. The host calls release() when the memory stops being valid; afterwards every
// access raises ValueError (views taken before are the user's to drop, see `exports`).
//
// Not here: calling the user code, or the callback sink (server/aiges/compat/dto.py).

#include <Python.h>
#include <pybind11/pybind11.h>
#include <pybind11/stl.h>

#include <string>

namespace py = pybind11;

namespace {

// ---------------------------------------------------------------------------------------
// Buffer (plain CPython type: pybind11's buffer support has no release hook, and the
// export count is how the host learns a view outlived the call).
struct BufferObject {
  PyObject_HEAD
  Py_buffer view;   // the source's view; view.obj == nullptr once released
  Py_ssize_t exports;
};

int buffer_ready(BufferObject* self) {
  if (self->view.obj == nullptr) {
    PyErr_SetString(PyExc_ValueError,
                    "this request data was released when its call ended; copy it with "
                    "bytes(data) during the call to keep it");
    return -1;
  }
  return 0;
}

PyObject* buffer_new(PyTypeObject* type, PyObject* args, PyObject* kwds) {
  static const char* names[] = {"source", nullptr};
  PyObject* source = nullptr;
  if (!PyArg_ParseTupleAndKeywords(args, kwds, "O:Buffer", const_cast<char**>(names), &source)) {
    return nullptr;
  }
  auto* self = reinterpret_cast<BufferObject*>(type->tp_alloc(type, 0));
  if (self == nullptr) return nullptr;
  if (PyObject_GetBuffer(source, &self->view, PyBUF_SIMPLE) != 0) {
    self->view.obj = nullptr;
    Py_DECREF(self);
    return nullptr;
  }
  self->exports = 0;
  return reinterpret_cast<PyObject*>(self);
}

void buffer_dealloc(BufferObject* self) {
  if (self->view.obj != nullptr) PyBuffer_Release(&self->view);
  Py_TYPE(self)->tp_free(reinterpret_cast<PyObject*>(self));
}

int buffer_getbuffer(BufferObject* self, Py_buffer* view, int flags) {
  if (buffer_ready(self) < 0) {
    view->obj = nullptr;
    return -1;
  }
  if (PyBuffer_FillInfo(view, reinterpret_cast<PyObject*>(self), self->view.buf, self->view.len,
                        1, flags) != 0) {
    return -1;
  }
  ++self->exports;
  return 0;
}

void buffer_releasebuffer(BufferObject* self, Py_buffer*) { --self->exports; }

PyBufferProcs buffer_as_buffer = {
    reinterpret_cast<getbufferproc>(buffer_getbuffer),
    reinterpret_cast<releasebufferproc>(buffer_releasebuffer),
};

Py_ssize_t buffer_length(BufferObject* self) {
  if (buffer_ready(self) < 0) return -1;
  return self->view.len;
}

PyObject* buffer_bytes(BufferObject* self, PyObject*) {
  if (buffer_ready(self) < 0) return nullptr;
  return PyBytes_FromStringAndSize(static_cast<const char*>(self->view.buf), self->view.len);
}

// buf[i] -> int, buf[a:b] -> bytes (the semantics of bytes).
PyObject* buffer_subscript(BufferObject* self, PyObject* key) {
  if (buffer_ready(self) < 0) return nullptr;
  const auto* data = static_cast<const unsigned char*>(self->view.buf);
  Py_ssize_t len = self->view.len;
  if (PyIndex_Check(key)) {
    Py_ssize_t i = PyNumber_AsSsize_t(key, PyExc_IndexError);
    if (i == -1 && PyErr_Occurred()) return nullptr;
    if (i < 0) i += len;
    if (i < 0 || i >= len) {
      PyErr_SetString(PyExc_IndexError, "index out of range");
      return nullptr;
    }
    return PyLong_FromLong(data[i]);
  }
  if (PySlice_Check(key)) {
    Py_ssize_t start, stop, step;
    if (PySlice_Unpack(key, &start, &stop, &step) < 0) return nullptr;
    Py_ssize_t n = PySlice_AdjustIndices(len, &start, &stop, step);
    if (step == 1) {
      return PyBytes_FromStringAndSize(reinterpret_cast<const char*>(data) + start, n);
    }
    PyObject* out = PyBytes_FromStringAndSize(nullptr, n);
    if (out == nullptr) return nullptr;
    char* dst = PyBytes_AS_STRING(out);
    for (Py_ssize_t k = 0, i = start; k < n; ++k, i += step) dst[k] = static_cast<char>(data[i]);
    return out;
  }
  PyErr_Format(PyExc_TypeError, "Buffer indices must be integers or slices, not %.100s",
               Py_TYPE(key)->tp_name);
  return nullptr;
}

PyObject* buffer_decode(BufferObject* self, PyObject* args, PyObject* kwds) {
  static const char* names[] = {"encoding", "errors", nullptr};
  const char* encoding = "utf-8";
  const char* errors = "strict";
  if (!PyArg_ParseTupleAndKeywords(args, kwds, "|ss:decode", const_cast<char**>(names),
                                   &encoding, &errors)) {
    return nullptr;
  }
  if (buffer_ready(self) < 0) return nullptr;
  return PyUnicode_Decode(static_cast<const char*>(self->view.buf), self->view.len, encoding,
                          errors);
}

PyObject* buffer_release(BufferObject* self, PyObject*) {
  if (self->view.obj != nullptr) PyBuffer_Release(&self->view);
  self->view.obj = nullptr;
  return PyLong_FromSsize_t(self->exports);
}

PyObject* buffer_get_exports(BufferObject* self, void*) { return PyLong_FromSsize_t(self->exports); }

PyObject* buffer_get_released(BufferObject* self, void*) {
  return PyBool_FromLong(self->view.obj == nullptr);
}

PyObject* buffer_richcompare(BufferObject* self, PyObject* other, int op) {
  if (op != Py_EQ && op != Py_NE) Py_RETURN_NOTIMPLEMENTED;
  if (buffer_ready(self) < 0) return nullptr;
  Py_buffer theirs;
  if (PyObject_GetBuffer(other, &theirs, PyBUF_SIMPLE) != 0) {
    PyErr_Clear();
    Py_RETURN_NOTIMPLEMENTED;
  }
  bool equal = theirs.len == self->view.len &&
               (self->view.len == 0 || memcmp(theirs.buf, self->view.buf, self->view.len) == 0);
  PyBuffer_Release(&theirs);
  return PyBool_FromLong(op == Py_EQ ? equal : !equal);
}

PyObject* buffer_repr(BufferObject* self) {
  if (self->view.obj == nullptr) return PyUnicode_FromString("<aiges_embed.Buffer released>");
  return PyUnicode_FromFormat("<aiges_embed.Buffer %zd bytes>", self->view.len);
}

// Attributes bytes has and Buffer lacks run on a bytes copy (wrapper code written for
// bytes keeps working; the zero-copy paths are the buffer protocol, [], len, decode).
PyObject* buffer_getattro(BufferObject* self, PyObject* name) {
  PyObject* found = PyObject_GenericGetAttr(reinterpret_cast<PyObject*>(self), name);
  if (found != nullptr || !PyErr_ExceptionMatches(PyExc_AttributeError)) return found;
  if (!PyObject_HasAttr(reinterpret_cast<PyObject*>(&PyBytes_Type), name)) return nullptr;
  PyErr_Clear();
  PyObject* copy = buffer_bytes(self, nullptr);
  if (copy == nullptr) return nullptr;
  PyObject* attr = PyObject_GetAttr(copy, name);
  Py_DECREF(copy);
  return attr;
}

PyMethodDef buffer_methods[] = {
    {"tobytes", reinterpret_cast<PyCFunction>(buffer_bytes), METH_NOARGS,
     "A bytes copy of the data."},
    {"__bytes__", reinterpret_cast<PyCFunction>(buffer_bytes), METH_NOARGS,
     "A bytes copy of the data."},
    {"decode", reinterpret_cast<PyCFunction>(reinterpret_cast<void (*)()>(buffer_decode)),
     METH_VARARGS | METH_KEYWORDS, "Decode the data in place (default utf-8)."},
    {"release", reinterpret_cast<PyCFunction>(buffer_release), METH_NOARGS,
     "Forget the memory (the host calls it when the call ends); returns how many views "
     "taken through the buffer protocol were still held."},
    {nullptr, nullptr, 0, nullptr},
};

PyGetSetDef buffer_getset[] = {
    {"exports", reinterpret_cast<getter>(buffer_get_exports), nullptr,
     "How many buffer-protocol views of this data are held right now.", nullptr},
    {"released", reinterpret_cast<getter>(buffer_get_released), nullptr,
     "True once the host released the memory.", nullptr},
    {nullptr, nullptr, nullptr, nullptr, nullptr},
};

PySequenceMethods buffer_as_sequence = {};
PyMappingMethods buffer_as_mapping = {};
PyTypeObject BufferType = {PyVarObject_HEAD_INIT(nullptr, 0)};

bool ready_buffer_type() {
  buffer_as_sequence.sq_length = reinterpret_cast<lenfunc>(buffer_length);
  buffer_as_mapping.mp_length = reinterpret_cast<lenfunc>(buffer_length);
  buffer_as_mapping.mp_subscript = reinterpret_cast<binaryfunc>(buffer_subscript);
  BufferType.tp_name = "aiges_embed.Buffer";
  BufferType.tp_basicsize = sizeof(BufferObject);
  BufferType.tp_dealloc = reinterpret_cast<destructor>(buffer_dealloc);
  BufferType.tp_repr = reinterpret_cast<reprfunc>(buffer_repr);
  BufferType.tp_as_sequence = &buffer_as_sequence;
  BufferType.tp_as_mapping = &buffer_as_mapping;
  BufferType.tp_as_buffer = &buffer_as_buffer;
  BufferType.tp_getattro = reinterpret_cast<getattrofunc>(buffer_getattro);
  BufferType.tp_flags = Py_TPFLAGS_DEFAULT;
  BufferType.tp_doc =
      "Buffer(source): a read-only, zero-copy, bytes-like view of `source`'s memory.";
  BufferType.tp_richcompare = reinterpret_cast<richcmpfunc>(buffer_richcompare);
  BufferType.tp_methods = buffer_methods;
  BufferType.tp_getset = buffer_getset;
  BufferType.tp_new = buffer_new;
  return PyType_Ready(&BufferType) == 0;
}

// ---------------------------------------------------------------------------------------
// The data classes: attribute bags with the constructors, methods and reprs of
// compat/dto.py (dynamic attributes allowed, as on the Python classes).

py::int_ length_of(const py::object& data) {
  if (py::isinstance<py::str>(data)) {
    return py::int_(py::len(data.attr("encode")("utf-8")));
  }
  try {
    return py::int_(py::len(data));
  } catch (py::error_already_set& e) {
    if (!e.matches(PyExc_TypeError)) throw;
    return py::int_(0);
  }
}

py::dict dict_of(const py::object& desc) {
  if (desc.is_none() || !PyObject_IsTrue(desc.ptr())) return py::dict();
  return py::dict(desc);
}

struct DataListNode {
  py::object key, data, len, type, status, desc;
};

struct DataListCls {
  py::object list;
};

struct ResponseData {
  py::object key, data, len, type, status, desc;
};

struct Response {
  py::object list, error_code;
};

struct SessionCreateResponse {
  py::object handle, error_code;
};

std::string repr_of(const py::object& o) { return py::repr(o).cast<std::string>(); }
std::string str_of(const py::object& o) { return py::str(o).cast<std::string>(); }

}  // namespace

PYBIND11_MODULE(_embed, m) {
  m.doc() =
      "aiges_embed in C++: the AIGES data classes and Buffer, the zero-copy request data view "
      "(see native/aiges/embed.cc).";
  if (!ready_buffer_type()) throw py::error_already_set();
  Py_INCREF(&BufferType);
  m.add_object("Buffer", reinterpret_cast<PyObject*>(&BufferType));

  py::class_<DataListNode>(m, "DataListNode", py::dynamic_attr(), py::module_local())
      .def(py::init([](py::object key, py::object data, py::object len, py::object type,
                       py::object status, py::object desc) {
             py::object n = len.is_none() ? py::object(length_of(data)) : len;
             return DataListNode{key, data, n, type, status, dict_of(desc)};
           }),
           py::arg("key") = "", py::arg("data") = py::bytes(""), py::arg("len") = py::none(),
           py::arg("type") = 0, py::arg("status") = 0, py::arg("desc") = py::none())
      .def_readwrite("key", &DataListNode::key)
      .def_readwrite("data", &DataListNode::data)
      .def_readwrite("len", &DataListNode::len)
      .def_readwrite("type", &DataListNode::type)
      .def_readwrite("status", &DataListNode::status)
      .def_readwrite("desc", &DataListNode::desc)
      .def("get_data", [](const DataListNode& n) { return n.data; })
      .def("__repr__", [](const DataListNode& n) {
        return "DataListNode(key=" + repr_of(n.key) + ", len=" + str_of(n.len) +
               ", type=" + str_of(n.type) + ", status=" + str_of(n.status) + ")";
      });

  py::class_<DataListCls>(m, "DataListCls", py::dynamic_attr(), py::module_local())
      .def(py::init([](py::object items) {
             return DataListCls{items.is_none() ? py::list() : py::list(items)};
           }),
           py::arg("items") = py::none())
      .def_readwrite("list", &DataListCls::list)
      .def(
          "get",
          [](const DataListCls& self, py::object key) -> py::object {
            for (py::handle node : self.list) {
              if (py::object(node.attr("key")).equal(key)) return py::reinterpret_borrow<py::object>(node);
            }
            return py::none();
          },
          py::arg("key"))
      .def("__repr__",
           [](const DataListCls& self) { return "DataListCls(" + repr_of(self.list) + ")"; });

  py::class_<ResponseData>(m, "ResponseData", py::dynamic_attr(), py::module_local())
      .def(py::init([](py::object key, py::object data, py::object length, py::object type,
                       py::object status, py::object desc) {
             py::object n = length.is_none() ? py::object(length_of(data)) : length;
             return ResponseData{key, data, n, type, status, dict_of(desc)};
           }),
           py::arg("key") = "", py::arg("data") = py::bytes(""), py::arg("length") = py::none(),
           py::arg("type") = 0, py::arg("status") = 3, py::arg("desc") = py::none())
      .def_readwrite("key", &ResponseData::key)
      .def_readwrite("data", &ResponseData::data)
      .def_readwrite("len", &ResponseData::len)
      .def_readwrite("type", &ResponseData::type)
      .def_readwrite("status", &ResponseData::status)
      .def_readwrite("desc", &ResponseData::desc)
      .def("setData",
           [](ResponseData& self, py::object data) {
             self.data = data;
             self.len = length_of(data);
           })
      .def("setDataType", [](ResponseData& self, py::object t) { self.type = t; })
      .def("__repr__", [](const ResponseData& n) {
        return "ResponseData(key=" + repr_of(n.key) + ", len=" + str_of(n.len) +
               ", type=" + str_of(n.type) + ", status=" + str_of(n.status) + ")";
      });

  py::class_<Response>(m, "Response", py::dynamic_attr(), py::module_local())
      .def(py::init([](py::object list, py::object error_code) {
             return Response{list.is_none() ? py::list() : list, error_code};
           }),
           py::arg("list") = py::none(), py::arg("error_code") = 0)
      .def_readwrite("list", &Response::list)
      .def_readwrite("error_code", &Response::error_code)
      .def(
          "response_err",
          [](py::object self, py::object code) {
            self.attr("error_code") = code;
            return self;
          },
          py::arg("code"))
      .def("__repr__", [](const Response& r) {
        return "Response(error_code=" + str_of(r.error_code) + ", list=" + repr_of(r.list) + ")";
      });

  py::class_<SessionCreateResponse>(m, "SessionCreateResponse", py::dynamic_attr(),
                                    py::module_local())
      .def(py::init([](py::object handle, py::object error_code) {
             return SessionCreateResponse{handle, error_code};
           }),
           py::arg("handle") = "", py::arg("error_code") = 0)
      .def_readwrite("handle", &SessionCreateResponse::handle)
      .def_readwrite("error_code", &SessionCreateResponse::error_code)
      .def("__repr__", [](const SessionCreateResponse& r) {
        return "SessionCreateResponse(handle=" + repr_of(r.handle) +
               ", error_code=" + str_of(r.error_code) + ")";
      });

  // The streaming callback goes to the Python sink the hosting plugin installed.
  py::object sink_module = py::module_::import("server.aiges.compat.dto");
  m.attr("callback") = sink_module.attr("callback");
  m.attr("set_callback_sink") = sink_module.attr("set_callback_sink");
}
