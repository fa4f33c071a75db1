// ThreadSanitizer's reports about oneDNN's primitive creation, reproduced without any code of
// this project (docs/sanitizers.md): two threads, each with its own CPU engine, make matmul
// primitives, which oneDNN documents as thread-safe (its primitive cache is).
//
//   clang++-14 -std=c++20 -g -O1 -fsanitize=thread tools/sanitizers/onednn_tsan_repro.cpp -ldnnl \
//       -o /tmp/onednn_tsan_repro
//   /tmp/onednn_tsan_repro first
//       1 report, every run: pthread_rwlock_rdlock against operator new (the cache's lock,
//       made by the first thread)
//   /tmp/onednn_tsan_repro first-warm
//       the same two threads after the main thread made the cache: no report
//   /tmp/onednn_tsan_repro same
//       4 reports in 4 runs of 11, none in the others: memcmp against posix_memalign /
//       operator new (a new primitive descriptor)
//   TSAN_OPTIONS="suppressions=tools/sanitizers/tsan.supp print_suppressions=1" /tmp/onednn_tsan_repro MODE
//       no report in any mode (print_suppressions lists the entries that matched)
//
// `first`: the second thread starts 200 ms after the first finished; it is told nothing.
// `same`: pairs of threads make the same primitive at the same time (they start together:
// a spin on an atomic, which orders only what comes before it), 100 times. A report needs a
// thread to ask for a primitive while the other is still making it (oneDNN 2.6: the
// primitive_desc constructor's cache lookup then waits on the entry's std::shared_future and
// returns the other thread's descriptor), which a run of 100 rounds does not always give.
#include <atomic>
#include <chrono>
#include <cstdio>
#include <string>
#include <thread>

#include <oneapi/dnnl/dnnl.hpp>

namespace {

void makeMatmul(int n) {
    using dt = dnnl::memory::data_type;
    const dnnl::engine engine(dnnl::engine::kind::cpu, 0);
    const dnnl::memory::desc x({DNNL_RUNTIME_DIM_VAL, 256}, dt::f32, dnnl::memory::dims{256, 1});
    const dnnl::memory::desc w({256, n}, dt::f32, dnnl::memory::dims{1, 256});
    const dnnl::memory::desc y({DNNL_RUNTIME_DIM_VAL, n}, dt::f32, dnnl::memory::dims{n, 1});
    const dnnl::matmul::primitive_desc pd(dnnl::matmul::desc(x, w, y), engine);
    const dnnl::matmul primitive(pd);
}

} // namespace

int main(int argc, char** argv) {
    const std::string mode = argc > 1 ? argv[1] : "";
    if (mode == "first" || mode == "first-warm") {
        if (mode == "first-warm")
            std::printf("primitive cache capacity %d\n", dnnl::get_primitive_cache_capacity());
        std::thread a([] { makeMatmul(64); });
        std::thread b([] {
            std::this_thread::sleep_for(std::chrono::milliseconds(200));
            makeMatmul(128);
        });
        a.join();
        b.join();
    } else if (mode == "same") {
        std::printf("primitive cache capacity %d\n", dnnl::get_primitive_cache_capacity());
        for (int round = 0; round < 100; ++round) {
            std::atomic<int> started{0};
            const auto both = [&, round] {
                started.fetch_add(1);
                while (started.load() < 2) {}
                makeMatmul(16 + 16 * round);
            };
            std::thread a(both), b(both);
            a.join();
            b.join();
        }
    } else {
        std::fprintf(stderr, "usage: %s first|first-warm|same\n", argv[0]);
        return 2;
    }
    std::puts("done");
    return 0;
}
