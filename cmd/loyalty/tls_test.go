package main

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"io"
	"log/slog"
	"math/big"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/loyaltyhq/loyalty/rules"
)

// selfSigned writes a certificate for 127.0.0.1 and localhost and its key
// into dir, and returns their paths and a pool that trusts it.
func selfSigned(t *testing.T, dir, name string) (certFile, keyFile string, pool *x509.CertPool) {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{
		SerialNumber: big.NewInt(time.Now().UnixNano()),
		Subject:      pkix.Name{CommonName: name},
		NotBefore:    time.Now().Add(-time.Hour),
		NotAfter:     time.Now().Add(24 * time.Hour),
		IPAddresses:  []net.IP{net.ParseIP("127.0.0.1")},
		DNSNames:     []string{"localhost"},
		KeyUsage:     x509.KeyUsageDigitalSignature,
		ExtKeyUsage:  []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	keyDER, err := x509.MarshalPKCS8PrivateKey(key)
	if err != nil {
		t.Fatal(err)
	}
	certFile, keyFile = filepath.Join(dir, name+".crt"), filepath.Join(dir, name+".key")
	os.WriteFile(certFile, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}), 0o644)
	os.WriteFile(keyFile, pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: keyDER}), 0o600)
	cert, _ := x509.ParseCertificate(der)
	pool = x509.NewCertPool()
	pool.AddCert(cert)
	return certFile, keyFile, pool
}

const (
	adminKey = "admin-key-0123456789"
	newKey   = "rotated-key-0123456789"
)

// keysFile is a keys file of admin keys with the given names and keys.
func keysFile(pairs ...string) []byte {
	var b strings.Builder
	for i := 0; i < len(pairs); i += 2 {
		b.WriteString("- {name: " + pairs[i] + ", key: " + pairs[i+1] + ", role: admin}\n")
	}
	return []byte(b.String())
}

// openOpsMain starts the server wiring on dir with cfg's extra settings and a
// captured log.
func openOpsMain(t *testing.T, dir string, cfg Config) (*Main, *syncBuffer) {
	t.Helper()
	rulesPath := filepath.Join(dir, "rules.yaml")
	os.WriteFile(rulesPath, rules.Example, 0o644)
	if cfg.Addr == "" {
		cfg.Addr = "127.0.0.1:0"
	}
	cfg.DBPath, cfg.RulesPath = filepath.Join(dir, "loyalty.db"), rulesPath
	logs := &syncBuffer{}
	m := &Main{Config: cfg, Logger: slog.New(slog.NewTextHandler(logs, nil))}
	if err := m.Open(); err != nil {
		m.Close()
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if err := m.Close(); err != nil {
			t.Error(err)
		}
	})
	return m, logs
}

// statusWith is the status of GET url with key as bearer.
func statusWith(t *testing.T, client *http.Client, url, key string) int {
	t.Helper()
	req, _ := http.NewRequest("GET", url, nil)
	if key != "" {
		req.Header.Set("Authorization", "Bearer "+key)
	}
	res, err := client.Do(req)
	if err != nil {
		t.Fatalf("GET %s: %v", url, err)
	}
	io.Copy(io.Discard, res.Body)
	res.Body.Close()
	return res.StatusCode
}

