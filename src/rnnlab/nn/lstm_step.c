/* One LSTM step's pointwise work in one pass -- the same equations as rnnlab/nn/lstm.py, which
 * stays the reference (see rnnlab/nn/fused.py for why and how this file is built and used).
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
