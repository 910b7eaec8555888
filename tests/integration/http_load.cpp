// SPDX-License-Identifier: Apache-2.0
// Hostile and bursty HTTP clients against a running exporter, from loopback
// addresses only: slow connections that trickle a request, a burst of parallel
// scrapes, and POSTs that announce a body they never send. Prints the scrape
// latency, and the server's file descriptors and resident memory (read from
// /proc/PID) before, during and after each load. With --assert it exits 1 when a
// bound is exceeded (slow_clients_test.sh); without, it only
// measures (docs/benchmarks.md, "HTTP server under slow clients").
//
// usage: http_load PORT PID [--slow N] [--hold SECONDS] [--burst N --parallel P]
//                  [--huge-posts N] [--assert]
#include <arpa/inet.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <poll.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <optional>
#include <string>
#include <thread>
#include <vector>

#include "util/unique_fd.h"

namespace {

using kvmexit::UniqueFd;
using Clock = std::chrono::steady_clock;

double MillisecondsSince(Clock::time_point start) {
  return std::chrono::duration<double, std::milli>(Clock::now() - start).count();
}

int FdCount(int pid) {
  std::error_code error;
  int count = 0;
  for (std::filesystem::directory_iterator it("/proc/" + std::to_string(pid) + "/fd", error), end;
       !error && it != end; it.increment(error)) {
    ++count;
  }
  return count;
}

long RssKb(int pid) {
  std::ifstream status("/proc/" + std::to_string(pid) + "/status");
  std::string line;
  while (std::getline(status, line)) {
    if (line.starts_with("VmRSS:")) return std::strtol(line.c_str() + 6, nullptr, 10);
  }
  return -1;
}

// A non-blocking TCP socket from `source` (a loopback address) to 127.0.0.1:port,
// connecting or connected; invalid if the system refused.
UniqueFd ConnectFrom(const std::string& source, int port) {
  UniqueFd sock(::socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0));
  if (!sock.valid()) return {};
  sockaddr_in local{};
  local.sin_family = AF_INET;
  ::inet_pton(AF_INET, source.c_str(), &local.sin_addr);
  if (::bind(sock.get(), reinterpret_cast<sockaddr*>(&local), sizeof(local)) != 0) return {};
  sockaddr_in remote{};
  remote.sin_family = AF_INET;
  remote.sin_port = htons(static_cast<std::uint16_t>(port));
  remote.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  if (::connect(sock.get(), reinterpret_cast<sockaddr*>(&remote), sizeof(remote)) != 0 &&
      errno != EINPROGRESS) {
    return {};
  }
  return sock;
}

bool WaitFor(int fd, short events, Clock::time_point deadline) {
  const auto left = std::chrono::duration_cast<std::chrono::milliseconds>(deadline - Clock::now());
  if (left.count() <= 0) return false;
  pollfd entry{fd, events, 0};
  return ::poll(&entry, 1, static_cast<int>(left.count())) == 1;
}

// Sends `request` and reads the whole answer (the server closes after it);
// returns what arrived before the deadline.
std::string Exchange(const std::string& source, int port, const std::string& request,
                     std::chrono::milliseconds timeout, bool until_close = true) {
  const auto deadline = Clock::now() + timeout;
  const UniqueFd sock = ConnectFrom(source, port);
  if (!sock.valid() || !WaitFor(sock.get(), POLLOUT, deadline)) return "";
  if (::send(sock.get(), request.data(), request.size(), MSG_NOSIGNAL) !=
      static_cast<ssize_t>(request.size())) {
    return "";
  }
  std::string response;
  char buffer[65536];
  while (WaitFor(sock.get(), POLLIN, deadline)) {
    const ssize_t n = ::recv(sock.get(), buffer, sizeof(buffer), 0);
    if (n <= 0) break;
    response.append(buffer, static_cast<std::size_t>(n));
    if (!until_close) break;
  }
  return response;
}

// One scrape from `source`; its latency in ms, or nullopt if it failed or
// took longer than `timeout`.
std::optional<double> Scrape(const std::string& source, int port,
                             std::chrono::milliseconds timeout) {
  const auto start = Clock::now();
  const std::string response =
      Exchange(source, port,
               "GET /metrics HTTP/1.1\r\nHost: 127.0.0.1\r\nAccept-Encoding: gzip\r\n"
               "Connection: close\r\n\r\n",
               timeout);
  if (!response.starts_with("HTTP/1.1 200") && !response.starts_with("HTTP/1.0 200")) {
    return std::nullopt;
  }
  return MillisecondsSince(start);
}

std::string Loopback(int last_octet) { return "127.0.0." + std::to_string(last_octet); }

// The server's fds back at (or below) the baseline within 10 s; prints how long it took.
bool FdsReturn(int pid, int baseline, const char* phase) {
  const auto start = Clock::now();
  int fds = FdCount(pid);
  while (fds > baseline && MillisecondsSince(start) < 10000) {
    std::this_thread::sleep_for(std::chrono::milliseconds(50));
    fds = FdCount(pid);
  }
  std::printf("after %s: fds=%d (baseline %d) after %.0f ms, rss_kb=%ld\n", phase, fds, baseline,
              MillisecondsSince(start), RssKb(pid));
  return fds <= baseline;
}

