#pragma once
// Access to the golden reference cases (../shared/golden/README.md): the two tiny cases
// live in tests/data, the larger ones are read from the shared folder when present.
#include <filesystem>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "mythos/safetensors.h"

namespace golden {

struct Case {
    std::string name;
    std::filesystem::path dir;
};

// Every case found: tiny_mla, tiny_gqa (always), readme_mla, readme_gqa (when the shared
// folder is there).
std::vector<Case> cases();
std::vector<std::string> caseNames();
Case find(const std::string& name); // GTEST_SKIP-worthy when absent: check exists()
bool exists(const std::string& name);

struct Data {
    Case c;
    nlohmann::json json;
    mythos::SafetensorsFile tensors;
    std::vector<float> tensor(const std::string& name) const;
    std::vector<int64_t> shape(const std::string& name) const;
    // ids of an input ("b1", "b2") and its shape.
    std::vector<int32_t> input(const std::string& name, int64_t& B, int64_t& T) const;
};
Data load(const Case& c);

// |got - ref| <= rel * max|ref| + abs, element-wise; returns the worst ratio of the error
// to the allowed error (<= 1 passes) and writes the largest relative error
// (max|got - ref| / max|ref|).
struct Compare {
    double worst = 0;
    double maxRelErr = 0;
    std::size_t worstIndex = 0;
};
Compare compare(const std::vector<float>& got, const std::vector<float>& ref, double rel, double abs);

template <typename T>
std::vector<T> flattenInts(const nlohmann::json& j) {
    std::vector<T> out;
    if (j.is_array())
        for (const auto& x : j) {
            auto sub = flattenInts<T>(x);
            out.insert(out.end(), sub.begin(), sub.end());
        }
    else
        out.push_back(j.get<T>());
    return out;
}

} // namespace golden
