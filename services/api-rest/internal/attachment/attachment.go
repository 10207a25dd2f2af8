// Package attachment is the life of an uploaded file: checking the content
// (size and type from the bytes, never from what the client declares),
// storing it under a server-made key with a thumbnail for images, handing out
// short-lived signed links to those who may read it, checking those links when
// /static/ is asked, and removing the bytes of deleted and never-used uploads
// (docs/decisions/attachments.md).
package attachment

import (
	"bytes"
	"context"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/base64"
	"errors"
	"fmt"
	"io"
	"net/url"
	"strconv"
	"time"

	"github.com/sirupsen/logrus"

	"github.com/chat5202ol/mop/pkg/api"
	"github.com/chat5202ol/mop/pkg/event"
	"github.com/chat5202ol/mop/services/api-rest/internal/storage"
	"github.com/chat5202ol/mop/services/api-rest/internal/store"
)

// Defaults of the ATTACHMENT_* settings.
const (
	DefaultMaxBytes  = 10 << 20
	DefaultURLTTL    = 10 * time.Minute
	DefaultUnusedTTL = 24 * time.Hour
	sweepEvery       = 10 * time.Minute
	sweepBatch       = 500
	// thumbnailers bounds concurrent image decodes (each may hold ~100 MB).
	thumbnailers = 2
)

// Variants of a stored attachment in /static/ URLs.
const (
	VariantFile  = "file"
	VariantThumb = "thumb"
)

// Errors of uploads and links, coded for clients (pkg/api).
var (
	ErrBadImage    = api.Invalid("file", "is not a readable image")
	ErrEmpty       = api.Invalid("file", "is empty")
	ErrLinkInvalid = api.Fail(api.CodeForbidden, "the link is invalid or has expired")
)

// TooLarge is payload_too_large for a file over max bytes.
func TooLarge(max int64) *api.Error {
	e := api.Failf(api.CodePayloadTooLarge, "the file is larger than allowed (at most %d bytes)", max)
	e.Details = map[string]any{"max_bytes": max}
	return e
}

// Unsupported is unsupported_media_type for content of a type not on the
// list, naming what was found.
func Unsupported(detected string) *api.Error {
	e := api.Fail(api.CodeUnsupportedMedia, "this type of file is not accepted")
	e.Details = map[string]any{"content_type": detected, "allowed": Allowed()}
	return e
}

// Options configures a Service.
type Options struct {
	Store store.Store
	Blobs storage.Blobs
	// MaxBytes is the largest accepted file.
	MaxBytes int64
	// URLTTL is how long a link lives at least; links are made per window of
	// URLTTL (so the same link comes back, and browsers cache it) and live
	// up to twice that.
	URLTTL time.Duration
	// UnusedTTL is how long an upload may wait to be sent or used as an avatar.
	UnusedTTL time.Duration
	// Keys sign links: the first signs, all verify (the JWT keys' rotation).
	Keys [][]byte
	Log  *logrus.Entry
	Now  func() time.Time
}

// Service handles attachments.
type Service struct {
	opts  Options
	keys  [][]byte
	thumb chan struct{}
}

// New returns a Service.
func New(opts Options) (*Service, error) {
	if opts.Store == nil || opts.Blobs == nil || len(opts.Keys) == 0 || opts.Log == nil {
		return nil, errors.New("attachment: store, blobs, keys and log are required")
	}
	if opts.MaxBytes <= 0 {
		opts.MaxBytes = DefaultMaxBytes
	}
	if opts.URLTTL <= 0 {
		opts.URLTTL = DefaultURLTTL
	}
	if opts.UnusedTTL <= 0 {
		opts.UnusedTTL = DefaultUnusedTTL
	}
	if opts.Now == nil {
		opts.Now = time.Now
	}
	s := &Service{opts: opts, thumb: make(chan struct{}, thumbnailers)}
	for _, k := range opts.Keys {
		// A key of its own per purpose: a link signature is never a valid
		// token signature, nor the reverse.
		m := hmac.New(sha256.New, k)
		m.Write([]byte("mop attachment links v1"))
		s.keys = append(s.keys, m.Sum(nil))
	}
	return s, nil
}

// MaxBytes is the largest accepted file.
func (s *Service) MaxBytes() int64 { return s.opts.MaxBytes }

