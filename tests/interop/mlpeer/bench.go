package main

import (
	"encoding/binary"
	"errors"
	"flag"
	"fmt"
	"log"
	"math"
	"net"
	"os"
	"sort"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"github.com/hashicorp/memberlist"
)

// clockBase anchors the process-wide monotonic clock that send timestamps
// and receive times are both measured on.
var clockBase = time.Now()

func monoNanos() int64 { return int64(time.Since(clockBase)) }

// headerLen is the per-message header: big-endian u64 sequence number, then
// big-endian i64 send time in monoNanos.
const headerLen = 16

// fillMessage writes a bench message. The filler after the header mimics the
// hearsay-bench codec payload: byte j is the sequence number's low byte when
// j%7 == 0, else "nflog-entry-"[j%12].
func fillMessage(b []byte, seq uint64, sent int64) {
	const pattern = "nflog-entry-"
	binary.BigEndian.PutUint64(b[0:8], seq)
	binary.BigEndian.PutUint64(b[8:16], uint64(sent))
	for j := headerLen; j < len(b); j++ {
		if j%7 == 0 {
			b[j] = byte(seq)
		} else {
			b[j] = pattern[j%12]
		}
	}
}

// recorder collects deliveries on the receiving nodes (1..n-1).
type recorder struct {
	mu        sync.Mutex
	open      bool
	peers     int
	seen      []map[uint64]struct{}
	copies    map[uint64]int // peers holding a message not yet at every peer
	all       int            // messages held by every peer
	latencies []int64        // ns, one per (message, receiving peer)
}

func newRecorder(nodes int) *recorder {
	r := &recorder{peers: nodes - 1, copies: make(map[uint64]int)}
	r.seen = make([]map[uint64]struct{}, nodes)
	for i := range r.seen {
		r.seen[i] = make(map[uint64]struct{})
	}
	return r
}

func (r *recorder) receive(node int, b []byte) {
	now := monoNanos()
	if node == 0 || len(b) < headerLen {
		return
	}
	seq := binary.BigEndian.Uint64(b[0:8])
	sent := int64(binary.BigEndian.Uint64(b[8:16]))
	r.mu.Lock()
	defer r.mu.Unlock()
	if !r.open {
		return
	}
	if _, dup := r.seen[node][seq]; dup {
		return
	}
	r.seen[node][seq] = struct{}{}
	r.latencies = append(r.latencies, now-sent)
	r.copies[seq]++
	if r.copies[seq] == r.peers {
		delete(r.copies, seq)
		r.all++
	}
}

func (r *recorder) setOpen(open bool) {
	r.mu.Lock()
	r.open = open
	r.mu.Unlock()
}

// tlsTransport builds Alertmanager's TLS transport from a --cluster.tls-config
// file, bound to host on a free port; nil unless built with the amtls tag.
var tlsTransport func(configFile, host string) (memberlist.Transport, int, error)

// benchNode is one in-process member and its delegates.
type benchNode struct {
	idx   int
	ml    *memberlist.Memberlist
	live  atomic.Pointer[memberlist.Memberlist] // ml, for delegates running during Create
	tr    memberlist.Transport
	count *countingTransport // tr when it is memberlist's NetTransport; nil over TLS
	queue *memberlist.TransmitLimitedQueue
	rec   *recorder
}

// The delegates are Alertmanager-like (empty meta and ack payload, an Alive
// delegate, no user state); received user messages go to the recorder.

func (n *benchNode) NodeMeta(int) []byte { return []byte{} }
func (n *benchNode) NotifyMsg(b []byte)  { n.rec.receive(n.idx, b) }
func (n *benchNode) GetBroadcasts(overhead, limit int) [][]byte {
	return n.queue.GetBroadcasts(overhead, limit)
}
func (n *benchNode) LocalState(bool) []byte                                     { return nil }
func (n *benchNode) MergeRemoteState([]byte, bool)                              {}
func (n *benchNode) NotifyAlive(*memberlist.Node) error                         { return nil }
func (n *benchNode) AckPayload() []byte                                         { return []byte{} }
func (n *benchNode) NotifyPingComplete(*memberlist.Node, time.Duration, []byte) {}

