// A reader of the protobuf wire format for exactly one message, aiges.Request
// (server/aiges/proto/aiges.proto), over memory in pieces (gRPC's received slices).
//
// Why it exists: protobuf's own parser copies every `bytes` field into a std::string while
// gRPC still holds the received slices, so a 64 MiB payload was held twice before our code
// even ran, and a third time once copied into Python. This reader copies only the small
// fields (tag, params, key, desc, type, status) and records where each RequestData.data
// lies in the pieces (a list of spans), so the caller can copy it once, piece by piece,
// into its final home and release each piece as soon as it is copied.
//
// What it follows from protobuf (upb, grpcio's parser, byte for byte): varints of up to 10
// bytes (32-bit fields keep the low 32 bits) but field keys of at most 5, length-delimited fields, unknown fields
// skipped by wire type (groups included; field number 0 is accepted inside an unknown
// group), a field with an unexpected wire type treated as unknown, the last value of a
// repeated singular field winning, missing map keys/values as "", a map entry holding any
// unknown field dropped from the map (upb moves it to the unknown fields), the depth limit
// of kMaxDepth counted across groups AND the messages around them (a group inside a
// RequestData has one level less), and proto3's rule that string fields hold valid UTF-8. Anything else (a truncated field, a length past
// the end of its message, a varint over 10 bytes, a key over 5, field number 0, an end-group without its
// start, wire types 6 and 7) is a WireError naming what is wrong and at which byte; it never
// reads outside the pieces.
//
// What it does not do: other messages, writing, or owning memory (the pieces must outlive
// the reader and the spans it returns). No gRPC, no Python: plain C++ so it can be tested on
// its own (`server.aiges._native._parse_request`).
#pragma once

#include <cstddef>
#include <cstdint>
#include <cstring>
#include <stdexcept>
#include <string>
#include <utility>
#include <vector>

namespace gf::wire {

constexpr int kMaxDepth = 100;  // protobuf's default recursion limit

struct WireError : std::runtime_error {
  using std::runtime_error::runtime_error;
};

struct Piece {
  const uint8_t* data;
  size_t size;
};

// Part of a field's bytes that lies in one piece.
struct Span {
  size_t piece;
  size_t offset;
  size_t length;
};

using Pairs = std::vector<std::pair<std::string, std::string>>;

struct DataField {  // aiges.RequestData, its payload left in place
  std::string key;
  uint64_t len = 0;
  uint32_t type = 0;
  uint32_t status = 0;
  Pairs desc;  // wire order; a later entry with the same key wins
  size_t size = 0;
  std::vector<Span> spans;
};

struct Request {  // aiges.Request
  std::string tag;
  Pairs params;
  std::vector<DataField> list;
};

// True when [p, p+n) is valid UTF-8 (no overlong forms, no surrogates, <= U+10FFFF).
inline bool valid_utf8(const uint8_t* p, size_t n) {
  size_t i = 0;
  while (i < n) {
    uint8_t c = p[i];
    if (c < 0x80) {
      ++i;
      continue;
    }
    size_t extra;
    uint32_t cp;
    if (c >= 0xC2 && c <= 0xDF) {
      extra = 1;
      cp = c & 0x1F;
    } else if (c >= 0xE0 && c <= 0xEF) {
      extra = 2;
      cp = c & 0x0F;
    } else if (c >= 0xF0 && c <= 0xF4) {
      extra = 3;
      cp = c & 0x07;
    } else {
      return false;
    }
    if (n - i <= extra) return false;
    for (size_t k = 1; k <= extra; ++k) {
      uint8_t cc = p[i + k];
      if ((cc & 0xC0) != 0x80) return false;
      cp = (cp << 6) | (cc & 0x3F);
    }
    if ((extra == 2 && (cp < 0x800 || (cp >= 0xD800 && cp <= 0xDFFF))) ||
        (extra == 3 && (cp < 0x10000 || cp > 0x10FFFF))) {
      return false;
    }
    i += extra + 1;
  }
  return true;
}

// A position in the pieces and how many bytes of the current message are left from it.
class Reader {
 public:
  Reader(const std::vector<Piece>& pieces, size_t total)
      : pieces_(&pieces), remaining_(total), consumed_(0) {
    settle();
  }

