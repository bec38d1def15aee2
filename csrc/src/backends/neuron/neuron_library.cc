#include "neuron_library.h"

#include <cerrno>
#include <cstdint>
#include <cstdlib>
#include <cstring>
#include <sstream>

#if defined(__linux__) || defined(__APPLE__)
#include <dlfcn.h>
#include <sys/stat.h>
#define WG_HAVE_DLOPEN 1
#endif

namespace whisper_genio::neuron {

const char* layout_name(StructLayout layout) {
  return layout == StructLayout::kLegacy ? "legacy (pre-NP6 header)" : "np6";
}

std::vector<std::string> default_library_names() {
  return {"libneuronusdk_runtime.mtk.so", "libneuronusdk_runtime.mtk.so.8", "libneuronusdk_runtime.mtk.so.6",
          "libneuron_runtime.so"};
}

const char* error_code_name(int code) {
  switch (code) {
    case abi::kNoError: return "NEURONRUNTIME_NO_ERROR";
    case abi::kOutOfMemory: return "NEURONRUNTIME_OUT_OF_MEMORY";
    case abi::kIncomplete: return "NEURONRUNTIME_INCOMPLETE";
    case abi::kUnexpectedNull: return "NEURONRUNTIME_UNEXPECTED_NULL";
    case abi::kBadData: return "NEURONRUNTIME_BAD_DATA";
    case abi::kBadState: return "NEURONRUNTIME_BAD_STATE";
    case abi::kRuntimeError: return "NEURONRUNTIME_RUNTIME_ERROR";
    default: return "unknown";
  }
}

std::string describe_error(int code) {
  const char* what = nullptr;
  switch (code) {
    case abi::kNoError: what = "no error"; break;
    case abi::kOutOfMemory: what = "out of memory"; break;
    case abi::kIncomplete:
      what = "incomplete (also returned by the single-I/O helpers when the model has several inputs or outputs)";
      break;
    case abi::kUnexpectedNull: what = "an unexpected null pointer was passed"; break;
    case abi::kBadData:
      what = "bad data: the DLA could not be loaded (wrong file, or compiled for another runtime major version or "
             "SoC), or an input/output buffer was rejected";
      break;
    case abi::kBadState: what = "bad state: the call is not valid in the runtime's current state"; break;
    case abi::kRuntimeError:
      what = "runtime error: the hardware or simulator failed (check dmesg, /etc/nhw and the APU firmware)";
      break;
    default: what = "an error code this loader does not know"; break;
  }
  std::ostringstream s;
  s << error_code_name(code) << " (" << code << "): " << what;
  return s.str();
}

std::string call_failed(const char* function, int code) {
  return std::string(function) + " failed: " + describe_error(code);
}

Status QoS::validate() const {
  if (preference < abi::kPreferPerformance || preference > abi::kHintTurboBoost) {
    return invalid_argument("neuron_qos preference must be 0 (performance), 1 (power) or 2 (turbo), got " +
                            std::to_string(preference));
  }
  if (priority < abi::kPriorityLow || priority > abi::kPriorityHigh) {
    return invalid_argument("neuron_qos priority must be 0 (low), 1 (medium) or 2 (high), got " + std::to_string(priority));
  }
  if (boost < abi::kBoostValueMin || boost > abi::kBoostValueProfiled) {
    return invalid_argument("neuron_qos boost must be 0..100, or 101 (profiled), got " + std::to_string(boost));
  }
  if (deadline_ms < 0 || deadline_ms > 65535 || abort_time_ms < 0 || abort_time_ms > 65535) {
    return invalid_argument("neuron_qos deadline_ms and abort_time_ms must be 0..65535");
  }
  if (delayed_power_off_ms < -1) return invalid_argument("neuron_qos delayed_power_off_ms must be >= -1 (default)");
  if (power_policy < abi::kPowerPolicyDefault || power_policy > abi::kPowerPolicyPowerSaving) {
    return invalid_argument("neuron_qos power_policy must be 0..3, got " + std::to_string(power_policy));
  }
  return Status::Ok();
}

namespace {

// User-facing names of the QoS enums, in enum order.
const std::vector<std::string> kPreferenceNames = {"performance", "power", "turbo"};
const std::vector<std::string> kPriorityNames = {"low", "medium", "high"};
const std::vector<std::string> kPowerPolicyNames = {"default", "sustainable", "performance", "power_saving"};

std::string joined(const std::vector<std::string>& names) {
  std::string out;
  for (const std::string& n : names) out += (out.empty() ? "" : ", ") + n;
  return out;
}

Status set_name(const std::string& field, const std::string& value, const std::vector<std::string>& names, int* out) {
  for (size_t i = 0; i < names.size(); ++i) {
    if (names[i] == value) {
      *out = static_cast<int>(i);
      return Status::Ok();
    }
  }
  return invalid_argument("neuron_qos " + field + " must be one of " + joined(names) + ", got '" + value + "'");
}

Status set_int(const std::string& field, const std::string& value, int* out) {
  char* end = nullptr;
  errno = 0;
  const long v = value.empty() ? 0 : std::strtol(value.c_str(), &end, 10);
  if (value.empty() || *end != '\0' || errno != 0 || v < INT32_MIN || v > INT32_MAX) {
    return invalid_argument("neuron_qos " + field + " must be an integer, got '" + value + "'");
  }
  *out = static_cast<int>(v);
  return Status::Ok();
}

}  // namespace

Status QoS::set(const std::string& field, const std::string& value) {
  if (field == "preference") return set_name(field, value, kPreferenceNames, &preference);
  if (field == "priority") return set_name(field, value, kPriorityNames, &priority);
  if (field == "power_policy") return set_name(field, value, kPowerPolicyNames, &power_policy);
  if (field == "boost") {
    if (value == "profiled") {
      boost = abi::kBoostValueProfiled;
      return Status::Ok();
    }
    WG_RETURN_IF_ERROR(set_int(field, value, &boost));
    if (boost < abi::kBoostValueMin || boost > abi::kBoostValueMax) {
      return invalid_argument("neuron_qos boost must be 0..100 or 'profiled', got '" + value + "'");
    }
    return Status::Ok();
  }
  if (field == "deadline_ms") return set_int(field, value, &deadline_ms);
  if (field == "abort_time_ms") return set_int(field, value, &abort_time_ms);
  if (field == "delayed_power_off_ms") return set_int(field, value, &delayed_power_off_ms);
  return invalid_argument("neuron_qos: unknown field '" + field +
                          "'; known: preference, priority, boost, deadline_ms, abort_time_ms, delayed_power_off_ms, "
                          "power_policy");
}

std::vector<std::pair<std::string, std::string>> QoS::fields() const {
  auto name = [](const std::vector<std::string>& names, int v) {
    return v >= 0 && v < static_cast<int>(names.size()) ? names[static_cast<size_t>(v)] : std::to_string(v);
  };
  return {{"preference", name(kPreferenceNames, preference)},
          {"priority", name(kPriorityNames, priority)},
          {"boost", boost == abi::kBoostValueProfiled ? std::string("profiled") : std::to_string(boost)},
          {"deadline_ms", std::to_string(deadline_ms)},
          {"abort_time_ms", std::to_string(abort_time_ms)},
          {"delayed_power_off_ms", std::to_string(delayed_power_off_ms)},
          {"power_policy", name(kPowerPolicyNames, power_policy)}};
}

std::string QoS::to_string() const {
  std::ostringstream s;
  s << "preference=" << preference << " priority=" << priority << " boost=" << boost << " deadline_ms=" << deadline_ms
    << " abort_time_ms=" << abort_time_ms << " delayed_power_off_ms=" << delayed_power_off_ms
    << " power_policy=" << power_policy;
  return s.str();
}

StatusOr<StructLayout> layout_for_version(abi::NeuronVersion v, std::string* reason) {
  const std::string ver =
      std::to_string(v.major) + "." + std::to_string(v.minor) + "." + std::to_string(v.patch);
  const char* forced = std::getenv(kLayoutEnv);
  if (forced != nullptr && *forced != '\0') {
    const std::string f(forced);
    if (f == "legacy" || f == "np6") {
      if (reason) *reason = std::string(kLayoutEnv) + "=" + f + " (forced; runtime reports " + ver + ")";
      return f == "legacy" ? StructLayout::kLegacy : StructLayout::kNP6;
    }
    return invalid_argument(std::string(kLayoutEnv) + " must be 'legacy' or 'np6', got '" + f + "'");
  }
  if (v.major < 4) {
    return Status(StatusCode::kVersionMismatch,
                  "Neuron runtime " + ver +
                      " is older than any runtime whose struct layouts this loader knows (the oldest is the 2019 "
                      "header, taken as 4.x); install NeuroPilot 6 or newer (Genio Yocto: packagegroup-rity-mtk-neuropilot)");
  }
  if (v.major == 4) {
    if (reason) *reason = "runtime " + ver + ": 4.x is taken to use the 2019 header's layouts (EnvOptions without CPUThreadNum, 6-field QoSOptions)";
    return StructLayout::kLegacy;
  }
  if (reason) {
    *reason = "runtime " + ver + ": the NP6 header's layouts (EnvOptions with CPUThreadNum, 11-field QoSOptions)";
    if (v.major >= 7) *reason += "; from NP7 on the runtime ignores EnvOptions";
    if (v.major > 8) *reason += "; newer than any runtime whose ABI was checked (8.x): report problems";
  }
  return StructLayout::kNP6;
}

std::string NeuronLibrary::version_string() const {
  return std::to_string(version_.major) + "." + std::to_string(version_.minor) + "." + std::to_string(version_.patch);
}

bool NeuronLibrary::has_v2() const {
  return api_.v2_create && api_.v2_run && api_.v2_release && api_.v2_getInputSize && api_.v2_getOutputSize;
}

NeuronLibrary::~NeuronLibrary() {
#if defined(WG_HAVE_DLOPEN)
  if (handle_ != nullptr) dlclose(handle_);
#endif
}

std::vector<unsigned char> NeuronLibrary::env_options(int cpu_threads) const {
  const uint8_t threads = static_cast<uint8_t>(cpu_threads < 1 ? 1 : cpu_threads > 255 ? 255 : cpu_threads);
  if (layout_ == StructLayout::kLegacy) {
    abi::EnvOptionsLegacy e;
    std::memset(&e, 0, sizeof(e));
    e.deviceKind = abi::kEnvOptHardware;
    e.MDLACoreOption = abi::kMdlaCoreAuto;
    e.suppressInputConversion = false;
    e.suppressOutputConversion = false;
    const auto* p = reinterpret_cast<const unsigned char*>(&e);
    return std::vector<unsigned char>(p, p + sizeof(e));
  }
  abi::EnvOptionsNP6 e;
  std::memset(&e, 0, sizeof(e));
  e.deviceKind = abi::kEnvOptHardware;
  e.MDLACoreOption = abi::kMdlaCoreAuto;
  e.CPUThreadNum = threads;
  e.suppressInputConversion = false;
  e.suppressOutputConversion = false;
  const auto* p = reinterpret_cast<const unsigned char*>(&e);
  return std::vector<unsigned char>(p, p + sizeof(e));
}

std::vector<unsigned char> NeuronLibrary::qos_options(const QoS& q) const {
  if (layout_ == StructLayout::kLegacy) {
    abi::QoSOptionsLegacy o;
    std::memset(&o, 0, sizeof(o));
    o.preference = q.preference;
    o.priority = q.priority;
    o.boostValue = static_cast<uint8_t>(q.boost);
    o.deadline = static_cast<uint16_t>(q.deadline_ms);
    o.abortTime = static_cast<uint16_t>(q.abort_time_ms);
    o.profiledQoSData = nullptr;
    const auto* p = reinterpret_cast<const unsigned char*>(&o);
    return std::vector<unsigned char>(p, p + sizeof(o));
  }
  abi::QoSOptionsNP6 o;
  std::memset(&o, 0, sizeof(o));
  o.preference = q.preference;
  o.priority = q.priority;
  o.boostValue = static_cast<uint8_t>(q.boost);
  o.maxBoostValue = 0;
  o.minBoostValue = 0;
  o.deadline = static_cast<uint16_t>(q.deadline_ms);
  o.abortTime = static_cast<uint16_t>(q.abort_time_ms);
  o.delayedPowerOffTime = q.delayed_power_off_ms;
  o.powerPolicy = q.power_policy;
  o.applicationType = abi::kAppNormal;
  o.profiledQoSData = nullptr;
  const auto* p = reinterpret_cast<const unsigned char*>(&o);
  return std::vector<unsigned char>(p, p + sizeof(o));
}

#if defined(WG_HAVE_DLOPEN)
namespace {

template <typename Fn>
bool bind(void* handle, const char* name, Fn* slot) {
  dlerror();
  void* sym = dlsym(handle, name);
  *slot = reinterpret_cast<Fn>(sym);
  return sym != nullptr;
}

std::string last_dlerror() {
  const char* e = dlerror();
  return e ? e : "unknown dlopen error";
}

// dlopen() opens and reads a path whatever it is: a FIFO blocks it forever (until a writer
// comes), a terminal or another device reads whatever arrives. A path (a name with a '/';
// bare names are looked up by the loader in its own folders) is loaded only if it is a
// regular file (after symbolic links); "" when it is, else what it is instead.
std::string not_a_regular_file(const std::string& name) {
  if (name.find('/') == std::string::npos) return "";
  struct stat st;
  if (stat(name.c_str(), &st) != 0) return "";  // missing or unreadable: dlopen says which
  if (S_ISREG(st.st_mode)) return "";
  const char* what = S_ISDIR(st.st_mode)    ? "a directory"
                     : S_ISFIFO(st.st_mode) ? "a FIFO (named pipe)"
                     : S_ISCHR(st.st_mode)  ? "a character device"
                     : S_ISBLK(st.st_mode)  ? "a block device"
                     : S_ISSOCK(st.st_mode) ? "a socket"
                                            : "not a regular file";
  return std::string("refused: ") + what + ", not a shared library file";
}

}  // namespace
#endif

StatusOr<std::shared_ptr<const NeuronLibrary>> NeuronLibrary::load(const LoadOptions& options) {
#if !defined(WG_HAVE_DLOPEN)
  (void)options;
  return unavailable("this build has no dlopen: the Neuron runtime cannot be loaded on this platform");
#else
  std::shared_ptr<NeuronLibrary> lib(new NeuronLibrary());
  WG_RETURN_IF_ERROR(lib->open(options));   // which file
  WG_RETURN_IF_ERROR(lib->bind_api());      // which functions
  WG_RETURN_IF_ERROR(lib->read_version());  // which struct layouts
  return std::shared_ptr<const NeuronLibrary>(std::move(lib));
#endif
}

#if defined(WG_HAVE_DLOPEN)
// The explicit path (or $WHISPER_GENIO_NEURON_LIB) alone, else the first of the names that loads.
Status NeuronLibrary::open(const LoadOptions& options) {
  std::string explicit_path = options.path;
  std::string explicit_from = "the path given";
  if (explicit_path.empty() && options.use_env) {
    const char* env = std::getenv(kLibraryEnv);
    if (env != nullptr && *env != '\0') {
      explicit_path = env;
      explicit_from = std::string("$") + kLibraryEnv;
    }
  }
  std::vector<std::string> names;
  if (!explicit_path.empty()) {
    names.push_back(explicit_path);
  } else {
    names = options.names.empty() ? default_library_names() : options.names;
  }
  for (const std::string& name : names) {
    const std::string refused = not_a_regular_file(name);
    if (!refused.empty()) {
      attempts_.push_back(name + ": " + refused);
      continue;
    }
    void* h = dlopen(name.c_str(), RTLD_NOW | RTLD_LOCAL);
    if (h != nullptr) {
      handle_ = h;
      path_ = name;
      attempts_.push_back(name + ": loaded");
      break;
    }
    std::string err = last_dlerror();
    if (err.compare(0, name.size() + 2, name + ": ") == 0) err = err.substr(name.size() + 2);  // dlerror repeats the name
    attempts_.push_back(name + ": " + err);
  }
  if (handle_ == nullptr) {
    std::ostringstream msg;
    if (!explicit_path.empty()) {
      msg << explicit_from << " names " << explicit_path << ", which could not be loaded (" << attempts_.back()
          << "); fix the path or unset " << kLibraryEnv << " to search the default names";
    } else {
      msg << "no Neuron runtime library could be loaded; tried, in order: ";
      for (size_t i = 0; i < attempts_.size(); ++i) msg << (i ? "; " : "") << attempts_[i];
      msg << ". Install the NeuroPilot runtime (Genio Yocto: packagegroup-rity-mtk-neuropilot; Ubuntu: "
             "mediatek-libneuron) or set "
          << kLibraryEnv << " to the library's path";
    }
    return unavailable(msg.str());
  }
  Dl_info info;
  std::memset(&info, 0, sizeof(info));
  void* any = dlsym(handle_, "NeuronRuntime_getVersion");
  if (any != nullptr && dladdr(any, &info) != 0 && info.dli_fname != nullptr) resolved_ = info.dli_fname;
  if (resolved_.empty()) resolved_ = path_;
  return Status::Ok();
}

// Every required V1 function, and the optional V1 and V2 ones the library has.
Status NeuronLibrary::bind_api() {
  Api& a = api_;
  std::vector<std::string> missing;
  auto need = [&](const char* name, auto* slot) {
    if (!bind(handle_, name, slot)) missing.push_back(name);
  };
  auto want = [&](const char* name, auto* slot) {
    if (!bind(handle_, name, slot)) missing_optional_.push_back(name);
  };
  need("NeuronRuntime_getVersion", &a.getVersion);
  need("NeuronRuntime_create", &a.create);
  need("NeuronRuntime_loadNetworkFromFile", &a.loadNetworkFromFile);
  need("NeuronRuntime_getInputSize", &a.getInputSize);
  need("NeuronRuntime_getOutputSize", &a.getOutputSize);
  need("NeuronRuntime_setInput", &a.setInput);
  need("NeuronRuntime_setOutput", &a.setOutput);
  need("NeuronRuntime_inference", &a.inference);
  need("NeuronRuntime_release", &a.release);
  want("NeuronRuntime_create_with_options", &a.create_with_options);
  want("NeuronRuntime_loadNetworkFromBuffer", &a.loadNetworkFromBuffer);
  want("NeuronRuntime_getInputNumber", &a.getInputNumber);
  want("NeuronRuntime_getOutputNumber", &a.getOutputNumber);
  want("NeuronRuntime_getInputRank", &a.getInputRank);
  want("NeuronRuntime_getOutputRank", &a.getOutputRank);
  want("NeuronRuntime_getInputPaddedSize", &a.getInputPaddedSize);
  want("NeuronRuntime_getOutputPaddedSize", &a.getOutputPaddedSize);
  want("NeuronRuntime_getInputPaddedDimensions", &a.getInputPaddedDimensions);
  want("NeuronRuntime_getOutputPaddedDimensions", &a.getOutputPaddedDimensions);
  want("NeuronRuntime_setQoSOption", &a.setQoSOption);
  want("NeuronRuntime_getMetadataInfo", &a.getMetadataInfo);
  want("NeuronRuntime_getMetadata", &a.getMetadata);
  want("NeuronRuntimeV2_create", &a.v2_create);
  want("NeuronRuntimeV2_run", &a.v2_run);
  want("NeuronRuntimeV2_release", &a.v2_release);
  want("NeuronRuntimeV2_getInputNumber", &a.v2_getInputNumber);
  want("NeuronRuntimeV2_getOutputNumber", &a.v2_getOutputNumber);
  want("NeuronRuntimeV2_getInputSize", &a.v2_getInputSize);
  want("NeuronRuntimeV2_getOutputSize", &a.v2_getOutputSize);
  want("NeuronRuntimeV2_setQoSOption", &a.v2_setQoSOption);
  want("NeuronRuntimeV2_getInputPaddedSize", &a.v2_getInputPaddedSize);
  want("NeuronRuntimeV2_getOutputPaddedSize", &a.v2_getOutputPaddedSize);
  want("NeuronRuntimeV2_getInputPaddedDimensions", &a.v2_getInputPaddedDimensions);
  want("NeuronRuntimeV2_getOutputPaddedDimensions", &a.v2_getOutputPaddedDimensions);
  if (!missing.empty()) {
    std::ostringstream msg;
    msg << resolved_ << " lacks the required symbol" << (missing.size() > 1 ? "s " : " ");
    for (size_t i = 0; i < missing.size(); ++i) msg << (i ? ", " : "") << missing[i];
    msg << ": it is not a Neuron runtime, or one too old for the V1 API";
    return unavailable(msg.str());
  }
  return Status::Ok();
}

Status NeuronLibrary::read_version() {
  abi::NeuronVersion v{0, 0, 0};
  const int rc = api_.getVersion(&v);
  if (rc != abi::kNoError) {
    return Status(StatusCode::kVersionMismatch,
                  resolved_ + ": " + call_failed("NeuronRuntime_getVersion", rc) + "; cannot pick struct layouts");
  }
  version_ = v;
  auto layout = layout_for_version(v, &layout_reason_);
  if (!layout.ok()) return Status(layout.status().code(), resolved_ + ": " + layout.status().message());
  layout_ = layout.value();
  return Status::Ok();
}
#endif

}  // namespace whisper_genio::neuron
