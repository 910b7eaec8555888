// SPDX-License-Identifier: Apache-2.0
// The HTTP front: the metrics path, a landing page, a health check, and clear
// errors for everything else. Built on libmicrohttpd in its event-driven
// (epoll) mode, so that a connection that sends its request slowly costs a
// file descriptor and a small buffer, not a thread: slow or idle clients cannot
// starve Prometheus' scrapes the way they did a thread-per-connection server.
#pragma once

#include <cstddef>
#include <functional>
#include <memory>
#include <string>
#include <vector>

#include "http/basic_auth.h"
#include "http/text_buffer_pool.h"
#include "http/web_config.h"
#include "util/listen_address.h"
#include "util/unique_fd.h"

struct MHD_Daemon;
struct MHD_Connection;
struct MHD_OptionItem;

namespace kvmexit {

struct TlsSessionSetup;  // http_server.cpp

// The limits below bound what any number of clients can take from the
// exporter: at most connection_limit sockets (plus the listening socket and
// two descriptors per thread) and connection_memory_limit bytes of request
// buffer each, besides the responses being sent. They are constants of the
// daemon, not configuration keys; docs/deploy.md describes them.
struct HttpServerOptions {
  ListenAddress listen_address;  // port 0 picks a free port (tests)
  std::string telemetry_path;    // e.g. "/metrics"
  // epoll threads; each serves many connections. Two let health checks and
  // new connections proceed while another thread computes a scrape
  // (docs/benchmarks.md, "HTTP server under slow clients").
  unsigned threads = 2;
  // Connections open at once; further ones wait in the listen backlog.
  unsigned connection_limit = 256;
  // Connections open at once from one client address; further ones are closed
  // at once. Keeps one host from taking all connection_limit slots.
  unsigned per_ip_connection_limit = 16;
  // A connection with no traffic for this long is closed, mid-request or idle
  // between keep-alive requests.
  unsigned connection_timeout_seconds = 5;
  // Request line and headers must fit; larger requests get 431 or 414.
  std::size_t connection_memory_limit = std::size_t{16} * 1024;
  // --web.config.file: TLS, basic authentication, extra headers. The default
  // is plain HTTP without authentication.
  WebConfig web;
  // Where the scrape's text goes once sent (or compressed), for the next
  // scrape to write into; none: it is freed.
  std::shared_ptr<TextBufferPool> text_buffers;
};

class HttpServer {
  struct PrivateTag {};  // only Start() can name it, so every server is a started one

 public:
  // Returns the exposition text for one scrape. Called from the server's
  // threads, possibly concurrently.
  using ScrapeFn = std::function<std::string()>;

  HttpServer(PrivateTag, HttpServerOptions options, ScrapeFn scrape);

  // Binds and listens on options.listen_address, then serves. On failure
  // returns nullptr and sets *error to a message naming the address and the
  // reason (e.g. address already in use).
  static std::unique_ptr<HttpServer> Start(const HttpServerOptions& options, ScrapeFn scrape,
                                           std::string* error);
  // Serves on a socket Listen() returned earlier: the daemon binds while it
  // still holds every capability and starts the server's threads only after
  // it dropped them (capabilities belong to threads).
  static std::unique_ptr<HttpServer> Start(UniqueFd listening_socket,
                                           const HttpServerOptions& options, ScrapeFn scrape,
                                           std::string* error);
  // Stops accepting, waits for the server threads and closes every connection.
  ~HttpServer();
  HttpServer(const HttpServer&) = delete;
  HttpServer& operator=(const HttpServer&) = delete;

  // The port actually bound (useful with port 0 in tests).
  int port() const { return port_; }

 private:
  // Adds the TLS options of options_.web to `mhd_options` and `flags`;
  // returns why TLS cannot be served, or "".
  std::string AddTlsOptions(std::vector<MHD_OptionItem>& mhd_options, unsigned& flags);

  struct DaemonDeleter {
    void operator()(MHD_Daemon* daemon) const;
  };

  HttpServerOptions options_;
  ScrapeFn scrape_;
  // Before daemon_: the daemon's connections use it until MHD_stop_daemon.
  std::unique_ptr<TlsSessionSetup> tls_setup_;  // null: plain HTTP
  std::unique_ptr<MHD_Daemon, DaemonDeleter> daemon_;
  int port_ = 0;
  std::unique_ptr<BasicAuth> basic_auth_;  // null: no authentication

  friend struct HttpRequestHandler;
};

// A socket bound to `address` and listening. On failure returns an invalid fd
// and sets *error to a message naming the address and the reason.
UniqueFd Listen(const ListenAddress& address, std::string* error);

// gzip-compresses `data` (RFC 1952). Returns "" on failure.
std::string Gzip(const std::string& data);

// `text` with &, <, >, " and ' replaced by character references, for HTML
// text and attribute values.
std::string HtmlEscape(const std::string& text);

}  // namespace kvmexit