func runBench(args []string) int {
	fs := flag.NewFlagSet("mlpeer bench", flag.ContinueOnError)
	var t tuning
	t.register(fs)
	nodes := fs.Int("nodes", 3, "number of in-process nodes (node 0 broadcasts)")
	size := fs.Int("size", 200, "message size in bytes (at least 16)")
	seconds := fs.Float64("seconds", 5, "length of the broadcast phase in seconds")
	queueMax := fs.Int("queue", 4096, "enqueue only while node 0's broadcast queue holds fewer messages")
	drain := fs.Duration("drain", 2*time.Second, "wait after the broadcast phase for in-flight messages")
	rate := fs.Float64("rate", 0, "messages per second to offer (0 = as fast as the queue accepts)")
	tlsConfig := fs.String("tls-config", "", "run every node on Alertmanager's TLS transport with this --cluster.tls-config file (mlpeer-amtls only); bytes are not counted")
	converge := fs.Duration("converge-timeout", 30*time.Second, "how long to wait for every node to see every other")
	verbose := fs.Bool("v", false, "include memberlist's [DEBUG] log lines on stderr")
	if err := fs.Parse(args); err != nil {
		return 2
	}
	if *tlsConfig != "" && tlsTransport == nil {
		fmt.Fprintln(os.Stderr, "mlpeer bench: -tls-config needs the mlpeer-amtls build (build.sh)")
		return 2
	}
	if *nodes < 2 || *size < headerLen || *seconds <= 0 || *queueMax < 1 || *rate < 0 {
		fmt.Fprintln(os.Stderr, "mlpeer bench: need -nodes >= 2, -size >= 16, -seconds > 0, -queue >= 1, -rate >= 0")
		return 2
	}
	version := memberlistVersion()
	impl := "go-memberlist-" + version
	if *tlsConfig != "" {
		impl = "alertmanager-tls-transport"
	}
	logs := &lineFilter{w: os.Stderr, verbose: *verbose}
	progress := log.New(os.Stderr, "[bench] ", log.LstdFlags|log.Lmicroseconds)

	rec := newRecorder(*nodes)
	var all []*benchNode
	shutdown := func() {
		for _, n := range all {
			n.ml.Shutdown()
		}
	}
	defer shutdown()
	for i := 0; i < *nodes; i++ {
		n, err := startBenchNode(i, &t, rec, logs, *tlsConfig)
		if err != nil {
			progress.Printf("starting node %d: %v", i, err)
			return 1
		}
		all = append(all, n)
	}
	seed := all[0].ml.LocalNode()
	seedAddr := net.JoinHostPort(seed.Addr.String(), strconv.Itoa(int(seed.Port)))
	for _, n := range all[1:] {
		if _, err := n.ml.Join([]string{seedAddr}); err != nil {
			progress.Printf("node %d joining %s: %v", n.idx, seedAddr, err)
			return 1
		}
	}
	if err := waitConverged(all, *converge); err != nil {
		progress.Print(err)
		return 1
	}
	progress.Printf("%s: %d nodes converged; broadcasting %d-byte messages for %gs (rate %g/s, queue bound %d)",
		impl, *nodes, *size, *seconds, *rate, *queueMax)

	bytesBefore := totalWritten(all)
	rec.setOpen(true)
	q := all[0].queue
	begin := time.Now()
	end := begin.Add(time.Duration(*seconds * float64(time.Second)))
	var sent uint64
	for {
		now := time.Now()
		if !now.Before(end) {
			break
		}
		if *rate > 0 {
			due := uint64(now.Sub(begin).Seconds() * *rate)
			if sent >= due {
				next := begin.Add(time.Duration(float64(sent+1) / *rate * float64(time.Second)))
				sleepUntil(next, end)
				continue
			}
		}
		if q.NumQueued() >= *queueMax {
			time.Sleep(100 * time.Microsecond)
			continue
		}
		msg := make([]byte, *size)
		fillMessage(msg, sent, monoNanos())
		q.QueueBroadcast(plainBroadcast(msg))
		sent++
	}
	broadcastDur := time.Since(begin)
	left := q.NumQueued()
	time.Sleep(*drain)
	rec.setOpen(false)
	written := totalWritten(all) - bytesBefore

	rec.mu.Lock()
	delivered := rec.all
	lat := append([]int64(nil), rec.latencies...)
	rec.mu.Unlock()
	sort.Slice(lat, func(i, j int) bool { return lat[i] < lat[j] })

	progress.Printf("sent %d in %.3fs (%d still queued at the end), delivered to all %d peers: %d, deliveries %d, bytes written %d",
		sent, broadcastDur.Seconds(), left, *nodes-1, delivered, len(lat), written)
	if delivered == 0 {
		progress.Print("warning: no message reached every peer; delivered_rate and bytes_per_message are reported as 0")
	}
	if len(lat) == 0 {
		progress.Print("warning: no deliveries; latencies are reported as 0")
	}

	var bytesPerMsg float64
	if delivered > 0 {
		bytesPerMsg = float64(written) / float64(delivered)
	}
	out := newEmitter(os.Stdout)
	figure := func(metric string, value float64, unit string) {
		out.line(obj{
			{"scenario", "broadcast"},
			{"impl", impl},
			{"metric", metric},
			{"value", math.Round(value*1000) / 1000},
			{"unit", unit},
		})
	}
	figure("delivered_rate", float64(delivered)/broadcastDur.Seconds(), "messages/s")
	figure("p50_latency", percentileMs(lat, 0.50), "ms")
	figure("p99_latency", percentileMs(lat, 0.99), "ms")
	figure("bytes_per_message", bytesPerMsg, "bytes")
	figure("sent", float64(sent), "messages")
	figure("delivered_all", float64(delivered), "messages")
	figure("deliveries", float64(len(lat)), "messages")
	figure("bytes_written", float64(written), "bytes")
	return 0
}

