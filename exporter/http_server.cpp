#include "http_server.h"

#include <microhttpd.h>
#include <netdb.h>
#include <sys/socket.h>
#include <zlib.h>

#include <cerrno>
#include <cstring>
#include <utility>
#include <vector>

#include "accept_encoding.h"
#include "unique_fd.h"

namespace kvmexit {
namespace {

constexpr const char* kMetricsContentType = "text/plain; version=0.0.4; charset=utf-8";
constexpr const char* kTextContentType = "text/plain; charset=utf-8";
// Connections that completed the handshake but wait for a free slot while the
// server is at its connection limit; the kernel holds them, not the exporter.
constexpr int kListenBacklog = 128;

struct ResponseDeleter {
  void operator()(MHD_Response* response) const { MHD_destroy_response(response); }
};
using ResponsePtr = std::unique_ptr<MHD_Response, ResponseDeleter>;

using Header = std::pair<const char*, const char*>;

// A response whose body MHD reads from `body` until it has sent it; the
// string is handed to MHD and freed by it, so a large exposition is not copied.
ResponsePtr MakeResponse(std::string body) {
  auto owned = std::make_unique<std::string>(std::move(body));
  ResponsePtr response(MHD_create_response_from_buffer_with_free_callback_cls(
      owned->size(), owned->data(),
      [](void* cls) { std::unique_ptr<std::string>(static_cast<std::string*>(cls)); },
      owned.get()));
  if (response) static_cast<void>(owned.release());  // MHD owns it now
  return response;
}

MHD_Result Respond(MHD_Connection* connection, unsigned status, const char* content_type,
                   std::string body, std::initializer_list<Header> headers = {}) {
  const ResponsePtr response = MakeResponse(std::move(body));
  if (!response) return MHD_NO;  // out of memory: MHD closes the connection
  MHD_add_response_header(response.get(), MHD_HTTP_HEADER_CONTENT_TYPE, content_type);
  // Browsers must not guess a script or HTML type into the plain-text answers.
  MHD_add_response_header(response.get(), "X-Content-Type-Options", "nosniff");
  for (const auto& [name, value] : headers) MHD_add_response_header(response.get(), name, value);
  // MHD sends no body for HEAD by itself, with the Content-Length of the GET.
  return MHD_queue_response(connection, status, response.get());
}

// Every Accept-Encoding field, joined by "," as RFC 9110 allows for lists.
std::string AcceptEncoding(MHD_Connection* connection) {
  std::string joined;
  MHD_get_connection_values(
      connection, MHD_HEADER_KIND,
      [](void* cls, MHD_ValueKind /*kind*/, const char* key, const char* value) {
        if (value != nullptr && strcasecmp(key, MHD_HTTP_HEADER_ACCEPT_ENCODING) == 0) {
          auto* out = static_cast<std::string*>(cls);
          if (!out->empty()) out->push_back(',');
          out->append(value);
        }
        return MHD_YES;
      },
      &joined);
  return joined;
}

std::string LandingPage(const std::string& telemetry_path) {
  return "<!DOCTYPE html>\n<html><head><title>KVM exit exporter</title></head><body>\n"
         "<h1>KVM exit exporter</h1>\n"
         "<p>Counts every KVM VM exit by reason, VM and vCPU, from an eBPF program on the "
         "kvm:kvm_exit tracepoint.</p>\n"
         "<p><a href=\"" +
         HtmlEscape(telemetry_path) + "\">Metrics</a></p>\n</body></html>\n";
}

int BoundPort(int fd) {
  sockaddr_storage address{};
  socklen_t length = sizeof(address);
  if (::getsockname(fd, reinterpret_cast<sockaddr*>(&address), &length) != 0) return 0;
  if (address.ss_family == AF_INET6) {
    return ntohs(reinterpret_cast<const sockaddr_in6*>(&address)->sin6_port);
  }
  return ntohs(reinterpret_cast<const sockaddr_in*>(&address)->sin_port);
}

}  // namespace

// Creates, binds and listens on the socket ourselves rather than letting MHD
// do it: MHD reports only that it failed, and an operator needs the reason.
UniqueFd Listen(const ListenAddress& address, std::string* error) {
  const std::string where = "cannot listen on " + FormatListenAddress(address) + ": ";
  std::string resolve_error;
  const AddrInfoList found = ResolveListenAddress(address, &resolve_error);
  if (!found) {
    *error = where + resolve_error;
    return {};
  }
  int last_errno = 0;
  for (const addrinfo* candidate = found.get(); candidate != nullptr;
       candidate = candidate->ai_next) {
    UniqueFd fd(::socket(candidate->ai_family, candidate->ai_socktype | SOCK_CLOEXEC,
                         candidate->ai_protocol));
    if (!fd.valid()) {
      last_errno = errno;
      continue;
    }
    // Lets a restarted exporter bind while the old one's connections are in
    // TIME_WAIT; Linux still refuses a port another socket listens on.
    const int on = 1;
    ::setsockopt(fd.get(), SOL_SOCKET, SO_REUSEADDR, &on, sizeof(on));
    if (::bind(fd.get(), candidate->ai_addr, candidate->ai_addrlen) == 0 &&
        ::listen(fd.get(), kListenBacklog) == 0) {
      return fd;
    }
    last_errno = errno;
  }
  *error = where + std::strerror(last_errno);
  return {};
}

// The MHD access handler, a friend of HttpServer. Every request is answered on
// its first call, when the headers are in and before any body is read: MHD then
// closes the connection instead of reading a body nobody wants, so a POST that
// announces 100 GB ties up nothing.
struct HttpRequestHandler {
  static MHD_Result Call(void* cls, MHD_Connection* connection, const char* url, const char* method,
                         const char* /*version*/, const char* /*upload_data*/,
                         std::size_t* /*upload_data_size*/, void** /*request_state*/) noexcept {
    // An exception must not unwind through MHD's C frames.
    try {
      return Handle(*static_cast<const HttpServer*>(cls), connection, url, method);
    } catch (...) {
      try {
        return Respond(connection, MHD_HTTP_INTERNAL_SERVER_ERROR, kTextContentType,
                       "internal error\n");
      } catch (...) {
        return MHD_NO;  // closes the connection
      }
    }
  }

