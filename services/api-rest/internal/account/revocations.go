package account

import (
	"encoding/json"
	"fmt"

	"github.com/nats-io/nats.go"

	"github.com/chat5202ol/mop/pkg/event"
)

// WatchRevocations forgets at once, from the session cache, every session
// revoked on another instance (its session.revoked event on core NATS), so
// that a revoked token is refused everywhere long before SESSION_CACHE_TTL.
// The subscription ends when nc is drained or closed.
func (s *Service) WatchRevocations(nc *nats.Conn, subj event.Subjects) error {
	if _, err := nc.Subscribe(subj.Event(event.SessionRevoked), func(m *nats.Msg) {
		env, err := event.Decode(m.Data)
		if err != nil {
			return // not an event: nothing to forget
		}
		var r event.SessionRevocation
		if json.Unmarshal(env.Data, &r) == nil {
			s.Forget(r.SessionID)
		}
	}); err != nil {
		return fmt.Errorf("subscribe to revocations: %w", err)
	}
	return nil
}
