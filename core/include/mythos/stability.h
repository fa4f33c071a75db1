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

// rho(A) of a diagonal A: max |A_i| (0 for an empty A, NaN when an entry is not finite).
double spectralRadiusDiagonal(const std::vector<float>& a);
// Eigenvalues and rho of a dense n x n row-major matrix (Eigen).
std::vector<std::complex<double>> eigenvalues(const std::vector<float>& a, int64_t n);
double spectralRadiusDense(const std::vector<float>& a, int64_t n); // NaN for non-finite entries

// Memory horizon 1 / (1 - rho) in loops (infinity for rho >= 1).
double memoryHorizon(double rho);

// < 0.9, [0.9, 1), >= 1, and NaN/Inf (A has entries that are not finite).
enum class StabilityStatus { Fine, Warning, Unstable, NonFinite };
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
// The same for analysis and display: NaN where log_A[i] or log_dt is not finite, so that
// rho(A) is reported as not finite rather than as the clamp's 0 (log_A = +inf) or 1 (-inf).
std::vector<float> injectionForAnalysis(const std::vector<float>& logA, float logDt);
} // namespace mythos
