#include "mythos/checked.h"

#include "mythos/errors.h"

namespace mythos {

std::optional<int64_t> boundedProduct(std::initializer_list<int64_t> factors, int64_t limit) {
    Checked p(1);
    for (int64_t f : factors) {
        if (f < 0)
            return std::nullopt;
        p = p * Checked(f);
    }
    return p.within(limit);
}

int64_t requireBoundedProduct(std::initializer_list<int64_t> factors, int64_t limit, const std::string& what) {
    if (auto p = boundedProduct(factors, limit))
        return *p;
    std::string expr;
    Checked p(1);
    for (int64_t f : factors) {
        if (f < 0)
            throw ArgumentError(what + ": a size is negative (" + std::to_string(f) + ")");
        expr += (expr.empty() ? "" : " x ") + std::to_string(f);
        p = p * Checked(f);
    }
    if (p.overflow())
        throw ArgumentError(what + ": " + expr + " does not fit in 64 bits");
    throw ArgumentError(what + ": " + expr + " = " + std::to_string(p.value()) + " is more than the limit of " +
                        std::to_string(limit));
}

void requireLoopCount(int64_t loops, const std::string& what) {
    if (loops < 0 || loops > kMaxLoops)
        throw ArgumentError(what + " = " + std::to_string(loops) + " is outside 0.." + std::to_string(kMaxLoops) +
                            " (the most loops this tool runs or shows)");
}

} // namespace mythos
