#include "args.h"

#include <charconv>
#include <cmath>

namespace cli {

Args::Args(const std::vector<std::string>& argv, const std::set<std::string>& valued,
           const std::set<std::string>& flags) {
    for (std::size_t i = 0; i < argv.size(); ++i) {
        std::string a = argv[i];
        if (a.rfind("--", 0) != 0)
            throw UsageError("unexpected argument '" + a + "'");
        std::string name = a.substr(2), value;
        bool inlineValue = false;
        if (auto eq = name.find('='); eq != std::string::npos) {
            value = name.substr(eq + 1);
            name = name.substr(0, eq);
            inlineValue = true;
        }
        if (flags.count(name)) {
            if (inlineValue)
                throw UsageError("option --" + name + " takes no value");
            m_flags.insert(name);
        } else if (valued.count(name)) {
            if (!inlineValue) {
                if (i + 1 >= argv.size())
                    throw UsageError("option --" + name + " needs a value");
                value = argv[++i];
            }
            if (m_values.count(name))
                throw UsageError("option --" + name + " given twice");
            m_values[name] = value;
        } else {
            throw UsageError("unknown option --" + name);
        }
    }
}

bool Args::has(const std::string& name) const { return m_values.count(name) > 0; }

std::string Args::str(const std::string& name) const {
    auto it = m_values.find(name);
    if (it == m_values.end())
        throw UsageError("missing required option --" + name);
    return it->second;
}

std::string Args::str(const std::string& name, const std::string& def) const {
    auto it = m_values.find(name);
    return it == m_values.end() ? def : it->second;
}

int64_t parseInt(const std::string& text, const std::string& what, int64_t lo, int64_t hi) {
    int64_t v = 0;
    const char* b = text.data();
    const char* e = b + text.size();
    auto [p, ec] = std::from_chars(b, e, v);
    if (ec != std::errc() || p != e || text.empty())
        throw UsageError(what + ": '" + text + "' is not an integer");
    if (v < lo || v > hi)
        throw UsageError(what + " = " + text + " is outside [" + std::to_string(lo) + ", " + std::to_string(hi) + "]");
    return v;
}

int64_t Args::integer(const std::string& name, int64_t lo, int64_t hi) const {
    return parseInt(str(name), "--" + name, lo, hi);
}

int64_t Args::integer(const std::string& name, int64_t def, int64_t lo, int64_t hi) const {
    return has(name) ? integer(name, lo, hi) : def;
}

double Args::real(const std::string& name, double def, double lo, double hi) const {
    if (!has(name))
        return def;
    const std::string t = str(name);
    std::size_t used = 0;
    double v = 0;
    try {
        v = std::stod(t, &used);
    } catch (const std::exception&) {
        used = 0;
    }
    if (used != t.size() || t.empty() || !std::isfinite(v))
        throw UsageError("--" + name + ": '" + t + "' is not a number");
    if (v < lo || v > hi)
        throw UsageError("--" + name + " = " + t + " is outside [" + std::to_string(lo) + ", " + std::to_string(hi) +
                         "]");
    return v;
}

namespace {
std::vector<std::string> split(const std::string& s, char sep) {
    std::vector<std::string> out;
    std::string cur;
    for (char c : s) {
        if (c == sep) {
            out.push_back(cur);
            cur.clear();
        } else if (c != ' ') {
            cur += c;
        }
    }
    out.push_back(cur);
    return out;
}
} // namespace

std::vector<int64_t> Args::intList(const std::string& name, const std::vector<int64_t>& def, int64_t lo,
                                   int64_t hi) const {
    if (!has(name))
        return def;
    std::vector<int64_t> out;
    for (const auto& part : split(str(name), ','))
        out.push_back(parseInt(part, "--" + name, lo, hi));
    return out;
}

std::vector<std::vector<int32_t>> parseIdRows(const std::string& text) {
    std::vector<std::vector<int32_t>> rows;
    for (const auto& row : split(text, ';')) {
        if (row.empty())
            throw UsageError("--ids: empty row in '" + text + "'");
        std::vector<int32_t> ids;
        for (const auto& part : split(row, ','))
            ids.push_back(int32_t(parseInt(part, "--ids", 0, INT32_MAX)));
        rows.push_back(std::move(ids));
    }
    return rows;
}

} // namespace cli
