/* One LSTM step's pointwise work in one pass -- the same equations as rnnlab/nn/lstm.py, which
 * stays the reference (see rnnlab/nn/fused.py for why and how this file is built and used); and
 * the same for the GRU (rnnlab/nn/gru.py), at the end of the file.
 *
 * Layouts (row-major float32, torch's gate order i, f, g, o):
 *
 *     gates, act, dg   (B, 4H)   row b: [ i_0..i_{H-1} | f ... | g ... | o ... ]
 *     c, h, tanh_c ... (B, H)
 *     keep             (B,) bytes or NULL: 0 where the step is padding (state carried through)
 *
 * With RNNLAB_VECTOR_EXP, expf is declared with its SIMD variant (glibc's libmvec), so that the
 * compiler vectorises the loops below without -ffast-math (which would drop inf/NaN semantics).
 */
#include <math.h>
#include <stdint.h>
#include <string.h>

#ifdef RNNLAB_VECTOR_EXP
__attribute__((__simd__("notinbranch"))) float expf(float);
#endif

static inline float sigmoid(float x) { return 1.0f / (1.0f + expf(-x)); }
static inline float tanh_(float x) { return 2.0f / (1.0f + expf(-2.0f * x)) - 1.0f; }

/* Forward, in place on ``gates``: it holds the pre-activations (W_ih x_t + b + W_hh h_{t-1}) and
 * leaves with the activations i, f, g, o (what backward reads):
 *           i, f, o = sigmoid(pre_i, pre_f, pre_o);  g = tanh(pre_g)
 *           c = f * c_prev + i * g;   h = o * tanh(c)                                            */
void lstm_forward_step(float *gates, const float *restrict c_prev, const float *restrict h_prev,
                       const uint8_t *restrict keep, float *restrict c, float *restrict h,
                       float *restrict tanh_c, int64_t B, int64_t H) {
    for (int64_t b = 0; b < B; b++) {
        float *a = gates + b * 4 * H;
        const float *restrict cp = c_prev + b * H;
        float *restrict cb = c + b * H, *restrict hb = h + b * H, *restrict tb = tanh_c + b * H;
        for (int64_t j = 0; j < H; j++) {
            float i = sigmoid(a[j]), f = sigmoid(a[H + j]), g = tanh_(a[2 * H + j]), o = sigmoid(a[3 * H + j]);
            a[j] = i;
            a[H + j] = f;
            a[2 * H + j] = g;
            a[3 * H + j] = o;
            float cc = f * cp[j] + i * g;
            float t = tanh_(cc);
            cb[j] = cc;
            tb[j] = t;
            hb[j] = o * t;
        }
        if (keep && !keep[b]) { /* padding: the state passes through unchanged */
            memcpy(cb, cp, (size_t)H * sizeof(float));
            memcpy(hb, h_prev + b * H, (size_t)H * sizeof(float));
        }
    }
}

/* Backward, given dL/dh_t (dh) and dL/dc_t from step t+1 (dc):
 *     dc_t    = dc + dh * o * (1 - tanh(c_t)^2)
 *     d pre_i = dc_t * g * i(1-i)        d pre_f = dc_t * c_{t-1} * f(1-f)
 *     d pre_g = dc_t * i * (1-g^2)       d pre_o = dh * tanh(c_t) * o(1-o)
 *     dL/dc_{t-1} = dc_t * f             (dL/dh_{t-1} = d pre @ W_hh: a matmul, done by torch)
 * A padded step: no gate gradient, and dL/dc passes through unchanged.                          */
void lstm_backward_step(const float *restrict act, const float *restrict c_prev, const float *restrict tanh_c,
                        const float *restrict dh, const float *restrict dc, const uint8_t *restrict keep,
                        float *restrict dg, float *restrict dc_prev, int64_t B, int64_t H) {
    for (int64_t b = 0; b < B; b++) {
        float *restrict d = dg + b * 4 * H;
        const float *restrict dcb = dc + b * H;
        float *restrict dcp = dc_prev + b * H;
        if (keep && !keep[b]) {
            memset(d, 0, (size_t)(4 * H) * sizeof(float));
            memcpy(dcp, dcb, (size_t)H * sizeof(float));
            continue;
        }
        const float *restrict a = act + b * 4 * H;
        const float *restrict cp = c_prev + b * H, *restrict tb = tanh_c + b * H, *restrict dhb = dh + b * H;
        for (int64_t j = 0; j < H; j++) {
            float i = a[j], f = a[H + j], g = a[2 * H + j], o = a[3 * H + j], t = tb[j];
            float dct = dcb[j] + dhb[j] * o * (1.0f - t * t);
            d[j] = dct * g * i * (1.0f - i);
            d[H + j] = dct * cp[j] * f * (1.0f - f);
            d[2 * H + j] = dct * i * (1.0f - g * g);
            d[3 * H + j] = dhb[j] * t * o * (1.0f - o);
            dcp[j] = dct * f;
        }
    }
}

