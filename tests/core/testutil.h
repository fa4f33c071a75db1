#pragma once
// Small helpers shared by the core tests.
#include <cmath>
#include <filesystem>
#include <limits>
#include <random>
#include <string>
#include <system_error>
#include <vector>

namespace testutil {

// A fresh folder under the system temp directory, removed with everything in it.
class TempDir {
public:
    explicit TempDir(const std::string& tag = "test") {
        std::random_device rd;
        m_path = std::filesystem::temp_directory_path() /
                 ("mythos_" + tag + "_" + std::to_string(rd()) + std::to_string(rd()));
        std::filesystem::create_directories(m_path);
    }
    ~TempDir() {
        std::error_code ec;
        std::filesystem::remove_all(m_path, ec);
    }
    TempDir(const TempDir&) = delete;
    TempDir& operator=(const TempDir&) = delete;
    const std::filesystem::path& path() const { return m_path; }
    std::filesystem::path operator/(const std::string& name) const { return m_path / name; }

private:
    std::filesystem::path m_path;
};

// max|got - ref| / max|ref|; infinity for a size mismatch or a NaN.
inline double maxRelErr(const std::vector<float>& got, const std::vector<float>& ref) {
    if (got.size() != ref.size())
        return std::numeric_limits<double>::infinity();
    double maxRef = 0, maxErr = 0;
    for (std::size_t i = 0; i < got.size(); ++i) {
        maxRef = std::max(maxRef, double(std::fabs(ref[i])));
        const double err = std::fabs(double(got[i]) - double(ref[i]));
        if (!(err <= maxErr))
            maxErr = std::isnan(err) ? std::numeric_limits<double>::infinity() : err;
    }
    return maxRef > 0 ? maxErr / maxRef : maxErr;
}

// n draws of N(0, 1).
inline std::vector<float> randomVector(std::size_t n, std::mt19937& rng) {
    std::normal_distribution<float> dist(0.0f, 1.0f);
    std::vector<float> v(n);
    for (auto& x : v)
        x = dist(rng);
    return v;
}

} // namespace testutil
