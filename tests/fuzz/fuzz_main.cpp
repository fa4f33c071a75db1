// The libFuzzer entry point of one target; FUZZ_TARGET names its function (fuzz_targets.h).
#include "fuzz_targets.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, std::size_t size) {
    fuzz::FUZZ_TARGET(data, size);
    return 0;
}
