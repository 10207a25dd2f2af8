package rest

import (
	"context"
	"errors"
	"io"
	"mime"
	"net/http"
	"strconv"
	"time"

	"github.com/gin-gonic/gin"

	"github.com/chat5202ol/mop/pkg/api"
	"github.com/chat5202ol/mop/services/api-rest/internal/attachment"
)

const (
	routeUpload = "/api/v1/attachments"
	// uploadOverhead is room for the multipart framing around the file.
	uploadOverhead = 64 << 10
	// uploadReadTimeout replaces the server's read timeout for an upload, so
	// a large file over a slow link is not cut off at 30 s.
	uploadReadTimeout = 10 * time.Minute
	// maxUploadParts bounds the form parts skipped before the file.
	maxUploadParts = 8
)

// staticPolicy is the Content-Security-Policy of /static/: nothing in a
// served file may run or load anything, even if a browser ends up rendering
// it as a document.
const staticPolicy = "default-src 'none'; img-src 'self'; media-src 'self'; style-src 'unsafe-inline'; sandbox"

var errNotMultipart = api.Fail(api.CodeUnsupportedMedia, "Content-Type must be multipart/form-data")

// upload takes a multipart/form-data body with one "file" part, streamed to
// storage (never buffered whole).
func (s *server) upload(c *gin.Context) error {
	if s.opts.Attachments == nil {
		return errNoRoute
	}
	mediaType, _, err := mime.ParseMediaType(c.GetHeader("Content-Type"))
	if err != nil || mediaType != "multipart/form-data" {
		return errNotMultipart
	}
	// Best effort: a writer that cannot extend the deadline keeps the server's.
	_ = http.NewResponseController(c.Writer).SetReadDeadline(time.Now().Add(uploadReadTimeout))
	mr, err := c.Request.MultipartReader()
	if err != nil {
		return errNotMultipart
	}
	for range maxUploadParts {
		part, err := mr.NextPart()
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			return s.uploadReadError(err)
		}
		if part.FormName() != "file" {
			_ = part.Close()
			continue
		}
		a, err := s.opts.Attachments.Upload(c.Request.Context(), userID(c), part.FileName(), part)
		_ = part.Close()
		if err != nil {
			return s.uploadReadError(err)
		}
		c.JSON(http.StatusCreated, a)
		return nil
	}
	return api.Invalid("file", `is required (a form part named "file")`)
}

// uploadReadError tells a body cut at the limit (413) from a broken form.
func (s *server) uploadReadError(err error) error {
	var tooLarge *http.MaxBytesError
	if _, ok := api.As(err); ok {
		return err
	}
	switch {
	case errors.As(err, &tooLarge):
		return attachment.TooLarge(s.opts.Attachments.MaxBytes())
	case errors.Is(err, context.Canceled), errors.Is(err, context.DeadlineExceeded):
		return err
	case errors.Is(err, io.ErrUnexpectedEOF), errors.Is(err, io.EOF):
		return api.Fail(api.CodeInvalidJSON, "the form ended early")
	}
	var timeout interface{ Timeout() bool }
	if errors.As(err, &timeout) && timeout.Timeout() {
		return api.Fail(api.CodeInvalidJSON, "the upload stalled")
	}
	// Anything else from reading the form is the client's framing.
	return api.Failf(api.CodeInvalidJSON, "malformed form: %v", err)
}

// attachmentLink answers signed links to an attachment the caller may read.
func (s *server) attachmentLink(c *gin.Context) error {
	if s.opts.Attachments == nil {
		return errNoRoute
	}
	id := c.Param("id")
	if !api.IsID(id) {
		return errNoRoute
	}
	l, err := s.opts.Attachments.Link(c.Request.Context(), userID(c), id)
	if err != nil {
		return err
	}
	c.JSON(http.StatusOK, l)
	return nil
}

// static serves /static/{id}/{variant}?exp=&sig=: the signature is the
// authorisation, so the route takes no token (an <img> cannot send one).
func (s *server) static(c *gin.Context) error {
	if s.opts.Attachments == nil {
		return errNoRoute
	}
	id, variant := c.Param("id"), c.Param("variant")
	if !api.IsID(id) || (variant != attachment.VariantFile && variant != attachment.VariantThumb) {
		return errNoRoute
	}
	f, err := s.opts.Attachments.Open(c.Request.Context(), id, variant, c.Query("exp"), c.Query("sig"))
	if err != nil {
		return err
	}
	defer f.Object.Close()
	h := c.Writer.Header()
	h.Set("Content-Type", f.ContentType)
	h.Set("X-Content-Type-Options", "nosniff")
	h.Set("Content-Security-Policy", staticPolicy)
	// cross-origin: the link is the credential (no cookies), so whoever may
	// embed it could fetch it anyway; same-site would break clients served
	// from another site (a development origin, an app's web view).
	h.Set("Cross-Origin-Resource-Policy", "cross-origin")
	h.Set("Referrer-Policy", "no-referrer")
	h.Set("Content-Disposition", disposition(f.Inline, f.Name, variant))
	// Private: only the holder of the link may have it. Immutable: the
	// bytes behind an id never change.
	maxAge := max(int(f.Expires.Sub(s.opts.Now())/time.Second), 0)
	h.Set("Cache-Control", "private, max-age="+strconv.Itoa(maxAge)+", immutable")
	h.Set("ETag", `"`+id+"-"+variant+`"`)
	http.ServeContent(c.Writer, c.Request, "", f.Created, f.Object)
	return nil
}

// disposition is the Content-Disposition of a served file (RFC 6266, the
// name RFC 2231-encoded when it is not plain ASCII). Only images are shown
// inline; everything else is a download.
func disposition(inline bool, name, variant string) string {
	kind := "attachment"
	if inline {
		kind = "inline"
	}
	if variant == attachment.VariantThumb {
		name = "thumbnail.jpg"
	}
	if v := mime.FormatMediaType(kind, map[string]string{"filename": name}); v != "" {
		return v
	}
	return kind
}
