package main

import (
	"crypto/tls"
	"errors"
	"fmt"
	"sync/atomic"

	lhttp "github.com/loyaltyhq/loyalty/http"
)

// certificate is the TLS certificate serve presents. It is read again on
// SIGHUP, so a renewed certificate is served without a restart; a pair
// that does not load leaves the one already loaded in use.
type certificate struct {
	certFile, keyFile string
	current           atomic.Pointer[tls.Certificate]
}

func loadCertificate(certFile, keyFile string) (*certificate, error) {
	c := &certificate{certFile: certFile, keyFile: keyFile}
	if err := c.reload(); err != nil {
		return nil, err
	}
	return c, nil
}

func (c *certificate) reload() error {
	pair, err := tls.LoadX509KeyPair(c.certFile, c.keyFile)
	if err != nil {
		return fmt.Errorf("--tls-cert %s --tls-key %s: %w", c.certFile, c.keyFile, err)
	}
	c.current.Store(&pair)
	return nil
}

// config serves the current certificate, TLS 1.2 at least.
func (c *certificate) config() *tls.Config {
	return &tls.Config{
		MinVersion: tls.VersionTLS12,
		GetCertificate: func(*tls.ClientHelloInfo) (*tls.Certificate, error) {
			return c.current.Load(), nil
		},
	}
}

// Reload reads the API keys file and the TLS certificate again, as SIGHUP
// asks. What does not load keeps what was loaded before, and the log says
// why; the error joins the reasons.
func (m *Main) Reload() error {
	var errs []error
	if m.keys != nil {
		errs = append(errs, m.reloadKeys("SIGHUP"))
	}
	if m.cert != nil {
		if err := m.cert.reload(); err != nil {
			m.Logger.Error("the TLS certificate was not reloaded; the one loaded before is still served", "err", err)
			errs = append(errs, err)
		} else {
			m.Logger.Info("TLS certificate reloaded", "cert", m.Config.TLSCert)
		}
	}
	return errors.Join(errs...)
}

// reloadKeys replaces the API keys with the keys file's, if it loads: a
// file with a mistake (bad YAML, a short key, a duplicate) keeps the keys
// in use, so a typo cannot lock every till out.
func (m *Main) reloadKeys(why string) error {
	keys, err := lhttp.LoadKeys(m.Config.KeysPath)
	if err != nil {
		m.Logger.Error("the keys file was not reloaded; the keys loaded before stay valid", "why", why, "err", err)
		return err
	}
	m.keys.Replace(keys)
	m.Logger.Info("API keys reloaded", "why", why, "file", m.Config.KeysPath, "keys", keys.Names())
	return nil
}
