package attachment

import (
	"bytes"
	"errors"
	"image"
	"image/color"
	"image/gif"
	"image/jpeg"
	"image/png"
	"strings"
	"testing"
	"unicode"
	"unicode/utf8"
)

func encoded(t testing.TB, format string, w, h int) []byte {
	t.Helper()
	img := image.NewPaletted(image.Rect(0, 0, w, h), color.Palette{color.White, color.Black})
	var buf bytes.Buffer
	var err error
	switch format {
	case "png":
		err = png.Encode(&buf, img)
	case "jpeg":
		err = jpeg.Encode(&buf, img, nil)
	case "gif":
		err = gif.Encode(&buf, img, nil)
	}
	if err != nil {
		t.Fatal(err)
	}
	return buf.Bytes()
}

// A minimal lossless WebP (1×1), as cwebp writes it.
var webp1x1 = []byte("RIFF\x1a\x00\x00\x00WEBPVP8L\x0d\x00\x00\x00\x2f\x00\x00\x00\x10\x07\x10\x11\x11\x88\x88\xfe\x07\x00")

func TestSniff(t *testing.T) {
	for _, tc := range []struct {
		name, head, want string
		ok               bool
	}{
		{"png", string(encoded(t, "png", 2, 2)), "image/png", true},
		{"jpeg", string(encoded(t, "jpeg", 2, 2)), "image/jpeg", true},
		{"gif", string(encoded(t, "gif", 2, 2)), "image/gif", true},
		{"webp", string(webp1x1), "image/webp", true},
		{"pdf", "%PDF-1.7\n", "application/pdf", true},
		{"text", "hello\n", "text/plain; charset=utf-8", true},
		{"zip (also docx, odt)", "PK\x03\x04\x14\x00", "application/zip", true},
		{"html", "<html><body>", "text/html; charset=utf-8", false},
		{"html after spaces", "  \n<script>alert(1)</script>", "text/html; charset=utf-8", false},
		{"svg", `<?xml version="1.0"?><svg/>`, "text/xml; charset=utf-8", false},
		{"windows executable", "MZ\x90\x00", "application/octet-stream", false},
		{"elf", "\x7fELF\x02\x01\x01", "application/octet-stream", false},
		{"utf-16 text", "\xfe\xffh\x00i\x00", "text/plain; charset=utf-16be", false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got, ok := Sniff([]byte(tc.head))
			if got != tc.want || ok != tc.ok {
				t.Fatalf("Sniff = %q %v, want %q %v", got, ok, tc.want, tc.ok)
			}
		})
	}
}

func TestThumbnail(t *testing.T) {
	for _, tc := range []struct {
		format          string
		w, h, tw, th    int
		decodableSource bool
	}{
		{"png", 1000, 500, 320, 160, true},
		{"jpeg", 300, 900, 106, 320, true},
		{"gif", 10, 20, 10, 20, true}, // small images are not enlarged
		{"png", 5000, 1, 320, 1, true},
	} {
		t.Run(tc.format, func(t *testing.T) {
			src := encoded(t, tc.format, tc.w, tc.h)
			w, h, err := dimensions(bytes.NewReader(src))
			if err != nil || w != tc.w || h != tc.h {
				t.Fatalf("dimensions %d×%d %v", w, h, err)
			}
			out, err := thumbnail(bytes.NewReader(src))
			if err != nil {
				t.Fatal(err)
			}
			cfg, err := jpeg.DecodeConfig(bytes.NewReader(out))
			if err != nil || cfg.Width != tc.tw || cfg.Height != tc.th {
				t.Fatalf("thumbnail %d×%d %v, want %d×%d", cfg.Width, cfg.Height, err, tc.tw, tc.th)
			}
		})
	}
	w, h, err := dimensions(bytes.NewReader(webp1x1))
	if err != nil || w != 1 || h != 1 {
		t.Fatalf("webp %d×%d %v", w, h, err)
	}
	if _, err := thumbnail(strings.NewReader("\x89PNG\r\n\x1a\nbroken")); !errors.Is(err, ErrBadImage) {
		t.Fatalf("broken png: %v", err)
	}
}

func TestCleanName(t *testing.T) {
	for in, want := range map[string]string{
		"cat.png":                    "cat.png",
		"../../etc/passwd":           "passwd",
		`C:\Users\me\My Photo.jpg`:   "My Photo.jpg",
		"dir/":                       "dir",
		"..":                         "file",
		"/":                          "file",
		"":                           "file",
		"  spaced  ":                 "spaced",
		"new\nline\x00.txt":          "newline.txt",
		"bad\xffutf8.txt":            "badutf8.txt",
		"\u202eexe.txt":              "\u202eexe.txt", // shown as text only; the type comes from the content
		strings.Repeat("é", 200):     strings.Repeat("é", 127),
		"résumé \"final\";x=1.pdf":   "résumé \"final\";x=1.pdf",
		"trailing/slash/../name.doc": "name.doc",
	} {
		if got := CleanName(in); got != want {
			t.Errorf("CleanName(%q) = %q, want %q", in, got, want)
		}
	}
}

// FuzzCleanName: whatever a client sends, the name is short, valid, one
// path element, and printable.
func FuzzCleanName(f *testing.F) {
	for _, s := range []string{"a.png", "../x", `a\b`, "\x00", "é/..", strings.Repeat("ab/", 100)} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, in string) {
		out := CleanName(in)
		if out == "" || out == "." || out == ".." || len(out) > MaxNameBytes || !utf8.ValidString(out) ||
			strings.ContainsAny(out, `/\`) || strings.IndexFunc(out, unicode.IsControl) >= 0 {
			t.Fatalf("CleanName(%q) = %q", in, out)
		}
	})
}

// FuzzImage: the sniffer and the image decoders get arbitrary bytes from
// users; they must answer an error, never panic, and an accepted image must
// yield a thumbnail within bounds.
func FuzzImage(f *testing.F) {
	f.Add(encoded(f, "png", 3, 2))
	f.Add(encoded(f, "jpeg", 3, 2))
	f.Add(encoded(f, "gif", 3, 2))
	f.Add(webp1x1)
	f.Add([]byte("\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR\x7f\xff\xff\xff\x7f\xff\xff\xff\x08\x02\x00\x00\x00"))
	f.Fuzz(func(t *testing.T, data []byte) {
		ct, ok := Sniff(data[:min(len(data), SniffBytes)])
		if !ok || !IsImage(ct) {
			return
		}
		w, h, err := dimensions(bytes.NewReader(data))
		// Up to a megapixel: the decoders' cost per pixel is theirs, and
		// big canvases would only slow the search down.
		if err != nil || int64(w)*int64(h) > 1<<20 {
			return
		}
		out, err := thumbnail(bytes.NewReader(data))
		if err != nil {
			return
		}
		cfg, err := jpeg.DecodeConfig(bytes.NewReader(out))
		if err != nil || cfg.Width > ThumbnailSize || cfg.Height > ThumbnailSize || cfg.Width < 1 || cfg.Height < 1 {
			t.Fatalf("thumbnail %+v %v", cfg, err)
		}
	})
}
