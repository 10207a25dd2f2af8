// Package logging builds the one logrus logger a service creates in main and
// passes down. Output is JSON with the field names docs/dev.md fixes (service,
// request_id, user_id, conn_id), so logs of both services can be joined.
package logging

import (
	"fmt"
	"io"

	"github.com/sirupsen/logrus"
)

// Field names shared by both services.
const (
	FieldService   = "service"
	FieldRequestID = "request_id"
	FieldUserID    = "user_id"
	FieldConnID    = "conn_id"
)

// New returns a JSON logger writing to w at level, with the service field set.
func New(w io.Writer, service, level string) (*logrus.Entry, error) {
	lvl, err := logrus.ParseLevel(level)
	if err != nil {
		return nil, fmt.Errorf("log level %q: %w", level, err)
	}
	l := logrus.New()
	l.SetOutput(w)
	l.SetLevel(lvl)
	l.SetFormatter(&logrus.JSONFormatter{
		TimestampFormat: "2006-01-02T15:04:05.000Z07:00",
		FieldMap:        logrus.FieldMap{logrus.FieldKeyTime: "ts", logrus.FieldKeyMsg: "msg"},
	})
	return l.WithField(FieldService, service), nil
}

// Discard is a logger for tests that do not look at logs.
func Discard() *logrus.Entry {
	l := logrus.New()
	l.SetOutput(io.Discard)
	return logrus.NewEntry(l)
}
