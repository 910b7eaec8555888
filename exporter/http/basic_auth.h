// SPDX-License-Identifier: Apache-2.0
// HTTP Basic authentication against bcrypt hashes (web config
// basic_auth_users), checked with the system's crypt library (libxcrypt).
#pragma once

#include <map>
#include <mutex>
#include <set>
#include <string>
#include <string_view>

namespace kvmexit {

class BasicAuth {
 public:
  // `users`: user -> bcrypt hash, as ParseWebConfig checked them.
  explicit BasicAuth(std::map<std::string, std::string, std::less<>> users);

  // True when `user` is known and `password` matches its hash. Thread-safe.
  // A successful check is remembered (as a SHA-256 digest, not the password):
  // bcrypt costs tens of milliseconds by design and Prometheus sends the same
  // credentials on every scrape. Failures are never cached, so a wrong
  // password always costs an attacker a full bcrypt.
  bool Verify(std::string_view user, std::string_view password);

 private:
  std::map<std::string, std::string, std::less<>> users_;
  std::mutex mutex_;
  std::set<std::string> verified_;  // digests of (user, password, hash) that matched
};

}  // namespace kvmexit
