// Package audience decides who on this instance hears a presence transition:
// the local sockets subscribed to the user (presence.subscribe, and the
// partners of the user's direct conversations, subscribed at connect).
// Pushing each transition to every contact made a large group coming online
// quadratic; a transition now costs one delivery per subscribed socket and
// no lookup at all (docs/decisions/api-ws-presence.md).
//
// Subscriptions are per socket and end with it; clients send them again
// after a reconnect. Each keeps whether the subscriber may see the user (the
// user's privacy setting, checked when subscribing); hidden ones are kept so
// that they can turn visible when the setting changes, when the user writes
// to the subscriber, or when a member leaves a conversation.
package audience

import (
	"context"
	"encoding/json"
	"errors"
	"slices"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/sirupsen/logrus"

	"github.com/chat5202ol/mop/pkg/api"
	"github.com/chat5202ol/mop/pkg/event"
	"github.com/chat5202ol/mop/pkg/logging"
	"github.com/chat5202ol/mop/services/api-ws/internal/hub"
	"github.com/chat5202ol/mop/services/api-ws/internal/metrics"
)

// Visibility answers which of userIDs viewerID may see (api-rest).
type Visibility interface {
	PresenceVisible(ctx context.Context, viewerID string, userIDs []string) ([]string, error)
}

// Partners lists a user's direct-conversation partners (cached).
type Partners interface {
	DirectPartners(ctx context.Context, userID string) ([]string, error)
}

// States reads the current presence of users (the tracker's mirror).
type States interface {
	Query(userIDs []string) []event.PresenceState
}

// Sockets is the instance's hub.
type Sockets interface {
	DeliverConns(conns []*hub.Conn, eventType string, data json.RawMessage, ephemeral bool) int
	Conns(userID string) []*hub.Conn
	Removed(c *hub.Conn) bool
}

// ErrTooMany refuses a subscription beyond api.MaxPresenceSubscriptions.
var ErrTooMany = errors.New("too many presence subscriptions")

// rechecks bounds the privacy re-checks running at once.
const rechecks = 8

// Audience holds the presence subscriptions of the instance's sockets.
type Audience struct {
	vis      Visibility
	partners Partners
	states   States
	sockets  Sockets
	log      *logrus.Entry
	base     context.Context
	timeout  time.Duration
	sem      chan struct{}

	mu       sync.Mutex
	byTarget map[string]map[*hub.Conn]bool // user → subscribed socket → may see
	byConn   map[*hub.Conn]map[string]bool // socket → user → may see
	hidden   map[string]int                // user → subscriptions that may not see them
	wg       sync.WaitGroup
}

// New returns an empty audience; base bounds its RPCs (each within timeout).
// Its size is exported on m's registry.
func New(base context.Context, timeout time.Duration, vis Visibility, partners Partners, states States, sockets Sockets,
	m *metrics.Metrics, log *logrus.Entry) *Audience {
	a := &Audience{
		vis: vis, partners: partners, states: states, sockets: sockets, log: log, base: base, timeout: timeout,
		sem:      make(chan struct{}, rechecks),
		byTarget: map[string]map[*hub.Conn]bool{}, byConn: map[*hub.Conn]map[string]bool{}, hidden: map[string]int{},
	}
	m.Registry.MustRegister(prometheus.NewGaugeFunc(prometheus.GaugeOpts{
		Name: "mop_ws_presence_subscriptions", Help: "Presence subscriptions held by the sockets of this instance (default ones included).",
	}, func() float64 { return float64(a.size()) }))
	return a
}

// size is the number of subscriptions.
func (a *Audience) size() int {
	a.mu.Lock()
	defer a.mu.Unlock()
	n := 0
	for _, subs := range a.byConn {
		n += len(subs)
	}
	return n
}

// Subscribe subscribes c to userIDs and returns their current state (hidden
// users read as never seen), in the order asked.
func (a *Audience) Subscribe(ctx context.Context, c *hub.Conn, userIDs []string) ([]event.PresenceState, error) {
	ids := uniq(userIDs)
	a.mu.Lock()
	fresh := 0
	for _, id := range ids {
		if _, ok := a.byConn[c][id]; !ok {
			fresh++
		}
	}
	over := len(a.byConn[c])+fresh > api.MaxPresenceSubscriptions
	a.mu.Unlock()
	if over {
		return nil, ErrTooMany
	}
	visible := []string{}
	if len(ids) > 0 {
		var err error
		if visible, err = a.vis.PresenceVisible(ctx, c.UserID, ids); err != nil {
			return nil, err
		}
	}
	a.mu.Lock()
	// The lock orders this against Forget: a socket removed meanwhile is
	// either seen as removed here or forgotten after these entries exist.
	if !a.sockets.Removed(c) {
		for _, id := range ids {
			a.setLocked(c, id, slices.Contains(visible, id))
		}
	}
	a.mu.Unlock()
	return a.Read(userIDs, visible), nil
}

