// Training-mode batch norm for a channels_last activation viewed as rows of pixels, [M, C] contiguous: the
// hand-written kernel variant of benchmarks/fused_batchnorm.py, built there with torch.utils.cpp_extension.
// Forward: two passes for the statistics (mean, then the mean squared deviation, as ATen), one to write y.
// Backward: one pass for the sums of dy and dy * (x - mean), one to write dx. Accumulation is fp32 within blocks of
// 256 rows and fp64 across them; the running statistics are updated by the caller.
#include <torch/extension.h>
#include <ATen/Parallel.h>
#include <cmath>
#include <cstring>
#include <vector>

// bf16 <-> fp32 by bit operations that the compiler vectorizes (round to nearest even; NaN stays NaN).
static inline float to_float(float v) { return v; }
static inline float to_float(at::BFloat16 v) {
  uint32_t bits = static_cast<uint32_t>(v.x) << 16;
  float f; std::memcpy(&f, &bits, 4); return f;
}
static inline void put(float* p, float v) { *p = v; }
static inline void put(at::BFloat16* p, float v) {
  uint32_t bits; std::memcpy(&bits, &v, 4);
  uint32_t rounded = (bits + 0x7FFFu + ((bits >> 16) & 1u)) >> 16;
  p->x = std::isnan(v) ? 0x7FC0u : static_cast<uint16_t>(rounded);
}

constexpr int64_t kRows = 4;  // independent accumulators: one add chain per row in flight

// The sums over M rows of `width` terms each, which `add(r, acc)` adds for row r into acc[0, width): fp32 partials
// per thread in blocks of 256 rows, kRows rows in flight, summed in fp64.
template <typename AddRow>
static std::vector<double> row_sums(int64_t M, int64_t width, const AddRow& add) {
  const int threads = at::get_num_threads();
  std::vector<double> part(threads * width, 0.0);
  at::parallel_for(0, M, 4096, [&](int64_t begin, int64_t end) {
    double* acc = part.data() + at::get_thread_num() * width;
    std::vector<float> chunk(kRows * width);
    for (int64_t r0 = begin; r0 < end; r0 += 256) {
      const int64_t r1 = std::min(end, r0 + 256);
      std::fill(chunk.begin(), chunk.end(), 0.f);
      int64_t r = r0;
      for (; r + kRows <= r1; r += kRows)
        for (int64_t k = 0; k < kRows; ++k) add(r + k, chunk.data() + k * width);
      for (; r < r1; ++r) add(r, chunk.data());
      for (int64_t k = 0; k < kRows; ++k)
        for (int64_t i = 0; i < width; ++i) acc[i] += chunk[k * width + i];
    }
  });
  std::vector<double> out(width, 0.0);
  for (int t = 0; t < threads; ++t)
    for (int64_t i = 0; i < width; ++i) out[i] += part[t * width + i];
  return out;
}

// Per channel, the sum over rows of x (center = nullptr) or of (x - center)^2.
template <typename T>
static std::vector<double> column_sums(const T* __restrict__ x, int64_t M, int64_t C, const float* __restrict__ center) {
  return row_sums(M, C, [&](int64_t r, float* __restrict__ a) {
    const T* __restrict__ row = x + r * C;
    if (center) {
      #pragma omp simd
      for (int64_t c = 0; c < C; ++c) { const float d = to_float(row[c]) - center[c]; a[c] += d * d; }
    } else {
      #pragma omp simd
      for (int64_t c = 0; c < C; ++c) a[c] += to_float(row[c]);
    }
  });
}

// out = a * x + b per channel (+ u * y when y is given).
template <typename T>
static void affine(const T* __restrict__ x, const T* __restrict__ y, int64_t M, int64_t C, const float* __restrict__ a,
                   const float* __restrict__ u, const float* __restrict__ b, T* __restrict__ out) {
  at::parallel_for(0, M, 1024, [&](int64_t begin, int64_t end) {
    for (int64_t r = begin; r < end; ++r) {
      const T* __restrict__ xr = x + r * C;
      T* __restrict__ o = out + r * C;
      if (y) {
        const T* __restrict__ yr = y + r * C;
        #pragma omp simd
        for (int64_t c = 0; c < C; ++c) put(o + c, to_float(xr[c]) * a[c] + to_float(yr[c]) * u[c] + b[c]);
      } else {
        #pragma omp simd
        for (int64_t c = 0; c < C; ++c) put(o + c, to_float(xr[c]) * a[c] + b[c]);
      }
    }
  });
}

