#include "halfprecision.h"

#include <bit>

namespace mythos {

float halfToFloat(uint16_t h) {
    const uint32_t sign = static_cast<uint32_t>(h & 0x8000u) << 16;
    const uint32_t exp = (h >> 10) & 0x1fu;
    const uint32_t mant = h & 0x3ffu;
    uint32_t bits;
    if (exp == 0x1f) {
        bits = sign | 0x7f800000u | (mant << 13);
    } else if (exp != 0) {
        bits = sign | ((exp + 112) << 23) | (mant << 13);
    } else if (mant == 0) {
        bits = sign;
    } else {
        // Subnormal: mant * 2^-24, exactly representable as a normal float.
        const int shift = std::countl_zero(mant) - 21; // moves the leading 1 to bit 10
        bits = sign | (static_cast<uint32_t>(113 - shift) << 23) | ((mant << shift) & 0x3ffu) << 13;
    }
    return std::bit_cast<float>(bits);
}

uint16_t floatToHalf(float f) {
    uint32_t x = std::bit_cast<uint32_t>(f);
    const uint16_t sign = static_cast<uint16_t>((x >> 16) & 0x8000u);
    x &= 0x7fffffffu;
    if (x >= 0x7f800000u) // inf stays inf; NaN stays a (quiet) NaN
        return static_cast<uint16_t>(sign | 0x7c00u | (x > 0x7f800000u ? 0x200u | ((x >> 13) & 0x3ffu) : 0u));
    if (x >= 0x477ff000u) // >= 65520 rounds past the largest half (65504)
        return static_cast<uint16_t>(sign | 0x7c00u);
    if (x >= 0x38800000u) { // normal half
        uint32_t r = (x - 0x38000000u) >> 13;
        const uint32_t rem = x & 0x1fffu;
        if (rem > 0x1000u || (rem == 0x1000u && (r & 1u)))
            ++r; // a carry into the exponent is the correct rounding
        return static_cast<uint16_t>(sign | r);
    }
    if (x <= 0x33000000u) // <= 2^-25: ties to even gives zero
        return sign;
    const uint32_t e = x >> 23;
    const uint32_t m = (x & 0x7fffffu) | 0x800000u;
    const uint32_t shift = 126 - e; // units of 2^-24
    uint32_t r = m >> shift;
    const uint32_t rem = m & ((1u << shift) - 1);
    const uint32_t half = 1u << (shift - 1);
    if (rem > half || (rem == half && (r & 1u)))
        ++r;
    return static_cast<uint16_t>(sign | r);
}

} // namespace mythos
