package hearsay_test

import (
	"context"
	"errors"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/hearsay-ha/hearsay/bindings/go/hearsay"
)

func start(t *testing.T, name string, cfg hearsay.Config) *hearsay.Node {
	t.Helper()
	cfg.Name = name
	cfg.BindAddr = "127.0.0.1:0"
	cfg.GossipInterval = 50 * time.Millisecond
	if cfg.SettleTimeout == 0 {
		cfg.SettleTimeout = 300 * time.Millisecond
	}
	n, err := hearsay.Start(cfg)
	if err != nil {
		t.Fatalf("start %s: %v", name, err)
	}
	t.Cleanup(func() { n.Close() })
	return n
}

func join(t *testing.T, n, to *hearsay.Node) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if joined, err := n.Join(ctx, to.Address()); err != nil || joined != 1 {
		t.Fatalf("join: %d, %v", joined, err)
	}
}

// eventually polls cond every 10 ms for up to 10 s.
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

func members(n *hearsay.Node) int {
	m, _ := n.Members()
	return len(m)
}

var alert = hearsay.Labels{"alertname": "DiskFull", "instance": "db1:9100"}

func TestSilencesAndTheLogAreShared(t *testing.T) {
	a := start(t, "a", hearsay.Config{})
	b := start(t, "b", hearsay.Config{})
	join(t, b, a)
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := b.WaitReady(ctx); err != nil {
		t.Fatalf("WaitReady: %v", err)
	}
	if b.Status() != "ready" {
		t.Fatalf("status %q after WaitReady", b.Status())
	}
	eventually(t, "both see both", func() bool {
		return members(a) == 2 && members(b) == 2 && a.Position()+b.Position() == 1
	})

	now := time.Now()
	id, err := a.SetSilence(hearsay.Silence{
		Matchers:  []hearsay.Matcher{{Name: "alertname", Value: "Disk.*", Type: hearsay.MatchRegexp}},
		StartsAt:  now,
		EndsAt:    now.Add(time.Hour),
		CreatedBy: "go-test",
		Comment:   "maintenance",
	}, now)
	if err != nil || len(id) != 36 {
		t.Fatalf("SetSilence: %q, %v", id, err)
	}
	eventually(t, "b muted by a's silence", func() bool {
		n, err := b.Mutes(alert, time.Now())
		return err == nil && n == 1
	})

	flush := hearsay.Flush{
		Receiver:       hearsay.Receiver{Name: "team-db", Integration: "webhook"},
		GroupKey:       `{}:{alertname="DiskFull"}`,
		Firing:         []uint64{hearsay.AlertHash(alert)},
		SendResolved:   true,
		RepeatInterval: 4 * time.Hour,
		Now:            time.Now(),
	}
	d, err := b.ShouldNotify(flush)
	if err != nil || !d.Notify || d.Row != hearsay.RowNoEntryFiring {
		t.Fatalf("first flush on b: %+v, %v", d, err)
	}
	if written, err := a.LogNotification(flush); err != nil || !written {
		t.Fatalf("LogNotification: %v, %v", written, err)
	}
	eventually(t, "b skips what a sent", func() bool {
		flush.Now = time.Now()
		d, err := b.ShouldNotify(flush)
		return err == nil && !d.Notify && d.Row == hearsay.RowUnchanged
	})

	if err := b.ExpireSilence(id, time.Now()); err != nil {
		t.Fatalf("ExpireSilence: %v", err)
	}
	eventually(t, "a unmuted", func() bool {
		n, err := a.Mutes(alert, time.Now())
		return err == nil && n == 0
	})
	metrics, err := a.Metrics()
	if err != nil || !strings.Contains(metrics, "alertmanager_cluster_members 2") {
		t.Fatalf("metrics: %v\n%s", err, metrics)
	}
}

