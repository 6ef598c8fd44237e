// oneDNN convolutions for XLA on the CPU: three jax.ffi handlers (forward, backward-data,
// backward-weights) on NHWC float32 activations and HWIO float32 weights, stride and asymmetric
// padding, dilation 1, groups 1 (freqrobust/native/conv.py decides which convolutions come here).
//
// Threading: XLA calls a handler from the Python thread and from its own worker threads. Each
// thread that enters an OpenMP parallel region becomes the master of its own OpenMP team, so
// several callers oversubscribe the cores. Every primitive therefore runs on one executor thread
// owned by this library: one OpenMP team serves every caller, which waits for its call to finish.
// The executor also owns the primitive cache (primitives, reorders and the blocked weights
// buffer, per shape), so nothing in it needs a lock. The loader (conv.py) sets OMP_WAIT_POLICY to
// PASSIVE unless the user set it: idle OpenMP threads then sleep instead of spinning on the cores
// XLA's own threads need.
//
// Build: freqrobust/native/build.sh (launch/setup.sh runs it).
#include <array>
#include <condition_variable>
#include <cstdint>
#include <cstring>
#include <deque>
#include <exception>
#include <functional>
#include <map>
#include <memory>
#include <mutex>
#include <string>
#include <thread>

#include "oneapi/dnnl/dnnl.hpp"
#include "xla/ffi/api/ffi.h"

namespace ffi = xla::ffi;

namespace {

using dnnl::memory;
using Tag = memory::format_tag;
constexpr auto kF32 = memory::data_type::f32;

enum Kind : int { kForward = 0, kBackwardData = 1, kBackwardWeights = 2, kNumKinds = 3 };

// One thread runs every oneDNN call (see the file comment).
class Executor {
 public:
  static Executor& Get() {
    static Executor* executor = new Executor();  // Never destroyed: callers may outlive statics.
    return *executor;
  }

  void Run(std::function<void()> fn) {
    Task task{std::move(fn)};
    std::unique_lock<std::mutex> lock(mu_);
    queue_.push_back(&task);
    work_.notify_one();
    done_.wait(lock, [&] { return task.done; });
    if (task.error) std::rethrow_exception(task.error);
  }

 private:
  struct Task {
    std::function<void()> fn;
    bool done = false;
    std::exception_ptr error;
  };

  Executor() { std::thread([this] { Loop(); }).detach(); }

  void Loop() {
    for (;;) {
      Task* task;
      {
        std::unique_lock<std::mutex> lock(mu_);
        work_.wait(lock, [&] { return !queue_.empty(); });
        task = queue_.front();
        queue_.pop_front();
      }
      try {
        task->fn();
      } catch (...) {
        task->error = std::current_exception();
      }
      std::lock_guard<std::mutex> lock(mu_);
      task->done = true;
      done_.notify_all();
    }
  }

  std::mutex mu_;
  std::condition_variable work_, done_;
  std::deque<Task*> queue_;
};

// The geometry of one convolution: x (N, H, W, C), w (KH, KW, C, O), y (N, OH, OW, O).
struct Geometry {
  int64_t n, h, w, c, kh, kw, o, oh, ow, sh, sw, pt, pb, pl, pr;

