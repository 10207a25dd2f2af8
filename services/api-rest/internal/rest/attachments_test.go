package rest_test

import (
	"bytes"
	"image"
	"image/color"
	"image/jpeg"
	"image/png"
	"mime/multipart"
	"net/http"
	"net/http/httptest"
	"net/textproto"
	"net/url"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/chat5202ol/mop/pkg/api"
	"github.com/chat5202ol/mop/pkg/event"
	"github.com/chat5202ol/mop/services/api-rest/internal/attachment"
	"github.com/chat5202ol/mop/services/api-rest/internal/store/storetest"
)

// pngOf is a w×h PNG.
func pngOf(t testing.TB, w, h int) []byte {
	t.Helper()
	img := image.NewNRGBA(image.Rect(0, 0, w, h))
	for x := range w {
		img.Set(x, x%h, color.NRGBA{R: 200, A: 255})
	}
	var buf bytes.Buffer
	if err := png.Encode(&buf, img); err != nil {
		t.Fatal(err)
	}
	return buf.Bytes()
}

// form is a multipart body with one part per file; declared is the part's
// own Content-Type (which the server must ignore).
type filePart struct {
	field, name, declared string
	data                  []byte
}

func form(t testing.TB, parts ...filePart) (body []byte, contentType string) {
	t.Helper()
	var buf bytes.Buffer
	w := multipart.NewWriter(&buf)
	for _, p := range parts {
		h := textproto.MIMEHeader{}
		h.Set("Content-Disposition", `form-data; name="`+p.field+`"; filename="`+p.name+`"`)
		if p.declared != "" {
			h.Set("Content-Type", p.declared)
		}
		pw, err := w.CreatePart(h)
		if err != nil {
			t.Fatal(err)
		}
		_, _ = pw.Write(p.data)
	}
	if err := w.Close(); err != nil {
		t.Fatal(err)
	}
	return buf.Bytes(), w.FormDataContentType()
}

func (e *env) upload(u user, parts ...filePart) *httptest.ResponseRecorder {
	e.t.Helper()
	body, ct := form(e.t, parts...)
	return e.do(req{Method: "POST", Path: "/api/v1/attachments", Token: u.Access, Body: body, Header: map[string]string{"Content-Type": ct}})
}

func (e *env) uploaded(u user, name string, data []byte) event.Attachment {
	e.t.Helper()
	var a event.Attachment
	expect(e.t, e.upload(u, filePart{"file", name, "", data}), http.StatusCreated, &a)
	return a
}

func (e *env) link(u user, id string) attachment.Link {
	e.t.Helper()
	var l attachment.Link
	expect(e.t, e.do(req{Method: "GET", Path: "/api/v1/attachments/" + id, Token: u.Access}), http.StatusOK, &l)
	return l
}

