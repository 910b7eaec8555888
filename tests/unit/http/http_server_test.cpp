// SPDX-License-Identifier: Apache-2.0
#include "http/http_server.h"

#include <arpa/inet.h>
#include <gmock/gmock.h>
#include <gtest/gtest.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>
#include <zlib.h>

#include <chrono>
#include <cstdint>
#include <memory>
#include <stdexcept>
#include <thread>
#include <vector>

#include "util/unique_fd.h"

namespace kvmexit {
namespace {

using ::testing::HasSubstr;
using ::testing::StartsWith;

// A socket connected to 127.0.0.1:port with a 5 s receive timeout, or an invalid one.
UniqueFd Connect(int port) {
  UniqueFd sock(::socket(AF_INET, SOCK_STREAM, 0));
  sockaddr_in address{};
  address.sin_family = AF_INET;
  address.sin_port = htons(static_cast<std::uint16_t>(port));
  address.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  timeval timeout{5, 0};
  ::setsockopt(sock.get(), SOL_SOCKET, SO_RCVTIMEO, &timeout, sizeof(timeout));
  if (::connect(sock.get(), reinterpret_cast<sockaddr*>(&address), sizeof(address)) != 0) {
    return {};
  }
  return sock;
}

void Send(const UniqueFd& sock, const std::string& data) {
  ::send(sock.get(), data.data(), data.size(), MSG_NOSIGNAL);
}

// Whatever one recv() returns (the first part of a response).
std::string ReadSome(const UniqueFd& sock) {
  char buffer[4096];
  const ssize_t n = ::recv(sock.get(), buffer, sizeof(buffer), 0);
  return n > 0 ? std::string(buffer, static_cast<std::size_t>(n)) : "";
}

// Sends one raw HTTP request to 127.0.0.1:port and returns the whole response.
std::string Request(int port, const std::string& request) {
  const UniqueFd sock = Connect(port);
  if (!sock.valid()) return "connect failed";
  Send(sock, request);
  std::string response;
  char buffer[4096];
  ssize_t n;
  while ((n = ::recv(sock.get(), buffer, sizeof(buffer), 0)) > 0) {
    response.append(buffer, static_cast<std::size_t>(n));
    // Stop at the end of the body rather than waiting for the server to close.
    const std::size_t header_end = response.find("\r\n\r\n");
    const std::size_t length_at = response.find("Content-Length: ");
    if (header_end != std::string::npos && length_at != std::string::npos) {
      const std::size_t length = std::stoul(response.substr(length_at + 16));
      if (response.size() >= header_end + 4 + length) break;
    }
  }
  return response;
}

std::string Body(const std::string& response) {
  const std::size_t end = response.find("\r\n\r\n");
  return end == std::string::npos ? "" : response.substr(end + 4);
}

std::string Gunzip(const std::string& data) {
  z_stream stream{};
  inflateInit2(&stream, 15 + 16);
  std::string out(8 << 20, '\0');
  stream.next_in = reinterpret_cast<Bytef*>(const_cast<char*>(data.data()));
  stream.avail_in = static_cast<uInt>(data.size());
  stream.next_out = reinterpret_cast<Bytef*>(out.data());
  stream.avail_out = static_cast<uInt>(out.size());
  const int result = inflate(&stream, Z_FINISH);
  out.resize(stream.total_out);
  inflateEnd(&stream);
  return result == Z_STREAM_END ? out : "inflate failed";
}

class HttpServerTest : public ::testing::Test {
 protected:
  void SetUp() override {
    std::string error;
    server_ = HttpServer::Start(
        {.listen_address = {.host = "127.0.0.1", .port = 0}, .telemetry_path = "/metrics"},
        [this] {
          ++scrapes_;
          return std::string("kvm_exits_total 42\n");
        },
        &error);
    ASSERT_NE(server_, nullptr) << error;
    ASSERT_GT(server_->port(), 0);
  }
  std::unique_ptr<HttpServer> server_;
  int scrapes_ = 0;
};

TEST_F(HttpServerTest, ServesMetricsWithPrometheusContentType) {
  const std::string response = Request(server_->port(), "GET /metrics HTTP/1.1\r\nHost: x\r\n\r\n");
  EXPECT_THAT(response, StartsWith("HTTP/1.1 200"));
  EXPECT_THAT(response, HasSubstr("Content-Type: text/plain; version=0.0.4"));
  EXPECT_EQ(Body(response), "kvm_exits_total 42\n");
  EXPECT_EQ(scrapes_, 1);
}

TEST_F(HttpServerTest, CompressesWhenTheClientAcceptsGzip) {
  const std::string response =
      Request(server_->port(), "GET /metrics HTTP/1.1\r\nHost: x\r\nAccept-Encoding: gzip\r\n\r\n");
  EXPECT_THAT(response, HasSubstr("Content-Encoding: gzip"));
  EXPECT_EQ(Gunzip(Body(response)), "kvm_exits_total 42\n");
}

// A body of `bytes` that gzip cannot shrink much (a linear congruential sequence of letters).
std::string Incompressible(std::size_t bytes) {
  std::string text(bytes, ' ');
  std::uint32_t x = 12345;
  for (char& c : text) {
    x = x * 1103515245U + 12345U;
    c = static_cast<char>('a' + (x >> 16) % 26);
  }
  return text;
}

TEST(HttpServerBuffers, TheScrapeTextGoesBackToThePoolOnceSentOrCompressed) {
  auto pool = std::make_shared<TextBufferPool>();
  // 3 MB that compress to more than one 256 KiB output step of Gzip().
  const std::string big = Incompressible(3 << 20);
  std::string error;
  const auto server = HttpServer::Start(
      {.listen_address = {.host = "127.0.0.1", .port = 0},
       .telemetry_path = "/metrics",
       .text_buffers = pool},
      [&big] { return big; }, &error);
  ASSERT_NE(server, nullptr) << error;
  // MHD frees a response once it has sent it, which can be just after the client has it all.
  const auto taken_when_back = [&pool] {
    for (int i = 0; i < 200; ++i) {
      std::string buffer = pool->Take();
      if (buffer.capacity() >= (3U << 20)) return buffer;
      std::this_thread::sleep_for(std::chrono::milliseconds(5));
    }
    return std::string();
  };
  const std::string plain = Request(server->port(), "GET /metrics HTTP/1.1\r\nHost: x\r\n\r\n");
  EXPECT_EQ(Body(plain), big);
  std::string back = taken_when_back();
  EXPECT_GE(back.capacity(), big.size());
  EXPECT_TRUE(back.empty());

  const std::string gzipped =
      Request(server->port(), "GET /metrics HTTP/1.1\r\nHost: x\r\nAccept-Encoding: gzip\r\n\r\n");
  EXPECT_THAT(gzipped, HasSubstr("Content-Encoding: gzip"));
  EXPECT_GT(Body(gzipped).size(), 256U * 1024);
  EXPECT_EQ(Gunzip(Body(gzipped)), big);
  back = taken_when_back();
  EXPECT_GE(back.capacity(), big.size());
}

TEST(TextBufferPool, KeepsAtMostItsBuffersAndHandsThemBackEmpty) {
  TextBufferPool pool(1);
  std::string first(1000, 'x');
  std::string second(2000, 'y');
  pool.Give(std::move(first));
  pool.Give(std::move(second));  // beyond max_buffers: freed
  const std::string taken = pool.Take();
  EXPECT_TRUE(taken.empty());
  EXPECT_GE(taken.capacity(), 1000U);
  EXPECT_LT(taken.capacity(), 2000U);
  EXPECT_EQ(pool.Take().capacity(), std::string().capacity());  // none left: a new string
}

TEST_F(HttpServerTest, LandingPageLinksToMetrics) {
  const std::string response = Request(server_->port(), "GET / HTTP/1.1\r\nHost: x\r\n\r\n");
  EXPECT_THAT(response, StartsWith("HTTP/1.1 200"));
  EXPECT_THAT(Body(response), HasSubstr("<a href=\"/metrics\">"));
  EXPECT_EQ(scrapes_, 0);
}

TEST_F(HttpServerTest, UnknownPathIs404AndSaysWhereMetricsAre) {
  const std::string response = Request(server_->port(), "GET /metricz HTTP/1.1\r\nHost: x\r\n\r\n");
  EXPECT_THAT(response, StartsWith("HTTP/1.1 404"));
  EXPECT_THAT(Body(response), HasSubstr("metrics are at /metrics"));
}

TEST_F(HttpServerTest, OtherMethodsAre405WithAllowHeader) {
  const std::string response =
      Request(server_->port(), "POST /metrics HTTP/1.1\r\nHost: x\r\nContent-Length: 0\r\n\r\n");
  EXPECT_THAT(response, StartsWith("HTTP/1.1 405"));
  EXPECT_THAT(response, HasSubstr("Allow: GET, HEAD"));
  EXPECT_EQ(scrapes_, 0);
}

TEST_F(HttpServerTest, GarbageRequestDoesNotCrashTheServer) {
  Request(server_->port(), "\x01\x02garbage\r\n\r\n");
  Request(server_->port(), std::string(100000, 'A'));
  const std::string response = Request(server_->port(), "GET /metrics HTTP/1.1\r\nHost: x\r\n\r\n");
  EXPECT_THAT(response, StartsWith("HTTP/1.1 200"));
}

TEST_F(HttpServerTest, GzipOnlyWhenAcceptEncodingReallyAllowsIt) {
  const auto encoded = [&](const std::string& accept) {
    const std::string response =
        Request(server_->port(),
                "GET /metrics HTTP/1.1\r\nHost: x\r\nAccept-Encoding: " + accept + "\r\n\r\n");
    return response.find("Content-Encoding: gzip") != std::string::npos;
  };
  // The parser's cases are in accept_encoding_test.cpp; these check the wiring.
  EXPECT_TRUE(encoded("GZIP;q=0.5"));
  EXPECT_FALSE(encoded("gzip;q=0"));
  EXPECT_FALSE(encoded("xgzip"));
}

TEST_F(HttpServerTest, GzipWhenAnyOfSeveralAcceptEncodingFieldsAllowsIt) {
  const std::string response = Request(server_->port(),
                                       "GET /metrics HTTP/1.1\r\nHost: x\r\nAccept-Encoding: br\r\n"
                                       "Accept-Encoding: gzip\r\n\r\n");
  EXPECT_THAT(response, HasSubstr("Content-Encoding: gzip"));
}

TEST_F(HttpServerTest, EveryResponseForbidsContentSniffing) {
  for (const std::string request :
       {"GET /metrics HTTP/1.1\r\nHost: x\r\n\r\n", "GET / HTTP/1.1\r\nHost: x\r\n\r\n",
        "GET /-/healthy HTTP/1.1\r\nHost: x\r\n\r\n", "GET /nope HTTP/1.1\r\nHost: x\r\n\r\n",
        "DELETE /metrics HTTP/1.1\r\nHost: x\r\n\r\n"}) {
    EXPECT_THAT(Request(server_->port(), request), HasSubstr("X-Content-Type-Options: nosniff"))
        << request;
  }
}

TEST_F(HttpServerTest, NotFoundDoesNotEchoTheRequestPath) {
  const std::string response = Request(
      server_->port(), "GET /%3Cscript%3Ealert(1)%3C/script%3E HTTP/1.1\r\nHost: x\r\n\r\n");
  EXPECT_THAT(response, StartsWith("HTTP/1.1 404"));
  EXPECT_EQ(Body(response), "404 not found; metrics are at /metrics\n");
}

TEST_F(HttpServerTest, HeadAnswersHeadersWithoutBody) {
  const std::string response =
      Request(server_->port(), "HEAD /metrics HTTP/1.1\r\nHost: x\r\n\r\n");
  EXPECT_THAT(response, StartsWith("HTTP/1.1 200"));
  EXPECT_EQ(Body(response), "");
}

TEST_F(HttpServerTest, HealthAndReadinessAnswerOk) {
  EXPECT_EQ(Body(Request(server_->port(), "GET /-/healthy HTTP/1.1\r\nHost: x\r\n\r\n")), "OK\n");
  EXPECT_EQ(Body(Request(server_->port(), "GET /-/ready HTTP/1.1\r\nHost: x\r\n\r\n")), "OK\n");
}

// A client that announces a 100 GB body and never sends it: the 405 must come
// at once, and a handful of them must not hold up a scrape (civetweb kept a
// worker thread per such request for its 10 s timeout, twice).
TEST_F(HttpServerTest, HugePostIsRefusedAtOnceAndDoesNotDelayScrapes) {
  std::vector<UniqueFd> posts;
  for (int i = 0; i < 8; ++i) {
    const auto start = std::chrono::steady_clock::now();
    UniqueFd sock = Connect(server_->port());
    ASSERT_TRUE(sock.valid());
    Send(sock, "POST /metrics HTTP/1.1\r\nHost: x\r\nContent-Length: 99999999999\r\n\r\n");
    const std::string status = ReadSome(sock);
    const auto elapsed = std::chrono::steady_clock::now() - start;
    EXPECT_THAT(status, StartsWith("HTTP/1.1 405"));
    EXPECT_LT(elapsed, std::chrono::seconds(1));
    posts.push_back(std::move(sock));  // kept open: the body "is still coming"
  }
  const auto start = std::chrono::steady_clock::now();
  const std::string response = Request(server_->port(), "GET /metrics HTTP/1.1\r\nHost: x\r\n\r\n");
  const auto elapsed = std::chrono::steady_clock::now() - start;
  EXPECT_THAT(response, StartsWith("HTTP/1.1 200"));
  EXPECT_LT(elapsed, std::chrono::seconds(1));
}

TEST(HttpServerLandingPageTest, EscapesTheTelemetryPath) {
  std::string error;
  const auto server = HttpServer::Start(
      {.listen_address = {.host = "127.0.0.1", .port = 0},
       .telemetry_path = "/m\"><script>alert(1)</script>"},
      [] { return std::string(); }, &error);
  ASSERT_NE(server, nullptr) << error;
  const std::string body = Body(Request(server->port(), "GET / HTTP/1.1\r\nHost: x\r\n\r\n"));
  EXPECT_THAT(body, HasSubstr("<a href=\"/m&quot;&gt;&lt;script&gt;alert(1)&lt;/script&gt;\">"));
  EXPECT_THAT(body, ::testing::Not(HasSubstr("<script>")));
}

TEST(HttpServerErrorTest, ExceptionInScrapeIsA500) {
  std::string error;
  const auto server = HttpServer::Start(
      {.listen_address = {.host = "127.0.0.1", .port = 0}, .telemetry_path = "/metrics"},
      []() -> std::string { throw std::runtime_error("boom"); }, &error);
  ASSERT_NE(server, nullptr) << error;
  EXPECT_THAT(Request(server->port(), "GET /metrics HTTP/1.1\r\nHost: x\r\n\r\n"),
              StartsWith("HTTP/1.1 500"));
  EXPECT_THAT(Request(server->port(), "GET /-/healthy HTTP/1.1\r\nHost: x\r\n\r\n"),
              StartsWith("HTTP/1.1 200"));
}

TEST(HttpServerStartTest, PortInUseIsAClearError) {
  std::string error;
  auto first = HttpServer::Start(
      {.listen_address = {.host = "127.0.0.1", .port = 0}, .telemetry_path = "/metrics"},
      [] { return std::string(); }, &error);
  ASSERT_NE(first, nullptr) << error;
  const std::string busy = "127.0.0.1:" + std::to_string(first->port());
  auto second = HttpServer::Start(
      {.listen_address = busy, .telemetry_path = "/metrics"}, [] { return std::string(); }, &error);
  EXPECT_EQ(second, nullptr);
  EXPECT_THAT(error, HasSubstr("cannot listen on " + busy));
}

TEST(HttpServerStartTest, AddressInUseIsReportedWithTheAddress) {
  std::string error;
  const auto first = HttpServer::Start(
      {.listen_address = {.host = "127.0.0.1", .port = 0}, .telemetry_path = "/metrics"},
      [] { return std::string(); }, &error);
  ASSERT_NE(first, nullptr) << error;
  const ListenAddress taken{.host = "127.0.0.1", .port = static_cast<std::uint16_t>(first->port())};
  EXPECT_EQ(HttpServer::Start(
                {.listen_address = taken, .telemetry_path = "/metrics"},
                [] { return std::string(); }, &error),
            nullptr);
  // The system's reason, not just "failed": we bind the socket ourselves for it.
  EXPECT_EQ(error, "cannot listen on 127.0.0.1:" + std::to_string(first->port()) +
                       ": Address already in use");
}

TEST(HttpServerStartTest, UnknownHostIsAClearError) {
  std::string error;
  EXPECT_EQ(HttpServer::Start(
                {.listen_address = {.host = "no-such-host.invalid", .port = 9756},
                 .telemetry_path = "/metrics"},
                [] { return std::string(); }, &error),
            nullptr);
  EXPECT_THAT(error, StartsWith("cannot listen on no-such-host.invalid:9756: "));
}

TEST(HttpServerStartTest, ListensOnIpv6Loopback) {
  std::string error;
  const auto server = HttpServer::Start(
      {.listen_address = {.host = "::1", .port = 0, .ipv6 = true}, .telemetry_path = "/metrics"},
      [] { return std::string("up 1\n"); }, &error);
  if (server == nullptr && error.find("Cannot assign requested address") != std::string::npos) {
    GTEST_SKIP() << "no IPv6 loopback here: " << error;
  }
  ASSERT_NE(server, nullptr) << error;
  UniqueFd sock(::socket(AF_INET6, SOCK_STREAM, 0));
  sockaddr_in6 address{};
  address.sin6_family = AF_INET6;
  address.sin6_port = htons(static_cast<std::uint16_t>(server->port()));
  address.sin6_addr = in6addr_loopback;
  ASSERT_EQ(::connect(sock.get(), reinterpret_cast<sockaddr*>(&address), sizeof(address)), 0);
  const std::string request = "GET /metrics HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n";
  ::send(sock.get(), request.data(), request.size(), 0);
  std::string response;
  char buffer[4096];
  ssize_t n;
  while ((n = ::recv(sock.get(), buffer, sizeof(buffer), 0)) > 0) {
    response.append(buffer, static_cast<std::size_t>(n));
  }
  EXPECT_THAT(response, StartsWith("HTTP/1.1 200"));
  EXPECT_EQ(Body(response), "up 1\n");
}

TEST(HtmlEscapeTest, EscapesMarkupAndQuotes) {
  EXPECT_EQ(HtmlEscape("/m\"><script>alert('x')</script>&"),
            "/m&quot;&gt;&lt;script&gt;alert(&#39;x&#39;)&lt;/script&gt;&amp;");
  EXPECT_EQ(HtmlEscape("/metrics"), "/metrics");
}

}  // namespace
}  // namespace kvmexit
