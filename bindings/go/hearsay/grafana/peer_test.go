package grafana_test

import (
	"context"
	"net"
	"os/exec"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/prometheus/alertmanager/cluster"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/hearsay-ha/hearsay/bindings/go/hearsay"
	"github.com/hearsay-ha/hearsay/bindings/go/hearsay/grafana"
)

// Grafana's notify.ClusterPeer, over the fork's cluster types (the example server checks the
// replica's notify.ClusterPeer itself).
var _ interface {
	AddState(string, cluster.State, prometheus.Registerer, ...cluster.ChannelOption) cluster.ClusterChannel
	Position() int
	WaitReady(context.Context) error
} = (*grafana.Peer)(nil)

// log is a state as the fork's are built: entries merged by union, each newly merged one
// re-broadcast unless the channel says it reached everyone (cluster.ReliableDeliveryAware).
type log struct {
	mu        sync.Mutex
	entries   map[string]bool
	broadcast func([]byte)
	reliable  func([]byte) bool
	again     int
}

var _ cluster.ReliableDeliveryAware = (*log)(nil)

func (l *log) MarshalBinary() ([]byte, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	var keys []string
	for k := range l.entries {
		keys = append(keys, k)
	}
	return []byte(strings.Join(keys, "\n")), nil
}

func (l *log) Merge(b []byte) error {
	l.mu.Lock()
	var fresh []string
	for _, k := range strings.Split(string(b), "\n") {
		if k != "" && !l.entries[k] {
			l.entries[k] = true
			fresh = append(fresh, k)
		}
	}
	again := len(fresh) > 0 && !l.reliable(b)
	if again {
		l.again++
	}
	send := l.broadcast
	l.mu.Unlock()
	if again {
		send(b)
	}
	return nil
}

func (l *log) SetIsReliableDelivery(f func([]byte) bool) {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.reliable = f
}

func (l *log) wire(f func([]byte)) {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.broadcast = f
}

func (l *log) rebroadcasts() int {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.again
}

func (l *log) has(k string) bool {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.entries[k]
}

func (l *log) write(k string) {
	l.mu.Lock()
	l.entries[k] = true
	send := l.broadcast
	l.mu.Unlock()
	send([]byte(k))
}

func start(t *testing.T, cfg hearsay.Config) *grafana.Peer {
	t.Helper()
	if cfg.RedisURL == "" {
		cfg.BindAddr = "127.0.0.1:0"
		cfg.GossipInterval = 50 * time.Millisecond
	}
	cfg.SettleTimeout = 300 * time.Millisecond
	p, err := grafana.New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(p.Shutdown)
	return p
}

// addLog registers a log as an organisation's Alertmanager does, options and all.
func addLog(t *testing.T, p *grafana.Peer, key string, opts ...cluster.ChannelOption) (*log, cluster.ClusterChannel) {
	t.Helper()
	l := &log{entries: map[string]bool{}, broadcast: func([]byte) {}}
	ch := p.AddState(key, l, prometheus.NewRegistry(), opts...)
	if err := ch.(*hearsay.Channel).Err(); err != nil {
		t.Fatal(err)
	}
	l.mu.Lock()
	wired := l.reliable != nil
	l.mu.Unlock()
	if !wired {
		t.Fatal("SetIsReliableDelivery was not wired on AddState")
	}
	l.wire(ch.Broadcast)
	return l, ch
}

func eventually(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// On gossip, with hearsay carrying organisation 1 natively: Grafana's own states take their
// keys, replicate, and Grafana's alerts:broadcast channel is reliable by its option.
func TestGrafanasStatesReplicateOnGossip(t *testing.T) {
	cfg := hearsay.Config{Orgs: []int64{1}}
	a, b := start(t, cfg), start(t, cfg)
	la, cha := addLog(t, a, "notificationlog:1")
	lb, _ := addLog(t, b, "notificationlog:1")
	_, broadcast := addLog(t, a, "alerts:broadcast", cluster.WithReliableDelivery(true), cluster.WithQueueSize(100))
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if _, err := b.Join(ctx, a.Address()); err != nil {
		t.Fatal(err)
	}
	if err := b.WaitReady(ctx); err != nil {
		t.Fatal(err)
	}
	la.write("entry-1")
	eventually(t, "b's log holds a's entry", func() bool { return lb.has("entry-1") })
	if cha.ReliableDelivery([]byte("entry-1")) || !broadcast.ReliableDelivery([]byte("x")) {
		t.Fatal("gossip: small updates re-broadcast, the forced channel does not")
	}
	if _, err := a.Org(1).ShouldNotify(hearsay.Flush{GroupKey: "g", Now: time.Now()}); err == nil {
		t.Fatal("the native notificationlog:1 still answers after Grafana took its key")
	}
	if _, err := a.Org(1).Mutes(hearsay.Labels{"a": "b"}, time.Now()); err != nil {
		t.Fatalf("the native silences:1, not taken, must still answer: %v", err)
	}
}

// On Redis, in Grafana's layout, every channel is reliable: nothing is re-published.
func TestGrafanasStatesReplicateOnRedis(t *testing.T) {
	url := redisServer(t)
	a := start(t, hearsay.Config{Name: "peer-a", RedisURL: url, RedisPrefix: "grafana"})
	b := start(t, hearsay.Config{Name: "peer-b", RedisURL: url, RedisPrefix: "grafana"})
	la, _ := addLog(t, a, "silences:1")
	lb, chb := addLog(t, b, "silences:1")
	eventually(t, "positions over Redis", func() bool { return a.Position()+b.Position() == 1 && b.Ready() })
	la.write("silence-1")
	eventually(t, "b holds a's silence", func() bool { return lb.has("silence-1") })
	if n := lb.rebroadcasts(); !chb.ReliableDelivery([]byte("x")) || n != 0 {
		t.Fatalf("Redis: reliable %v, re-published %d", chb.ReliableDelivery([]byte("x")), n)
	}
}

// redisServer starts a private redis-server on a free loopback port; a missing binary fails.
func redisServer(t *testing.T) string {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	port := l.Addr().(*net.TCPAddr).Port
	l.Close()
	cmd := exec.Command("redis-server", "--bind", "127.0.0.1", "--port", strconv.Itoa(port),
		"--save", "", "--appendonly", "no")
	if err := cmd.Start(); err != nil {
		t.Fatalf("redis-server is required (make deps): %v", err)
	}
	t.Cleanup(func() { cmd.Process.Kill(); cmd.Wait() })
	eventually(t, "redis-server answers", func() bool {
		c, err := net.Dial("tcp", l.Addr().String())
		if err == nil {
			c.Close()
		}
		return err == nil
	})
	return "redis://" + l.Addr().String() + "/0"
}
