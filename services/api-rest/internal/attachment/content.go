package attachment

import (
	"bytes"
	"fmt"
	"image"
	"image/color"
	_ "image/gif" // registers the GIF decoder for image.Decode
	"image/jpeg"
	_ "image/png" // registers the PNG decoder
	"io"
	"net/http"
	"path"
	"strings"
	"unicode"
	"unicode/utf8"

	"golang.org/x/image/draw"
	_ "golang.org/x/image/webp" // registers the WebP decoder
)

// SniffBytes is how much of the content decides its type (what
// http.DetectContentType reads).
const SniffBytes = 512

// Thumbnail bounds and the largest image decoded for one: above MaxPixels an
// image is kept as a file without a thumbnail, so a small compressed file
// that claims huge dimensions (a decompression bomb) never gets decoded.
const (
	ThumbnailSize = 320
	MaxPixels     = 25_000_000
	thumbQuality  = 80
)

// allowed maps the types http.DetectContentType finds to the type served.
// Anything else (HTML, SVG, XML, scripts, executables, unknown binary) is
// refused: the list is what a chat needs, and nothing on it runs in a
// browser.
var allowed = map[string]string{
	"image/png":                 "image/png",
	"image/jpeg":                "image/jpeg",
	"image/gif":                 "image/gif",
	"image/webp":                "image/webp",
	"application/pdf":           "application/pdf",
	"text/plain; charset=utf-8": "text/plain; charset=utf-8",
	"application/zip":           "application/zip",
	"application/x-gzip":        "application/gzip",
	"audio/mpeg":                "audio/mpeg",
	"audio/wave":                "audio/wav",
	"application/ogg":           "audio/ogg",
	"video/mp4":                 "video/mp4",
	"video/webm":                "video/webm",
}

// images are the allowed types that get dimensions and a thumbnail, and are
// shown inline.
var images = map[string]bool{"image/png": true, "image/jpeg": true, "image/gif": true, "image/webp": true}

// Allowed lists the accepted content types (for error details and docs).
func Allowed() []string {
	out := make([]string, 0, len(allowed))
	for _, v := range allowed {
		out = append(out, v)
	}
	return out
}

// Sniff returns the type of content whose first bytes are head, and whether
// it is accepted. The declared type of an upload is never consulted.
func Sniff(head []byte) (contentType string, ok bool) {
	detected := http.DetectContentType(head)
	t, ok := allowed[detected]
	if !ok {
		return detected, false
	}
	return t, true
}

// IsImage reports whether contentType gets a thumbnail and is shown inline.
func IsImage(contentType string) bool { return images[contentType] }

// dimensions reads an image's header only.
func dimensions(r io.Reader) (int, int, error) {
	cfg, _, err := image.DecodeConfig(r)
	if err != nil {
		return 0, 0, fmt.Errorf("%w: %v", ErrBadImage, err)
	}
	if cfg.Width <= 0 || cfg.Height <= 0 {
		return 0, 0, fmt.Errorf("%w: %dx%d", ErrBadImage, cfg.Width, cfg.Height)
	}
	return cfg.Width, cfg.Height, nil
}

// thumbnail decodes an image and returns a JPEG that fits in
// ThumbnailSize², transparency flattened onto white.
func thumbnail(r io.Reader) ([]byte, error) {
	src, _, err := image.Decode(r)
	if err != nil {
		return nil, fmt.Errorf("%w: %v", ErrBadImage, err)
	}
	b := src.Bounds()
	w, h := b.Dx(), b.Dy()
	if w > ThumbnailSize || h > ThumbnailSize {
		if w >= h {
			w, h = ThumbnailSize, max(1, h*ThumbnailSize/b.Dx())
		} else {
			w, h = max(1, w*ThumbnailSize/b.Dy()), ThumbnailSize
		}
	}
	dst := image.NewRGBA(image.Rect(0, 0, w, h))
	draw.Draw(dst, dst.Bounds(), image.NewUniform(color.White), image.Point{}, draw.Src)
	draw.ApproxBiLinear.Scale(dst, dst.Bounds(), src, b, draw.Over, nil)
	var buf bytes.Buffer
	if err := jpeg.Encode(&buf, dst, &jpeg.Options{Quality: thumbQuality}); err != nil {
		return nil, fmt.Errorf("encode thumbnail: %w", err)
	}
	return buf.Bytes(), nil
}

// MaxNameBytes bounds a stored file name.
const MaxNameBytes = 255

// CleanName turns a client's file name into a display name: the last path
// element (either separator), valid UTF-8 without control characters, at most
// MaxNameBytes, never empty. It is only ever shown and put in
// Content-Disposition; storage keys are the server's own.
func CleanName(name string) string {
	name = strings.ToValidUTF8(name, "\uFFFD")
	name = path.Base(strings.ReplaceAll(name, `\`, "/"))
	name = strings.Map(func(r rune) rune {
		if unicode.IsControl(r) || r == utf8.RuneError {
			return -1
		}
		return r
	}, name)
	name = strings.TrimSpace(name)
	for len(name) > MaxNameBytes {
		_, size := utf8.DecodeLastRuneInString(name)
		name = name[:len(name)-size]
	}
	if name == "" || name == "." || name == ".." || name == "/" {
		return "file"
	}
	return name
}
