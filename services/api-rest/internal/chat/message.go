package chat

import (
	"context"
	"errors"
	"fmt"

	"github.com/chat5202ol/mop/pkg/api"
	"github.com/chat5202ol/mop/pkg/event"
	"github.com/chat5202ol/mop/services/api-rest/internal/store"
)

// Send persists a message of userID. With a client_msg_id the sender used
// before in the conversation, the stored message comes back with created=false.
func (s *Service) Send(ctx context.Context, userID, conversationID string, in api.NewMessage) (event.Message, bool, error) {
	if err := findable(conversationID); err != nil {
		return event.Message{}, false, err
	}
	if err := in.Validate(); err != nil {
		return event.Message{}, false, err
	}
	m, created, err := s.st.CreateMessage(ctx, store.NewMessage{
		ConversationID: conversationID, SenderID: userID, Body: in.Body, ClientMsgID: in.ClientMsgID,
		AttachmentIDs: in.Attachments(),
	})
	if errors.Is(err, store.ErrAttachmentUnavailable) {
		return event.Message{}, false, api.Invalid("attachment_ids", "must be your own uploads, not yet sent nor used as an avatar")
	}
	if err != nil {
		return event.Message{}, false, fmt.Errorf("send to %s: %w", conversationID, err)
	}
	return m, created, nil
}

// EditMessage replaces the body of userID's own message.
func (s *Service) EditMessage(ctx context.Context, userID, conversationID, messageID string, in api.MessageEdit) (event.Message, error) {
	if err := findable(conversationID, messageID); err != nil {
		return event.Message{}, err
	}
	if err := in.Validate(); err != nil {
		return event.Message{}, err
	}
	m, err := s.st.EditMessage(ctx, userID, conversationID, messageID, in.Body)
	if err != nil {
		return event.Message{}, fmt.Errorf("edit message %s: %w", messageID, err)
	}
	return m, nil
}

// DeleteMessage turns userID's own message into a tombstone.
func (s *Service) DeleteMessage(ctx context.Context, userID, conversationID, messageID string) error {
	if err := findable(conversationID, messageID); err != nil {
		return err
	}
	if _, err := s.st.DeleteMessage(ctx, userID, conversationID, messageID); err != nil {
		return fmt.Errorf("delete message %s: %w", messageID, err)
	}
	return nil
}

// Cursor selects a history page. AfterSeq (set, even to 0) pages forward from
// it; BeforeSeq pages backwards; neither returns the latest messages. The caller
// validated the values (they come from the URL).
type Cursor struct {
	AfterSeq  *int64
	BeforeSeq *int64
	Limit     int
}

// History returns one page in ascending seq and whether there is more in the
// paging direction (newer for AfterSeq, older otherwise).
func (s *Service) History(ctx context.Context, userID, conversationID string, c Cursor) ([]event.Message, bool, error) {
	if err := findable(conversationID); err != nil {
		return nil, false, err
	}
	// One extra row tells whether there is more.
	p := store.Page{Limit: c.Limit + 1}
	forward := c.AfterSeq != nil
	switch {
	case forward && *c.AfterSeq > 0:
		p.AfterSeq = *c.AfterSeq
	case forward:
		// after_seq=0 means "from the first message". The store reads 0 as "no
		// cursor" (the latest page), but seq is gap-free from 1, so the first
		// Limit+1 messages are exactly those below Limit+2.
		p.BeforeSeq = int64(c.Limit) + 2
	case c.BeforeSeq != nil:
		p.BeforeSeq = *c.BeforeSeq
	}
	ms, err := s.st.Messages(ctx, userID, conversationID, p)
	if err != nil {
		return nil, false, fmt.Errorf("history of %s: %w", conversationID, err)
	}
	more := len(ms) > c.Limit
	switch {
	case more && forward:
		ms = ms[:c.Limit]
	case more:
		ms = ms[len(ms)-c.Limit:]
	}
	if ms == nil {
		ms = []event.Message{}
	}
	return ms, more, nil
}

// MarkRead moves userID's read marker forward (never backwards, clamped to the
// last seq) and returns the stored marker.
func (s *Service) MarkRead(ctx context.Context, userID, conversationID string, in api.Read) (event.ReadMarker, error) {
	if err := findable(conversationID); err != nil {
		return event.ReadMarker{}, err
	}
	if err := in.Validate(); err != nil {
		return event.ReadMarker{}, err
	}
	r, err := s.st.MarkRead(ctx, userID, conversationID, *in.Seq)
	if err != nil {
		return event.ReadMarker{}, fmt.Errorf("mark read in %s: %w", conversationID, err)
	}
	return r, nil
}
