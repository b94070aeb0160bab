// grafanapeer is one peer in Grafana Alerting's Redis HA layout, for hearsay's interop tests.
// It is written from a description of the layout's behaviour (Grafana 10.0 and later, stable
// since the Redis peer landed), not from Grafana's source, with the go-redis v9 client Grafana
// uses and Alertmanager's own Go notification log and silences as the replicated states, so
// hearsay is checked against the real Go merge rules and encodings.
//
// The layout, with prefix P (a ':' is appended when missing; an empty prefix stays empty):
//   - heartbeat: `SET P<name> <unix seconds> EX 300` every heartbeat interval (Grafana: 5 s;
//     the first beat one interval after start, as Grafana does);
//   - membership every members interval (5 s): a full `SCAN 0 MATCH P* COUNT 100` loop, `MGET`
//     of the keys, keep those whose value parses as an integer >= now-60 s, sort the full key
//     names byte-wise, drop duplicates; position = index of P<name>, 0 when absent;
//   - one pub/sub subscription (each its own connection, as go-redis' PubSub is) on
//     `P full_state`, `P full_state:request` and `P<stateKey>` for every state;
//   - a state's broadcast is published as a raw `clusterpb.Part{key, data}` on `P<stateKey>`;
//     a received Part is merged into the state its key names (an unknown key is ignored);
//   - the full state is `clusterpb.FullState{parts: one Part per state, data = MarshalBinary()}`
//     on `P full_state`; a received one is merged part by part, stopping at the first error
//     (Grafana's behaviour);
//   - a request is the requester's bare name on `P full_state:request`: every other peer
//     answers with its full state (a broadcast, not a reply); a peer sends its own request
//     once settled (Grafana's settle: member count unchanged for 3 polls), and pushes its full
//     state every push/pull interval (60 s);
//   - at shutdown a last full state, then `DEL P<name>`.
//
// Control: JSON lines. stdin takes commands ({"cmd": "members"} ...), stdout carries exactly
// one {"reply": cmd, "ok": bool, ...} per command, preceded by {"event": "ready"} once every
// subscription is confirmed. EOF on stdin shuts down cleanly. Logs go to stderr.
package main

import (
	"bufio"
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"log"
	"os"
	"sync"
	"time"

	"github.com/redis/go-redis/v9"
)

func main() {
	name := flag.String("name", "", "peer name (ha_redis_peer_name); required")
	addr := flag.String("redis", "127.0.0.1:6379", "Redis address host:port (ha_redis_address)")
	prefix := flag.String("prefix", "", "key and channel prefix (ha_redis_prefix)")
	org := flag.Int64("org", 1, "organisation: states notificationlog:<org> and silences:<org>")
	heartbeat := flag.Duration("heartbeat-interval", 5*time.Second, "heartbeat period (Grafana: 5s)")
	membersSync := flag.Duration("members-interval", 5*time.Second, "membership read period (Grafana: 5s)")
	pushPull := flag.Duration("push-pull-interval", 60*time.Second, "full-state push period (ha_push_pull_interval)")
	settleInterval := flag.Duration("settle-interval", 2*time.Second, "settle poll period (Grafana: 2s)")
	settleTimeout := flag.Duration("settle-timeout", 30*time.Second, "settle timeout (Grafana: 30s); no request after it, as Grafana")
	flag.Parse()
	log.SetPrefix("[" + *name + "] ")
	if *name == "" {
		log.Fatal("-name is required")
	}

	cfg := config{
		name:           *name,
		prefix:         normalisePrefix(*prefix),
		org:            *org,
		heartbeat:      *heartbeat,
		membersSync:    *membersSync,
		pushPull:       *pushPull,
		settleInterval: *settleInterval,
		settleTimeout:  *settleTimeout,
	}
	rdb := redis.NewClient(&redis.Options{Addr: *addr})
	p, err := newPeer(cfg, rdb)
	if err != nil {
		log.Fatalf("start: %v", err)
	}
	out := json.NewEncoder(os.Stdout)
	var outMu sync.Mutex
	emit := func(v map[string]any) {
		outMu.Lock()
		defer outMu.Unlock()
		if err := out.Encode(v); err != nil {
			log.Fatalf("stdout: %v", err)
		}
	}
	emit(map[string]any{"event": "ready", "name": cfg.name, "key": cfg.prefix + cfg.name})

	in := bufio.NewScanner(os.Stdin)
	in.Buffer(make([]byte, 1<<20), 1<<20)
	for in.Scan() {
		var cmd command
		reply := map[string]any{}
		if err := json.Unmarshal(in.Bytes(), &cmd); err != nil {
			reply["reply"], reply["ok"], reply["error"] = "?", false, err.Error()
		} else {
			reply["reply"] = cmd.Cmd
			if err := p.handle(cmd, reply); err != nil {
				reply["ok"], reply["error"] = false, err.Error()
			} else {
				reply["ok"] = true
			}
		}
		emit(reply)
	}
	p.shutdown()
}

// normalisePrefix appends ':' to a non-empty prefix without one, as Grafana does.
func normalisePrefix(p string) string {
	if p != "" && p[len(p)-1] != ':' {
		return p + ":"
	}
	return p
}

// command is one control line; each command reads only the fields it needs.
type command struct {
	Cmd string `json:"cmd"`
	// silence: the matcher `Label="Value"` and the comment; silence lookups: ID.
	Label   string `json:"label"`
	Value   string `json:"value"`
	Comment string `json:"comment"`
	ID      string `json:"id"`
	// log / entry: the notification-log receiver and group key; firing alert hashes.
	Receiver    string   `json:"receiver"`
	Integration string   `json:"integration"`
	Idx         uint32   `json:"idx"`
	GroupKey    string   `json:"group_key"`
	Firing      []uint64 `json:"firing"`
}

// handle runs one command, filling reply with its results.
func (p *peer) handle(cmd command, reply map[string]any) error {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	switch cmd.Cmd {
	case "members":
		members, position := p.membership()
		reply["members"], reply["position"] = members, position
	case "silence":
		id, err := p.setSilence(ctx, cmd.Label, cmd.Value, cmd.Comment)
		if err != nil {
			return err
		}
		reply["id"] = id
	case "silences":
		list, err := p.listSilences(ctx)
		if err != nil {
			return err
		}
		reply["silences"] = list
	case "log":
		return p.logNotification(cmd)
	case "entry":
		entry, err := p.entry(cmd)
		if err != nil {
			return err
		}
		reply["entry"] = entry
	case "request":
		return p.request(ctx)
	case "stats":
		reply["stats"] = p.statsNow()
	default:
		return fmt.Errorf("unknown command %q", cmd.Cmd)
	}
	return nil
}
