package config_test

import (
	"testing"

	"github.com/chat5202ol/mop/pkg/reference"
	"github.com/chat5202ol/mop/services/api-rest/internal/config"
)

// TestReference holds docs/reference.md to the variables api-rest reads: every
// `env` tag of the config struct (shared settings included) and its default.
func TestReference(t *testing.T) { reference.CheckService(t, reference.APIRest, &config.Config{}) }
