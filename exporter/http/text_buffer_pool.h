// SPDX-License-Identifier: Apache-2.0
// Buffers of large responses, handed back when a response has been sent and
// reused by the next scrape.
//
// At 1,000 VMs with every drill-down kind on, an exposition is 18 MB. A fresh
// 18 MB string per scrape is placed somewhere new in the heap each time, and
// glibc keeps the old places resident (the exporter grew to 100 MiB on a live
// set of 40); mapping it afresh instead costs thousands of page faults a
// scrape. One buffer, reused, costs neither (docs/benchmarks.md, "Drill-down
// read").
#pragma once

#include <cstddef>
#include <mutex>
#include <string>
#include <vector>

namespace kvmexit {

class TextBufferPool {
 public:
  // Keeps at most `max_buffers` (concurrent scrapes beyond that allocate).
  explicit TextBufferPool(std::size_t max_buffers = 1) : max_buffers_(max_buffers) {}

  // An empty string, with the capacity of a buffer handed back earlier if any.
  std::string Take() {
    std::lock_guard lock(mutex_);
    if (free_.empty()) return {};
    std::string buffer = std::move(free_.back());
    free_.pop_back();
    return buffer;
  }

  // Keeps `buffer`'s memory for a later Take(), or frees it when full.
  void Give(std::string&& buffer) {
    buffer.clear();
    std::lock_guard lock(mutex_);
    if (free_.size() < max_buffers_) free_.push_back(std::move(buffer));
  }

 private:
  std::mutex mutex_;
  std::vector<std::string> free_;
  std::size_t max_buffers_;
};

}  // namespace kvmexit
