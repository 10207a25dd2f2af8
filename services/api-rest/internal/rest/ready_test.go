package rest_test

import (
	"context"
	"errors"
	"strings"
	"testing"

	"github.com/chat5202ol/mop/services/api-rest/internal/rest"
	"github.com/chat5202ol/mop/services/api-rest/internal/store/storetest"
)

// mop_ready follows the readiness checks at each scrape, without /readyz
// being polled: the alert rules (MopNotReady, MopReadinessFlapping) read it.
func TestReadyMetric(t *testing.T) {
	var fail error
	e := newEnv(t, storetest.Backends(t)[0], func(o *rest.Options) {
		o.Checks["nats"] = func(context.Context) error { return fail }
	})
	for _, tc := range []struct {
		name string
		fail error
		want string
	}{
		{"all checks pass", nil, "\nmop_ready 1\n"},
		{"one check fails", errors.New("down"), "\nmop_ready 0\n"},
		{"recovered", nil, "\nmop_ready 1\n"},
	} {
		fail = tc.fail
		if body := e.do(req{Method: "GET", Path: "/metrics"}).Body.String(); !strings.Contains(body, tc.want) {
			t.Errorf("%s: metrics lack %q", tc.name, strings.TrimSpace(tc.want))
		}
	}
}
