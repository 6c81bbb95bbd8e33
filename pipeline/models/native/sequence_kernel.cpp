// The per-timestep loop of one LSTM / BNLSTM / DDLSTM layer, forward and backward through time, on the
// CPU without the Python interpreter: the same computation as pipeline/models/fused.py (the tensor
// kernel, which runs on any device), with each step's elementwise work as plain loops over rows and
// only the products with the weights (W_h h, the moments of the normalisers, dh W_h) as ATen calls.
//
// Layout: time-major. N rows (batch), G = 4 H gate pre-activations in the order f, i, o, g; d domains
// present in the batch, each a contiguous block of rows; e extra "direction" rows in the moments
// product (derivatives of the contribution weights with respect to the alphas in use, for alpha's
// gradient, summed in Python after the loop). The parameters are the real ones: tanh is computed as
// 2 sigmoid(2 z) - 1 here, not folded into them.
//
// forward_loop fills, per step t: the gates (sigmoid of f, i, o and tanh of g), [c_t | c_t^2], tanh of
// the (normalised) cell, the output h_t, and for the normalisers their moments (rows: d domains, then
// e directions; columns [E a | E a^2]), variances and reciprocal standard deviations. backward_loop
// walks the steps back and returns the gradients with respect to W_x x_t and W_h h_{t-1} for every
// step, the bias and affine gradients, and the per-step coefficients alpha's gradient needs.
//
// Threads: each step's work over rows (and its sums over rows, by columns) is split between PyTorch's
// intra-op threads when the step is large enough to pay for it (ROW_GRAIN elements a thread).

// ATen and the Python binding only: <torch/extension.h> also brings in the whole C++ frontend (modules,
// optimisers, data loaders), a third of the compile time of this file, none of which it uses.
#include <ATen/ATen.h>
#include <torch/python.h>

#include <ATen/Parallel.h>

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <cstring>
#include <vector>

