package config_test

import (
	"strings"
	"testing"

	"github.com/chat5202ol/mop/pkg/config"
)

// NATS_URL lists every node of a cluster, with credentials; a bad entry is
// refused with its position and without the password in the message.
func TestNATSURLs(t *testing.T) {
	for _, tc := range []struct {
		url  string
		want string // "" valid, else a substring of the error
	}{
		{"nats://127.0.0.1:4222", ""},
		{"nats://a:4222,nats://b:4222,nats://c:4222", ""},
		{"tls://mop:s3cret@nats-1.internal:4222,tls://mop:s3cret@nats-2.internal:4222", ""},
		{"nats://[::1]:4222,nats://[::1]:4223", ""},
		{"wss://nats.example.com", ""},
		{"nats://a:4222,", "server 2 is not a URL"},
		{"127.0.0.1:4222", "server 1 is not a URL"},
		{"nats://a:4222,http://mop:s3cret@b:4222", `server 2: scheme "http"`},
		{"tls://mop:s3cret@a:42x2", "server 1"},
	} {
		s := config.Shared{Mode: config.Development, HTTPAddr: "127.0.0.1:1", NATSURL: tc.url, NATSPrefix: "mop",
			NATSReplicas: 1, JWTIssuer: "mop", JWTAudience: "mop", AccessTokenTTL: 15 * 60e9, LogLevel: "info", ShutdownTimeout: 1e9}
		err := s.Validate()
		switch {
		case tc.want == "" && err != nil:
			t.Errorf("%q: %v", tc.url, err)
		case tc.want != "" && (err == nil || !strings.Contains(err.Error(), tc.want)):
			t.Errorf("%q: error %v, want %q", tc.url, err, tc.want)
		case err != nil && strings.Contains(err.Error(), "s3cret"):
			t.Errorf("%q: the error shows the password: %v", tc.url, err)
		}
	}
}