/* The GRU step (rnnlab/nn/gru.py is the reference), torch's gate order r, z, n. Forward, given the
 * input projections xg = W_ih x_t + b_ih and hg = W_hh h_{t-1} + b_hh (each (B, 3H)):
 *           r, z = sigmoid(xg_r + hg_r, xg_z + hg_z);   n = tanh(xg_n + r * hg_n)
 *           h = (1 - z) * n + z * h_prev                (a padded step: h = h_prev)
 * into act (B, 3H: r, z, n), hn (B, H: hg_n, which r's gradient reads) and h (B, H).             */
void gru_forward_step(const float *restrict xg, const float *restrict hg, const float *restrict h_prev,
                      const uint8_t *restrict keep, float *restrict act, float *restrict hn, float *restrict h,
                      int64_t B, int64_t H) {
    for (int64_t b = 0; b < B; b++) {
        const float *restrict x = xg + b * 3 * H, *restrict g = hg + b * 3 * H, *restrict hp = h_prev + b * H;
        float *restrict a = act + b * 3 * H, *restrict hnb = hn + b * H, *restrict hb = h + b * H;
        for (int64_t j = 0; j < H; j++) {
            float r = sigmoid(x[j] + g[j]), z = sigmoid(x[H + j] + g[H + j]);
            float n = tanh_(x[2 * H + j] + r * g[2 * H + j]);
            a[j] = r;
            a[H + j] = z;
            a[2 * H + j] = n;
            hnb[j] = g[2 * H + j];
            hb[j] = n + z * (hp[j] - n);
        }
        if (keep && !keep[b]) /* padding: the state passes through unchanged */
            memcpy(hb, hp, (size_t)H * sizeof(float));
    }
}

/* Backward, given dL/dh_t (dh, the output's share included):
 *     d pre_n = dh * (1-z) * (1-n^2)                 (pre_n = xg_n + r * hg_n)
 *     d hg_r  = d pre_n * hg_n * r(1-r)    d hg_z = dh * (h_prev - n) * z(1-z)    d hg_n = d pre_n * r
 * into dhg (B, 3H: dL/d(W_hh h + b_hh); r and z see x alike) and dpn (B, H), and the direct path
 * dL/dh_{t-1} = dh * z into dh_direct (the path through W_hh is a matmul, done by torch).
 * A padded step: no gate gradient, and dL/dh passes through unchanged.                          */
void gru_backward_step(const float *restrict act, const float *restrict hn, const float *restrict h_prev,
                       const float *restrict dh, const uint8_t *restrict keep, float *restrict dhg,
                       float *restrict dpn, float *restrict dh_direct, int64_t B, int64_t H) {
    for (int64_t b = 0; b < B; b++) {
        float *restrict d = dhg + b * 3 * H, *restrict dn_b = dpn + b * H, *restrict dd = dh_direct + b * H;
        const float *restrict dhb = dh + b * H;
        if (keep && !keep[b]) {
            memset(d, 0, (size_t)(3 * H) * sizeof(float));
            memset(dn_b, 0, (size_t)H * sizeof(float));
            memcpy(dd, dhb, (size_t)H * sizeof(float));
            continue;
        }
        const float *restrict a = act + b * 3 * H, *restrict hnb = hn + b * H, *restrict hp = h_prev + b * H;
        for (int64_t j = 0; j < H; j++) {
            float r = a[j], z = a[H + j], n = a[2 * H + j], g = dhb[j];
            float dn = g * (1.0f - z) * (1.0f - n * n);
            dn_b[j] = dn;
            d[j] = dn * hnb[j] * r * (1.0f - r);
            d[H + j] = g * (hp[j] - n) * z * (1.0f - z);
            d[2 * H + j] = dn * r;
            dd[j] = g * z;
        }
    }
}