func startBenchNode(i int, t *tuning, rec *recorder, logs *lineFilter, tlsConfig string) (*benchNode, error) {
	name := fmt.Sprintf("bench-%d", i)
	logger := log.New(logs, "["+name+"] ", log.LstdFlags|log.Lmicroseconds)
	n := &benchNode{idx: i, rec: rec}
	var port int
	if tlsConfig != "" {
		tr, p, err := tlsTransport(tlsConfig, "127.0.0.1")
		if err != nil {
			return nil, err
		}
		n.tr, port = tr, p
	} else {
		nt, err := listen("127.0.0.1", 0, logger)
		if err != nil {
			return nil, err
		}
		port = nt.GetAutoBindPort()
		n.count = newCountingTransport(nt)
		n.tr = n.count
	}
	n.queue = &memberlist.TransmitLimitedQueue{
		NumNodes: func() int {
			if ml := n.live.Load(); ml != nil {
				return ml.NumMembers()
			}
			return 1
		},
		RetransmitMult: t.userRetransmitMult(),
	}
	conf := t.config(name)
	conf.BindAddr = "127.0.0.1"
	conf.BindPort = port
	conf.AdvertiseAddr = "127.0.0.1"
	conf.AdvertisePort = port
	conf.Transport = n.tr
	conf.Logger = logger
	conf.Delegate = n
	conf.Alive = n
	conf.Ping = n
	ml, err := memberlist.Create(conf)
	if err != nil {
		n.tr.Shutdown()
		return nil, err
	}
	n.ml = ml
	n.live.Store(ml)
	return n, nil
}

func waitConverged(all []*benchNode, timeout time.Duration) error {
	deadline := time.Now().Add(timeout)
	for {
		ok := true
		for _, n := range all {
			if n.ml.NumMembers() != len(all) {
				ok = false
				break
			}
		}
		if ok {
			return nil
		}
		if time.Now().After(deadline) {
			return errors.New("nodes did not converge in time")
		}
		time.Sleep(10 * time.Millisecond)
	}
}

func totalWritten(all []*benchNode) int64 {
	var sum int64
	for _, n := range all {
		if n.count != nil {
			sum += n.count.written.Load()
		}
	}
	return sum
}

func sleepUntil(t, limit time.Time) {
	if limit.Before(t) {
		t = limit
	}
	if d := time.Until(t); d > 0 {
		time.Sleep(d)
	}
}

// percentileMs is the nearest-rank percentile of sorted nanosecond samples,
// in milliseconds (0 when there are none).
func percentileMs(sorted []int64, p float64) float64 {
	if len(sorted) == 0 {
		return 0
	}
	rank := int(math.Ceil(p*float64(len(sorted)))) - 1
	if rank < 0 {
		rank = 0
	}
	return float64(sorted[rank]) / 1e6
}
