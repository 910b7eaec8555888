// SPDX-License-Identifier: Apache-2.0
// The one listen-address parser: what the config check accepts is what the server binds.
#include "util/listen_address.h"

#include <gmock/gmock.h>
#include <gtest/gtest.h>

namespace kvmexit {
namespace {

TEST(ListenAddressTest, ParsesEachForm) {
  EXPECT_EQ(ParseListenAddress(":9756"), (ListenAddress{.host = "", .port = 9756}));
  EXPECT_EQ(ParseListenAddress("127.0.0.1:80"), (ListenAddress{.host = "127.0.0.1", .port = 80}));
  EXPECT_EQ(ParseListenAddress("exporter-1.example:65535"),
            (ListenAddress{.host = "exporter-1.example", .port = 65535}));
  EXPECT_EQ(ParseListenAddress("[::1]:9756"),
            (ListenAddress{.host = "::1", .port = 9756, .ipv6 = true}));
  EXPECT_EQ(ParseListenAddress("[fe80::1%eth0]:1"),
            (ListenAddress{.host = "fe80::1%eth0", .port = 1, .ipv6 = true}));
}

TEST(ListenAddressTest, RejectsWhatNoServerCouldBind) {
  for (const char* bad : {"", "9756", "host", "host:", "host:0", ":65536", ":http", ":+80", ": 80",
                          "::1:9756", "[::1]9756", "[]:9756", "[::1:9756", "a b:80", "[x]:80"}) {
    EXPECT_FALSE(ParseListenAddress(bad).has_value()) << bad;
  }
}

TEST(ListenAddressTest, RejectsMalformedLiterals) {
  // Digits and dots are meant as IPv4, so they must be one; brackets hold IPv6.
  for (const char* bad :
       {"1.2.3.4.5:80", "256.1.1.1:80", "1.2.3:80", "1..2.3:80", "01.2.3.4:80", "[1.2.3.4]:80",
        "[1::2::3]:80", "[:::1]:80", "[12345::1]:80", "[::g]:80", "[::1%]:80", "[::1%a b]:80"}) {
    EXPECT_FALSE(ParseListenAddress(bad).has_value()) << bad;
  }
  for (const char* good : {"0.0.0.0:80", "255.255.255.255:80", "[::ffff:1.2.3.4]:80", "[::]:80",
                           "1host:80", "host-1.example:80"}) {
    EXPECT_TRUE(ParseListenAddress(good).has_value()) << good;
  }
}

TEST(ListenAddressTest, ResolvesWhatAServerCanBind) {
  std::string error;
  EXPECT_NE(ResolveListenAddress(*ParseListenAddress(":9756"), &error), nullptr) << error;
  EXPECT_NE(ResolveListenAddress(*ParseListenAddress("localhost:9756"), &error), nullptr) << error;
  EXPECT_NE(ResolveListenAddress(*ParseListenAddress("127.0.0.1:9756"), &error), nullptr) << error;
  EXPECT_EQ(error, "");
}

TEST(ListenAddressTest, AHostNoResolverKnowsIsAClearError) {
  std::string error;
  // .invalid never resolves (RFC 6761).
  EXPECT_EQ(ResolveListenAddress(*ParseListenAddress("nohost.invalid:80"), &error), nullptr);
  EXPECT_THAT(error, ::testing::StartsWith("cannot resolve listen host \"nohost.invalid\": "));
  EXPECT_GT(error.size(), std::string("cannot resolve listen host \"nohost.invalid\": ").size());
}

TEST(ListenAddressTest, FormatReadsBackAsTheSameAddress) {
  for (const char* text : {":9756", "127.0.0.1:80", "[::1]:9756", "[fe80::1%eth0]:1"}) {
    const auto parsed = ParseListenAddress(text);
    ASSERT_TRUE(parsed.has_value()) << text;
    EXPECT_EQ(FormatListenAddress(*parsed), text);
    EXPECT_EQ(ParseListenAddress(FormatListenAddress(*parsed)), parsed);
  }
}

}  // namespace
}  // namespace kvmexit
