package broker

import (
	"fmt"
	"io"
	"log/slog"
	"sync/atomic"
	"testing"
	"time"

	paho "github.com/eclipse/paho.mqtt.golang"
)

func start(t *testing.T, cfg Config) *Broker {
	t.Helper()
	cfg.Listen = "127.0.0.1:0"
	cfg.Logger = slog.New(slog.NewTextHandler(io.Discard, nil))
	b, err := Start(cfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { b.Close() })
	return b
}

func connect(t *testing.T, url, id, user, pass string) (paho.Client, error) {
	t.Helper()
	o := paho.NewClientOptions().AddBroker(url).SetClientID(id).SetUsername(user).SetPassword(pass).
		SetAutoReconnect(false).SetConnectTimeout(5 * time.Second)
	c := paho.NewClient(o)
	tok := c.Connect()
	if !tok.WaitTimeout(10 * time.Second) {
		return nil, fmt.Errorf("connect timed out")
	}
	if err := tok.Error(); err != nil {
		return nil, err
	}
	t.Cleanup(func() { c.Disconnect(100) })
	return c, nil
}

// TestNoDropsUnderLoad publishes 50k QoS 0 then 50k QoS 1 messages as fast
// as a paho publisher can into the embedded broker and checks that a QoS 1
// subscriber gets every one.
func TestNoDropsUnderLoad(t *testing.T) {
	const n = 50000
	b := start(t, Config{})
	sub, err := connect(t, b.URL(), "sub", "", "")
	if err != nil {
		t.Fatal(err)
	}
	var got [2]atomic.Int64
	tok := sub.Subscribe("load/#", 1, func(_ paho.Client, m paho.Message) {
		if m.Topic() == "load/q0" {
			got[0].Add(1)
		} else {
			got[1].Add(1)
		}
	})
	if !tok.WaitTimeout(10*time.Second) || tok.Error() != nil {
		t.Fatalf("subscribe: %v (or timed out)", tok.Error())
	}
	pub, err := connect(t, b.URL(), "pub", "", "")
	if err != nil {
		t.Fatal(err)
	}
	payload := []byte(`{"ts":1767323045000,"value":21.5}`)
	for qos := byte(0); qos <= 1; qos++ {
		topic := fmt.Sprintf("load/q%d", qos)
		toks := make([]paho.Token, 0, n)
		for i := 0; i < n; i++ {
			toks = append(toks, pub.Publish(topic, qos, false, payload))
		}
		for _, tk := range toks {
			if !tk.WaitTimeout(30*time.Second) || tk.Error() != nil {
				t.Fatalf("publish qos %d: %v", qos, tk.Error())
			}
		}
		deadline := time.Now().Add(30 * time.Second)
		for got[qos].Load() < n && time.Now().Before(deadline) && b.Dropped() == 0 {
			time.Sleep(20 * time.Millisecond)
		}
		if g := got[qos].Load(); g != n {
			t.Fatalf("qos %d: subscriber got %d of %d; broker dropped %d", qos, g, n, b.Dropped())
		}
	}
	if d := b.Dropped(); d != 0 {
		t.Fatalf("broker dropped %d", d)
	}
}

func TestPasswordAuth(t *testing.T) {
	b := start(t, Config{Username: "gw", Password: "s3cret"})
	if _, err := connect(t, b.URL(), "bad", "gw", "wrong"); err == nil {
		t.Fatal("wrong password accepted")
	}
	if _, err := connect(t, b.URL(), "anon", "", ""); err == nil {
		t.Fatal("no credentials accepted")
	}
	c, err := connect(t, b.URL(), "good", "gw", "s3cret")
	if err != nil {
		t.Fatalf("right password refused: %v", err)
	}
	got := make(chan string, 1)
	if tok := c.Subscribe("a/b", 1, func(_ paho.Client, m paho.Message) { got <- string(m.Payload()) }); !tok.WaitTimeout(10 * time.Second) {
		t.Fatal("subscribe timed out")
	}
	if tok := c.Publish("a/b", 1, false, "hi"); !tok.WaitTimeout(10 * time.Second) {
		t.Fatal("publish timed out")
	}
	select {
	case s := <-got:
		if s != "hi" {
			t.Fatalf("got %q", s)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("authenticated client got nothing")
	}
}

func TestNoAuthByDefault(t *testing.T) {
	b := start(t, Config{})
	if _, err := connect(t, b.URL(), "anon", "", ""); err != nil {
		t.Fatal(err)
	}
}
