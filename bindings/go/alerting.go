package hearsay

/*
#include "hearsay.h"
*/
import "C"

import (
	"runtime"
	"sort"
	"time"
	"unsafe"
)

// Labels of an alert.
type Labels map[string]string

// labels lays out a label set for one call, in name order.
func labels(p *runtime.Pinner, ls Labels) []C.hs_label {
	names := make([]string, 0, len(ls))
	for name := range ls {
		names = append(names, name)
	}
	sort.Strings(names)
	out := make([]C.hs_label, len(names))
	for i, name := range names {
		out[i] = C.hs_label{name: str(p, name), value: str(p, ls[name])}
	}
	return out
}

func labelsPtr(ls []C.hs_label, p *runtime.Pinner) *C.hs_label {
	if len(ls) == 0 {
		return nil
	}
	p.Pin(&ls[0])
	return &ls[0]
}

// AlertHash is Alertmanager's alert hash (XXH64 over the sorted labels): what a Flush lists.
func AlertHash(ls Labels) uint64 {
	var p runtime.Pinner
	defer p.Unpin()
	cl := labels(&p, ls)
	var h C.uint64_t
	_ = call(func() C.hs_result { return C.hs_alert_hash(labelsPtr(cl, &p), C.size_t(len(cl)), &h) })
	return uint64(h)
}

// Fingerprint is Prometheus' label-set fingerprint (FNV-1a).
func Fingerprint(ls Labels) uint64 {
	var p runtime.Pinner
	defer p.Unpin()
	cl := labels(&p, ls)
	var h C.uint64_t
	_ = call(func() C.hs_result { return C.hs_alert_fingerprint(labelsPtr(cl, &p), C.size_t(len(cl)), &h) })
	return uint64(h)
}

// Receiver is the integration a notification goes to (Alertmanager's nflogpb.Receiver).
type Receiver struct {
	// Name of the receiver in the routing configuration.
	Name string
	// Integration type: webhook, email, slack, ...
	Integration string
	// Index within the receiver's integrations of that type.
	Index uint32
}

// Flush is one flush of an aggregation group to one integration.
type Flush struct {
	Receiver Receiver
	GroupKey string
	// Firing and Resolved hold AlertHash of each alert.
	Firing, Resolved []uint64
	SendResolved     bool
	RepeatInterval   time.Duration
	// Now is the wall clock when Dedup runs, or the flush tick time.
	Now time.Time
}

func (f *Flush) c(p *runtime.Pinner) C.hs_flush {
	hashes := func(h []uint64) *C.uint64_t {
		if len(h) == 0 {
			return nil
		}
		p.Pin(&h[0])
		return (*C.uint64_t)(unsafe.Pointer(&h[0]))
	}
	return C.hs_flush{
		receiver: C.hs_receiver{
			name:        str(p, f.Receiver.Name),
			integration: str(p, f.Receiver.Integration),
			index:       C.uint32_t(f.Receiver.Index),
		},
		group_key:          str(p, f.GroupKey),
		firing:             hashes(f.Firing),
		firing_len:         C.size_t(len(f.Firing)),
		resolved:           hashes(f.Resolved),
		resolved_len:       C.size_t(len(f.Resolved)),
		send_resolved:      C.bool(f.SendResolved),
		repeat_interval_ms: millis(f.RepeatInterval),
		now_ms:             C.int64_t(f.Now.UnixMilli()),
	}
}

// DedupRow names the row of Alertmanager's dedup table that decided.
type DedupRow uint32

// The rows, in the table's order.
const (
	RowNoEntryFiring       DedupRow = C.HS_DEDUP_ROW_NO_ENTRY_FIRING
	RowNoEntryResolvedOnly DedupRow = C.HS_DEDUP_ROW_NO_ENTRY_RESOLVED_ONLY
	RowNewFiring           DedupRow = C.HS_DEDUP_ROW_NEW_FIRING
	RowAllResolved         DedupRow = C.HS_DEDUP_ROW_ALL_RESOLVED
	RowNothingFiring       DedupRow = C.HS_DEDUP_ROW_NOTHING_FIRING
	RowNewResolved         DedupRow = C.HS_DEDUP_ROW_NEW_RESOLVED
	RowRepeatElapsed       DedupRow = C.HS_DEDUP_ROW_REPEAT_ELAPSED
	RowUnchanged           DedupRow = C.HS_DEDUP_ROW_UNCHANGED
	RowQueryFailed         DedupRow = C.HS_DEDUP_ROW_QUERY_FAILED
)

