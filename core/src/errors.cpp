#include "mythos/errors.h"

#include <algorithm>
#include <cstdio>
#include <filesystem>

namespace mythos {

std::string oneLine(std::string s) {
    // "file: invalid configuration:\n  - a\n  - b" -> "file: invalid configuration: a; b"
    for (std::size_t p; (p = s.find(":\n  - ")) != std::string::npos;)
        s.replace(p, 6, ": ");
    for (std::size_t p; (p = s.find("\n  - ")) != std::string::npos;)
        s.replace(p, 5, "; ");
    std::replace(s.begin(), s.end(), '\n', ' ');
    std::replace(s.begin(), s.end(), '\r', ' ');
    return s;
}

std::string errorMessage(const std::exception& e) {
    if (const auto* fe = dynamic_cast<const std::filesystem::filesystem_error*>(&e))
        return fe->path1().string() + ": " + fe->code().message();
    return oneLine(e.what());
}

std::string jsonErrorDetail(const std::exception& e) {
    std::string detail = e.what();
    if (const auto pos = detail.find("] "); pos != std::string::npos && !detail.empty() && detail[0] == '[')
        detail = detail.substr(pos + 2);
    std::string out;
    out.reserve(detail.size());
    for (unsigned char c : detail) {
        if (c >= 0x20 && c < 0x7f) {
            out += char(c);
        } else {
            char buf[8];
            std::snprintf(buf, sizeof buf, "\\x%02X", c);
            out += buf;
        }
    }
    return out;
}

} // namespace mythos