// Read answers the states of userIDs as a viewer allowed to see only visible
// reads them: anyone else reads as never seen, which reveals nothing about
// whether the id exists (presence.subscribe and presence.query).
func (a *Audience) Read(userIDs, visible []string) []event.PresenceState {
	known := map[string]event.PresenceState{}
	for _, st := range a.states.Query(visible) {
		known[st.UserID] = st
	}
	out := make([]event.PresenceState, 0, len(userIDs))
	for _, id := range userIDs {
		st, ok := known[id]
		if !ok {
			st = event.PresenceState{UserID: id}
		}
		out = append(out, st)
	}
	return out
}

// setLocked records c's subscription to id; a.mu is held.
func (a *Audience) setLocked(c *hub.Conn, id string, visible bool) {
	subs := a.byConn[c]
	if subs == nil {
		subs = map[string]bool{}
		a.byConn[c] = subs
	}
	if old, ok := subs[id]; ok && !old {
		if a.hidden[id]--; a.hidden[id] <= 0 {
			delete(a.hidden, id)
		}
	}
	subs[id] = visible
	conns := a.byTarget[id]
	if conns == nil {
		conns = map[*hub.Conn]bool{}
		a.byTarget[id] = conns
	}
	conns[c] = visible
	if !visible {
		a.hidden[id]++
	}
}

// dropLocked ends c's subscription to id; a.mu is held.
func (a *Audience) dropLocked(c *hub.Conn, id string) {
	visible, ok := a.byConn[c][id]
	if !ok {
		return
	}
	delete(a.byConn[c], id)
	if len(a.byConn[c]) == 0 {
		delete(a.byConn, c)
	}
	delete(a.byTarget[id], c)
	if len(a.byTarget[id]) == 0 {
		delete(a.byTarget, id)
	}
	if !visible {
		if a.hidden[id]--; a.hidden[id] <= 0 {
			delete(a.hidden, id)
		}
	}
}

// Unsubscribe ends c's subscriptions to userIDs (unknown ones are ignored).
func (a *Audience) Unsubscribe(c *hub.Conn, userIDs []string) {
	a.mu.Lock()
	defer a.mu.Unlock()
	for _, id := range userIDs {
		a.dropLocked(c, id)
	}
}

// Forget ends every subscription of a removed socket.
func (a *Audience) Forget(c *hub.Conn) {
	a.mu.Lock()
	defer a.mu.Unlock()
	for id := range a.byConn[c] {
		a.dropLocked(c, id)
	}
}

// Count returns how many subscriptions c holds.
func (a *Audience) Count(c *hub.Conn) int {
	a.mu.Lock()
	defer a.mu.Unlock()
	return len(a.byConn[c])
}

// Connected subscribes a new socket to its user's direct partners. Failing
// lookups leave it without them (logged): the client can still subscribe.
func (a *Audience) Connected(ctx context.Context, c *hub.Conn) {
	partners, err := a.partners.DirectPartners(ctx, c.UserID)
	if err != nil {
		a.log.WithError(err).WithFields(logrus.Fields{logging.FieldUserID: c.UserID, logging.FieldConnID: c.ID}).
			Warn("direct partners unavailable; no default presence subscriptions")
		return
	}
	if len(partners) == 0 {
		return
	}
	if _, err := a.Subscribe(ctx, c, partners[:min(len(partners), api.MaxDirectPresencePartners)]); err != nil {
		a.log.WithError(err).WithFields(logrus.Fields{logging.FieldUserID: c.UserID, logging.FieldConnID: c.ID}).
			Warn("default presence subscriptions failed")
	}
}

// Deliver hands a presence transition (PresenceState JSON) to the local
// sockets subscribed to its user that may see it, and returns how many got it.
func (a *Audience) Deliver(data json.RawMessage) int {
	var st event.PresenceState
	if err := json.Unmarshal(data, &st); err != nil || st.UserID == "" {
		return 0
	}
	a.mu.Lock()
	conns := make([]*hub.Conn, 0, len(a.byTarget[st.UserID]))
	for c, visible := range a.byTarget[st.UserID] {
		if visible {
			conns = append(conns, c)
		}
	}
	a.mu.Unlock()
	return a.sockets.DeliverConns(conns, string(event.Presence), data, true)
}

// pairs is viewer user → users whose visibility to them is checked again.
type pairs map[string]map[string]struct{}

func (p pairs) add(viewer, target string) {
	if p[viewer] == nil {
		p[viewer] = map[string]struct{}{}
	}
	p[viewer][target] = struct{}{}
}

// PrivacyChanged checks every subscription to userID again.
func (a *Audience) PrivacyChanged(userID string) {
	p := pairs{}
	a.mu.Lock()
	for c := range a.byTarget[userID] {
		p.add(c.UserID, userID)
	}
	a.mu.Unlock()
	a.recheck(p)
}

