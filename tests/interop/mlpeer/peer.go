package main

import (
	"bufio"
	"bytes"
	"encoding/base64"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"log"
	"os"
	"sort"
	"sync"
	"sync/atomic"
	"time"

	"github.com/hashicorp/memberlist"
)

// defaultLeaveTimeout applies when a leave command has no timeout_ms.
const defaultLeaveTimeout = 5 * time.Second

// peer is one memberlist node with Alertmanager-like delegates that report
// everything they see as JSON events.
type peer struct {
	out  *emitter
	name string
	meta []byte
	ml   atomic.Pointer[memberlist.Memberlist]
	// keyring is the Config.Keyring the node was created with (nil without
	// -secret-key); its methods lock, so commands may rotate it at any time.
	keyring *memberlist.Keyring
	queue   *memberlist.TransmitLimitedQueue

	// checkRecord verifies the node record layout (see nodeRecord) on the
	// first event about the local node, before any state is reported.
	checkRecord func(self *memberlist.Node)
	checkOnce   sync.Once

	stateMu sync.Mutex
	state   []byte

	// gone remembers, per name, the node as the last NotifyLeave reported
	// it, until a NotifyJoin for that name. memberlist's Members() omits
	// dead and left nodes; this is how "members" still lists them.
	goneMu sync.Mutex
	gone   map[string]nodeSnapshot

	// states is Alertmanager's cluster layer (-nflog-key, -silences-key), or nil: then user
	// messages and push/pull state are raw bytes reported as events.
	states stateLayer
}

// stateLayer carries Alertmanager's Go states on the node (states.go).
type stateLayer interface {
	notifyMsg(b []byte)
	localState() []byte
	mergeRemoteState(b []byte)
	// run handles a state command; handled is false for any other command.
	run(cmd string, raw []byte) (reply obj, handled bool, err error)
}

// newStateLayer registers Alertmanager's notification log and silences under the keys
// given; nil in a build without Alertmanager's module (v0.5.0).
var newStateLayer func(p *peer, nflogKey, silencesKey string) (stateLayer, error)

// nodeSnapshot is a node as reported on the JSON protocol.
type nodeSnapshot struct {
	name        string
	addr        string
	port        int
	state       string
	incarnation int64
	meta        string
}

// snapshot copies what the protocol reports about n, a pointer memberlist
// handed out. Inside event callbacks memberlist holds its node lock; after
// Members() the read is unsynchronised, as for any user of that API.
func snapshot(n *memberlist.Node) nodeSnapshot {
	state, inc := recordOf(n)
	return nodeSnapshot{
		name:        n.Name,
		addr:        n.Addr.String(),
		port:        int(n.Port),
		state:       stateName(state),
		incarnation: inc,
		meta:        base64.StdEncoding.EncodeToString(n.Meta),
	}
}

func (s nodeSnapshot) fields() obj {
	return obj{
		{"name", s.name},
		{"addr", s.addr},
		{"port", s.port},
		{"state", s.state},
		{"incarnation", s.incarnation},
		{"meta", s.meta},
	}
}

