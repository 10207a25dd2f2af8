package service_test

import (
	"bytes"
	"errors"
	"strings"
	"testing"

	"github.com/chat5202ol/mop/pkg/config"
	"github.com/chat5202ol/mop/pkg/service"
)

// testConfig is a service's configuration: the shared settings and one of its own.
type testConfig struct {
	config.Shared
	Extra string `env:"EXTRA"`
}

func (c *testConfig) Validate() error {
	err := c.Shared.Validate()
	if c.Extra == "bad" {
		err = errors.Join(err, errors.New("EXTRA is bad"))
	}
	return err
}

func TestStart(t *testing.T) {
	key := "Zq8vN3xL1mR7tK0pW5yB2cH9sD4fG6jA-uE_oIaXrQnVbMkT"
	for _, tc := range []struct {
		name    string
		args    []string
		env     map[string]string
		wantErr []string // each in the error
		wantOut []string // each in stdout
		running bool     // a logger came back: there is a service to run
	}{
		{"version", []string{"--version"}, nil, nil, []string{"svc dev (commit"}, false},
		{"unknown flag", []string{"--nope"}, nil, []string{"nope"}, nil, false},
		{"every problem at once", nil, map[string]string{"MOP_ENV": "production", "EXTRA": "bad"},
			[]string{"invalid configuration", "JWT_SIGNING_KEY", "EXTRA is bad"}, nil, false},
		{"starts, secrets masked", nil, map[string]string{"HTTP_ADDR": "127.0.0.1:1", "JWT_SIGNING_KEY": key, "EXTRA": "x"},
			nil, []string{`"msg":"starting"`, `"service":"svc"`, `"EXTRA":"x"`}, true},
		{"development key warned about", nil, map[string]string{"HTTP_ADDR": "127.0.0.1:1"}, nil, []string{"public development JWT signing key"}, true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var out bytes.Buffer
			_, log, err := service.Start("svc", tc.args, &out, func() (*testConfig, error) {
				c := &testConfig{}
				return c, config.Load(c, func(k string) string { return tc.env[k] })
			})
			for _, want := range tc.wantErr {
				if err == nil || !strings.Contains(err.Error(), want) {
					t.Errorf("error %v lacks %q", err, want)
				}
			}
			if len(tc.wantErr) == 0 && err != nil {
				t.Fatal(err)
			}
			for _, want := range tc.wantOut {
				if !strings.Contains(out.String(), want) {
					t.Errorf("output lacks %q:\n%s", want, out.String())
				}
			}
			if strings.Contains(out.String(), key) {
				t.Errorf("the signing key is in the output:\n%s", out.String())
			}
			if (log != nil) != tc.running {
				t.Errorf("logger %v, want one: %v", log, tc.running)
			}
		})
	}
}