namespace {

constexpr int64_t ROW_GRAIN = 16384;  // elements of work below which a loop is not split between threads

// An AVX2 (and FMA) copy of the hot functions beside the baseline one, picked at load time by the CPU:
// 8-wide vector loops where the CPU has them, and the same build runs on any x86-64.
#if defined(__x86_64__) && defined(__GNUC__) && !defined(__clang__)
#define MULTIVERSIONED __attribute__((target_clones("arch=haswell", "default")))
#else
#define MULTIVERSIONED
#endif

// Runs f(begin, end) over [0, n) split between threads, `width` elements of work per index.
template <typename F>
inline void split(int64_t n, int64_t width, const F& f) {
  const int64_t grain = std::max<int64_t>(1, ROW_GRAIN / std::max<int64_t>(1, width));
  at::parallel_for(0, n, grain, f);
}

// ---- vectorisable elementwise functions ------------------------------------------------------------

// exp for float: Cephes' range reduction and degree-5 polynomial, written without branches so that the
// compiler vectorises the loops that call it (relative error ~1.3e-7; ~0.9 ns an element with AVX2
// against ~5 ns for std::exp, measured on the development machine). It needs -fno-trapping-math, or
// GCC will not turn the clamps into vector selects. Doubles use std::exp (the tests run the kernel in
// float64 against the reference cell).
inline float exp_approx(float x) {
  x = x < -80.0f ? -80.0f : x;  // keeps 1 / (1 + exp) away from denormals
  x = x > 80.0f ? 80.0f : x;
  const float n = (x * 1.44269504088896341f + 12582912.0f) - 12582912.0f;  // round to nearest (1.5 * 2^23)
  const int32_t ni = static_cast<int32_t>(n);
  const float r = x - n * 0.693359375f + n * 2.12194440e-4f;
  float p = 1.9875691500e-4f;
  p = p * r + 1.3981999507e-3f;
  p = p * r + 8.3334519073e-3f;
  p = p * r + 4.1665795894e-2f;
  p = p * r + 1.6666665459e-1f;
  p = p * r + 5.0000001201e-1f;
  p = p * r * r + r + 1.0f;
  const int32_t bits = (ni + 127) << 23;  // 2^n
  float scale;
  std::memcpy(&scale, &bits, sizeof(scale));
  return p * scale;
}

inline float exp_of(float x) { return exp_approx(x); }
inline double exp_of(double x) { return std::exp(x); }

template <typename T>
inline T sigmoid(T x) {
  return T(1) / (T(1) + exp_of(-x));
}

template <typename T>
inline T tanh_of(T x) {
  return T(2) * sigmoid(T(2) * x) - T(1);
}

// ---- row kernels: the work of one step on rows [begin, end) -----------------------------------------

// [a_x | a_h] -> their squares, in the next 2G columns of each row.
template <typename T>
MULTIVERSIONED void squares_rows(T* acts, int64_t width, int64_t G, int64_t begin, int64_t end) {
  for (int64_t j = begin; j < end; ++j) {
    T* row = acts + j * width;
    for (int64_t k = 0; k < 2 * G; ++k) row[2 * G + k] = row[k] * row[k];
  }
}

// z = a_x scale_x + a_h scale_h + shift (per row's domain: affine (d, 2G) [scale | ...], shift (d, G)).
template <typename T>
MULTIVERSIONED void normalised_gates_rows(T* z, const T* acts, int64_t width, const T* scale, const T* shift,
                                          const int64_t* row_block, int64_t G, int64_t begin, int64_t end) {
  for (int64_t j = begin; j < end; ++j) {
    const T* row = acts + j * width;
    const T* sx = scale + row_block[j] * 2 * G;
    const T* sh = sx + G;
    const T* f = shift + row_block[j] * G;
    T* zj = z + j * G;
    for (int64_t k = 0; k < G; ++k) zj[k] = row[k] * sx[k] + row[G + k] * sh[k] + f[k];
  }
}

// Gates of a step: s = sigmoid(f, i, o) and tanh(g) from z (N, G); c = f c_prev + i g written into the
// rows of cc_now (width ccw: [c | c^2] with normalisers, where c^2 is written too).
template <typename T>
MULTIVERSIONED void gates_and_cell_rows(T* s, const T* z, const T* cc_prev, T* cc_now, int64_t ccw, int64_t H,
                                        bool squares, int64_t begin, int64_t end) {
  const int64_t G = 4 * H;
  for (int64_t j = begin; j < end; ++j) {
    T* sj = s + j * G;
    const T* zj = z + j * G;
    for (int64_t k = 0; k < 3 * H; ++k) sj[k] = sigmoid(zj[k]);
    for (int64_t k = 3 * H; k < G; ++k) sj[k] = tanh_of(zj[k]);
    const T* cp = cc_prev + j * ccw;
    T* cj = cc_now + j * ccw;
    for (int64_t k = 0; k < H; ++k) cj[k] = sj[k] * cp[k] + sj[H + k] * sj[3 * H + k];
    if (squares)
      for (int64_t k = 0; k < H; ++k) cj[H + k] = cj[k] * cj[k];
  }
}

// th = tanh(c * scale + shift) (or tanh(c) without a normaliser), h = o th; padded rows (mask false)
// carry h and the cell state through unchanged.
template <typename T>
MULTIVERSIONED void cell_output_rows(T* th, T* h, T* cc_now, int64_t ccw, const T* cc_prev, const T* h_prev,
                                     const T* s, const T* scale, const T* shift, const bool* mask, int64_t H,
                                     int64_t begin, int64_t end) {
  const int64_t G = 4 * H;
  for (int64_t j = begin; j < end; ++j) {
    const T* cj = cc_now + j * ccw;
    T* tj = th + j * H;
    T* hj = h + j * H;
    const T* oj = s + j * G + 2 * H;
    if (scale != nullptr) {
      for (int64_t k = 0; k < H; ++k) tj[k] = tanh_of(cj[k] * scale[k] + shift[k]);
    } else {
      for (int64_t k = 0; k < H; ++k) tj[k] = tanh_of(cj[k]);
    }
    for (int64_t k = 0; k < H; ++k) hj[k] = oj[k] * tj[k];
    if (mask != nullptr && !mask[j]) {
      std::memcpy(hj, h_prev + j * H, sizeof(T) * H);
      std::memcpy(cc_now + j * ccw, cc_prev + j * ccw, sizeof(T) * ccw);
    }
  }
}

// A row's gradient g += add; where the row is padding at this step (mask false), g is set aside in keep
// (it flows to the step before unchanged, as the state did) and zeroed here.
template <typename T>
inline void add_and_set_aside(T* g, const T* add, T* keep, const bool* mask, int64_t H) {
  for (int64_t k = 0; k < H; ++k) g[k] += add[k];
  if (mask == nullptr) return;
  if (*mask) {
    std::fill(keep, keep + H, T(0));
  } else {
    std::memcpy(keep, g, sizeof(T) * H);
    std::fill(g, g + H, T(0));
  }
}

// Backward through h = o tanh(u), starting a step: dh += d_out; a padded row keeps its dh aside (dh_keep)
// for the step before; dz of o's pre-activation and du.
template <typename T>
MULTIVERSIONED void output_grad_rows(T* dh, T* dh_keep, const T* d_out, const bool* mask, const T* s, const T* th,
                                     T* dz, T* du, int64_t H, int64_t begin, int64_t end) {
  const int64_t G = 4 * H;
  for (int64_t j = begin; j < end; ++j) {
    T* dhj = dh + j * H;
    add_and_set_aside(dhj, d_out + j * H, dh_keep + j * H, mask != nullptr ? mask + j : nullptr, H);
    const T* oj = s + j * G + 2 * H;
    const T* tj = th + j * H;
    T* dzo = dz + j * G + 2 * H;
    T* duj = du + j * H;
    for (int64_t k = 0; k < H; ++k) {
      dzo[k] = dhj[k] * tj[k] * oj[k] * (T(1) - oj[k]);
      duj[k] = dhj[k] * oj[k] * (T(1) - tj[k] * tj[k]);
    }
  }
}

// dc += dcn; a padded row's dc set aside; the pre-activation gradients of f, i and g.
template <typename T>
MULTIVERSIONED void gate_grad_rows(T* dc, T* dc_keep, const T* dcn, const bool* mask, const T* s, const T* cc_prev,
                                   int64_t ccw, T* dz, int64_t H, int64_t begin, int64_t end) {
  const int64_t G = 4 * H;
  for (int64_t j = begin; j < end; ++j) {
    T* dcj = dc + j * H;
    add_and_set_aside(dcj, dcn + j * H, dc_keep + j * H, mask != nullptr ? mask + j : nullptr, H);
    const T* sj = s + j * G;
    const T* cp = cc_prev + j * ccw;
    T* dzj = dz + j * G;
    for (int64_t k = 0; k < H; ++k) {
      const T f = sj[k], i = sj[H + k], g = sj[3 * H + k];
      dzj[k] = dcj[k] * cp[k] * f * (T(1) - f);
      dzj[H + k] = dcj[k] * g * i * (T(1) - i);
      dzj[3 * H + k] = dcj[k] * i * (T(1) - g * g);
    }
  }
}

// Ending a step backwards: dc *= f (through c = f c_prev + ...), and the padded rows' kept gradients back.
template <typename T>
MULTIVERSIONED void carry_rows(T* dh, T* dc, const T* dh_keep, const T* dc_keep, const T* s, bool masked, int64_t H,
                               int64_t begin, int64_t end) {
  const int64_t G = 4 * H;
  for (int64_t j = begin; j < end; ++j) {
    T* dcj = dc + j * H;
    const T* fj = s + j * G;
    for (int64_t k = 0; k < H; ++k) dcj[k] *= fj[k];
    if (masked) {
      T* dhj = dh + j * H;
      for (int64_t k = 0; k < H; ++k) {
        dhj[k] += dh_keep[j * H + k];
        dcj[k] += dc_keep[j * H + k];
      }
    }
  }
}

// Column sums over rows [row_begin, row_end) of x (stride `stride`), columns [begin, end), added to out.
template <typename T>
MULTIVERSIONED void column_sums(T* out, const T* x, int64_t stride, int64_t row_begin, int64_t row_end,
                                int64_t begin, int64_t end) {
  for (int64_t j = row_begin; j < row_end; ++j) {
    const T* xj = x + j * stride;
    for (int64_t q = begin; q < end; ++q) out[q] += xj[q];
  }
}

// ---- normalisers ------------------------------------------------------------------------------------

struct Blocks {
  std::vector<int64_t> start, stop;  // rows of each present domain
  std::vector<int64_t> row_block;    // the domain (index into start / stop) of every row
};

Blocks read_blocks(const torch::Tensor& blocks, int64_t rows) {
  Blocks out;
  auto b = blocks.accessor<int64_t, 2>();
  out.row_block.assign(static_cast<size_t>(rows), 0);
  for (int64_t i = 0; i < blocks.size(0); ++i) {
    out.start.push_back(b[i][0]);
    out.stop.push_back(b[i][1]);
    for (int64_t j = b[i][0]; j < b[i][1]; ++j) out.row_block[static_cast<size_t>(j)] = i;
  }
  return out;
}

// From the step's moments [E a | E a^2] (rows 0..d-1) of width 2W: var, rstd, and the affine map
// y = a * scale + shift of each domain (d, W).
template <typename T>
void statistics(const T* moments, T* var, T* rstd, T* scale, T* shift, const T* gamma, const T* beta, int64_t d,
                int64_t W, double eps) {
  for (int64_t b = 0; b < d; ++b) {
    const T* mean = moments + b * 2 * W;
    const T* ex2 = mean + W;
    for (int64_t k = 0; k < W; ++k) {
      T v = ex2[k] - mean[k] * mean[k];
      v = v > T(0) ? v : T(0);
      var[b * W + k] = v;
      T r = T(1) / std::sqrt(v + T(eps));
      rstd[b * W + k] = r;
      scale[b * W + k] = r * gamma[k];
      shift[b * W + k] = beta[k] - mean[k] * r * gamma[k];
    }
  }
}

// da_j = sum_i nw_ij coef_const_i + 2 a_j sum_i nw_ij grad_var_i + dy_j rstd_b gamma, rows [begin, end).
template <typename T>
MULTIVERSIONED void norm_input_grad_rows(T* da, const T* dy, const T* buf, int64_t buf_stride, const T* coef,
                                         const T* rstd, const T* gamma, const T* nw, const int64_t* row_block,
                                         int64_t d, int64_t N, int64_t F, int64_t k, int64_t begin, int64_t end) {
  const int64_t W = k * F;
  for (int64_t j = begin; j < end; ++j) {
    T* daj = da + j * W;
    const T* aj = buf + j * buf_stride;
    std::fill(daj, daj + W, T(0));
    for (int64_t i = 0; i < d; ++i) {
      const T weight = nw[i * N + j];
      if (weight == T(0)) continue;
      const T* cc = coef + i * 2 * W;
      for (int64_t w = 0; w < W; ++w) daj[w] += weight * (cc[w] + T(2) * aj[w] * cc[W + w]);
    }
    const int64_t b = row_block[j];
    const T* dyj = dy + j * F;
    const T* rb = rstd + b * W;
    for (int64_t side = 0; side < k; ++side)
      for (int64_t q = 0; q < F; ++q) daj[side * F + q] += dyj[q] * rb[side * F + q] * gamma[side * F + q];
  }
}

// Per domain: the sums of dy (d, F) and of dy * a (d, W) over its rows, split by columns between threads.
template <typename T>
MULTIVERSIONED void domain_sums_columns(T* sum_dy, T* sum_dya, const T* dy, const T* buf, int64_t buf_stride,
                                        int64_t row_begin, int64_t row_end, int64_t F, int64_t k, int64_t begin,
                                        int64_t end) {
  // columns [begin, end) of F: sum_dy[q] and sum_dya[side * F + q] for every side
  for (int64_t j = row_begin; j < row_end; ++j) {
    const T* dyj = dy + j * F;
    const T* aj = buf + j * buf_stride;
    for (int64_t q = begin; q < end; ++q) sum_dy[q] += dyj[q];
    for (int64_t side = 0; side < k; ++side)
      for (int64_t q = begin; q < end; ++q) sum_dya[side * F + q] += dyj[q] * aj[side * F + q];
  }
}

// Backward of the normaliser for one step. dy (N, F) is the gradient of every one of its k sides
// (W = k F columns of a = buf[:, :W]); nw (d, N) the normalised weights of the step; coef (d, 2W) and
// grad_mean (d, W) receive [dL/dmean - 2 mean dL/dvar | dL/dvar] and dL/dmean; da (N, W) the
// gradient of a; dgamma, dbeta (W) accumulate the affine gradients.
template <typename T>
void norm_backward(const T* dy, const T* buf, int64_t buf_stride, const T* moments, const T* rstd, const T* gamma,
                   const T* nw, const Blocks& blocks, int64_t N, int64_t F, int64_t k, T* coef, T* grad_mean, T* da,
                   T* dgamma, T* dbeta, std::vector<T>& sums) {
  const int64_t d = static_cast<int64_t>(blocks.start.size());
  const int64_t W = k * F;
  sums.assign(static_cast<size_t>(d * (F + W)), T(0));
  for (int64_t b = 0; b < d; ++b) {
    T* sum_dy = sums.data() + b * (F + W);
    T* sum_dya = sum_dy + F;
    const int64_t rows = blocks.stop[b] - blocks.start[b];
    split(F, rows * (k + 1), [&](int64_t begin, int64_t end) {
      domain_sums_columns(sum_dy, sum_dya, dy, buf, buf_stride, blocks.start[b], blocks.stop[b], F, k, begin, end);
    });
    const T* mean = moments + b * 2 * W;
    for (int64_t w = 0; w < W; ++w) {
      const T rg = rstd[b * W + w] * gamma[w];
      const T sdy = sum_dy[w % F];
      const T gm = -rg * sdy;
      const T dy_xhat = (sum_dya[w] - mean[w] * sdy) * rstd[b * W + w];
      const T gv = T(-0.5) * dy_xhat * rstd[b * W + w] * rg;
      grad_mean[b * W + w] = gm;
      coef[b * 2 * W + w] = gm - T(2) * mean[w] * gv;
      coef[b * 2 * W + W + w] = gv;
      dgamma[w] += dy_xhat;
      dbeta[w] += sdy;
    }
  }
  split(N, W * (d + 1), [&](int64_t begin, int64_t end) {
    norm_input_grad_rows(da, dy, buf, buf_stride, coef, rstd, gamma, nw, blocks.row_block.data(), d, N, F, k, begin,
                         end);
  });
}

// ---- forward ----------------------------------------------------------------------------------------

template <typename T>
void forward_impl(torch::Tensor acts, const torch::Tensor& w_hh, const torch::Tensor& bias,
                  const torch::Tensor& gamma_xh, const torch::Tensor& beta_xh, const torch::Tensor& gamma_c,
                  const torch::Tensor& beta_c, const torch::Tensor& weights_xh, const torch::Tensor& weights_c,
                  const Blocks& blocks, const torch::Tensor& mask, double eps, torch::Tensor out, torch::Tensor gates,
                  torch::Tensor cc, torch::Tensor tanh_cell, torch::Tensor xh_moments, torch::Tensor xh_var,
                  torch::Tensor xh_rstd, torch::Tensor c_moments, torch::Tensor c_var, torch::Tensor c_rstd) {
  const int64_t T_ = out.size(0), N = out.size(1), H = out.size(2), G = 4 * H;
  const bool norm = weights_xh.defined() && weights_xh.numel() > 0;
  const bool masked = mask.defined() && mask.numel() > 0;
  const int64_t d = norm ? static_cast<int64_t>(blocks.start.size()) : 1;
  const int64_t ccw = norm ? 2 * H : H;  // a row of cc: [c | c^2], or c
  const int64_t width = acts.size(2);  // 4G with normalisers ([a_x | a_h | their squares]), G without
  const int64_t steps_w = norm ? weights_xh.size(0) : 0;
  auto w_hh_t = w_hh.t();
  auto zeros = torch::zeros({N, H}, out.options());
  std::vector<T> z(static_cast<size_t>(N * G)), scale(static_cast<size_t>(d * 2 * G)), shift(static_cast<size_t>(d * 2 * G));
  std::vector<T> gate_shift(static_cast<size_t>(d * G)), c_scale(static_cast<size_t>(H)), c_shift(static_cast<size_t>(H));
  auto z_tensor = torch::from_blob(z.data(), {N, G}, out.options());
  const T* gxh = norm ? gamma_xh.data_ptr<T>() : nullptr;
  const T* bxh = norm ? beta_xh.data_ptr<T>() : nullptr;
  const T* gc = norm ? gamma_c.data_ptr<T>() : nullptr;
  const T* bc = norm ? beta_c.data_ptr<T>() : nullptr;
  const T* b = bias.data_ptr<T>();
  const bool* m = masked ? mask.data_ptr<bool>() : nullptr;
  T* ccp = cc.data_ptr<T>();
  std::fill(ccp, ccp + N * ccw, T(0));
  for (int64_t t = 0; t < T_; ++t) {
    T* at = acts.data_ptr<T>() + t * acts.stride(0);
    const T* cc_prev = ccp + t * N * ccw;
    T* cc_now = ccp + (t + 1) * N * ccw;
    T* s = gates.data_ptr<T>() + t * N * G;
    T* th = tanh_cell.data_ptr<T>() + t * N * H;
    T* ht = out.data_ptr<T>() + t * N * H;
    const torch::Tensor h = t == 0 ? zeros : out[t - 1];
    const T* hp = h.data_ptr<T>();
    const bool* mt = masked ? m + t * N : nullptr;
    if (norm) {
      // a_h = h W_h^T into columns [G, 2G); squares of both sides into [2G, 4G); moments of every domain
      auto ah = acts[t].narrow(1, G, G);
      at::mm_out(ah, h, w_hh_t);
      split(N, 2 * G, [&](int64_t begin, int64_t end) { squares_rows(at, width, G, begin, end); });
      auto mom = xh_moments[t];
      at::mm_out(mom, weights_xh[steps_w == 1 ? 0 : t], acts[t]);
      statistics(mom.data_ptr<T>(), xh_var.data_ptr<T>() + t * d * 2 * G, xh_rstd.data_ptr<T>() + t * d * 2 * G,
                 scale.data(), shift.data(), gxh, bxh, d, 2 * G, eps);
      for (int64_t bl = 0; bl < d; ++bl)  // beta_x + beta_h + bias, each domain's shift of the gates
        for (int64_t k = 0; k < G; ++k)
          gate_shift[bl * G + k] = shift[bl * 2 * G + k] + shift[bl * 2 * G + G + k] + b[k];
      split(N, 8 * G, [&](int64_t begin, int64_t end) {
        normalised_gates_rows(z.data(), at, width, scale.data(), gate_shift.data(), blocks.row_block.data(), G, begin,
                              end);
        gates_and_cell_rows(s, z.data(), cc_prev, cc_now, ccw, H, true, begin, end);
      });
      auto cmom = c_moments[t];
      at::mm_out(cmom, weights_c[steps_w == 1 ? 0 : t], cc[t + 1]);
      statistics(cmom.data_ptr<T>(), c_var.data_ptr<T>() + t * H, c_rstd.data_ptr<T>() + t * H, c_scale.data(),
                 c_shift.data(), gc, bc, 1, H, eps);
      split(N, 4 * H, [&](int64_t begin, int64_t end) {
        cell_output_rows(th, ht, cc_now, ccw, cc_prev, hp, s, c_scale.data(), c_shift.data(), mt, H, begin, end);
      });
    } else {
      at::addmm_out(z_tensor, acts[t], h, w_hh_t);  // acts holds W_x x_t + b
      split(N, 8 * G, [&](int64_t begin, int64_t end) {
        gates_and_cell_rows(s, z.data(), cc_prev, cc_now, ccw, H, false, begin, end);
        cell_output_rows(th, ht, cc_now, ccw, cc_prev, hp, s, static_cast<const T*>(nullptr),
                         static_cast<const T*>(nullptr), mt, H, begin, end);
      });
    }
  }
}

// ---- backward ---------------------------------------------------------------------------------------

template <typename T>
void backward_impl(const torch::Tensor& d_out, const torch::Tensor& acts, const torch::Tensor& w_hh,
                   const torch::Tensor& gamma_xh, const torch::Tensor& gamma_c, const torch::Tensor& weights_xh,
                   const torch::Tensor& weights_c, const Blocks& blocks, const torch::Tensor& mask,
                   const torch::Tensor& gates, const torch::Tensor& cc, const torch::Tensor& tanh_cell,
                   const torch::Tensor& xh_moments, const torch::Tensor& xh_rstd, const torch::Tensor& c_moments,
                   const torch::Tensor& c_rstd, torch::Tensor d_acts, torch::Tensor d_bias, torch::Tensor d_gamma_xh,
                   torch::Tensor d_beta_xh, torch::Tensor d_gamma_c, torch::Tensor d_beta_c, torch::Tensor coef_all,
                   torch::Tensor grad_mean_all) {
  const int64_t T_ = d_out.size(0), N = d_out.size(1), H = d_out.size(2), G = 4 * H;
  const bool norm = weights_xh.defined() && weights_xh.numel() > 0;
  const bool masked = mask.defined() && mask.numel() > 0;
  const int64_t d = norm ? static_cast<int64_t>(blocks.start.size()) : 1;
  const int64_t ccw = norm ? 2 * H : H;
  const int64_t width = acts.size(2);
  const int64_t steps_w = norm ? weights_xh.size(0) : 0;
  std::vector<T> dh(static_cast<size_t>(N * H), T(0)), dc(static_cast<size_t>(N * H), T(0));
  std::vector<T> dh_keep(static_cast<size_t>(N * H)), dc_keep(static_cast<size_t>(N * H));
  std::vector<T> dz(static_cast<size_t>(N * G)), du(static_cast<size_t>(N * H)), dcn(static_cast<size_t>(N * H));
  std::vector<T> sums, coef_c(static_cast<size_t>(2 * H)), grad_mean_c(static_cast<size_t>(H));
  const T* gxh = norm ? gamma_xh.data_ptr<T>() : nullptr;
  const T* gc = norm ? gamma_c.data_ptr<T>() : nullptr;
  T* db = d_bias.data_ptr<T>();
  T* dgxh = norm ? d_gamma_xh.data_ptr<T>() : nullptr;
  T* dbxh = norm ? d_beta_xh.data_ptr<T>() : nullptr;
  T* dgc = norm ? d_gamma_c.data_ptr<T>() : nullptr;
  T* dbc = norm ? d_beta_c.data_ptr<T>() : nullptr;
  const bool* m = masked ? mask.data_ptr<bool>() : nullptr;
  const T* ccp = cc.data_ptr<T>();
  const T* dout = d_out.data_ptr<T>();
  Blocks all_rows;  // the cell normaliser: one domain of every row
  all_rows.start.push_back(0);
  all_rows.stop.push_back(N);
  all_rows.row_block.assign(static_cast<size_t>(N), 0);
  auto dh_tensor = torch::from_blob(dh.data(), {N, H}, d_out.options());
  for (int64_t t = T_ - 1; t >= 0; --t) {
    const T* s = gates.data_ptr<T>() + t * N * G;
    const T* th = tanh_cell.data_ptr<T>() + t * N * H;
    const T* cc_prev = ccp + t * N * ccw;
    const T* cc_now = ccp + (t + 1) * N * ccw;
    const bool* mt = masked ? m + t * N : nullptr;
    split(N, 4 * H, [&](int64_t begin, int64_t end) {
      output_grad_rows(dh.data(), dh_keep.data(), dout + t * N * H, mt, s, th, dz.data(), du.data(), H, begin, end);
    });
    const T* dc_from_u = du.data();
    if (norm) {  // u = BN(c): back through the cell normaliser (one domain, every unpadded row)
      const T* wc = weights_c.data_ptr<T>() + (steps_w == 1 ? 0 : t) * N;
      norm_backward(du.data(), cc_now, ccw, c_moments.data_ptr<T>() + t * 2 * H, c_rstd.data_ptr<T>() + t * H, gc, wc,
                    all_rows, N, H, 1, coef_c.data(), grad_mean_c.data(), dcn.data(), dgc, dbc, sums);
      dc_from_u = dcn.data();
    }
    split(N, 6 * H, [&](int64_t begin, int64_t end) {
      gate_grad_rows(dc.data(), dc_keep.data(), dc_from_u, mt, s, cc_prev, ccw, dz.data(), H, begin, end);
    });
    split(G, N, [&](int64_t begin, int64_t end) { column_sums(db, dz.data(), G, 0, N, begin, end); });
    T* dat = d_acts.data_ptr<T>() + t * d_acts.stride(0);
    if (norm) {  // back through the input- and hidden-side normaliser: one gradient dz for both sides
      const T* nw = weights_xh.data_ptr<T>() + (steps_w == 1 ? 0 : t) * weights_xh.stride(0);
      norm_backward(dz.data(), acts.data_ptr<T>() + t * acts.stride(0), width,
                    xh_moments.data_ptr<T>() + t * xh_moments.stride(0), xh_rstd.data_ptr<T>() + t * d * 2 * G, gxh, nw,
                    blocks, N, G, 2, coef_all.data_ptr<T>() + t * d * 4 * G, grad_mean_all.data_ptr<T>() + t * d * 2 * G,
                    dat, dgxh, dbxh, sums);
      at::mm_out(dh_tensor, d_acts[t].narrow(1, G, G), w_hh);
    } else {
      std::copy(dz.begin(), dz.end(), dat);
      at::mm_out(dh_tensor, d_acts[t], w_hh);
    }
    split(N, 3 * H, [&](int64_t begin, int64_t end) {
      carry_rows(dh.data(), dc.data(), dh_keep.data(), dc_keep.data(), s, masked, H, begin, end);
    });
  }
}

// ---- evaluation ---------------------------------------------------------------------------------------

// Evaluation mode, no graph: the normalisers are fixed affine maps per timestep (population statistics),
// each table (T, R, F) with R = 1 (every row alike) or N (a row's own domain); only the state is kept.
template <typename T>
MULTIVERSIONED void evaluate_rows(T* h_new, T* c, const T* h_prev, const T* a_x, const T* a_h, const T* sx,
                                  const T* sh, const T* fg, const T* sc, const T* fc, bool gates_per_row,
                                  bool cell_per_row, const bool* mask, int64_t H, int64_t begin, int64_t end, T* z) {
  const int64_t G = 4 * H;
  for (int64_t j = begin; j < end; ++j) {
    const int64_t r = gates_per_row ? j : 0;
    const int64_t rc = cell_per_row ? j : 0;
    const T* ax = a_x + j * G;
    const T* ah = a_h + j * G;
    T* zj = z + j * G;
    if (sx != nullptr) {
      const T* sxj = sx + r * G;
      const T* shj = sh + r * G;
      const T* fgj = fg + r * G;
      for (int64_t k = 0; k < G; ++k) zj[k] = ax[k] * sxj[k] + ah[k] * shj[k] + fgj[k];
    } else {
      for (int64_t k = 0; k < G; ++k) zj[k] = ax[k] + ah[k];
    }
    for (int64_t k = 0; k < 3 * H; ++k) zj[k] = sigmoid(zj[k]);
    for (int64_t k = 3 * H; k < G; ++k) zj[k] = tanh_of(zj[k]);
    T* cj = c + j * H;
    T* hj = h_new + j * H;
    const bool keep = mask == nullptr || mask[j];
    for (int64_t k = 0; k < H; ++k) {
      const T cn = zj[k] * cj[k] + zj[H + k] * zj[3 * H + k];
      const T u = sc != nullptr ? cn * sc[rc * H + k] + fc[rc * H + k] : cn;
      const T hn = zj[2 * H + k] * tanh_of(u);
      hj[k] = keep ? hn : h_prev[j * H + k];
      cj[k] = keep ? cn : cj[k];
    }
  }
}

template <typename T>
void evaluate_impl(const torch::Tensor& acts, const torch::Tensor& w_hh, const torch::Tensor& scale_x,
                   const torch::Tensor& scale_h, const torch::Tensor& shift_gates, const torch::Tensor& scale_c,
                   const torch::Tensor& shift_c, const torch::Tensor& mask, torch::Tensor out) {
  const int64_t T_ = out.size(0), N = out.size(1), H = out.size(2), G = 4 * H;
  const bool norm = scale_x.defined() && scale_x.numel() > 0;
  const bool masked = mask.defined() && mask.numel() > 0;
  // a table of N rows holds each row's own domain (per-row domain ids); of one row, every row's
  const int64_t gate_rows = norm ? scale_x.size(1) : 0, cell_rows = norm ? scale_c.size(1) : 0;
  auto w_hh_t = w_hh.t();
  auto zeros = torch::zeros({N, H}, out.options());
  auto a_h = torch::empty({N, G}, out.options());
  std::vector<T> c(static_cast<size_t>(N * H), T(0)), z(static_cast<size_t>(N * G));
  for (int64_t t = 0; t < T_; ++t) {
    const torch::Tensor h = t == 0 ? zeros : out[t - 1];
    at::mm_out(a_h, h, w_hh_t);
    const T* sx = norm ? scale_x.data_ptr<T>() + t * gate_rows * G : nullptr;
    const T* sh = norm ? scale_h.data_ptr<T>() + t * gate_rows * G : nullptr;
    const T* fg = norm ? shift_gates.data_ptr<T>() + t * gate_rows * G : nullptr;
    const T* sc = norm ? scale_c.data_ptr<T>() + t * cell_rows * H : nullptr;
    const T* fc = norm ? shift_c.data_ptr<T>() + t * cell_rows * H : nullptr;
    const bool* mt = masked ? mask.data_ptr<bool>() + t * N : nullptr;
    T* ht = out.data_ptr<T>() + t * N * H;
    const T* hp = h.data_ptr<T>();
    const T* ax = acts.data_ptr<T>() + t * N * G;
    const T* ahp = a_h.data_ptr<T>();
    split(N, 8 * G, [&](int64_t begin, int64_t end) {
      evaluate_rows(ht, c.data(), hp, ax, ahp, sx, sh, fg, sc, fc, gate_rows > 1, cell_rows > 1, mt, H, begin, end,
                    z.data());
    });
  }
}

void evaluate_loop(torch::Tensor acts, torch::Tensor w_hh, torch::Tensor scale_x, torch::Tensor scale_h,
                   torch::Tensor shift_gates, torch::Tensor scale_c, torch::Tensor shift_c, torch::Tensor mask,
                   torch::Tensor out) {
  torch::NoGradGuard no_grad;
  AT_DISPATCH_FLOATING_TYPES(out.scalar_type(), "evaluate_loop", [&] {
    evaluate_impl<scalar_t>(acts, w_hh, scale_x, scale_h, shift_gates, scale_c, shift_c, mask, out);
  });
}

void forward_loop(torch::Tensor acts, torch::Tensor w_hh, torch::Tensor bias, torch::Tensor gamma_xh,
                  torch::Tensor beta_xh, torch::Tensor gamma_c, torch::Tensor beta_c, torch::Tensor weights_xh,
                  torch::Tensor weights_c, torch::Tensor blocks, torch::Tensor mask, double eps, torch::Tensor out,
                  torch::Tensor gates, torch::Tensor cc, torch::Tensor tanh_cell, torch::Tensor xh_moments,
                  torch::Tensor xh_var, torch::Tensor xh_rstd, torch::Tensor c_moments, torch::Tensor c_var,
                  torch::Tensor c_rstd) {
  torch::NoGradGuard no_grad;
  Blocks bl = read_blocks(blocks, out.size(1));
  AT_DISPATCH_FLOATING_TYPES(out.scalar_type(), "forward_loop", [&] {
    forward_impl<scalar_t>(acts, w_hh, bias, gamma_xh, beta_xh, gamma_c, beta_c, weights_xh, weights_c, bl, mask, eps,
                           out, gates, cc, tanh_cell, xh_moments, xh_var, xh_rstd, c_moments, c_var, c_rstd);
  });
}

void backward_loop(torch::Tensor d_out, torch::Tensor acts, torch::Tensor w_hh, torch::Tensor gamma_xh,
                   torch::Tensor gamma_c, torch::Tensor weights_xh, torch::Tensor weights_c, torch::Tensor blocks,
                   torch::Tensor mask, torch::Tensor gates, torch::Tensor cc, torch::Tensor tanh_cell,
                   torch::Tensor xh_moments, torch::Tensor xh_rstd, torch::Tensor c_moments, torch::Tensor c_rstd,
                   torch::Tensor d_acts, torch::Tensor d_bias, torch::Tensor d_gamma_xh, torch::Tensor d_beta_xh,
                   torch::Tensor d_gamma_c, torch::Tensor d_beta_c, torch::Tensor coef_all, torch::Tensor grad_mean_all) {
  torch::NoGradGuard no_grad;
  Blocks bl = read_blocks(blocks, d_out.size(1));
  AT_DISPATCH_FLOATING_TYPES(d_out.scalar_type(), "backward_loop", [&] {
    backward_impl<scalar_t>(d_out, acts, w_hh, gamma_xh, gamma_c, weights_xh, weights_c, bl, mask, gates, cc,
                            tanh_cell, xh_moments, xh_rstd, c_moments, c_rstd, d_acts, d_bias, d_gamma_xh, d_beta_xh,
                            d_gamma_c, d_beta_c, coef_all, grad_mean_all);
  });
}

}  // namespace

PYBIND11_MODULE(TORCH_EXTENSION_NAME, m) {
  m.def("forward_loop", &forward_loop, "one layer's forward through time (CPU)");
  m.def("backward_loop", &backward_loop, "one layer's backward through time (CPU)");
  m.def("evaluate_loop", &evaluate_loop, "one layer's forward in evaluation mode, no graph (CPU)");
}