func TestErrorsAreSentinelsWithMessages(t *testing.T) {
	if _, err := hearsay.Start(hearsay.Config{BindAddr: "localhost"}); !errors.Is(err, hearsay.ErrInvalidArgument) ||
		!strings.Contains(err.Error(), "localhost") {
		t.Fatalf("bad bind address: %v", err)
	}
	a := start(t, "a", hearsay.Config{})
	now := time.Now()
	_, err := a.SetSilence(hearsay.Silence{
		Matchers: []hearsay.Matcher{{Name: "alertname", Value: "x"}},
		StartsAt: now, EndsAt: now.Add(-time.Hour),
	}, now)
	var e *hearsay.Error
	if !errors.Is(err, hearsay.ErrInvalidSilence) || !errors.As(err, &e) || !strings.Contains(e.Message, "end time") {
		t.Fatalf("backwards silence: %v", err)
	}
	if err := a.ExpireSilence("no-such-id", now); !errors.Is(err, hearsay.ErrSilenceNotFound) {
		t.Fatalf("unknown silence: %v", err)
	}
	if _, err := a.SetSilence(hearsay.Silence{
		Matchers: []hearsay.Matcher{{Name: "a", Value: "b", Type: 9}}, StartsAt: now, EndsAt: now.Add(time.Hour),
	}, now); !errors.Is(err, hearsay.ErrInvalidArgument) {
		t.Fatalf("bad matcher type: %v", err)
	}
	if _, err := a.ShouldNotify(hearsay.Flush{GroupKey: "\xff", Now: now}); !errors.Is(err, hearsay.ErrInvalidUTF8) {
		t.Fatalf("bad UTF-8: %v", err)
	}
}

// A node started from Grafana's ini file: two of them form a cluster and share a silence;
// fields set beside the file override it; a bad value names the key and its line.
func TestNodesStartFromGrafanasConfigFile(t *testing.T) {
	dir := t.TempDir()
	write := func(name, text string) string {
		path := filepath.Join(dir, name)
		if err := os.WriteFile(path, []byte(text), 0o600); err != nil {
			t.Fatal(err)
		}
		return path
	}
	ini := write("custom.ini", "[server]\nroot_url = %(protocol)s://%(domain)s/\n\n"+
		"[unified_alerting]\nenabled = true\nha_listen_address = \"127.0.0.1:0\"\n"+
		"ha_gossip_interval = 50ms\nha_label = from-ini\nha_peer_timeout = 15s ; Grafana's default\n")
	a := start(t, "a", hearsay.Config{GrafanaConfigFile: ini})
	b := start(t, "b", hearsay.Config{GrafanaConfigFile: ini})
	join(t, b, a)
	now := time.Now()
	_, err := a.SetSilence(hearsay.Silence{
		Matchers: []hearsay.Matcher{{Name: "alertname", Value: "FromIni"}},
		StartsAt: now, EndsAt: now.Add(time.Hour), CreatedBy: "go-test",
	}, now)
	if err != nil {
		t.Fatal(err)
	}
	eventually(t, "the silence on b", func() bool {
		n, err := b.Mutes(hearsay.Labels{"alertname": "FromIni"}, time.Now())
		return err == nil && n == 1
	})

	bad := write("bad.ini", "[unified_alerting]\n\nha_peer_timeout = 15x\n")
	_, err = hearsay.Start(hearsay.Config{GrafanaConfigFile: bad})
	if !errors.Is(err, hearsay.ErrInvalidConfig) || !strings.Contains(err.Error(), "line 3") ||
		!strings.Contains(err.Error(), "ha_peer_timeout") {
		t.Fatalf("bad value: %v", err)
	}
	if _, err := hearsay.Start(hearsay.Config{GrafanaConfigFile: filepath.Join(dir, "missing.ini")}); !errors.Is(err, hearsay.ErrIO) {
		t.Fatalf("missing file: %v", err)
	}
}

// redisServer starts a private redis-server on a free loopback port (Debian's package,
// installed by make deps); a missing binary fails the test.
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

// The Redis credentials, database and TLS settings reach the library, which checks them.
func TestRedisSettingsAreChecked(t *testing.T) {
	negative := -1
	for _, c := range []struct {
		cfg  hearsay.Config
		err  error
		want string
	}{
		{hearsay.Config{RedisDB: &negative}, hearsay.ErrInvalidArgument, "negative"},
		{hearsay.Config{RedisTLS: &hearsay.RedisTLSConfig{CertFile: "c.pem"}}, hearsay.ErrInvalidArgument, "key_file"},
		{hearsay.Config{RedisTLS: &hearsay.RedisTLSConfig{MinVersion: "VersionTLS10"}}, hearsay.ErrInvalidArgument, "TLS10"},
		{hearsay.Config{RedisTLS: &hearsay.RedisTLSConfig{CipherSuites: []string{"TLS_NOPE"}}}, hearsay.ErrInvalidArgument, "TLS_NOPE"},
		{hearsay.Config{RedisTLS: &hearsay.RedisTLSConfig{CAFile: "/nonexistent/ca.pem"}}, hearsay.ErrInvalidConfig, "/nonexistent/ca.pem"},
	} {
		c.cfg.RedisURL = "redis://127.0.0.1:1/0"
		if _, err := hearsay.Start(c.cfg); !errors.Is(err, c.err) || !strings.Contains(err.Error(), c.want) {
			t.Errorf("%+v: %v, want %v naming %q", c.cfg, err, c.err, c.want)
		}
	}
}

