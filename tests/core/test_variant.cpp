// Config variants (the Compare view's "open model with changed fields"): typed or read from a
// file, so every problem is an error on one line starting with "config variant".
#include <gtest/gtest.h>

#include <algorithm>
#include <string>

#include "mythos/errors.h"
#include "mythos/variant.h"

using namespace mythos;

namespace {
std::string failure(std::string_view text) {
    try {
        applyVariant(preset("tiny_mla"), {}, parseVariant(text));
    } catch (const Error& e) {
        return e.what();
    }
    return "accepted";
}
} // namespace

TEST(Variant, ChangesConfigFieldsAndEngineOptions) {
    const Variant v =
        applyVariant(preset("tiny_mla"), {}, parseVariant(R"({"act_threshold": 0.9, "kv_layout": "compact",
                                                    "act_final_remainder": true, "weight_type": "bf16"})"));
    EXPECT_DOUBLE_EQ(v.config.act_threshold, 0.9);
    EXPECT_EQ(v.options.kvLayout, KvLayout::Compact);
    EXPECT_TRUE(v.options.actFinalRemainder);
    EXPECT_EQ(v.options.weightType, WeightType::BF16);
    ASSERT_EQ(v.changes.size(), 4u);
    EXPECT_NE(std::find(v.changes.begin(), v.changes.end(), "act_threshold=0.9"), v.changes.end());
    Config expected = preset("tiny_mla");
    expected.act_threshold = 0.9;
    EXPECT_EQ(v.config, expected);
}

TEST(Variant, EveryProblemIsOneLineNamingTheVariant) {
    for (const char* text : {"{act_threshold: 0.9}", "[1, 2]", "", R"({"warp_speed": 9})", R"({"act_threshold": 7})",
                             R"({"kv_layout": "sideways"})", R"({"kv_layout": 3})", R"({"weight_type": "fp8"})",
                             R"({"act_final_remainder": "yes"})", R"({"dim": "wide", "n_heads": -1})",
                             "{\"act_threshold\": 1e999}", "{\"x\": \"\xff\"}"}) {
        const std::string msg = failure(text);
        EXPECT_EQ(msg.rfind("config variant", 0), 0u) << text << " -> " << msg;
        EXPECT_EQ(msg.find('\n'), std::string::npos) << msg;
        for (unsigned char c : msg)
            EXPECT_TRUE(c >= 0x20 && c != 0x7f) << msg;
    }
    EXPECT_NE(failure(R"({"warp_speed": 9})").find("'warp_speed' is not a config field"), std::string::npos);
    EXPECT_NE(failure(R"({"kv_layout": "sideways"})").find("unknown KV layout 'sideways'"), std::string::npos);
}
