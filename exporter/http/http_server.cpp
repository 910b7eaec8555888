// SPDX-License-Identifier: Apache-2.0
#include "http/http_server.h"

#include <gnutls/gnutls.h>
#include <microhttpd.h>
#include <netdb.h>
#include <sys/socket.h>
#include <zlib.h>

#include <cerrno>
#include <cstring>
#include <memory>
#include <utility>
#include <vector>

#include "http/accept_encoding.h"
#include "http/tls_priorities.h"
#include "util/unique_fd.h"

namespace kvmexit {

// What every TLS connection needs from the web config; lives as long as the
// daemon, which keeps pointers into it.
struct TlsSessionSetup {
  explicit TlsSessionSetup(const WebConfig::Tls& config) : tls(config) {}
  ~TlsSessionSetup() {
    if (legacy_versions != nullptr) gnutls_priority_deinit(legacy_versions);
  }
  TlsSessionSetup(const TlsSessionSetup&) = delete;
  TlsSessionSetup& operator=(const TlsSessionSetup&) = delete;

  const WebConfig::Tls& tls;
  std::string handshake_priorities;  // MHD_OPTION_HTTPS_PRIORITIES
  // TlsPriorities::legacy_versions, parsed; null when the handshake string is exact.
  gnutls_priority_t legacy_versions = nullptr;
};

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
// http_server_config.headers of the web config, sent with every response.
using SiteHeaders = std::vector<std::pair<std::string, std::string>>;

// Shown by browsers in the login prompt; Prometheus ignores it.
constexpr const char* kRealm = "kvm_exit_exporter";

// A response body, and where its memory goes once MHD has sent it.
struct ResponseBody {
  ResponseBody(std::string body, std::shared_ptr<TextBufferPool> pool)
      : text(std::move(body)), recycle(std::move(pool)) {}
  std::string text;
  std::shared_ptr<TextBufferPool> recycle;  // none: freed
  ~ResponseBody() {
    if (recycle) recycle->Give(std::move(text));
  }
  ResponseBody(const ResponseBody&) = delete;
  ResponseBody& operator=(const ResponseBody&) = delete;
};

// A response whose body MHD reads from `body` until it has sent it; the
// string is handed to MHD and freed (or recycled) by it, so a large
// exposition is not copied.
ResponsePtr MakeResponse(std::string body, std::shared_ptr<TextBufferPool> recycle) {
  auto owned = std::make_unique<ResponseBody>(std::move(body), std::move(recycle));
  ResponsePtr response(MHD_create_response_from_buffer_with_free_callback_cls(
      owned->text.size(), owned->text.data(),
      [](void* cls) { std::unique_ptr<ResponseBody>(static_cast<ResponseBody*>(cls)); },
      owned.get()));
  if (response) static_cast<void>(owned.release());  // MHD owns it now
  return response;
}

MHD_Result Respond(MHD_Connection* connection, const SiteHeaders& site_headers, unsigned status,
                   const char* content_type, std::string body,
                   std::initializer_list<Header> headers = {},
                   std::shared_ptr<TextBufferPool> recycle = nullptr) {
  const ResponsePtr response = MakeResponse(std::move(body), std::move(recycle));
  if (!response) return MHD_NO;  // out of memory: MHD closes the connection
  MHD_add_response_header(response.get(), MHD_HTTP_HEADER_CONTENT_TYPE, content_type);
  // Browsers must not guess a script or HTML type into the plain-text answers.
  MHD_add_response_header(response.get(), "X-Content-Type-Options", "nosniff");
  for (const auto& [name, value] : headers) MHD_add_response_header(response.get(), name, value);
  for (const auto& [name, value] : site_headers) {
    // Sent above already; the web config can only ask for the same value.
    if (name == "X-Content-Type-Options") continue;
    MHD_add_response_header(response.get(), name.c_str(), value.c_str());
  }
  if (status == MHD_HTTP_UNAUTHORIZED) {
    // Adds WWW-Authenticate: Basic realm="..." so that clients know to authenticate.
    return MHD_queue_basic_auth_fail_response(connection, kRealm, response.get());
  }
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

// The credentials of an Authorization: Basic header, checked against the
// web config's users; false when the header is absent or malformed.
bool Authenticated(BasicAuth& auth, MHD_Connection* connection) {
  char* password = nullptr;
  char* user = MHD_basic_auth_get_username_password(connection, &password);
  const std::unique_ptr<char, decltype(&MHD_free)> user_owner(user, &MHD_free);
  const std::unique_ptr<char, decltype(&MHD_free)> password_owner(password, &MHD_free);
  return user != nullptr && password != nullptr && auth.Verify(user, password);
}

gnutls_session_t TlsSession(MHD_Connection* connection) {
  const MHD_ConnectionInfo* info =
      MHD_get_connection_info(connection, MHD_CONNECTION_INFO_GNUTLS_SESSION);
  return info != nullptr ? static_cast<gnutls_session_t>(info->tls_session) : nullptr;
}

bool VerifiesClientCertificate(ClientAuth auth) {
  return auth == ClientAuth::kVerifyClientCertIfGiven ||
         auth == ClientAuth::kRequireAndVerifyClientCert;
}

// GnuTLS's post-client-hello hook: the version is settled, the suite not yet
// chosen. A TLS 1.2 (or older) handshake switches to the priorities that offer
// only cipher_suites; TLS 1.3 keeps its standard suites. The hook takes no
// context argument: the session's database pointer, unused otherwise (no
// session cache is set up), carries the priorities.
int OnClientHello(gnutls_session_t session) noexcept {
  auto* legacy_versions = static_cast<gnutls_priority_t>(gnutls_db_get_ptr(session));
  if (legacy_versions == nullptr || gnutls_protocol_get_version(session) == GNUTLS_TLS1_3) return 0;
  return gnutls_priority_set(session, legacy_versions);
}

// MHD_OPTION_NOTIFY_CONNECTION: runs when a connection starts, before its TLS
// handshake. libmicrohttpd only ever *requests* a client certificate (when it
// has a trust list); client_auth_type decides whether one is required, and
// whether GnuTLS verifies it against client_ca_file during the handshake.
void OnConnectionStarted(void* cls, MHD_Connection* connection, void** /*socket_context*/,
                         MHD_ConnectionNotificationCode code) noexcept {
  if (code != MHD_CONNECTION_NOTIFY_STARTED) return;
  const auto& setup = *static_cast<const TlsSessionSetup*>(cls);
  const WebConfig::Tls& tls = setup.tls;
  gnutls_session_t session = TlsSession(connection);
  if (session == nullptr) return;
  if (setup.legacy_versions != nullptr) {
    gnutls_db_set_ptr(session, setup.legacy_versions);
    gnutls_handshake_set_post_client_hello_function(session, &OnClientHello);
  }
  switch (tls.client_auth) {
    case ClientAuth::kNoClientCert:
      gnutls_certificate_server_set_request(session, GNUTLS_CERT_IGNORE);
      break;
    case ClientAuth::kRequestClientCert:
    case ClientAuth::kVerifyClientCertIfGiven:
      gnutls_certificate_server_set_request(session, GNUTLS_CERT_REQUEST);
      break;
    case ClientAuth::kRequireAnyClientCert:
    case ClientAuth::kRequireAndVerifyClientCert:
      gnutls_certificate_server_set_request(session, GNUTLS_CERT_REQUIRE);
      break;
  }
  if (VerifiesClientCertificate(tls.client_auth))
    gnutls_session_set_verify_cert(session, nullptr, 0);
}

// Checks again, per request, what the handshake should have enforced: with
// Verify* a certificate the client sent must chain to client_ca_file.
bool ClientCertificateAccepted(const std::optional<WebConfig::Tls>& tls,
                               MHD_Connection* connection) {
  if (!tls || !VerifiesClientCertificate(tls->client_auth)) return true;
  gnutls_session_t session = TlsSession(connection);
  if (session == nullptr) return false;
  unsigned peer_count = 0;
  if (gnutls_certificate_get_peers(session, &peer_count) == nullptr || peer_count == 0) {
    return tls->client_auth == ClientAuth::kVerifyClientCertIfGiven;
  }
  unsigned status = 0;
  return gnutls_certificate_verify_peers2(session, &status) == GNUTLS_E_SUCCESS && status == 0;
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
        return Respond(connection, {}, MHD_HTTP_INTERNAL_SERVER_ERROR, kTextContentType,
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
  const SiteHeaders& site = options.web.headers;
  if (!ClientCertificateAccepted(options.web.tls, connection)) {
    return Respond(connection, site, MHD_HTTP_FORBIDDEN, kTextContentType,
                   "403 forbidden: the client certificate is not signed by client_ca_file\n");
  }
  if (server.basic_auth_ && !Authenticated(*server.basic_auth_, connection)) {
    return Respond(connection, site, MHD_HTTP_UNAUTHORIZED, kTextContentType,
                   "401 unauthorized: give a user and password of basic_auth_users\n");
  }
  const std::string_view request_method = method != nullptr ? method : "";
  const std::string_view path = url != nullptr ? url : "";
  if (request_method != MHD_HTTP_METHOD_GET && request_method != MHD_HTTP_METHOD_HEAD) {
    return Respond(connection, site, MHD_HTTP_METHOD_NOT_ALLOWED, kTextContentType,
                   "method not allowed; use GET or HEAD\n", {{MHD_HTTP_HEADER_ALLOW, "GET, HEAD"}});
  }
  if (path == options.telemetry_path) {
    std::string body = server.scrape_();
    if (AcceptsGzip(AcceptEncoding(connection))) {
      if (std::string compressed = Gzip(body); !compressed.empty()) {
        if (options.text_buffers) options.text_buffers->Give(std::move(body));
        return Respond(connection, site, MHD_HTTP_OK, kMetricsContentType, std::move(compressed),
                       {{MHD_HTTP_HEADER_CONTENT_ENCODING, "gzip"},
                        {MHD_HTTP_HEADER_VARY, MHD_HTTP_HEADER_ACCEPT_ENCODING}});
      }
    }
    return Respond(connection, site, MHD_HTTP_OK, kMetricsContentType, std::move(body),
                   {{MHD_HTTP_HEADER_VARY, MHD_HTTP_HEADER_ACCEPT_ENCODING}}, options.text_buffers);
  }
  if (path == "/") {
    return Respond(connection, site, MHD_HTTP_OK, "text/html; charset=utf-8",
                   LandingPage(options.telemetry_path));
  }
  if (path == "/-/healthy" || path == "/-/ready") {
    return Respond(connection, site, MHD_HTTP_OK, kTextContentType, "OK\n");
  }
  // Nothing from the request goes back: an error page that echoes it is a
  // reflection vector, and the operator wants to know where to look instead.
  return Respond(connection, site, MHD_HTTP_NOT_FOUND, kTextContentType,
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
  // Output in steps, not in one buffer of deflateBound(): an 18 MB exposition
  // compresses to 1.3 MB, and zero-filling 18 MB made every page of it resident.
  constexpr std::size_t kStep = std::size_t{256} * 1024;
  std::string out;
  stream.next_in = reinterpret_cast<Bytef*>(const_cast<char*>(data.data()));
  stream.avail_in = static_cast<uInt>(data.size());
  int result = Z_OK;
  while (result == Z_OK) {  // Z_OK: deflate wants more room to finish
    const std::size_t used = out.size();
    out.resize(used + kStep);
    stream.next_out = reinterpret_cast<Bytef*>(out.data() + used);
    stream.avail_out = static_cast<uInt>(kStep);
    result = deflate(&stream, Z_FINISH);
    out.resize(used + kStep - stream.avail_out);
  }
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
  unsigned flags = MHD_USE_EPOLL_INTERNAL_THREAD | MHD_USE_ITC;
  if (std::string tls_error = server->AddTlsOptions(mhd_options, flags); !tls_error.empty()) {
    *error =
        "cannot serve HTTPS on " + FormatListenAddress(options.listen_address) + ": " + tls_error;
    return nullptr;
  }
  if (!options.web.basic_auth_users.empty()) {
    server->basic_auth_ = std::make_unique<BasicAuth>(options.web.basic_auth_users);
  }
  // A pool of one is no pool: MHD then wants the option absent.
  if (options.threads > 1) {
    mhd_options.push_back({MHD_OPTION_THREAD_POOL_SIZE, options.threads, nullptr});
  }
  mhd_options.push_back({MHD_OPTION_END, 0, nullptr});
  // No MHD_USE_ERROR_LOG: under a flood MHD would log every refused connection.
  server->daemon_.reset(MHD_start_daemon(flags, 0, nullptr, nullptr, &HttpRequestHandler::Call,
                                         server.get(), MHD_OPTION_ARRAY, mhd_options.data(),
                                         MHD_OPTION_END));
  if (!server->daemon_) {
    *error = "cannot serve HTTP on " + FormatListenAddress(options.listen_address) +
             ": libmicrohttpd failed to start";
    return nullptr;
  }
  static_cast<void>(listen_fd.release());  // MHD_stop_daemon closes it from now on
  return server;
}

HttpServer::~HttpServer() = default;

std::string HttpServer::AddTlsOptions(std::vector<MHD_OptionItem>& mhd_options, unsigned& flags) {
  if (!options_.web.tls) return "";
  if (MHD_is_feature_supported(MHD_FEATURE_TLS) != MHD_YES) {
    return "this libmicrohttpd was built without TLS support";
  }
  // Pointers into options_ and tls_setup_, which live as long as the daemon.
  const WebConfig::Tls& tls = *options_.web.tls;
  tls_setup_ = std::make_unique<TlsSessionSetup>(tls);
  // ParseWebConfig checked both strings with GnuTLS; a failure here is a
  // web config that did not come through it.
  TlsPriorities priorities = MakeTlsPriorities(tls);
  tls_setup_->handshake_priorities = std::move(priorities.handshake);
  if (!priorities.legacy_versions.empty()) {
    if (const int status = gnutls_priority_init(&tls_setup_->legacy_versions,
                                                priorities.legacy_versions.c_str(), nullptr);
        status < 0) {
      tls_setup_->legacy_versions = nullptr;
      return "GnuTLS refuses the priorities \"" + priorities.legacy_versions +
             "\": " + gnutls_strerror(status);
    }
  }
  flags |= MHD_USE_TLS;
  mhd_options.push_back({MHD_OPTION_HTTPS_MEM_CERT, 0, const_cast<char*>(tls.cert_pem.c_str())});
  mhd_options.push_back({MHD_OPTION_HTTPS_MEM_KEY, 0, const_cast<char*>(tls.key_pem.c_str())});
  if (!tls.client_ca_pem.empty()) {
    mhd_options.push_back(
        {MHD_OPTION_HTTPS_MEM_TRUST, 0, const_cast<char*>(tls.client_ca_pem.c_str())});
  }
  mhd_options.push_back({MHD_OPTION_HTTPS_PRIORITIES, 0,
                         const_cast<char*>(tls_setup_->handshake_priorities.c_str())});
  mhd_options.push_back({MHD_OPTION_NOTIFY_CONNECTION,
                         reinterpret_cast<intptr_t>(&OnConnectionStarted), tls_setup_.get()});
  return "";
}

}  // namespace kvmexit
