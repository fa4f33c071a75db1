// Trace JSON (schema mythos-trace/1): round trips, field names and shapes, and errors
// for malformed traces.
#include <gtest/gtest.h>

#include <cmath>
#include <filesystem>
#include <fstream>
#include <functional>
#include <map>
#include <random>
#include <string>
#include <vector>

#include "golden.h"
#include "mythos/checked.h"
#include "mythos/errors.h"
#include "mythos/model.h"
#include "mythos/trace.h"
#include "testutil.h"

namespace fs = std::filesystem;
using namespace mythos;
using nlohmann::json;

namespace {

using testutil::TempDir;

// A cached forward on tiny_mla b2 at 4 loops, with token pieces.
class TraceTest : public ::testing::Test {
protected:
    static void SetUpTestSuite() {
        auto model = Model::open(golden::find("tiny_mla").dir.string());
        int64_t B = 0, T = 0;
        const auto ids = golden::load(golden::find("tiny_mla")).input("b2", B, T);
        KvCache cache = model->newCache(B);
        s_trace = new Trace;
        model->forward(ids, B, T, {.nLoops = 4, .cache = &cache, .trace = s_trace});
        const std::vector<std::string> samples = {"a", " ", "\n", "é", "€", "<pad>", "\"", "\\"};
        for (std::size_t i = 0; i < ids.size(); ++i)
            s_trace->pieces.push_back(samples[i % samples.size()]);
    }
    static void TearDownTestSuite() {
        delete s_trace;
        s_trace = nullptr;
    }
    const Trace& trace() const { return *s_trace; }

    // traceFromJson of a modified copy of the trace's JSON; the FormatError's message.
    // The streaming reader (parseTrace, what loadTrace uses) must say the same of the text.
    std::string formatError(const std::function<void(json&)>& edit) const {
        json j = traceToJson(trace());
        edit(j);
        std::string fromDom, fromText;
        try {
            traceFromJson(j, "bad-trace.json");
            ADD_FAILURE() << "no FormatError";
        } catch (const FormatError& e) {
            fromDom = e.what();
        } catch (const std::exception& e) {
            ADD_FAILURE() << "not a FormatError: " << e.what();
        }
        try {
            mythos::parseTrace(j.dump(), "bad-trace.json");
            ADD_FAILURE() << "no FormatError from the streaming reader";
        } catch (const FormatError& e) {
            fromText = e.what();
        } catch (const std::exception& e) {
            ADD_FAILURE() << "not a FormatError from the streaming reader: " << e.what();
        }
        EXPECT_EQ(fromDom, fromText);
        return fromDom;
    }

