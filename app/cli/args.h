#pragma once
// A small command-line parser for mythos-cli: `--name value` options and `--flag`s,
// every value checked, unknown options rejected.
#include <cstdint>
#include <map>
#include <optional>
#include <set>
#include <stdexcept>
#include <string>
#include <vector>

namespace cli {

class UsageError : public std::runtime_error {
public:
    using std::runtime_error::runtime_error;
};

class Args {
public:
    // `valued` options take a value; `flags` take none.
    Args(const std::vector<std::string>& argv, const std::set<std::string>& valued, const std::set<std::string>& flags);

    bool has(const std::string& name) const;
    bool flag(const std::string& name) const { return m_flags.count(name) > 0; }
    std::string str(const std::string& name) const; // UsageError when missing
    std::string str(const std::string& name, const std::string& def) const;
    int64_t integer(const std::string& name, int64_t lo, int64_t hi) const;
    int64_t integer(const std::string& name, int64_t def, int64_t lo, int64_t hi) const;
    double real(const std::string& name, double def, double lo, double hi) const;
    std::vector<int64_t> intList(const std::string& name, const std::vector<int64_t>& def, int64_t lo,
                                 int64_t hi) const; // "1,4,8"

private:
    std::map<std::string, std::string> m_values;
    std::set<std::string> m_flags;
};

// "1,2,3;4,5,6" -> rows of ids. Throws UsageError for malformed lists.
std::vector<std::vector<int32_t>> parseIdRows(const std::string& text);
int64_t parseInt(const std::string& text, const std::string& what, int64_t lo, int64_t hi);

} // namespace cli
