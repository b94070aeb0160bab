// Package alertmanager puts a hearsay node in the shape of upstream Alertmanager's
// *cluster.Peer: it implements cluster.ClusterPeer (Name, Status, Peers) and has the methods
// Alertmanager's main calls on its peer (AddState, Position, WaitReady, Ready, Settle,
// ClusterSize, Leave), so a server built on Alertmanager's packages adopts hearsay by
// changing the constructor:
//
//	peer, err := alertmanager.New(hearsay.Config{BindAddr: *listen, Peers: peers})
//	silences.SetBroadcast(peer.AddState("sil", silences, reg).Broadcast)
//
// It is a module of its own so that the core package, hearsay, needs no Alertmanager.
package alertmanager

import (
	"context"
	"time"

	"github.com/prometheus/alertmanager/cluster"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/hearsay-ha/hearsay/bindings/go/hearsay"
)

// Peer is a hearsay node as Alertmanager's *cluster.Peer. The node's own methods (SetSilence,
// Metrics, Members, ...) are there too; Leave takes Alertmanager's timeout (the node's
// context form is Node.Leave).
type Peer struct {
	*hearsay.Node
}

var _ cluster.ClusterPeer = (*Peer)(nil)

// New starts a node (hearsay.Start) and wraps it.
func New(cfg hearsay.Config) (*Peer, error) {
	n, err := hearsay.Start(cfg)
	if err != nil {
		return nil, err
	}
	return &Peer{Node: n}, nil
}

// AddState is (*cluster.Peer).AddState: s rides on the node under key (see Node.AddState: a
// native state under the key is switched off, a second registration replaces the state).
// Alertmanager's shape has no error, so a refusal (the node closed, a key that is not UTF-8)
// is logged on the node's Logger at the call and the channel returned says so in Err, counting
// every Broadcast as dropped.
func (p *Peer) AddState(key string, s cluster.State, reg prometheus.Registerer) cluster.ClusterChannel {
	ch, err := p.Node.AddState(key, s, reg)
	if err != nil {
		p.Logger().Error("hearsay: AddState refused; this state will not replicate", "key", key, "err", err)
		return p.FailedChannel(key, s, err)
	}
	return ch
}

// Peers lists the alive and suspect members, this node included (cluster.ClusterPeer).
func (p *Peer) Peers() []cluster.ClusterMember {
	members, _ := p.Members()
	out := make([]cluster.ClusterMember, len(members))
	for i, m := range members {
		out[i] = m
	}
	return out
}

// ClusterSize is the number of members this node sees, itself included.
func (p *Peer) ClusterSize() int {
	members, _ := p.Members()
	return len(members)
}

// Leave announces that this node leaves and waits up to timeout for the message to go out
// ((*cluster.Peer).Leave). The node keeps running until Close.
func (p *Peer) Leave(timeout time.Duration) error {
	ctx, cancel := context.WithTimeout(context.Background(), timeout)
	defer cancel()
	return p.Node.Leave(ctx)
}

// Settle waits until the node has settled or ctx ends ((*cluster.Peer).Settle, which
// Alertmanager runs in a goroutine). The node settles by its own polls (Config.SettleTimeout
// bounds them), so interval is not used.
func (p *Peer) Settle(ctx context.Context, _ time.Duration) {
	_ = p.WaitReady(ctx)
}