    static Trace* s_trace;
};

Trace* TraceTest::s_trace = nullptr;

void expectSameTrace(const Trace& a, const Trace& b, bool withLogits = true) {
    EXPECT_EQ(a.config, b.config);
    EXPECT_EQ(a.model, b.model);
    EXPECT_EQ(a.weightsHash, b.weightsHash);
    EXPECT_EQ(a.options, b.options);
    EXPECT_EQ(a.batch, b.batch);
    EXPECT_EQ(a.seqLen, b.seqLen);
    EXPECT_EQ(a.startPos, b.startPos);
    EXPECT_EQ(a.nLoops, b.nLoops);
    EXPECT_EQ(a.loopsExecuted, b.loopsExecuted);
    EXPECT_EQ(a.ids, b.ids);
    EXPECT_EQ(a.pieces, b.pieces);
    EXPECT_EQ(a.actP, b.actP);
    EXPECT_EQ(a.actCumP, b.actCumP);
    EXPECT_EQ(a.actWeight, b.actWeight);
    EXPECT_EQ(a.haltLoop, b.haltLoop);
    EXPECT_EQ(a.weightSum, b.weightSum);
    EXPECT_EQ(a.hNorm, b.hNorm);
    EXPECT_EQ(a.hDelta, b.hDelta);
    EXPECT_EQ(a.topK, b.topK);
    EXPECT_EQ(a.nExperts, b.nExperts);
    EXPECT_EQ(a.topkIds, b.topkIds);
    EXPECT_EQ(a.topkWeights, b.topkWeights);
    EXPECT_EQ(a.routerLogits, b.routerLogits);
    EXPECT_EQ(a.routerBias, b.routerBias);
    EXPECT_EQ(a.injA, b.injA);
    EXPECT_EQ(a.injB, b.injB);
    EXPECT_EQ(a.rhoA, b.rhoA);
    EXPECT_EQ(a.vocab, b.vocab);
    if (withLogits) {
        EXPECT_EQ(a.logits, b.logits);
    }
    EXPECT_EQ(a.hasKv, b.hasKv);
    EXPECT_EQ(a.kv.engineLayout, b.kv.engineLayout);
    EXPECT_EQ(a.kv.batch, b.kv.batch);
    EXPECT_EQ(a.kv.referenceBytes, b.kv.referenceBytes);
    EXPECT_EQ(a.kv.engineBytes, b.kv.engineBytes);
    ASSERT_EQ(a.kv.entries.size(), b.kv.entries.size());
    for (std::size_t i = 0; i < a.kv.entries.size(); ++i) {
        const auto& x = a.kv.entries[i];
        const auto& y = b.kv.entries[i];
        SCOPED_TRACE(x.key);
        EXPECT_EQ(x.key, y.key);
        EXPECT_EQ(x.positions, y.positions);
        EXPECT_EQ(x.referenceBytes, y.referenceBytes);
        EXPECT_EQ(x.engineBytes, y.engineBytes);
        ASSERT_EQ(x.reference.size(), y.reference.size());
        std::map<std::string, std::pair<std::vector<int64_t>, int64_t>> xs, ys;
        for (const auto& t : x.reference)
            xs[t.name] = {t.shape, t.bytes};
        for (const auto& t : y.reference)
            ys[t.name] = {t.shape, t.bytes};
        EXPECT_EQ(xs, ys);
    }
    // JSON objects keep their keys sorted, so compare the timings as a map.
    const std::map<std::string, double> ta(a.timingsMs.begin(), a.timingsMs.end());
    const std::map<std::string, double> tb(b.timingsMs.begin(), b.timingsMs.end());
    EXPECT_EQ(ta, tb);
}

TEST_F(TraceTest, TheForwardTraceIsComplete) {
    const Trace& tr = trace();
    const int64_t L = 4, B = 2, T = 16, N = B * T;
    EXPECT_EQ(tr.loopsExecuted, L);
    EXPECT_EQ(tr.batch, B);
    EXPECT_EQ(tr.seqLen, T);
    EXPECT_EQ(tr.actP.size(), std::size_t(L * N));
    EXPECT_EQ(tr.hDelta.size(), std::size_t(L * N));
    EXPECT_EQ(tr.topkIds.size(), std::size_t(L * N * tr.topK));
    EXPECT_EQ(tr.routerLogits.size(), std::size_t(L * N * tr.nExperts));
    EXPECT_EQ(tr.logits.size(), std::size_t(N * tr.vocab));
    EXPECT_TRUE(tr.hasKv);
    EXPECT_EQ(tr.kv.entries.size(), 6u);
    EXPECT_GT(tr.rhoA, 0.0);
    EXPECT_FALSE(tr.timingsMs.empty());
}

TEST_F(TraceTest, JsonRoundTripKeepsEveryField) {
    const std::string text = traceToJson(trace()).dump();
    const Trace back = traceFromJson(json::parse(text), "round-trip");
    expectSameTrace(trace(), back);
    // A second round trip gives the same text.
    EXPECT_EQ(traceToJson(back).dump(), text);
}

TEST_F(TraceTest, SaveAndLoadThroughAFile) {
    TempDir dir;
    const fs::path file = dir.path() / "trace.json";
    saveTrace(file, trace());
    ASSERT_TRUE(fs::exists(file));
    expectSameTrace(trace(), loadTrace(file));

    const fs::path small = dir.path() / "no-logits.json";
    saveTrace(small, trace(), false);
    const Trace noLogits = loadTrace(small);
    EXPECT_TRUE(noLogits.logits.empty());
    expectSameTrace(trace(), noLogits, false);
    EXPECT_LT(fs::file_size(small), fs::file_size(file));
}

TEST_F(TraceTest, JsonHasTheDocumentedFields) {
    const Trace& tr = trace();
    const json j = traceToJson(tr);
    const int64_t L = tr.loopsExecuted, B = tr.batch, T = tr.seqLen, K = tr.topK, V = tr.vocab, N = B * T;
    EXPECT_EQ(j.at("schema"), "mythos-trace/1");
    EXPECT_EQ(j.at("schema"), kTraceSchema);
    EXPECT_EQ(j.at("loops_executed"), L);
    EXPECT_EQ(j.at("n_loops"), 4);
    EXPECT_EQ(j.at("batch"), B);
    EXPECT_EQ(j.at("seq_len"), T);

    const json& logits = j.at("logits");
    ASSERT_EQ(logits.size(), std::size_t(B));
    ASSERT_EQ(logits.at(1).size(), std::size_t(T));
    ASSERT_EQ(logits.at(1).at(3).size(), std::size_t(V));
    EXPECT_EQ(logits.at(1).at(3).at(5).get<float>(), tr.logits[std::size_t((1 * T + 3) * V + 5)]);

    const json& act = j.at("act");
    for (const char* key : {"p", "cum_p", "weight"}) {
        SCOPED_TRACE(key);
        const json& a = act.at(key);
        ASSERT_EQ(a.size(), std::size_t(L));
        ASSERT_EQ(a.at(0).size(), std::size_t(B));
        ASSERT_EQ(a.at(0).at(0).size(), std::size_t(T));
        ASSERT_TRUE(a.at(0).at(0).at(0).is_number());
    }
    EXPECT_EQ(act.at("p").at(2).at(1).at(7).get<float>(), tr.actP[tr.at(2, 1, 7)]);
    EXPECT_EQ(act.at("cum_p").at(3).at(0).at(9).get<float>(), tr.actCumP[tr.at(3, 0, 9)]);
    EXPECT_EQ(act.at("weight").at(1).at(1).at(15).get<float>(), tr.actWeight[tr.at(1, 1, 15)]);
    const json& halt = act.at("halt_loop");
    ASSERT_EQ(halt.size(), std::size_t(B));
    ASSERT_EQ(halt.at(0).size(), std::size_t(T));
    for (int64_t b = 0; b < B; ++b)
        for (int64_t t = 0; t < T; ++t)
            EXPECT_EQ(halt.at(b).at(t).get<int32_t>(), tr.haltLoop[std::size_t(b * T + t)]);

    const json& routing = j.at("routing");
    for (const char* key : {"topk_ids", "weights"}) {
        SCOPED_TRACE(key);
        const json& a = routing.at(key);
        ASSERT_EQ(a.size(), std::size_t(L));
        ASSERT_EQ(a.at(0).size(), std::size_t(B));
        ASSERT_EQ(a.at(0).at(0).size(), std::size_t(T));
        ASSERT_EQ(a.at(0).at(0).at(0).size(), std::size_t(K));
    }
    EXPECT_TRUE(routing.at("topk_ids").at(0).at(0).at(0).at(0).is_number_integer());
    for (int64_t k = 0; k < K; ++k) {
        const std::size_t idx = tr.at(3, 1, 4) * std::size_t(K) + std::size_t(k);
        EXPECT_EQ(routing.at("topk_ids").at(3).at(1).at(4).at(k).get<int32_t>(), tr.topkIds[idx]);
        EXPECT_EQ(routing.at("weights").at(3).at(1).at(4).at(k).get<float>(), tr.topkWeights[idx]);
    }

    const json& hNorm = j.at("h_norm");
    ASSERT_EQ(hNorm.size(), std::size_t(L));
    ASSERT_EQ(hNorm.at(0).size(), std::size_t(B));
    ASSERT_EQ(hNorm.at(0).at(0).size(), std::size_t(T));
    EXPECT_EQ(hNorm.at(2).at(1).at(11).get<float>(), tr.hNorm[tr.at(2, 1, 11)]);
    EXPECT_EQ(j.at("rho_A").get<double>(), tr.rhoA);

    const json& kv = j.at("kv");
    EXPECT_EQ(kv.at("total_bytes").get<int64_t>(), tr.kv.referenceBytes);
    const json& entries = kv.at("entries");
    ASSERT_TRUE(entries.is_array());
    ASSERT_EQ(entries.size(), tr.kv.entries.size());
    EXPECT_EQ(entries.at(0).at("key"), "prelude_0");
    EXPECT_EQ(entries.at(1).at("key"), "recurrent_loop_0");
    EXPECT_EQ(entries.back().at("key"), "coda_0");
    int64_t sum = 0;
    for (const auto& e : entries)
        sum += e.at("bytes").get<int64_t>();
    EXPECT_EQ(sum, kv.at("total_bytes").get<int64_t>());
    EXPECT_EQ(N, int64_t(j.at("ids").size() * j.at("ids").at(0).size()));

    EXPECT_FALSE(traceToJson(tr, false).contains("logits"));
}

TEST_F(TraceTest, MalformedTracesGiveFormatErrorsNamingTheSource) {
    std::string msg = formatError([](json& j) { j["schema"] = "mythos-trace/2"; });
    EXPECT_NE(msg.find("bad-trace.json"), std::string::npos) << msg;
    EXPECT_NE(msg.find("schema"), std::string::npos) << msg;
    msg = formatError([](json& j) { j["schema"] = 1; });
    EXPECT_NE(msg.find("schema"), std::string::npos) << msg;
    msg = formatError([](json& j) { j.erase("schema"); });
    EXPECT_NE(msg.find("schema"), std::string::npos) << msg;

    msg = formatError([](json& j) { j.erase("act"); });
    EXPECT_NE(msg.find("bad-trace.json"), std::string::npos) << msg;
    EXPECT_NE(msg.find("missing field 'act'"), std::string::npos) << msg;
    msg = formatError([](json& j) { j["routing"].erase("topk_ids"); });
    EXPECT_NE(msg.find("topk_ids"), std::string::npos) << msg;
    msg = formatError([](json& j) { j.erase("config"); });
    EXPECT_NE(msg.find("config"), std::string::npos) << msg;

    msg = formatError([](json& j) { j["ids"][0].erase(j["ids"][0].size() - 1); });
    EXPECT_NE(msg.find("bad-trace.json"), std::string::npos) << msg;
    EXPECT_NE(msg.find("'ids'"), std::string::npos) << msg;
    msg = formatError([](json& j) { j["h_norm"].erase(0); });
    EXPECT_NE(msg.find("'h_norm'"), std::string::npos) << msg;
    msg = formatError([](json& j) { j["logits"][1][2].push_back(0.5); });
    EXPECT_NE(msg.find("'logits'"), std::string::npos) << msg;
    msg = formatError([](json& j) { j["act"]["p"][0][0] = 0.5; });
    EXPECT_NE(msg.find("'p'"), std::string::npos) << msg;

    msg = formatError([](json& j) { j["act"]["p"][0][0][0] = "0.5"; });
    EXPECT_NE(msg.find("bad-trace.json"), std::string::npos) << msg;
    EXPECT_NE(msg.find("'p'"), std::string::npos) << msg;
    msg = formatError([](json& j) { j["batch"] = "2"; });
    EXPECT_NE(msg.find("'batch'"), std::string::npos) << msg;
    msg = formatError([](json& j) { j["routing"]["topk_ids"][0][0][0][0] = 1.5; });
    EXPECT_NE(msg.find("topk_ids"), std::string::npos) << msg;
    msg = formatError([](json& j) { j["injection"]["rho_A"] = "big"; });
    EXPECT_NE(msg.find("rho_A"), std::string::npos) << msg;

    msg = formatError([](json& j) { j["routing"]["topk_ids"][1][0][3][1] = 8; });
    EXPECT_NE(msg.find("bad-trace.json"), std::string::npos) << msg;
    EXPECT_NE(msg.find("expert 8"), std::string::npos) << msg;
    msg = formatError([](json& j) { j["routing"]["topk_ids"][0][1][0][0] = -1; });
    EXPECT_NE(msg.find("expert -1"), std::string::npos) << msg;

    msg = formatError([](json& j) { j["batch"] = 0; });
    EXPECT_NE(msg.find("'batch'"), std::string::npos) << msg;
    msg = formatError([](json& j) { j["kv"]["entries"] = 3; });
    EXPECT_NE(msg.find("kv.entries"), std::string::npos) << msg;
    msg = formatError([](json& j) { j["kv"] = 3; });
    EXPECT_NE(msg.find("bad-trace.json"), std::string::npos) << msg;
    EXPECT_NE(msg.find("'kv'"), std::string::npos) << msg;
    msg = formatError([](json& j) { j["kv"]["engine_layout"] = 5; });
    EXPECT_NE(msg.find("engine_layout"), std::string::npos) << msg;
    msg = formatError([](json& j) { j["config"]["dim"] = "wide"; });
    EXPECT_NE(msg.find("bad-trace.json"), std::string::npos) << msg;

    for (const json& top : {json::array(), json(3), json("trace"), json(nullptr)}) {
        try {
            traceFromJson(top, "top-level.json");
            ADD_FAILURE() << "no FormatError for " << top.dump();
        } catch (const FormatError& e) {
            EXPECT_NE(std::string(e.what()).find("top-level.json"), std::string::npos) << e.what();
        }
    }
}

TEST_F(TraceTest, LoadTraceRejectsBadFiles) {
    TempDir dir;
    const fs::path bad = dir.path() / "broken.json";
    std::ofstream(bad) << "{\"schema\": \"mythos-trace/1\", ";
    try {
        loadTrace(bad);
        ADD_FAILURE() << "no FormatError";
    } catch (const FormatError& e) {
        EXPECT_NE(std::string(e.what()).find("broken.json"), std::string::npos) << e.what();
    }

    const fs::path wrong = dir.path() / "wrong.json";
    json j = traceToJson(trace());
    j["schema"] = "something-else";
    std::ofstream(wrong) << j.dump();
    try {
        loadTrace(wrong);
        ADD_FAILURE() << "no FormatError";
    } catch (const FormatError& e) {
        EXPECT_NE(std::string(e.what()).find("wrong.json"), std::string::npos) << e.what();
    }

    const fs::path missing = dir.path() / "does-not-exist.json";
    try {
        loadTrace(missing);
        ADD_FAILURE() << "no FileError";
    } catch (const FileError& e) {
        EXPECT_NE(std::string(e.what()).find("does-not-exist.json"), std::string::npos) << e.what();
    }
}

} // namespace

