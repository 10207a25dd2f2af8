package rest

import (
	"fmt"
	"net/http"
	"strconv"

	"github.com/gin-gonic/gin"

	"github.com/chat5202ol/mop/pkg/api"
	"github.com/chat5202ol/mop/services/api-rest/internal/chat"
)

func (s *server) createConversation(c *gin.Context) error {
	var in api.NewConversation
	if err := bind(c, &in); err != nil {
		return err
	}
	conv, created, err := s.opts.Chat.CreateConversation(c.Request.Context(), userID(c), in)
	if err != nil {
		return err
	}
	c.JSON(createdOrOK(created), conv)
	return nil
}

func (s *server) conversations(c *gin.Context) error {
	bad := api.Problems{}
	limit := intParam(c, bad, "limit", api.DefaultConversationLimit, 1, api.MaxConversationLimit)
	before, given := c.GetQuery("before")
	if given {
		if _, _, err := chat.ParseCursor(before); err != nil {
			bad["before"] = err.Error()
		}
	}
	if err := badQuery(bad); err != nil {
		return err
	}
	list, err := s.opts.Chat.Conversations(c.Request.Context(), userID(c), before, int(limit))
	if err != nil {
		return err
	}
	c.JSON(http.StatusOK, list)
	return nil
}

func (s *server) conversation(c *gin.Context) error {
	conv, err := s.opts.Chat.Conversation(c.Request.Context(), userID(c), c.Param("id"))
	if err != nil {
		return err
	}
	c.JSON(http.StatusOK, conv)
	return nil
}

func (s *server) addMembers(c *gin.Context) error {
	var in api.NewMembers
	if err := bind(c, &in); err != nil {
		return err
	}
	ms, err := s.opts.Chat.AddMembers(c.Request.Context(), userID(c), c.Param("id"), in)
	if err != nil {
		return err
	}
	c.JSON(http.StatusOK, gin.H{"members": ms})
	return nil
}

func (s *server) removeMember(c *gin.Context) error {
	if err := s.opts.Chat.RemoveMember(c.Request.Context(), userID(c), c.Param("id"), c.Param("user_id")); err != nil {
		return err
	}
	c.Status(http.StatusNoContent)
	return nil
}

func (s *server) sendMessage(c *gin.Context) error {
	var in api.NewMessage
	if err := bind(c, &in); err != nil {
		return err
	}
	m, created, err := s.opts.Chat.Send(c.Request.Context(), userID(c), c.Param("id"), in)
	if err != nil {
		return err
	}
	c.JSON(createdOrOK(created), m)
	return nil
}

func (s *server) history(c *gin.Context) error {
	bad := api.Problems{}
	cur := chat.Cursor{Limit: int(intParam(c, bad, "limit", api.DefaultHistoryLimit, 1, api.MaxHistoryLimit))}
	if _, ok := c.GetQuery("after_seq"); ok {
		v := intParam(c, bad, "after_seq", 0, 0, api.MaxSeq)
		cur.AfterSeq = &v
	}
	if _, ok := c.GetQuery("before_seq"); ok {
		v := intParam(c, bad, "before_seq", 0, 1, api.MaxSeq)
		cur.BeforeSeq = &v
	}
	if cur.AfterSeq != nil && cur.BeforeSeq != nil {
		bad["before_seq"] = "cannot be combined with after_seq"
	}
	if err := badQuery(bad); err != nil {
		return err
	}
	ms, more, err := s.opts.Chat.History(c.Request.Context(), userID(c), c.Param("id"), cur)
	if err != nil {
		return err
	}
	c.JSON(http.StatusOK, gin.H{"messages": ms, "has_more": more})
	return nil
}

func (s *server) editMessage(c *gin.Context) error {
	var in api.MessageEdit
	if err := bind(c, &in); err != nil {
		return err
	}
	m, err := s.opts.Chat.EditMessage(c.Request.Context(), userID(c), c.Param("id"), c.Param("message_id"), in)
	if err != nil {
		return err
	}
	c.JSON(http.StatusOK, m)
	return nil
}

func (s *server) deleteMessage(c *gin.Context) error {
	if err := s.opts.Chat.DeleteMessage(c.Request.Context(), userID(c), c.Param("id"), c.Param("message_id")); err != nil {
		return err
	}
	c.Status(http.StatusNoContent)
	return nil
}

func (s *server) markRead(c *gin.Context) error {
	var in api.Read
	if err := bind(c, &in); err != nil {
		return err
	}
	r, err := s.opts.Chat.MarkRead(c.Request.Context(), userID(c), c.Param("id"), in)
	if err != nil {
		return err
	}
	c.JSON(http.StatusOK, r)
	return nil
}

// createdOrOK is 201 for a new resource and 200 when an idempotent repeat (or
// an existing direct conversation) returns the stored one.
func createdOrOK(created bool) int {
	if created {
		return http.StatusCreated
	}
	return http.StatusOK
}

// intParam parses an optional integer query parameter within [lo, hi]; a
// problem is recorded in bad and def returned.
func intParam(c *gin.Context, bad api.Problems, name string, def, lo, hi int64) int64 {
	raw, ok := c.GetQuery(name)
	if !ok {
		return def
	}
	v, err := strconv.ParseInt(raw, 10, 64)
	if err != nil || v < lo || v > hi {
		bad[name] = fmt.Sprintf("must be an integer from %d to %d", lo, hi)
		return def
	}
	return v
}
