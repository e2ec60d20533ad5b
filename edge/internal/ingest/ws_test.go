package ingest

import (
	"crypto/tls"
	"crypto/x509"
	"fmt"
	"log/slog"
	"os"
	"testing"
	"time"

	mqtt "github.com/mochi-mqtt/server/v2"
	"github.com/mochi-mqtt/server/v2/hooks/auth"
	"github.com/mochi-mqtt/server/v2/listeners"
	"github.com/outpost-iot/outpost/shared/profile"
	"github.com/outpost-iot/outpost/shared/testenv"
)

// wsBroker runs a real MQTT broker (mochi) with a plain TCP listener, to
// publish to, a websocket listener (ws://) and a websocket listener over
// TLS that requires a client certificate of pki's CA (wss://). It returns
// the three URLs.
func wsBroker(t *testing.T, pki *testenv.PKI) (tcpURL, wsURL, wssURL string) {
	t.Helper()
	cert, err := tls.LoadX509KeyPair(pki.ServerCert, pki.ServerKey)
	if err != nil {
		t.Fatal(err)
	}
	ca, err := os.ReadFile(pki.CAFile)
	if err != nil {
		t.Fatal(err)
	}
	pool := x509.NewCertPool()
	if !pool.AppendCertsFromPEM(ca) {
		t.Fatal("no CA certificate in " + pki.CAFile)
	}
	srv := mqtt.New(&mqtt.Options{Logger: slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelError}))})
	if err := srv.AddHook(new(auth.AllowHook), nil); err != nil {
		t.Fatal(err)
	}
	addr := func() string { return fmt.Sprintf("127.0.0.1:%d", testenv.FreePort(t)) }
	tcpAddr, wsAddr, wssAddr := addr(), addr(), addr()
	for _, l := range []listeners.Listener{
		listeners.NewTCP(listeners.Config{Type: "tcp", ID: "tcp", Address: tcpAddr}),
		listeners.NewWebsocket(listeners.Config{Type: "ws", ID: "ws", Address: wsAddr}),
		listeners.NewWebsocket(listeners.Config{Type: "ws", ID: "wss", Address: wssAddr, TLSConfig: &tls.Config{
			Certificates: []tls.Certificate{cert}, ClientCAs: pool, ClientAuth: tls.RequireAndVerifyClientCert, MinVersion: tls.VersionTLS12}}),
	} {
		if err := srv.AddListener(l); err != nil {
			t.Fatal(err)
		}
	}
	if err := srv.Serve(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { srv.Close() })
	return "tcp://" + tcpAddr, "ws://" + wsAddr + "/mqtt", "wss://" + wssAddr + "/mqtt"
}

// TestWebsocketBrokers: the agent reads a real broker over websockets,
// plain (ws://) and over TLS with a client certificate (wss://, the
// profile's mqtt.tls): it connects, subscribes and gets what is published
// on the broker's TCP listener. Trusting another CA, or without the client
// certificate, the wss connect fails with an error that says why, and the
// client keeps retrying.
func TestWebsocketBrokers(t *testing.T) {
	pki := testenv.NewPKI(t)
	other := testenv.NewPKI(t)
	tcpURL, wsURL, wssURL := wsBroker(t, pki)
	for _, tc := range []struct {
		name, url string
		tls       *profile.MQTTTLS
	}{
		{"ws", wsURL, nil},
		{"wss", wssURL, &profile.MQTTTLS{CAFile: pki.CAFile, CertFile: pki.ClientCert, KeyFile: pki.ClientKey}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			cfg := Config{URL: tc.url, ClientID: "ws-" + tc.name, QoS: 1, Filters: []string{"sensors/+/+"},
				Logger: quiet(), KeepAlive: 5 * time.Second}
			if tc.tls != nil {
				cfg.TLS = loadTLS(t, tc.tls)
			}
			r := &recorder{}
			cfg.Handler = r.handle
			startConfig(t, cfg)
			want := []string{"over " + tc.name + " 1", "over " + tc.name + " 2", "over " + tc.name + " 3"}
			publish(t, tcpURL, want...)
			waitFor(t, "the readings over "+tc.name, func() bool {
				for _, w := range want {
					if !r.has(w) {
						return false
					}
				}
				return true
			})
		})
	}
	for _, bad := range []struct {
		name string
		tls  *profile.MQTTTLS
		want string // in the logged error
	}{
		{"wss trusting another CA", &profile.MQTTTLS{CAFile: other.CAFile, CertFile: pki.ClientCert, KeyFile: pki.ClientKey}, "unknown authority"},
		{"wss without a client certificate", &profile.MQTTTLS{CAFile: pki.CAFile}, "certificate"},
	} {
		t.Run(bad.name, func(t *testing.T) { connectFails(t, wssURL, loadTLS(t, bad.tls), bad.want) })
	}
}
