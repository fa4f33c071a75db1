#pragma once
// Small helpers shared by the core tests.
#include <cmath>
#include <filesystem>
#include <limits>
#include <random>
#include <string>
#include <system_error>
#include <vector>

#include "mythos/analysis.h"

namespace testutil {

// A hand-made routing selection: 2 loops, 1 row, 3 tokens, top-2 of 4 experts.
inline mythos::RoutingSelection handMadeSelection() {
    mythos::RoutingSelection s;
    s.loops = 2;
    s.batch = 1;
    s.seqLen = 3;
    s.topK = 2;
    s.nExperts = 4;
    //        token 0   token 1   token 2
    s.ids = {0, 1, 0, 2, 1, 0,  // loop 1
             0, 1, 2, 0, 3, 2}; // loop 2
    s.gates = {0.75f, 0.25f, 0.5f, 0.5f, 0.6f, 0.4f, 0.9f, 0.1f, 0.7f, 0.3f, 0.5f, 0.5f};
    return s;
}

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
