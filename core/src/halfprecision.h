#pragma once
// fp16 and bf16 numbers as the engine stores and reads them (safetensors F16/BF16 tensors,
// bf16 weights): exact widening, round-to-nearest-even narrowing, NaN kept a NaN.
#include <bit>
#include <cstdint>

namespace mythos {

// fp16/bf16 conversions (exact, round-to-nearest-even). The bf16 ones are inline: the
// engine's bf16 weight paths call them per element.
float halfToFloat(uint16_t h);
uint16_t floatToHalf(float f);
// A bf16 number is the top half of an fp32 one: widening is a 16-bit shift, exact.
inline float bf16ToFloat(uint16_t h) { return std::bit_cast<float>(static_cast<uint32_t>(h) << 16); }
inline uint16_t floatToBf16(float f) {
    const uint32_t x = std::bit_cast<uint32_t>(f);
    if ((x & 0x7fffffffu) > 0x7f800000u)
        return static_cast<uint16_t>((x >> 16) | 0x40u); // keep NaN a NaN after truncation
    return static_cast<uint16_t>((x + 0x7fffu + ((x >> 16) & 1u)) >> 16);
}

} // namespace mythos
