// The spin team (core/src/spin_team.h) and the products it splits: every part runs once,
// nested and concurrent use fall back to the caller, errors reach the caller, and a split
// product equals the unsplit one.
#include <gtest/gtest.h>

#include <atomic>
#include <chrono>
#include <random>
#include <stdexcept>
#include <thread>
#include <vector>

#include "halfprecision.h"
#include "mythos/model.h"
#include "mythos/safetensors.h"
#include "ops.h"
#include "spin_team.h"
#include "testutil.h"

using namespace mythos;
using mythos::detail::SpinTeam;
using testutil::maxRelErr;

namespace {

// Normal values from a fixed seed.
std::vector<float> randomVector(std::size_t n, uint32_t seed) {
    std::mt19937 rng(seed);
    return testutil::randomVector(n, rng);
}

// Restores the process's thread count (all cores) after a test that changes it.
struct ThreadsGuard {
    ~ThreadsGuard() { setNumThreads(0); }
};

} // namespace

TEST(SpinTeam, RunsEveryPartExactlyOnce) {
    SpinTeam team;
    team.setThreads(2);
    for (int64_t parts : {1, 2, 3, 17, 200}) {
        std::vector<std::atomic<int>> runs(static_cast<std::size_t>(parts));
        for (int round = 0; round < 50; ++round) {
            ASSERT_TRUE(team.tryRun(parts, [&](int64_t p, int thread) {
                EXPECT_GE(thread, 0);
                EXPECT_LT(thread, 2);
                runs[std::size_t(p)].fetch_add(1);
            }));
        }
        for (const auto& r : runs)
            EXPECT_EQ(r.load(), 50) << parts << " parts";
    }
}

TEST(SpinTeam, AWorkerTakesThePartsTheCallerCannot) {
    // The caller claims part 0 first and holds it until part 1 is done: only the worker can
    // run part 1.
    SpinTeam team;
    team.setThreads(2);
    std::atomic<bool> secondDone{false};
    int secondThread = -1;
    ASSERT_TRUE(team.tryRun(2, [&](int64_t p, int thread) {
        if (p == 1) {
            secondThread = thread;
            secondDone.store(true);
            return;
        }
        const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(20);
        while (!secondDone.load() && std::chrono::steady_clock::now() < deadline)
            std::this_thread::yield();
    }));
    EXPECT_TRUE(secondDone.load());
    EXPECT_EQ(secondThread, 1);
}

TEST(SpinTeam, DeclinesWhenItCannotHelp) {
    SpinTeam team;
    auto nothing = [](int64_t, int) {};
    EXPECT_FALSE(team.tryRun(4, nothing)) << "one thread: the caller runs its own loop";
    team.setThreads(2);
    EXPECT_FALSE(team.tryRun(SpinTeam::kMaxParts + 1, nothing));
    bool nested = true;
    ASSERT_TRUE(team.tryRun(2, [&](int64_t p, int) {
        if (p == 0)
            nested = team.tryRun(2, nothing);
    }));
    EXPECT_FALSE(nested) << "a part's own loop runs on its thread";
    EXPECT_TRUE(team.tryRun(2, nothing)) << "free again afterwards";
}

TEST(SpinTeam, AnErrorInAPartReachesTheCaller) {
    SpinTeam team;
    team.setThreads(2);
    for (int64_t bad : {0, 5}) {
        try {
            team.tryRun(8, [&](int64_t p, int) {
                if (p == bad)
                    throw std::runtime_error("part failed");
            });
            ADD_FAILURE() << "no exception";
        } catch (const std::runtime_error& e) {
            EXPECT_STREQ(e.what(), "part failed");
        }
    }
    std::atomic<int> ran{0};
    EXPECT_TRUE(team.tryRun(8, [&](int64_t, int) { ran.fetch_add(1); }));
    EXPECT_EQ(ran.load(), 8);
}

TEST(SpinTeam, FollowsAChangeOfSize) {
    SpinTeam team;
    for (int threads : {3, 2, 4}) {
        team.setThreads(threads);
        std::atomic<int> maxThread{0}, ran{0};
        ASSERT_TRUE(team.tryRun(64, [&](int64_t, int thread) {
            int seen = maxThread.load();
            while (thread > seen && !maxThread.compare_exchange_weak(seen, thread)) {}
            ran.fetch_add(1);
        }));
        EXPECT_EQ(ran.load(), 64);
        EXPECT_LT(maxThread.load(), threads);
    }
}

TEST(SpinTeam, ConcurrentCallersEachGetTheirWorkDone) {
    SpinTeam team;
    team.setThreads(2);
    std::atomic<int> total{0};
    auto caller = [&] {
        for (int r = 0; r < 200; ++r) {
            int mine = 0;
            std::atomic<int> shared{0};
            auto body = [&](int64_t, int) { shared.fetch_add(1); };
            if (!team.tryRun(6, body))
                for (int64_t i = 0; i < 6; ++i)
                    body(i, 0);
            mine = shared.load();
            EXPECT_EQ(mine, 6);
            total.fetch_add(mine);
        }
    };
    std::thread a(caller), b(caller);
    a.join();
    b.join();
    EXPECT_EQ(total.load(), 2 * 200 * 6);
}