struct Options {
  int port = 0;
  int pid = 0;
  int slow = 0;
  int hold_seconds = 12;
  int burst = 0;
  int parallel = 50;
  int huge_posts = 0;
  bool assert_bounds = false;
};

constexpr auto kScrapeTimeout = std::chrono::milliseconds(30000);
// A scrape must answer within this with --assert (Prometheus' default timeout is 10 s).
constexpr double kMaxScrapeMs = 1000;
// The server's own descriptors beyond its idle count: its connection limit
// (256, exporter/http/http_server.h) and a little slack.
constexpr int kMaxExtraFds = 256 + 8;

bool SlowClients(const Options& options, int baseline_fds) {
  // Half from one address, half spread over ten, as many hosts behind one NAT
  // or a handful of misbehaving ones would be. The scraper is 127.0.0.200.
  const std::string partial = "GET /metrics HTTP/1.1\r\nHost: 127.0.0.1\r\nX-Slow: ";
  const auto source_of = [&](int i) {
    return i < options.slow / 2 ? Loopback(1) : Loopback(2 + i % 10);
  };
  std::vector<UniqueFd> slow;
  slow.reserve(static_cast<std::size_t>(options.slow));
  for (int i = 0; i < options.slow; ++i) slow.push_back(ConnectFrom(source_of(i), options.port));
  std::vector<bool> started(slow.size(), false);
  std::atomic<bool> stop{false};
  std::atomic<int> alive{0};
  std::atomic<int> reconnects{0};
  // One byte per connection every 2 s: less idle than any sane timeout. A
  // connection the server closed is opened again, as an attacker would.
  std::thread trickle([&] {
    while (!stop) {
      int sent = 0;
      for (std::size_t i = 0; i < slow.size(); ++i) {
        const std::string data = started[i] ? "a" : partial;
        if (::send(slow[i].get(), data.data(), data.size(), MSG_NOSIGNAL | MSG_DONTWAIT) > 0) {
          started[i] = true;
          ++sent;
        } else if (errno == EPIPE || errno == ECONNRESET || !slow[i].valid()) {
          slow[i] = ConnectFrom(source_of(static_cast<int>(i)), options.port);
          started[i] = false;
          ++reconnects;
        }
      }
      alive = sent;
      for (int i = 0; i < 20 && !stop; ++i) {
        std::this_thread::sleep_for(std::chrono::milliseconds(100));
      }
    }
  });
  std::this_thread::sleep_for(std::chrono::milliseconds(500));
  std::vector<double> latencies;
  int failed = 0;
  int max_fds = 0;
  long max_rss = 0;
  const auto start = Clock::now();
  while (MillisecondsSince(start) < options.hold_seconds * 1000.0) {
    const std::optional<double> ms = Scrape(Loopback(200), options.port, kScrapeTimeout);
    if (ms) {
      latencies.push_back(*ms);
    } else {
      ++failed;
    }
    max_fds = std::max(max_fds, FdCount(options.pid));
    max_rss = std::max(max_rss, RssKb(options.pid));
    std::this_thread::sleep_for(std::chrono::milliseconds(1000));
  }
  stop = true;
  trickle.join();
  std::sort(latencies.begin(), latencies.end());
  const double worst = latencies.empty() ? -1 : latencies.back();
  std::printf(
      "slow %d: sending in last round=%d reopened=%d | scrapes ok=%zu failed=%d median_ms=%.1f "
      "max_ms=%.1f | server fds max=%d rss_kb max=%ld\n",
      options.slow, alive.load(), reconnects.load(), latencies.size(), failed,
      latencies.empty() ? -1 : latencies[latencies.size() / 2], worst, max_fds, max_rss);
  slow.clear();
  bool ok = FdsReturn(options.pid, baseline_fds, "slow clients");
  if (options.assert_bounds) {
    ok = ok && failed == 0 && worst >= 0 && worst < kMaxScrapeMs &&
         max_fds <= baseline_fds + kMaxExtraFds;
  }
  return ok;
}

bool Burst(const Options& options, int baseline_fds) {
  std::atomic<int> next{0};
  std::atomic<int> succeeded{0};
  std::atomic<bool> done{false};
  int max_fds = 0;
  long max_rss = 0;
  std::thread monitor([&] {
    while (!done) {
      max_fds = std::max(max_fds, FdCount(options.pid));
      max_rss = std::max(max_rss, RssKb(options.pid));
      std::this_thread::sleep_for(std::chrono::milliseconds(20));
    }
  });
  const auto start = Clock::now();
  std::vector<std::thread> clients;
  clients.reserve(static_cast<std::size_t>(options.parallel));
  for (int t = 0; t < options.parallel; ++t) {
    // Ten client addresses, so the per-address connection limit is not what is measured.
    clients.emplace_back([&, source = Loopback(50 + t % 10)] {
      while (next++ < options.burst) {
        if (Scrape(source, options.port, kScrapeTimeout)) ++succeeded;
      }
    });
  }
  for (std::thread& client : clients) client.join();
  const double elapsed = MillisecondsSince(start);
  done = true;
  monitor.join();
  std::printf(
      "burst %d x %d parallel: ok=%d failed=%d time_ms=%.0f | server fds max=%d rss_kb max=%ld\n",
      options.burst, options.parallel, succeeded.load(), options.burst - succeeded.load(), elapsed,
      max_fds, max_rss);
  bool ok = FdsReturn(options.pid, baseline_fds, "burst");
  if (options.assert_bounds) {
    ok = ok && succeeded == options.burst && max_fds <= baseline_fds + kMaxExtraFds;
  }
  return ok;
}