  bool at_end() const { return remaining_ == 0; }
  size_t position() const { return consumed_; }

  static constexpr size_t kMaxKeyBytes = 5;

  uint64_t varint(const char* what) {
    uint64_t value = 0;
    for (int i = 0; i < 10; ++i) {
      if (remaining_ == 0) fail(std::string("truncated varint in ") + what);
      uint8_t b = next_byte();
      value |= static_cast<uint64_t>(b & 0x7F) << (7 * i);
      if ((b & 0x80) == 0) return value;
    }
    fail(std::string("varint longer than 10 bytes in ") + what);
  }

  // The length prefix of a length-delimited field, checked against what is left.
  size_t length(const char* what) {
    size_t start = consumed_;
    uint64_t n = varint(what);
    if (n > remaining_) {
      throw WireError(std::string(what) + " at byte " + std::to_string(start) + " says " +
                      std::to_string(n) + " bytes but only " + std::to_string(remaining_) +
                      " remain: the message is truncated or malformed");
    }
    return static_cast<size_t>(n);
  }

  std::string string(size_t n, const char* what, bool utf8) {
    size_t start = consumed_;
    std::string out;
    out.resize(n);
    copy(reinterpret_cast<uint8_t*>(out.data()), n);
    if (utf8 && !valid_utf8(reinterpret_cast<const uint8_t*>(out.data()), n)) {
      throw WireError(std::string(what) + " at byte " + std::to_string(start) +
                      " is not valid UTF-8 (proto3 string fields must be)");
    }
    return out;
  }

  // Record where the next n bytes lie, without copying them.
  void spans(size_t n, std::vector<Span>* out) {
    if (n > remaining_) fail("read past the end of the message");
    out->clear();
    while (n > 0) {
      const Piece& p = (*pieces_)[index_];
      size_t take = std::min(n, p.size - offset_);
      out->push_back(Span{index_, offset_, take});
      advance(take);
      n -= take;
    }
  }

  void skip(size_t n) { advance(n); }

  // A reader limited to the next n bytes (n already checked); this one moves past them.
  Reader sub(size_t n) {
    Reader inner = *this;
    inner.remaining_ = n;
    advance(n);
    return inner;
  }

  // Skip an unknown field. `depth`: the messages and groups around it (the top message: 0).
  void skip_field(uint32_t field, uint32_t wire_type, int depth) {
    switch (wire_type) {
      case 0:
        varint("an unknown varint field");
        return;
      case 1:
        need(8, "an unknown fixed64 field");
        advance(8);
        return;
      case 2:
        advance(length("an unknown length-delimited field"));
        return;
      case 5:
        need(4, "an unknown fixed32 field");
        advance(4);
        return;
      case 3: {
        if (depth >= kMaxDepth) fail("groups nested deeper than 100 levels");
        while (true) {
          if (at_end()) fail("a group without its end");
          auto [f, wt] = key(/*allow_zero=*/true);  // as upb does inside a group
          if (wt == 4) {
            if (f != field) fail("an end-group for another field");
            return;
          }
          skip_field(f, wt, depth + 1);
        }
      }
      case 4:
        fail("an end-group without its start");
      default:
        fail("wire type " + std::to_string(wire_type) + " (protobuf has no such type)");
    }
  }

  std::pair<uint32_t, uint32_t> key(bool allow_zero = false) {
    size_t start = consumed_;
    uint64_t k = varint("a field key");
    if (consumed_ - start > kMaxKeyBytes) {  // upb: a tag is at most 5 bytes
      throw WireError("a field key of " + std::to_string(consumed_ - start) +
                      " bytes (at most " + std::to_string(kMaxKeyBytes) + ") at byte " +
                      std::to_string(start));
    }
    uint64_t field = k >> 3;
    if ((field == 0 && !allow_zero) || field > 0x1FFFFFFF) {
      fail("field number " + std::to_string(field));
    }
    return {static_cast<uint32_t>(field), static_cast<uint32_t>(k & 7)};
  }

  [[noreturn]] void fail(const std::string& what) const {
    throw WireError(what + " at byte " + std::to_string(consumed_));
  }

 private:
  void need(size_t n, const char* what) {
    if (n > remaining_) fail(std::string("truncated ") + what);
  }

