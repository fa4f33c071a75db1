#pragma once
// The per-row numbers of the logit lens (docs/inside-the-loop.md) in one pass over a row of
// logits: top-1, its probability, log-sum-exp, entropy, and the KL divergences to a
// reference row and from the previous loop's row, written so that no large terms cancel.
#include <cstdint>

namespace mythos::detail {

struct LensRow {
    int32_t top = 0;
    float pTop = 0;
    double lse = 0;
    double entropy = 0;
    double klRef = 0;  // KL(P_ref || P), when ref is given
    double klPrev = 0; // KL(P || P_prev), when prev is given
};

// z: logits [V]. refP, refZ: the reference distribution's probabilities and logits with its
// log-sum-exp refLse (null: no klRef). prevZ, prevLse: the previous row (null: no klPrev).
// Uses: lse = m + log s (s = sum e_i, e_i = exp(z_i - m)); entropy = log s + sum e_i (m - z_i) / s;
// KL(ref || P) = sum pr_i (zr_i - z_i) - lse_r + lse; KL(P || prev) = sum e_i (z_i - zp_i) / s
// - lse + lse_prev. AVX-512 where the CPU has it (sums in float lanes, then double), else
// scalar double sums.
LensRow lensRow(const float* z, int64_t V, const float* refP, const float* refZ, double refLse, const float* prevZ,
                double prevLse);

} // namespace mythos::detail
