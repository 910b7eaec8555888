#include "http_server.h"

#include <civetweb.h>
#include <zlib.h>

#include <cstring>
#include <mutex>
#include <vector>

namespace kvmexit {
namespace {

constexpr const char* kMetricsContentType = "text/plain; version=0.0.4; charset=utf-8";

// civetweb reports start-up failures only through this callback.
thread_local std::string t_last_civetweb_error;

int CaptureCivetwebLog(const mg_connection* /*connection*/, const char* message) {
  t_last_civetweb_error = message;
  return 1;
}

void Respond(mg_connection* connection, int status, const char* content_type,
             const std::string& body, bool head_only, const char* extra_headers = "") {
  mg_printf(connection,
            "HTTP/1.1 %d %s\r\nContent-Type: %s\r\nContent-Length: %zu\r\n%sConnection: "
            "close\r\n\r\n",
            status, mg_get_response_code_text(connection, status), content_type, body.size(),
            extra_headers);
  if (!head_only) mg_write(connection, body.data(), body.size());
}

bool AcceptsGzip(mg_connection* connection) {
  const char* accept = mg_get_header(connection, "Accept-Encoding");
  return accept != nullptr && std::strstr(accept, "gzip") != nullptr;
}

std::string LandingPage(const std::string& telemetry_path) {
  return "<!DOCTYPE html>\n<html><head><title>KVM exit exporter</title></head><body>\n"
         "<h1>KVM exit exporter</h1>\n"
         "<p>Counts every KVM VM exit by reason, VM and vCPU, from an eBPF program on the "
         "kvm:kvm_exit tracepoint.</p>\n"
         "<p><a href=\"" +
         telemetry_path + "\">Metrics</a></p>\n</body></html>\n";
}

}  // namespace

std::string CivetwebListeningPort(const ListenAddress& address) {
  // An empty host means all IPv4 addresses, which civetweb spells as the bare
  // port; the other forms are already in civetweb's syntax.
  return address.host.empty() ? std::to_string(address.port) : FormatListenAddress(address);
}

std::string Gzip(const std::string& data) {
  z_stream stream{};
  // 15 window bits + 16 selects the gzip wrapper instead of zlib's. Level 1:
  // on a 1.9 MB exposition it takes 5.5 ms instead of 17 ms at the default
  // level, for 155 KB instead of 113 KB, and Prometheus always asks for gzip.
  if (deflateInit2(&stream, Z_BEST_SPEED, Z_DEFLATED, 15 + 16, 8, Z_DEFAULT_STRATEGY) != Z_OK) {
    return "";
  }
  std::string out(deflateBound(&stream, static_cast<uLong>(data.size())), '\0');
  stream.next_in = reinterpret_cast<Bytef*>(const_cast<char*>(data.data()));
  stream.avail_in = static_cast<uInt>(data.size());
  stream.next_out = reinterpret_cast<Bytef*>(out.data());
  stream.avail_out = static_cast<uInt>(out.size());
  const int result = deflate(&stream, Z_FINISH);
  out.resize(stream.total_out);
  deflateEnd(&stream);
  return result == Z_STREAM_END ? out : "";
}

HttpServer::HttpServer(PrivateTag /*tag*/, HttpServerOptions options, ScrapeFn scrape)
    : options_(std::move(options)), scrape_(std::move(scrape)) {}

std::unique_ptr<HttpServer> HttpServer::Start(const HttpServerOptions& options, ScrapeFn scrape,
                                              std::string* error) {
  static std::once_flag init_once;
  std::call_once(init_once, [] { mg_init_library(0); });

  const std::string ports = CivetwebListeningPort(options.listen_address);
  auto server = std::make_unique<HttpServer>(PrivateTag{}, options, std::move(scrape));
  const std::string threads = std::to_string(options.threads);
  const char* civet_options[] = {
      "listening_ports", ports.c_str(),       "num_threads", threads.c_str(), "request_timeout_ms",
      "10000",           "enable_keep_alive", "no",          nullptr};
  mg_callbacks callbacks{};
  callbacks.log_message = CaptureCivetwebLog;
  t_last_civetweb_error.clear();
  server->context_ = mg_start(&callbacks, server.get(), civet_options);
  if (server->context_ == nullptr) {
    *error = "cannot listen on " + FormatListenAddress(options.listen_address) + ": " +
             (t_last_civetweb_error.empty() ? "civetweb failed to start" : t_last_civetweb_error);
    return nullptr;
  }
  mg_set_request_handler(server->context_, "/", &HttpServer::HandleRequest, server.get());
  mg_server_port bound[4];
  const int count = mg_get_server_ports(server->context_, 4, bound);
  if (count > 0) server->port_ = bound[0].port;
  return server;
}

HttpServer::~HttpServer() {
  if (context_ != nullptr) mg_stop(context_);
}

int HttpServer::HandleRequest(mg_connection* connection, void* self) {
  return static_cast<HttpServer*>(self)->Handle(connection);
}

int HttpServer::Handle(mg_connection* connection) {
  const mg_request_info* request = mg_get_request_info(connection);
  const std::string method = request->request_method ? request->request_method : "";
  const std::string path = request->local_uri ? request->local_uri : "";
  const bool head_only = method == "HEAD";
  if (method != "GET" && !head_only) {
    Respond(connection, 405, "text/plain; charset=utf-8",
            "method " + method + " not allowed; use GET or HEAD\n", false, "Allow: GET, HEAD\r\n");
    return 405;
  }
  if (path == options_.telemetry_path) {
    std::string body = scrape_();
    if (AcceptsGzip(connection)) {
      if (std::string compressed = Gzip(body); !compressed.empty()) {
        Respond(connection, 200, kMetricsContentType, compressed, head_only,
                "Content-Encoding: gzip\r\n");
        return 200;
      }
    }
    Respond(connection, 200, kMetricsContentType, body, head_only);
    return 200;
  }
  if (path == "/") {
    Respond(connection, 200, "text/html; charset=utf-8", LandingPage(options_.telemetry_path),
            head_only);
    return 200;
  }
  if (path == "/-/healthy" || path == "/-/ready") {
    Respond(connection, 200, "text/plain; charset=utf-8", "OK\n", head_only);
    return 200;
  }
  Respond(connection, 404, "text/plain; charset=utf-8",
          "404 not found: " + path + "; metrics are at " + options_.telemetry_path + "\n",
          head_only);
  return 404;
}

}  // namespace kvmexit