  std::array<int64_t, 15> Key() const {
    return {n, h, w, c, kh, kw, o, oh, ow, sh, sw, pt, pb, pl, pr};
  }
  memory::desc X() const { return memory::desc({n, c, h, w}, kF32, Tag::nhwc); }
  memory::desc Y() const { return memory::desc({n, o, oh, ow}, kF32, Tag::nhwc); }
  memory::desc WeightsHwio() const { return memory::desc({o, c, kh, kw}, kF32, Tag::hwio); }
  memory::desc WeightsAny() const { return memory::desc({o, c, kh, kw}, kF32, Tag::any); }
  memory::dims Strides() const { return {sh, sw}; }
  memory::dims PadL() const { return {pt, pl}; }
  memory::dims PadR() const { return {pb, pr}; }
};

struct State {
  dnnl::engine engine{dnnl::engine::kind::cpu, 0};
  dnnl::stream stream{engine};
  int64_t calls[kNumKinds] = {0, 0, 0};
};

State& GetState() {  // Created on the executor thread, on its first call.
  static State* state = new State();
  return *state;
}

// A cached primitive with its weights reorder (HWIO <-> oneDNN's layout) and the buffer of the
// weights in that layout, which is reused (one executor: no concurrent use).
struct Entry {
  dnnl::primitive conv;
  bool reorder_weights = false;
  dnnl::reorder weights_reorder;
  memory blocked_weights;
};

dnnl::convolution_forward::primitive_desc ForwardDesc(const Geometry& g, const dnnl::engine& e) {
  return dnnl::convolution_forward::primitive_desc(
      e, dnnl::prop_kind::forward_training, dnnl::algorithm::convolution_direct, g.X(),
      g.WeightsAny(), g.Y(), g.Strides(), g.PadL(), g.PadR());
}

Entry MakeEntry(Kind kind, const Geometry& g, const dnnl::engine& e) {
  Entry entry;
  auto fwd = ForwardDesc(g, e);
  memory::desc blocked;
  if (kind == kForward) {
    entry.conv = dnnl::convolution_forward(fwd);
    blocked = fwd.weights_desc();
  } else if (kind == kBackwardData) {
    dnnl::convolution_backward_data::primitive_desc pd(
        e, dnnl::algorithm::convolution_direct, g.X(), g.WeightsAny(), g.Y(), g.Strides(),
        g.PadL(), g.PadR(), fwd);
    entry.conv = dnnl::convolution_backward_data(pd);
    blocked = pd.weights_desc();
  } else {
    dnnl::convolution_backward_weights::primitive_desc pd(
        e, dnnl::algorithm::convolution_direct, g.X(), g.WeightsAny(), g.Y(), g.Strides(),
        g.PadL(), g.PadR(), fwd);
    entry.conv = dnnl::convolution_backward_weights(pd);
    blocked = pd.diff_weights_desc();
  }
  entry.reorder_weights = blocked != g.WeightsHwio();
  if (entry.reorder_weights) {
    entry.blocked_weights = memory(blocked, e);
    memory hwio(g.WeightsHwio(), e, DNNL_MEMORY_NONE);
    entry.weights_reorder = kind == kBackwardWeights
                                ? dnnl::reorder(entry.blocked_weights, hwio)
                                : dnnl::reorder(hwio, entry.blocked_weights);
  }
  return entry;
}

Entry& CachedEntry(Kind kind, const Geometry& g, const dnnl::engine& e) {
  static auto* cache = new std::map<std::pair<int, std::array<int64_t, 15>>, Entry>();
  auto key = std::make_pair(static_cast<int>(kind), g.Key());
  auto it = cache->find(key);
  if (it == cache->end()) it = cache->emplace(key, MakeEntry(kind, g, e)).first;
  return it->second;
}

// Runs one convolution on the executor. x, w, y point at the NHWC input, HWIO weights and NHWC
// output; for a backward kind the one it computes is the result (dx, dw), the others inputs.
void Execute(Kind kind, const Geometry& g, float* x, float* w, float* y) {
  State& s = GetState();
  Entry& entry = CachedEntry(kind, g, s.engine);
  memory xm(g.X(), s.engine, x), ym(g.Y(), s.engine, y), wm(g.WeightsHwio(), s.engine, w);
  memory weights = entry.reorder_weights ? entry.blocked_weights : wm;
  if (entry.reorder_weights && kind != kBackwardWeights)
    entry.weights_reorder.execute(s.stream, wm, weights);
  if (kind == kForward) {
    entry.conv.execute(s.stream, {{DNNL_ARG_SRC, xm}, {DNNL_ARG_WEIGHTS, weights},
                                  {DNNL_ARG_DST, ym}});
  } else if (kind == kBackwardData) {
    entry.conv.execute(s.stream, {{DNNL_ARG_DIFF_DST, ym}, {DNNL_ARG_WEIGHTS, weights},
                                  {DNNL_ARG_DIFF_SRC, xm}});
  } else {
    entry.conv.execute(s.stream, {{DNNL_ARG_SRC, xm}, {DNNL_ARG_DIFF_DST, ym},
                                  {DNNL_ARG_DIFF_WEIGHTS, weights}});
    if (entry.reorder_weights) entry.weights_reorder.execute(s.stream, weights, wm);
  }
  s.stream.wait();
  ++s.calls[kind];
}

ffi::Error Dispatch(Kind kind, ffi::Buffer<ffi::F32> a, ffi::Buffer<ffi::F32> b,
                    ffi::Result<ffi::Buffer<ffi::F32>> out, int64_t sh, int64_t sw, int64_t pt,
                    int64_t pb, int64_t pl, int64_t pr) {
  // Forward: a = x, b = w, out = y. Backward-data: a = dy, b = w, out = dx.
  // Backward-weights: a = x, b = dy, out = dw.
  auto x_dims = kind == kBackwardData ? out->dimensions() : a.dimensions();
  auto w_dims = kind == kForward ? b.dimensions()
                : kind == kBackwardData ? b.dimensions() : out->dimensions();
  auto y_dims = kind == kForward ? out->dimensions()
                : kind == kBackwardData ? a.dimensions() : b.dimensions();
  if (x_dims.size() != 4 || w_dims.size() != 4 || y_dims.size() != 4)
    return ffi::Error::InvalidArgument("freqrobust oneDNN conv: operands must have rank 4");
  Geometry g{x_dims[0], x_dims[1], x_dims[2], x_dims[3], w_dims[0], w_dims[1], w_dims[3],
             y_dims[1], y_dims[2], sh, sw, pt, pb, pl, pr};
  if (w_dims[2] != g.c || y_dims[0] != g.n || y_dims[3] != g.o)
    return ffi::Error::InvalidArgument("freqrobust oneDNN conv: inconsistent shapes");
  float* x = kind == kBackwardData ? out->typed_data() : a.typed_data();
  float* w = kind == kBackwardWeights ? out->typed_data() : b.typed_data();
  float* y = kind == kForward ? out->typed_data()
             : kind == kBackwardData ? a.typed_data() : b.typed_data();
  try {
    Executor::Get().Run([&] { Execute(kind, g, x, w, y); });
  } catch (const dnnl::error& e) {
    return ffi::Error::Internal(std::string("oneDNN: ") + e.what());
  } catch (const std::exception& e) {
    return ffi::Error::Internal(std::string("freqrobust oneDNN conv: ") + e.what());
  }
  return ffi::Error::Success();
}

template <Kind kind>
ffi::Error Handler(ffi::Buffer<ffi::F32> a, ffi::Buffer<ffi::F32> b,
                   ffi::Result<ffi::Buffer<ffi::F32>> out, int64_t sh, int64_t sw, int64_t pt,
                   int64_t pb, int64_t pl, int64_t pr) {
  return Dispatch(kind, a, b, out, sh, sw, pt, pb, pl, pr);
}

}  // namespace

