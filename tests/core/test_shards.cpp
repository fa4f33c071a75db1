// Sharded checkpoints (model.safetensors.index.json, the Hugging Face convention): written
// and read back exactly, and a lying or hostile index is an error naming it.
#include <gtest/gtest.h>

#include <filesystem>
#include <fstream>
#include <string>

#include <nlohmann/json.hpp>

#include "mythos/errors.h"
#include "mythos/weights.h"
#include "testutil.h"

using namespace mythos;
namespace fs = std::filesystem;
using testutil::TempDir;

namespace {

const fs::path kTiny = fs::path(MYTHOS_TEST_DATA_DIR) / "tiny_mla";

std::string errorOf(const fs::path& folder) {
    try {
        loadCheckpoint(folder);
    } catch (const Error& e) {
        return e.what();
    }
    return "loaded";
}

void writeIndex(const fs::path& folder, const nlohmann::json& j) {
    std::ofstream(folder / "model.safetensors.index.json") << j.dump();
}

} // namespace

TEST(Shards, WrittenInShardsAndReadBackExactly) {
    const Checkpoint ck = loadCheckpoint(kTiny);
    TempDir dir("shards");
    saveCheckpoint(dir.path(), ck.config, ck.weights, {}, 128 << 10);
    EXPECT_FALSE(fs::exists(dir / "model.safetensors"));
    int shards = 0;
    for (const auto& e : fs::directory_iterator(dir.path()))
        shards += e.path().extension() == ".safetensors";
    EXPECT_GT(shards, 3);
    const auto index = nlohmann::json::parse(std::ifstream(dir / "model.safetensors.index.json"));
    EXPECT_TRUE(index["weight_map"].contains("recurrent.injection.log_A"));
    const Checkpoint back = loadCheckpoint(dir.path());
    EXPECT_EQ(back.weightsHash, ck.weightsHash);
    ASSERT_EQ(back.weights.size(), ck.weights.size());
    for (const auto& [name, t] : ck.weights)
        EXPECT_EQ(back.weights.at(name).data, t.data) << name;
}

TEST(Shards, HostileIndexesAreErrorsNamingTheIndex) {
    const Checkpoint ck = loadCheckpoint(kTiny);
    TempDir dir("shards_bad");
    saveCheckpoint(dir.path(), ck.config, ck.weights, {}, 128 << 10);
    const auto good = nlohmann::json::parse(std::ifstream(dir / "model.safetensors.index.json"));
    const std::string indexName = (dir / "model.safetensors.index.json").string();
    auto expectError = [&](const nlohmann::json& j, const std::string& what) {
        writeIndex(dir.path(), j);
        const std::string msg = errorOf(dir.path());
        EXPECT_NE(msg.find(indexName), std::string::npos) << msg;
        EXPECT_NE(msg.find(what), std::string::npos) << msg;
    };
    nlohmann::json j = good;
    j["weight_map"]["embed.weight"] = "../../etc/passwd";
    expectError(j, "must be a file name in the folder");
    j = good;
    j["weight_map"]["embed.weight"] = "model-99999-of-99999.safetensors";
    expectError(j, "is not a file in");
    j = good;
    // Another shard than the one that holds it.
    const std::string other = good["weight_map"]["recurrent.injection.log_A"].get<std::string>() ==
                                      good["weight_map"]["embed.weight"].get<std::string>()
                                  ? good["weight_map"]["final_norm.weight"].get<std::string>()
                                  : good["weight_map"]["recurrent.injection.log_A"].get<std::string>();
    j["weight_map"]["embed.weight"] = other;
    expectError(j, "which does not hold it");
    j = good;
    j["weight_map"].erase("recurrent.injection.B");
    expectError(j, "missing tensor 'recurrent.injection.B'");
    expectError(nlohmann::json::array(), "weight_map");
    expectError({{"weight_map", {{"embed.weight", 3}}}}, "is not a file name");
    std::ofstream(dir / "model.safetensors.index.json") << "{\"weight_map\": ";
    EXPECT_NE(errorOf(dir.path()).find("not valid JSON"), std::string::npos);
    writeIndex(dir.path(), good);
    EXPECT_EQ(errorOf(dir.path()), "loaded");
}
