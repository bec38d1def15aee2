// The Neuron runtime loader: ONE object owns the dlopen handle and a typed table of the
// runtime's functions.
//
// Search order: an explicit path (LoadOptions::path), else $WHISPER_GENIO_NEURON_LIB, else
// libneuronusdk_runtime.mtk.so, libneuronusdk_runtime.mtk.so.8, libneuronusdk_runtime.mtk.so.6,
// libneuron_runtime.so (the dynamic loader's own search path: /usr/lib on Genio Yocto). The
// first that loads is used: a library that loads but lacks a required symbol, or reports an
// unsupported version, is an error, not a reason to try the next name. An explicit path or
// override that does not load is an error too (it is never silently replaced by another
// library).
//
// Then: the required V1 symbols must all be there; optional V1 and V2 symbols are recorded
// when present; NeuronRuntime_getVersion picks the EnvOptions/QoSOptions layouts
// (neuron_abi.h). Nothing here crashes, prints or throws: every failure is a Status whose
// message says what was tried and what to do.
#pragma once

#include <memory>
#include <string>
#include <vector>

#include "neuron_abi.h"
#include "whisper_genio/status.h"

namespace whisper_genio::neuron {

// Struct layouts a runtime version expects (see neuron_abi.h for the history).
enum class StructLayout { kLegacy, kNP6 };
const char* layout_name(StructLayout layout);

// The typed function table. Required entries are never null after a successful load;
// optional ones are null when the library does not export them.
struct Api {
  // V1, required
  abi::GetVersionFn getVersion = nullptr;
  abi::CreateFn create = nullptr;
  abi::LoadNetworkFromFileFn loadNetworkFromFile = nullptr;
  abi::GetSizeFn getInputSize = nullptr;
  abi::GetSizeFn getOutputSize = nullptr;
  abi::SetInputFn setInput = nullptr;
  abi::SetOutputFn setOutput = nullptr;
  abi::InferenceFn inference = nullptr;
  abi::ReleaseFn release = nullptr;
  // V1, optional
  abi::CreateWithOptionsFn create_with_options = nullptr;
  abi::LoadNetworkFromBufferFn loadNetworkFromBuffer = nullptr;
  abi::GetCountFn getInputNumber = nullptr;
  abi::GetCountFn getOutputNumber = nullptr;
  abi::GetRankFn getInputRank = nullptr;
  abi::GetRankFn getOutputRank = nullptr;
  abi::GetSizeFn getInputPaddedSize = nullptr;
  abi::GetSizeFn getOutputPaddedSize = nullptr;
  abi::GetPaddedDimsFn getInputPaddedDimensions = nullptr;
  abi::GetPaddedDimsFn getOutputPaddedDimensions = nullptr;
  abi::SetQoSFn setQoSOption = nullptr;
  abi::GetMetadataInfoFn getMetadataInfo = nullptr;
  abi::GetMetadataFn getMetadata = nullptr;
  // V2, optional as a set
  abi::V2CreateFn v2_create = nullptr;
  abi::V2RunFn v2_run = nullptr;
  abi::V2ReleaseFn v2_release = nullptr;
  abi::V2GetCountFn v2_getInputNumber = nullptr;
  abi::V2GetCountFn v2_getOutputNumber = nullptr;
  abi::V2GetSizeFn v2_getInputSize = nullptr;
  abi::V2GetSizeFn v2_getOutputSize = nullptr;
  abi::V2SetQoSFn v2_setQoSOption = nullptr;
  // V2, optional one by one (padded I/O; absent: the logical sizes are the device sizes)
  abi::V2GetSizeFn v2_getInputPaddedSize = nullptr;
  abi::V2GetSizeFn v2_getOutputPaddedSize = nullptr;
  abi::GetPaddedDimsFn v2_getInputPaddedDimensions = nullptr;
  abi::GetPaddedDimsFn v2_getOutputPaddedDimensions = nullptr;
};

struct LoadOptions {
  std::string path;                // explicit library; empty: the environment, then `names`
  bool use_env = true;             // honour $WHISPER_GENIO_NEURON_LIB
  std::vector<std::string> names;  // empty: default_library_names()
};

// QoS in the runtime's enum values (neuron_abi.h); validate() checks the ranges.
struct QoS {
  int preference = abi::kPreferPerformance;
  int priority = abi::kPriorityHigh;
  int boost = abi::kBoostValueMax;  // 0..100, or 101 = profiled
  int deadline_ms = 0;
  int abort_time_ms = 0;
  int delayed_power_off_ms = abi::kPowerOffTimeDefault;
  int power_policy = abi::kPowerPolicyDefault;
  Status validate() const;
  std::string to_string() const;

  // Sets one field from its user-facing form: preference "performance" | "power" | "turbo",
  // priority "low" | "medium" | "high", power_policy "default" | "sustainable" | "performance" |
  // "power_saving", boost 0..100 or "profiled", the times in ms as integers.
  Status set(const std::string& field, const std::string& value);
  // Field -> user-facing value, the defaults included (the names set() takes).
  std::vector<std::pair<std::string, std::string>> fields() const;
};

class NeuronLibrary {
 public:
  static StatusOr<std::shared_ptr<const NeuronLibrary>> load(const LoadOptions& options = {});
  ~NeuronLibrary();
  NeuronLibrary(const NeuronLibrary&) = delete;
  NeuronLibrary& operator=(const NeuronLibrary&) = delete;

  const Api& api() const { return api_; }
  const std::string& path() const { return path_; }       // the name or path that loaded
  const std::string& resolved_path() const { return resolved_; }  // the file it resolved to
  abi::NeuronVersion version() const { return version_; }
  std::string version_string() const;
  StructLayout layout() const { return layout_; }
  const std::string& layout_reason() const { return layout_reason_; }
  bool has_v2() const;
  // Every name tried, in order, with what happened ("loaded", "not found: ...").
  const std::vector<std::string>& attempts() const { return attempts_; }
  const std::vector<std::string>& missing_optional() const { return missing_optional_; }

  // NeuronRuntime_create's EnvOptions / setQoSOption's QoSOptions, laid out for this runtime.
  std::vector<unsigned char> env_options(int cpu_threads) const;
  std::vector<unsigned char> qos_options(const QoS& qos) const;

 private:
  NeuronLibrary() = default;
  Status open(const LoadOptions& options);
  Status bind_api();
  Status read_version();
  void* handle_ = nullptr;
  Api api_;
  std::string path_, resolved_;
  abi::NeuronVersion version_{0, 0, 0};
  StructLayout layout_ = StructLayout::kNP6;
  std::string layout_reason_;
  std::vector<std::string> attempts_;
  std::vector<std::string> missing_optional_;
};

std::vector<std::string> default_library_names();
inline constexpr const char* kLibraryEnv = "WHISPER_GENIO_NEURON_LIB";
inline constexpr const char* kLayoutEnv = "WHISPER_GENIO_NEURON_LAYOUT";  // "legacy" | "np6"

// The layout a runtime version expects, and why (or a kVersionMismatch for unknown ones).
StatusOr<StructLayout> layout_for_version(abi::NeuronVersion v, std::string* reason);

// "NEURONRUNTIME_BAD_DATA"; "unknown" for codes outside the enum.
const char* error_code_name(int code);
// "NEURONRUNTIME_BAD_DATA (4): bad data: the DLA could not be loaded or a buffer was rejected"
std::string describe_error(int code);
// "NeuronRuntime_inference failed: " + describe_error(code)
std::string call_failed(const char* function, int code);

}  // namespace whisper_genio::neuron
