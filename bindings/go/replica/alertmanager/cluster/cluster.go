// Package cluster is an interface replica of the cluster package of Grafana's Alertmanager
// fork: the types a peer and its states exchange, and the channel options. See ../../README.md.
package cluster

// State is a replicated state: the peer sends MarshalBinary in push/pulls and hands what
// peers send to Merge.
type State interface {
	MarshalBinary() ([]byte, error)
	Merge(b []byte) error
}

// ClusterChannel carries one state's updates. Broadcast must not block; ReliableDelivery
// tells whether b reached (or will reach) every peer without the receivers re-broadcasting.
type ClusterChannel interface {
	Broadcast(b []byte)
	ReliableDelivery(b []byte) bool
}

// ReliableDeliveryAware is a state that asks its channel before re-broadcasting what it
// merged; the fork's peer hands it the channel's ReliableDelivery on AddState.
type ReliableDeliveryAware interface {
	SetIsReliableDelivery(func([]byte) bool)
}

// ClusterMember is a peer in the cluster.
type ClusterMember interface {
	Name() string
	Address() string
}

// ClusterPeer is the peer as Alertmanager's API sees it.
type ClusterPeer interface {
	Name() string
	Status() string
	Peers() []ClusterMember
}

// ChannelOptions are a channel's settings once resolved.
type ChannelOptions struct {
	// ReliableDelivery: every message of the channel is delivered reliably. Default false.
	ReliableDelivery bool
	// QueueSize bounds the channel's queue. Default 200.
	QueueSize int
}

// ChannelOption sets one of a channel's options; read them with ResolveOptions.
type ChannelOption func(*ChannelOptions)

// DefaultQueueSize is QueueSize when no option sets it.
const DefaultQueueSize = 200

// ResolveOptions applies opts to the defaults.
func ResolveOptions(opts ...ChannelOption) ChannelOptions {
	o := ChannelOptions{QueueSize: DefaultQueueSize}
	for _, opt := range opts {
		opt(&o)
	}
	return o
}

// WithReliableDelivery sets ReliableDelivery.
func WithReliableDelivery(reliable bool) ChannelOption {
	return func(o *ChannelOptions) { o.ReliableDelivery = reliable }
}

// WithQueueSize sets QueueSize; a size of 0 or less is a programming error and panics.
func WithQueueSize(size int) ChannelOption {
	if size <= 0 {
		panic("cluster: queue size must be positive")
	}
	return func(o *ChannelOptions) { o.QueueSize = size }
}
