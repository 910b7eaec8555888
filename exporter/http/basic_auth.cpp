// SPDX-License-Identifier: Apache-2.0
#include "http/basic_auth.h"

#include <crypt.h>
#include <gnutls/crypto.h>
#include <gnutls/gnutls.h>

#include <algorithm>
#include <memory>
#include <utility>

namespace kvmexit {
namespace {

// Bounds the cache; when full it is emptied, and the next scrape pays one bcrypt.
constexpr std::size_t kMaxVerified = 1024;

// Verified when the user is unknown, so that an unknown user costs the same
// bcrypt as a known one and response times do not reveal which users exist.
// (bcrypt of a random string nobody knows, cost 10.)
constexpr const char* kDecoyHash = "$2b$10$XRhEhSjL60JXIQxLZcYzZ.YMFJT0UWOW6tKq2fa0Y7B.sp.FBIuxa";

// Equal without leaving the loop early at the first difference: the time taken
// depends on the lengths only, not on how much of a secret was guessed right.
bool EqualInConstantTime(std::string_view a, std::string_view b) {
  unsigned difference = a.size() == b.size() ? 0U : 1U;
  const std::size_t length = std::max(a.size(), b.size());
  for (std::size_t i = 0; i < length; ++i) {
    const auto x = static_cast<unsigned char>(i < a.size() ? a[i] : 0);
    const auto y = static_cast<unsigned char>(i < b.size() ? b[i] : 0);
    difference |= static_cast<unsigned>(x ^ y);
  }
  return difference == 0;
}

// SHA-256 of the three, each followed by a NUL (none of them can hold one).
std::string CacheKey(std::string_view user, std::string_view password, std::string_view hash) {
  std::string input;
  for (const std::string_view part : {user, password, hash}) input.append(part).push_back('\0');
  std::string digest(32, '\0');
  if (gnutls_hash_fast(GNUTLS_DIG_SHA256, input.data(), input.size(), digest.data()) != 0) {
    return "";
  }
  return digest;
}

bool MatchesBcrypt(std::string_view password, const std::string& hash) {
  const std::string phrase(password);
  // crypt_data is large (about 32 KiB): on the heap, zeroed as crypt_rn wants.
  auto data = std::make_unique<crypt_data>();
  const char* result = crypt_rn(phrase.c_str(), hash.c_str(), data.get(), sizeof(crypt_data));
  return result != nullptr && EqualInConstantTime(result, hash);
}

}  // namespace

BasicAuth::BasicAuth(std::map<std::string, std::string, std::less<>> users)
    : users_(std::move(users)) {}

bool BasicAuth::Verify(std::string_view user, std::string_view password) {
  if (password.find('\0') != std::string_view::npos) return false;
  // Every user name is compared, so the time does not tell how far the list
  // was searched.
  const std::string* hash = nullptr;
  for (const auto& [name, user_hash] : users_) {
    if (EqualInConstantTime(name, user)) hash = &user_hash;
  }
  const std::string decoy = kDecoyHash;
  const std::string& checked = hash != nullptr ? *hash : decoy;
  const std::string key = CacheKey(user, password, checked);
  {
    const std::lock_guard lock(mutex_);
    if (hash != nullptr && !key.empty() && verified_.contains(key)) return true;
  }
  // Outside the lock: one slow bcrypt must not hold up other connections.
  const bool matches = MatchesBcrypt(password, checked) && hash != nullptr;
  if (matches && !key.empty()) {
    const std::lock_guard lock(mutex_);
    if (verified_.size() >= kMaxVerified) verified_.clear();
    verified_.insert(key);
  }
  return matches;
}

}  // namespace kvmexit