// Per channel, the sums of dy (first C) and of dy * (x - mean) (next C), in one pass over both.
template <typename T>
static std::vector<double> grad_sums(const T* __restrict__ dy, const T* __restrict__ x, int64_t M, int64_t C,
                                     const float* __restrict__ mu) {
  return row_sums(M, 2 * C, [&](int64_t r, float* __restrict__ g) {
    const T* __restrict__ d = dy + r * C;
    const T* __restrict__ xr = x + r * C;
    float* __restrict__ gx = g + C;
    #pragma omp simd
    for (int64_t c = 0; c < C; ++c) { const float v = to_float(d[c]); g[c] += v; gx[c] += v * (to_float(xr[c]) - mu[c]); }
  });
}

template <typename T>
static void forward_impl(const torch::Tensor& x2, const torch::Tensor& weight, const torch::Tensor& bias, double eps,
                         torch::Tensor& y2, torch::Tensor& mean, torch::Tensor& invstd, torch::Tensor& var) {
  const int64_t M = x2.size(0), C = x2.size(1);
  const T* x = x2.data_ptr<T>();
  std::vector<float> scale(C), shift(C);
  float* mu = mean.data_ptr<float>();
  std::vector<double> s = column_sums(x, M, C, nullptr);
  for (int64_t c = 0; c < C; ++c) mu[c] = s[c] / M;
  s = column_sums(x, M, C, mu);  // two passes, as ATen: no cancellation in E[x^2] - E[x]^2
  const float* w = weight.data_ptr<float>();
  const float* b = bias.data_ptr<float>();
  for (int64_t c = 0; c < C; ++c) {
    var.data_ptr<float>()[c] = s[c] / M;
    const float is = 1.0 / std::sqrt(s[c] / M + eps);
    invstd.data_ptr<float>()[c] = is;
    scale[c] = w[c] * is;
    shift[c] = b[c] - mu[c] * scale[c];
  }
  affine<T>(x, nullptr, M, C, scale.data(), nullptr, shift.data(), y2.data_ptr<T>());
}

std::vector<torch::Tensor> forward(torch::Tensor x2, torch::Tensor weight, torch::Tensor bias, double eps) {
  const int64_t C = x2.size(1);
  auto f32 = x2.options().dtype(torch::kFloat);
  auto mean = torch::empty({C}, f32), invstd = torch::empty({C}, f32), var = torch::empty({C}, f32);
  auto y2 = torch::empty_like(x2);
  if (x2.scalar_type() == at::kBFloat16) forward_impl<at::BFloat16>(x2, weight, bias, eps, y2, mean, invstd, var);
  else forward_impl<float>(x2, weight, bias, eps, y2, mean, invstd, var);
  return {y2, mean, invstd, var};
}

template <typename T>
static void backward_impl(const torch::Tensor& dy2, const torch::Tensor& x2, const torch::Tensor& mean,
                          const torch::Tensor& invstd, const torch::Tensor& weight, torch::Tensor& dx2,
                          torch::Tensor& dw, torch::Tensor& db) {
  const int64_t M = x2.size(0), C = x2.size(1);
  const float* mu = mean.data_ptr<float>();
  const float* is = invstd.data_ptr<float>();
  const float* w = weight.data_ptr<float>();
  const std::vector<double> sums = grad_sums(dy2.data_ptr<T>(), x2.data_ptr<T>(), M, C, mu);
  const double* sg = sums.data();
  const double* sgx = sg + C;
  // dx = w * invstd * (dy - mean(dy) - xhat * mean(dy * xhat)) = a * dy + u * x + k
  std::vector<float> a(C), u(C), k(C);
  for (int64_t c = 0; c < C; ++c) {
    db.data_ptr<float>()[c] = sg[c];
    dw.data_ptr<float>()[c] = sgx[c] * is[c];
    a[c] = w[c] * is[c];
    u[c] = -a[c] * is[c] * is[c] * sgx[c] / M;
    k[c] = -a[c] * sg[c] / M - u[c] * mu[c];
  }
  affine<T>(dy2.data_ptr<T>(), x2.data_ptr<T>(), M, C, a.data(), u.data(), k.data(), dx2.data_ptr<T>());
}

std::vector<torch::Tensor> backward(torch::Tensor dy2, torch::Tensor x2, torch::Tensor mean, torch::Tensor invstd,
                                    torch::Tensor weight) {
  const int64_t C = x2.size(1);
  auto f32 = x2.options().dtype(torch::kFloat);
  auto dx2 = torch::empty_like(x2);
  auto dw = torch::empty({C}, f32), db = torch::empty({C}, f32);
  if (x2.scalar_type() == at::kBFloat16) backward_impl<at::BFloat16>(dy2, x2, mean, invstd, weight, dx2, dw, db);
  else backward_impl<float>(dy2, x2, mean, invstd, weight, dx2, dw, db);
  return {dx2, dw, db};
}

PYBIND11_MODULE(TORCH_EXTENSION_NAME, m) {
  m.def("forward", &forward);
  m.def("backward", &backward);
}
