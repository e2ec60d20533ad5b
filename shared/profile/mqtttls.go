package profile

import (
	"crypto/tls"
	"crypto/x509"
	"encoding/pem"
	"fmt"
	"net/url"
	"os"
	"time"
)

// Defaults of the MQTT client's connection settings.
const (
	// DefaultMQTTKeepAlive is mqtt.keepalive's default.
	DefaultMQTTKeepAlive = 30 * time.Second
	// DefaultMQTTMaxPacket is mqtt.max_packet's default (1 MiB).
	DefaultMQTTMaxPacket = 1 << 20
	// maxMQTTPacket is the largest packet MQTT 3.1.1 can express.
	maxMQTTPacket = 268435455
)

// tlsSchemes are the mqtt.url schemes that use TLS.
var tlsSchemes = []string{"ssl", "tls", "tcps", "mqtts", "wss"}

// Load reads the files t names and returns the TLS configuration of a
// connection to host (the server name when t.ServerName is empty; an
// empty one leaves it to the dialer, which takes the URL's host). A nil t
// gives the system's roots and no client certificate.
func (t *MQTTTLS) Load(host string) (*tls.Config, error) {
	cfg := &tls.Config{MinVersion: tls.VersionTLS12, ServerName: host}
	if t == nil {
		return cfg, nil
	}
	if t.ServerName != "" {
		cfg.ServerName = t.ServerName
	}
	if t.CAFile != "" {
		pool, err := loadCAFile(t.CAFile)
		if err != nil {
			return nil, fmt.Errorf("mqtt.tls.ca_file: %w", err)
		}
		cfg.RootCAs = pool
	}
	if t.CertFile != "" || t.KeyFile != "" {
		if t.CertFile == "" || t.KeyFile == "" {
			return nil, fmt.Errorf("mqtt.tls: cert_file and key_file go together (one is empty)")
		}
		pair, field, err := loadKeyPair(t.CertFile, t.KeyFile)
		if err != nil {
			return nil, fmt.Errorf("%s: %w", field, err)
		}
		cfg.Certificates = []tls.Certificate{pair}
	}
	return cfg, nil
}

// loadCAFile reads a PEM file of CA certificates.
func loadCAFile(path string) (*x509.CertPool, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, err
	}
	pool := x509.NewCertPool()
	n := 0
	for rest := b; ; {
		var blk *pem.Block
		blk, rest = pem.Decode(rest)
		if blk == nil {
			break
		}
		if blk.Type != "CERTIFICATE" {
			continue
		}
		c, err := x509.ParseCertificate(blk.Bytes)
		if err != nil {
			return nil, fmt.Errorf("%s: certificate %d: %w", path, n+1, err)
		}
		pool.AddCert(c)
		n++
	}
	if n == 0 {
		return nil, fmt.Errorf("%s: no PEM certificate in it", path)
	}
	return pool, nil
}

// loadKeyPair reads a PEM client certificate and its key; on error it
// also returns the profile path at fault.
func loadKeyPair(certFile, keyFile string) (tls.Certificate, string, error) {
	cb, err := os.ReadFile(certFile)
	if err != nil {
		return tls.Certificate{}, "mqtt.tls.cert_file", err
	}
	kb, err := os.ReadFile(keyFile)
	if err != nil {
		return tls.Certificate{}, "mqtt.tls.key_file", err
	}
	if blk, _ := pem.Decode(cb); blk == nil {
		return tls.Certificate{}, "mqtt.tls.cert_file", fmt.Errorf("%s: no PEM in it", certFile)
	}
	if blk, _ := pem.Decode(kb); blk == nil {
		return tls.Certificate{}, "mqtt.tls.key_file", fmt.Errorf("%s: no PEM in it", keyFile)
	}
	pair, err := tls.X509KeyPair(cb, kb)
	if err != nil {
		return tls.Certificate{}, "mqtt.tls", fmt.Errorf("%s with %s: %w", certFile, keyFile, err)
	}
	return pair, "", nil
}

// checkMQTTConn checks mqtt.tls, mqtt.keepalive and mqtt.max_packet, but
// not the files mqtt.tls names (checkMQTTFiles).
func (v *validator) checkMQTTConn(m MQTT) {
	if m.KeepAlive < time.Second || m.KeepAlive > 65535*time.Second || m.KeepAlive%time.Second != 0 {
		v.add("mqtt.keepalive", "must be whole seconds from 1s to 65535s, got %v", m.KeepAlive)
	}
	if m.MaxPacket < 1024 || m.MaxPacket > maxMQTTPacket {
		v.add("mqtt.max_packet", "must be from 1024 to %d bytes, got %d", maxMQTTPacket, m.MaxPacket)
	}
	t := m.TLS
	if t == nil {
		return
	}
	if m.Embedded != nil {
		v.add("mqtt.tls", "only for an external broker (mqtt.url), not the embedded one")
	} else if u, err := url.Parse(m.URL); err == nil && m.URL != "" && !contains(tlsSchemes, u.Scheme) {
		v.add("mqtt.tls", "mqtt.url %q is not a TLS url (use one of %v)", m.URL, tlsSchemes)
	}
	switch {
	case t.CertFile != "" && t.KeyFile == "":
		v.add("mqtt.tls.key_file", "required with cert_file (the client certificate's private key)")
	case t.CertFile == "" && t.KeyFile != "":
		v.add("mqtt.tls.cert_file", "required with key_file")
	}
}

// checkMQTTFiles checks that the files mqtt.tls names exist and hold what
// they should: on the gateway (ValidateForRun), not where a profile is
// merely written or rolled out.
func (v *validator) checkMQTTFiles(m MQTT) {
	t := m.TLS
	if t == nil {
		return
	}
	if t.CAFile != "" {
		if _, err := loadCAFile(t.CAFile); err != nil {
			v.add("mqtt.tls.ca_file", "%v", err)
		}
	}
	if t.CertFile != "" && t.KeyFile != "" {
		if _, field, err := loadKeyPair(t.CertFile, t.KeyFile); err != nil {
			v.add(field, "%v", err)
		}
	}
}
