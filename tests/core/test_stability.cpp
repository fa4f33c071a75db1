// Spectral radius, memory horizon, stability thresholds and rescaling of the injection.
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <complex>
#include <filesystem>
#include <limits>
#include <random>
#include <string>
#include <vector>

#include "golden.h"
#include "mythos/errors.h"
#include "mythos/model.h"
#include "mythos/stability.h"
#include "mythos/weights.h"
#include "testutil.h"

namespace fs = std::filesystem;
using namespace mythos;

namespace {

using testutil::TempDir;

using testutil::maxRelErr;

std::vector<float> injectionOf(const Weights& w) {
    return injectionFromLogs(w.at("recurrent.injection.log_A").data, w.at("recurrent.injection.log_dt").data.at(0));
}

TEST(SpectralRadiusTest, Diagonal) {
    EXPECT_DOUBLE_EQ(spectralRadiusDiagonal({0.5f, -0.8f, 0.3f}), double(0.8f));
    EXPECT_DOUBLE_EQ(spectralRadiusDiagonal({0.25f}), 0.25);
    EXPECT_DOUBLE_EQ(spectralRadiusDiagonal({-1.5f, 1.25f}), 1.5);
    EXPECT_EQ(spectralRadiusDiagonal({}), 0.0);
}

TEST(SpectralRadiusTest, DenseRotationScaling) {
    // 0.5 * [[1, -1], [1, 1]]: a rotation by 45 degrees scaled by sqrt(0.5).
    const std::vector<float> m = {0.5f, -0.5f, 0.5f, 0.5f};
    auto ev = eigenvalues(m, 2);
    ASSERT_EQ(ev.size(), 2u);
    std::sort(ev.begin(), ev.end(), [](auto a, auto b) { return a.imag() < b.imag(); });
    EXPECT_NEAR(ev[0].real(), 0.5, 1e-12);
    EXPECT_NEAR(ev[0].imag(), -0.5, 1e-12);
    EXPECT_NEAR(ev[1].real(), 0.5, 1e-12);
    EXPECT_NEAR(ev[1].imag(), 0.5, 1e-12);
    // max |a_ij| is 0.5 and the largest row sum is 1: only the eigenvalues give sqrt(0.5).
    EXPECT_NEAR(spectralRadiusDense(m, 2), std::sqrt(0.5), 1e-12);
}

TEST(SpectralRadiusTest, DenseDiagonalAndTriangular) {
    const std::vector<float> diag = {0.2f, 0, 0, 0, -0.9f, 0, 0, 0, 0.4f};
    EXPECT_NEAR(spectralRadiusDense(diag, 3), 0.9, 1e-7);
    const std::vector<float> upper = {0.3f, 5.0f, 0, 0.6f};
    EXPECT_NEAR(spectralRadiusDense(upper, 2), 0.6, 1e-7);
    EXPECT_EQ(spectralRadiusDense({}, 0), 0.0);
    EXPECT_THROW(spectralRadiusDense({1, 2, 3}, 2), ArgumentError);
    EXPECT_THROW(eigenvalues({1, 2, 3, 4}, 3), ArgumentError);
    EXPECT_THROW(eigenvalues({}, -1), ArgumentError);
}

TEST(SpectralRadiusTest, MemoryHorizon) {
    EXPECT_DOUBLE_EQ(memoryHorizon(0.0), 1.0);
    EXPECT_DOUBLE_EQ(memoryHorizon(0.5), 2.0);
    EXPECT_NEAR(memoryHorizon(0.9), 10.0, 1e-9);
    EXPECT_NEAR(memoryHorizon(0.99), 100.0, 1e-7);
    EXPECT_TRUE(std::isinf(memoryHorizon(1.0)));
    EXPECT_TRUE(std::isinf(memoryHorizon(1.5)));
    EXPECT_GT(memoryHorizon(1.0), 0);
}

TEST(SpectralRadiusTest, StatusThresholds) {
    EXPECT_EQ(stabilityStatus(0.0), StabilityStatus::Fine);
    EXPECT_EQ(stabilityStatus(0.89), StabilityStatus::Fine);
    EXPECT_EQ(stabilityStatus(0.9), StabilityStatus::Warning);
    EXPECT_EQ(stabilityStatus(0.95), StabilityStatus::Warning);
    EXPECT_EQ(stabilityStatus(0.999), StabilityStatus::Warning);
    EXPECT_EQ(stabilityStatus(1.0), StabilityStatus::Unstable);
    EXPECT_EQ(stabilityStatus(2.0), StabilityStatus::Unstable);
    const std::string fine = stabilityStatusName(StabilityStatus::Fine);
    const std::string warning = stabilityStatusName(StabilityStatus::Warning);
    const std::string unstable = stabilityStatusName(StabilityStatus::Unstable);
    EXPECT_FALSE(fine.empty());
    EXPECT_NE(fine, warning);
    EXPECT_NE(warning, unstable);
    EXPECT_NE(fine, unstable);
}

TEST(RescaleInjectionTest, ScalesEveryEntryByTheSameFactor) {
    const Checkpoint ck = loadCheckpoint(golden::find("tiny_mla").dir);
    const auto A0 = injectionOf(ck.weights);
    const double rho0 = spectralRadiusDiagonal(A0);
    const auto data = golden::load(golden::find("tiny_mla"));
    EXPECT_NEAR(rho0, data.json.at("rho_A").get<double>(), 1e-6);

    for (const double target : {0.5, 0.9, 0.1}) {
        SCOPED_TRACE("target " + std::to_string(target));
        Weights w = ck.weights;
        const double rho = rescaleInjection(w, target);
        EXPECT_NEAR(rho, target, 1e-6);
        const auto A1 = injectionOf(w);
        EXPECT_NEAR(spectralRadiusDiagonal(A1), target, 1e-6);
        ASSERT_EQ(A1.size(), A0.size());
        const double factor = target / rho0;
        for (std::size_t i = 0; i < A0.size(); ++i)
            ASSERT_NEAR(double(A1[i]) / double(A0[i]), factor, 1e-5 * factor) << "A[" << i << "] = " << A0[i];
        EXPECT_EQ(w.at("recurrent.injection.log_dt").data, ck.weights.at("recurrent.injection.log_dt").data);
        for (const auto& [name, t] : w) {
            if (name != "recurrent.injection.log_A") {
                ASSERT_EQ(t.data, ck.weights.at(name).data) << name;
            }
        }
    }
}

TEST(RescaleInjectionTest, RejectsTargetsOutsideTheOpenUnitInterval) {
    const Checkpoint ck = loadCheckpoint(golden::find("tiny_mla").dir);
    for (const double target : {0.0, 1.0, 1.5, -0.5, std::numeric_limits<double>::quiet_NaN()}) {
        SCOPED_TRACE("target " + std::to_string(target));
        Weights w = ck.weights;
        try {
            rescaleInjection(w, target);
            ADD_FAILURE() << "no ArgumentError";
        } catch (const ArgumentError& e) {
            EXPECT_NE(std::string(e.what()).find("(0, 1)"), std::string::npos) << e.what();
        }
        EXPECT_EQ(w.at("recurrent.injection.log_A").data, ck.weights.at("recurrent.injection.log_A").data);
    }
    Weights empty;
    EXPECT_THROW(rescaleInjection(empty, 0.5), ArgumentError);
}

TEST(RescaleInjectionTest, SavedCheckpointReopensWithTheRescaledValues) {
    const Checkpoint ck = loadCheckpoint(golden::find("tiny_mla").dir);
    Weights w = ck.weights;
    rescaleInjection(w, 0.5);
    const auto expectedA = injectionOf(w);

    TempDir dir;
    const fs::path folder = dir.path() / "rescaled";
    saveCheckpoint(folder, ck.config, w, {{"note", "rescaled to 0.5"}});
    ASSERT_TRUE(fs::exists(folder / "config.json"));
    ASSERT_TRUE(fs::exists(folder / "model.safetensors"));

    auto reopened = Model::open(folder.string());
    EXPECT_EQ(reopened->config(), ck.config);
    EXPECT_EQ(reopened->injectionA(), expectedA);
    EXPECT_EQ(reopened->weights().at("recurrent.injection.log_A").data, w.at("recurrent.injection.log_A").data);
    Model inMemory(ck.config, w);
    EXPECT_EQ(inMemory.injectionA(), expectedA);
    EXPECT_EQ(reopened->weightsHash(), inMemory.weightsHash());

    int64_t B = 0, T = 0;
    const auto ids = golden::load(golden::find("tiny_mla")).input("b2", B, T);
    Trace tr;
    const auto fromDisk = reopened->forward(ids, B, T, {.nLoops = 4, .trace = &tr});
    const auto fromMemory = inMemory.forward(ids, B, T, {.nLoops = 4});
    EXPECT_LE(maxRelErr(fromDisk, fromMemory), 1e-6);
    EXPECT_NEAR(tr.rhoA, 0.5, 1e-6);

    // The rescaled model really differs from the original one.
    auto original = Model::open(golden::find("tiny_mla").dir.string());
    EXPECT_GT(maxRelErr(original->forward(ids, B, T, {.nLoops = 4}), fromMemory), 1e-4);

    // setWeight on the original model gives the same model as the rescaled weights.
    original->setWeight("recurrent.injection.log_A", w.at("recurrent.injection.log_A"));
    EXPECT_EQ(original->injectionA(), expectedA);
    EXPECT_LE(maxRelErr(original->forward(ids, B, T, {.nLoops = 4}), fromMemory), 1e-6);
}

} // namespace

