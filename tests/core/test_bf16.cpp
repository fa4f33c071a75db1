// The BF16 weight mode (EngineOptions::weightType): the bf16-weight matmul paths against a
// plain computation on bf16-rounded weights, which tensors are held in bf16, the memory it
// saves, loading and random initialisation straight into bf16, and conversions between the
// two weight types. Parity with the golden logits is in test_golden_parity.cpp.
#include <gtest/gtest.h>

#include <algorithm>
#include <random>
#include <string>
#include <vector>

#include "golden.h"
#include "halfprecision.h"
#include "mythos/errors.h"
#include "mythos/model.h"
#include "mythos/safetensors.h"
#include "ops.h"
#include "testutil.h"

using namespace mythos;

namespace {

using testutil::maxRelErr;

std::string caseDir(const std::string& name) { return golden::find(name).dir.string(); }

using testutil::randomVector;

std::vector<uint16_t> toBf16(const std::vector<float>& v) {
    std::vector<uint16_t> out(v.size());
    std::transform(v.begin(), v.end(), out.begin(), floatToBf16);
    return out;
}

std::vector<float> widen(const std::vector<uint16_t>& v) {
    std::vector<float> out(v.size());
    std::transform(v.begin(), v.end(), out.begin(), bf16ToFloat);
    return out;
}

EngineOptions bf16Options() {
    EngineOptions o;
    o.weightType = WeightType::BF16;
    return o;
}

// ---------------------------------------------------------------------------------------
// Matmul with bf16 weights, on the native (AVX-512) and the portable paths

class Bf16MatmulTest : public ::testing::TestWithParam<bool> {
protected:
    void SetUp() override { usePortableSmallKernels(GetParam()); }
    void TearDown() override { usePortableSmallKernels(false); }
};

INSTANTIATE_TEST_SUITE_P(SmallKernels, Bf16MatmulTest, ::testing::Values(false, true),
                         [](const auto& info) { return info.param ? "portable" : "native"; });

// The reference is linearReference (double accumulation) on the bf16 weights widened to
// fp32: the kernels differ from it only by fp32 rounding. Rows <= 4 keep x in fp32. More
// rows go through oneDNN's bf16 matmul, which rounds x to bf16 too, or (portable, or a CPU
// without a bf16 matmul) through the fp32 matmul on widened weights, which does not.
TEST_P(Bf16MatmulTest, LinearEqualsTheProductWithBf16RoundedWeights) {
    std::mt19937 rng(4321);
    MatmulEngine mm;
    struct Shape {
        int64_t m, k, n;
    };
    // Odd K and N exercise the kernels' tails; N = 300 spans two widened blocks.
    const std::vector<Shape> shapes = {{1, 128, 128}, {3, 37, 5},  {4, 200, 33},   {2, 16, 17},
                                       {1, 15, 3},    {7, 32, 48}, {64, 128, 170}, {9, 40, 300}};
    for (const auto& s : shapes) {
        SCOPED_TRACE(std::to_string(s.m) + "x" + std::to_string(s.k) + "x" + std::to_string(s.n));
        const auto x = randomVector(std::size_t(s.m * s.k), rng);
        const auto wb = toBf16(randomVector(std::size_t(s.n * s.k), rng));
        const auto w = widen(wb);
        const auto xRounded = widen(toBf16(x));
        const bool big = s.m > 4;
        const auto y0 = randomVector(std::size_t(s.m * s.n), rng);
        for (const bool accumulate : {false, true}) {
            SCOPED_TRACE(accumulate ? "accumulate" : "overwrite");
            std::vector<float> got = y0, ref = y0, refRounded = y0;
            mm.linear(x.data(), s.m, s.k, WeightRef::bf16Bits(wb.data()), s.n, got.data(), accumulate);
            linearReference(x.data(), s.m, s.k, w.data(), s.n, ref.data(), accumulate);
            linearReference(xRounded.data(), s.m, s.k, w.data(), s.n, refRounded.data(), accumulate);
            if (!big || GetParam()) {
                EXPECT_LE(maxRelErr(got, ref), 1e-5);
            } else {
                // oneDNN's bf16 matmul where there is one, else the widened fp32 matmul.
                EXPECT_LE(std::min(maxRelErr(got, refRounded), maxRelErr(got, ref)), 1e-5);
            }
            if (accumulate) {
                EXPECT_GT(maxRelErr(got, y0), 1e-2) << "accumulate must add the product";
            }
        }
    }
}

TEST_P(Bf16MatmulTest, StridedLinearLeavesThePaddingAlone) {
    std::mt19937 rng(77);
    MatmulEngine mm;
    for (const int64_t M : {3, 6}) {
        SCOPED_TRACE(M);
        const int64_t K = 24, N = 12, ldx = 40, ldy = 20;
        const auto xs = randomVector(std::size_t(M * ldx), rng);
        const auto wb = toBf16(randomVector(std::size_t(N * K), rng));
        std::vector<float> ys(std::size_t(M * ldy), -7.0f);
        mm.linearStrided(xs.data(), M, K, ldx, WeightRef::bf16Bits(wb.data()), N, ys.data(), ldy);
        std::vector<float> x(std::size_t(M * K)), got(std::size_t(M * N)), ref(std::size_t(M * N));
        for (int64_t i = 0; i < M; ++i) {
            std::copy_n(xs.begin() + i * ldx, K, x.begin() + i * K);
            std::copy_n(ys.begin() + i * ldy, N, got.begin() + i * N);
            for (int64_t j = N; j < ldy; ++j)
                EXPECT_EQ(ys[std::size_t(i * ldy + j)], -7.0f) << "padding overwritten";
        }
        const auto w = widen(wb);
        linearReference(x.data(), M, K, w.data(), N, ref.data());
        const auto xRounded = widen(toBf16(x));
        std::vector<float> refRounded(ref.size());
        linearReference(xRounded.data(), M, K, w.data(), N, refRounded.data());
        EXPECT_LE(std::min(maxRelErr(got, ref), maxRelErr(got, refRounded)), 1e-5);
        if (M <= 4 || GetParam()) {
            EXPECT_LE(maxRelErr(got, ref), 1e-5);
        }
    }
}

// The whole model on both paths: the same logits up to the rounding of x in oneDNN's
// bf16 matmul (the native path's only difference), and what that can flip: the golden
// tests' tolerance.
TEST(Bf16Model, NativeAndPortablePathsAgree) {
    auto model = Model::open(caseDir("tiny_gqa"), bf16Options());
    const std::vector<int32_t> ids = {3, 1, 4, 1, 5, 9, 2, 6};
    const auto native = model->forward(ids, 1, 8, {.nLoops = 4});
    const auto nativeRow = model->forward({7}, 1, 1, {.nLoops = 4});
    usePortableSmallKernels(true);
    const auto portable = model->forward(ids, 1, 8, {.nLoops = 4});
    const auto portableRow = model->forward({7}, 1, 1, {.nLoops = 4});
    usePortableSmallKernels(false);
    EXPECT_LE(maxRelErr(portable, native), 5e-2);
    EXPECT_LE(maxRelErr(portableRow, nativeRow), 1e-5) << "one row: both take small-row kernels, x in fp32";
}

// ---------------------------------------------------------------------------------------
// What is held in bf16, and how much memory that saves

TEST(Bf16Model, MatricesAreBf16AndTheRestStaysFp32) {
    for (const std::string& spec : {caseDir("tiny_mla"), caseDir("tiny_gqa"), std::string("preset:readme_mla")}) {
        SCOPED_TRACE(spec);
        auto f32 = Model::open(spec);
        auto bf16 = Model::open(spec, bf16Options());
        EXPECT_EQ(bf16->options().weightType, WeightType::BF16);
        for (const auto& [name, t] : bf16->weights()) {
            SCOPED_TRACE(name);
            const Tensor& ref = f32->weights().at(name);
            EXPECT_FALSE(ref.isBf16()) << "F32 mode holds everything in fp32";
            if (bf16Eligible(name)) {
                ASSERT_TRUE(t.isBf16());
                EXPECT_TRUE(t.data.empty()) << "the fp32 copy must be freed";
                EXPECT_EQ(t.bf16, toBf16(ref.data)) << "round to nearest even of the fp32 values";
            } else {
                ASSERT_FALSE(t.isBf16());
                EXPECT_EQ(t.data, ref.data);
            }
        }
        for (const char* name : {"embed.weight", "recurrent.block.attn.wo.weight", "prelude.0.ffn.down.weight",
                                 "recurrent.block.ffn.routed_experts.0.gate.weight",
                                 "recurrent.block.ffn.shared_experts.0.up.weight", "recurrent.lora.down.weight"})
            EXPECT_TRUE(bf16->weights().at(name).isBf16()) << name;
        for (const char* name : {"recurrent.block.ffn.router.weight", "recurrent.block.ffn.router_bias",
                                 "recurrent.act.halt.weight", "recurrent.lora.B", "recurrent.lora.scale.weight",
                                 "recurrent.injection.log_A", "norm.weight", "recurrent.block.attn_norm.weight"})
            EXPECT_FALSE(bf16->weights().at(name).isBf16()) << name;

        const double ratio = double(bf16->weightBytes()) / double(f32->weightBytes());
        EXPECT_LE(ratio, 0.55);
        EXPECT_GT(ratio, 0.5);
        std::size_t floats = 0;
        for (const auto& [name, t] : f32->weights())
            floats += std::size_t(t.numel());
        EXPECT_EQ(f32->weightBytes(), floats * sizeof(float));
    }
}

TEST(Bf16Model, WeightTypeNamesRoundTrip) {
    EXPECT_EQ(parseWeightType("f32"), WeightType::F32);
    EXPECT_EQ(parseWeightType("bf16"), WeightType::BF16);
    EXPECT_EQ(weightTypeName(WeightType::BF16), "bf16");
    EXPECT_EQ(weightTypeName(WeightType::F32), "f32");
    try {
        parseWeightType("f16");
        ADD_FAILURE() << "no ArgumentError";
    } catch (const ArgumentError& e) {
        EXPECT_NE(std::string(e.what()).find("f16"), std::string::npos);
    }
}

// ---------------------------------------------------------------------------------------
// Loading and conversions

// A checkpoint stored as BF16 is read bit for bit in BF16 mode; in F32 mode it is the same
// numbers, so the weights hash agrees and the logits differ only by the rounding of x in
// the bf16 matmul.
TEST(Bf16Model, Bf16CheckpointLoadsExactlyInBothWeightTypes) {
    testutil::TempDir dir("bf16ckpt");
    const auto src = Model::open(caseDir("tiny_mla"));
    std::vector<TensorToWrite> out;
    for (const auto& [name, t] : src->weights())
        out.push_back({name, t.shape, t.data.data()});
    writeSafetensors(dir / "model.safetensors", out, {}, DType::BF16);
    std::filesystem::copy_file(std::filesystem::path(caseDir("tiny_mla")) / "config.json", dir / "config.json");

    const auto asF32 = Model::open(dir.path().string());
    const auto asBf16 = Model::open(dir.path().string(), bf16Options());
    for (const auto& [name, t] : asBf16->weights()) {
        SCOPED_TRACE(name);
        const auto rounded = toBf16(src->weights().at(name).data);
        if (bf16Eligible(name)) {
            EXPECT_EQ(t.bf16, rounded);
        } else {
            EXPECT_EQ(t.data, widen(rounded));
        }
        EXPECT_EQ(t.values(), asF32->weights().at(name).data);
    }
    EXPECT_EQ(asBf16->weightsHash(), asF32->weightsHash());
    EXPECT_NE(asBf16->weightsHash(), src->weightsHash());
    const std::vector<int32_t> ids = {5, 6, 7, 8, 9, 10, 11, 12};
    EXPECT_LE(maxRelErr(asBf16->forward(ids, 1, 8), asF32->forward(ids, 1, 8)), 1e-2);
    EXPECT_LE(maxRelErr(asBf16->forward({5}, 1, 1), asF32->forward({5}, 1, 1)), 1e-5)
        << "one row: the small-row kernels keep x in fp32, so only fp32 rounding differs";
}

TEST(Bf16Model, PresetInitialisesStraightIntoBf16) {
    const auto f32 = Model::open("preset:tiny_gqa:3");
    const auto bf16 = Model::open("preset:tiny_gqa:3", bf16Options());
    for (const auto& [name, t] : bf16->weights()) {
        if (bf16Eligible(name)) {
            EXPECT_EQ(t.bf16, toBf16(f32->weights().at(name).data)) << name;
        } else {
            EXPECT_EQ(t.data, f32->weights().at(name).data) << name;
        }
    }
}

// A model built from another's weights takes its own options' weight type; setWeight
// rounds into a bf16 weight in place.
TEST(Bf16Model, ConvertsBetweenWeightTypesAndSetsWeightsInPlace) {
    const auto bf16 = Model::open(caseDir("tiny_gqa"), bf16Options());
    Model back(bf16->config(), bf16->weights());
    for (const auto& [name, t] : back.weights()) {
        EXPECT_FALSE(t.isBf16()) << name;
        EXPECT_EQ(t.data, bf16->weights().at(name).values()) << name;
    }
    Model again(bf16->config(), back.weights(), bf16Options());
    EXPECT_EQ(again.weightBytes(), bf16->weightBytes());
    const std::vector<int32_t> ids = {1, 2, 3, 4, 5, 6};
    EXPECT_EQ(again.forward(ids, 1, 6), bf16->forward(ids, 1, 6));

    const std::string name = "recurrent.block.attn.wo.weight";
    Tensor t = bf16->weights().at(name);
    const std::vector<float> zeros(std::size_t(t.numel()), 0.0f);
    const auto before = again.forward(ids, 1, 6);
    again.setWeight(name, Tensor{t.shape, zeros});
    EXPECT_TRUE(again.weights().at(name).isBf16());
    EXPECT_EQ(again.weights().at(name).values(), zeros);
    EXPECT_NE(again.forward(ids, 1, 6), before);
    again.setWeight(name, t); // a bf16 tensor as the source
    EXPECT_EQ(again.forward(ids, 1, 6), before);
}

TEST(Bf16Model, TraceRecordsTheWeightType) {
    Trace tr;
    Model::open(caseDir("tiny_mla"), bf16Options())->forward({1, 2, 3}, 1, 3, {.trace = &tr});
    EXPECT_EQ(tr.options.at("weight_type"), "bf16");
    Model::open(caseDir("tiny_mla"))->forward({1, 2, 3}, 1, 3, {.trace = &tr});
    EXPECT_EQ(tr.options.at("weight_type"), "f32");
}

} // namespace