func (r DedupRow) String() string {
	switch r {
	case RowNoEntryFiring:
		return "first notification"
	case RowNoEntryResolvedOnly:
		return "nothing logged, only resolved alerts"
	case RowNewFiring:
		return "new alerts added"
	case RowAllResolved:
		return "all alerts resolved"
	case RowNothingFiring:
		return "nothing firing"
	case RowNewResolved:
		return "some alerts resolved"
	case RowRepeatElapsed:
		return "repeat interval elapsed"
	case RowUnchanged:
		return "unchanged"
	case RowQueryFailed:
		return "query failed"
	}
	return "unknown row"
}

// Decision is the Dedup stage's verdict.
type Decision struct {
	Notify bool
	Row    DedupRow
}

// ShouldNotify is Alertmanager's Dedup stage against the replicated notification log.
func (n *Node) ShouldNotify(f Flush) (Decision, error) {
	var p runtime.Pinner
	defer p.Unpin()
	cf := f.c(&p)
	var d C.hs_decision
	err := n.with(func(node *C.hs_node) C.hs_result { return C.hs_node_should_notify(node, &cf, &d) })
	return Decision{Notify: bool(d.notify), Row: DedupRow(d.row)}, err
}

// LogNotification is Alertmanager's SetNotifies stage: record the delivered flush and send
// it to every peer. False (nothing written) when the stored entry is newer than f.Now.
func (n *Node) LogNotification(f Flush) (bool, error) {
	var p runtime.Pinner
	defer p.Unpin()
	cf := f.c(&p)
	var written C.bool
	err := n.with(func(node *C.hs_node) C.hs_result { return C.hs_node_log_notification(node, &cf, &written) })
	return bool(written), err
}

// MatchType is a matcher operator.
type MatchType uint32

// The operators, as Alertmanager numbers them.
const (
	MatchEqual     MatchType = C.HS_MATCH_TYPE_EQUAL
	MatchRegexp    MatchType = C.HS_MATCH_TYPE_REGEXP
	MatchNotEqual  MatchType = C.HS_MATCH_TYPE_NOT_EQUAL
	MatchNotRegexp MatchType = C.HS_MATCH_TYPE_NOT_REGEXP
)

// Matcher is one label matcher of a silence.
type Matcher struct {
	Name, Value string
	Type        MatchType
}

// Silence to create (empty ID) or update.
type Silence struct {
	ID                 string
	Matchers           []Matcher
	StartsAt, EndsAt   time.Time
	CreatedBy, Comment string
}

// SetSilence creates or updates a silence by Alertmanager's rules and sends it to every
// peer. It returns the silence's ID (new when the update had to replace it).
func (n *Node) SetSilence(s Silence, now time.Time) (string, error) {
	var p runtime.Pinner
	defer p.Unpin()
	ms := make([]C.hs_matcher, len(s.Matchers))
	for i, m := range s.Matchers {
		ms[i] = C.hs_matcher{name: str(&p, m.Name), value: str(&p, m.Value), match_type: C.uint32_t(m.Type)}
	}
	cs := C.hs_silence{
		id:           str(&p, s.ID),
		matchers_len: C.size_t(len(ms)),
		starts_at_ms: C.int64_t(s.StartsAt.UnixMilli()),
		ends_at_ms:   C.int64_t(s.EndsAt.UnixMilli()),
		created_by:   str(&p, s.CreatedBy),
		comment:      str(&p, s.Comment),
	}
	if len(ms) > 0 {
		p.Pin(&ms[0])
		cs.matchers = &ms[0]
	}
	buf := make([]byte, max(len(s.ID), C.HS_SILENCE_ID_LEN))
	var idLen C.size_t
	err := n.with(func(node *C.hs_node) C.hs_result {
		return C.hs_node_set_silence(node, &cs, C.int64_t(now.UnixMilli()),
			(*C.char)(unsafe.Pointer(&buf[0])), C.size_t(len(buf)), &idLen)
	})
	if err != nil {
		return "", err
	}
	return string(buf[:idLen]), nil
}

// ExpireSilence expires the silence now and sends the change to every peer.
func (n *Node) ExpireSilence(id string, now time.Time) error {
	var p runtime.Pinner
	defer p.Unpin()
	return n.with(func(node *C.hs_node) C.hs_result {
		return C.hs_node_expire_silence(node, str(&p, id), C.int64_t(now.UnixMilli()))
	})
}

// Mutes returns how many active silences mute an alert with these labels (0: not muted).
func (n *Node) Mutes(ls Labels, now time.Time) (int, error) {
	var p runtime.Pinner
	defer p.Unpin()
	cl := labels(&p, ls)
	var count C.size_t
	err := n.with(func(node *C.hs_node) C.hs_result {
		return C.hs_node_mutes(node, labelsPtr(cl, &p), C.size_t(len(cl)), C.int64_t(now.UnixMilli()), &count)
	})
	return int(count), err
}
