// Package notify is an interface replica of the peer contract in grafana/alerting's notify
// package: what every organisation's Alertmanager receives as its peer. See ../../README.md.
package notify

import (
	"context"

	"github.com/prometheus/alertmanager/cluster"
	"github.com/prometheus/client_golang/prometheus"
)

// ClusterPeer is the peer a Grafana Alertmanager registers its states on.
type ClusterPeer interface {
	AddState(key string, s cluster.State, reg prometheus.Registerer, opts ...cluster.ChannelOption) cluster.ClusterChannel
	Position() int
	WaitReady(ctx context.Context) error
}

// NilPeer is the peer of a Grafana without clustering: position 0, always ready, and states
// that travel nowhere.
type NilPeer struct{}

// Position is 0: this instance is the only one.
func (NilPeer) Position() int { return 0 }

// WaitReady returns at once.
func (NilPeer) WaitReady(context.Context) error { return nil }

// AddState returns a channel that sends nothing.
func (NilPeer) AddState(string, cluster.State, prometheus.Registerer, ...cluster.ChannelOption) cluster.ClusterChannel {
	return &NilChannel{}
}

// NilChannel sends nothing; with no peers, every message reached them all.
type NilChannel struct{}

// Broadcast does nothing.
func (*NilChannel) Broadcast([]byte) {}

// ReliableDelivery is true.
func (*NilChannel) ReliableDelivery([]byte) bool { return true }
