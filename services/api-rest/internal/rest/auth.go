package rest

import (
	"errors"
	"net/http"
	"time"

	"github.com/gin-gonic/gin"

	"github.com/chat5202ol/mop/pkg/api"
	"github.com/chat5202ol/mop/services/api-rest/internal/account"
)

// Rate-limit scopes (metric label values).
const (
	scopeLoginIP   = "login_ip"
	scopeLoginUser = "login_username"
	scopeRegister  = "register_ip"
)

// limited counts a refusal and returns the error that answers it.
func (s *server) limited(scope string, wait time.Duration) error {
	s.metrics.rateLimited.WithLabelValues(scope).Inc()
	return &rateLimited{scope: scope, after: wait}
}

func (s *server) registerUser(c *gin.Context) error {
	if wait := s.register.Allow(c.ClientIP()); wait > 0 {
		return s.limited(scopeRegister, wait)
	}
	var in api.Register
	if err := bind(c, &in); err != nil {
		return err
	}
	res, err := s.opts.Accounts.Register(c.Request.Context(), in, c.Request.UserAgent())
	if err != nil {
		return err
	}
	c.JSON(http.StatusCreated, res)
	return nil
}

// login is limited per client IP (every attempt) and per username (failed
// attempts only: the owner's successful logins never spend that budget, and a
// guesser from many addresses still gets LOGIN_RATE_PER_MINUTE tries per name).
func (s *server) login(c *gin.Context) error {
	if wait := s.loginIP.Allow(c.ClientIP()); wait > 0 {
		return s.limited(scopeLoginIP, wait)
	}
	var in api.Login
	if err := bind(c, &in); err != nil {
		return err
	}
	username := api.NormalizeUsername(in.Username)
	var res account.Result
	err := s.passwordCheck(username, account.ErrInvalidCredentials, func() (err error) {
		res, err = s.opts.Accounts.Login(c.Request.Context(), in, c.Request.UserAgent())
		return err
	})
	if err != nil {
		return err
	}
	c.JSON(http.StatusOK, res)
	return nil
}

// passwordCheck runs check, which verifies a password of username, under the
// per-username budget; only a check failing with wrong spends it. The token is
// held before the password is checked: concurrent guesses from many addresses
// each need one, so at most the budget runs at once.
func (s *server) passwordCheck(username string, wrong error, check func() error) error {
	wait, done := s.loginID.Begin(username)
	if wait > 0 {
		return s.limited(scopeLoginUser, wait)
	}
	err := check()
	failed := errors.Is(err, wrong)
	done(failed)
	if failed {
		s.metrics.loginFailures.Inc()
	}
	return err
}

func (s *server) refresh(c *gin.Context) error {
	var in api.Refresh
	if err := bind(c, &in); err != nil {
		return err
	}
	if err := in.Validate(); err != nil {
		return err
	}
	res, err := s.opts.Accounts.Refresh(c.Request.Context(), in.RefreshToken)
	if err != nil {
		return err
	}
	c.JSON(http.StatusOK, res)
	return nil
}

func (s *server) logout(c *gin.Context) error {
	if err := s.opts.Accounts.Logout(c.Request.Context(), c.GetString(keySessionID)); err != nil {
		return err
	}
	c.Status(http.StatusNoContent)
	return nil
}
