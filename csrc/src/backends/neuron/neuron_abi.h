// Our own minimal declarations of the MediaTek Neuron runtime C ABI (V1 "RuntimeAPI" and V2
// "RuntimeV2"), written from MediaTek's published NeuroPilot runtime API documentation.
// No MediaTek header is included or needed: the library is dlopen'ed at run time
// (neuron_library.h) and every struct whose layout changed between runtime versions exists
// here once per layout, each pinned by static_asserts of its size and field offsets on LP64
// targets (aarch64 boards, x86_64 hosts).
//
// Layout history, as the facts file records it:
//   EnvOptions  legacy (2019 Android header): deviceKind, MDLACoreOption, suppressInput,
//               suppressOutput                          -> 12 bytes, offsets 0,4,8,9
//               NP6 header: + uint8 CPUThreadNum before the two bools
//                                                       -> 12 bytes, offsets 0,4,8,9,10
//               "Starting from NP7, EnvOptions will be ignored" (MediaTek LLM sample).
//   QoSOptions  legacy: preference, priority, boostValue, deadline, abortTime, profiled*
//                                                       -> 24 bytes
//               NP6: preference, priority, boostValue, maxBoostValue, minBoostValue,
//               deadline, abortTime, delayedPowerOffTime, powerPolicy, applicationType,
//               profiled*                               -> 40 bytes
// Which runtime major version introduced the NP6 layouts is not documented publicly; the
// mapping we use (neuron_library.cc, layout_for_version) is an inference and is logged in
// every report so that a board can confirm or refute it.
#pragma once

#include <cstddef>
#include <cstdint>