func TestUploadChecksContent(t *testing.T) {
	storetest.Run(t, func(t *testing.T, b storetest.Backend) {
		e := newEnv(t, b)
		alice := e.register("alice")

		pic := e.uploaded(alice, "cat.png", pngOf(t, 640, 480))
		if pic.ContentType != "image/png" || pic.Width != 640 || pic.Height != 480 || !pic.Thumbnail || pic.Name != "cat.png" || pic.ID == "" {
			t.Fatalf("png %+v", pic)
		}
		// The declared type is ignored both ways, and the name keeps no path.
		doc := e.uploaded(alice, `..\..\evil/../../etc/passwd`, []byte("just text <b>not html</b>\n"))
		if doc.ContentType != "text/plain; charset=utf-8" || doc.Name != "passwd" || doc.Thumbnail || doc.Width != 0 {
			t.Fatalf("text %+v", doc)
		}
		pdf := e.uploaded(alice, "a.pdf", []byte("%PDF-1.4\n%âãÏÓ\n1 0 obj\n"))
		if pdf.ContentType != "application/pdf" {
			t.Fatalf("pdf %+v", pdf)
		}

		huge := bytes.Repeat([]byte("a"), testMaxUpload+1)
		bad := []struct {
			name   string
			parts  []filePart
			status int
			code   string
			field  string
		}{
			{"html declared as an image", []filePart{{"file", "x.png", "image/png", []byte("<!DOCTYPE html><script>alert(1)</script>")}}, http.StatusUnsupportedMediaType, "unsupported_media_type", ""},
			{"svg", []filePart{{"file", "x.svg", "image/svg+xml", []byte(`<?xml version="1.0"?><svg xmlns="http://www.w3.org/2000/svg" onload="alert(1)"/>`)}}, http.StatusUnsupportedMediaType, "unsupported_media_type", ""},
			{"executable", []filePart{{"file", "x.exe", "", append([]byte("MZ\x90\x00\x03\x00\x00\x00"), make([]byte, 64)...)}}, http.StatusUnsupportedMediaType, "unsupported_media_type", ""},
			{"one byte over the limit", []filePart{{"file", "big.txt", "", huge}}, http.StatusRequestEntityTooLarge, "payload_too_large", ""},
			{"empty file", []filePart{{"file", "e.txt", "", nil}}, http.StatusBadRequest, "invalid_input", "file"},
			{"broken png", []filePart{{"file", "b.png", "", append([]byte("\x89PNG\r\n\x1a\n"), bytes.Repeat([]byte{7}, 100)...)}}, http.StatusBadRequest, "invalid_input", "file"},
			{"no file part", []filePart{{"other", "x.txt", "", []byte("hi")}}, http.StatusBadRequest, "invalid_input", "file"},
		}
		for _, tc := range bad {
			t.Run(tc.name, func(t *testing.T) {
				rec := e.upload(alice, tc.parts...)
				if tc.field != "" {
					expectFieldError(t, rec, tc.status, tc.code, tc.field)
					return
				}
				body := expectError(t, rec, tc.status, tc.code)
				if tc.code == "unsupported_media_type" && body.Error.Details["content_type"] == "" {
					t.Fatalf("no detected type in %+v", body.Error.Details)
				}
				if tc.code == "payload_too_large" && body.Error.Details["max_bytes"] != float64(testMaxUpload) {
					t.Fatalf("details %+v", body.Error.Details)
				}
			})
		}
		t.Run("far over the limit is refused before reading", func(t *testing.T) {
			body, ct := form(t, filePart{"file", "x", "", bytes.Repeat([]byte("a"), 2*testMaxUpload)})
			expectError(t, e.do(req{Method: "POST", Path: "/api/v1/attachments", Token: alice.Access, Body: body,
				Header: map[string]string{"Content-Type": ct}}), http.StatusRequestEntityTooLarge, "payload_too_large")
		})
		t.Run("not a form", func(t *testing.T) {
			expectError(t, e.do(req{Method: "POST", Path: "/api/v1/attachments", Token: alice.Access, Body: "hello"}),
				http.StatusUnsupportedMediaType, "unsupported_media_type")
		})
		t.Run("truncated form", func(t *testing.T) {
			body, ct := form(t, filePart{"file", "x.txt", "", []byte("hello")})
			expectError(t, e.do(req{Method: "POST", Path: "/api/v1/attachments", Token: alice.Access, Body: body[:len(body)-20],
				Header: map[string]string{"Content-Type": ct}}), http.StatusBadRequest, "invalid_json")
		})
		t.Run("no token", func(t *testing.T) {
			body, ct := form(t, filePart{"file", "x.txt", "", []byte("hello")})
			expectError(t, e.do(req{Method: "POST", Path: "/api/v1/attachments", Body: body, Header: map[string]string{"Content-Type": ct}}),
				http.StatusUnauthorized, "token_missing")
		})
	})
}

