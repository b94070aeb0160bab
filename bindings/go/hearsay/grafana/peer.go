// Package grafana puts a hearsay node in the shape of Grafana's notify.ClusterPeer (the
// peer every organisation's Alertmanager registers its states on): AddState with channel
// options, read through cluster.ResolveOptions; channels with Broadcast and
// ReliableDelivery; a state that is cluster.ReliableDeliveryAware gets its channel's
// ReliableDelivery on AddState. Position and WaitReady are the node's.
//
// It imports github.com/prometheus/alertmanager/cluster, which Grafana's go.mod replaces
// with its fork; against upstream Alertmanager (whose ClusterChannel has no
// ReliableDelivery) it does not compile, by design. A Grafana-style server changes three
// things: it constructs a Peer where it built its memberlist or Redis peer, stops it where it
// stopped those (Shutdown), and its NilPeer check sees a real peer. See
// bindings/go/examples/grafana-server.
package grafana

import (
	"context"
	"time"

	"github.com/prometheus/alertmanager/cluster"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/hearsay-ha/hearsay/bindings/go/hearsay"
)

// Peer is a hearsay node as Grafana's ClusterPeer.
type Peer struct {
	*hearsay.Node
}

// New starts a node (hearsay.Start): with Config.GrafanaConfigFile, from grafana.ini's
// [unified_alerting] section, Redis mode included.
func New(cfg hearsay.Config) (*Peer, error) {
	n, err := hearsay.Start(cfg)
	if err != nil {
		return nil, err
	}
	return &Peer{Node: n}, nil
}

// AddState registers s under key (see Node.AddState: the host's keys win over hearsay's
// native states; a second registration of a key replaces the state object, as Grafana does
// when it recreates an organisation's Alertmanager). WithReliableDelivery(true) makes the
// channel's ReliableDelivery true, so receivers' states do not re-broadcast its messages.
// WithQueueSize is read and not applied: the node's queues have its own bounds, and what they
// drop is counted (Channel.Dropped, the node's metrics). Grafana's shape has no error, so a
// refusal is logged on the node's Logger at the call, and the channel's Err says why.
func (p *Peer) AddState(key string, s cluster.State, reg prometheus.Registerer, opts ...cluster.ChannelOption) cluster.ClusterChannel {
	o := cluster.ResolveOptions(opts...)
	ch, err := p.Node.AddStateWith(key, s, reg, hearsay.ChannelOptions{ReliableDelivery: o.ReliableDelivery})
	if err != nil {
		p.Logger().Error("hearsay: AddState refused; this state will not replicate", "key", key, "err", err)
		return p.FailedChannel(key, s, err)
	}
	return ch
}

// Settle waits until the node settled or ctx ends (Grafana runs its peers' Settle in a
// goroutine with a 30 s context). The node settles by its own polls, so interval is unused.
func (p *Peer) Settle(ctx context.Context, _ time.Duration) {
	_ = p.WaitReady(ctx)
}

// Shutdown leaves the cluster (waiting up to 10 s, as Grafana's StopAndWait does for its
// memberlist peer) and closes the node.
func (p *Peer) Shutdown() {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	_ = p.Node.Leave(ctx)
	_ = p.Close()
}