  // Skip empty pieces so index_/offset_ always name a readable byte while remaining_ > 0.
  void settle() {
    while (index_ < pieces_->size() && offset_ == (*pieces_)[index_].size) {
      ++index_;
      offset_ = 0;
    }
    if (remaining_ > 0 && index_ >= pieces_->size()) {
      throw WireError("the pieces hold fewer bytes than the message length");
    }
  }

  uint8_t next_byte() {
    uint8_t b = (*pieces_)[index_].data[offset_];
    advance(1);
    return b;
  }

  void advance(size_t n) {
    if (n > remaining_) fail("read past the end of the message");
    remaining_ -= n;
    consumed_ += n;
    while (n > 0) {
      settle_for_read();
      size_t here = std::min(n, (*pieces_)[index_].size - offset_);
      offset_ += here;
      n -= here;
    }
    if (remaining_ > 0) settle();
  }

  void settle_for_read() {
    while (index_ < pieces_->size() && offset_ == (*pieces_)[index_].size) {
      ++index_;
      offset_ = 0;
    }
    if (index_ >= pieces_->size()) throw WireError("the pieces end inside the message");
  }

  void copy(uint8_t* out, size_t n) {
    if (n > remaining_) fail("read past the end of the message");
    while (n > 0) {
      settle_for_read();
      const Piece& p = (*pieces_)[index_];
      size_t here = std::min(n, p.size - offset_);
      std::memcpy(out, p.data + offset_, here);
      out += here;
      n -= here;
      offset_ += here;
      remaining_ -= here;
      consumed_ += here;
    }
    if (remaining_ > 0) settle();
  }

  const std::vector<Piece>* pieces_;
  size_t index_ = 0;
  size_t offset_ = 0;
  size_t remaining_;
  size_t consumed_;
};

// map<string, string> entry: key = 1, value = 2, at `depth` (the messages around it,
// itself included). Added to `out` unless it holds an unknown field (upb drops it from the
// map then); malformed content is an error either way.
inline void parse_entry(Reader r, const char* what, int depth, Pairs* out) {
  std::pair<std::string, std::string> kv;
  bool unknown = false;
  while (!r.at_end()) {
    auto [field, wt] = r.key();
    if ((field == 1 || field == 2) && wt == 2) {
      size_t n = r.length(what);
      (field == 1 ? kv.first : kv.second) = r.string(n, what, true);
    } else {
      r.skip_field(field, wt, depth);
      unknown = true;
    }
  }
  if (!unknown) out->push_back(std::move(kv));
}

inline DataField parse_data(Reader r) {
  DataField d;
  while (!r.at_end()) {
    auto [field, wt] = r.key();
    if (field == 1 && wt == 2) {
      d.key = r.string(r.length("RequestData.key"), "RequestData.key", true);
    } else if (field == 2 && wt == 0) {
      d.len = r.varint("RequestData.len");
    } else if (field == 3 && wt == 0) {
      d.type = static_cast<uint32_t>(r.varint("RequestData.type"));
    } else if (field == 4 && wt == 0) {
      d.status = static_cast<uint32_t>(r.varint("RequestData.status"));
    } else if (field == 5 && wt == 2) {
      parse_entry(r.sub(r.length("RequestData.desc")), "RequestData.desc", 2, &d.desc);
    } else if (field == 6 && wt == 2) {
      d.size = r.length("RequestData.data");
      r.spans(d.size, &d.spans);
    } else {
      r.skip_field(field, wt, 1);
    }
  }
  return d;
}

// Parse a whole aiges.Request of `total` bytes held in `pieces`; throws WireError.
inline Request parse_request(const std::vector<Piece>& pieces, size_t total) {
  Request out;
  Reader r(pieces, total);
  while (!r.at_end()) {
    auto [field, wt] = r.key();
    if (field == 1 && wt == 2) {
      out.tag = r.string(r.length("Request.tag"), "Request.tag", true);
    } else if (field == 2 && wt == 2) {
      parse_entry(r.sub(r.length("Request.params")), "Request.params", 1, &out.params);
    } else if (field == 3 && wt == 2) {
      out.list.push_back(parse_data(r.sub(r.length("Request.list"))));
    } else {
      r.skip_field(field, wt, 0);
    }
  }
  return out;
}

}  // namespace gf::wire
