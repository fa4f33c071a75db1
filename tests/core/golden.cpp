#include "golden.h"

#include <algorithm>
#include <cmath>
#include <fstream>
#include <sstream>
#include <stdexcept>

namespace fs = std::filesystem;

namespace golden {

std::vector<Case> cases() {
    std::vector<Case> out;
    for (const char* n : {"tiny_mla", "tiny_gqa"})
        out.push_back({n, fs::path(MYTHOS_TEST_DATA_DIR) / n});
    for (const char* n : {"readme_mla", "readme_gqa"}) {
        const fs::path d = fs::path(MYTHOS_GOLDEN_DIR) / n;
        if (fs::exists(d / "golden.json"))
            out.push_back({n, d});
    }
    return out;
}

std::vector<std::string> caseNames() {
    std::vector<std::string> n;
    for (const auto& c : cases())
        n.push_back(c.name);
    return n;
}

bool exists(const std::string& name) {
    for (const auto& c : cases())
        if (c.name == name)
            return true;
    return false;
}

Case find(const std::string& name) {
    for (const auto& c : cases())
        if (c.name == name)
            return c;
    throw std::runtime_error("golden case " + name + " not found");
}

Data load(const Case& c) {
    std::ifstream in(c.dir / "golden.json");
    std::stringstream ss;
    ss << in.rdbuf();
    return Data{c, nlohmann::json::parse(ss.str()), mythos::SafetensorsFile::open(c.dir / "golden.safetensors")};
}

std::vector<float> Data::tensor(const std::string& name) const {
    const auto* t = tensors.find(name);
    if (!t)
        throw std::runtime_error("golden tensor " + name + " missing");
    return tensors.readF32(*t);
}

std::vector<int64_t> Data::shape(const std::string& name) const {
    const auto* t = tensors.find(name);
    if (!t)
        throw std::runtime_error("golden tensor " + name + " missing");
    return t->shape;
}

std::vector<int32_t> Data::input(const std::string& name, int64_t& B, int64_t& T) const {
    const auto& rows = json.at("inputs").at(name);
    B = int64_t(rows.size());
    T = int64_t(rows.at(0).size());
    return flattenInts<int32_t>(rows);
}

Compare compare(const std::vector<float>& got, const std::vector<float>& ref, double rel, double abs) {
    Compare c;
    if (got.size() != ref.size()) {
        c.worst = INFINITY;
        c.maxRelErr = INFINITY;
        return c;
    }
    double maxRef = 0, maxErr = 0;
    for (float r : ref)
        maxRef = std::max(maxRef, double(std::fabs(r)));
    const double allowed = rel * maxRef + abs;
    for (std::size_t i = 0; i < got.size(); ++i) {
        const double err = std::fabs(double(got[i]) - double(ref[i]));
        if (!(err <= maxErr))
            maxErr = std::isnan(err) ? INFINITY : err;
        const double ratio = std::isnan(err) ? INFINITY : err / allowed;
        if (ratio > c.worst) {
            c.worst = ratio;
            c.worstIndex = i;
        }
    }
    c.maxRelErr = maxRef > 0 ? maxErr / maxRef : maxErr;
    return c;
}

} // namespace golden