// What the views rely on: a trace that loads is consistent with its config and safe to index.
TEST_F(TraceTest, LoadingValidatesCountsIndicesAndDerivedSizes) {
    std::string msg = formatError([](json& j) { j["config"]["n_experts_per_tok"] = 1; });
    EXPECT_NE(msg.find("'routing.top_k' = 2 does not match the config's n_experts_per_tok = 1"), std::string::npos)
        << msg;
    msg = formatError([](json& j) { j["act"]["halt_loop"][0][0] = 99; });
    EXPECT_NE(msg.find("halt_loop"), std::string::npos) << msg;
    msg = formatError([](json& j) { j["ids"][0][0] = -3; });
    EXPECT_NE(msg.find("'ids' holds token -3"), std::string::npos) << msg;
    msg = formatError([](json& j) { j["n_loops"] = mythos::kMaxLoops + 1; });
    EXPECT_NE(msg.find("'n_loops'"), std::string::npos) << msg;
    msg = formatError([](json& j) { j["kv"]["batch"] = 7; });
    EXPECT_NE(msg.find("'kv.batch' = 7"), std::string::npos) << msg;
    msg = formatError([](json& j) {
        j["vocab"] = 7;
        j.erase("logits");
    });
    EXPECT_NE(msg.find("vocab"), std::string::npos) << msg;
    // A number where a row belongs, and a row where a number belongs.
    msg = formatError([](json& j) { j["h_delta"][1] = 3; });
    EXPECT_NE(msg.find("'h_delta' must be an array"), std::string::npos) << msg;
    msg = formatError([](json& j) { j["h_delta"][0][0][0] = json::array({1, 2}); });
    EXPECT_NE(msg.find("'h_delta' holds a non-number"), std::string::npos) << msg;
    msg = formatError([](json& j) { j["h_delta"][0][0][0] = json::object({{"a", json::array({1})}}); });
    EXPECT_NE(msg.find("'h_delta' holds a non-number"), std::string::npos) << msg;
}

