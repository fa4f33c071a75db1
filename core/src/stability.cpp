#include "mythos/stability.h"

#include <algorithm>
#include <cmath>
#include <limits>

#include <Eigen/Eigenvalues>

#include "mythos/errors.h"

namespace mythos {

double spectralRadiusDiagonal(const std::vector<float>& a) {
    double r = 0;
    if (countNonFinite(a) > 0)
        return std::numeric_limits<double>::quiet_NaN();
    for (float v : a)
        r = std::max(r, double(std::fabs(v)));
    return r;
}

std::vector<std::complex<double>> eigenvalues(const std::vector<float>& a, int64_t n) {
    if (n < 0 || int64_t(a.size()) != n * n)
        throw ArgumentError("eigenvalues: matrix size does not match n x n");
    if (n == 0)
        return {}; // Eigen's solver crashes on a 0 x 0 matrix
    Eigen::MatrixXd m(n, n);
    for (int64_t i = 0; i < n; ++i)
        for (int64_t j = 0; j < n; ++j)
            m(i, j) = a[std::size_t(i * n + j)];
    Eigen::EigenSolver<Eigen::MatrixXd> es(m, false);
    std::vector<std::complex<double>> out;
    for (int64_t i = 0; i < n; ++i)
        out.push_back(es.eigenvalues()[i]);
    return out;
}

double spectralRadiusDense(const std::vector<float>& a, int64_t n) {
    if (countNonFinite(a) > 0)
        return std::numeric_limits<double>::quiet_NaN(); // Eigen's solver would loop on it
    double r = 0;
    for (auto ev : eigenvalues(a, n))
        r = std::max(r, std::abs(ev));
    return r;
}

double memoryHorizon(double rho) { return rho >= 1.0 ? std::numeric_limits<double>::infinity() : 1.0 / (1.0 - rho); }

StabilityStatus stabilityStatus(double rho) {
    if (!std::isfinite(rho))
        return StabilityStatus::NonFinite;
    if (rho < 0.9)
        return StabilityStatus::Fine;
    if (rho < 1.0)
        return StabilityStatus::Warning;
    return StabilityStatus::Unstable;
}

const char* stabilityStatusName(StabilityStatus s) {
    switch (s) {
    case StabilityStatus::Fine: return "stable";
    case StabilityStatus::Warning: return "near the edge";
    case StabilityStatus::Unstable: return "unstable";
    case StabilityStatus::NonFinite: return "not finite";
    }
    return "";
}

double rescaleInjection(Weights& weights, double target) {
    if (!(target > 0.0 && target < 1.0))
        throw ArgumentError("target spectral radius must be in (0, 1), got " + std::to_string(target));
    auto itA = weights.find("recurrent.injection.log_A");
    auto itDt = weights.find("recurrent.injection.log_dt");
    if (itA == weights.end() || itDt == weights.end() || itDt->second.data.empty())
        throw ArgumentError("the weights have no recurrent.injection.log_A / log_dt");
    auto& logA = itA->second.data;
    const double logDt = itDt->second.data[0];
    std::vector<float> A(logA.size());
    for (std::size_t i = 0; i < A.size(); ++i)
        A[i] = float(std::exp(-std::exp(std::clamp(logDt + double(logA[i]), -20.0, 20.0))));
    const double rho = spectralRadiusDiagonal(A);
    if (rho <= 0)
        throw ArgumentError("rho(A) is 0; nothing to rescale");
    const double c = target / rho;
    // A' = c A = exp(-exp(s')) => s' = log(-(log A + log c)); A' <= target < 1 keeps it finite.
    for (std::size_t i = 0; i < A.size(); ++i) {
        const double a = std::max(double(A[i]), 1e-300);
        const double s = std::log(-(std::log(a) + std::log(c)));
        logA[i] = float(std::clamp(s, -20.0, 20.0) - logDt);
    }
    std::vector<float> A2(logA.size());
    for (std::size_t i = 0; i < A2.size(); ++i)
        A2[i] = float(std::exp(-std::exp(std::clamp(logDt + double(logA[i]), -20.0, 20.0))));
    return spectralRadiusDiagonal(A2);
}

} // namespace mythos

namespace mythos {
std::vector<float> injectionForAnalysis(const std::vector<float>& logA, float logDt) {
    std::vector<float> A = injectionFromLogs(logA, logDt);
    for (std::size_t i = 0; i < A.size(); ++i)
        if (!std::isfinite(logA[i]) || !std::isfinite(logDt))
            A[i] = std::numeric_limits<float>::quiet_NaN();
    return A;
}

std::vector<float> injectionFromLogs(const std::vector<float>& logA, float logDt) {
    std::vector<float> A(logA.size());
    for (std::size_t i = 0; i < A.size(); ++i)
        A[i] = std::exp(-std::exp(std::clamp(logDt + logA[i], -20.0f, 20.0f)));
    return A;
}
} // namespace mythos
