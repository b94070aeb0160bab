//go:build !mlv050

// Alertmanager's cluster layer on an mlpeer node (-nflog-key, -silences-key): Alertmanager's
// own Go notification log and silences (v0.35) registered under the keys given, their
// updates wrapped in clusterpb.Part and gossiped (or, above 700 bytes, sent reliably to every
// member, as Alertmanager's channel does), push/pull carrying a clusterpb.FullState, and
// received Parts routed by key. With Grafana's keys (notificationlog:1, silences:1) this is
// what a Grafana instance on memberlist carries for organisation 1.
//
// Built into the go.mod binaries only: the v0.5.0 build (tag mlv050) has no Alertmanager
// module, and states_v050.go refuses the flags there.
package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"time"

	"github.com/prometheus/alertmanager/cluster/clusterpb"
	"github.com/prometheus/alertmanager/nflog"
	"github.com/prometheus/alertmanager/nflog/nflogpb"
	"github.com/prometheus/alertmanager/silence"
	"github.com/prometheus/alertmanager/silence/silencepb"
	"github.com/prometheus/client_golang/prometheus"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/timestamppb"
)

// retention of both states: Alertmanager's default (120 h).
const retention = 120 * time.Hour

// oversized is Alertmanager's cluster.OversizedMessage bound: half a gossip packet.
const oversized = 1400 / 2

func init() { newStateLayer = newAlertmanagerStates }

// replicated is Alertmanager's cluster.State.
type replicated interface {
	MarshalBinary() ([]byte, error)
	Merge([]byte) error
}

type amStates struct {
	p           *peer
	nflogKey    string
	silencesKey string
	nflog       *nflog.Log
	silences    *silence.Silences
	byKey       map[string]replicated
	keys        []string
}

func newAlertmanagerStates(p *peer, nflogKey, silencesKey string) (stateLayer, error) {
	logger := slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelWarn}))
	nl, err := nflog.New(nflog.Options{Retention: retention, Logger: logger, Metrics: prometheus.NewRegistry()})
	if err != nil {
		return nil, fmt.Errorf("nflog: %w", err)
	}
	sil, err := silence.New(silence.Options{Retention: retention, Logger: logger, Metrics: prometheus.NewRegistry()})
	if err != nil {
		return nil, fmt.Errorf("silences: %w", err)
	}
	s := &amStates{
		p: p, nflogKey: nflogKey, silencesKey: silencesKey, nflog: nl, silences: sil,
		byKey: map[string]replicated{nflogKey: nl, silencesKey: sil},
		keys:  []string{nflogKey, silencesKey},
	}
	nl.SetBroadcast(s.broadcaster(nflogKey))
	sil.SetBroadcast(s.broadcaster(silencesKey))
	return s, nil
}

// broadcaster is Alertmanager's channel.Broadcast for key.
func (s *amStates) broadcaster(key string) func([]byte) {
	return func(b []byte) {
		part, err := proto.Marshal(&clusterpb.Part{Key: key, Data: b})
		if err != nil {
			return
		}
		if len(part) <= oversized {
			s.p.queue.QueueBroadcast(plainBroadcast(part))
			return
		}
		ml := s.p.ml.Load()
		if ml == nil {
			return
		}
		for _, n := range ml.Members() {
			if n.Name != s.p.name {
				_ = ml.SendReliable(n, part)
			}
		}
	}
}

func (s *amStates) notifyMsg(b []byte) {
	var part clusterpb.Part
	if err := proto.Unmarshal(b, &part); err != nil {
		s.p.out.event(obj{{"event", "state_error"}, {"error", "part: " + err.Error()}})
		return
	}
	s.merge(&part)
}

func (s *amStates) merge(part *clusterpb.Part) {
	st, ok := s.byKey[part.Key]
	if !ok {
		s.p.out.event(obj{{"event", "state_error"}, {"error", "unknown key " + part.Key}})
		return
	}
	if err := st.Merge(part.Data); err != nil {
		s.p.out.event(obj{{"event", "state_error"}, {"error", part.Key + ": " + err.Error()}})
	}
}

func (s *amStates) localState() []byte {
	fs := &clusterpb.FullState{}
	for _, key := range s.keys {
		data, err := s.byKey[key].MarshalBinary()
		if err != nil {
			continue
		}
		fs.Parts = append(fs.Parts, &clusterpb.Part{Key: key, Data: data})
	}
	b, err := proto.Marshal(fs)
	if err != nil {
		return []byte{}
	}
	return b
}

func (s *amStates) mergeRemoteState(b []byte) {
	var fs clusterpb.FullState
	if err := proto.Unmarshal(b, &fs); err != nil {
		s.p.out.event(obj{{"event", "state_error"}, {"error", "full state: " + err.Error()}})
		return
	}
	for _, part := range fs.Parts {
		s.merge(part)
	}
}

// stateCommand holds the fields of the state commands.
type stateCommand struct {
	Label, Value, Comment string
	Receiver, Integration string
	Idx                   uint32
	GroupKey              string   `json:"group_key"`
	Firing                []uint64 `json:"firing"`
}

// run handles set_silence, silences, log_notification and entry; handled is false for any
// other command.
func (s *amStates) run(cmd string, raw []byte) (reply obj, handled bool, err error) {
	var c stateCommand
	switch cmd {
	case "set_silence", "silences", "log_notification", "entry":
		if err := json.Unmarshal(raw, &c); err != nil {
			return nil, true, err
		}
	default:
		return nil, false, nil
	}
	ctx := context.Background()
	switch cmd {
	case "set_silence":
		now := time.Now()
		sil := &silencepb.Silence{
			Matchers:  []*silencepb.Matcher{{Type: silencepb.Matcher_EQUAL, Name: c.Label, Pattern: c.Value}},
			StartsAt:  timestamppb.New(now),
			EndsAt:    timestamppb.New(now.Add(time.Hour)),
			CreatedBy: "mlpeer",
			Comment:   c.Comment,
		}
		if err := s.silences.Set(ctx, sil); err != nil {
			return nil, true, err
		}
		return obj{{"id", sil.Id}}, true, nil
	case "silences":
		list, _, err := s.silences.Query(ctx)
		if err != nil {
			return nil, true, err
		}
		views := make([]obj, 0, len(list))
		for _, sil := range list {
			views = append(views, obj{{"id", sil.Id}, {"comment", sil.Comment}})
		}
		return obj{{"silences", views}}, true, nil
	case "log_notification":
		r := &nflogpb.Receiver{GroupName: c.Receiver, Integration: c.Integration, Idx: c.Idx}
		return nil, true, s.nflog.Log(r, c.GroupKey, c.Firing, nil, nil, nil, retention)
	default: // entry
		r := &nflogpb.Receiver{GroupName: c.Receiver, Integration: c.Integration, Idx: c.Idx}
		entries, err := s.nflog.Query(nflog.QReceiver(r), nflog.QGroupKey(c.GroupKey))
		if errors.Is(err, nflog.ErrNotFound) {
			return obj{{"entry", nil}}, true, nil
		}
		if err != nil {
			return nil, true, err
		}
		e := entries[0]
		return obj{{"entry", obj{{"firing", e.FiringAlerts}, {"timestamp", e.Timestamp.AsTime().Format(time.RFC3339Nano)}}}}, true, nil
	}
}
