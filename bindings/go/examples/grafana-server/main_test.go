package main

import (
	"context"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/grafana/alerting/notify"

	"github.com/hearsay-ha/hearsay/bindings/go/hearsay/grafana"
)

var _ notify.ClusterPeer = (*grafana.Peer)(nil)

// Two servers from one grafana.ini share an organisation's silences; one recreated
// organisation keeps replicating; without clustering the NilPeer stays.
func TestTwoServersShareAnOrganisation(t *testing.T) {
	dir := t.TempDir()
	ini := filepath.Join(dir, "grafana.ini")
	if err := os.WriteFile(ini, []byte("[unified_alerting]\nha_listen_address = 127.0.0.1:0\nha_gossip_interval = 50ms\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	a, err := newMultiOrg(ini, true)
	if err != nil {
		t.Fatal(err)
	}
	defer a.stopAndWait()
	b, err := newMultiOrg(ini, true)
	if err != nil {
		t.Fatal(err)
	}
	defer b.stopAndWait()
	a.start(1)
	b.start(1)
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if _, err := b.peer.(*grafana.Peer).Join(ctx, a.peer.(*grafana.Peer).Address()); err != nil {
		t.Fatal(err)
	}
	b.start(1) // recreated: the new states take over
	a.orgs[1].silences.add("silence-1")
	for !b.orgs[1].silences.has("silence-1") {
		if ctx.Err() != nil {
			t.Fatal("b's recreated organisation never got a's silence")
		}
		time.Sleep(10 * time.Millisecond)
	}
	none, err := newMultiOrg(ini, false)
	if err != nil {
		t.Fatal(err)
	}
	if _, ok := none.peer.(*notify.NilPeer); !ok {
		t.Fatal("without clustering the peer must stay the NilPeer")
	}
}