func runPeer(args []string) int {
	fs := flag.NewFlagSet("mlpeer peer", flag.ContinueOnError)
	var t tuning
	t.register(fs)
	name := fs.String("name", "", "node name (required)")
	bind := fs.String("bind", "", "bind ip:port for UDP and TCP (required; port 0 = any free port)")
	advertise := fs.String("advertise", "", "advertise ip:port (default: derived from -bind; port 0 = bound port)")
	meta := fs.String("meta", "", "node meta (NodeMeta), at most 512 bytes")
	nflogKey := fs.String("nflog-key", "", "carry Alertmanager's notification log under this state key (Alertmanager: nfl; Grafana: notificationlog:<org>)")
	silencesKey := fs.String("silences-key", "", "carry Alertmanager's silences under this state key (Alertmanager: sil; Grafana: silences:<org>)")
	if err := fs.Parse(args); err != nil {
		return 2
	}
	if *name == "" || *bind == "" {
		fmt.Fprintln(os.Stderr, "mlpeer peer: -name and -bind are required")
		return 2
	}
	if len(*meta) > memberlist.MetaMaxSize {
		fmt.Fprintf(os.Stderr, "mlpeer peer: -meta is longer than %d bytes\n", memberlist.MetaMaxSize)
		return 2
	}
	bindHost, bindPort, err := splitHostPort(*bind)
	if err != nil {
		fmt.Fprintf(os.Stderr, "mlpeer peer: -bind: %v\n", err)
		return 2
	}

	out := newEmitter(os.Stdout)
	fatal := func(err error) int {
		fmt.Fprintf(os.Stderr, "mlpeer peer %s: %v\n", *name, err)
		out.line(obj{{"event", "fatal"}, {"error", err.Error()}})
		return 1
	}

	started := time.Now()
	logger := log.New(os.Stderr, "["+*name+"] ", log.LstdFlags|log.Lmicroseconds)
	nt, err := listen(bindHost, bindPort, logger)
	if err != nil {
		return fatal(err)
	}
	port := nt.GetAutoBindPort()

	conf := t.config(*name)
	conf.BindAddr = bindHost
	conf.BindPort = port
	conf.AdvertisePort = port
	if *advertise != "" {
		host, aport, err := splitHostPort(*advertise)
		if err != nil {
			return fatal(fmt.Errorf("-advertise: %w", err))
		}
		conf.AdvertiseAddr = host
		if aport != 0 {
			conf.AdvertisePort = aport
		}
	}
	conf.Transport = nt
	conf.Logger = logger

	p := &peer{out: out, name: *name, meta: []byte(*meta), gone: make(map[string]nodeSnapshot)}
	p.checkRecord = func(self *memberlist.Node) { checkNodeRecord(self, started, logger) }
	p.queue = &memberlist.TransmitLimitedQueue{
		NumNodes: func() int {
			if ml := p.ml.Load(); ml != nil {
				return ml.NumMembers()
			}
			return 1
		},
		RetransmitMult: t.userRetransmitMult(),
	}
	p.keyring = conf.Keyring
	if *nflogKey != "" || *silencesKey != "" {
		if *nflogKey == "" || *silencesKey == "" {
			return fatal(errors.New("-nflog-key and -silences-key go together"))
		}
		if newStateLayer == nil {
			return fatal(errors.New("this build has no Alertmanager states (the v0.5.0 build); use mlpeer-v0.7.0"))
		}
		if p.states, err = newStateLayer(p, *nflogKey, *silencesKey); err != nil {
			return fatal(err)
		}
	}
	conf.Delegate = p
	conf.Events = p
	conf.Alive = p
	conf.Ping = p

	ml, err := memberlist.Create(conf)
	if err != nil {
		nt.Shutdown()
		return fatal(err)
	}
	p.ml.Store(ml)
	self := ml.LocalNode()
	p.checkOnce.Do(func() { p.checkRecord(self) })
	out.markReady(obj{
		{"event", "ready"},
		{"name", self.Name},
		{"addr", self.Addr.String()},
		{"port", int(self.Port)},
		{"memberlist", memberlistVersion()},
	})

	in := bufio.NewReader(os.Stdin)
	for {
		line, err := in.ReadBytes('\n')
		if len(line) > 0 {
			if p.command(line) {
				return 0
			}
		}
		if err != nil {
			if !errors.Is(err, io.EOF) {
				fmt.Fprintf(os.Stderr, "mlpeer peer %s: reading stdin: %v\n", *name, err)
			}
			ml.Shutdown()
			return 0
		}
	}
}

type command struct {
	raw       []byte
	Cmd       string   `json:"cmd"`
	Addrs     []string `json:"addrs"`
	Name      string   `json:"name"`
	Data      *string  `json:"data"`
	TimeoutMs *int64   `json:"timeout_ms"`
}

func (c *command) payload() ([]byte, error) {
	if c.Data == nil {
		return nil, errors.New("missing data")
	}
	b, err := base64.StdEncoding.DecodeString(*c.Data)
	if err != nil {
		return nil, fmt.Errorf("data is not base64: %w", err)
	}
	return b, nil
}

// command runs one input line and writes its one reply. It reports whether
// the process should exit.
func (p *peer) command(line []byte) bool {
	var c command
	trimmed := bytes.TrimSpace(line)
	if len(trimmed) == 0 {
		return false
	}
	if err := json.Unmarshal(trimmed, &c); err != nil {
		p.out.line(obj{{"reply", ""}, {"ok", false}, {"error", "bad command: " + err.Error()}})
		return false
	}
	c.raw = trimmed
	reply, err := p.run(&c)
	if err != nil {
		p.out.line(append(obj{{"reply", c.Cmd}, {"ok", false}, {"error", err.Error()}}, reply...))
	} else {
		p.out.line(append(obj{{"reply", c.Cmd}, {"ok", true}}, reply...))
	}
	return c.Cmd == "shutdown"
}

func (p *peer) run(c *command) (obj, error) {
	ml := p.ml.Load()
	switch c.Cmd {
	case "join":
		if len(c.Addrs) == 0 {
			return nil, errors.New("join needs addrs")
		}
		n, err := ml.Join(c.Addrs)
		return obj{{"n", n}}, err

	case "members":
		return p.members(ml), nil

	case "broadcast":
		data, err := c.payload()
		if err != nil {
			return nil, err
		}
		p.queue.QueueBroadcast(plainBroadcast(data))
		return obj{{"queued", p.queue.NumQueued()}}, nil

	case "send_reliable", "send_best_effort":
		data, err := c.payload()
		if err != nil {
			return nil, err
		}
		var to *memberlist.Node
		for _, n := range ml.Members() {
			if n.Name == c.Name {
				to = n
				break
			}
		}
		if to == nil {
			return nil, fmt.Errorf("no live member named %q", c.Name)
		}
		if c.Cmd == "send_reliable" {
			return nil, ml.SendReliable(to, data)
		}
		return nil, ml.SendBestEffort(to, data)

	case "set_state":
		data, err := c.payload()
		if err != nil {
			return nil, err
		}
		p.stateMu.Lock()
		p.state = data
		p.stateMu.Unlock()
		return nil, nil

	case "leave":
		timeout := defaultLeaveTimeout
		if c.TimeoutMs != nil {
			timeout = time.Duration(*c.TimeoutMs) * time.Millisecond
		}
		return nil, ml.Leave(timeout)

	case "add_key", "use_key", "remove_key":
		return p.rotate(c)

	case "shutdown":
		return nil, ml.Shutdown()
	}
	if p.states != nil {
		if reply, handled, err := p.states.run(c.Cmd, c.raw); handled {
			return reply, err
		}
	}
	return nil, fmt.Errorf("unknown command %q", c.Cmd)
}

