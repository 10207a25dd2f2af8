package report

import (
	"fmt"
	"image/color"
	"path/filepath"

	"gonum.org/v1/plot"
	"gonum.org/v1/plot/plotter"
	"gonum.org/v1/plot/vg"

	"github.com/chat5202ol/mop/services/loadgen/internal/bench"
)

var colors = map[string]color.Color{
	"mop":  color.RGBA{R: 0x1f, G: 0x77, B: 0xb4, A: 0xff},
	"node": color.RGBA{R: 0xd6, G: 0x27, B: 0x28, A: 0xff},
}

// Plots writes the PNGs it has data for and returns their file names.
func Plots(dir string, r *bench.Report) ([]string, error) {
	var out []string
	cdf := plot.New()
	cdf.Title.Text = "Fan-out delivery latency (CDF)"
	cdf.X.Label.Text = "latency from POST to receipt (ms, log)"
	cdf.Y.Label.Text = "fraction of deliveries"
	cdf.X.Scale = plot.LogScale{}
	cdf.X.Tick.Marker = plot.LogTicks{Prec: -1}
	cdf.Legend.Top = false
	rss := plot.New()
	rss.Title.Text = "Server RSS against idle connections"
	rss.X.Label.Text = "connections"
	rss.Y.Label.Text = "RSS (MB)"
	rss.Legend.Top = true
	rss.Legend.Left = true
	var haveCDF, haveRSS bool
	for _, name := range []string{"mop", "node"} {
		res := r.Systems[name]
		if res == nil {
			continue
		}
		if res.Fanout != nil && len(res.Fanout.CDF) > 0 {
			pts := make(plotter.XYs, 0, len(res.Fanout.CDF))
			for _, p := range res.Fanout.CDF {
				pts = append(pts, plotter.XY{X: max(p.Millis, 0.01), Y: p.Fraction})
			}
			l, err := plotter.NewLine(pts)
			if err != nil {
				return nil, fmt.Errorf("plot: %w", err)
			}
			l.Color = colors[name]
			l.Width = vg.Points(1.5)
			cdf.Add(l)
			cdf.Legend.Add(fmt.Sprintf("%s (%.0f/s to %d)", name, res.Fanout.Rate, res.Fanout.Members), l)
			haveCDF = true
		}
		if res.Idle != nil && len(res.Idle.Points) > 1 {
			pts := make(plotter.XYs, 0, len(res.Idle.Points))
			for _, p := range res.Idle.Points {
				pts = append(pts, plotter.XY{X: float64(p.Conns), Y: float64(p.RSS) / 1e6})
			}
			l, s, err := plotter.NewLinePoints(pts)
			if err != nil {
				return nil, fmt.Errorf("plot: %w", err)
			}
			l.Color, s.Color = colors[name], colors[name]
			rss.Add(l, s)
			rss.Legend.Add(fmt.Sprintf("%s (%.1f KB/conn)", name, res.Idle.KBPerConn), l)
			haveRSS = true
		}
	}
	cdf.Add(plotter.NewGrid())
	rss.Add(plotter.NewGrid())
	if haveCDF {
		if err := cdf.Save(7*vg.Inch, 4.5*vg.Inch, filepath.Join(dir, "latency-cdf.png")); err != nil {
			return nil, fmt.Errorf("plot: %w", err)
		}
		out = append(out, "latency-cdf.png")
	}
	if haveRSS {
		if err := rss.Save(7*vg.Inch, 4.5*vg.Inch, filepath.Join(dir, "rss-connections.png")); err != nil {
			return nil, fmt.Errorf("plot: %w", err)
		}
		out = append(out, "rss-connections.png")
	}
	return out, nil
}
