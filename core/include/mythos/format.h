#pragma once
// Numbers as messages and tables print them.
#include <cstdint>
#include <string>

namespace mythos {

// 1064028034 -> "1,064,028,034"; -1234 -> "-1,234".
inline std::string withCommas(int64_t n) {
    std::string s = std::to_string(n), out;
    int k = 0;
    for (auto it = s.rbegin(); it != s.rend(); ++it) {
        if (k && k % 3 == 0 && *it != '-')
            out += ',';
        out += *it;
        ++k;
    }
    return {out.rbegin(), out.rend()};
}

} // namespace mythos
