package event

import (
	"fmt"
	"strings"
	"time"

	"github.com/nats-io/nats.go/jetstream"
)

// DefaultPrefix is the subject prefix when NATS_PREFIX is not set.
const DefaultPrefix = "mop"

// Subjects spells every NATS name under one prefix, so several deployments (or
// test runs) can share a NATS cluster without seeing each other's traffic.
type Subjects struct {
	prefix string
}

// NewSubjects validates prefix (a single NATS token: letters, digits, '-' or '_').
func NewSubjects(prefix string) (Subjects, error) {
	if prefix == "" {
		return Subjects{}, fmt.Errorf("nats prefix is empty")
	}
	for _, r := range prefix {
		if !(r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || r >= '0' && r <= '9' || r == '-' || r == '_') {
			return Subjects{}, fmt.Errorf("nats prefix %q: only letters, digits, '-' and '_' are allowed", prefix)
		}
	}
	return Subjects{prefix: prefix}, nil
}

// MustSubjects is NewSubjects for constants and tests.
func MustSubjects(prefix string) Subjects {
	s, err := NewSubjects(prefix)
	if err != nil {
		panic(err)
	}
	return s
}

// Prefix returns the configured prefix.
func (s Subjects) Prefix() string { return s.prefix }

// Event is the subject of one event type: <prefix>.events.<type>.
func (s Subjects) Event(t Type) string { return s.prefix + ".events." + string(t) }

// AllEvents matches every event subject (durable and ephemeral).
func (s Subjects) AllEvents() string { return s.prefix + ".events.>" }

// Ephemeral lists the core-NATS subjects api-ws subscribes to (typing, presence).
func (s Subjects) Ephemeral() []string {
	return []string{s.Event(Typing), s.Event(Presence)}
}

// Durable lists the subjects captured by the events stream.
func (s Subjects) Durable() []string {
	out := make([]string, len(DurableTypes))
	for i, t := range DurableTypes {
		out[i] = s.Event(t)
	}
	return out
}

// TypeOf returns the event type of a subject under this prefix, or "" if the
// subject is not an event subject of this deployment.
func (s Subjects) TypeOf(subject string) Type {
	p := s.prefix + ".events."
	if !strings.HasPrefix(subject, p) {
		return ""
	}
	return Type(subject[len(p):])
}

// RPC is the subject of a request/reply call: <prefix>.rpc.<name>.
func (s Subjects) RPC(name RPCName) string { return s.prefix + ".rpc." + string(name) }

// RPCQueue is the queue group api-rest responders join, so that each request is
// answered by exactly one of several api-rest instances.
func (s Subjects) RPCQueue() string { return s.prefix + "-api-rest" }

// Stream is the JetStream stream that carries durable events.
func (s Subjects) Stream() string {
	return strings.ToUpper(strings.ReplaceAll(s.prefix, "-", "_")) + "_EVENTS"
}

// Stream tuning. The duplicate window must exceed the longest time an outbox row
// can wait for a retry after a crash, or a re-published event is delivered twice.
const (
	StreamMaxAge          = 7 * 24 * time.Hour
	StreamDuplicateWindow = 30 * time.Minute
	StreamMaxMsgSize      = 1 << 20
	RevokedSessionsTTL    = 2 * time.Hour // longer than any access token lives
	PresenceTTL           = 45 * time.Second
	PresenceHeartbeat     = 15 * time.Second
	DefaultRPCTimeout     = 5 * time.Second
	DefaultAccessTokenTTL = 15 * time.Minute
)

// StreamConfig is the configuration of the events stream; Replicas is 1 here and
// raised by the operator on a NATS cluster (see docs/deploy.md).
func (s Subjects) StreamConfig(replicas int) jetstream.StreamConfig {
	if replicas < 1 {
		replicas = 1
	}
	return jetstream.StreamConfig{
		Name:        s.Stream(),
		Description: "mop durable events (outbox relay → api-ws fan-out)",
		Subjects:    s.Durable(),
		Retention:   jetstream.LimitsPolicy,
		Storage:     jetstream.FileStorage,
		MaxAge:      StreamMaxAge,
		MaxMsgSize:  StreamMaxMsgSize,
		Duplicates:  StreamDuplicateWindow,
		Replicas:    replicas,
		Discard:     jetstream.DiscardOld,
	}
}

// RevokedSessionsBucket is the KV bucket of revoked session ids (key = sid). The
// outbox relay of api-rest writes it before publishing session.revoked, so an
// api-ws instance refuses a reconnect with a revoked session even if it started
// after the event. Entries expire after RevokedSessionsTTL (tokens are dead by then).
func (s Subjects) RevokedSessionsBucket() string { return s.prefix + "_revoked_sessions" }

// RevokedSessionsConfig is that bucket's configuration.
func (s Subjects) RevokedSessionsConfig(replicas int) jetstream.KeyValueConfig {
	if replicas < 1 {
		replicas = 1
	}
	return jetstream.KeyValueConfig{
		Bucket:      s.RevokedSessionsBucket(),
		Description: "revoked session ids",
		TTL:         RevokedSessionsTTL,
		Storage:     jetstream.FileStorage,
		Replicas:    replicas,
	}
}

// PresenceBucket is the KV bucket api-ws instances keep presence in. Its layout
// is private to api-ws; only the name is part of the contract.
func (s Subjects) PresenceBucket() string { return s.prefix + "_presence" }
