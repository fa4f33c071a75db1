// The element-wise, attention and direct matmul kernels against plain double-precision
// loops, on the AVX-512 path and on the portable one.
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <random>
#include <vector>

#include "halfprecision.h"
#include "mythos/runtime.h"
#include "ops.h"
#include "ops_kernels.h"
#include "testutil.h"

namespace {

// Restores the AVX-512 kernels when a test that forced the portable ones ends.
class KernelPath : public ::testing::TestWithParam<bool> {
protected:
    void SetUp() override { mythos::usePortableSmallKernels(GetParam()); }
    void TearDown() override { mythos::usePortableSmallKernels(false); }
};

struct HeadCase {
    int64_t T, S, d1, d2, dv;
};

// softmax(scale * q k^T, causal) v for one head, in double, with q = [q1 q2], k = [k1 k2].
std::vector<float> attendNaive(const std::vector<float>& q1, const std::vector<float>& q2, const std::vector<float>& k1,
                               const std::vector<float>& k2, const std::vector<float>& v, const HeadCase& c,
                               float scale) {
    std::vector<float> out(std::size_t(c.T * c.dv));
    const int64_t prev = c.S - c.T;
    for (int64_t i = 0; i < c.T; ++i) {
        const int64_t n = prev + i + 1;
        std::vector<double> s(static_cast<std::size_t>(n));
        double mx = -1e300;
        for (int64_t j = 0; j < n; ++j) {
            double dot = 0;
            for (int64_t e = 0; e < c.d1; ++e)
                dot += double(q1[std::size_t(i * c.d1 + e)]) * k1[std::size_t(j * c.d1 + e)];
            for (int64_t e = 0; e < c.d2; ++e)
                dot += double(q2[std::size_t(i * c.d2 + e)]) * k2[std::size_t(j * c.d2 + e)];
            s[std::size_t(j)] = dot * scale;
            mx = std::max(mx, s[std::size_t(j)]);
        }
        double sum = 0;
        for (auto& x : s)
            sum += (x = std::exp(x - mx));
        for (int64_t e = 0; e < c.dv; ++e) {
            double o = 0;
            for (int64_t j = 0; j < n; ++j)
                o += s[std::size_t(j)] / sum * v[std::size_t(j * c.dv + e)];
            out[std::size_t(i * c.dv + e)] = float(o);
        }
    }
    return out;
}

TEST_P(KernelPath, AttendHeadMatchesTheSoftmaxOfScaledScoresOverVisibleKeys) {
    std::mt19937 rng(7);
    // Prefill (T = S), a decode step (T = 1), a chunk after cached keys, widths that are and
    // are not multiples of 16, a single key, MLA's two-part keys and GQA's one-part ones.
    const HeadCase cases[] = {{64, 64, 16, 16, 16}, {1, 97, 16, 16, 16}, {5, 40, 32, 0, 32},
                              {1, 1, 7, 3, 5},      {33, 70, 24, 8, 40}, {17, 17, 128, 0, 128}};
    for (const auto& c : cases) {
        SCOPED_TRACE("T=" + std::to_string(c.T) + " S=" + std::to_string(c.S) + " d1=" + std::to_string(c.d1) +
                     " d2=" + std::to_string(c.d2) + " dv=" + std::to_string(c.dv));
        // Rows of the inputs sit ld floats apart with junk in between, like the model's heads.
        const int64_t pad = 3;
        auto strided = [&](const std::vector<float>& dense, int64_t rows, int64_t w) {
            std::vector<float> s(std::size_t(rows * (w + pad)), 1e30f);
            for (int64_t r = 0; r < rows; ++r)
                std::copy_n(dense.begin() + r * w, w, s.begin() + r * (w + pad));
            return s;
        };
        const auto q1 = testutil::randomVector(std::size_t(c.T * c.d1), rng);
        const auto q2 = testutil::randomVector(std::size_t(c.T * c.d2), rng);
        const auto k1 = testutil::randomVector(std::size_t(c.S * c.d1), rng);
        const auto k2 = testutil::randomVector(std::size_t(c.S * c.d2), rng);
        const auto v = testutil::randomVector(std::size_t(c.S * c.dv), rng);
        const float scale = 1.0f / std::sqrt(float(c.d1 + c.d2));
        const auto sq1 = strided(q1, c.T, c.d1), sq2 = strided(q2, c.T, c.d2), sk1 = strided(k1, c.S, c.d1),
                   sk2 = strided(k2, c.S, c.d2), sv = strided(v, c.S, c.dv);
        std::vector<float> out(std::size_t(c.T * (c.dv + pad)), -7.0f);
        mythos::attendHead({sq1.data(), c.d1 + pad, sq2.data(), c.d2 + pad}, c.T,
                           {sk1.data(), c.d1 + pad, c.d1, sk2.data(), c.d2 + pad, c.d2}, {sv.data(), c.dv + pad, c.dv},
                           c.S, scale, out.data(), c.dv + pad);
        const auto ref = attendNaive(q1, q2, k1, k2, v, c, scale);
        std::vector<float> got(std::size_t(c.T * c.dv));
        for (int64_t i = 0; i < c.T; ++i) {
            std::copy_n(out.begin() + i * (c.dv + pad), c.dv, got.begin() + i * c.dv);
            for (int64_t e = c.dv; e < c.dv + pad; ++e) // the gap between output rows is untouched
                ASSERT_EQ(out[std::size_t(i * (c.dv + pad) + e)], -7.0f);
        }
        EXPECT_LT(testutil::maxRelErr(got, ref), 2e-6);
    }
}

TEST_P(KernelPath, AttendHeadOfTheFirstQueryReturnsTheFirstValue) {
    // Query 0 of a prefill sees only key 0: its output is v_0 exactly, whatever the scores.
    const std::vector<float> q = {100.0f, -3.0f, 2.0f, 5.0f}, k = {1, 2, -50, -50, 3, 4, -50, -50};
    const std::vector<float> v = {0.25f, -1.5f, 9.0f, 4.0f};
    std::vector<float> out(4);
    mythos::attendHead({q.data(), 2, nullptr, 0}, 2, {k.data(), 4, 2, nullptr, 0, 0}, {v.data(), 2, 2}, 2, 1.0f,
                       out.data(), 2);
    EXPECT_EQ(out[0], 0.25f);
    EXPECT_EQ(out[1], -1.5f);
    // Query 1 (q = (2, 5)) sees keys 0 and 1 with scores 2*1+5*2 = 12 and 2*3+5*4 = 26.
    const double p1 = 1.0 / (1.0 + std::exp(12.0 - 26.0));
    EXPECT_NEAR(out[2], (1 - p1) * 0.25 + p1 * 9.0, 1e-6);
    EXPECT_NEAR(out[3], (1 - p1) * -1.5 + p1 * 4.0, 1e-6);
}

// A decode step's query heads against keys and values they share (a GQA group's KV head;
// MLA's latents and rope key in the absorbed form, two-part keys): the numbers of attendHead
// for each head alone, to the bit, for any number of heads (blocks of four and what
// remains), widths with and without a tail, and key counts not a multiple of four.
TEST_P(KernelPath, AttendSharedKvEqualsAttendHeadForEveryHeadOfTheGroup) {
    std::mt19937 rng(11);
    struct Case {
        int64_t heads, S, d1, d2, dv;
    };
    const Case cases[] = {{4, 96, 32, 0, 32},   {4, 1, 32, 0, 32}, {1, 7, 16, 0, 16},   {5, 33, 20, 0, 20},
                          {7, 70, 128, 0, 128}, {2, 3, 8, 0, 24},  {8, 65, 32, 16, 32}, {3, 10, 24, 8, 24}};
    for (const auto& c : cases) {
        SCOPED_TRACE("heads=" + std::to_string(c.heads) + " S=" + std::to_string(c.S) + " d1=" + std::to_string(c.d1) +
                     " d2=" + std::to_string(c.d2) + " dv=" + std::to_string(c.dv));
        // Heads of a query row sit side by side with a gap (ld = width + 2), cached rows hold
        // other heads too (the group's keys first), output heads ldo = dv + 1 apart.
        const int64_t ldq1 = c.d1 + 2, ldq2 = c.d2 + 2, ldk1 = 3 * c.d1, ldk2 = 2 * c.d2 + 1, ldv = 2 * c.dv,
                      ldo = c.dv + 1;
        const auto q1 = testutil::randomVector(std::size_t(c.heads * ldq1), rng);
        const auto q2 = testutil::randomVector(std::size_t(c.heads * ldq2), rng);
        const auto k1 = testutil::randomVector(std::size_t(c.S * ldk1), rng);
        const auto k2 = testutil::randomVector(std::size_t(c.S * ldk2 + 1), rng);
        const auto v = testutil::randomVector(std::size_t(c.S * ldv), rng);
        const float scale = 1.0f / std::sqrt(float(c.d1 + c.d2));
        const mythos::AttendKeys keys{k1.data(), ldk1, c.d1, k2.data(), ldk2, c.d2};
        std::vector<float> shared(std::size_t(c.heads * ldo), -7.0f), alone(shared.size(), -7.0f);
        mythos::attendSharedKv({q1.data(), ldq1, q2.data(), ldq2}, c.heads, keys, {v.data(), ldv, c.dv}, c.S, scale,
                               shared.data(), ldo);
        for (int64_t h = 0; h < c.heads; ++h)
            mythos::attendHead({q1.data() + h * ldq1, ldq1, q2.data() + h * ldq2, ldq2}, 1, keys, {v.data(), ldv, c.dv},
                               c.S, scale, alone.data() + h * ldo, ldo);
        EXPECT_EQ(shared, alone);
        EXPECT_NE(shared[0], -7.0f);
        EXPECT_EQ(shared[std::size_t(c.dv)], -7.0f) << "the gap between output heads is untouched";
    }
}

TEST_P(KernelPath, SiluMulMatchesTheScalarFormulaOverTheWholeRange) {
    std::vector<float> a, b;
    for (float x = -120.0f; x <= 120.0f; x += 0.37f) {
        a.push_back(x);
        b.push_back(0.5f + std::fabs(std::sin(x)));
    }
    a.push_back(0.0f);
    b.push_back(3.0f);
    std::vector<float> got = a;
    mythos::siluMul(got.data(), b.data(), int64_t(got.size()));
    for (std::size_t i = 0; i < a.size(); ++i) {
        const double x = a[i];
        const double want = x / (1.0 + std::exp(-x)) * b[i];
        EXPECT_NEAR(got[i], want, 4e-7 * std::max(1.0, std::fabs(want))) << "x = " << x;
    }
}

TEST_P(KernelPath, RmsNormMatchesDoublePrecisionOnRowsOfEveryTailLength) {
    std::mt19937 rng(3);
    for (int64_t n : {1, 7, 16, 31, 256, 2053}) {
        const int64_t rows = 3;
        const auto x = testutil::randomVector(std::size_t(rows * n), rng);
        const auto w = testutil::randomVector(std::size_t(n), rng);
        std::vector<float> y(x.size());
        mythos::rmsNorm(x.data(), w.data(), y.data(), rows, n);
        for (int64_t r = 0; r < rows; ++r) {
            double ss = 0;
            for (int64_t i = 0; i < n; ++i)
                ss += double(x[std::size_t(r * n + i)]) * x[std::size_t(r * n + i)];
            const double inv = 1.0 / std::sqrt(ss / double(n) + 1e-6);
            for (int64_t i = 0; i < n; ++i) {
                const double want = x[std::size_t(r * n + i)] * inv * w[std::size_t(i)];
                EXPECT_NEAR(y[std::size_t(r * n + i)], want, 1e-6 * std::max(1.0, std::fabs(want)));
            }
        }
    }
}

// The direct kernels (ops_kernels.h) that MatmulEngine dispatches small products to: W as
// [N, K] in fp32 and bf16, with W^T's [K, N] copy, and W stored [K, N], with every row count
// of a block of four and a K with a tail.
TEST_P(KernelPath, DirectKernelsMatchTheReferenceForEveryWeightForm) {
    EXPECT_EQ(mythos::detail::hasAvx512(), !GetParam() && __builtin_cpu_supports("avx512f"));
    std::mt19937 rng(5);
    const int64_t K = 37, N = 21;
    const auto w = testutil::randomVector(std::size_t(N * K), rng);
    std::vector<float> wt(std::size_t(K * N)), wWide(w.size()), wtWide(wt.size());
    std::vector<uint16_t> wBf16(w.size()), wtBf16(wt.size());
    for (int64_t n = 0; n < N; ++n)
        for (int64_t k = 0; k < K; ++k)
            wt[std::size_t(k * N + n)] = w[std::size_t(n * K + k)];
    for (std::size_t i = 0; i < w.size(); ++i) {
        wBf16[i] = mythos::floatToBf16(w[i]);
        wWide[i] = mythos::bf16ToFloat(wBf16[i]);
    }
    for (std::size_t i = 0; i < wt.size(); ++i) {
        wtBf16[i] = mythos::floatToBf16(wt[i]);
        wtWide[i] = mythos::bf16ToFloat(wtBf16[i]);
    }
    for (int64_t M : {1, 3, 4, 7}) {
        const auto x = testutil::randomVector(std::size_t(M * K), rng);
        std::vector<float> ref(std::size_t(M * N)), refBf16(ref.size()), y(ref.size());
        mythos::linearReference(x.data(), M, K, w.data(), N, ref.data());
        mythos::linearReference(x.data(), M, K, wWide.data(), N, refBf16.data());

        mythos::detail::directLinear(x.data(), M, K, K, w.data(), N, y.data(), N, false);
        EXPECT_LE(testutil::maxRelErr(y, ref), 1e-5) << "fp32 [N, K], M = " << M;
        mythos::WeightRef withKn(w.data());
        withKn.kn = wt.data();
        mythos::detail::directLinear(x.data(), M, K, K, withKn, N, y.data(), N, false);
        EXPECT_LE(testutil::maxRelErr(y, ref), 1e-5) << "with the [K, N] copy, M = " << M;
        mythos::detail::directLinear(x.data(), M, K, K, mythos::WeightRef::bf16Bits(wBf16.data()), N, y.data(), N,
                                     false);
        EXPECT_LE(testutil::maxRelErr(y, refBf16), 1e-5) << "bf16 [N, K], M = " << M;

        mythos::detail::directMatmulKN(x.data(), M, K, K, wt.data(), N, y.data(), N, false);
        EXPECT_LE(testutil::maxRelErr(y, ref), 1e-5) << "fp32 [K, N], M = " << M;
        mythos::detail::directMatmulKN(x.data(), M, K, K, mythos::WeightRef::bf16Bits(wtBf16.data()), N, y.data(), N,
                                       false);
        EXPECT_LE(testutil::maxRelErr(y, refBf16), 1e-5) << "bf16 [K, N], M = " << M;

        // accumulate adds to what y holds
        y = ref;
        mythos::detail::directLinear(x.data(), M, K, K, w.data(), N, y.data(), N, true);
        auto twice = ref;
        for (auto& v : twice)
            v *= 2;
        EXPECT_LE(testutil::maxRelErr(y, twice), 1e-5) << "accumulate, M = " << M;
    }
}

INSTANTIATE_TEST_SUITE_P(Kernels, KernelPath, ::testing::Values(false, true),
                         [](const auto& info) { return info.param ? "portable" : "avx512"; });

} // namespace

