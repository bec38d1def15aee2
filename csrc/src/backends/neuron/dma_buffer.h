// Device-shareable memory for accelerator I/O: a dma-buf from a Linux dma-heap
// (/dev/dma_heap/system by default) mapped into the process, or ordinary page-aligned memory
// when there is no heap (or it refuses). The fd goes to the Neuron runtime as
// BufferAttribute.ionFd (V1) or IOBuffer.fd (V2) so the device reads and writes the very pages
// the CPU sees: the mel is written once, in place, and the decoder reads the encoder output in
// place.
//
// CPU access to a dma-buf is bracketed with DMA_BUF_IOCTL_SYNC (begin/end), which is what a
// cached heap needs for coherency; for host memory these calls do nothing.
#pragma once

#include <cstddef>
#include <string>

#include "whisper_genio/status.h"

namespace whisper_genio::backends {

class DmaBuffer {
 public:
  enum class Kind { kHost, kDmaHeap };

  DmaBuffer() = default;
  DmaBuffer(const DmaBuffer&) = delete;
  DmaBuffer& operator=(const DmaBuffer&) = delete;
  DmaBuffer(DmaBuffer&& other) noexcept;
  DmaBuffer& operator=(DmaBuffer&& other) noexcept;
  ~DmaBuffer();

  // `bytes` of zeroed memory from `heap` (a dma-heap device path; empty: host memory only).
  // Falls back to host memory when the heap is absent or refuses, saying why in note().
  static StatusOr<DmaBuffer> allocate(size_t bytes, const std::string& heap);

  void* data() const { return data_; }
  size_t size() const { return size_; }
  int fd() const { return fd_; }  // -1 for host memory
  Kind kind() const { return kind_; }
  const char* kind_name() const { return kind_ == Kind::kDmaHeap ? "dma-heap" : "host"; }
  const std::string& note() const { return note_; }

  // Before the CPU touches the buffer, and after. `write`: the CPU writes (else reads).
  Status begin_cpu_access(bool write);
  Status end_cpu_access(bool write);

 private:
  void release();
  void* data_ = nullptr;
  size_t size_ = 0;      // requested bytes
  size_t mapped_ = 0;    // bytes mapped / allocated
  int fd_ = -1;
  Kind kind_ = Kind::kHost;
  std::string note_;
};

// The heap to use: $WHISPER_GENIO_DMA_HEAP when set ("none" or "" = host memory only), else
// /dev/dma_heap/system.
std::string default_dma_heap();
inline constexpr const char* kDmaHeapEnv = "WHISPER_GENIO_DMA_HEAP";

}  // namespace whisper_genio::backends
