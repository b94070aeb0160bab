package hearsay_test

import (
	"context"
	"errors"
	"sort"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/hearsay-ha/hearsay/bindings/go/hearsay"
)

// set is a host state as Alertmanager's are built: a set of strings that merges by union,
// re-broadcasts what a merge added unless the channel says it reached everyone (Grafana's
// ReliableDeliveryAware states do so), and broadcasts its own additions.
type set struct {
	mu        sync.Mutex
	items     map[string]bool
	broadcast func([]byte)
	reliable  func([]byte) bool
	rebroad   int
}

func newSet() *set { return &set{items: map[string]bool{}} }

func (s *set) MarshalBinary() ([]byte, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	items := make([]string, 0, len(s.items))
	for k := range s.items {
		items = append(items, k)
	}
	sort.Strings(items)
	return []byte(strings.Join(items, "\n")), nil
}

func (s *set) Merge(b []byte) error {
	if len(b) == 0 {
		return nil
	}
	if strings.HasPrefix(string(b), "!") {
		return errors.New("a bad payload")
	}
	s.mu.Lock()
	added := false
	for _, k := range strings.Split(string(b), "\n") {
		if !s.items[k] {
			s.items[k] = true
			added = true
		}
	}
	again := added && s.broadcast != nil && (s.reliable == nil || !s.reliable(b))
	if again {
		s.rebroad++
	}
	send := s.broadcast
	s.mu.Unlock()
	if again {
		send(b)
	}
	return nil
}

func (s *set) SetIsReliableDelivery(f func([]byte) bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.reliable = f
}

func (s *set) setBroadcast(f func([]byte)) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.broadcast = f
}

func (s *set) rebroadcasts() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.rebroad
}

func (s *set) wired() bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.reliable != nil
}

func (s *set) add(item string) {
	s.mu.Lock()
	s.items[item] = true
	send := s.broadcast
	s.mu.Unlock()
	send([]byte(item))
}

func (s *set) has(item string) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.items[item]
}

// addSet registers a fresh set under key and wires its broadcast, as Alertmanager wires its
// states to the peer's channel.
func addSet(t *testing.T, n *hearsay.Node, key string) (*set, *hearsay.Channel) {
	t.Helper()
	s := newSet()
	ch, err := n.AddState(key, s, nil)
	if err != nil {
		t.Fatalf("AddState(%q): %v", key, err)
	}
	s.setBroadcast(ch.Broadcast)
	return s, ch
}

func metricsHave(t *testing.T, n *hearsay.Node, line string) bool {
	t.Helper()
	m, err := n.Metrics()
	if err != nil {
		t.Fatal(err)
	}
	return strings.Contains(m, line)
}

// The host's keys win: Alertmanager's "sil" goes to the host's state on a node with the
// default layout, the native silences there are switched off and say so, and the host's
// state replicates.
func TestTheHostsKeysWin(t *testing.T) {
	a := start(t, "a", hearsay.Config{})
	b := start(t, "b", hearsay.Config{})
	sa, cha := addSet(t, a, "sil")
	sb, _ := addSet(t, b, "sil")
	if !sa.wired() {
		t.Fatal("SetIsReliableDelivery was not wired")
	}
	join(t, b, a)
	sa.add("from a")
	eventually(t, "b's host state holds a's item", func() bool { return sb.has("from a") })
	copies := cha.Copies()
	eventually(t, "a's copy refreshed", func() bool { return cha.Copies() > copies })

	now := time.Now()
	_, err := a.SetSilence(hearsay.Silence{
		Matchers: []hearsay.Matcher{{Name: "alertname", Value: "x"}},
		StartsAt: now, EndsAt: now.Add(time.Hour),
	}, now)
	if !errors.Is(err, hearsay.ErrNoSuchState) || !strings.Contains(err.Error(), "switched off") {
		t.Fatalf("native SetSilence after the host took sil: %v", err)
	}
	if _, err := a.Mutes(alert, now); !errors.Is(err, hearsay.ErrNoSuchState) {
		t.Fatalf("native Mutes after the host took sil: %v", err)
	}
	if !metricsHave(t, a, `hearsay_native_state_switched_off{key="sil"} 1`) {
		t.Fatal("the switch-off is not in the metrics")
	}
	// The notification log, not taken, still works.
	if _, err := a.ShouldNotify(hearsay.Flush{GroupKey: "g", Now: now}); err != nil {
		t.Fatalf("native nfl: %v", err)
	}
}

// AddState again with a key the host registered replaces the state object: what peers send
// goes to the new one, and its copy is what push/pulls carry.
func TestAddStateAgainReplacesTheState(t *testing.T) {
	a := start(t, "a", hearsay.Config{})
	b := start(t, "b", hearsay.Config{})
	old, _ := addSet(t, a, "silences:1")
	sb, _ := addSet(t, b, "silences:1")
	join(t, b, a)
	sb.add("before")
	eventually(t, "the old state holds b's first item", func() bool { return old.has("before") })

	fresh, _ := addSet(t, a, "silences:1")
	sb.add("after")
	eventually(t, "the new state holds b's later item", func() bool { return fresh.has("after") })
	if old.has("after") {
		t.Fatal("the replaced state still merges")
	}
	// A third node gets the new object's copy (and what changed since) by push/pull.
	fresh.add("fresh only")
	c := start(t, "c", hearsay.Config{})
	sc, _ := addSet(t, c, "silences:1")
	join(t, c, a)
	eventually(t, "c holds the new state's item", func() bool { return sc.has("fresh only") })
}

