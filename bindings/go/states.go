package hearsay

/*
#include "hearsay.h"
*/
import "C"

import (
	"errors"
	"runtime"
	"sync"
	"time"
	"unsafe"

	"github.com/prometheus/alertmanager/cluster"
	"github.com/prometheus/client_golang/prometheus"
)

// How often a changed state's full copy is handed to the node for push/pulls, at most.
const refreshEvery = 200 * time.Millisecond

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

// Channel broadcasts one state's updates (Alertmanager's cluster.ClusterChannel).
type Channel struct {
	node  *Node
	key   string
	state cluster.State
	err   error

	mu    sync.Mutex
	dirty bool
	// Updates dropped at a bound or refused, and Merge failures.
	dropped, mergeErrors uint64
	// Full copies handed to the node.
	copies uint64
}

// Broadcast sends an update of the state to every peer. An update dropped at a queue bound
// is counted (Dropped); as in Alertmanager, the next push/pull repairs it.
func (c *Channel) Broadcast(b []byte) {
	if c.err != nil {
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

// Err is why the state could not be registered (nil when it was).
func (c *Channel) Err() error { return c.err }

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

// RegisterState puts a Go state on the cluster under key: peers' updates and full states
// go to s.Merge, s.MarshalBinary is what push/pulls send. Register before joining.
func (n *Node) RegisterState(key string, s cluster.State) (*Channel, error) {
	var p runtime.Pinner
	defer p.Unpin()
	if err := n.with(func(node *C.hs_node) C.hs_result { return C.hs_node_add_state(node, str(&p, key)) }); err != nil {
		return nil, err
	}
	c := &Channel{node: n, key: key, state: s, dirty: true}
	l := &n.states
	l.mu.Lock()
	defer l.mu.Unlock()
	l.states[key] = c
	c.refresh()
	if !l.started {
		l.started = true
		l.wg.Add(1)
		go l.run()
	}
	return c, nil
}

// AddState is Alertmanager's (*cluster.Peer).AddState and Grafana's ClusterPeer.AddState.
// Metrics are in Node.Metrics, so reg is not used. A refused key (taken, or the node
// closed) gives a channel whose Err says why and whose Broadcast does nothing.
func (n *Node) AddState(key string, s cluster.State, _ prometheus.Registerer) cluster.ClusterChannel {
	c, err := n.RegisterState(key, s)
	if err != nil {
		return &Channel{node: n, key: key, state: s, err: err}
	}
	return c
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