func TestCloseIsSafeTwiceAndLeaksNoGoroutines(t *testing.T) {
	before := runtime.NumGoroutine()
	n, err := hearsay.Start(hearsay.Config{BindAddr: "127.0.0.1:0"})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := n.AddState("host:1", newSet(), nil); err != nil {
		t.Fatal(err)
	}
	n.Close()
	n.Close()
	if _, err := n.AddState("host:2", newSet(), nil); !errors.Is(err, hearsay.ErrClosed) {
		t.Fatalf("AddState after Close: %v", err)
	}
	if _, err := n.Mutes(alert, time.Now()); !errors.Is(err, hearsay.ErrClosed) {
		t.Fatalf("call after Close: %v", err)
	}
	if n.Position() != 0 || n.Name() != "" {
		t.Fatal("a closed node reports a position or a name")
	}
	eventually(t, "goroutines back to the baseline", func() bool { return runtime.NumGoroutine() <= before })
}

func TestSharedKeysJoinAndRotateOthersStayOut(t *testing.T) {
	k1 := []byte("0123456789abcdef")
	k2 := []byte("0123456789abcdef01234567")
	a := start(t, "enc-a", hearsay.Config{SecretKeys: [][]byte{k1}})
	b := start(t, "enc-b", hearsay.Config{SecretKeys: [][]byte{k1}})
	join(t, b, a)

	// Another key, or none: the join's push/pull does not decrypt, so nobody gets in.
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Second)
	defer cancel()
	other := start(t, "enc-other", hearsay.Config{SecretKeys: [][]byte{k2}})
	if _, err := other.Join(ctx, a.Address()); err == nil {
		t.Fatal("a node with another key joined")
	}
	plain := start(t, "plain", hearsay.Config{})
	if _, err := plain.Join(ctx, a.Address()); err == nil {
		t.Fatal("a node without a key joined an encrypted cluster")
	}

	// Rotate both to k2; then the node holding k2 alone can join.
	for _, n := range []*hearsay.Node{a, b} {
		if err := n.AddKey(k2); err != nil {
			t.Fatalf("AddKey: %v", err)
		}
	}
	for _, n := range []*hearsay.Node{a, b} {
		if err := n.UseKey(k2); err != nil {
			t.Fatalf("UseKey: %v", err)
		}
		if err := n.RemoveKey(k2); !errors.Is(err, hearsay.ErrInvalidArgument) {
			t.Fatalf("removing the primary: %v, want ErrInvalidArgument", err)
		}
		if err := n.RemoveKey(k1); err != nil {
			t.Fatalf("RemoveKey: %v", err)
		}
	}
	join(t, other, a)
	if err := a.AddKey([]byte("short")); !errors.Is(err, hearsay.ErrInvalidArgument) {
		t.Fatalf("a 5-byte key: %v, want ErrInvalidArgument", err)
	}
	if err := plain.AddKey(k1); !errors.Is(err, hearsay.ErrInvalidArgument) {
		t.Fatalf("AddKey without encryption: %v, want ErrInvalidArgument", err)
	}
	off := false
	if _, err := hearsay.Start(hearsay.Config{Name: "bad", BindAddr: "127.0.0.1:0", SecretKeys: [][]byte{{1, 2, 3}}, GossipVerifyIncoming: &off}); !errors.Is(err, hearsay.ErrInvalidArgument) {
		t.Fatalf("a 3-byte key at start: %v, want ErrInvalidArgument", err)
	}
}