// The exported symbols (the build hides everything else with -fvisibility=hidden).
#define FREQROBUST_EXPORT __attribute__((visibility("default")))
#define FREQROBUST_BIND                                                                  \
  ffi::Ffi::Bind()                                                                       \
      .Arg<ffi::Buffer<ffi::F32>>()                                                      \
      .Arg<ffi::Buffer<ffi::F32>>()                                                      \
      .Ret<ffi::Buffer<ffi::F32>>()                                                      \
      .Attr<int64_t>("stride_h")                                                         \
      .Attr<int64_t>("stride_w")                                                         \
      .Attr<int64_t>("pad_top")                                                          \
      .Attr<int64_t>("pad_bottom")                                                       \
      .Attr<int64_t>("pad_left")                                                         \
      .Attr<int64_t>("pad_right")

#pragma GCC visibility push(default)
XLA_FFI_DEFINE_HANDLER_SYMBOL(FreqrobustConvForward, Handler<kForward>, FREQROBUST_BIND);
XLA_FFI_DEFINE_HANDLER_SYMBOL(FreqrobustConvBackwardData, Handler<kBackwardData>,
                              FREQROBUST_BIND);
XLA_FFI_DEFINE_HANDLER_SYMBOL(FreqrobustConvBackwardWeights, Handler<kBackwardWeights>,
                              FREQROBUST_BIND);
#pragma GCC visibility pop

// Creates the CPU engine (on the executor) and writes oneDNN's version, or the error, into
// `message`; 0 when oneDNN works. The loader calls it once before registering the handlers.
extern "C" FREQROBUST_EXPORT int freqrobust_conv_probe(char* message, int size) {
  std::string text;
  int status = 0;
  try {
    Executor::Get().Run([] { GetState(); });
    const dnnl_version_t* v = dnnl_version();
    text = "oneDNN " + std::to_string(v->major) + "." + std::to_string(v->minor) + "." +
           std::to_string(v->patch) +
           (v->cpu_runtime == DNNL_RUNTIME_OMP ? " (OpenMP)" : " (not OpenMP)");
  } catch (const std::exception& e) {
    text = e.what();
    status = 1;
  }
  std::snprintf(message, size, "%s", text.c_str());
  return status;
}

// How many times each handler ran oneDNN (0 forward, 1 backward-data, 2 backward-weights).
extern "C" FREQROBUST_EXPORT int64_t freqrobust_conv_calls(int kind) {
  if (kind < 0 || kind >= kNumKinds) return -1;
  int64_t count = 0;
  Executor::Get().Run([&] { count = GetState().calls[kind]; });
  return count;
}
