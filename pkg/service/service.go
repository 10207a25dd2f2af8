// Package service is the skeleton both mop binaries run in, so that they
// start, report and stop alike: signals and --version (Main, Start), the
// liveness and readiness probes (Probes), the HTTP and pprof listeners and
// the ordered graceful shutdown (Process), and the start-up retry with
// jittered backoff (Retry). A binary's main.go only wires its own parts
// into it.
package service

import (
	"context"
	"flag"
	"fmt"
	"io"
	"os"
	"os/signal"
	"syscall"

	"github.com/sirupsen/logrus"

	"github.com/chat5202ol/mop/pkg/config"
	"github.com/chat5202ol/mop/pkg/logging"
	"github.com/chat5202ol/mop/pkg/version"
)

// RunFunc is a binary's run: it starts the service and blocks until ctx ends
// (SIGINT or SIGTERM) or a part fails, then shuts down. args exclude the
// program name.
type RunFunc func(ctx context.Context, args []string, getenv func(string) string, stdout io.Writer) error

// Main runs run with the process's arguments, environment and stdout and a
// context that ends on SIGINT or SIGTERM; an error is printed once, to
// stderr, and exits 1.
func Main(name string, run RunFunc) {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	err := run(ctx, os.Args[1:], os.Getenv, os.Stdout)
	stop()
	if err != nil {
		fmt.Fprintln(os.Stderr, name+":", err)
		os.Exit(1)
	}
}

// Config is a service's configuration: its own settings around the shared ones.
type Config interface {
	Validate() error
	Base() *config.Shared
}

// Start does what every run does first: parse args (--version prints the
// build identity; log is then nil and there is nothing to run), load and
// validate the configuration (every problem reported together), make the
// logger and log the start with the secrets masked.
func Start[C Config](name string, args []string, stdout io.Writer, load func() (C, error)) (cfg C, log *logrus.Entry, err error) {
	flags := flag.NewFlagSet(name, flag.ContinueOnError)
	flags.SetOutput(stdout)
	showVersion := flags.Bool("version", false, "print the version and exit")
	if err := flags.Parse(args); err != nil {
		return cfg, nil, err
	}
	if *showVersion {
		_, err := fmt.Fprintln(stdout, version.Get(name).String())
		return cfg, nil, err
	}
	if cfg, err = load(); err != nil {
		return cfg, nil, err
	}
	if err := cfg.Validate(); err != nil {
		return cfg, nil, fmt.Errorf("invalid configuration:\n%w", err)
	}
	if log, err = logging.New(stdout, name, cfg.Base().LogLevel); err != nil {
		return cfg, nil, err
	}
	log.WithField("config", config.Masked(cfg)).WithField("version", version.Get(name)).Info("starting")
	if cfg.Base().IsDevKey() {
		log.Warn("using the public development JWT signing key: set JWT_SIGNING_KEY outside development")
	}
	return cfg, log, nil
}
