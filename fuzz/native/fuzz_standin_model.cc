// libFuzzer target: the Neuron stand-in's model-file reader (tests/cpp/standin/neuron_standin.cc,
// the "DLA" files the stand-in runtime loads: version 1 lookup/linear, version 2 dense and decoder
// layer steps). The stand-in is compiled into this target so that its file reader is reached
// directly; the input is written to a scratch file, since the reader takes a path.
#include <unistd.h>

#include <cstdio>
#include <cstdlib>
#include <string>

#include "../../tests/cpp/standin/neuron_standin.cc"

namespace {

std::string scratch_path() {
  const char* dir = access("/dev/shm", W_OK) == 0 ? "/dev/shm" : "/tmp";
  return std::string(dir) + "/wg-fuzz-standin-" + std::to_string(getpid()) + ".dla";
}

}  // namespace

struct Scratch {
  std::string path = scratch_path();
  ~Scratch() { unlink(path.c_str()); }
};

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  static const Scratch scratch;
  const std::string& path = scratch.path;
  std::FILE* f = std::fopen(path.c_str(), "wb");
  if (f == nullptr) std::abort();
  if (size != 0 && std::fwrite(data, 1, size, f) != size) std::abort();
  std::fclose(f);
  Model m;
  (void)load_model(path.c_str(), &m);
  return 0;
}
