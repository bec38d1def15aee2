#include "dma_buffer.h"

#include <cerrno>
#include <cstdlib>
#include <cstring>
#include <utility>

#if defined(__linux__)
#include <fcntl.h>
#include <sys/ioctl.h>
#include <sys/mman.h>
#include <unistd.h>
#if __has_include(<linux/dma-heap.h>) && __has_include(<linux/dma-buf.h>)
#include <linux/dma-buf.h>
#include <linux/dma-heap.h>
#define WG_HAVE_DMA_HEAP 1
#endif
#endif

namespace whisper_genio::backends {

namespace {
constexpr size_t kPage = 4096;
size_t round_up(size_t n) { return (n + kPage - 1) / kPage * kPage; }
}  // namespace

std::string default_dma_heap() {
  const char* env = std::getenv(kDmaHeapEnv);
  if (env != nullptr) {
    std::string v(env);
    return v == "none" ? std::string() : v;
  }
  return "/dev/dma_heap/system";
}

DmaBuffer::DmaBuffer(DmaBuffer&& o) noexcept { *this = std::move(o); }

DmaBuffer& DmaBuffer::operator=(DmaBuffer&& o) noexcept {
  if (this != &o) {
    release();
    data_ = std::exchange(o.data_, nullptr);
    size_ = std::exchange(o.size_, 0);
    mapped_ = std::exchange(o.mapped_, 0);
    fd_ = std::exchange(o.fd_, -1);
    kind_ = std::exchange(o.kind_, Kind::kHost);
    note_ = std::move(o.note_);
  }
  return *this;
}

DmaBuffer::~DmaBuffer() { release(); }

void DmaBuffer::release() {
#if defined(WG_HAVE_DMA_HEAP)
  if (kind_ == Kind::kDmaHeap) {
    if (data_ != nullptr) munmap(data_, mapped_);
    if (fd_ >= 0) close(fd_);
    data_ = nullptr;
    fd_ = -1;
    return;
  }
#endif
  std::free(data_);
  data_ = nullptr;
}

StatusOr<DmaBuffer> DmaBuffer::allocate(size_t bytes, const std::string& heap) {
  DmaBuffer b;
  b.size_ = bytes;
  const size_t want = round_up(bytes == 0 ? 1 : bytes);
  std::string why;
  if (heap.empty()) {
    why = "no dma-heap requested";
  } else {
#if defined(WG_HAVE_DMA_HEAP)
    const int heap_fd = open(heap.c_str(), O_RDONLY | O_CLOEXEC);
    if (heap_fd < 0) {
      why = heap + ": " + std::strerror(errno);
    } else {
      struct dma_heap_allocation_data req;
      std::memset(&req, 0, sizeof(req));
      req.len = want;
      req.fd_flags = O_RDWR | O_CLOEXEC;
      const int rc = ioctl(heap_fd, DMA_HEAP_IOCTL_ALLOC, &req);
      const int err = errno;
      close(heap_fd);
      if (rc < 0) {
        why = heap + ": DMA_HEAP_IOCTL_ALLOC of " + std::to_string(want) + " bytes failed: " + std::strerror(err);
      } else {
        const int fd = static_cast<int>(req.fd);
        void* p = mmap(nullptr, want, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
        if (p == MAP_FAILED) {
          why = heap + ": mmap of the dma-buf failed: " + std::strerror(errno);
          close(fd);
        } else {
          b.data_ = p;
          b.mapped_ = want;
          b.fd_ = fd;
          b.kind_ = Kind::kDmaHeap;
          b.note_ = "dma-buf from " + heap;
          WG_RETURN_IF_ERROR(b.begin_cpu_access(true));
          std::memset(p, 0, want);
          WG_RETURN_IF_ERROR(b.end_cpu_access(true));
          return b;
        }
      }
    }
#else
    why = "dma-heaps are not supported by this build (no <linux/dma-heap.h>)";
#endif
  }
  void* p = std::aligned_alloc(kPage, want);
  if (p == nullptr) return Status(StatusCode::kOutOfMemory, "allocating " + std::to_string(want) + " bytes of I/O memory");
  std::memset(p, 0, want);
  b.data_ = p;
  b.mapped_ = want;
  b.kind_ = Kind::kHost;
  b.note_ = "host memory (" + why + ")";
  return b;
}

Status DmaBuffer::begin_cpu_access(bool write) {
#if defined(WG_HAVE_DMA_HEAP)
  if (kind_ == Kind::kDmaHeap) {
    struct dma_buf_sync s;
    s.flags = DMA_BUF_SYNC_START | (write ? DMA_BUF_SYNC_WRITE : DMA_BUF_SYNC_READ);
    if (ioctl(fd_, DMA_BUF_IOCTL_SYNC, &s) < 0) {
      return runtime_error(std::string("DMA_BUF_IOCTL_SYNC (start) failed: ") + std::strerror(errno));
    }
  }
#endif
  (void)write;
  return Status::Ok();
}

Status DmaBuffer::end_cpu_access(bool write) {
#if defined(WG_HAVE_DMA_HEAP)
  if (kind_ == Kind::kDmaHeap) {
    struct dma_buf_sync s;
    s.flags = DMA_BUF_SYNC_END | (write ? DMA_BUF_SYNC_WRITE : DMA_BUF_SYNC_READ);
    if (ioctl(fd_, DMA_BUF_IOCTL_SYNC, &s) < 0) {
      return runtime_error(std::string("DMA_BUF_IOCTL_SYNC (end) failed: ") + std::strerror(errno));
    }
  }
#endif
  (void)write;
  return Status::Ok();
}

}  // namespace whisper_genio::backends
