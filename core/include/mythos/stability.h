#pragma once
// Spectral radius of the injection matrix A and rescaling it to a target radius while
// keeping the reference's parametrisation A = exp(-exp(clamp(log_dt + log_A, -20, 20))).
#include <complex>
#include <cstdint>
#include <filesystem>
#include <vector>

#include "mythos/config.h"
#include "mythos/weights.h"

namespace mythos {

// rho(A) of a diagonal A: max |A_i| (0 for an empty A).
double spectralRadiusDiagonal(const std::vector<float>& a);
// Eigenvalues and rho of a dense n x n row-major matrix (Eigen).
std::vector<std::complex<double>> eigenvalues(const std::vector<float>& a, int64_t n);
double spectralRadiusDense(const std::vector<float>& a, int64_t n);

// Memory horizon 1 / (1 - rho) in loops (infinity for rho >= 1).
double memoryHorizon(double rho);

enum class StabilityStatus { Fine, Warning, Unstable }; // < 0.9, [0.9, 1), >= 1
StabilityStatus stabilityStatus(double rho);
const char* stabilityStatusName(StabilityStatus s);

// Rewrites recurrent.injection.log_A so that A' = A * target / rho(A) (every entry scaled
// by the same factor). target must be in (0, 1): A < 1 holds by construction in this
// parametrisation. Throws ArgumentError otherwise. Returns the new rho.
double rescaleInjection(Weights& weights, double target);

} // namespace mythos

namespace mythos {
// A = exp(-exp(clamp(log_dt + log_A, -20, 20))) element-wise, in fp32 like the reference.
std::vector<float> injectionFromLogs(const std::vector<float>& logA, float logDt);
} // namespace mythos