// Non-finite injection parameters: rho(A) is reported as not finite, never as a number
// (the reference's clamp would turn log_A = +inf into A = 0, "stable").
TEST(Stability, NonFiniteEntriesMakeRhoNotFinite) {
    const float inf = std::numeric_limits<float>::infinity();
    const float nan = std::numeric_limits<float>::quiet_NaN();
    EXPECT_FLOAT_EQ(mythos::injectionFromLogs({inf}, 0.0f)[0], 0.0f); // the forward keeps the reference's value
    const auto a = mythos::injectionForAnalysis({0.0f, inf, -1.0f}, 0.0f);
    EXPECT_TRUE(std::isnan(a[1]));
    EXPECT_TRUE(std::isfinite(a[0]) && std::isfinite(a[2]));
    EXPECT_TRUE(std::isnan(mythos::spectralRadiusDiagonal(a)));
    EXPECT_TRUE(std::isnan(mythos::spectralRadiusDiagonal({0.5f, nan})));
    EXPECT_TRUE(std::isnan(mythos::spectralRadiusDense({0.5f, 0.0f, inf, 0.1f}, 2)));
    EXPECT_EQ(mythos::stabilityStatus(std::nan("")), mythos::StabilityStatus::NonFinite);
    EXPECT_STREQ(mythos::stabilityStatusName(mythos::StabilityStatus::NonFinite), "not finite");
    EXPECT_EQ(mythos::stabilityStatus(0.5), mythos::StabilityStatus::Fine);
    const auto all = mythos::injectionForAnalysis({0.0f, 1.0f}, nan);
    EXPECT_TRUE(std::isnan(all[0]) && std::isnan(all[1]));
}
