package hearsay

/*
#include "hearsay.h"
*/
import "C"

import (
	"encoding/binary"
	"errors"
	"fmt"
	"runtime"
	"sync"
	"time"
	"unsafe"

	"github.com/prometheus/client_golang/prometheus"
)

// How often a changed state's full copy is handed to the node for push/pulls, at most.
const refreshEvery = 200 * time.Millisecond

// oversizeBytes is the size above which a state's Part travels over TCP to every member
// instead of by gossip: Alertmanager's MaxGossipPacketSize / 2, as the library uses it.
const oversizeBytes = 700

// State is a host-owned state: what Alertmanager's cluster.State and Grafana's require (its
// silences, notification log, flush log and alert broadcast all implement it). The node calls
// Merge with what peers send (an update or a full state) and MarshalBinary for the copy its
// push/pulls carry; neither is called on the node's own threads.
type State interface {
	MarshalBinary() ([]byte, error)
	Merge(b []byte) error
}

// reliableDeliveryAware is Grafana's cluster.ReliableDeliveryAware: a state that re-broadcasts
// what it merged unless the channel says the bytes reached every member already.
type reliableDeliveryAware interface {
	SetIsReliableDelivery(func([]byte) bool)
}

// ChannelOptions are a state's per-channel options (Grafana's cluster.ChannelOptions).
type ChannelOptions struct {
	// ReliableDelivery says every update of this state reaches every member without the
	// receivers re-broadcasting it (Grafana's WithReliableDelivery; Grafana forces it for
	// alerts:broadcast). hearsay sends each update its host broadcasts straight to every
	// member over TCP anyway; this makes Channel.ReliableDelivery report true. Default false.
	ReliableDelivery bool
}

// statesLoop delivers peers' payloads to the registered Go states and keeps the node's copy
// of each state's MarshalBinary current. One goroutine per node, started by the first AddState.
type statesLoop struct {
	node *Node

	mu      sync.Mutex
	states  map[string]*Channel
	started bool
	done    chan struct{}
	wg      sync.WaitGroup
}

func (l *statesLoop) init(n *Node) {
	l.node = n
	l.states = map[string]*Channel{}
	l.done = make(chan struct{})
}

func (l *statesLoop) stop() {
	l.mu.Lock()
	select {
	case <-l.done:
	default:
		close(l.done)
	}
	l.mu.Unlock()
	l.wg.Wait()
}

// Channel broadcasts one state's updates: Alertmanager's cluster.ClusterChannel, and
// Grafana's (Broadcast and ReliableDelivery).
type Channel struct {
	node  *Node
	key   string
	state State
	opts  ChannelOptions
	// pubsub: the node runs on Redis, where one publish reaches every member.
	pubsub bool
	err    error

	mu    sync.Mutex
	dirty bool
	// Updates dropped at a bound or refused, and Merge failures.
	dropped, mergeErrors uint64
	// Full copies handed to the node.
	copies uint64
}

// Broadcast sends an update of the state to every peer. An update dropped at a queue bound,
// or broadcast on a channel AddState refused, is counted (Dropped); as in Alertmanager, the
// next push/pull repairs a dropped one.
func (c *Channel) Broadcast(b []byte) {
	if c.err != nil {
		c.mu.Lock()
		c.dropped++
		c.mu.Unlock()
		return
	}
	var p runtime.Pinner
	defer p.Unpin()
	err := c.node.with(func(node *C.hs_node) C.hs_result {
		return C.hs_node_broadcast_state(node, str(&p, c.key), bytesPtr(&p, b), C.size_t(len(b)))
	})
	c.mu.Lock()
	c.dirty = true
	if err != nil {
		c.dropped++
	}
	c.mu.Unlock()
}

// ReliableDelivery is Grafana's ClusterChannel.ReliableDelivery: whether b, an update of this
// state, reached (or will reach) every member without receivers re-broadcasting it. True on
// Redis (one publish reaches every subscriber) and for a channel with
// ChannelOptions.ReliableDelivery; on gossip, true when its Part is over 700 bytes (sent to
// every member over TCP), as Grafana's memberlist peer answers.
func (c *Channel) ReliableDelivery(b []byte) bool {
	return c.pubsub || c.opts.ReliableDelivery || partLen(c.key, b) > oversizeBytes
}

// partLen is the encoded size of the protobuf Part{key, data} the update travels in.
func partLen(key string, data []byte) int {
	field := func(n int) int {
		if n == 0 {
			return 0 // proto3 leaves empty fields out
		}
		var buf [binary.MaxVarintLen64]byte
		return 1 + binary.PutUvarint(buf[:], uint64(n)) + n
	}
	return field(len(key)) + field(len(data))
}

// Err is why the state could not be registered (nil when it was). Node.AddState returns
// that error itself; the adapters' AddState, whose shape has no error, leave it here.
func (c *Channel) Err() error { return c.err }

// Key is the state's key.
func (c *Channel) Key() string { return c.key }

// Copies counts the full copies of the state (MarshalBinary) handed to the node for
// push/pulls; one follows each change within 200 ms.
func (c *Channel) Copies() uint64 {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.copies
}

// Dropped counts updates that were not sent and payloads whose Merge failed.
func (c *Channel) Dropped() (updates, merges uint64) {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.dropped, c.mergeErrors
}

func bytesPtr(p *runtime.Pinner, b []byte) *C.uint8_t {
	if len(b) == 0 {
		return nil
	}
	p.Pin(&b[0])
	return (*C.uint8_t)(unsafe.Pointer(&b[0]))
}

