#include "http_server.h"

#include <arpa/inet.h>
#include <gmock/gmock.h>
#include <gtest/gtest.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>
#include <zlib.h>

#include "unique_fd.h"

namespace kvmexit {
namespace {

using ::testing::HasSubstr;
using ::testing::StartsWith;

// Sends one raw HTTP request to 127.0.0.1:port and returns the whole response.
std::string Request(int port, const std::string& request) {
  UniqueFd sock(::socket(AF_INET, SOCK_STREAM, 0));
  sockaddr_in address{};
  address.sin_family = AF_INET;
  address.sin_port = htons(static_cast<std::uint16_t>(port));
  address.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  timeval timeout{5, 0};
  ::setsockopt(sock.get(), SOL_SOCKET, SO_RCVTIMEO, &timeout, sizeof(timeout));
  if (::connect(sock.get(), reinterpret_cast<sockaddr*>(&address), sizeof(address)) != 0) {
    return "connect failed";
  }
  ::send(sock.get(), request.data(), request.size(), 0);
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
  std::string out(1 << 20, '\0');
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
  EXPECT_THAT(error, HasSubstr("cannot listen on 127.0.0.1:" + std::to_string(first->port())));
}

TEST(CivetwebListeningPortTest, TranslatesParsedAddresses) {
  EXPECT_EQ(CivetwebListeningPort(*ParseListenAddress(":9756")), "9756");
  EXPECT_EQ(CivetwebListeningPort(*ParseListenAddress("127.0.0.1:9756")), "127.0.0.1:9756");
  EXPECT_EQ(CivetwebListeningPort(*ParseListenAddress("[::1]:9756")), "[::1]:9756");
}

}  // namespace
}  // namespace kvmexit