// members lists Members() (alive and suspect nodes, self included) and the
// dead/left nodes remembered from NotifyLeave, sorted by name.
func (p *peer) members(ml *memberlist.Memberlist) obj {
	var nodes []nodeSnapshot
	live := make(map[string]bool)
	for _, n := range ml.Members() {
		nodes = append(nodes, snapshot(n))
		live[n.Name] = true
	}
	p.goneMu.Lock()
	for name, s := range p.gone {
		if !live[name] {
			nodes = append(nodes, s)
		}
	}
	p.goneMu.Unlock()
	sort.Slice(nodes, func(i, j int) bool { return nodes[i].name < nodes[j].name })
	list := make([]obj, 0, len(nodes))
	for _, s := range nodes {
		list = append(list, s.fields())
	}
	return obj{
		{"members", list},
		{"num_members", ml.NumMembers()},
		{"health", ml.GetHealthScore()},
	}
}

// nodeEvent reports a membership event.
func (p *peer) nodeEvent(kind string, s nodeSnapshot) {
	p.out.event(append(obj{{"event", kind}}, s.fields()...))
}

// memberlist.Delegate

func (p *peer) NodeMeta(limit int) []byte { return p.meta }

func (p *peer) NotifyMsg(b []byte) {
	if p.states != nil {
		p.states.notifyMsg(b)
		return
	}
	p.out.event(obj{{"event", "msg"}, {"data", base64.StdEncoding.EncodeToString(b)}})
}

func (p *peer) GetBroadcasts(overhead, limit int) [][]byte {
	return p.queue.GetBroadcasts(overhead, limit)
}

func (p *peer) LocalState(join bool) []byte {
	if p.states != nil {
		return p.states.localState()
	}
	p.stateMu.Lock()
	defer p.stateMu.Unlock()
	if p.state == nil {
		return []byte{}
	}
	return p.state
}

func (p *peer) MergeRemoteState(b []byte, join bool) {
	if p.states != nil {
		p.states.mergeRemoteState(b)
		return
	}
	p.out.event(obj{{"event", "merge"}, {"join", join}, {"data", base64.StdEncoding.EncodeToString(b)}})
}

// memberlist.EventDelegate

func (p *peer) NotifyJoin(n *memberlist.Node) {
	if n.Name == p.name {
		p.checkOnce.Do(func() { p.checkRecord(n) })
	}
	p.goneMu.Lock()
	delete(p.gone, n.Name)
	p.goneMu.Unlock()
	p.nodeEvent("join", snapshot(n))
}

func (p *peer) NotifyLeave(n *memberlist.Node) {
	s := snapshot(n)
	p.goneMu.Lock()
	p.gone[n.Name] = s
	p.goneMu.Unlock()
	p.nodeEvent("leave", s)
}

func (p *peer) NotifyUpdate(n *memberlist.Node) { p.nodeEvent("update", snapshot(n)) }

// memberlist.AliveDelegate: accept every node. Having one at all makes
// memberlist ignore alive messages without a full 6-byte Vsn, as in
// Alertmanager.

func (p *peer) NotifyAlive(*memberlist.Node) error { return nil }

// memberlist.PingDelegate: an empty (not nil) ack payload, as Alertmanager's.

func (p *peer) AckPayload() []byte { return []byte{} }

func (p *peer) NotifyPingComplete(*memberlist.Node, time.Duration, []byte) {}

// rotate runs add_key, use_key or remove_key (data = the base64 key) on the
// keyring, as memberlist's Keyring.AddKey/UseKey/RemoveKey, and replies with
// the installed keys, primary first.
func (p *peer) rotate(c *command) (obj, error) {
	if p.keyring == nil {
		return nil, errors.New("started without -secret-key: no keyring")
	}
	if c.Data == nil {
		return nil, errors.New("missing data")
	}
	key, err := decodeKey(*c.Data)
	if err != nil {
		return nil, err
	}
	switch c.Cmd {
	case "add_key":
		err = p.keyring.AddKey(key)
	case "use_key":
		err = p.keyring.UseKey(key)
	default:
		err = p.keyring.RemoveKey(key)
	}
	var keys []string
	for _, k := range p.keyring.GetKeys() {
		keys = append(keys, base64.StdEncoding.EncodeToString(k))
	}
	return obj{{"keys", keys}}, err
}