// MessageFrom checks the hidden subscriptions of recipients to sender again:
// under the "contacts" setting, writing to someone lets them see you.
func (a *Audience) MessageFrom(sender string, recipients []string) {
	a.mu.Lock()
	if a.hidden[sender] == 0 {
		a.mu.Unlock()
		return
	}
	p := pairs{}
	for c, visible := range a.byTarget[sender] {
		if !visible && slices.Contains(recipients, c.UserID) {
			p.add(c.UserID, sender)
		}
	}
	a.mu.Unlock()
	a.recheck(p)
}

// MemberLeft checks again what userID may see and who may see userID: a
// member who left a conversation may have stopped being someone's contact.
func (a *Audience) MemberLeft(userID string) {
	p := pairs{}
	a.mu.Lock()
	for c := range a.byTarget[userID] {
		p.add(c.UserID, userID)
	}
	for _, c := range a.sockets.Conns(userID) {
		for id := range a.byConn[c] {
			p.add(userID, id)
		}
	}
	a.mu.Unlock()
	a.recheck(p)
}

// DirectCreated subscribes the local sockets of a new direct conversation's
// members to the partner, as at connect, and tells them the partner's state.
func (a *Audience) DirectCreated(members []string) {
	if len(members) != 2 {
		return
	}
	for i, u := range members {
		partner := members[1-i]
		for _, c := range a.sockets.Conns(u) {
			a.run(func(ctx context.Context) {
				states, err := a.Subscribe(ctx, c, []string{partner})
				if err != nil {
					if !errors.Is(err, ErrTooMany) {
						a.log.WithError(err).WithField(logging.FieldConnID, c.ID).Warn("presence subscription to a new direct partner failed")
					}
					return
				}
				// The client asked for nothing, so it has no answer to read the
				// state from: a partner it may see gets pushed once.
				if st := states[0]; st.Online || st.LastSeen != nil {
					b, _ := json.Marshal(st)
					a.sockets.DeliverConns([]*hub.Conn{c}, string(event.Presence), b, true)
				}
			})
		}
	}
}

// recheck asks api-rest again, per viewer, whom they may see among the
// users of p, updates the subscriptions and tells the sockets whose view
// changed: a user turned hidden reads as never seen, one turned visible
// gets their current state.
func (a *Audience) recheck(p pairs) {
	for viewer, set := range p {
		targets := make([]string, 0, len(set))
		for id := range set {
			targets = append(targets, id)
		}
		a.run(func(ctx context.Context) {
			for chunk := range slices.Chunk(targets, api.MaxPresenceQueryUserIDs) {
				visible, err := a.vis.PresenceVisible(ctx, viewer, chunk)
				if err != nil {
					a.log.WithError(err).WithField(logging.FieldUserID, viewer).Warn("presence visibility re-check failed")
					return
				}
				a.apply(viewer, chunk, visible)
			}
		})
	}
}

func (a *Audience) apply(viewer string, targets, visible []string) {
	type change struct {
		conns []*hub.Conn
		data  json.RawMessage
	}
	var hide, show []string
	hidden, shown := map[string][]*hub.Conn{}, map[string][]*hub.Conn{}
	a.mu.Lock()
	for _, id := range targets {
		now := slices.Contains(visible, id)
		for c, was := range a.byTarget[id] {
			if c.UserID != viewer || was == now {
				continue
			}
			a.setLocked(c, id, now)
			if now {
				shown[id] = append(shown[id], c)
			} else {
				hidden[id] = append(hidden[id], c)
			}
		}
		if len(shown[id]) > 0 {
			show = append(show, id)
		}
		if len(hidden[id]) > 0 {
			hide = append(hide, id)
		}
	}
	a.mu.Unlock()
	var out []change
	for _, st := range a.states.Query(show) {
		b, _ := json.Marshal(st)
		out = append(out, change{shown[st.UserID], b})
	}
	for _, id := range hide {
		b, _ := json.Marshal(event.PresenceState{UserID: id})
		out = append(out, change{hidden[id], b})
	}
	for _, ch := range out {
		a.sockets.DeliverConns(ch.conns, string(event.Presence), ch.data, true)
	}
}

// run runs f in the background within the bound of concurrent re-checks.
func (a *Audience) run(f func(ctx context.Context)) {
	a.wg.Add(1)
	go func() {
		defer a.wg.Done()
		select {
		case a.sem <- struct{}{}:
		case <-a.base.Done():
			return
		}
		defer func() { <-a.sem }()
		ctx, cancel := context.WithTimeout(a.base, a.timeout)
		defer cancel()
		f(ctx)
	}()
}

// Wait waits for the background re-checks (tests, shutdown).
func (a *Audience) Wait() { a.wg.Wait() }

func uniq(ids []string) []string {
	out := slices.Clone(ids)
	slices.Sort(out)
	return slices.Compact(out)
}
