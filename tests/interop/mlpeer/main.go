// Command mlpeer is the Go side of hearsay's interop tests and benchmarks.
//
//	mlpeer peer  [flags]   one memberlist node, driven by JSON lines on stdin/stdout
//	mlpeer bench [flags]   N in-process nodes; prints broadcast figures as JSON lines
//	mlpeer version         prints the memberlist version this binary was built against
//
// The same source builds against memberlist v0.7.0 (go.mod) and v0.5.0
// (go.v050.mod); see README.md.
package main

import (
	"bytes"
	"encoding/base64"
	"flag"
	"fmt"
	"io"
	"log"
	"net"
	"os"
	"runtime/debug"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"
	"unsafe"

	"github.com/hashicorp/memberlist"
)

const memberlistModule = "github.com/hashicorp/memberlist"

func main() {
	if len(os.Args) < 2 {
		usage()
	}
	switch os.Args[1] {
	case "peer":
		os.Exit(runPeer(os.Args[2:]))
	case "bench":
		os.Exit(runBench(os.Args[2:]))
	case "version":
		fmt.Println(memberlistVersion())
	default:
		usage()
	}
}

func usage() {
	fmt.Fprintln(os.Stderr, "usage: mlpeer peer|bench|version [flags]   (mlpeer peer -h, mlpeer bench -h)")
	os.Exit(2)
}

// memberlistVersion is the version of the memberlist module linked into this
// binary, taken from the build information so one source serves both modfiles.
func memberlistVersion() string {
	info, ok := debug.ReadBuildInfo()
	if !ok {
		return "unknown"
	}
	for _, dep := range info.Deps {
		if dep.Path != memberlistModule {
			continue
		}
		if dep.Replace != nil && dep.Replace.Version != "" {
			return dep.Replace.Version
		}
		return dep.Version
	}
	return "unknown"
}

// tuning holds the memberlist settings both modes accept as flags.
type tuning struct {
	label               string
	gossipInterval      time.Duration
	probeInterval       time.Duration
	probeTimeout        time.Duration
	pushPullInterval    time.Duration
	tcpTimeout          time.Duration
	suspicionMult       int
	retransmitMult      int
	queueRetransmitMult int
	gossipNodes         int
	gossipToTheDead     time.Duration
	compression         bool
	packetSize          int
	secretKeys          keyList
	verifyIncoming      bool
	verifyOutgoing      bool
}

// keyList collects -secret-key flags: base64 AES keys (16, 24 or 32 bytes),
// repeatable or comma-separated; the first is the primary.
type keyList [][]byte

func (k *keyList) String() string { return fmt.Sprintf("%d keys", len(*k)) }

func (k *keyList) Set(value string) error {
	for _, part := range strings.Split(value, ",") {
		key, err := decodeKey(part)
		if err != nil {
			return err
		}
		*k = append(*k, key)
	}
	return nil
}

// decodeKey parses one base64 key and checks it as memberlist's ValidateKey.
func decodeKey(text string) ([]byte, error) {
	key, err := base64.StdEncoding.DecodeString(strings.TrimSpace(text))
	if err != nil {
		return nil, fmt.Errorf("key is not base64: %w", err)
	}
	if err := memberlist.ValidateKey(key); err != nil {
		return nil, err
	}
	return key, nil
}

func (t *tuning) register(fs *flag.FlagSet) {
	fs.StringVar(&t.label, "label", "", "cluster label (memberlist Config.Label)")
	fs.DurationVar(&t.gossipInterval, "gossip-interval", 200*time.Millisecond, "GossipInterval")
	fs.DurationVar(&t.probeInterval, "probe-interval", time.Second, "ProbeInterval")
	fs.DurationVar(&t.probeTimeout, "probe-timeout", 500*time.Millisecond, "ProbeTimeout")
	fs.DurationVar(&t.pushPullInterval, "pushpull-interval", 60*time.Second, "PushPullInterval")
	fs.DurationVar(&t.tcpTimeout, "tcp-timeout", 10*time.Second, "TCPTimeout")
	fs.IntVar(&t.suspicionMult, "suspicion-mult", 4, "SuspicionMult")
	fs.IntVar(&t.retransmitMult, "retransmit-mult", 4,
		"RetransmitMult of memberlist's own queue and of the user broadcast queue")
	fs.IntVar(&t.queueRetransmitMult, "queue-retransmit-mult", 0,
		"RetransmitMult of the user broadcast queue only (0 = same as -retransmit-mult; Alertmanager uses its -gossip-nodes value)")
	fs.IntVar(&t.gossipNodes, "gossip-nodes", 3, "GossipNodes")
	fs.DurationVar(&t.gossipToTheDead, "gossip-to-the-dead", 30*time.Second, "GossipToTheDeadTime")
	fs.BoolVar(&t.compression, "compression", true, "EnableCompression")
	fs.IntVar(&t.packetSize, "packet-size", 1400, "UDPBufferSize (largest gossip packet)")
	fs.Var(&t.secretKeys, "secret-key",
		"AES key, base64 (16, 24 or 32 bytes); repeatable or comma-separated, the first is the primary (Config.Keyring)")
	fs.BoolVar(&t.verifyIncoming, "gossip-verify-incoming", true, "GossipVerifyIncoming")
	fs.BoolVar(&t.verifyOutgoing, "gossip-verify-outgoing", true, "GossipVerifyOutgoing")
}