TEST_F(TraceTest, OptionalFieldsStayOptionalWhenSavedAgain) {
    json j = traceToJson(trace());
    j["routing"].erase("router_logits");
    j["routing"].erase("router_bias");
    j.erase("logits");
    j["injection"]["A"][0] = nullptr; // a NaN entry: rho(A) is not a number
    j["injection"]["rho_A"] = nullptr;
    j["rho_A"] = nullptr;
    const Trace a = mythos::parseTrace(j.dump(), "optional.json");
    EXPECT_TRUE(a.routerLogits.empty());
    EXPECT_TRUE(a.routerBias.empty());
    EXPECT_TRUE(std::isnan(a.rhoA));
    const json again = traceToJson(a);
    EXPECT_FALSE(again["routing"].contains("router_logits"));
    EXPECT_TRUE(again["rho_A"].is_null());
    const Trace b = mythos::parseTrace(again.dump(), "again.json");
    EXPECT_EQ(b.topkIds, a.topkIds);
    EXPECT_TRUE(std::isnan(b.injA[0]));
}

TEST_F(TraceTest, StreamingReaderEqualsTheDomReader) {
    const json j = traceToJson(trace());
    const Trace a = traceFromJson(j, "dom.json");
    const Trace b = mythos::parseTrace(j.dump(), "text.json");
    expectSameTrace(a, b);
    for (const char* bad : {"", "{", "[1,2", "{\"schema\": \"mythos-trace/1\", \"ids\": [[1e999]]}", "\xff\xfe"}) {
        try {
            mythos::parseTrace(bad, "bad.json");
            ADD_FAILURE() << "accepted " << bad;
        } catch (const FormatError& e) {
            EXPECT_EQ(std::string(e.what()).rfind("bad.json: ", 0), 0u) << e.what();
            for (unsigned char c : std::string(e.what()))
                EXPECT_TRUE(c >= 0x20 && c < 0x7f) << e.what(); // no raw bytes of the file in the message
        }
    }
}

// A byte model's pieces can be lone bytes that are not UTF-8; saving must not fail on them.
TEST_F(TraceTest, PiecesThatAreNotUtf8StillSave) {
    Trace t = trace();
    t.pieces.assign(std::size_t(t.batch * t.seqLen), std::string("\x89"));
    TempDir dir("trace_bytes");
    mythos::saveTrace(dir / "bytes.json", t);
    const Trace back = mythos::loadTrace(dir / "bytes.json");
    EXPECT_EQ(back.ids, t.ids);
    EXPECT_EQ(back.pieces.size(), t.pieces.size());
}
