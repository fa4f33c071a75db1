#pragma once
// Sizes derived from untrusted numbers (a config.json, a trace, a file header, a request):
// the one place where such products and sums are checked before anything is allocated or
// a loop is run over them. Readers, the KV ledger and the views all go through it.
#include <cstdint>
#include <initializer_list>
#include <limits>
#include <optional>
#include <string>

namespace mythos {

// The most loops a request, a trace, a KV ledger or a config's max_loop_iters may hold:
// far past any trained depth (the reference's presets use 16-64), and small enough that a
// per-loop record (a ledger entry, a chart point, a trace row) stays cheap.
inline constexpr int64_t kMaxLoops = int64_t(1) << 16;

// 64-bit arithmetic that remembers an overflow instead of wrapping (or invoking UB).
class Checked {
public:
    Checked(int64_t v = 0) : m_value(v) {}

    friend Checked operator+(Checked a, Checked b) {
        Checked r;
        r.m_overflow = a.m_overflow || b.m_overflow || __builtin_add_overflow(a.m_value, b.m_value, &r.m_value);
        return r;
    }
    friend Checked operator*(Checked a, Checked b) {
        Checked r;
        r.m_overflow = a.m_overflow || b.m_overflow || __builtin_mul_overflow(a.m_value, b.m_value, &r.m_value);
        return r;
    }
    Checked& operator+=(Checked b) { return *this = *this + b; }

    bool overflow() const { return m_overflow; }
    int64_t value() const { return m_value; }
    // The value when it did not overflow and lies in [0, limit]; nullopt otherwise.
    std::optional<int64_t> within(int64_t limit = std::numeric_limits<int64_t>::max()) const {
        if (m_overflow || m_value < 0 || m_value > limit)
            return std::nullopt;
        return m_value;
    }

private:
    int64_t m_value = 0;
    bool m_overflow = false;
};

// The product of non-negative factors, when it fits in [0, limit]; nullopt otherwise (a
// negative factor, an overflow, or more than the limit).
std::optional<int64_t> boundedProduct(std::initializer_list<int64_t> factors,
                                      int64_t limit = std::numeric_limits<int64_t>::max());

// The same, throwing ArgumentError "<what> needs <a> x <b> x ... elements, more than <limit>"
// (or "... does not fit in 64 bits") otherwise.
int64_t requireBoundedProduct(std::initializer_list<int64_t> factors, int64_t limit, const std::string& what);

// Throws ArgumentError when `loops` is outside [0, kMaxLoops], naming `what`.
void requireLoopCount(int64_t loops, const std::string& what);

} // namespace mythos
