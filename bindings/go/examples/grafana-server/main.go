// A Grafana-style server's multi-org Alertmanager, cut down to how it chooses, uses and stops
// its cluster peer, with hearsay as the peer. The three edits such a server makes are marked
// EDIT: construct the peer, stop it, and the NilPeer check (which needs none: a hearsay peer
// is a real one). Everything else programs against notify.ClusterPeer, as before.
//
//	grafana-server -config /etc/grafana/grafana.ini -orgs 1,2
package main

import (
	"context"
	"flag"
	"fmt"
	"log"
	"os/signal"
	"strconv"
	"strings"
	"syscall"

	"github.com/grafana/alerting/notify"
	"github.com/prometheus/alertmanager/cluster"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/hearsay-ha/hearsay/bindings/go/hearsay"
	"github.com/hearsay-ha/hearsay/bindings/go/hearsay/grafana"
)

// multiOrg is the multi-org Alertmanager's peer handling.
type multiOrg struct {
	peer notify.ClusterPeer
	orgs map[int64]*orgAlertmanager
	reg  prometheus.Registerer
}

// newMultiOrg chooses the peer as Grafana's setupClustering does: no clustering configured
// keeps the NilPeer.
func newMultiOrg(iniPath string, clustering bool) (*multiOrg, error) {
	m := &multiOrg{peer: &notify.NilPeer{}, orgs: map[int64]*orgAlertmanager{}, reg: prometheus.NewRegistry()}
	if clustering {
		// EDIT 1 (construct): where Grafana built its Redis or memberlist peer from
		// [unified_alerting], hearsay reads the same keys (ha_peers, ha_redis_address, ...).
		peer, err := grafana.New(hearsay.Config{GrafanaConfigFile: iniPath})
		if err != nil {
			return nil, err
		}
		m.peer = peer
	}
	// EDIT 3 (the NilPeer check): unchanged; a hearsay peer is not a NilPeer, so the alert
	// broadcast state is registered, with reliable delivery forced as Grafana does.
	if _, isNil := m.peer.(*notify.NilPeer); !isNil {
		m.peer.AddState("alerts:broadcast", newEntries(), m.reg, cluster.WithReliableDelivery(true), cluster.WithQueueSize(200))
	}
	return m, nil
}

// start creates (or recreates: AddState again replaces the state) an organisation's
// Alertmanager, whose states go on the shared peer under Grafana's keys.
func (m *multiOrg) start(org int64) {
	am := &orgAlertmanager{silences: newEntries(), nflog: newEntries()}
	am.silences.setBroadcast(m.peer.AddState(fmt.Sprintf("silences:%d", org), am.silences, m.reg).Broadcast)
	am.nflog.setBroadcast(m.peer.AddState(fmt.Sprintf("notificationlog:%d", org), am.nflog, m.reg).Broadcast)
	m.orgs[org] = am
}

// stopAndWait stops the organisations, then the peer, as Grafana's StopAndWait does.
func (m *multiOrg) stopAndWait() {
	m.orgs = map[int64]*orgAlertmanager{}
	// EDIT 2 (stop): Grafana type-switches on its peer to leave or shut it down.
	switch p := m.peer.(type) {
	case *grafana.Peer:
		p.Shutdown()
	}
}

// orgAlertmanager stands for an organisation's Alertmanager: its replicated states.
type orgAlertmanager struct {
	silences, nflog *entries
}

func main() {
	ini := flag.String("config", "grafana.ini", "Grafana's configuration file")
	orgList := flag.String("orgs", "1", "organisation IDs, comma-separated")
	flag.Parse()
	m, err := newMultiOrg(*ini, true)
	if err != nil {
		log.Fatal(err)
	}
	defer m.stopAndWait()
	for _, s := range strings.Split(*orgList, ",") {
		org, err := strconv.ParseInt(strings.TrimSpace(s), 10, 64)
		if err != nil {
			log.Fatalf("-orgs: %v", err)
		}
		m.start(org)
	}
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGINT, syscall.SIGTERM)
	defer stop()
	if err := m.peer.WaitReady(ctx); err != nil {
		log.Fatal(err)
	}
	fmt.Printf("ready at position %d\n", m.peer.Position())
	<-ctx.Done()
}
