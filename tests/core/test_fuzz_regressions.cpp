// Every seed of every fuzzer (tests/fuzz/corpus/<name>/) and every input a fuzzer ever
// crashed on (tests/fuzz/regressions/<name>/) runs through the same target function as the
// libFuzzer program, in the normal build: a parser that regresses fails here, on every
// compiler, without libFuzzer.
#include <gtest/gtest.h>

#include <algorithm>
#include <filesystem>
#include <fstream>
#include <iterator>
#include <ostream>
#include <string>
#include <vector>

#include "fuzz_targets.h"

namespace fs = std::filesystem;

namespace {

std::vector<fs::path> inputs(const std::string& name) {
    std::vector<fs::path> out;
    for (const char* kind : {"corpus", "regressions"}) {
        const fs::path dir = fs::path(MYTHOS_FUZZ_DIR) / kind / name;
        std::error_code ec;
        for (const auto& e : fs::directory_iterator(dir, ec))
            if (e.is_regular_file())
                out.push_back(e.path());
    }
    std::sort(out.begin(), out.end());
    return out;
}

} // namespace

namespace fuzz {
// gtest names a failing parameter by the parser instead of its bytes.
void PrintTo(const Named& n, std::ostream* os) { *os << n.name; }
} // namespace fuzz

class FuzzRegressions : public testing::TestWithParam<fuzz::Named> {};

TEST_P(FuzzRegressions, EveryKeptInputIsAcceptedOrRefusedCleanly) {
    const auto files = inputs(GetParam().name);
    ASSERT_GE(files.size(), 3u) << "tests/fuzz/corpus/" << GetParam().name << " needs seeds";
    for (const auto& f : files) {
        SCOPED_TRACE(f.string());
        std::ifstream in(f, std::ios::binary);
        const std::string bytes((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
        // The target returns normally for a clean accept or a mythos::Error; anything else
        // escapes (and fails here) or aborts the test program.
        EXPECT_NO_THROW(GetParam().target(reinterpret_cast<const uint8_t*>(bytes.data()), bytes.size()));
    }
}

INSTANTIATE_TEST_SUITE_P(AllParsers, FuzzRegressions, testing::ValuesIn(fuzz::targets()),
                         [](const testing::TestParamInfo<fuzz::Named>& info) { return std::string(info.param.name); });
