package http

import (
	"fmt"
	"net"
	"net/url"
	"strings"

	"github.com/gofiber/fiber/v2"
	"github.com/gofiber/fiber/v2/middleware/cors"

	"github.com/loyaltyhq/loyalty/engine"
)

// guardOpen keeps web pages away from an API that runs without keys. Such
// a server listens on loopback only, but a page from any site can still
// make the browser post to it (a text/plain POST needs no CORS preflight),
// or rebind its own name to 127.0.0.1 and read the answers. So without
// keys a request must be addressed to a loopback name or address (Host),
// and one a page sends must come from a loopback origin (Origin).
func (s *Server) guardOpen(c *fiber.Ctx) error {
	if s.cfg.Keys != nil {
		return c.Next()
	}
	if host := string(c.Request().Host()); !loopbackHost(host) {
		return engine.Errorf(engine.EFORBIDDEN, "without API keys the server only answers requests addressed to localhost or a loopback address, not to Host %q", host)
	}
	if origin := c.Get(fiber.HeaderOrigin); origin != "" && !loopbackOrigin(origin) {
		return engine.Errorf(engine.EFORBIDDEN, "without API keys the server refuses requests from web pages of other sites (Origin %q); run it with --keys", origin)
	}
	return c.Next()
}

// loopbackHost tells whether a Host value (name or address, with or
// without a port) can only mean this machine: localhost and its
// subdomains, which browsers resolve to loopback themselves, and loopback
// addresses. 0.0.0.0 is not one, though some browsers connect it here.
func loopbackHost(hostport string) bool {
	host := hostport
	if h, _, err := net.SplitHostPort(hostport); err == nil {
		host = h
	} else {
		host = strings.TrimSuffix(strings.TrimPrefix(host, "["), "]")
	}
	host = strings.TrimSuffix(strings.ToLower(host), ".")
	if host == "localhost" || strings.HasSuffix(host, ".localhost") {
		return true
	}
	ip := net.ParseIP(host)
	return ip != nil && ip.IsLoopback()
}

func loopbackOrigin(origin string) bool {
	u, err := url.Parse(origin)
	return err == nil && (u.Scheme == "http" || u.Scheme == "https") && u.Host != "" && loopbackHost(u.Host)
}

// ParseOrigins reads a comma-separated list of web origins allowed to call
// the API from a browser (CORS), such as "https://app.example.com". Each is
// a scheme and a host with an optional port, nothing else: a wildcard or a
// path is refused rather than widened.
func ParseOrigins(list string) ([]string, error) {
	var out []string
	for _, o := range strings.Split(list, ",") {
		o = strings.TrimSpace(o)
		if o == "" {
			continue
		}
		u, err := url.Parse(o)
		if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" || strings.Contains(u.Host, "*") ||
			u.User != nil || (u.Path != "" && u.Path != "/") || u.RawQuery != "" || u.Fragment != "" {
			return nil, fmt.Errorf("origin %q: want a scheme and a host, like https://app.example.com", o)
		}
		out = append(out, u.Scheme+"://"+strings.ToLower(u.Host))
	}
	return out, nil
}

// corsFor answers browsers on behalf of the origins given, and only those;
// with none, no CORS header is ever sent and browsers keep other sites'
// pages from reading answers. Keys travel in the Authorization header, not
// in cookies, so no credentials are allowed.
func corsFor(origins []string) fiber.Handler {
	return cors.New(cors.Config{
		AllowOrigins:  strings.Join(origins, ","),
		AllowMethods:  "GET,POST,PUT,PATCH",
		AllowHeaders:  "Authorization,Content-Type,X-Request-Id",
		ExposeHeaders: "X-Request-Id,Idempotent-Replayed,Content-Disposition",
		MaxAge:        600,
	})
}
