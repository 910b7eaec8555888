// SPDX-License-Identifier: Apache-2.0
#include "http/basic_auth.h"

#include <crypt.h>
#include <gtest/gtest.h>

#include <chrono>
#include <memory>
#include <string>

namespace kvmexit {
namespace {

// A bcrypt hash of `password` made by libxcrypt, with prefix "$2b$" or "$2y$"
// (htpasswd writes $2y$).
std::string Bcrypt(const char* prefix, unsigned long cost, const std::string& password) {
  char setting[CRYPT_GENSALT_OUTPUT_SIZE];
  if (crypt_gensalt_rn(prefix, cost, nullptr, 0, setting, sizeof(setting)) == nullptr) return "";
  auto data = std::make_unique<crypt_data>();
  const char* hash = crypt_rn(password.c_str(), setting, data.get(), sizeof(crypt_data));
  return hash != nullptr ? hash : "";
}

TEST(BasicAuth, AcceptsOnlyTheRightPasswordOfAKnownUser) {
  BasicAuth auth({{"alice", Bcrypt("$2b$", 4, "secret")}, {"bob", Bcrypt("$2y$", 4, "hunter2")}});
  EXPECT_TRUE(auth.Verify("alice", "secret"));
  EXPECT_TRUE(auth.Verify("bob", "hunter2"));
  EXPECT_FALSE(auth.Verify("alice", "hunter2"));
  EXPECT_FALSE(auth.Verify("alice", "secre"));
  EXPECT_FALSE(auth.Verify("alice", ""));
  EXPECT_FALSE(auth.Verify("carol", "secret"));
  EXPECT_FALSE(auth.Verify("ALICE", "secret"));
  EXPECT_FALSE(auth.Verify("alic", "secret"));
  EXPECT_FALSE(auth.Verify("", ""));
  EXPECT_FALSE(auth.Verify("alice", std::string("secret\0x", 8)));
}

TEST(BasicAuth, ACachedSuccessIsStillRefusedWithAnotherPassword) {
  BasicAuth auth({{"alice", Bcrypt("$2b$", 4, "secret")}});
  ASSERT_TRUE(auth.Verify("alice", "secret"));
  EXPECT_FALSE(auth.Verify("alice", "other"));
  EXPECT_TRUE(auth.Verify("alice", "secret"));
}

// bcrypt at cost 10 takes tens of milliseconds by design; Prometheus sends the
// same credentials every scrape, so the second check must not pay it again.
TEST(BasicAuth, RepeatedGoodCredentialsSkipBcrypt) {
  BasicAuth auth({{"prometheus", Bcrypt("$2y$", 10, "scrape")}});
  using Clock = std::chrono::steady_clock;
  const auto first_start = Clock::now();
  ASSERT_TRUE(auth.Verify("prometheus", "scrape"));
  const auto first = Clock::now() - first_start;
  const auto second_start = Clock::now();
  ASSERT_TRUE(auth.Verify("prometheus", "scrape"));
  const auto second = Clock::now() - second_start;
  EXPECT_LT(second * 20, first) << "first " << std::chrono::nanoseconds(first).count()
                                << " ns, second " << std::chrono::nanoseconds(second).count()
                                << " ns";
}

}  // namespace
}  // namespace kvmexit
