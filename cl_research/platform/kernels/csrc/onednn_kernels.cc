// oneDNN kernels as XLA FFI handlers for the CPU, built and loaded by
// cl_research/onednn.py:
// - 2-D convolution: forward, input gradient and kernel gradient. Activations NHWC,
//   kernel HWIO, stride 1, no dilation; padding from attributes.
// - channel-wise PReLU (channels last): forward, and input + slope gradients.
//
// Why: XLA:CPU runs these convolutions on one core and at about 3/4 of oneDNN's
// per-core speed (benchmarks/conv_layers.py), and PReLU's backward on one core too;
// oneDNN is what PyTorch uses on CPU.
#include <cstdint>

#include "oneapi/dnnl/dnnl.hpp"
#include "xla/ffi/api/ffi.h"

namespace ffi = xla::ffi;
using dnnl::memory;
using Tag = dnnl::memory::format_tag;

namespace {

dnnl::engine& Engine() {
  static dnnl::engine engine(dnnl::engine::kind::cpu, 0);
  return engine;
}

// oneDNN's logical dims are (N, C, H, W) and (O, I, KH, KW) whatever the memory layout.
struct Geometry {
  memory::dims src, weights, dst, strides{1, 1}, pad_l, pad_r;

  Geometry(ffi::Span<const int64_t> x_nhwc, ffi::Span<const int64_t> w_hwio,
           ffi::Span<const int64_t> y_nhwc, int64_t pad_h, int64_t pad_w)
      : src{x_nhwc[0], x_nhwc[3], x_nhwc[1], x_nhwc[2]},
        weights{w_hwio[3], w_hwio[2], w_hwio[0], w_hwio[1]},
        dst{y_nhwc[0], y_nhwc[3], y_nhwc[1], y_nhwc[2]},
        pad_l{pad_h, pad_w},
        pad_r{y_nhwc[1] - x_nhwc[1] + w_hwio[0] - 1 - pad_h,
              y_nhwc[2] - x_nhwc[2] + w_hwio[1] - 1 - pad_w} {}

  memory::desc Src() const { return Plain(src, Tag::nhwc); }
  memory::desc Dst() const { return Plain(dst, Tag::nhwc); }
  memory::desc Weights() const { return Plain(weights, Tag::hwio); }
  // The kernel layout is left to oneDNN (blocked is fastest); it is reordered per call.
  memory::desc AnyWeights() const { return Plain(weights, Tag::any); }

  dnnl::convolution_forward::primitive_desc Forward() const {
    return {Engine(), dnnl::prop_kind::forward_training, dnnl::algorithm::convolution_direct,
            Src(), AnyWeights(), Dst(), strides, pad_l, pad_r};
  }

 private:
  static memory::desc Plain(const memory::dims& d, Tag tag) {
    return memory::desc(d, memory::data_type::f32, tag);
  }
};

memory Wrap(const memory::desc& desc, void* data) { return memory(desc, Engine(), data); }

// `user` in the layout `want`: the same memory, or a reordered copy.
memory InLayout(const memory& user, const memory::desc& want, dnnl::stream& stream) {
  if (user.get_desc() == want) return user;
  memory out(want, Engine());
  dnnl::reorder(user, out).execute(stream, const_cast<memory&>(user), out);
  return out;
}

ffi::Error Forward(ffi::Buffer<ffi::F32> x, ffi::Buffer<ffi::F32> w,
                   ffi::ResultBuffer<ffi::F32> y, int64_t pad_h, int64_t pad_w) {
  Geometry g(x.dimensions(), w.dimensions(), y->dimensions(), pad_h, pad_w);
  auto pd = g.Forward();
  dnnl::stream stream(Engine());
  memory weights = InLayout(Wrap(g.Weights(), w.typed_data()), pd.weights_desc(), stream);
  dnnl::convolution_forward(pd).execute(stream, {{DNNL_ARG_SRC, Wrap(g.Src(), x.typed_data())},
                                                 {DNNL_ARG_WEIGHTS, weights},
                                                 {DNNL_ARG_DST, Wrap(g.Dst(), y->typed_data())}});
  stream.wait();
  return ffi::Error::Success();
}

ffi::Error BackwardData(ffi::Buffer<ffi::F32> dy, ffi::Buffer<ffi::F32> w,
                        ffi::ResultBuffer<ffi::F32> dx, int64_t pad_h, int64_t pad_w) {
  Geometry g(dx->dimensions(), w.dimensions(), dy.dimensions(), pad_h, pad_w);
  dnnl::convolution_backward_data::primitive_desc pd(
      Engine(), dnnl::algorithm::convolution_direct, g.Src(), g.AnyWeights(), g.Dst(),
      g.strides, g.pad_l, g.pad_r, g.Forward());
  dnnl::stream stream(Engine());
  memory weights = InLayout(Wrap(g.Weights(), w.typed_data()), pd.weights_desc(), stream);
  dnnl::convolution_backward_data(pd).execute(
      stream, {{DNNL_ARG_DIFF_DST, Wrap(g.Dst(), dy.typed_data())},
               {DNNL_ARG_WEIGHTS, weights},
               {DNNL_ARG_DIFF_SRC, Wrap(g.Src(), dx->typed_data())}});
  stream.wait();
  return ffi::Error::Success();
}

ffi::Error BackwardWeights(ffi::Buffer<ffi::F32> x, ffi::Buffer<ffi::F32> dy,
                           ffi::ResultBuffer<ffi::F32> dw, int64_t pad_h, int64_t pad_w) {
  Geometry g(x.dimensions(), dw->dimensions(), dy.dimensions(), pad_h, pad_w);
  dnnl::convolution_backward_weights::primitive_desc pd(
      Engine(), dnnl::algorithm::convolution_direct, g.Src(), g.AnyWeights(), g.Dst(),
      g.strides, g.pad_l, g.pad_r, g.Forward());
  dnnl::stream stream(Engine());
  memory user = Wrap(g.Weights(), dw->typed_data());
  bool direct = pd.diff_weights_desc() == user.get_desc();
  memory grad = direct ? user : memory(pd.diff_weights_desc(), Engine());
  dnnl::convolution_backward_weights(pd).execute(
      stream, {{DNNL_ARG_SRC, Wrap(g.Src(), x.typed_data())},
               {DNNL_ARG_DIFF_DST, Wrap(g.Dst(), dy.typed_data())},
               {DNNL_ARG_DIFF_WEIGHTS, grad}});
  if (!direct) dnnl::reorder(grad, user).execute(stream, grad, user);
  stream.wait();
  return ffi::Error::Success();
}

// A channels-last tensor as oneDNN's 2-D (rows, C), and its per-channel slope (1, C).
struct Channels {
  memory::desc data, slope;

