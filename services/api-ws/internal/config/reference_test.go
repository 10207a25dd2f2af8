package config_test

import (
	"testing"

	"github.com/chat5202ol/mop/pkg/reference"
	"github.com/chat5202ol/mop/services/api-ws/internal/config"
)

// TestReference holds docs/reference.md to the variables api-ws reads: every
// `env` tag of the config struct (shared settings included) and its default.
func TestReference(t *testing.T) {
	doc := reference.Must(t)
	code := reference.Settings(&config.Config{})
	if len(code) < 15 {
		t.Fatalf("found only %d variables: the scan is broken", len(code))
	}
	reference.Report(t, doc.CheckSettings([]string{reference.Both, reference.APIWS}, code))
}