  static MHD_Result Handle(const HttpServer& server, MHD_Connection* connection, const char* url,
                           const char* method);
};

MHD_Result HttpRequestHandler::Handle(const HttpServer& server, MHD_Connection* connection,
                                      const char* url, const char* method) {
  const HttpServerOptions& options = server.options_;
  const std::string_view request_method = method != nullptr ? method : "";
  const std::string_view path = url != nullptr ? url : "";
  if (request_method != MHD_HTTP_METHOD_GET && request_method != MHD_HTTP_METHOD_HEAD) {
    return Respond(connection, MHD_HTTP_METHOD_NOT_ALLOWED, kTextContentType,
                   "method not allowed; use GET or HEAD\n", {{MHD_HTTP_HEADER_ALLOW, "GET, HEAD"}});
  }
  if (path == options.telemetry_path) {
    std::string body = server.scrape_();
    if (AcceptsGzip(AcceptEncoding(connection))) {
      if (std::string compressed = Gzip(body); !compressed.empty()) {
        return Respond(connection, MHD_HTTP_OK, kMetricsContentType, std::move(compressed),
                       {{MHD_HTTP_HEADER_CONTENT_ENCODING, "gzip"},
                        {MHD_HTTP_HEADER_VARY, MHD_HTTP_HEADER_ACCEPT_ENCODING}});
      }
    }
    return Respond(connection, MHD_HTTP_OK, kMetricsContentType, std::move(body),
                   {{MHD_HTTP_HEADER_VARY, MHD_HTTP_HEADER_ACCEPT_ENCODING}});
  }
  if (path == "/") {
    return Respond(connection, MHD_HTTP_OK, "text/html; charset=utf-8",
                   LandingPage(options.telemetry_path));
  }
  if (path == "/-/healthy" || path == "/-/ready") {
    return Respond(connection, MHD_HTTP_OK, kTextContentType, "OK\n");
  }
  // Nothing from the request goes back: an error page that echoes it is a
  // reflection vector, and the operator wants to know where to look instead.
  return Respond(connection, MHD_HTTP_NOT_FOUND, kTextContentType,
                 "404 not found; metrics are at " + options.telemetry_path + "\n");
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

std::string HtmlEscape(const std::string& text) {
  std::string out;
  out.reserve(text.size());
  for (const char c : text) {
    switch (c) {
      case '&':
        out += "&amp;";
        break;
      case '<':
        out += "&lt;";
        break;
      case '>':
        out += "&gt;";
        break;
      case '"':
        out += "&quot;";
        break;
      case '\'':
        out += "&#39;";
        break;
      default:
        out += c;
    }
  }
  return out;
}

void HttpServer::DaemonDeleter::operator()(MHD_Daemon* daemon) const {
  MHD_stop_daemon(daemon);  // joins the threads, closes connections and the listening socket
}

HttpServer::HttpServer(PrivateTag /*tag*/, HttpServerOptions options, ScrapeFn scrape)
    : options_(std::move(options)), scrape_(std::move(scrape)) {}

std::unique_ptr<HttpServer> HttpServer::Start(const HttpServerOptions& options, ScrapeFn scrape,
                                              std::string* error) {
  UniqueFd listen_fd = Listen(options.listen_address, error);
  if (!listen_fd.valid()) return nullptr;
  return Start(std::move(listen_fd), options, std::move(scrape), error);
}

std::unique_ptr<HttpServer> HttpServer::Start(UniqueFd listen_fd, const HttpServerOptions& options,
                                              ScrapeFn scrape, std::string* error) {
  auto server = std::make_unique<HttpServer>(PrivateTag{}, options, std::move(scrape));
  server->port_ = BoundPort(listen_fd.get());

  std::vector<MHD_OptionItem> mhd_options = {
      {MHD_OPTION_LISTEN_SOCKET, listen_fd.get(), nullptr},
      {MHD_OPTION_CONNECTION_LIMIT, options.connection_limit, nullptr},
      {MHD_OPTION_PER_IP_CONNECTION_LIMIT, options.per_ip_connection_limit, nullptr},
      {MHD_OPTION_CONNECTION_TIMEOUT, options.connection_timeout_seconds, nullptr},
      {MHD_OPTION_CONNECTION_MEMORY_LIMIT, static_cast<intptr_t>(options.connection_memory_limit),
       nullptr},
  };
  // A pool of one is no pool: MHD then wants the option absent.
  if (options.threads > 1) {
    mhd_options.push_back({MHD_OPTION_THREAD_POOL_SIZE, options.threads, nullptr});
  }
  mhd_options.push_back({MHD_OPTION_END, 0, nullptr});
  // No MHD_USE_ERROR_LOG: under a flood MHD would log every refused connection.
  server->daemon_.reset(MHD_start_daemon(MHD_USE_EPOLL_INTERNAL_THREAD | MHD_USE_ITC, 0, nullptr,
                                         nullptr, &HttpRequestHandler::Call, server.get(),
                                         MHD_OPTION_ARRAY, mhd_options.data(), MHD_OPTION_END));
  if (!server->daemon_) {
    *error = "cannot serve HTTP on " + FormatListenAddress(options.listen_address) +
             ": libmicrohttpd failed to start";
    return nullptr;
  }
  static_cast<void>(listen_fd.release());  // MHD_stop_daemon closes it from now on
  return server;
}

HttpServer::~HttpServer() = default;

}  // namespace kvmexit
