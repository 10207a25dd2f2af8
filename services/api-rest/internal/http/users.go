package api

import (
	"net/http"
	"strings"

	"github.com/gin-gonic/gin"

	"github.com/chat5202ol/mop/services/api-rest/internal/chat"
	"github.com/chat5202ol/mop/services/api-rest/internal/input"
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
	bad := queryError{}
	q := strings.TrimSpace(c.Query("q"))
	if q == "" {
		bad["q"] = "is required"
	} else if problem := input.Text(q, input.MaxQuery); problem != "" {
		bad["q"] = problem
	}
	limit := intParam(c, bad, "limit", chat.DefaultSearchLimit, 1, chat.MaxSearchLimit)
	if len(bad) > 0 {
		return bad
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
	var in chat.Privacy
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
