// The mask sampler's CPU draw (frameworks/torch_backend/sampler.py) in one pass: the same values,
// and the same generator state afterwards, as `torch.rand(shape, generator=g).ge_(rate)
// .mul_(scale)`, which draws one Mersenne Twister word per element through a serial kernel and
// then makes two more passes over the mask.
//
// Why: Zoneout draws two (B, T, H) masks per layer and batch; at the classifier shape that draw
// cost about a tenth of a compiled training step. Here the twister's words are tempered and
// thresholded in blocks the compiler vectorizes, and only the twist itself goes through ATen's
// own engine, so the stream cannot drift from PyTorch's.
//
// torch.rand's float32 value of a word y is (y & (2^24 - 1)) * 2^-24 (ATen's uniform_real for
// float), exact; `ge_` with a Python float compares in float32, so the threshold is float(rate).

#include <ATen/ATen.h>
#include <ATen/CPUGeneratorImpl.h>
#include <torch/library.h>

#include <algorithm>
#include <cstdint>
#include <mutex>
#include <optional>

namespace {

using at::Tensor;

// The mask value of one twister word: torch.rand's uniform of the tempered word, kept at or above
// the threshold
inline float mask_value(uint32_t y, float threshold, float scale) {
  const float u = static_cast<float>(y & 0xFFFFFFu) * 0x1p-24f;
  return u >= threshold ? scale : 0.0f;
}

// A block of the twister's untempered state words, tempered (as at::mt19937 does) into mask values
void temper_block(const uint32_t* words, int64_t count, float threshold, float scale, float* out) {
  for (int64_t j = 0; j < count; ++j) {
    uint32_t y = words[j];
    y ^= (y >> 11);
    y ^= (y << 7) & 0x9d2c5680u;
    y ^= (y << 15) & 0xefc60000u;
    y ^= (y >> 18);
    out[j] = mask_value(y, threshold, scale);
  }
}

void draw_mask_(Tensor out, std::optional<at::Generator> generator, double rate, double scale) {
  TORCH_CHECK(out.scalar_type() == at::kFloat && out.is_contiguous() && out.is_cpu(),
              "draw_mask_: out must be a contiguous float32 CPU tensor");
  auto* gen = at::get_generator_or_default<at::CPUGeneratorImpl>(
      generator, at::detail::getDefaultCPUGenerator());
  std::lock_guard<std::mutex> lock(gen->mutex_);
  at::mt19937 engine = gen->engine();
  const float threshold = static_cast<float>(rate), value = static_cast<float>(scale);
  float* dst = out.data_ptr<float>();
  const int64_t n = out.numel();
  for (int64_t i = 0; i < n;) {
    at::mt19937_data_pod state = engine.data();
    if (state.left_ <= 1) {  // the next word needs a twist: the engine's own
      dst[i++] = mask_value(engine(), threshold, value);
      continue;
    }
    // the engine returns state_[next_] and decrements left_ per word, twisting at left_ == 0
    const int64_t count = std::min<int64_t>(state.left_ - 1, n - i);
    temper_block(state.state_.data() + state.next_, count, threshold, value, dst + i);
    state.next_ += static_cast<uint32_t>(count);
    state.left_ -= static_cast<int>(count);
    engine.set_data(state);
    i += count;
  }
  gen->set_engine(engine);
}

}  // namespace

TORCH_LIBRARY_FRAGMENT(rds_fused_loop, m) {
  m.def("draw_mask_(Tensor(a!) out, Generator? generator, float rate, float scale) -> ()");
}

TORCH_LIBRARY_IMPL(rds_fused_loop, CPU, m) {
  m.impl("draw_mask_", &draw_mask_);
}