// AddState puts a Go state on the cluster under key, as Alertmanager's (*cluster.Peer).AddState
// does: peers' updates and full states go to s.Merge, s.MarshalBinary is what push/pulls send.
// Register before joining. A state that is Grafana's ReliableDeliveryAware gets the channel's
// ReliableDelivery. Metrics are in Node.Metrics, so reg is not used.
//
// The host's keys win: Alertmanager registers its silences under "sil" and its notification
// log under "nfl", Grafana under "silences:<org>" and "notificationlog:<org>", the keys
// hearsay's native states use by default. A native state under key is switched off (logged
// once on Config.Logger; hearsay_native_state_switched_off{key} in Metrics), and its calls
// (SetSilence, Mutes, ... on that key) then return ErrNoSuchState; Config.NativeKeys moves it
// elsewhere to keep both. AddState again with a key registered before replaces the state
// object (Grafana recreates an organisation's Alertmanager so): what peers send goes to s
// from then on. The error is ErrClosed after Close, or the library's refusal of the key.
func (n *Node) AddState(key string, s State, reg prometheus.Registerer) (*Channel, error) {
	return n.AddStateWith(key, s, reg, ChannelOptions{})
}

// AddStateWith is AddState with per-channel options (Grafana's ChannelOption values, which
// its adapter resolves into opts).
func (n *Node) AddStateWith(key string, s State, _ prometheus.Registerer, opts ChannelOptions) (*Channel, error) {
	if s == nil {
		return nil, fmt.Errorf("%w: AddState(%q) with a nil state", ErrInvalidArgument, key)
	}
	var p runtime.Pinner
	defer p.Unpin()
	var added C.hs_state_added
	var transport C.hs_transport
	err := n.with(func(node *C.hs_node) C.hs_result {
		if r := C.hs_node_transport(node, &transport); r != C.HS_RESULT_OK {
			return r
		}
		return C.hs_node_add_state(node, str(&p, key), &added)
	})
	if err != nil {
		return nil, err
	}
	if added == C.HS_STATE_ADDED_TOOK_NATIVE {
		n.logger.Warn("hearsay: the host registered its own state under a native state's key; "+
			"the native state is switched off (Config.NativeKeys moves it elsewhere)", "key", key)
	}
	c := &Channel{node: n, key: key, state: s, opts: opts, pubsub: transport == C.HS_TRANSPORT_REDIS, dirty: true}
	if aware, ok := s.(reliableDeliveryAware); ok {
		aware.SetIsReliableDelivery(c.ReliableDelivery)
	}
	l := &n.states
	l.mu.Lock()
	defer l.mu.Unlock()
	// A second registration replaces the first: the old channel no longer merges or refreshes.
	l.states[key] = c
	c.refresh()
	if !l.started {
		l.started = true
		l.wg.Add(1)
		go l.run()
	}
	return c, nil
}

// FailedChannel is the channel an adapter's AddState returns when Node.AddState failed with
// err: Err says why and every Broadcast is counted as dropped.
func (n *Node) FailedChannel(key string, s State, err error) *Channel {
	return &Channel{node: n, key: key, state: s, err: err}
}

// refresh hands the node the state's current full copy when it changed.
func (c *Channel) refresh() {
	c.mu.Lock()
	dirty := c.dirty
	c.dirty = false
	c.mu.Unlock()
	if !dirty {
		return
	}
	b, err := c.state.MarshalBinary()
	if err != nil {
		c.mu.Lock()
		c.dirty = true // try again next round
		c.mu.Unlock()
		return
	}
	var p runtime.Pinner
	defer p.Unpin()
	err = c.node.with(func(node *C.hs_node) C.hs_result {
		return C.hs_node_set_state(node, str(&p, c.key), bytesPtr(&p, b), C.size_t(len(b)))
	})
	c.mu.Lock()
	if err == nil {
		c.copies++
	} else {
		c.dirty = true
	}
	c.mu.Unlock()
}

// drain hands every queued payload to Merge.
func (c *Channel) drain(buf *[]byte) {
	var p runtime.Pinner
	defer p.Unpin()
	key := str(&p, c.key)
	for {
		var n C.size_t
		var kind C.hs_payload_kind
		err := c.node.with(func(node *C.hs_node) C.hs_result {
			return C.hs_node_next_state_payload(node, key, (*C.char)(unsafe.Pointer(&(*buf)[0])),
				C.size_t(len(*buf)), &n, &kind)
		})
		if errors.Is(err, ErrBufferTooSmall) {
			*buf = make([]byte, int(n))
			continue
		}
		if err != nil || kind == C.HS_PAYLOAD_KIND_NONE {
			return
		}
		mergeErr := c.state.Merge(append([]byte(nil), (*buf)[:n]...))
		c.mu.Lock()
		c.dirty = true
		if mergeErr != nil {
			c.mergeErrors++
		}
		c.mu.Unlock()
	}
}

func (l *statesLoop) run() {
	defer l.wg.Done()
	buf := make([]byte, 64<<10)
	var cursor C.uint64_t
	lastRefresh := time.Now()
	for {
		select {
		case <-l.done:
			return
		default:
		}
		var arrived C.bool
		err := l.node.with(func(node *C.hs_node) C.hs_result {
			return C.hs_node_wait_states(node, &cursor, C.uint32_t(refreshEvery/time.Millisecond), &arrived)
		})
		if err != nil {
			return
		}
		l.mu.Lock()
		channels := make([]*Channel, 0, len(l.states))
		for _, c := range l.states {
			channels = append(channels, c)
		}
		l.mu.Unlock()
		if arrived {
			for _, c := range channels {
				c.drain(&buf)
			}
		}
		if time.Since(lastRefresh) >= refreshEvery {
			lastRefresh = time.Now()
			for _, c := range channels {
				c.refresh()
			}
		}
	}
}