// Upload stores a file of userID named name (a display name only) and returns
// its description. The type comes from the content; images get their
// dimensions and a thumbnail.
func (s *Service) Upload(ctx context.Context, userID, name string, r io.Reader) (event.Attachment, error) {
	head := make([]byte, SniffBytes)
	n, err := io.ReadFull(r, head)
	if err != nil && !errors.Is(err, io.ErrUnexpectedEOF) && !errors.Is(err, io.EOF) {
		return event.Attachment{}, fmt.Errorf("upload: %w", err)
	}
	head = head[:n]
	if n == 0 {
		return event.Attachment{}, ErrEmpty
	}
	contentType, ok := Sniff(head)
	if !ok {
		return event.Attachment{}, Unsupported(contentType)
	}
	now := s.opts.Now()
	a := store.Attachment{
		Attachment: event.Attachment{ID: event.NewID(now), Name: CleanName(name), ContentType: contentType},
		UploaderID: userID,
		CreatedAt:  now,
	}
	a.StorageKey = a.ID
	// One byte over the limit is enough to know it is too large.
	body := io.MultiReader(bytes.NewReader(head), io.LimitReader(r, s.opts.MaxBytes+1-int64(n)))
	a.Size, err = s.opts.Blobs.Put(ctx, a.StorageKey, body)
	if err == nil && a.Size > s.opts.MaxBytes {
		err = TooLarge(s.opts.MaxBytes)
	}
	if err != nil {
		s.discard(a)
		return event.Attachment{}, fmt.Errorf("upload: %w", err)
	}
	if IsImage(contentType) {
		if err := s.imageParts(ctx, &a); err != nil {
			s.discard(a)
			return event.Attachment{}, fmt.Errorf("upload: %w", err)
		}
	}
	if err := s.opts.Store.CreateAttachment(ctx, a); err != nil {
		s.discard(a)
		return event.Attachment{}, fmt.Errorf("upload: %w", err)
	}
	return a.Attachment, nil
}

// imageParts fills an image's dimensions and makes its thumbnail.
func (s *Service) imageParts(ctx context.Context, a *store.Attachment) error {
	obj, err := s.opts.Blobs.Open(ctx, a.StorageKey)
	if err != nil {
		return err
	}
	defer obj.Close()
	if a.Width, a.Height, err = dimensions(obj); err != nil {
		return err
	}
	if int64(a.Width)*int64(a.Height) > MaxPixels {
		return nil // kept as a file without a thumbnail
	}
	if _, err := obj.Seek(0, io.SeekStart); err != nil {
		return err
	}
	select {
	case s.thumb <- struct{}{}:
	case <-ctx.Done():
		return ctx.Err()
	}
	jpg, err := thumbnail(obj)
	<-s.thumb
	if err != nil {
		return err
	}
	key := a.StorageKey + ".thumb"
	if _, err := s.opts.Blobs.Put(ctx, key, bytes.NewReader(jpg)); err != nil {
		return err
	}
	a.ThumbKey, a.Thumbnail = key, true
	return nil
}

// discard removes what a failed upload stored.
func (s *Service) discard(a store.Attachment) {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	for _, key := range []string{a.StorageKey, a.StorageKey + ".thumb"} {
		if err := s.opts.Blobs.Delete(ctx, key); err != nil {
			s.opts.Log.WithError(err).WithField("key", key).Warn("discard upload")
		}
	}
}

// Link is the answer of GET /attachments/{id}: the description and links
// that work without a token until ExpiresAt.
type Link struct {
	event.Attachment
	URL          string    `json:"url"`
	ThumbnailURL string    `json:"thumbnail_url,omitempty"`
	ExpiresAt    time.Time `json:"expires_at"`
}

// Link returns signed links to an attachment userID may read (store
// ReadableAttachment; store.ErrNotFound otherwise).
func (s *Service) Link(ctx context.Context, userID, id string) (Link, error) {
	a, err := s.opts.Store.ReadableAttachment(ctx, userID, id)
	if err != nil {
		return Link{}, err
	}
	exp := s.expiry(s.opts.Now())
	l := Link{Attachment: a.Attachment, URL: s.path(a.ID, VariantFile, exp), ExpiresAt: time.Unix(exp, 0).UTC()}
	if a.Thumbnail {
		l.ThumbnailURL = s.path(a.ID, VariantThumb, exp)
	}
	return l, nil
}

// expiry is the end of the window after the current one: the same for every
// link made within a window, and at least URLTTL away.
func (s *Service) expiry(now time.Time) int64 {
	ttl := int64(s.opts.URLTTL / time.Second)
	return (now.Unix()/ttl + 2) * ttl
}

// path is a signed link, relative to the API origin.
func (s *Service) path(id, variant string, exp int64) string {
	q := url.Values{"exp": {strconv.FormatInt(exp, 10)}, "sig": {s.sign(s.keys[0], id, variant, exp)}}
	return "/static/" + id + "/" + variant + "?" + q.Encode()
}