bool HugePosts(const Options& options) {
  // Each announces 100 GB and sends nothing: the answer must not wait for it.
  const std::string post =
      "POST /metrics HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Length: 99999999999\r\n\r\n";
  std::vector<UniqueFd> held;
  double worst_405 = 0;
  int answered = 0;
  for (int i = 0; i < options.huge_posts; ++i) {
    const auto start = Clock::now();
    const auto deadline = start + kScrapeTimeout;
    UniqueFd sock = ConnectFrom(Loopback(100 + i % 10), options.port);
    if (!sock.valid() || !WaitFor(sock.get(), POLLOUT, deadline)) continue;
    ::send(sock.get(), post.data(), post.size(), MSG_NOSIGNAL);
    char buffer[64] = {};
    if (WaitFor(sock.get(), POLLIN, deadline) && ::recv(sock.get(), buffer, 12, 0) == 12 &&
        std::strncmp(buffer + 9, "405", 3) == 0) {
      ++answered;
    }
    worst_405 = std::max(worst_405, MillisecondsSince(start));
    held.push_back(std::move(sock));  // the "body" is still coming
  }
  const std::optional<double> scrape = Scrape(Loopback(200), options.port, kScrapeTimeout);
  std::printf(
      "huge posts %d: answered 405=%d slowest_405_ms=%.1f | scrape with them open: %s%.1f ms\n",
      options.huge_posts, answered, worst_405, scrape ? "" : "FAILED ", scrape.value_or(-1));
  return !options.assert_bounds || (answered == options.huge_posts && worst_405 < kMaxScrapeMs &&
                                    scrape && *scrape < kMaxScrapeMs);
}

}  // namespace

int main(int argc, char** argv) {
  if (argc < 3) {
    std::fprintf(stderr,
                 "usage: %s PORT PID [--slow N] [--hold SECONDS] [--burst N] [--parallel P] "
                 "[--huge-posts N] [--assert]\n",
                 argv[0]);
    return 2;
  }
  Options options;
  options.port = std::atoi(argv[1]);
  options.pid = std::atoi(argv[2]);
  for (int i = 3; i < argc; ++i) {
    const std::string flag = argv[i];
    const auto value = [&] { return i + 1 < argc ? std::atoi(argv[++i]) : 0; };
    if (flag == "--slow")
      options.slow = value();
    else if (flag == "--hold")
      options.hold_seconds = value();
    else if (flag == "--burst")
      options.burst = value();
    else if (flag == "--parallel")
      options.parallel = std::max(1, value());
    else if (flag == "--huge-posts")
      options.huge_posts = value();
    else if (flag == "--assert")
      options.assert_bounds = true;
    else {
      std::fprintf(stderr, "unknown flag %s\n", flag.c_str());
      return 2;
    }
  }
  // 1,000 client sockets plus our own files: more than the usual soft limit of 1024.
  rlimit limit{};
  if (::getrlimit(RLIMIT_NOFILE, &limit) == 0 && limit.rlim_cur < 8192) {
    limit.rlim_cur = std::min<rlim_t>(8192, limit.rlim_max);
    ::setrlimit(RLIMIT_NOFILE, &limit);
  }

  // Warm up (the first scrape may open files the exporter keeps), then the baseline.
  Scrape(Loopback(200), options.port, kScrapeTimeout);
  std::this_thread::sleep_for(std::chrono::milliseconds(200));
  const int baseline_fds = FdCount(options.pid);
  std::vector<double> idle;
  for (int i = 0; i < 5; ++i) {
    if (const auto ms = Scrape(Loopback(200), options.port, kScrapeTimeout)) idle.push_back(*ms);
  }
  std::sort(idle.begin(), idle.end());
  std::printf("baseline: fds=%d rss_kb=%ld scrape median_ms=%.1f (of %zu)\n", baseline_fds,
              RssKb(options.pid), idle.empty() ? -1 : idle[idle.size() / 2], idle.size());

  bool ok = !idle.empty();
  if (options.slow > 0) ok = SlowClients(options, baseline_fds) && ok;
  if (options.burst > 0) ok = Burst(options, baseline_fds) && ok;
  if (options.huge_posts > 0) ok = HugePosts(options) && ok;
  std::printf("%s\n", ok ? "OK" : "FAILED: a bound was exceeded (see above)");
  return ok ? 0 : 1;
}
