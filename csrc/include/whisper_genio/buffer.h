// Aligned, owning float/int storage for weights and activations.
#pragma once

#include <cstddef>
#include <cstdlib>
#include <cstring>
#include <memory>
#include <new>

namespace whisper_genio {

inline constexpr std::size_t kBufferAlignment = 64;  // one cache line; enough for AVX-512 loads

struct AlignedFree {
  void operator()(void* p) const { std::free(p); }
};

// A fixed-size array of trivially copyable T on a 64-byte boundary. Not resizable on purpose:
// hot paths allocate once (per model, per window) and reuse.
template <typename T>
class Buffer {
 public:
  Buffer() = default;
  explicit Buffer(std::size_t n) { reset(n); }

  // Returns false when the allocation fails (the caller reports kOutOfMemory).
  bool reset(std::size_t n) {
    data_.reset();
    size_ = 0;
    if (n == 0) return true;
    std::size_t bytes = (n * sizeof(T) + kBufferAlignment - 1) / kBufferAlignment * kBufferAlignment;
    void* p = std::aligned_alloc(kBufferAlignment, bytes);
    if (p == nullptr) return false;
    data_.reset(static_cast<T*>(p));
    size_ = n;
    return true;
  }
  void zero() {
    if (size_) std::memset(static_cast<void*>(data_.get()), 0, size_ * sizeof(T));
  }

  T* data() { return data_.get(); }
  const T* data() const { return data_.get(); }
  std::size_t size() const { return size_; }
  bool empty() const { return size_ == 0; }
  T& operator[](std::size_t i) { return data_.get()[i]; }
  const T& operator[](std::size_t i) const { return data_.get()[i]; }

 private:
  std::unique_ptr<T, AlignedFree> data_;
  std::size_t size_ = 0;
};

}  // namespace whisper_genio
