package account

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/chat5202ol/mop/pkg/api"
	"github.com/chat5202ol/mop/pkg/event"
	"github.com/chat5202ol/mop/services/api-rest/internal/store"
)

// ErrWrongPassword is a failed re-authentication of a signed-in user (change
// password, delete account). It is not a 401: the caller's token is fine.
var ErrWrongPassword = api.Fail(api.CodeInvalidCredentials, "the password is wrong")

// ReasonRevoked is the revocation reason of a session its owner ended from
// another device.
const ReasonRevoked = "revoked"

// maxUserAgent bounds the stored User-Agent (bytes).
const maxUserAgent = 256

// UserAgent makes a client's User-Agent header storable: valid UTF-8, no
// control characters, at most maxUserAgent bytes.
func UserAgent(header string) string {
	ua := strings.Map(func(r rune) rune {
		if r < 0x20 || r == 0x7f {
			return -1
		}
		return r
	}, strings.ToValidUTF8(header, ""))
	for len(ua) > maxUserAgent {
		_, size := utf8.DecodeLastRuneInString(ua)
		ua = ua[:len(ua)-size]
	}
	return strings.TrimSpace(ua)
}

// SessionInfo is one entry of GET /users/me/sessions.
type SessionInfo struct {
	ID         string    `json:"id"`
	CreatedAt  time.Time `json:"created_at"`
	LastUsedAt time.Time `json:"last_used_at"`
	ExpiresAt  time.Time `json:"expires_at"`
	UserAgent  string    `json:"user_agent"`
	Current    bool      `json:"current"`
}

// Sessions lists the user's live sessions; currentID is marked current.
func (s *Service) Sessions(ctx context.Context, userID, currentID string) ([]SessionInfo, error) {
	list, err := s.st.UserSessions(ctx, userID)
	if err != nil {
		return nil, err
	}
	out := make([]SessionInfo, 0, len(list))
	for _, x := range list {
		out = append(out, SessionInfo{ID: x.ID, CreatedAt: x.CreatedAt, LastUsedAt: x.LastUsedAt, ExpiresAt: x.ExpiresAt,
			UserAgent: x.UserAgent, Current: x.ID == currentID})
	}
	return out, nil
}

// RevokeSession ends one of the user's own sessions; someone else's is
// store.ErrNotFound. The session.revoked event disconnects its sockets.
func (s *Service) RevokeSession(ctx context.Context, userID, sessionID string) error {
	if err := s.st.RevokeUserSession(ctx, userID, sessionID, ReasonRevoked); err != nil {
		return err
	}
	s.cache.forget(sessionID)
	return nil
}

// ChangePassword re-authenticates the user with the current password, stores
// the new one and revokes every other session; the caller's stays.
func (s *Service) ChangePassword(ctx context.Context, userID, sessionID string, in api.PasswordChange) error {
	if err := in.Validate(); err != nil {
		return err
	}
	if err := s.reauthenticate(ctx, userID, in.CurrentPassword); err != nil {
		return err
	}
	hash, err := s.hashPassword(ctx, in.NewPassword)
	if err != nil {
		return err
	}
	revoked, err := s.st.SetPassword(ctx, userID, hash, sessionID)
	if err != nil {
		return err
	}
	for _, id := range revoked {
		s.cache.forget(id)
	}
	return nil
}

// reauthenticate checks a signed-in user's password.
func (s *Service) reauthenticate(ctx context.Context, userID, password string) error {
	hash, err := s.st.PasswordHash(ctx, userID)
	if err != nil {
		return err
	}
	ok, err := s.checkPassword(ctx, password, hash)
	if err != nil {
		return fmt.Errorf("re-authenticate %s: %w", userID, err)
	}
	if !ok {
		return ErrWrongPassword
	}
	return nil
}

// UpdateProfile changes the user's display name and/or avatar.
func (s *Service) UpdateProfile(ctx context.Context, userID string, in api.ProfileUpdate) (event.User, error) {
	if err := in.Validate(); err != nil {
		return event.User{}, err
	}
	var u event.User
	var err error
	if in.DisplayName != nil {
		if u, err = s.st.SetDisplayName(ctx, userID, in.Name()); err != nil {
			return event.User{}, err
		}
	}
	if in.AvatarID != nil {
		u, err = s.st.SetAvatar(ctx, userID, *in.AvatarID)
		if errors.Is(err, store.ErrAttachmentUnavailable) {
			return event.User{}, api.Invalid("avatar_id", "must be one of your image uploads, not sent with a message")
		}
		if err != nil {
			return event.User{}, err
		}
	}
	return u, nil
}

// DeleteAccount re-authenticates the user and deletes the account
// (docs/decisions/account-deletion.md); every session is revoked at once.
func (s *Service) DeleteAccount(ctx context.Context, userID string, in api.AccountDeletion) error {
	if err := in.Validate(); err != nil {
		return err
	}
	if err := s.reauthenticate(ctx, userID, in.Password); err != nil {
		return err
	}
	revoked, err := s.st.DeleteUser(ctx, userID)
	if err != nil {
		return err
	}
	for _, id := range revoked {
		s.cache.forget(id)
	}
	return nil
}
