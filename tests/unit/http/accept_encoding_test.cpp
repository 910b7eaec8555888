// SPDX-License-Identifier: Apache-2.0
#include "http/accept_encoding.h"

#include <gtest/gtest.h>

namespace kvmexit {
namespace {

TEST(AcceptEncodingTest, GzipWithAPositiveQvalueIsAccepted) {
  for (const char* header : {"gzip", "GZip", " gzip ", "deflate, gzip", "gzip;q=0.5", "gzip; q=1",
                             "gzip;Q=0.001", "gzip ; q=1.000", "x-gzip", "br;q=1.0, gzip;q=0.8",
                             "gzip;level=1", "gzip;q=0, gzip;q=0.2"}) {
    EXPECT_TRUE(AcceptsGzip(header)) << header;
  }
}

TEST(AcceptEncodingTest, GzipWithQvalueZeroIsRefused) {
  for (const char* header : {"gzip;q=0", "gzip; q=0.0", "gzip;q=0.000", "deflate, gzip;q=0"}) {
    EXPECT_FALSE(AcceptsGzip(header)) << header;
  }
}

TEST(AcceptEncodingTest, OtherCodingsThatContainGzipAreNotGzip) {
  for (const char* header :
       {"xgzip", "gzipfoo", "gzip2", "x-gzip-ish", "\"gzip\"", "identity", "deflate, br", ""}) {
    EXPECT_FALSE(AcceptsGzip(header)) << header;
  }
}

TEST(AcceptEncodingTest, WildcardCountsUnlessGzipIsNamed) {
  EXPECT_TRUE(AcceptsGzip("*"));
  EXPECT_TRUE(AcceptsGzip("br, *;q=0.1"));
  EXPECT_FALSE(AcceptsGzip("*;q=0"));
  EXPECT_FALSE(AcceptsGzip("*, gzip;q=0"));
  EXPECT_FALSE(AcceptsGzip("gzip;q=0, *"));
  EXPECT_TRUE(AcceptsGzip("*;q=0, gzip"));
}

TEST(AcceptEncodingTest, MalformedQvalueIgnoresTheMember) {
  for (const char* header : {"gzip;q=2", "gzip;q=1.5", "gzip;q=0.5000", "gzip;q=abc",
                             "gzip;q=", "gzip;q=-1", "gzip;q=.5"}) {
    EXPECT_FALSE(AcceptsGzip(header)) << header;
  }
  EXPECT_TRUE(AcceptsGzip("gzip;q=2, *"));
}

}  // namespace
}  // namespace kvmexit