// config builds a memberlist configuration the way Alertmanager's
// cluster.Create does: LAN defaults with the cluster flags applied on top.
func (t *tuning) config(name string) *memberlist.Config {
	c := memberlist.DefaultLANConfig()
	c.Name = name
	c.Label = t.label
	c.GossipInterval = t.gossipInterval
	c.ProbeInterval = t.probeInterval
	c.ProbeTimeout = t.probeTimeout
	c.PushPullInterval = t.pushPullInterval
	c.TCPTimeout = t.tcpTimeout
	c.SuspicionMult = t.suspicionMult
	c.RetransmitMult = t.retransmitMult
	c.GossipNodes = t.gossipNodes
	c.GossipToTheDeadTime = t.gossipToTheDead
	c.EnableCompression = t.compression
	c.UDPBufferSize = t.packetSize
	c.GossipVerifyIncoming = t.verifyIncoming
	c.GossipVerifyOutgoing = t.verifyOutgoing
	if len(t.secretKeys) > 0 {
		// The keys were checked by ValidateKey when the flags were parsed, the only
		// reason NewKeyring fails.
		keyring, err := memberlist.NewKeyring(t.secretKeys, t.secretKeys[0])
		if err != nil {
			panic(err)
		}
		c.Keyring = keyring
	}
	return c
}

func (t *tuning) userRetransmitMult() int {
	if t.queueRetransmitMult > 0 {
		return t.queueRetransmitMult
	}
	return t.retransmitMult
}

// splitHostPort parses "ip:port" (port may be 0).
func splitHostPort(s string) (string, int, error) {
	host, portStr, err := net.SplitHostPort(s)
	if err != nil {
		return "", 0, err
	}
	port, err := strconv.ParseUint(portStr, 10, 16)
	if err != nil {
		return "", 0, fmt.Errorf("bad port in %q", s)
	}
	return host, int(port), nil
}

// listen binds memberlist's UDP+TCP transport on host:port. With port 0 the
// kernel picks a TCP port and the same number is then bound for UDP, which
// can collide, so that case is retried a few times (as memberlist itself does
// when it creates its transport).
func listen(host string, port int, logger *log.Logger) (*memberlist.NetTransport, error) {
	cfg := &memberlist.NetTransportConfig{
		BindAddrs: []string{host},
		BindPort:  port,
		Logger:    logger,
	}
	tries := 1
	if port == 0 {
		tries = 10
	}
	var err error
	for i := 0; i < tries; i++ {
		var nt *memberlist.NetTransport
		nt, err = memberlist.NewNetTransport(cfg)
		if err == nil {
			return nt, nil
		}
		if !strings.Contains(err.Error(), "address already in use") {
			break
		}
	}
	return nil, fmt.Errorf("binding %s: %w", net.JoinHostPort(host, strconv.Itoa(port)), err)
}

// lineFilter forwards whole log lines to w, dropping memberlist's [DEBUG]
// lines unless verbose is set. log.Logger issues one Write per line.
type lineFilter struct {
	mu      sync.Mutex
	w       io.Writer
	verbose bool
}

func (f *lineFilter) Write(p []byte) (int, error) {
	if !f.verbose && bytes.Contains(p, []byte("[DEBUG]")) {
		return len(p), nil
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.w.Write(p)
}

// stateName renders a node state as the JSON protocol spells it.
func stateName(s memberlist.NodeStateType) string {
	switch s {
	case memberlist.StateAlive:
		return "alive"
	case memberlist.StateSuspect:
		return "suspect"
	case memberlist.StateDead:
		return "dead"
	case memberlist.StateLeft:
		return "left"
	}
	return fmt.Sprintf("state-%d", int(s))
}

// plainBroadcast is a user broadcast that never invalidates another one, like
// Alertmanager's simpleBroadcast.
type plainBroadcast []byte

func (b plainBroadcast) Message() []byte                       { return b }
func (b plainBroadcast) Invalidates(memberlist.Broadcast) bool { return false }
func (b plainBroadcast) Finished()                             {}

// nodeRecord mirrors memberlist's unexported per-node record, which embeds
// the Node it hands out. memberlist keeps the live state in the record's own
// State field and never updates the embedded Node.State (hashicorp/memberlist
// issue 293), so every *Node it passes to delegates or returns from
// Members()/LocalNode() says "alive". The record layout is the same in v0.5.0
// and v0.7.0; checkNodeRecord verifies it on the local node before it is
// trusted.
type nodeRecord struct {
	memberlist.Node
	Incarnation uint32
	State       memberlist.NodeStateType
	StateChange time.Time
}

var nodeRecordOK atomic.Bool

// checkNodeRecord enables recordOf if the local node's record looks right:
// alive, incarnation at least 1, state changed during this process's life.
func checkNodeRecord(self *memberlist.Node, started time.Time, logger *log.Logger) {
	r := (*nodeRecord)(unsafe.Pointer(self))
	ok := r.State == memberlist.StateAlive && r.Incarnation >= 1 &&
		!r.StateChange.Before(started) && !r.StateChange.After(time.Now())
	nodeRecordOK.Store(ok)
	if !ok {
		logger.Printf("[WARN] mlpeer: memberlist's node record layout is not the expected one; node states will all read as alive")
	}
}

// recordOf returns the node's real state and incarnation (incarnation -1 when
// the record layout could not be verified and Node.State is used instead).
// n must be a pointer memberlist handed out.
func recordOf(n *memberlist.Node) (memberlist.NodeStateType, int64) {
	if !nodeRecordOK.Load() {
		return n.State, -1
	}
	r := (*nodeRecord)(unsafe.Pointer(n))
	return r.State, int64(r.Incarnation)
}