namespace {

TEST(RopeTable, RotatesExactlyLikeApplyRopeInsideAndBeyondTheTable) {
    std::mt19937 rng(11);
    const int64_t d = 16;
    const mythos::RopeTable table(d, 500000.0, 40); // positions 0..39 tabled
    std::vector<float> freqs(d / 2);
    mythos::ropeFrequencies(d, 500000.0, freqs.data());
    for (int64_t pos : {0, 1, 17, 39, 40, 1000}) {
        const auto x = testutil::randomVector(d, rng);
        auto viaTable = x, direct = x;
        table.apply(viaTable.data(), pos);
        mythos::applyRope(direct.data(), d, pos, freqs.data());
        EXPECT_EQ(viaTable, direct) << "position " << pos;
        if (pos > 0) {
            EXPECT_NE(viaTable, x) << "position " << pos << " must rotate";
        }
    }
    // A config claiming an absurd max_seq_len tables no more than kMaxPositions.
    const mythos::RopeTable huge(d, 10000.0, int64_t(1) << 40);
    auto y = testutil::randomVector(d, rng), z = y;
    huge.apply(y.data(), (int64_t(1) << 40) - 1);
    std::vector<float> f2(d / 2);
    mythos::ropeFrequencies(d, 10000.0, f2.data());
    mythos::applyRope(z.data(), d, (int64_t(1) << 40) - 1, f2.data());
    EXPECT_EQ(y, z);
}

// The figure mythos-cli bench compares the prefill's matmul rate with.
TEST(Runtime, SgemmGflopsTimesSixProductsAndGivesAPositiveRate) {
    mythos::resetMatmulMacs();
    const double gflops = mythos::sgemmGflops(64);
    EXPECT_EQ(mythos::matmulMacs(), uint64_t(6 * 64 * 64 * 64));
    EXPECT_TRUE(std::isfinite(gflops));
    EXPECT_GT(gflops, 0.0);
}

} // namespace
