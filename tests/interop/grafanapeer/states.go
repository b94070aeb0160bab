package main

import (
	"context"
	"fmt"
	"log/slog"
	"os"
	"time"

	"github.com/prometheus/alertmanager/nflog"
	"github.com/prometheus/alertmanager/nflog/nflogpb"
	"github.com/prometheus/alertmanager/silence"
	"github.com/prometheus/alertmanager/silence/silencepb"
	"github.com/prometheus/client_golang/prometheus"
	"google.golang.org/protobuf/types/known/timestamppb"
)

// retention of both states: Alertmanager's default (120 h).
const retention = 120 * time.Hour

// localStates are one organisation's states, as a Grafana org Alertmanager registers them.
type localStates struct {
	nflogKey, silencesKey string
	nflog                 *nflog.Log
	silences              *silence.Silences
}

type registration struct {
	key          string
	state        state
	setBroadcast func(func([]byte))
}

func newLocalStates(org int64) (localStates, error) {
	logger := slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelWarn}))
	nl, err := nflog.New(nflog.Options{Retention: retention, Logger: logger, Metrics: prometheus.NewRegistry()})
	if err != nil {
		return localStates{}, fmt.Errorf("nflog: %w", err)
	}
	sil, err := silence.New(silence.Options{Retention: retention, Logger: logger, Metrics: prometheus.NewRegistry()})
	if err != nil {
		return localStates{}, fmt.Errorf("silences: %w", err)
	}
	return localStates{
		nflogKey:    fmt.Sprintf("notificationlog:%d", org),
		silencesKey: fmt.Sprintf("silences:%d", org),
		nflog:       nl,
		silences:    sil,
	}, nil
}

func (l localStates) registered() []registration {
	return []registration{
		{l.nflogKey, l.nflog, l.nflog.SetBroadcast},
		{l.silencesKey, l.silences, l.silences.SetBroadcast},
	}
}

// setSilence creates a silence `label="value"` for the next hour; Alertmanager picks its ID.
func (p *peer) setSilence(ctx context.Context, label, value, comment string) (string, error) {
	now := time.Now()
	matchers := []*silencepb.Matcher{{Type: silencepb.Matcher_EQUAL, Name: label, Pattern: value}}
	sil := &silencepb.Silence{
		Matchers:  matchers,
		StartsAt:  timestamppb.New(now),
		EndsAt:    timestamppb.New(now.Add(time.Hour)),
		CreatedBy: "grafanapeer",
		Comment:   comment,
	}
	if err := p.local.silences.Set(ctx, sil); err != nil {
		return "", err
	}
	return sil.Id, nil
}

type silenceView struct {
	ID      string `json:"id"`
	Comment string `json:"comment"`
}

// listSilences lists every silence held, in any state.
func (p *peer) listSilences(ctx context.Context) ([]silenceView, error) {
	list, _, err := p.local.silences.Query(ctx)
	if err != nil {
		return nil, err
	}
	out := make([]silenceView, 0, len(list))
	for _, s := range list {
		out = append(out, silenceView{ID: s.Id, Comment: s.Comment})
	}
	return out, nil
}

func receiver(cmd command) *nflogpb.Receiver {
	return &nflogpb.Receiver{GroupName: cmd.Receiver, Integration: cmd.Integration, Idx: cmd.Idx}
}

// logNotification records that cmd's group was notified with its firing alerts, as the
// dispatcher does after a successful send.
func (p *peer) logNotification(cmd command) error {
	return p.local.nflog.Log(receiver(cmd), cmd.GroupKey, cmd.Firing, nil, nil, nil, retention)
}

type entryView struct {
	Firing    []uint64 `json:"firing"`
	Timestamp string   `json:"timestamp"`
}

// entry is cmd's group's entry, or nil when there is none.
func (p *peer) entry(cmd command) (*entryView, error) {
	entries, err := p.local.nflog.Query(nflog.QReceiver(receiver(cmd)), nflog.QGroupKey(cmd.GroupKey))
	if err == nflog.ErrNotFound {
		return nil, nil
	}
	if err != nil {
		return nil, err
	}
	e := entries[0]
	return &entryView{Firing: e.FiringAlerts, Timestamp: e.Timestamp.AsTime().Format(time.RFC3339Nano)}, nil
}
