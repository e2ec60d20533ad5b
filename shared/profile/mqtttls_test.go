package profile

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/outpost-iot/outpost/shared/testenv"
)

// TestMQTTTLSProfile: mqtt.tls, mqtt.keepalive and mqtt.max_packet parse,
// default, load into a TLS configuration, and every mistake is a problem
// naming its path.
func TestMQTTTLSProfile(t *testing.T) {
	pki := testenv.NewPKI(t)
	other := testenv.NewPKI(t)
	good := "agent: {id: gw-1}\nmqtt:\n  url: mqtts://broker.local:8883\n  keepalive: 20s\n  max_packet: 65536\n" +
		"  tls: {ca_file: " + pki.CAFile + ", cert_file: " + pki.ClientCert + ", key_file: " + pki.ClientKey +
		", server_name: mqtt.example}\n"
	p, err := Parse([]byte(good))
	if err != nil {
		t.Fatal(err)
	}
	if err := p.ValidateForRun(); err != nil {
		t.Fatal(err)
	}
	d := p.Defaults()
	if d.MQTT.KeepAlive != 20*time.Second || d.MQTT.MaxPacket != 65536 {
		t.Fatalf("keepalive %v max_packet %d", d.MQTT.KeepAlive, d.MQTT.MaxPacket)
	}
	cfg, err := d.MQTT.TLS.Load("broker.local")
	if err != nil {
		t.Fatal(err)
	}
	if cfg.ServerName != "mqtt.example" || cfg.RootCAs == nil || len(cfg.Certificates) != 1 {
		t.Fatalf("tls config: server %q roots %v certs %d", cfg.ServerName, cfg.RootCAs != nil, len(cfg.Certificates))
	}

	// Defaults, and no tls: the system's roots.
	p, err = Parse([]byte("agent: {id: gw-1}\nmqtt: {url: mqtts://broker.local}\n"))
	if err != nil {
		t.Fatal(err)
	}
	d = p.Defaults()
	if d.MQTT.KeepAlive != DefaultMQTTKeepAlive || d.MQTT.MaxPacket != DefaultMQTTMaxPacket {
		t.Fatalf("defaults: keepalive %v max_packet %d", d.MQTT.KeepAlive, d.MQTT.MaxPacket)
	}
	if cfg, err := d.MQTT.TLS.Load("broker.local"); err != nil || cfg.RootCAs != nil || cfg.ServerName != "broker.local" {
		t.Fatalf("nil tls: %+v, %v", cfg, err)
	}

	dir := t.TempDir()
	notPEM := filepath.Join(dir, "junk.pem")
	if err := os.WriteFile(notPEM, []byte("not a certificate\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	missing := filepath.Join(dir, "missing.pem")
	base := "agent: {id: gw-1}\nmqtt:\n  url: mqtts://127.0.0.1\n"
	for _, c := range []struct {
		name, yaml, path, want string
		runOnly                bool // only ValidateForRun sees it (files)
	}{
		{"negative keepalive", "  keepalive: -5s\n", "mqtt.keepalive", "got -5s", false},
		{"sub-second keepalive", "  keepalive: 500ms\n", "mqtt.keepalive", "whole seconds", false},
		{"tiny max_packet", "  max_packet: 10\n", "mqtt.max_packet", "got 10", false},
		{"cert without key", "  tls: {cert_file: " + pki.ClientCert + "}\n", "mqtt.tls.key_file", "required with cert_file", false},
		{"key without cert", "  tls: {key_file: " + pki.ClientKey + "}\n", "mqtt.tls.cert_file", "required with key_file", false},
		{"missing ca", "  tls: {ca_file: " + missing + "}\n", "mqtt.tls.ca_file", "no such file", true},
		{"ca not PEM", "  tls: {ca_file: " + notPEM + "}\n", "mqtt.tls.ca_file", "no PEM certificate", true},
		{"cert not PEM", "  tls: {cert_file: " + notPEM + ", key_file: " + pki.ClientKey + "}\n", "mqtt.tls.cert_file", "no PEM", true},
		{"missing key", "  tls: {cert_file: " + pki.ClientCert + ", key_file: " + missing + "}\n", "mqtt.tls.key_file", "no such file", true},
		{"key of another cert", "  tls: {cert_file: " + pki.ClientCert + ", key_file: " + other.ClientKey + "}\n", "mqtt.tls", "does not match", true},
		{"unknown key", "  tls: {ca: x}\n", "mqtt.tls.ca", "unknown key", false},
	} {
		y := base + c.yaml
		p, err := Parse([]byte(y))
		if err == nil {
			err = p.ValidateForRun()
		}
		ps := AsProblems(err)
		found := false
		for _, pr := range ps {
			if pr.Path == c.path && strings.Contains(pr.Msg, c.want) {
				found = true
			}
		}
		if !found {
			t.Errorf("%s: got %v, want a problem at %s containing %q", c.name, err, c.path, c.want)
			continue
		}
		t.Logf("%s: %v", c.name, err)
		if c.runOnly {
			if err := p.Validate(); err != nil {
				t.Errorf("%s: Validate (not on the gateway) reads the files: %v", c.name, err)
			}
		}
	}

	// TLS settings on a plain or embedded broker are a mistake.
	for _, y := range []string{
		"mqtt:\n  url: tcp://127.0.0.1:1883\n  tls: {ca_file: " + pki.CAFile + "}\n",
		"mqtt:\n  embedded: {}\n  tls: {ca_file: " + pki.CAFile + "}\n",
	} {
		err := Check([]byte(y))
		if err == nil || !strings.Contains(err.Error(), "mqtt.tls: ") {
			t.Errorf("%q: got %v, want a problem at mqtt.tls", y, err)
		}
	}
	// wss carries TLS too.
	if err := Check([]byte("mqtt:\n  url: wss://127.0.0.1:8443/mqtt\n  tls: {ca_file: " + pki.CAFile + "}\n")); err != nil {
		t.Errorf("wss with tls: %v", err)
	}
}
