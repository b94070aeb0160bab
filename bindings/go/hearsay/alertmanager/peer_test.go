package alertmanager_test

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/alertmanager/cluster"
	"github.com/prometheus/alertmanager/nflog"
	"github.com/prometheus/alertmanager/nflog/nflogpb"
	"github.com/prometheus/alertmanager/silence"
	pb "github.com/prometheus/alertmanager/silence/silencepb"
	"github.com/prometheus/client_golang/prometheus"
	"google.golang.org/protobuf/types/known/timestamppb"

	"github.com/hearsay-ha/hearsay/bindings/go/hearsay"
	"github.com/hearsay-ha/hearsay/bindings/go/hearsay/alertmanager"
)

// What Alertmanager's main and API take: the ClusterPeer interface and *cluster.Peer's
// methods, with Alertmanager's own types.
var _ interface {
	cluster.ClusterPeer
	AddState(string, cluster.State, prometheus.Registerer) cluster.ClusterChannel
	Position() int
	WaitReady(context.Context) error
	Settle(context.Context, time.Duration)
	Leave(time.Duration) error
	ClusterSize() int
	Ready() bool
} = (*alertmanager.Peer)(nil)

func start(t *testing.T, name string) *alertmanager.Peer {
	t.Helper()
	p, err := alertmanager.New(hearsay.Config{
		Name: name, BindAddr: "127.0.0.1:0", GossipInterval: 50 * time.Millisecond,
		SettleTimeout: 300 * time.Millisecond,
	})
	if err != nil {
		t.Fatalf("start %s: %v", name, err)
	}
	t.Cleanup(func() { p.Close() })
	return p
}

func join(t *testing.T, p, to *alertmanager.Peer) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if joined, err := p.Join(ctx, to.Address()); err != nil || joined != 1 {
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

// alertmanagerStates wires Alertmanager's own silences and notification log to p under the
// keys Alertmanager's main uses, "sil" and "nfl", on a node with hearsay's default layout.
func alertmanagerStates(t *testing.T, p *alertmanager.Peer) (*silence.Silences, *nflog.Log, cluster.ClusterChannel) {
	t.Helper()
	reg := prometheus.NewRegistry()
	s, err := silence.New(silence.Options{Retention: time.Hour, Metrics: reg})
	if err != nil {
		t.Fatal(err)
	}
	ch := p.AddState("sil", s, reg)
	if err := ch.(*hearsay.Channel).Err(); err != nil {
		t.Fatal(err)
	}
	s.SetBroadcast(ch.Broadcast)
	l, err := nflog.New(nflog.Options{Retention: time.Hour, Metrics: reg})
	if err != nil {
		t.Fatal(err)
	}
	l.SetBroadcast(p.AddState("nfl", l, reg).Broadcast)
	return s, l, ch
}

func amSilence(comment string) *pb.Silence {
	now := time.Now()
	return &pb.Silence{
		Matchers:  []*pb.Matcher{{Type: pb.Matcher_EQUAL, Name: "alertname", Pattern: "DiskFull"}},
		StartsAt:  timestamppb.New(now),
		EndsAt:    timestamppb.New(now.Add(time.Hour)),
		CreatedBy: "go-test",
		Comment:   comment,
	}
}

// Alertmanager's own silences and notification log ride on hearsay under its own keys:
// updates by broadcast, and a node that joins later gets them by push/pull.
func TestAlertmanagersStatesReplicate(t *testing.T) {
	a, b := start(t, "a"), start(t, "b")
	sa, la, cha := alertmanagerStates(t, a)
	sb, lb, _ := alertmanagerStates(t, b)
	join(t, b, a)
	eventually(t, "both see both", func() bool {
		return a.ClusterSize() == 2 && len(b.Peers()) == 2 && a.Position()+b.Position() == 1
	})

	sil := amSilence("through hearsay")
	copies := cha.(*hearsay.Channel).Copies()
	if err := sa.Set(context.Background(), sil); err != nil {
		t.Fatalf("Set: %v", err)
	}
	has := func(s *silence.Silences) func() bool {
		return func() bool {
			got, _, err := s.Query(context.Background(), silence.QIDs(sil.Id))
			return err == nil && len(got) == 1 && got[0].Comment == "through hearsay"
		}
	}
	eventually(t, "b's Alertmanager silences hold a's silence", has(sb))

	recv := &nflogpb.Receiver{GroupName: "team-db", Integration: "webhook"}
	if err := la.Log(recv, "{}:{alertname=\"DiskFull\"}", []uint64{1}, nil, nil, nil, time.Hour); err != nil {
		t.Fatalf("Log: %v", err)
	}
	logged := func(l *nflog.Log) func() bool {
		return func() bool {
			got, err := l.Query(nflog.QReceiver(recv), nflog.QGroupKey("{}:{alertname=\"DiskFull\"}"))
			return err == nil && len(got) == 1
		}
	}
	eventually(t, "b's notification log holds a's entry", logged(lb))

	// A third node joins once a's full copy holds both: the push/pull brings them.
	eventually(t, "a's copy refreshed", func() bool { return cha.(*hearsay.Channel).Copies() > copies })
	c := start(t, "c")
	sc, lc, _ := alertmanagerStates(t, c)
	join(t, c, a)
	eventually(t, "c holds the silence and the entry after its join", func() bool { return has(sc)() && logged(lc)() })

	if m, err := a.Metrics(); err != nil || !strings.Contains(m, `hearsay_native_state_switched_off{key="sil"} 1`) {
		t.Fatalf("the native sil switched off is not in the metrics: %v", err)
	}
}

// A refusal is visible at the call even in Alertmanager's shape, which has no error.
func TestARefusedAddStateSaysSo(t *testing.T) {
	p := start(t, "a")
	p.Close()
	s, err := silence.New(silence.Options{Metrics: prometheus.NewRegistry()})
	if err != nil {
		t.Fatal(err)
	}
	ch := p.AddState("sil", s, nil)
	ch.Broadcast([]byte("x"))
	if updates, _ := ch.(*hearsay.Channel).Dropped(); ch.(*hearsay.Channel).Err() == nil || updates != 1 {
		t.Fatalf("AddState on a closed node: %v, %d dropped", ch.(*hearsay.Channel).Err(), updates)
	}
}
