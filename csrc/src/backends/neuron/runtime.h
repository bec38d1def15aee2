// One DLA loaded into the Neuron runtime: the owner of a V1 (NeuronRuntime_*) or V2
// (NeuronRuntimeV2_*) runtime handle, released when the object goes. The encoder backend and
// the decoder subgraphs both drive the runtime through this class, so the create / load /
// query / bind / run / release sequence and its error messages exist once.
//
// Every failure is a Status whose message names the runtime function and its error code;
// callers add what they are (a subgraph's name) and what to do about it.
#pragma once

#include <cstddef>
#include <memory>
#include <string>
#include <vector>

#include "../tensor_io.h"
#include "dma_buffer.h"
#include "neuron_library.h"

namespace whisper_genio::neuron {

// kAuto: V2 where the library has the full V2 set, else V1.
enum class ApiChoice { kAuto, kV1, kV2 };
std::vector<std::string> api_choice_names();  // "auto", "v1", "v2"
StatusOr<ApiChoice> parse_api_choice(const std::string& name);

// A V2 IOBuffer over a device buffer (fd -1: ordinary memory).
abi::IOBuffer io_buffer(const backends::DmaBuffer& b);

class Runtime {
 public:
  // V1: NeuronRuntime_create with EnvOptions for `cpu_threads`, then loadNetworkFromFile;
  // V2: NeuronRuntimeV2_create. Nothing is left to release when this fails.
  static StatusOr<std::unique_ptr<Runtime>> open(std::shared_ptr<const NeuronLibrary> lib, const std::string& dla_path,
                                                 ApiChoice api, int cpu_threads);
  ~Runtime();
  Runtime(const Runtime&) = delete;
  Runtime& operator=(const Runtime&) = delete;

  bool v2() const { return v2_; }
  const char* api_name() const { return v2_ ? "v2" : "v1"; }
  const NeuronLibrary& library() const { return *lib_; }
  const std::string& dla_path() const { return dla_path_; }

  // The DLA's input and output counts. The count getters are optional, so a count the runtime
  // cannot give is left as the caller set it (its expectation).
  Status io_counts(size_t* n_in, size_t* n_out) const;
  // Logical byte sizes of input/output `i`.
  StatusOr<size_t> input_bytes(size_t i) const;
  StatusOr<size_t> output_bytes(size_t i) const;
  // What the runtime says about input/output `i`'s device buffer: its logical byte size, and
  // where the runtime has the calls, the padded byte size (hardware alignment; the size to
  // allocate and bind when conversion is suppressed) and the 4-D padded dimensions.
  struct DeviceIo {
    size_t logical_bytes = 0;
    size_t padded_bytes = 0;  // 0: the runtime lacks get*PaddedSize
    bool has_dims = false;
    uint32_t dims[4] = {0, 0, 0, 0};
  };
  StatusOr<DeviceIo> device_io(bool input, size_t i) const;
  // Every declared tensor against the runtime, inputs then outputs; fills in each tensor's
  // padded_shape from the runtime where the runtime pads it (and checks a declared one). Returns
  // "" when all agree, else "input 0: the manifest declares ...: <what the size would fit>;
  // output 1: ..."; `notes` gets what was read from the runtime.
  StatusOr<std::string> resolve_io(std::vector<backends::TensorSpec>* inputs, std::vector<backends::TensorSpec>* outputs,
                                   std::string* notes) const;

  // V1 only: bind `b` (its fd as BufferAttribute.ionFd) to input/output `i` until rebound.
  Status bind_input(size_t i, const backends::DmaBuffer& b);
  Status bind_output(size_t i, const backends::DmaBuffer& b);
  // One synchronous inference. V2 runs on the given IOBuffer arrays (one entry per input and
  // output); V1 runs on the bound buffers and ignores them.
  Status run(abi::IOBuffer* inputs, abi::IOBuffer* outputs);
  Status set_qos(const QoS& qos);

 private:
  Runtime() = default;
  std::shared_ptr<const NeuronLibrary> lib_;  // keeps the functions loaded while the handle lives
  std::string dla_path_;
  void* handle_ = nullptr;
  bool v2_ = false;
};

}  // namespace whisper_genio::neuron
