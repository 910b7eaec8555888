// The HTTP front: the metrics path, a landing page, a health check, and clear
// errors for everything else. Built on civetweb's C API.
#pragma once

#include <functional>
#include <memory>
#include <string>

#include "listen_address.h"

struct mg_context;
struct mg_connection;

namespace kvmexit {

struct HttpServerOptions {
  ListenAddress listen_address;  // port 0 picks a free port (tests)
  std::string telemetry_path;    // e.g. "/metrics"
  int threads = 4;
};

class HttpServer {
  struct PrivateTag {};  // only Start() can name it, so every server is a started one

 public:
  // Returns the exposition text for one scrape.
  using ScrapeFn = std::function<std::string()>;

  // Starts listening. On failure returns nullptr and sets *error to a message
  // naming the address and the reason (e.g. address already in use).
  HttpServer(PrivateTag, HttpServerOptions options, ScrapeFn scrape);

  static std::unique_ptr<HttpServer> Start(const HttpServerOptions& options, ScrapeFn scrape,
                                           std::string* error);
  ~HttpServer();
  HttpServer(const HttpServer&) = delete;
  HttpServer& operator=(const HttpServer&) = delete;

  // The port actually bound (useful with port 0 in tests).
  int port() const { return port_; }

 private:
  static int HandleRequest(::mg_connection* connection, void* self);
  int Handle(::mg_connection* connection);

  HttpServerOptions options_;
  ScrapeFn scrape_;
  mg_context* context_ = nullptr;
  int port_ = 0;
};

// A listen address in civetweb's listening_ports syntax: "9756", "127.0.0.1:9756", "[::1]:9756".
std::string CivetwebListeningPort(const ListenAddress& address);

// gzip-compresses `data` (RFC 1952). Returns "" on failure.
std::string Gzip(const std::string& data);

}  // namespace kvmexit
