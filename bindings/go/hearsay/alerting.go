package hearsay

/*
#include "hearsay.h"
*/
import "C"

import (
	"fmt"
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

// States is one set of native states the alerting calls act on: Alertmanager's (nfl, sil),
// which the Node's own methods use, or a Grafana organisation's (Node.Org). Its methods are
// safe for concurrent use.
type States struct {
	node                      *Node
	nflog, silences, flushLog string
}

// Org is the states of Grafana organisation id, as its Alertmanager registers them:
// notificationlog:<id>, silences:<id> and flushlog:<id>. The node carries them when started
// with the organisation in Config.Orgs (at the keys Config.NativeKeys moves them to);
// otherwise, or once the host's AddState took a key, its calls return ErrNoSuchState. Each
// organisation's states are its own: what one logs or silences never touches another.
func (n *Node) Org(id int64) *States {
	return &States{
		node:     n,
		nflog:    n.nativeKey(fmt.Sprintf("notificationlog:%d", id)),
		silences: n.nativeKey(fmt.Sprintf("silences:%d", id)),
		flushLog: n.nativeKey(fmt.Sprintf("flushlog:%d", id)),
	}
}

// alertmanager is the states under Alertmanager's keys, which a node started without
// Config.Orgs carries. It has no flush log.
func (n *Node) alertmanager() *States {
	return &States{node: n, nflog: n.nativeKey("nfl"), silences: n.nativeKey("sil")}
}

// ShouldNotify is Alertmanager's Dedup stage against the replicated notification log
// (Alertmanager's nfl; Org(id).ShouldNotify for a Grafana organisation).
func (n *Node) ShouldNotify(f Flush) (Decision, error) { return n.alertmanager().ShouldNotify(f) }

// LogNotification is Alertmanager's SetNotifies stage: record the delivered flush and send
// it to every peer. False (nothing written) when the stored entry is newer than f.Now.
func (n *Node) LogNotification(f Flush) (bool, error) { return n.alertmanager().LogNotification(f) }

// ShouldNotify is Alertmanager's Dedup stage against these states' notification log.
func (s *States) ShouldNotify(f Flush) (Decision, error) {
	var p runtime.Pinner
	defer p.Unpin()
	cf := f.c(&p)
	key := str(&p, s.nflog)
	var d C.hs_decision
	err := s.node.with(func(node *C.hs_node) C.hs_result { return C.hs_node_should_notify_in(node, key, &cf, &d) })
	return Decision{Notify: bool(d.notify), Row: DedupRow(d.row)}, err
}

// LogNotification is Alertmanager's SetNotifies stage in these states' notification log:
// record the delivered flush and send it to every peer. False (nothing written) when the
// stored entry is newer than f.Now.
func (s *States) LogNotification(f Flush) (bool, error) {
	var p runtime.Pinner
	defer p.Unpin()
	cf := f.c(&p)
	key := str(&p, s.nflog)
	var written C.bool
	err := s.node.with(func(node *C.hs_node) C.hs_result {
		return C.hs_node_log_notification_in(node, key, &cf, &written)
	})
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
// peer (Alertmanager's sil; Org(id).SetSilence for a Grafana organisation). It returns the
// silence's ID (new when the update had to replace it).
func (n *Node) SetSilence(s Silence, now time.Time) (string, error) {
	return n.alertmanager().SetSilence(s, now)
}

// ExpireSilence expires the silence now and sends the change to every peer.
func (n *Node) ExpireSilence(id string, now time.Time) error {
	return n.alertmanager().ExpireSilence(id, now)
}

// Mutes returns how many active silences mute an alert with these labels (0: not muted).
func (n *Node) Mutes(ls Labels, now time.Time) (int, error) { return n.alertmanager().Mutes(ls, now) }

// SetSilence creates or updates a silence in these states by Alertmanager's rules and sends
// it to every peer. It returns the silence's ID (new when the update had to replace it).
func (st *States) SetSilence(s Silence, now time.Time) (string, error) {
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
	key := str(&p, st.silences)
	buf := make([]byte, max(len(s.ID), C.HS_SILENCE_ID_LEN))
	var idLen C.size_t
	err := st.node.with(func(node *C.hs_node) C.hs_result {
		return C.hs_node_set_silence_in(node, key, &cs, C.int64_t(now.UnixMilli()),
			(*C.char)(unsafe.Pointer(&buf[0])), C.size_t(len(buf)), &idLen)
	})
	if err != nil {
		return "", err
	}
	return string(buf[:idLen]), nil
}

// ExpireSilence expires the silence in these states now and sends the change to every peer.
func (st *States) ExpireSilence(id string, now time.Time) error {
	var p runtime.Pinner
	defer p.Unpin()
	return st.node.with(func(node *C.hs_node) C.hs_result {
		return C.hs_node_expire_silence_in(node, str(&p, st.silences), str(&p, id), C.int64_t(now.UnixMilli()))
	})
}

// Mutes returns how many active silences of these states mute an alert with these labels
// (0: not muted).
func (st *States) Mutes(ls Labels, now time.Time) (int, error) {
	var p runtime.Pinner
	defer p.Unpin()
	cl := labels(&p, ls)
	key := str(&p, st.silences)
	var count C.size_t
	err := st.node.with(func(node *C.hs_node) C.hs_result {
		return C.hs_node_mutes_in(node, key, labelsPtr(cl, &p), C.size_t(len(cl)), C.int64_t(now.UnixMilli()), &count)
	})
	return int(count), err
}

// FlushEntry is a group's entry in a flush log: when it was first flushed, and when the
// entry expires (millisecond precision).
type FlushEntry struct {
	FlushTime, ExpiresAt time.Time
}

// LogFlush is Grafana's sync dispatch timer on the instance at position 0: record that the
// aggregation group with this fingerprint was first flushed at flushTime in the
// organisation's flush log (Config.FlushLog), and send it to every peer. The entry expires
// after expiry (Grafana passes max(2 × group_interval, 24h)), or the retention (120h) if
// shorter; 0 means the retention. False (nothing written) when the stored flush time is
// later. ErrFlushLogRefused for fingerprint 0 or a time outside Go's range.
func (st *States) LogFlush(fingerprint uint64, flushTime time.Time, expiry time.Duration, now time.Time) (bool, error) {
	var p runtime.Pinner
	defer p.Unpin()
	var written C.bool
	err := st.node.with(func(node *C.hs_node) C.hs_result {
		return C.hs_node_log_flush(node, str(&p, st.flushLog), C.uint64_t(fingerprint),
			C.int64_t(flushTime.UnixMilli()), millis(expiry), C.int64_t(now.UnixMilli()), &written)
	})
	return bool(written), err
}

// FlushTime is the flush log's entry for the group with this fingerprint: the replicated
// first-flush time every instance aligns its ticks to. ok is false when there is none.
func (st *States) FlushTime(fingerprint uint64) (entry FlushEntry, ok bool, err error) {
	var p runtime.Pinner
	defer p.Unpin()
	var found C.bool
	var e C.hs_flush_entry
	err = st.node.with(func(node *C.hs_node) C.hs_result {
		return C.hs_node_flush_time(node, str(&p, st.flushLog), C.uint64_t(fingerprint), &found, &e)
	})
	if err != nil || !bool(found) {
		return FlushEntry{}, false, err
	}
	return FlushEntry{
		FlushTime: time.UnixMilli(int64(e.flush_time_ms)),
		ExpiresAt: time.UnixMilli(int64(e.expires_at_ms)),
	}, true, nil
}

// DeleteFlush forgets the group with this fingerprint (it ended) and sends the deletion to
// every peer. False when there was no entry (nothing changed).
func (st *States) DeleteFlush(fingerprint uint64) (bool, error) {
	var p runtime.Pinner
	defer p.Unpin()
	var deleted C.bool
	err := st.node.with(func(node *C.hs_node) C.hs_result {
		return C.hs_node_delete_flush(node, str(&p, st.flushLog), C.uint64_t(fingerprint), &deleted)
	})
	return bool(deleted), err
}