func TestServeHTTPS(t *testing.T) {
	dir := t.TempDir()
	certFile, keyFile, pool := selfSigned(t, dir, "server")
	keys := filepath.Join(dir, "keys.yaml")
	os.WriteFile(keys, keysFile("ops", adminKey), 0o600)
	m, logs := openOpsMain(t, dir, Config{KeysPath: keys, TLSCert: certFile, TLSKey: keyFile})
	client := &http.Client{Transport: &http.Transport{TLSClientConfig: &tls.Config{RootCAs: pool}}}
	if got := statusWith(t, client, "https://"+m.Addr()+"/v1/members/x", adminKey); got != 404 {
		t.Fatalf("over HTTPS: %d", got)
	}
	if res, err := http.Get("http://" + m.Addr() + "/healthz"); err == nil {
		body, _ := io.ReadAll(res.Body)
		res.Body.Close()
		if res.StatusCode == 200 {
			t.Fatalf("plain HTTP got an answer from the HTTPS port: %s", body)
		}
	}
	if !strings.Contains(logs.String(), "addr=https://"+m.Addr()) {
		t.Errorf("the log does not say https:\n%s", logs)
	}

	// A renewed certificate is served after SIGHUP's reload, without a
	// restart; a broken one leaves the old in service.
	newCert, newKeyFile, newPool := selfSigned(t, t.TempDir(), "renewed")
	os.Rename(newCert, certFile)
	os.Rename(newKeyFile, keyFile)
	if err := m.Reload(); err != nil {
		t.Fatal(err)
	}
	renewed := &http.Client{Transport: &http.Transport{TLSClientConfig: &tls.Config{RootCAs: newPool}}}
	if got := statusWith(t, renewed, "https://"+m.Addr()+"/healthz", ""); got != 200 {
		t.Fatalf("with the renewed certificate: %d", got)
	}
	os.WriteFile(certFile, []byte("not a certificate"), 0o644)
	if err := m.Reload(); err == nil {
		t.Fatal("a broken certificate reloaded")
	}
	if got := statusWith(t, &http.Client{Transport: &http.Transport{TLSClientConfig: &tls.Config{RootCAs: newPool}}}, "https://"+m.Addr()+"/healthz", ""); got != 200 {
		t.Fatalf("after a broken certificate: %d", got)
	}
	if !strings.Contains(logs.String(), "the one loaded before is still served") {
		t.Errorf("the log does not say why the certificate was kept:\n%s", logs)
	}
}

func TestServeRefusesHalfATLSPair(t *testing.T) {
	dir := t.TempDir()
	certFile, _, _ := selfSigned(t, dir, "server")
	code, out := runCLI(t, "serve", "--tls-cert", certFile, "--db", filepath.Join(dir, "x.db"), "--rules", filepath.Join(dir, "r.yaml"))
	if code != 1 || !strings.Contains(out, "--tls-cert and --tls-key go together") {
		t.Fatalf("%d %q", code, out)
	}
	code, out = runCLI(t, "serve", "--tls-cert", certFile, "--tls-key", filepath.Join(dir, "missing.key"), "--db", filepath.Join(dir, "x.db"), "--rules", filepath.Join(dir, "r.yaml"))
	if code != 1 || !strings.Contains(out, "missing.key") {
		t.Fatalf("%d %q", code, out)
	}
	if _, err := os.Stat(filepath.Join(dir, "x.db")); err == nil {
		t.Fatal("a bad certificate still created the database")
	}
}

// TestKeysInClearWarning: keys over plain HTTP beyond loopback are read by
// anyone on the path; serve says so at start, and only then.
func TestKeysInClearWarning(t *testing.T) {
	const warning = "API keys travel in clear"
	for _, tc := range []struct {
		name, addr string
		tls, warn  bool
	}{
		{"plain on every address", "0.0.0.0:0", false, true},
		{"HTTPS on every address", "0.0.0.0:0", true, false},
		{"plain on loopback", "127.0.0.1:0", false, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			dir := t.TempDir()
			keys := filepath.Join(dir, "keys.yaml")
			os.WriteFile(keys, keysFile("ops", adminKey), 0o600)
			cfg := Config{Addr: tc.addr, KeysPath: keys}
			if tc.tls {
				cfg.TLSCert, cfg.TLSKey, _ = selfSigned(t, dir, "server")
			}
			_, logs := openOpsMain(t, dir, cfg)
			if got := strings.Contains(logs.String(), warning); got != tc.warn {
				t.Fatalf("warned %v, want %v:\n%s", got, tc.warn, logs)
			}
		})
	}
}

