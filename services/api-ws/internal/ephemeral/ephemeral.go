// Package ephemeral publishes the events api-ws itself originates (typing,
// presence) on core NATS, where every api-ws instance — this one included —
// picks them up and delivers them like any other event. They are not stored:
// a typing indicator or presence change nobody sees in time has no value.
package ephemeral

import (
	"encoding/json"
	"fmt"
	"time"

	"github.com/nats-io/nats.go"

	"github.com/chat5202ol/mop/pkg/event"
)

// Publisher publishes ephemeral envelopes.
type Publisher struct {
	nc   *nats.Conn
	subj event.Subjects
}

// New returns a publisher on nc under subj.
func New(nc *nats.Conn, subj event.Subjects) *Publisher { return &Publisher{nc: nc, subj: subj} }

// Publish sends one envelope of type t to recipients. Typing without
// recipients is not sent; presence never has any (each instance delivers it
// to its sockets subscribed to the user).
func (p *Publisher) Publish(t event.Type, recipients []string, conversationID, actorID string, data any) error {
	if len(recipients) == 0 && t != event.Presence {
		return nil
	}
	env, err := event.New(t, recipients, conversationID, actorID, data, time.Now())
	if err != nil {
		return err
	}
	b, err := json.Marshal(env)
	if err != nil {
		return fmt.Errorf("marshal %s envelope: %w", t, err)
	}
	if err := p.nc.Publish(p.subj.Event(t), b); err != nil {
		return fmt.Errorf("publish %s: %w", p.subj.Event(t), err)
	}
	return nil
}
