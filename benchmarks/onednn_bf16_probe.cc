// oneDNN's own forward convolutions of the paper-width LeNets++ layers (batch 128, 5x5,
// pad 2), in float32 and in bfloat16 (bfloat16 source and weights, float32 destination:
// float32 accumulation), each with the implementation oneDNN picks for this CPU. One
// JSON line per layer. Built and run by benchmarks/bf16_probe.py.
#include <chrono>
#include <cstdio>
#include <string>
#include <vector>

#include "oneapi/dnnl/dnnl.hpp"

using dnnl::memory;
using Tag = memory::format_tag;
using Type = memory::data_type;

namespace {

double TimeConv(Type in_type, int batch, int side, int cin, int cout, int repeats,
                std::string* impl) {
  dnnl::engine engine(dnnl::engine::kind::cpu, 0);
  dnnl::stream stream(engine);
  memory::dims src{batch, cin, side, side}, wei{cout, cin, 5, 5}, dst{batch, cout, side, side};
  auto src_md = memory::desc(src, in_type, Tag::any);
  auto wei_md = memory::desc(wei, in_type, Tag::any);
  auto dst_md = memory::desc(dst, Type::f32, Tag::any);
  auto pd = dnnl::convolution_forward::primitive_desc(
      engine, dnnl::prop_kind::forward_training, dnnl::algorithm::convolution_direct, src_md,
      wei_md, dst_md, {1, 1}, {2, 2}, {2, 2});
  *impl = pd.impl_info_str();
  memory s(pd.src_desc(), engine), w(pd.weights_desc(), engine), d(pd.dst_desc(), engine);
  dnnl::convolution_forward conv(pd);
  auto run = [&] {
    conv.execute(stream, {{DNNL_ARG_SRC, s}, {DNNL_ARG_WEIGHTS, w}, {DNNL_ARG_DST, d}});
    stream.wait();
  };
  run();
  auto start = std::chrono::steady_clock::now();
  for (int i = 0; i < repeats; ++i) run();
  std::chrono::duration<double> took = std::chrono::steady_clock::now() - start;
  return took.count() / repeats;
}

}  // namespace

int main(int argc, char** argv) {
  int repeats = argc > 1 ? std::stoi(argv[1]) : 10;
  struct Layer { int side, cin, cout; };
  std::vector<Layer> layers{{28, 1, 32}, {28, 32, 32}, {14, 32, 64}, {14, 64, 64},
                            {7, 64, 128}, {7, 128, 128}};
  for (const Layer& l : layers) {
    std::string f32_impl, bf16_impl;
    double gflop = 2.0 * 128 * l.side * l.side * l.cout * l.cin * 25 / 1e9;
    double f32 = TimeConv(Type::f32, 128, l.side, l.cin, l.cout, repeats, &f32_impl);
    std::printf("{\"layer\": \"%dx%d %d->%d\", \"float32_ms\": %.3f, "
                "\"float32_gflops\": %.1f, \"float32_impl\": \"%s\", ",
                l.side, l.side, l.cin, l.cout, f32 * 1e3, gflop / f32, f32_impl.c_str());
    try {
      double bf16 = TimeConv(Type::bf16, 128, l.side, l.cin, l.cout, repeats, &bf16_impl);
      std::printf("\"bfloat16_ms\": %.3f, \"bfloat16_gflops\": %.1f, "
                  "\"bfloat16_impl\": \"%s\"}\n", bf16 * 1e3, gflop / bf16, bf16_impl.c_str());
    } catch (const dnnl::error& e) {  // no bfloat16 implementation for this CPU's ISA
      std::printf("\"bfloat16_ms\": null, \"bfloat16_impl\": \"none: %s\"}\n", e.what());
    }
  }
  return 0;
}
