package main

import (
	"strings"
	"sync"
)

// entries is a stand-in for an organisation's silences or notification log: a set of
// entries that merges by union and, as the fork's states do, re-broadcasts what it merged
// unless its channel delivered it to everyone already.
type entries struct {
	mu        sync.Mutex
	set       map[string]bool
	broadcast func([]byte)
	reliable  func([]byte) bool
}

func newEntries() *entries { return &entries{set: map[string]bool{}, broadcast: func([]byte) {}} }

func (e *entries) MarshalBinary() ([]byte, error) {
	e.mu.Lock()
	defer e.mu.Unlock()
	keys := make([]string, 0, len(e.set))
	for k := range e.set {
		keys = append(keys, k)
	}
	return []byte(strings.Join(keys, "\n")), nil
}

func (e *entries) Merge(b []byte) error {
	e.mu.Lock()
	fresh := false
	for _, k := range strings.Split(string(b), "\n") {
		if k != "" && !e.set[k] {
			e.set[k], fresh = true, true
		}
	}
	again := fresh && e.reliable != nil && !e.reliable(b)
	send := e.broadcast
	e.mu.Unlock()
	if again {
		send(b)
	}
	return nil
}

// SetIsReliableDelivery is cluster.ReliableDeliveryAware: the peer wires it on AddState.
func (e *entries) SetIsReliableDelivery(f func([]byte) bool) {
	e.mu.Lock()
	defer e.mu.Unlock()
	e.reliable = f
}

// setBroadcast is the states' SetBroadcast: where their own writes go.
func (e *entries) setBroadcast(f func([]byte)) {
	e.mu.Lock()
	defer e.mu.Unlock()
	e.broadcast = f
}

func (e *entries) add(k string) {
	e.mu.Lock()
	e.set[k] = true
	send := e.broadcast
	e.mu.Unlock()
	send([]byte(k))
}

func (e *entries) has(k string) bool {
	e.mu.Lock()
	defer e.mu.Unlock()
	return e.set[k]
}
