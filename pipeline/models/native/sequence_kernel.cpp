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

#include <torch/extension.h>

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <cstring>
#include <vector>

namespace {

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

// An AVX2 (and FMA) copy of the hot functions beside the baseline one, picked at load time by the CPU:
// 8-wide vector loops where the CPU has them, and the same build runs on any x86-64.
#if defined(__x86_64__) && defined(__GNUC__) && !defined(__clang__)
#define MULTIVERSIONED __attribute__((target_clones("arch=haswell", "default")))
#else
#define MULTIVERSIONED
#endif

// Gates of one step: z (N, G) -> s with sigmoid(f, i, o) and tanh(g); c = f c_prev + i g.
template <typename T>
MULTIVERSIONED void gates_and_cell(T* s, const T* z, const T* c_prev, T* c, int64_t rows, int64_t H) {
  const int64_t G = 4 * H;
  for (int64_t j = 0; j < rows; ++j) {
    T* sj = s + j * G;
    const T* zj = z + j * G;
    for (int64_t k = 0; k < 3 * H; ++k) sj[k] = sigmoid(zj[k]);
    for (int64_t k = 3 * H; k < G; ++k) sj[k] = tanh_of(zj[k]);
    const T* cp = c_prev + j * H;
    T* cj = c + j * H;
    for (int64_t k = 0; k < H; ++k) cj[k] = sj[k] * cp[k] + sj[H + k] * sj[3 * H + k];
  }
}

// tanh of the (affine-normalised) cell and the output: u = c * scale + shift (per column, or the
// identity without a normaliser), th = tanh(u), h = o * th.
template <typename T>
MULTIVERSIONED void cell_output(T* th, T* h, const T* c, const T* s, const T* scale, const T* shift, int64_t rows,
                                int64_t H) {
  const int64_t G = 4 * H;
  for (int64_t j = 0; j < rows; ++j) {
    const T* cj = c + j * H;
    T* tj = th + j * H;
    T* hj = h + j * H;
    const T* oj = s + j * G + 2 * H;
    if (scale != nullptr) {
      for (int64_t k = 0; k < H; ++k) tj[k] = tanh_of(cj[k] * scale[k] + shift[k]);
    } else {
      for (int64_t k = 0; k < H; ++k) tj[k] = tanh_of(cj[k]);
    }
    for (int64_t k = 0; k < H; ++k) hj[k] = oj[k] * tj[k];
  }
}

// ---- normalisers ------------------------------------------------------------------------------------

struct Blocks {
  std::vector<int64_t> start, stop;  // rows of each present domain
  int64_t domain_of(int64_t row) const {
    for (size_t b = 0; b < start.size(); ++b)
      if (row >= start[b] && row < stop[b]) return static_cast<int64_t>(b);
    return -1;
  }
};

// From the step's moments [E a | E a^2] (rows 0..d-1) of width 2W: var, rstd, and the affine map
// y = a * scale + shift of each domain (d, W).
template <typename T>
MULTIVERSIONED void statistics(const T* moments, T* var, T* rstd, T* scale, T* shift, const T* gamma, const T* beta, int64_t d,
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

// Backward of the normaliser for one step. dy (N, F) is the gradient of every one of its k sides
// (W = k F columns of a = buf[:, :W]); nw (d, N) the normalised weights of the step; coef (d, 2W) and
// grad_mean (d, W) receive [dL/dmean - 2 mean dL/dvar | dL/dvar] and dL/dmean; da (N, W) the
// gradient of a; dgamma, dbeta (W) accumulate the affine gradients.
template <typename T>
MULTIVERSIONED void norm_backward(const T* dy, const T* buf, int64_t buf_stride, const T* moments, const T* rstd, const T* gamma,
                   const T* nw, const Blocks& blocks, int64_t N, int64_t F, int64_t k, T* coef, T* grad_mean, T* da,
                   T* dgamma, T* dbeta, std::vector<T>& sums) {
  const int64_t d = static_cast<int64_t>(blocks.start.size());
  const int64_t W = k * F;
  // per domain: sum of dy and of dy * a over its rows
  sums.assign(static_cast<size_t>(d * (F + W)), T(0));
  for (int64_t b = 0; b < d; ++b) {
    T* sum_dy = sums.data() + b * (F + W);
    T* sum_dya = sum_dy + F;
    for (int64_t j = blocks.start[b]; j < blocks.stop[b]; ++j) {
      const T* dyj = dy + j * F;
      const T* aj = buf + j * buf_stride;
      for (int64_t q = 0; q < F; ++q) sum_dy[q] += dyj[q];
      for (int64_t side = 0; side < k; ++side)
        for (int64_t q = 0; q < F; ++q) sum_dya[side * F + q] += dyj[q] * aj[side * F + q];
    }
    const T* mean = moments + b * 2 * W;
    for (int64_t w = 0; w < W; ++w) {
      T rg = rstd[b * W + w] * gamma[w];
      T sdy = sum_dy[w % F];
      T gm = -rg * sdy;
      T dy_xhat = (sum_dya[w] - mean[w] * sdy) * rstd[b * W + w];
      T gv = T(-0.5) * dy_xhat * rstd[b * W + w] * rg;
      grad_mean[b * W + w] = gm;
      coef[b * 2 * W + w] = gm - T(2) * mean[w] * gv;
      coef[b * 2 * W + W + w] = gv;
      dgamma[w] += dy_xhat;
      dbeta[w] += sdy;
    }
  }
  // da_j = sum_i nw_ij coef_const_i + 2 a_j sum_i nw_ij grad_var_i + dy_j rstd_b gamma (b: j's domain)
  for (int64_t j = 0; j < N; ++j) {
    T* daj = da + j * W;
    const T* aj = buf + j * buf_stride;
    for (int64_t w = 0; w < W; ++w) daj[w] = T(0);
    for (int64_t i = 0; i < d; ++i) {
      T weight = nw[i * N + j];
      if (weight == T(0)) continue;
      const T* cc = coef + i * 2 * W;
      for (int64_t w = 0; w < W; ++w) daj[w] += weight * (cc[w] + T(2) * aj[w] * cc[W + w]);
    }
    int64_t b = blocks.domain_of(j);
    if (b < 0) continue;
    const T* dyj = dy + j * F;
    for (int64_t side = 0; side < k; ++side)
      for (int64_t q = 0; q < F; ++q) daj[side * F + q] += dyj[q] * rstd[b * W + side * F + q] * gamma[side * F + q];
  }
}

Blocks read_blocks(const torch::Tensor& blocks) {
  Blocks out;
  auto b = blocks.accessor<int64_t, 2>();
  for (int64_t i = 0; i < blocks.size(0); ++i) {
    out.start.push_back(b[i][0]);
    out.stop.push_back(b[i][1]);
  }
  return out;
}

// ---- forward ----------------------------------------------------------------------------------------

template <typename T>
MULTIVERSIONED void forward_impl(torch::Tensor acts, const torch::Tensor& w_hh, const torch::Tensor& bias, const torch::Tensor& gamma_xh,
                  const torch::Tensor& beta_xh, const torch::Tensor& gamma_c, const torch::Tensor& beta_c,
                  const torch::Tensor& weights_xh, const torch::Tensor& weights_c, const Blocks& blocks,
                  const torch::Tensor& mask, double eps, torch::Tensor out, torch::Tensor gates, torch::Tensor cc,
                  torch::Tensor tanh_cell, torch::Tensor xh_moments, torch::Tensor xh_var, torch::Tensor xh_rstd,
                  torch::Tensor c_moments, torch::Tensor c_var, torch::Tensor c_rstd) {
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
  std::vector<T> c_scale(static_cast<size_t>(H)), c_shift(static_cast<size_t>(H));
  std::vector<T> c_prev(static_cast<size_t>(N * H)), c_new(static_cast<size_t>(N * H));
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
    if (norm) {
      // a_h = h W_h^T into columns [G, 2G); squares of both sides into [2G, 4G)
      auto ah = acts[t].narrow(1, G, G);
      at::mm_out(ah, h, w_hh_t);
      for (int64_t j = 0; j < N; ++j) {
        T* row = at + j * width;
        for (int64_t k = 0; k < 2 * G; ++k) row[2 * G + k] = row[k] * row[k];
      }
      auto mom = xh_moments[t];
      at::mm_out(mom, weights_xh[steps_w == 1 ? 0 : t], acts[t]);
      statistics(mom.data_ptr<T>(), xh_var.data_ptr<T>() + t * d * 2 * G, xh_rstd.data_ptr<T>() + t * d * 2 * G,
                 scale.data(), shift.data(), gxh, bxh, d, 2 * G, eps);
      for (int64_t bl = 0; bl < d; ++bl) {
        const T* sx = scale.data() + bl * 2 * G;
        const T* sh = sx + G;
        const T* fx = shift.data() + bl * 2 * G;
        const T* fh = fx + G;
        for (int64_t j = blocks.start[bl]; j < blocks.stop[bl]; ++j) {
          const T* row = at + j * width;
          T* zj = z.data() + j * G;
          for (int64_t k = 0; k < G; ++k) zj[k] = row[k] * sx[k] + row[G + k] * sh[k] + fx[k] + fh[k] + b[k];
        }
      }
      for (int64_t j = 0; j < N; ++j)
        for (int64_t k = 0; k < H; ++k) c_prev[j * H + k] = cc_prev[j * ccw + k];
      gates_and_cell(s, z.data(), c_prev.data(), c_new.data(), N, H);
      for (int64_t j = 0; j < N; ++j)
        for (int64_t k = 0; k < H; ++k) {
          T v = c_new[j * H + k];
          cc_now[j * ccw + k] = v;
          cc_now[j * ccw + H + k] = v * v;
        }
      auto cmom = c_moments[t];
      at::mm_out(cmom, weights_c[steps_w == 1 ? 0 : t], cc[t + 1]);
      statistics(cmom.data_ptr<T>(), c_var.data_ptr<T>() + t * H, c_rstd.data_ptr<T>() + t * H, c_scale.data(),
                 c_shift.data(), gc, bc, 1, H, eps);
      cell_output(th, ht, c_new.data(), s, c_scale.data(), c_shift.data(), N, H);
    } else {
      at::addmm_out(z_tensor, acts[t], h, w_hh_t);  // acts holds W_x x_t + b
      gates_and_cell(s, z.data(), cc_prev, cc_now, N, H);
      cell_output(th, ht, cc_now, s, static_cast<const T*>(nullptr), static_cast<const T*>(nullptr), N, H);
    }
    if (masked) {  // padded rows carry the state through unchanged
      const bool* mt = m + t * N;
      for (int64_t j = 0; j < N; ++j) {
        if (mt[j]) continue;
        std::memcpy(ht + j * H, hp + j * H, sizeof(T) * H);
        std::memcpy(cc_now + j * ccw, cc_prev + j * ccw, sizeof(T) * ccw);
      }
    }
  }
}

// ---- backward ---------------------------------------------------------------------------------------

template <typename T>
MULTIVERSIONED void backward_impl(const torch::Tensor& d_out, const torch::Tensor& acts, const torch::Tensor& w_hh,
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
  std::vector<T> dz(static_cast<size_t>(N * G)), dcn(static_cast<size_t>(N * H)), dcn_out(static_cast<size_t>(N * H));
  std::vector<T> sums, coef_c(static_cast<size_t>(2 * H)), grad_mean_c(static_cast<size_t>(H));
  std::vector<T> c_now(static_cast<size_t>(N * H)), onesw(static_cast<size_t>(N));
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
  Blocks all_rows;
  all_rows.start.push_back(0);
  all_rows.stop.push_back(N);
  auto dh_tensor = torch::from_blob(dh.data(), {N, H}, d_out.options());
  for (int64_t t = T_ - 1; t >= 0; --t) {
    const T* s = gates.data_ptr<T>() + t * N * G;
    const T* th = tanh_cell.data_ptr<T>() + t * N * H;
    const T* c_prev_rows = ccp + t * N * ccw;
    const T* c_rows = ccp + (t + 1) * N * ccw;
    const bool* mt = masked ? m + t * N : nullptr;
    const T* dot = dout + t * N * H;
    for (int64_t q = 0; q < N * H; ++q) dh[q] += dot[q];
    if (masked) {
      for (int64_t j = 0; j < N; ++j)
        for (int64_t k = 0; k < H; ++k) {
          int64_t q = j * H + k;
          dh_keep[q] = mt[j] ? T(0) : dh[q];
          dh[q] = mt[j] ? dh[q] : T(0);
        }
    }
    // through h = o tanh(u): d o and d u
    for (int64_t j = 0; j < N; ++j)
      for (int64_t k = 0; k < H; ++k) {
        int64_t q = j * H + k;
        T o = s[j * G + 2 * H + k];
        T tc = th[q];
        dz[j * G + 2 * H + k] = dh[q] * tc * o * (T(1) - o);  // o's pre-activation
        dcn[q] = dh[q] * o * (T(1) - tc * tc);
      }
    if (norm) {  // u = BN(c): back through the cell normaliser (one domain, every unpadded row)
      for (int64_t j = 0; j < N; ++j)
        for (int64_t k = 0; k < H; ++k) c_now[j * H + k] = c_rows[j * ccw + k];
      const T* wc = weights_c.data_ptr<T>() + (steps_w == 1 ? 0 : t) * N;
      norm_backward(dcn.data(), c_now.data(), H, c_moments.data_ptr<T>() + t * 2 * H, c_rstd.data_ptr<T>() + t * H, gc,
                    wc, all_rows, N, H, 1, coef_c.data(), grad_mean_c.data(), dcn_out.data(), dgc, dbc, sums);
      for (int64_t q = 0; q < N * H; ++q) dc[q] += dcn_out[q];
    } else {
      for (int64_t q = 0; q < N * H; ++q) dc[q] += dcn[q];
    }
    if (masked) {
      for (int64_t j = 0; j < N; ++j)
        for (int64_t k = 0; k < H; ++k) {
          int64_t q = j * H + k;
          dc_keep[q] = mt[j] ? T(0) : dc[q];
          dc[q] = mt[j] ? dc[q] : T(0);
        }
    }
    // the gates' pre-activations
    for (int64_t j = 0; j < N; ++j)
      for (int64_t k = 0; k < H; ++k) {
        int64_t q = j * H + k;
        const T* sj = s + j * G;
        T f = sj[k], i = sj[H + k], g = sj[3 * H + k];
        T cp = c_prev_rows[j * ccw + k];
        dz[j * G + k] = dc[q] * cp * f * (T(1) - f);
        dz[j * G + H + k] = dc[q] * g * i * (T(1) - i);
        dz[j * G + 3 * H + k] = dc[q] * i * (T(1) - g * g);
      }
    for (int64_t j = 0; j < N; ++j)
      for (int64_t k = 0; k < G; ++k) db[k] += dz[j * G + k];
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
    for (int64_t j = 0; j < N; ++j)
      for (int64_t k = 0; k < H; ++k) dc[j * H + k] *= s[j * G + k];  // through c = f c_prev + ...
    if (masked) {
      for (int64_t q = 0; q < N * H; ++q) {
        dh[q] += dh_keep[q];
        dc[q] += dc_keep[q];
      }
    }
  }
}

void forward_loop(torch::Tensor acts, torch::Tensor w_hh, torch::Tensor bias, torch::Tensor gamma_xh,
                  torch::Tensor beta_xh, torch::Tensor gamma_c, torch::Tensor beta_c, torch::Tensor weights_xh,
                  torch::Tensor weights_c, torch::Tensor blocks, torch::Tensor mask, double eps, torch::Tensor out,
                  torch::Tensor gates, torch::Tensor cc, torch::Tensor tanh_cell, torch::Tensor xh_moments,
                  torch::Tensor xh_var, torch::Tensor xh_rstd, torch::Tensor c_moments, torch::Tensor c_var,
                  torch::Tensor c_rstd) {
  torch::NoGradGuard no_grad;
  Blocks bl = read_blocks(blocks);
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
  Blocks bl = read_blocks(blocks);
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
}