func TestAttachmentsInMessagesAndStatic(t *testing.T) {
	storetest.Run(t, func(t *testing.T, b storetest.Backend) {
		e := newEnv(t, b)
		alice, bob, eve := e.register("alice"), e.register("bob"), e.register("eve")
		d := e.conversation(alice, api.ConversationDirect, bob.ID)
		pic := e.uploaded(alice, "ünïcode photo.png", pngOf(t, 800, 200))
		doc := e.uploaded(alice, "notes.txt", []byte("meeting notes\n"))

		// Nobody else may have links before it is sent.
		expectError(t, e.do(req{Method: "GET", Path: "/api/v1/attachments/" + pic.ID, Token: bob.Access}), http.StatusNotFound, "not_found")

		path := "/api/v1/conversations/" + d.ID + "/messages"
		for name, body := range map[string]map[string]any{
			"someone else's upload": {"attachment_ids": []string{pic.ID}},
			"too many":              {"attachment_ids": strings.Split(strings.Repeat("a,", api.MaxMessageAttachments+1), ",")[:api.MaxMessageAttachments+1]},
			"bad id":                {"attachment_ids": []string{"../x"}},
			"no body, no files":     {"attachment_ids": []string{}},
		} {
			t.Run(name, func(t *testing.T) {
				token, field := bob.Access, "attachment_ids"
				if name != "someone else's upload" {
					token = alice.Access
				}
				if name == "no body, no files" {
					field = "body"
				}
				expectFieldError(t, e.do(req{Method: "POST", Path: path, Token: token, Body: body}), http.StatusBadRequest, "invalid_input", field)
			})
		}

		var m event.Message
		expect(t, e.do(req{Method: "POST", Path: path, Token: alice.Access,
			Body: map[string]any{"attachment_ids": []string{pic.ID, doc.ID}}}), http.StatusCreated, &m)
		if len(m.Attachments) != 2 || m.Attachments[0].ID != pic.ID || m.Attachments[1].ID != doc.ID || m.Body != "" {
			t.Fatalf("message %+v", m)
		}
		var hist struct{ Messages []event.Message }
		expect(t, e.do(req{Method: "GET", Path: path + "?after_seq=0", Token: bob.Access}), http.StatusOK, &hist)
		if len(hist.Messages) != 1 || len(hist.Messages[0].Attachments) != 2 {
			t.Fatalf("history %+v", hist.Messages)
		}

		// A member gets links; a non-member gets 404 as for any conversation.
		l := e.link(bob, pic.ID)
		if !strings.HasPrefix(l.URL, "/static/"+pic.ID+"/file?") || !strings.HasPrefix(l.ThumbnailURL, "/static/"+pic.ID+"/thumb?") ||
			l.ExpiresAt.Before(e.clock.Now().Add(testURLTTL)) || l.ExpiresAt.After(e.clock.Now().Add(2*testURLTTL)) {
			t.Fatalf("link %+v", l)
		}
		if again := e.link(alice, pic.ID); again.URL != l.URL {
			t.Fatalf("links differ within a window: %s vs %s", again.URL, l.URL)
		}
		expectError(t, e.do(req{Method: "GET", Path: "/api/v1/attachments/" + pic.ID, Token: eve.Access}), http.StatusNotFound, "not_found")

		// The file: exact bytes, headers that keep it from running.
		rec := e.do(req{Method: "GET", Path: l.URL})
		expect(t, rec, http.StatusOK, nil)
		raw := pngOf(t, 800, 200)
		if !bytes.Equal(rec.Body.Bytes(), raw) {
			t.Fatalf("served %d bytes, want %d", rec.Body.Len(), len(raw))
		}
		h := rec.Header()
		for k, want := range map[string]string{
			"Content-Type":           "image/png",
			"X-Content-Type-Options": "nosniff",
			"Content-Disposition":    "inline; filename*=utf-8''%C3%BCn%C3%AFcode%20photo.png",
		} {
			if got := h.Get(k); got != want {
				t.Errorf("%s = %q, want %q", k, got, want)
			}
		}
		if csp := h.Get("Content-Security-Policy"); !strings.Contains(csp, "default-src 'none'") || !strings.Contains(csp, "sandbox") {
			t.Errorf("CSP %q", csp)
		}
		if cc := h.Get("Cache-Control"); !strings.HasPrefix(cc, "private, max-age=") || !strings.Contains(cc, "immutable") {
			t.Errorf("Cache-Control %q", cc)
		}
		// HEAD: the same headers, no body.
		head := e.do(req{Method: "HEAD", Path: l.URL})
		expect(t, head, http.StatusOK, nil)
		if head.Body.Len() != 0 || head.Header().Get("Content-Type") != "image/png" || head.Header().Get("Content-Length") != strconv.Itoa(len(raw)) {
			t.Fatalf("HEAD: %d body bytes, headers %v", head.Body.Len(), head.Header())
		}
		// Conditional and range requests.
		expect(t, e.do(req{Method: "GET", Path: l.URL, Header: map[string]string{"If-None-Match": h.Get("ETag")}}), http.StatusNotModified, nil)
		part := e.do(req{Method: "GET", Path: l.URL, Header: map[string]string{"Range": "bytes=0-7"}})
		expect(t, part, http.StatusPartialContent, nil)
		if !bytes.Equal(part.Body.Bytes(), raw[:8]) {
			t.Fatalf("range %q", part.Body.Bytes())
		}
		// The thumbnail is a JPEG within 320×320, keeping the aspect ratio.
		th := e.do(req{Method: "GET", Path: l.ThumbnailURL})
		expect(t, th, http.StatusOK, nil)
		cfg, err := jpeg.DecodeConfig(bytes.NewReader(th.Body.Bytes()))
		if err != nil || cfg.Width != 320 || cfg.Height != 80 || th.Header().Get("Content-Type") != "image/jpeg" {
			t.Fatalf("thumbnail %+v %v %q", cfg, err, th.Header().Get("Content-Type"))
		}
		// A document is a download, never shown.
		dl := e.link(bob, doc.ID)
		if dl.ThumbnailURL != "" {
			t.Fatalf("document thumbnail %q", dl.ThumbnailURL)
		}
		drec := e.do(req{Method: "GET", Path: dl.URL})
		expect(t, drec, http.StatusOK, nil)
		if got := drec.Header().Get("Content-Disposition"); got != "attachment; filename=notes.txt" {
			t.Fatalf("disposition %q", got)
		}
		if got := drec.Header().Get("Content-Type"); got != "text/plain; charset=utf-8" {
			t.Fatalf("type %q", got)
		}

		// Bad links: tampered, re-used for another file or variant, expired,
		// path tricks. None reveals which part was wrong.
		u, _ := url.Parse(l.URL)
		q := u.Query()
		sig, exp := q.Get("sig"), q.Get("exp")
		forbidden := map[string]string{
			"tampered signature": "/static/" + pic.ID + "/file?exp=" + exp + "&sig=" + strings.Repeat("A", len(sig)),
			"no signature":       "/static/" + pic.ID + "/file?exp=" + exp,
			"another file":       "/static/" + doc.ID + "/file?exp=" + exp + "&sig=" + sig,
			"another variant":    "/static/" + pic.ID + "/thumb?exp=" + exp + "&sig=" + sig,
			"later expiry":       "/static/" + pic.ID + "/file?exp=" + exp + "0&sig=" + sig,
			"expiry not a time":  "/static/" + pic.ID + "/file?exp=soon&sig=" + sig,
		}
		for name, p := range forbidden {
			t.Run(name, func(t *testing.T) {
				expectError(t, e.do(req{Method: "GET", Path: p}), http.StatusForbidden, "forbidden")
			})
		}
		for name, p := range map[string]string{
			"unknown variant":     "/static/" + pic.ID + "/original?" + u.RawQuery,
			"dot-dot in the id":   "/static/..%2F..%2Fetc%2Fpasswd/file?" + u.RawQuery,
			"dot-dot path":        "/static/" + pic.ID + "/file/../../../etc/passwd",
			"extra path":          "/static/" + pic.ID + "/file/x?" + u.RawQuery,
			"encoded slash in id": "/static/" + pic.ID + "%2F..%2F/file?" + u.RawQuery,
		} {
			t.Run(name, func(t *testing.T) {
				rec := e.do(req{Method: "GET", Path: p})
				if rec.Code != http.StatusNotFound && rec.Code != http.StatusForbidden && rec.Code != http.StatusMovedPermanently {
					t.Fatalf("status %d: %s", rec.Code, rec.Body.String())
				}
				if bytes.Contains(rec.Body.Bytes(), raw[:8]) {
					t.Fatal("served the file")
				}
			})
		}
		e.clock.Add(2*testURLTTL + time.Second)
		expectError(t, e.do(req{Method: "GET", Path: l.URL}), http.StatusForbidden, "forbidden")

		// Deleting the message takes its files: fresh links are 404 too.
		l = e.link(bob, pic.ID)
		expect(t, e.do(req{Method: "DELETE", Path: path + "/" + m.ID, Token: alice.Access}), http.StatusNoContent, nil)
		expectError(t, e.do(req{Method: "GET", Path: l.URL}), http.StatusNotFound, "not_found")
		expectError(t, e.do(req{Method: "GET", Path: "/api/v1/attachments/" + pic.ID, Token: bob.Access}), http.StatusNotFound, "not_found")
		if n, err := e.files.Sweep(t.Context()); err != nil || n != 2 {
			t.Fatalf("sweep removed %d: %v", n, err)
		}
		if _, err := e.blobs.Open(t.Context(), pic.ID); err == nil {
			t.Fatal("bytes survive the sweep")
		}
	})
}