func TestTwoOrganisationsStayApart(t *testing.T) {
	dir := t.TempDir()
	cfg := hearsay.Config{Orgs: []int64{1, 2}, FlushLog: true}
	a := start(t, "org-a", hearsay.Config{Orgs: cfg.Orgs, FlushLog: true, StorageDir: dir})
	b := start(t, "org-b", cfg)
	join(t, b, a)
	eventually(t, "both see both", func() bool { return members(a) == 2 && members(b) == 2 })

	now := time.Now()
	if _, err := a.Org(2).SetSilence(hearsay.Silence{
		Matchers:  []hearsay.Matcher{{Name: "alertname", Value: "DiskFull", Type: hearsay.MatchEqual}},
		StartsAt:  now,
		EndsAt:    now.Add(time.Hour),
		CreatedBy: "go-test",
		Comment:   "org 2 only",
	}, now); err != nil {
		t.Fatalf("SetSilence in org 2: %v", err)
	}
	eventually(t, "org 2's silence mutes on b", func() bool {
		n, err := b.Org(2).Mutes(alert, time.Now())
		return err == nil && n == 1
	})
	if n, err := b.Org(1).Mutes(alert, time.Now()); err != nil || n != 0 {
		t.Fatalf("org 1 muted by org 2's silence: %d, %v", n, err)
	}

	flush := hearsay.Flush{
		Receiver:       hearsay.Receiver{Name: "team-db", Integration: "webhook"},
		GroupKey:       `{}:{alertname="DiskFull"}`,
		Firing:         []uint64{hearsay.AlertHash(alert)},
		RepeatInterval: 4 * time.Hour,
		Now:            time.Now(),
	}
	if written, err := a.Org(1).LogNotification(flush); err != nil || !written {
		t.Fatalf("LogNotification in org 1: %v, %v", written, err)
	}
	eventually(t, "org 1's entry on b", func() bool {
		d, err := b.Org(1).ShouldNotify(flush)
		return err == nil && !d.Notify
	})
	if d, err := b.Org(2).ShouldNotify(flush); err != nil || d.Row != hearsay.RowNoEntryFiring {
		t.Fatalf("org 2 sees org 1's entry: %+v, %v", d, err)
	}

	first := now.Add(-30 * time.Second).Truncate(time.Millisecond)
	if written, err := a.Org(1).LogFlush(42, first, 24*time.Hour, now); err != nil || !written {
		t.Fatalf("LogFlush: %v, %v", written, err)
	}
	eventually(t, "org 1's flush time on b", func() bool {
		e, ok, err := b.Org(1).FlushTime(42)
		return err == nil && ok && e.FlushTime.Equal(first)
	})
	if _, ok, err := b.Org(2).FlushTime(42); err != nil || ok {
		t.Fatalf("org 2 holds org 1's flush time: %v, %v", ok, err)
	}
	if _, err := a.Org(1).LogFlush(0, first, 0, now); !errors.Is(err, hearsay.ErrFlushLogRefused) {
		t.Fatalf("fingerprint 0: %v", err)
	}
	if deleted, err := a.Org(1).DeleteFlush(42); err != nil || !deleted {
		t.Fatalf("DeleteFlush: %v, %v", deleted, err)
	}
	eventually(t, "the deletion on b", func() bool {
		_, ok, err := b.Org(1).FlushTime(42)
		return err == nil && !ok
	})

	// Alertmanager's keys and unconfigured organisations are not there.
	if _, err := a.ShouldNotify(flush); !errors.Is(err, hearsay.ErrNoSuchState) {
		t.Fatalf("nfl on an organisations node: %v", err)
	}
	if _, err := a.Org(3).Mutes(alert, now); !errors.Is(err, hearsay.ErrNoSuchState) {
		t.Fatalf("org 3: %v", err)
	}
	if _, err := hearsay.Start(hearsay.Config{BindAddr: "127.0.0.1:0", Orgs: []int64{4, 4}}); !errors.Is(err, hearsay.ErrInvalidArgument) {
		t.Fatalf("an organisation twice: %v", err)
	}

	// Each organisation's snapshots are their own files.
	a.Close()
	for _, f := range []string{"nflog:1", "silences:1", "flushlog:1", "nflog:2", "silences:2", "flushlog:2"} {
		if _, err := os.Stat(filepath.Join(dir, f)); err != nil {
			t.Errorf("snapshot %s: %v", f, err)
		}
	}
	again := start(t, "org-a-again", hearsay.Config{Orgs: cfg.Orgs, FlushLog: true, StorageDir: dir})
	if n, err := again.Org(2).Mutes(alert, time.Now()); err != nil || n != 1 {
		t.Fatalf("org 2's silence after a restart: %d, %v", n, err)
	}
	if d, err := again.Org(1).ShouldNotify(flush); err != nil || d.Notify {
		t.Fatalf("org 1's entry after a restart: %+v, %v", d, err)
	}
}