func (s *Service) sign(key []byte, id, variant string, exp int64) string {
	m := hmac.New(sha256.New, key)
	fmt.Fprintf(m, "%s\n%s\n%d", id, variant, exp)
	return base64.RawURLEncoding.EncodeToString(m.Sum(nil))
}

// Served is an attachment variant opened for a /static/ answer.
type Served struct {
	Object      storage.Object
	ContentType string
	Name        string
	Inline      bool // an image (or thumbnail): shown, not downloaded
	Size        int64
	Created     time.Time
	Expires     time.Time // the link's end: caches keep it no longer
}

// Open checks a link's signature and expiry and opens what it points to.
// Every failure is ErrLinkInvalid or store.ErrNotFound (a deleted attachment),
// so the answer says nothing about which part was wrong.
func (s *Service) Open(ctx context.Context, id, variant, exp, sig string) (Served, error) {
	e, err := strconv.ParseInt(exp, 10, 64)
	now := s.opts.Now().Unix()
	if err != nil || e <= now || e > now+2*int64(s.opts.URLTTL/time.Second) || !s.verify(id, variant, e, sig) {
		return Served{}, ErrLinkInvalid
	}
	a, err := s.opts.Store.LiveAttachment(ctx, id)
	if err != nil {
		return Served{}, err
	}
	out := Served{ContentType: a.ContentType, Name: a.Name, Inline: IsImage(a.ContentType), Size: a.Size,
		Created: a.CreatedAt, Expires: time.Unix(e, 0)}
	key := a.StorageKey
	if variant == VariantThumb {
		if a.ThumbKey == "" {
			return Served{}, fmt.Errorf("no thumbnail: %w", store.ErrNotFound)
		}
		key, out.ContentType, out.Inline, out.Size = a.ThumbKey, "image/jpeg", true, -1
	}
	obj, err := s.opts.Blobs.Open(ctx, key)
	if errors.Is(err, storage.ErrNotFound) {
		return Served{}, fmt.Errorf("attachment %s: %w", id, store.ErrNotFound)
	}
	if err != nil {
		return Served{}, err
	}
	out.Object = obj
	return out, nil
}

func (s *Service) verify(id, variant string, exp int64, sig string) bool {
	if variant != VariantFile && variant != VariantThumb {
		return false
	}
	for _, k := range s.keys {
		if hmac.Equal([]byte(s.sign(k, id, variant, exp)), []byte(sig)) {
			return true
		}
	}
	return false
}

// SetAvatar makes one of userID's image uploads their avatar ("" removes it).
func (s *Service) SetAvatar(ctx context.Context, userID, id string) (event.User, error) {
	return s.opts.Store.SetAvatar(ctx, userID, id)
}

// Sweep expires unused uploads older than UnusedTTL, then removes the bytes
// and rows of deleted attachments; it returns how many it removed. A failed
// blob deletion keeps its row, so the next sweep tries again.
func (s *Service) Sweep(ctx context.Context) (int, error) {
	if _, err := s.opts.Store.ExpireUnusedAttachments(ctx, s.opts.Now().Add(-s.opts.UnusedTTL)); err != nil {
		return 0, err
	}
	removed := 0
	for {
		as, err := s.opts.Store.DeletedAttachments(ctx, sweepBatch)
		if err != nil || len(as) == 0 {
			return removed, err
		}
		var gone []string
		for _, a := range as {
			err := s.opts.Blobs.Delete(ctx, a.StorageKey)
			if err == nil && a.ThumbKey != "" {
				err = s.opts.Blobs.Delete(ctx, a.ThumbKey)
			}
			if err != nil {
				s.opts.Log.WithError(err).WithField("attachment", a.ID).Warn("remove attachment bytes")
				continue
			}
			gone = append(gone, a.ID)
		}
		if err := s.opts.Store.PurgeAttachments(ctx, gone); err != nil {
			return removed, err
		}
		removed += len(gone)
		if len(gone) < len(as) || len(as) < sweepBatch {
			return removed, nil
		}
	}
}

// Run sweeps every few minutes until ctx ends. Several instances may sweep
// the same database: deleting a blob twice is harmless.
func (s *Service) Run(ctx context.Context) {
	t := time.NewTicker(sweepEvery)
	defer t.Stop()
	for {
		n, err := s.Sweep(ctx)
		if err != nil && ctx.Err() == nil {
			s.opts.Log.WithError(err).Warn("attachment sweep")
		} else if n > 0 {
			s.opts.Log.WithField("removed", n).Info("attachment sweep")
		}
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
	}
}