// TestKeysFileReloadsWhenItChanges rotates a key the documented way: the
// new key is added next to the old, both work, then the old is removed.
// A broken file keeps the keys in use and the log says why.
func TestKeysFileReloadsWhenItChanges(t *testing.T) {
	dir := t.TempDir()
	keys := filepath.Join(dir, "keys.yaml")
	os.WriteFile(keys, keysFile("ops", adminKey), 0o600)
	m, logs := openOpsMain(t, dir, Config{KeysPath: keys})
	url := "http://" + m.Addr() + "/v1/jobs"
	client := http.DefaultClient
	if statusWith(t, client, url, adminKey) != 200 || statusWith(t, client, url, newKey) != 401 {
		t.Fatal("before the rotation")
	}
	os.WriteFile(keys, keysFile("ops", adminKey, "ops-2026", newKey), 0o600)
	eventually(t, "the new key to be accepted", func() bool { return statusWith(t, client, url, newKey) == 200 })
	if statusWith(t, client, url, adminKey) != 200 {
		t.Fatal("the old key stopped working while both are listed")
	}
	os.WriteFile(keys, keysFile("ops-2026", newKey), 0o600)
	eventually(t, "the old key to be refused", func() bool { return statusWith(t, client, url, adminKey) == 401 })

	os.WriteFile(keys, []byte("- {name: ops-2026, key: short, role: admin}\n"), 0o600)
	eventually(t, "the refusal to be logged", func() bool { return strings.Contains(logs.String(), "the keys file was not reloaded") })
	if !strings.Contains(logs.String(), "at least 16 characters") {
		t.Errorf("the log does not say why:\n%s", logs)
	}
	if statusWith(t, client, url, newKey) != 200 {
		t.Fatal("a broken keys file locked the keys in use out")
	}
}

// TestHealthCommand is the image's HEALTHCHECK: loyalty health exits 0 on
// a healthy server, found from --url or from the environment serve reads,
// over HTTP or HTTPS, and 1 when nothing answers.
func TestHealthCommand(t *testing.T) {
	m, _ := startMain(t)
	code, out := runCLI(t, "health", "--url", m.Addr())
	if code != 0 || !strings.Contains(out, `"status":"ok"`) || !strings.Contains(out, `"version"`) {
		t.Fatalf("health --url %s: %d %q", m.Addr(), code, out)
	}
	_, port, _ := net.SplitHostPort(m.Addr())
	t.Setenv("LOYALTY_ADDR", "0.0.0.0:"+port)
	if code, out := runCLI(t, "health"); code != 0 {
		t.Fatalf("health from LOYALTY_ADDR=0.0.0.0:%s: %d %q", port, code, out)
	}

	dir := t.TempDir()
	certFile, keyFile, _ := selfSigned(t, dir, "server")
	keys := filepath.Join(dir, "keys.yaml")
	os.WriteFile(keys, keysFile("ops", adminKey), 0o600)
	tm, _ := openOpsMain(t, dir, Config{KeysPath: keys, TLSCert: certFile, TLSKey: keyFile})
	_, port, _ = net.SplitHostPort(tm.Addr())
	t.Setenv("LOYALTY_ADDR", "0.0.0.0:"+port)
	t.Setenv("LOYALTY_TLS_CERT", certFile)
	if code, out := runCLI(t, "health"); code != 0 || !strings.Contains(out, `"status":"ok"`) {
		t.Fatalf("health over HTTPS from the environment: %d %q", code, out)
	}
	if code, out := runCLI(t, "health", "--url", "https://"+tm.Addr()); code != 1 || !strings.Contains(out, "certificate") {
		t.Fatalf("health --url https without --insecure on a self-signed certificate: %d %q", code, out)
	}
	if code, _ := runCLI(t, "health", "--url", "https://"+tm.Addr(), "--insecure"); code != 0 {
		t.Fatalf("health --insecure: %d", code)
	}

	ln, _ := net.Listen("tcp", "127.0.0.1:0")
	free := ln.Addr().String()
	ln.Close()
	if code, out := runCLI(t, "health", "--url", free, "--timeout", "1s"); code != 1 || !strings.Contains(out, "health:") {
		t.Fatalf("health with nothing listening: %d %q", code, out)
	}
}
