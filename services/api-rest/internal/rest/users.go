package rest

import (
	"context"
	"net/http"
	"strings"

	"github.com/gin-gonic/gin"

	"github.com/chat5202ol/mop/pkg/api"
	"github.com/chat5202ol/mop/services/api-rest/internal/account"
)

func (s *server) me(c *gin.Context) error {
	u, err := s.opts.Chat.User(c.Request.Context(), userID(c))
	if err != nil {
		return err
	}
	c.JSON(http.StatusOK, u)
	return nil
}

func (s *server) user(c *gin.Context) error {
	u, err := s.opts.Chat.User(c.Request.Context(), c.Param("id"))
	if err != nil {
		return err
	}
	c.JSON(http.StatusOK, u)
	return nil
}

func (s *server) searchUsers(c *gin.Context) error {
	bad := api.Problems{}
	q := strings.TrimSpace(c.Query("q"))
	if q == "" {
		bad["q"] = "is required"
	} else if problem := api.Text(q, api.MaxQuery); problem != "" {
		bad["q"] = problem
	}
	limit := intParam(c, bad, "limit", api.DefaultSearchLimit, 1, api.MaxSearchLimit)
	if err := badQuery(bad); err != nil {
		return err
	}
	users, err := s.opts.Chat.SearchUsers(c.Request.Context(), q, int(limit))
	if err != nil {
		return err
	}
	c.JSON(http.StatusOK, gin.H{"users": users})
	return nil
}

func (s *server) privacy(c *gin.Context) error {
	p, err := s.opts.Chat.Privacy(c.Request.Context(), userID(c))
	if err != nil {
		return err
	}
	c.JSON(http.StatusOK, p)
	return nil
}

func (s *server) setPrivacy(c *gin.Context) error {
	var in api.Privacy
	if err := bind(c, &in); err != nil {
		return err
	}
	p, err := s.opts.Chat.SetPrivacy(c.Request.Context(), userID(c), in)
	if err != nil {
		return err
	}
	c.JSON(http.StatusOK, p)
	return nil
}

func (s *server) sessions(c *gin.Context) error {
	list, err := s.opts.Accounts.Sessions(c.Request.Context(), userID(c), c.GetString(keySessionID))
	if err != nil {
		return err
	}
	c.JSON(http.StatusOK, gin.H{"sessions": list})
	return nil
}

func (s *server) revokeSession(c *gin.Context) error {
	if err := s.opts.Accounts.RevokeSession(c.Request.Context(), userID(c), c.Param("session_id")); err != nil {
		return err
	}
	c.Status(http.StatusNoContent)
	return nil
}

// changePassword spends the per-account login budget on a wrong current
// password, as a failed login would: a stolen access token must not become an
// unlimited password oracle.
func (s *server) changePassword(c *gin.Context) error {
	var in api.PasswordChange
	if err := bind(c, &in); err != nil {
		return err
	}
	return s.reauthenticated(c, func(ctx context.Context) error {
		return s.opts.Accounts.ChangePassword(ctx, userID(c), c.GetString(keySessionID), in)
	}, http.StatusNoContent)
}

// reauthenticated runs fn, which checks the caller's password, under the
// per-account login limiter, and answers status when it succeeds.
func (s *server) reauthenticated(c *gin.Context, fn func(ctx context.Context) error, status int) error {
	ctx := c.Request.Context()
	u, err := s.opts.Chat.User(ctx, userID(c))
	if err != nil {
		return err
	}
	if err := s.passwordCheck(u.Username, account.ErrWrongPassword, func() error { return fn(ctx) }); err != nil {
		return err
	}
	c.Status(status)
	return nil
}

func (s *server) updateProfile(c *gin.Context) error {
	var in api.ProfileUpdate
	if err := bind(c, &in); err != nil {
		return err
	}
	u, err := s.opts.Accounts.UpdateProfile(c.Request.Context(), userID(c), in)
	if err != nil {
		return err
	}
	c.JSON(http.StatusOK, u)
	return nil
}

func (s *server) deleteAccount(c *gin.Context) error {
	var in api.AccountDeletion
	if err := bind(c, &in); err != nil {
		return err
	}
	return s.reauthenticated(c, func(ctx context.Context) error {
		return s.opts.Accounts.DeleteAccount(ctx, userID(c), in)
	}, http.StatusNoContent)
}
