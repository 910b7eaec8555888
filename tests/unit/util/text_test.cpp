// SPDX-License-Identifier: Apache-2.0
// The shared text helpers: the edge cases every parser relies on.
#include "util/text.h"

#include <cstdint>

#include <gtest/gtest.h>

namespace kvmexit {
namespace {

using Parts = std::vector<std::string_view>;

TEST(TrimTest, RemovesEveryCLocaleWhitespaceCharacter) {
  EXPECT_EQ(Trim(" \t\n\v\f\rword \t\n\v\f\r"), "word");
  EXPECT_EQ(Trim("  a b  "), "a b");
  EXPECT_EQ(TrimLeft("  a b  "), "a b  ");
  EXPECT_EQ(TrimRight("  a b  "), "  a b");
  EXPECT_EQ(Trim(" \t "), "");
  EXPECT_EQ(Trim(""), "");
}

TEST(IsDigitsTest, OnlyNonEmptyAsciiDigits) {
  EXPECT_TRUE(IsDigits("0"));
  EXPECT_TRUE(IsDigits("0123456789"));
  EXPECT_FALSE(IsDigits(""));
  EXPECT_FALSE(IsDigits("-1"));
  EXPECT_FALSE(IsDigits("+1"));
  EXPECT_FALSE(IsDigits(" 1"));
  EXPECT_FALSE(IsDigits("1a"));
}

TEST(SplitTest, KeepsEmptyPartsUnlessAskedNotTo) {
  EXPECT_EQ(Split("a,,b", ','), (Parts{"a", "", "b"}));
  EXPECT_EQ(Split("", ','), (Parts{""}));
  EXPECT_EQ(Split(",", ','), (Parts{"", ""}));
  EXPECT_EQ(SplitNonEmpty("/a//b/", '/'), (Parts{"a", "b"}));
  EXPECT_EQ(SplitNonEmpty("", '/'), Parts{});
}

TEST(BasenameTest, LastPathComponent) {
  EXPECT_EQ(Basename("/usr/bin/kvm"), "kvm");
  EXPECT_EQ(Basename("kvm"), "kvm");
  EXPECT_EQ(Basename("/run/dir/"), "");
}

TEST(ToLowerTest, AsciiLettersOnly) { EXPECT_EQ(ToLower("AbC-09\xc3\x89"), "abc-09\xc3\x89"); }

TEST(ParseDecimalTest, WholeTextOrNothing) {
  EXPECT_EQ(ParseDecimal<std::uint64_t>("18446744073709551615"), UINT64_MAX);
  EXPECT_EQ(ParseDecimal<std::int64_t>("-7"), -7);
  EXPECT_FALSE(ParseDecimal<std::uint64_t>("18446744073709551616"));  // overflow
  EXPECT_FALSE(ParseDecimal<std::uint64_t>("12x"));
  EXPECT_FALSE(ParseDecimal<std::uint64_t>(" 12"));
  EXPECT_FALSE(ParseDecimal<std::uint64_t>(""));
}

}  // namespace
}  // namespace kvmexit
