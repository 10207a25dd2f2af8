package account_test

import (
	"testing"

	"github.com/alexedwards/argon2id"

	"github.com/chat5202ol/mop/services/api-rest/internal/config"
)

// BenchmarkDefaultHash measures one argon2id hash at the production defaults
// (the cost of every login and registration).
func BenchmarkDefaultHash(b *testing.B) {
	p := &argon2id.Params{Memory: config.DefaultHashMemoryKiB, Iterations: config.DefaultHashTime, Parallelism: 1, SaltLength: 16, KeyLength: 32}
	for b.Loop() {
		if _, err := argon2id.CreateHash("correct horse battery staple", p); err != nil {
			b.Fatal(err)
		}
	}
}
