//go:build !linux

package engineio

import "errors"

// poller is Linux-only; elsewhere every WebSocket connection has a reader
// goroutine.
type poller struct{}

func newPoller(int) (*poller, error)      { return nil, errors.New("engineio: no poller on this system") }
func (p *poller) add(*wsConn) error       { return errNoFD }
func (p *poller) remove(*wsConn)          {}
func (p *poller) waitWrite(*wsConn) error { return errNoFD }
func (p *poller) close()                  {}

var errNoFD = errors.New("engineio: connection has no descriptor")
