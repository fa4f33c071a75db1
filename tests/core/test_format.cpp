#include "mythos/format.h"

#include <gtest/gtest.h>

#include <cstdint>
#include <limits>

using mythos::withCommas;

TEST(Format, WithCommasGroupsThousands) {
    EXPECT_EQ(withCommas(0), "0");
    EXPECT_EQ(withCommas(999), "999");
    EXPECT_EQ(withCommas(1000), "1,000");
    EXPECT_EQ(withCommas(200019), "200,019");
    EXPECT_EQ(withCommas(1064028034), "1,064,028,034");
    EXPECT_EQ(withCommas(std::numeric_limits<int64_t>::max()), "9,223,372,036,854,775,807");
}

// The sign is never followed by a comma (the tokenizer's copy wrote "-,123,456").
TEST(Format, WithCommasKeepsTheSignApart) {
    EXPECT_EQ(withCommas(-1), "-1");
    EXPECT_EQ(withCommas(-123), "-123");
    EXPECT_EQ(withCommas(-1234), "-1,234");
    EXPECT_EQ(withCommas(-123456), "-123,456");
    EXPECT_EQ(withCommas(std::numeric_limits<int64_t>::min()), "-9,223,372,036,854,775,808");
}
