package main

import (
	"context"
	"fmt"
	"log"
	"sort"
	"strconv"
	"sync"
	"time"

	"github.com/prometheus/alertmanager/cluster/clusterpb"
	"github.com/redis/go-redis/v9"
	"google.golang.org/protobuf/proto"
)

const (
	// A heartbeat key lives 5 minutes; a member counts while its value is at most 60 s old
	// (by the reader's clock). Grafana's constants.
	heartbeatTTL     = 5 * time.Minute
	heartbeatTimeout = 60 * time.Second
	// Grafana's SCAN page size.
	scanCount = 100
	// Updates waiting to be published per state channel; a full queue drops, as Grafana's
	// 200-slot buffer does. A state's broadcast runs under its lock, so it must not block.
	publishQueue = 200
	// Channel suffixes of the full-state sync.
	fullStateChannel = "full_state"
	requestChannel   = "full_state:request"
)

type config struct {
	name, prefix   string
	org            int64
	heartbeat      time.Duration
	membersSync    time.Duration
	pushPull       time.Duration
	settleInterval time.Duration
	settleTimeout  time.Duration
}

// state is what Alertmanager's nflog.Log and silence.Silences offer a cluster.
type state interface {
	MarshalBinary() ([]byte, error)
	Merge([]byte) error
}

// counts of what the peer saw and did, for the test's `stats`.
type counts struct {
	FullStatesReceived int `json:"full_states_received"`
	FullStatesSent     int `json:"full_states_sent"`
	RequestsReceived   int `json:"requests_received"`
	RequestsSent       int `json:"requests_sent"`
	UpdatesReceived    int `json:"updates_received"`
	UpdatesSent        int `json:"updates_sent"`
	UpdatesDropped     int `json:"updates_dropped"`
	MergeErrors        int `json:"merge_errors"`
}

type peer struct {
	cfg   config
	rdb   *redis.Client
	keys  []string // state keys in registration order, for full states
	state map[string]state
	local localStates
	stop  chan struct{}
	wg    sync.WaitGroup

	mu      sync.Mutex
	members []string // full heartbeat keys, sorted byte-wise
	stats   counts
}

// newPeer registers the states, subscribes every channel (waiting for each confirmation, so
// that `ready` means nothing published from then on is missed), and starts the loops.
func newPeer(cfg config, rdb *redis.Client) (*peer, error) {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := rdb.Ping(ctx).Err(); err != nil {
		return nil, fmt.Errorf("ping: %w", err)
	}
	p := &peer{cfg: cfg, rdb: rdb, state: map[string]state{}, stop: make(chan struct{})}
	local, err := newLocalStates(cfg.org)
	if err != nil {
		return nil, err
	}
	p.local = local
	for _, s := range local.registered() {
		queue := make(chan []byte, publishQueue)
		s.setBroadcast(func(b []byte) { p.enqueue(queue, s.key, b) })
		p.keys = append(p.keys, s.key)
		p.state[s.key] = s.state
		p.wg.Add(1)
		go p.publishLoop(s.key, queue)
	}
	channels := []string{fullStateChannel, requestChannel}
	channels = append(channels, p.keys...)
	for _, suffix := range channels {
		sub := rdb.Subscribe(ctx, cfg.prefix+suffix)
		if _, err := sub.Receive(ctx); err != nil {
			return nil, fmt.Errorf("subscribe %s: %w", cfg.prefix+suffix, err)
		}
		p.wg.Add(1)
		go p.receiveLoop(suffix, sub)
	}
	p.wg.Add(4)
	go p.every(cfg.heartbeat, p.beat)
	go p.every(cfg.membersSync, p.syncMembers)
	go p.every(cfg.pushPull, func() { p.publishFullState("push") })
	go p.settle()
	return p, nil
}

// every runs f each interval (first after one interval) until stop.
func (p *peer) every(interval time.Duration, f func()) {
	defer p.wg.Done()
	t := time.NewTicker(interval)
	defer t.Stop()
	for {
		select {
		case <-p.stop:
			return
		case <-t.C:
			f()
		}
	}
}