TEST(SplitProducts, OneRowProductIsTheSameOnOneAndTwoThreads) {
    const ThreadsGuard guard;
    const int64_t K = 256, N = 1000; // 2^18 multiply-adds: split
    const auto x = randomVector(std::size_t(4 * K), 1), w = randomVector(std::size_t(N * K), 2);
    std::vector<uint16_t> wb(w.size());
    for (std::size_t i = 0; i < w.size(); ++i)
        wb[i] = floatToBf16(w[i]);
    for (int64_t M : {1, 3}) {
        for (const WeightRef& ref : {WeightRef(w.data()), WeightRef::bf16Bits(wb.data())}) {
            std::vector<std::vector<float>> y;
            for (int threads : {1, 2}) {
                setNumThreads(threads);
                MatmulEngine mm;
                y.emplace_back(std::size_t(M * N), 1.0f);
                mm.linear(x.data(), M, K, ref, N, y.back().data(), true);
            }
            EXPECT_EQ(y[0], y[1]) << "M = " << M << (ref.bf16 ? " bf16" : " f32");
        }
    }
}

TEST(SplitProducts, GroupEqualsItsProductsOneByOne) {
    const ThreadsGuard guard;
    const int64_t K = 256;
    // Widths that do not divide by four (an FFN's 341) and unequal ones (q, k, v).
    for (const std::vector<int64_t>& widths :
         {std::vector<int64_t>{341, 341}, std::vector<int64_t>{256, 64, 64}, std::vector<int64_t>{8, 300}}) {
        std::vector<std::vector<float>> ws;
        for (std::size_t i = 0; i < widths.size(); ++i)
            ws.push_back(randomVector(std::size_t(widths[i] * K), uint32_t(10 + i)));
        for (int64_t M : {1, 2, 4, 9}) {
            const auto x = randomVector(std::size_t(M * K), 3);
            for (int threads : {1, 2}) {
                setNumThreads(threads);
                MatmulEngine mm;
                std::vector<std::vector<float>> one, group;
                for (std::size_t i = 0; i < widths.size(); ++i) {
                    one.emplace_back(std::size_t(M * widths[i]));
                    group.emplace_back(std::size_t(M * widths[i]), -7.0f);
                    mm.linear(x.data(), M, K, ws[i].data(), widths[i], one.back().data());
                }
                if (widths.size() == 2)
                    mm.linearGroup(
                        x.data(), M, K,
                        {{ws[0].data(), widths[0], group[0].data()}, {ws[1].data(), widths[1], group[1].data()}});
                else
                    mm.linearGroup(x.data(), M, K,
                                   {{ws[0].data(), widths[0], group[0].data()},
                                    {ws[1].data(), widths[1], group[1].data()},
                                    {ws[2].data(), widths[2], group[2].data()}});
                for (std::size_t i = 0; i < widths.size(); ++i)
                    EXPECT_EQ(group[i], one[i]) << "output " << i << ", M = " << M << ", threads " << threads;
            }
        }
    }
}

TEST(SplitProducts, LargeProductSplitByColumnsMatchesOneThread) {
    const ThreadsGuard guard;
    const int64_t M = 128, K = 512, N = 1000; // 2^26 multiply-adds: oneDNN, split by columns
    const auto x = randomVector(std::size_t(M * K), 4), w = randomVector(std::size_t(N * K), 5);
    std::vector<std::vector<float>> lin, kn;
    for (int threads : {1, 2}) {
        setNumThreads(threads);
        MatmulEngine mm;
        lin.emplace_back(std::size_t(M * N), 0.5f);
        mm.linear(x.data(), M, K, w.data(), N, lin.back().data(), true);
        kn.emplace_back(std::size_t(M * N));
        mm.matmulKN(x.data(), M, K, w.data(), N, kn.back().data()); // w read as [K, N]
    }
    std::vector<float> ref(std::size_t(M * N)), refKn(std::size_t(M * N));
    linearReference(x.data(), M, K, w.data(), N, ref.data());
    for (auto& v : ref)
        v += 0.5f;
    for (int64_t m = 0; m < M; ++m)
        for (int64_t n = 0; n < N; ++n) {
            double s = 0;
            for (int64_t k = 0; k < K; ++k)
                s += double(x[std::size_t(m * K + k)]) * double(w[std::size_t(k * N + n)]);
            refKn[std::size_t(m * N + n)] = float(s);
        }
    for (int i = 0; i < 2; ++i) {
        EXPECT_LE(maxRelErr(lin[std::size_t(i)], ref), 1e-5) << "threads " << i + 1;
        EXPECT_LE(maxRelErr(kn[std::size_t(i)], refKn), 1e-5) << "threads " << i + 1;
    }
}

TEST(SplitProducts, DecodeStepsAreTheSameOnOneAndTwoThreads) {
    // readme_gqa's shapes: a decode step splits its q/k/v group, the FFN's gate and up, the
    // MoE's experts and the head across the team.
    const ThreadsGuard guard;
    std::vector<int32_t> ids(16);
    for (std::size_t i = 0; i < ids.size(); ++i)
        ids[i] = int32_t((i * 37 + 11) % 1000);
    std::vector<std::vector<float>> steps;
    for (int threads : {1, 2}) {
        EngineOptions eo;
        eo.threads = threads;
        auto model = Model::open("preset:readme_gqa:1", eo);
        KvCache cache = model->newCache(1);
        ForwardOptions fo;
        fo.nLoops = 4;
        fo.cache = &cache;
        std::vector<float> all = model->forward(ids, 1, int64_t(ids.size()), fo);
        for (int64_t s = 0; s < 4; ++s) {
            fo.startPos = int64_t(ids.size()) + s;
            const auto logits = model->forward({int32_t(100 + s)}, 1, 1, fo);
            all.insert(all.end(), logits.begin(), logits.end());
        }
        steps.push_back(std::move(all));
    }
    EXPECT_EQ(steps[0], steps[1]);
}
