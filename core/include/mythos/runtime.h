#pragma once
// The engine's process-wide figures a program may report: its thread count, the
// multiply-adds its matrix products did, and the rate its matmul reaches on a large square
// product (mythos-cli bench's roofline). The thread count is set through
// EngineOptions::threads (model.h).
#include <cstdint>

namespace mythos {

// Number of threads used by oneDNN and the engine's own loops.
int numThreads();

// Multiply-adds done by every matrix product of the engine since the last reset (for FLOP/s
// figures).
uint64_t matmulMacs();
void resetMatmulMacs();

// GFLOP/s of the engine's fp32 matmul on an n x n by n x n product: the median of five timed
// runs after a warm-up one. (Counted in matmulMacs like any other product.)
double sgemmGflops(int64_t n);

} // namespace mythos