func (p *peer) heartbeatKey() string { return p.cfg.prefix + p.cfg.name }

func (p *peer) beat() {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	now := strconv.FormatInt(time.Now().Unix(), 10)
	if err := p.rdb.Set(ctx, p.heartbeatKey(), now, heartbeatTTL).Err(); err != nil {
		log.Printf("heartbeat: %v", err)
	}
}

// syncMembers reads every key under the prefix and keeps the fresh heartbeats. On an error the
// last list stays (Grafana keeps it up to a minute; the tests do not need the expiry).
func (p *peer) syncMembers() {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	var keys []string
	var cursor uint64
	for {
		page, next, err := p.rdb.Scan(ctx, cursor, p.cfg.prefix+"*", scanCount).Result()
		if err != nil {
			log.Printf("scan: %v", err)
			return
		}
		keys = append(keys, page...)
		if cursor = next; cursor == 0 {
			break
		}
	}
	var values []any
	if len(keys) > 0 {
		var err error
		// Grafana logs an MGET error and goes on with what came back.
		if values, err = p.rdb.MGet(ctx, keys...).Result(); err != nil {
			log.Printf("mget: %v", err)
		}
	}
	oldest := time.Now().Add(-heartbeatTimeout).Unix()
	live := map[string]bool{}
	for i, v := range values {
		s, ok := v.(string)
		if !ok {
			continue // not a string key, or gone since the SCAN
		}
		secs, err := strconv.ParseInt(s, 10, 64)
		if err != nil || secs < oldest {
			continue
		}
		live[keys[i]] = true
	}
	members := make([]string, 0, len(live))
	for k := range live {
		members = append(members, k)
	}
	sort.Strings(members) // byte-wise, as every peer sorts, so positions agree
	p.mu.Lock()
	p.members = members
	p.mu.Unlock()
}

// membership is the member list and our index in it (0 when we are not in it, as Grafana).
func (p *peer) membership() ([]string, int) {
	p.mu.Lock()
	defer p.mu.Unlock()
	members := append([]string{}, p.members...)
	for i, m := range members {
		if m == p.heartbeatKey() {
			return members, i
		}
	}
	return members, 0
}

// settle is Alertmanager's settle as Grafana copies it: poll the member count every interval
// until it stays the same three polls running, then ask for the full state. On timeout no
// request is sent (Grafana's quirk): the periodic push repairs.
func (p *peer) settle() {
	defer p.wg.Done()
	deadline := time.After(p.cfg.settleTimeout)
	t := time.NewTicker(p.cfg.settleInterval)
	defer t.Stop()
	last, stable := -1, 0
	for {
		select {
		case <-p.stop:
			return
		case <-deadline:
			log.Printf("not settled but continuing anyway")
			return
		case <-t.C:
			members, _ := p.membership()
			if len(members) == last {
				stable++
			} else {
				last, stable = len(members), 0
			}
			if stable >= 3 {
				ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
				defer cancel()
				if err := p.request(ctx); err != nil {
					log.Printf("full-state request: %v", err)
				}
				return
			}
		}
	}
}

// request asks every other peer for its full state, with our bare name.
func (p *peer) request(ctx context.Context) error {
	if err := p.rdb.Publish(ctx, p.cfg.prefix+requestChannel, p.cfg.name).Err(); err != nil {
		return err
	}
	p.count(func(c *counts) { c.RequestsSent++ })
	return nil
}

func (p *peer) enqueue(queue chan []byte, key string, data []byte) {
	b, err := proto.Marshal(&clusterpb.Part{Key: key, Data: data})
	if err != nil {
		log.Printf("marshal part %s: %v", key, err)
		return
	}
	select {
	case queue <- b:
	default:
		p.count(func(c *counts) { c.UpdatesDropped++ })
	}
}

