package main

import (
	"context"
	"crypto/tls"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"strings"
	"time"
)

// runHealth asks a server's /healthz and exits 0 only on 200: the
// container image's HEALTHCHECK, which has no curl. Without --url it asks
// the server this environment configures (LOYALTY_ADDR, and https when
// LOYALTY_TLS_CERT is set), on loopback when it listens on every address.
func runHealth(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := newFlagSet("health", stderr)
	url := fs.String("url", "", "server to ask, like http://127.0.0.1:8080 (default: the one LOYALTY_ADDR and LOYALTY_TLS_CERT describe)")
	insecure := fs.Bool("insecure", false, "accept any certificate (a self-signed one, or one not made out to the address asked)")
	timeout := fs.Duration("timeout", 5*time.Second, "how long to wait for the answer")
	if err := parseFlags(fs, args); err != nil {
		return err
	}
	if fs.NArg() > 0 {
		fmt.Fprintln(stderr, "usage: loyalty health [--url URL] [--insecure] [--timeout 5s]")
		return errUsage
	}
	target := *url
	if target == "" {
		// The local server answers on loopback whatever its certificate
		// names; this checks it is up, not who it is.
		target, *insecure = localServerURL(), *insecure || os.Getenv(envName("tls-cert")) != ""
	}
	client := &http.Client{Timeout: *timeout, Transport: &http.Transport{
		TLSClientConfig: &tls.Config{InsecureSkipVerify: *insecure},
	}}
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, httpURL(target)+"/healthz", nil)
	if err != nil {
		return err
	}
	res, err := client.Do(req)
	if err != nil {
		return fmt.Errorf("health: %w", err)
	}
	defer res.Body.Close()
	body, _ := io.ReadAll(io.LimitReader(res.Body, 4096))
	fmt.Fprintln(stdout, strings.TrimSpace(string(body)))
	if res.StatusCode != http.StatusOK {
		return exitError(1)
	}
	return nil
}

// localServerURL is the URL of the server serve would run with this
// environment: LOYALTY_ADDR (default 127.0.0.1:8080), with a wildcard host
// asked on loopback.
func localServerURL() string {
	addr := os.Getenv(envName("addr"))
	if addr == "" {
		addr = "127.0.0.1:8080"
	}
	host, port, err := net.SplitHostPort(addr)
	if err == nil && (host == "" || host == "0.0.0.0" || host == "::") {
		addr = net.JoinHostPort("127.0.0.1", port)
	}
	scheme := "http://"
	if os.Getenv(envName("tls-cert")) != "" {
		scheme = "https://"
	}
	return scheme + addr
}