func TestAvatar(t *testing.T) {
	storetest.Run(t, func(t *testing.T, b storetest.Backend) {
		e := newEnv(t, b)
		alice, bob := e.register("alice"), e.register("bob")
		pic := e.uploaded(alice, "me.png", pngOf(t, 64, 64))
		doc := e.uploaded(alice, "cv.txt", []byte("cv\n"))
		bobs := e.uploaded(bob, "b.png", pngOf(t, 8, 8))

		for name, id := range map[string]string{"a document": doc.ID, "someone else's": bobs.ID, "a bad id": "../x"} {
			t.Run(name, func(t *testing.T) {
				expectFieldError(t, e.do(req{Method: "PATCH", Path: "/api/v1/users/me", Token: alice.Access,
					Body: map[string]any{"avatar_id": id}}), http.StatusBadRequest, "invalid_input", "avatar_id")
			})
		}
		var me event.User
		expect(t, e.do(req{Method: "PATCH", Path: "/api/v1/users/me", Token: alice.Access,
			Body: map[string]any{"avatar_id": pic.ID, "display_name": "Alice A."}}), http.StatusOK, &me)
		if me.AvatarID != pic.ID || me.DisplayName != "Alice A." {
			t.Fatalf("me %+v", me)
		}
		// Anybody signed in sees it (profiles are public to users).
		var seen event.User
		expect(t, e.do(req{Method: "GET", Path: "/api/v1/users/" + alice.ID, Token: bob.Access}), http.StatusOK, &seen)
		if seen.AvatarID != pic.ID {
			t.Fatalf("bob sees %+v", seen)
		}
		l := e.link(bob, pic.ID)
		expect(t, e.do(req{Method: "GET", Path: l.ThumbnailURL}), http.StatusOK, nil)

		// Removing it.
		me = event.User{}
		expect(t, e.do(req{Method: "PATCH", Path: "/api/v1/users/me", Token: alice.Access,
			Body: map[string]any{"avatar_id": ""}}), http.StatusOK, &me)
		if me.AvatarID != "" || me.DisplayName != "Alice A." {
			t.Fatalf("me %+v", me)
		}
		expectError(t, e.do(req{Method: "GET", Path: l.URL}), http.StatusNotFound, "not_found")
	})
}