// Native states configured elsewhere: moved, the host and hearsay each keep theirs; switched
// off, the node carries none; a key the layout lacks is refused at start.
func TestNativeStatesMoveOrSwitchOff(t *testing.T) {
	moved := hearsay.Config{NativeKeys: map[string]string{"sil": "hearsay:sil", "nfl": ""}}
	a := start(t, "a", moved)
	b := start(t, "b", moved)
	sa, _ := addSet(t, a, "sil")
	sb, _ := addSet(t, b, "sil")
	join(t, b, a)
	now := time.Now()
	if _, err := a.SetSilence(hearsay.Silence{
		Matchers: []hearsay.Matcher{{Name: "alertname", Value: "DiskFull"}},
		StartsAt: now, EndsAt: now.Add(time.Hour),
	}, now); err != nil {
		t.Fatalf("native silences under their new key: %v", err)
	}
	sa.add("host item")
	eventually(t, "both replicate", func() bool {
		n, err := b.Mutes(alert, time.Now())
		return err == nil && n == 1 && sb.has("host item")
	})
	if _, err := a.ShouldNotify(hearsay.Flush{GroupKey: "g", Now: now}); !errors.Is(err, hearsay.ErrNoSuchState) {
		t.Fatalf("the switched-off nflog: %v", err)
	}
	if metricsHave(t, a, "hearsay_native_state_switched_off") {
		t.Fatal("nothing was taken at run time, yet a switch-off is reported")
	}
	for _, keys := range []map[string]string{{"silences:9": "x"}, {"sil": "nfl"}} {
		_, err := hearsay.Start(hearsay.Config{BindAddr: "127.0.0.1:0", NativeKeys: keys})
		if !errors.Is(err, hearsay.ErrInvalidConfig) {
			t.Errorf("NativeKeys %v: %v, want ErrInvalidConfig", keys, err)
		}
	}
}

// ReliableDelivery answers as Grafana's channels do: gossip re-broadcasts small updates,
// large ones and forced channels count as delivered; on Redis everything is.
func TestReliableDeliveryFollowsTheTransport(t *testing.T) {
	a := start(t, "a", hearsay.Config{})
	plain, err := a.AddState("small", newSet(), nil)
	if err != nil {
		t.Fatal(err)
	}
	forced, err := a.AddStateWith("alerts:broadcast", newSet(), nil, hearsay.ChannelOptions{ReliableDelivery: true})
	if err != nil {
		t.Fatal(err)
	}
	if plain.ReliableDelivery([]byte("x")) || !plain.ReliableDelivery(make([]byte, 700)) {
		t.Fatal("gossip: small updates must be re-broadcast, oversized ones not")
	}
	if !forced.ReliableDelivery([]byte("x")) {
		t.Fatal("a forced channel must report reliable delivery")
	}
	r := start(t, "r", hearsay.Config{RedisURL: redisServer(t)})
	onRedis, err := r.AddState("small", newSet(), nil)
	if err != nil {
		t.Fatal(err)
	}
	if !onRedis.ReliableDelivery([]byte("x")) {
		t.Fatal("Redis: one publish reaches everyone")
	}
}

// A host state over Redis, in Grafana's layout: a merge there never re-publishes.
func TestHostStatesRideOnRedis(t *testing.T) {
	url := redisServer(t)
	a := start(t, "peer-a", hearsay.Config{RedisURL: url, RedisPrefix: "grafana"})
	b := start(t, "peer-b", hearsay.Config{RedisURL: url, RedisPrefix: "grafana"})
	sa, _ := addSet(t, a, "silences:1")
	sb, _ := addSet(t, b, "silences:1")
	eventually(t, "positions over Redis", func() bool {
		return members(a) == 2 && members(b) == 2 && a.Position() == 0 && b.Position() == 1
	})
	sa.add("through redis")
	eventually(t, "b holds a's item", func() bool { return sb.has("through redis") })
	if n := sb.rebroadcasts(); n != 0 {
		t.Fatalf("b re-published %d updates on Redis", n)
	}
	if _, err := a.Join(context.Background(), "127.0.0.1:9094"); !errors.Is(err, hearsay.ErrInvalidArgument) {
		t.Fatalf("join on a Redis node: %v", err)
	}
}

// A state whose Merge fails is counted, and the channel goes on.
func TestMergeFailuresAreCounted(t *testing.T) {
	a := start(t, "a", hearsay.Config{})
	b := start(t, "b", hearsay.Config{})
	_, cha := addSet(t, a, "host:1")
	sb, chb := addSet(t, b, "host:1")
	join(t, b, a)
	cha.Broadcast([]byte("!garbage"))
	eventually(t, "b counts the failed merge", func() bool { _, m := chb.Dropped(); return m > 0 })
	cha.Broadcast([]byte("fine"))
	eventually(t, "b merges the next one", func() bool { return sb.has("fine") })
	if _, err := a.AddState("host:2", nil, nil); !errors.Is(err, hearsay.ErrInvalidArgument) {
		t.Fatalf("a nil state: %v", err)
	}
}