namespace whisper_genio::neuron::abi {

// ---- Error codes (RuntimeAPIErrorCode): the return value of every int V1/V2 call ----------
enum : int {
  kNoError = 0,          // NEURONRUNTIME_NO_ERROR
  kOutOfMemory = 1,      // NEURONRUNTIME_OUT_OF_MEMORY
  kIncomplete = 2,       // NEURONRUNTIME_INCOMPLETE
  kUnexpectedNull = 3,   // NEURONRUNTIME_UNEXPECTED_NULL
  kBadData = 4,          // NEURONRUNTIME_BAD_DATA
  kBadState = 5,         // NEURONRUNTIME_BAD_STATE
  kRuntimeError = 6,     // NEURONRUNTIME_RUNTIME_ERROR
};

// ---- Plain types ---------------------------------------------------------------------------
struct NeuronVersion {
  uint8_t major;
  uint8_t minor;
  uint8_t patch;
};
static_assert(sizeof(NeuronVersion) == 3, "NeuronVersion is three bytes");

// Passed by value. ionFd = -1 (NON_ION_FD): ordinary user memory; otherwise the buffer is the
// CPU mapping of that ION/dma-buf fd.
struct BufferAttribute {
  int ionFd;
};
static_assert(sizeof(BufferAttribute) == 4, "BufferAttribute is one int");
inline constexpr int kNonIonFd = -1;

struct RuntimeAPIDimensions {
  uint32_t dimensions[4];  // NHWC: dimensions[0] = N
};
static_assert(sizeof(RuntimeAPIDimensions) == 16, "RuntimeAPIDimensions is four uint32");

// ---- EnvOptions (NeuronRuntime_create's first argument) ------------------------------------
inline constexpr uint32_t kEnvOptNullDevice = 1u << 0;
inline constexpr uint32_t kEnvOptHardware = 1u << 2;
inline constexpr uint32_t kEnvOptPredictor = 1u << 3;
inline constexpr int32_t kMdlaCoreAuto = 0;  // MDLACoreMode: "no longer effective" since 6.0

struct EnvOptionsLegacy {  // 2019 header: no CPUThreadNum
  uint32_t deviceKind;
  int32_t MDLACoreOption;
  bool suppressInputConversion;
  bool suppressOutputConversion;
};

struct EnvOptionsNP6 {
  uint32_t deviceKind;
  int32_t MDLACoreOption;
  uint8_t CPUThreadNum;
  bool suppressInputConversion;
  bool suppressOutputConversion;
};

// ---- QoS -----------------------------------------------------------------------------------
enum : int32_t {  // RuntimeAPIQoSPreference
  kPreferPerformance = 0,
  kPreferPower = 1,
  kHintTurboBoost = 2,
};
enum : int32_t {  // RuntimeAPIQoSPriority
  kPriorityLow = 0,
  kPriorityMed = 1,
  kPriorityHigh = 2,
};
inline constexpr int kBoostValueMin = 0;
inline constexpr int kBoostValueMax = 100;
inline constexpr int kBoostValueProfiled = 101;
inline constexpr int32_t kPowerOffTimeDefault = -1;
enum : int32_t {  // RuntimeAPIQoSPowerPolicy
  kPowerPolicyDefault = 0,
  kPowerPolicySustainable = 1,
  kPowerPolicyPerformance = 2,
  kPowerPolicyPowerSaving = 3,
};
inline constexpr int32_t kAppNormal = 0;  // RuntimeAPIQoSAppType

struct QoSData {
  uint64_t execTime;       // microseconds
  uint32_t suggestedTime;  // milliseconds
  uint32_t bandwidth;      // MB/s
  uint8_t boostValue;
};
struct ProfiledQoSData {
  QoSData** qosData;
  uint32_t* numSubCmd;
  uint32_t numSubgraph;
};

struct QoSOptionsLegacy {
  int32_t preference;
  int32_t priority;
  uint8_t boostValue;
  uint16_t deadline;
  uint16_t abortTime;
  ProfiledQoSData* profiledQoSData;
};

struct QoSOptionsNP6 {
  int32_t preference;
  int32_t priority;
  uint8_t boostValue;
  uint8_t maxBoostValue;  // reserved: 0
  uint8_t minBoostValue;  // reserved: 0
  uint16_t deadline;      // ms; non-zero marks a real-time job
  uint16_t abortTime;     // ms; 0 = never
  int32_t delayedPowerOffTime;
  int32_t powerPolicy;
  int32_t applicationType;
  ProfiledQoSData* profiledQoSData;
};

// ---- V2 request types ----------------------------------------------------------------------
struct IOBuffer {
  void* buffer;
  size_t length;
  int fd;      // -1 for ordinary memory
  int offset;  // into an imported fd
  uint64_t reserved2_should_be_init_zero;
  uint64_t reserved3_should_be_init_zero;
};

struct SyncInferenceRequest {  // passed by value
  IOBuffer* inputs;
  IOBuffer* outputs;
};

// ---- Layout checks (the numbers computed in the facts file) --------------------------------
static_assert(sizeof(EnvOptionsLegacy) == 12, "legacy EnvOptions: 12 bytes");
static_assert(offsetof(EnvOptionsLegacy, MDLACoreOption) == 4, "");
static_assert(offsetof(EnvOptionsLegacy, suppressInputConversion) == 8, "");
static_assert(offsetof(EnvOptionsLegacy, suppressOutputConversion) == 9, "");

static_assert(sizeof(EnvOptionsNP6) == 12, "NP6 EnvOptions: 12 bytes");
static_assert(offsetof(EnvOptionsNP6, MDLACoreOption) == 4, "");
static_assert(offsetof(EnvOptionsNP6, CPUThreadNum) == 8, "");
static_assert(offsetof(EnvOptionsNP6, suppressInputConversion) == 9, "");
static_assert(offsetof(EnvOptionsNP6, suppressOutputConversion) == 10, "");

#if defined(__LP64__) || defined(_LP64)
static_assert(sizeof(QoSOptionsLegacy) == 24, "legacy QoSOptions: 24 bytes on LP64");
static_assert(offsetof(QoSOptionsLegacy, boostValue) == 8, "");
static_assert(offsetof(QoSOptionsLegacy, deadline) == 10, "");
static_assert(offsetof(QoSOptionsLegacy, abortTime) == 12, "");
static_assert(offsetof(QoSOptionsLegacy, profiledQoSData) == 16, "");

static_assert(sizeof(QoSOptionsNP6) == 40, "NP6 QoSOptions: 40 bytes on LP64");
static_assert(offsetof(QoSOptionsNP6, preference) == 0, "");
static_assert(offsetof(QoSOptionsNP6, priority) == 4, "");
static_assert(offsetof(QoSOptionsNP6, boostValue) == 8, "");
static_assert(offsetof(QoSOptionsNP6, maxBoostValue) == 9, "");
static_assert(offsetof(QoSOptionsNP6, minBoostValue) == 10, "");
static_assert(offsetof(QoSOptionsNP6, deadline) == 12, "");
static_assert(offsetof(QoSOptionsNP6, abortTime) == 14, "");
static_assert(offsetof(QoSOptionsNP6, delayedPowerOffTime) == 16, "");
static_assert(offsetof(QoSOptionsNP6, powerPolicy) == 20, "");
static_assert(offsetof(QoSOptionsNP6, applicationType) == 24, "");
static_assert(offsetof(QoSOptionsNP6, profiledQoSData) == 32, "");

static_assert(sizeof(IOBuffer) == 40, "IOBuffer: 40 bytes on LP64");
static_assert(offsetof(IOBuffer, length) == 8, "");
static_assert(offsetof(IOBuffer, fd) == 16, "");
static_assert(offsetof(IOBuffer, offset) == 20, "");
static_assert(offsetof(IOBuffer, reserved2_should_be_init_zero) == 24, "");
static_assert(offsetof(IOBuffer, reserved3_should_be_init_zero) == 32, "");
static_assert(sizeof(SyncInferenceRequest) == 16, "");
#endif

// ---- Function types ------------------------------------------------------------------------
// V1 (RuntimeAPI.h). `runtime` is opaque; `handle` is the tensor's index in the model's
// original input (or output) list. EnvOptions/QoSOptions are passed as void* because their
// layout depends on the runtime version.
extern "C" {
using GetVersionFn = int (*)(NeuronVersion* version);
using CreateFn = int (*)(const void* env_options, void** runtime);
using CreateWithOptionsFn = int (*)(const char* options, const void* env_options, void** runtime);
using LoadNetworkFromFileFn = int (*)(void* runtime, const char* path);
using LoadNetworkFromBufferFn = int (*)(void* runtime, const void* buffer, size_t size);
using GetCountFn = int (*)(void* runtime, size_t* size);
using GetSizeFn = int (*)(void* runtime, uint64_t handle, size_t* size);
using GetRankFn = int (*)(void* runtime, uint64_t handle, uint32_t* rank);
using GetPaddedDimsFn = int (*)(void* runtime, uint64_t handle, RuntimeAPIDimensions* dims);
using SetInputFn = int (*)(void* runtime, uint64_t handle, const void* buffer, size_t length, BufferAttribute attr);
using SetOutputFn = int (*)(void* runtime, uint64_t handle, void* buffer, size_t length, BufferAttribute attr);
using SetQoSFn = int (*)(void* runtime, const void* qos_options);
using InferenceFn = int (*)(void* runtime);
using ReleaseFn = void (*)(void* runtime);
using GetMetadataInfoFn = int (*)(void* runtime, const char* key, size_t* size);
using GetMetadataFn = int (*)(void* runtime, const char* key, char* data, size_t size);

// V2 (RuntimeV2.h).
using V2CreateFn = int (*)(const char* path, size_t nb_threads, void** runtime, size_t backlog);
using V2RunFn = int (*)(void* runtime, SyncInferenceRequest request);
using V2ReleaseFn = void (*)(void* runtime);
using V2GetCountFn = int (*)(void* runtime, size_t* size);
using V2GetSizeFn = int (*)(void* runtime, uint64_t handle, size_t* size);
using V2SetQoSFn = int (*)(void* runtime, const void* qos_options);
}

}  // namespace whisper_genio::neuron::abi