  explicit Channels(ffi::Span<const int64_t> dims)
      : data(Desc(Rows(dims), dims.back())), slope(Desc(1, dims.back())) {}

  dnnl::prelu_forward::primitive_desc Forward() const {
    return {Engine(), dnnl::prop_kind::forward_training, data, slope, data};
  }

 private:
  static int64_t Rows(ffi::Span<const int64_t> dims) {
    int64_t rows = 1;
    for (size_t i = 0; i + 1 < dims.size(); ++i) rows *= dims[i];
    return rows;
  }
  static memory::desc Desc(int64_t rows, int64_t c) {
    return memory::desc({rows, c}, memory::data_type::f32, Tag::nc);
  }
};

ffi::Error PreluForward(ffi::Buffer<ffi::F32> x, ffi::Buffer<ffi::F32> slope,
                        ffi::ResultBuffer<ffi::F32> y) {
  Channels c(x.dimensions());
  dnnl::stream stream(Engine());
  dnnl::prelu_forward(c.Forward()).execute(
      stream, {{DNNL_ARG_SRC, Wrap(c.data, x.typed_data())},
               {DNNL_ARG_WEIGHTS, Wrap(c.slope, slope.typed_data())},
               {DNNL_ARG_DST, Wrap(c.data, y->typed_data())}});
  stream.wait();
  return ffi::Error::Success();
}

ffi::Error PreluBackward(ffi::Buffer<ffi::F32> x, ffi::Buffer<ffi::F32> slope,
                         ffi::Buffer<ffi::F32> dy, ffi::ResultBuffer<ffi::F32> dx,
                         ffi::ResultBuffer<ffi::F32> dslope) {
  Channels c(x.dimensions());
  dnnl::prelu_backward::primitive_desc pd(Engine(), c.data, c.slope, c.data, c.slope, c.data,
                                          c.Forward());
  dnnl::stream stream(Engine());
  dnnl::prelu_backward(pd).execute(
      stream, {{DNNL_ARG_SRC, Wrap(c.data, x.typed_data())},
               {DNNL_ARG_WEIGHTS, Wrap(c.slope, slope.typed_data())},
               {DNNL_ARG_DIFF_DST, Wrap(c.data, dy.typed_data())},
               {DNNL_ARG_DIFF_SRC, Wrap(c.data, dx->typed_data())},
               {DNNL_ARG_DIFF_WEIGHTS, Wrap(c.slope, dslope->typed_data())}});
  stream.wait();
  return ffi::Error::Success();
}

}  // namespace

XLA_FFI_DEFINE_HANDLER_SYMBOL(ClPreluForward, PreluForward,
                              ffi::Ffi::Bind()
                                  .Arg<ffi::Buffer<ffi::F32>>()
                                  .Arg<ffi::Buffer<ffi::F32>>()
                                  .Ret<ffi::Buffer<ffi::F32>>());
XLA_FFI_DEFINE_HANDLER_SYMBOL(ClPreluBackward, PreluBackward,
                              ffi::Ffi::Bind()
                                  .Arg<ffi::Buffer<ffi::F32>>()
                                  .Arg<ffi::Buffer<ffi::F32>>()
                                  .Arg<ffi::Buffer<ffi::F32>>()
                                  .Ret<ffi::Buffer<ffi::F32>>()
                                  .Ret<ffi::Buffer<ffi::F32>>());

// The convolutions take two f32 buffers and return one, with the padding as attributes.
#define CL_CONV_BINDING()               \
  ffi::Ffi::Bind()                      \
      .Arg<ffi::Buffer<ffi::F32>>()     \
      .Arg<ffi::Buffer<ffi::F32>>()     \
      .Ret<ffi::Buffer<ffi::F32>>()     \
      .Attr<int64_t>("pad_h")           \
      .Attr<int64_t>("pad_w")

XLA_FFI_DEFINE_HANDLER_SYMBOL(ClConvForward, Forward, CL_CONV_BINDING());
XLA_FFI_DEFINE_HANDLER_SYMBOL(ClConvBackwardData, BackwardData, CL_CONV_BINDING());
XLA_FFI_DEFINE_HANDLER_SYMBOL(ClConvBackwardWeights, BackwardWeights, CL_CONV_BINDING());
