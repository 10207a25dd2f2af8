package probe

import (
	"os"
	"strings"
	"testing"
)

func TestParseRSS(t *testing.T) {
	got, err := parseRSS(strings.NewReader("Name:\tx\nVmPeak:\t 9 kB\nVmRSS:\t  1234 kB\n"))
	if err != nil || got != 1234*1024 {
		t.Fatalf("got %d %v", got, err)
	}
	if _, err := parseRSS(strings.NewReader("Name:\tx\n")); err == nil {
		t.Fatal("no VmRSS accepted")
	}
	if _, err := parseRSS(strings.NewReader("VmRSS: 12 MB\n")); err == nil {
		t.Fatal("wrong unit accepted")
	}
	self, err := RSS(os.Getpid())
	if err != nil || self <= 0 {
		t.Fatalf("own rss %d %v", self, err)
	}
}

func TestParseMetrics(t *testing.T) {
	text := `# HELP go_goroutines x
# TYPE go_goroutines gauge
go_goroutines 42
mop_ws_events_dropped_total{reason="slow_consumer"} 3
mop_ws_events_dropped_total{reason="duplicate"} 2
mop_ws_connections{protocol="4",transport="websocket"} 1e+03
weird{label="a b}"} 7
`
	m, err := ParseMetrics(strings.NewReader(text))
	if err != nil {
		t.Fatal(err)
	}
	if m.Sum("go_goroutines") != 42 || m.Sum("mop_ws_events_dropped_total") != 5 ||
		m.Sum("mop_ws_events_dropped_total", `reason="duplicate"`) != 2 || m.Sum("mop_ws_connections") != 1000 ||
		m.Sum("weird") != 7 || m.Sum("absent") != 0 {
		t.Fatalf("parsed %v", m)
	}
	if _, err := ParseMetrics(strings.NewReader("novalue\n")); err == nil {
		t.Fatal("line without value accepted")
	}
	if _, err := ParseMetrics(strings.NewReader("x notanumber\n")); err == nil {
		t.Fatal("bad value accepted")
	}
}

func TestParseStat(t *testing.T) {
	line := "1234 (api ws) S 1 1234 1234 0 -1 4194560 100 0 0 0 250 50 0 0 20 0 10 0 100 0 0"
	got, err := parseStat(line)
	if err != nil || got.Seconds() != 3 {
		t.Fatalf("got %v %v", got, err)
	}
	if _, err := parseStat("garbage"); err == nil {
		t.Fatal("garbage accepted")
	}
	if _, err := CPU(os.Getpid()); err != nil {
		t.Fatal(err)
	}
}