// publishLoop publishes one state's updates in order; an error is logged, never retried.
func (p *peer) publishLoop(key string, queue chan []byte) {
	defer p.wg.Done()
	for {
		select {
		case <-p.stop:
			return
		case b := <-queue:
			ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
			err := p.rdb.Publish(ctx, p.cfg.prefix+key, b).Err()
			cancel()
			if err != nil {
				log.Printf("publish %s: %v", key, err)
				continue
			}
			p.count(func(c *counts) { c.UpdatesSent++ })
		}
	}
}

func (p *peer) receiveLoop(suffix string, sub *redis.PubSub) {
	defer p.wg.Done()
	defer sub.Close()
	msgs := sub.Channel()
	for {
		select {
		case <-p.stop:
			return
		case m, ok := <-msgs:
			if !ok {
				return
			}
			payload := []byte(m.Payload)
			switch suffix {
			case fullStateChannel:
				p.mergeFullState(payload)
			case requestChannel:
				p.count(func(c *counts) { c.RequestsReceived++ })
				if m.Payload != p.cfg.name { // our own request comes back too
					p.publishFullState("answer")
				}
			default:
				p.mergeUpdate(payload)
			}
		}
	}
}

// mergeUpdate merges one Part into the state its key names; unknown keys are ignored.
func (p *peer) mergeUpdate(payload []byte) {
	p.count(func(c *counts) { c.UpdatesReceived++ })
	var part clusterpb.Part
	if err := proto.Unmarshal(payload, &part); err != nil {
		log.Printf("bad part: %v", err)
		p.count(func(c *counts) { c.MergeErrors++ })
		return
	}
	s, ok := p.state[part.Key]
	if !ok {
		return
	}
	if err := s.Merge(part.Data); err != nil {
		log.Printf("merge %s: %v", part.Key, err)
		p.count(func(c *counts) { c.MergeErrors++ })
	}
}

// mergeFullState merges every part, stopping at the first failing merge (Grafana's quirk).
func (p *peer) mergeFullState(payload []byte) {
	p.count(func(c *counts) { c.FullStatesReceived++ })
	var fs clusterpb.FullState
	if err := proto.Unmarshal(payload, &fs); err != nil {
		log.Printf("bad full state: %v", err)
		p.count(func(c *counts) { c.MergeErrors++ })
		return
	}
	for _, part := range fs.Parts {
		s, ok := p.state[part.Key]
		if !ok {
			log.Printf("full state: unknown key %q", part.Key)
			continue
		}
		if err := s.Merge(part.Data); err != nil {
			log.Printf("full state: merge %s: %v", part.Key, err)
			p.count(func(c *counts) { c.MergeErrors++ })
			return
		}
	}
}

func (p *peer) fullState() ([]byte, error) {
	fs := &clusterpb.FullState{}
	for _, key := range p.keys {
		data, err := p.state[key].MarshalBinary()
		if err != nil {
			// Grafana adds the part with empty data.
			log.Printf("marshal %s: %v", key, err)
		}
		fs.Parts = append(fs.Parts, &clusterpb.Part{Key: key, Data: data})
	}
	return proto.Marshal(fs)
}

func (p *peer) publishFullState(why string) {
	b, err := p.fullState()
	if err != nil {
		log.Printf("full state (%s): %v", why, err)
		return
	}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if err := p.rdb.Publish(ctx, p.cfg.prefix+fullStateChannel, b).Err(); err != nil {
		log.Printf("publish full state (%s): %v", why, err)
		return
	}
	p.count(func(c *counts) { c.FullStatesSent++ })
}

func (p *peer) count(f func(*counts)) {
	p.mu.Lock()
	f(&p.stats)
	p.mu.Unlock()
}

func (p *peer) statsNow() counts {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.stats
}

// shutdown stops the loops, publishes a last full state and deletes the heartbeat.
func (p *peer) shutdown() {
	close(p.stop)
	p.wg.Wait()
	p.publishFullState("shutdown")
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if err := p.rdb.Del(ctx, p.heartbeatKey()).Err(); err != nil {
		log.Printf("delete heartbeat: %v", err)
	}
	_ = p.rdb.Close()
}
