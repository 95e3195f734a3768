// Command charts draws the headline figures of a benchmark run as SVG bar
// charts: it reads the JSON that bench/run.sh writes next to
// bench/results.md and writes, into the output directory,
//
//	hit-ratio.svg  hits ÷ respond (requests per CPU-second) by body size
//	rss.svg        RSS growth per stored entry, with the goal and the body size
//	fill.svg       time of the fill of distinct misses
//
// A chart whose figures the run did not measure is not written.
//
//	go run ./bench/charts -in bench/results.json -out bench
package main

import (
	"encoding/json"
	"flag"
	"fmt"
	"html"
	"math"
	"os"
	"path/filepath"
	"strings"
)

// Results is the part of bench/results.json the charts use.
type Results struct {
	Generated string `json:"generated"`
	Commit    string `json:"commit"`
	LoadStart string `json:"load_start"`
	LoadEnd   string `json:"load_end"`
	HitRatio  []struct {
		Size   string  `json:"size"`
		Target string  `json:"target"`
		Ratio  float64 `json:"ratio"`
	} `json:"hit_ratio"`
	RSS []struct {
		Store         string  `json:"store"`
		Size          string  `json:"size"`
		Body          float64 `json:"body"`
		Entries       int     `json:"entries"`
		BytesPerEntry float64 `json:"bytes_per_entry"`
	} `json:"rss"`
	Fill []struct {
		Target  string  `json:"target"`
		Entries int     `json:"entries"`
		Size    string  `json:"size"`
		Seconds float64 `json:"seconds"`
	} `json:"fill"`
}

// Chart is a grouped bar chart: Values[s][g] is the bar of series s in
// group g (NaN: no bar).
type Chart struct {
	Title  string
	Note   string // a line under the title
	Unit   string // of the y axis
	Groups []string
	Series []string
	Values [][]float64
	// Line, when > 0, is drawn across the chart and labelled LineLabel.
	Line      float64
	LineLabel string
}

func main() {
	in := flag.String("in", "bench/results.json", "the JSON written by bench/run.sh")
	out := flag.String("out", "bench", "directory of the SVG files")
	flag.Parse()
	data, err := os.ReadFile(*in)
	if err != nil {
		fail(err)
	}
	var r Results
	if err := json.Unmarshal(data, &r); err != nil {
		fail(fmt.Errorf("%s: %w", *in, err))
	}
	for name, c := range Charts(&r) {
		path := filepath.Join(*out, name)
		if err := os.WriteFile(path, []byte(c.SVG()), 0o644); err != nil { //nolint:gosec // G306: charts are documentation, readable by all
			fail(err)
		}
		fmt.Fprintln(os.Stderr, "charts: wrote", path)
	}
}

func fail(err error) {
	fmt.Fprintln(os.Stderr, "charts:", err)
	os.Exit(1)
}

// Charts builds the charts of r, by file name.
func Charts(r *Results) map[string]Chart {
	note := fmt.Sprintf("%s, commit %s; load average %s at the start, %s at the end", r.Generated, r.Commit, r.LoadStart, r.LoadEnd)
	charts := map[string]Chart{}

	if len(r.HitRatio) > 0 {
		c := Chart{
			Title: "Hit throughput ÷ Caddy respond (requests per CPU-second)", Note: note,
			Unit: "× respond", Line: 1, LineLabel: "respond",
		}
		for _, h := range r.HitRatio {
			g, s := c.index(h.Size, h.Target)
			c.Values[s][g] = h.Ratio
		}
		charts["hit-ratio.svg"] = c
	}

	if len(r.RSS) > 0 {
		c := Chart{Title: "RSS growth per stored entry", Note: note, Unit: "KiB per entry"}
		for _, e := range r.RSS { // the stores first, then the goal and the body
			g, s := c.index(fmt.Sprintf("%s × %d", e.Size, e.Entries), e.Store)
			c.Values[s][g] = e.BytesPerEntry / 1024
		}
		for _, e := range r.RSS {
			g, s := c.index(fmt.Sprintf("%s × %d", e.Size, e.Entries), "goal: 1.1 × body + 1 KiB")
			c.Values[s][g] = (1.1*e.Body + 1024) / 1024
			g, s = c.index(fmt.Sprintf("%s × %d", e.Size, e.Entries), "body")
			c.Values[s][g] = e.Body / 1024
		}
		charts["rss.svg"] = c
	}

	if len(r.Fill) > 0 {
		f := r.Fill[0]
		c := Chart{Title: fmt.Sprintf("Time to fill %d distinct %s misses", f.Entries, f.Size), Note: note, Unit: "seconds"}
		for _, f := range r.Fill {
			g, s := c.index("", f.Target)
			c.Values[s][g] = f.Seconds
		}
		charts["fill.svg"] = c
	}
	return charts
}

// index returns the positions of group and series, adding them (with
// no bars) when new.
func (c *Chart) index(group, series string) (g, s int) {
	g, s = -1, -1
	for i, x := range c.Groups {
		if x == group {
			g = i
		}
	}
	if g < 0 {
		c.Groups = append(c.Groups, group)
		g = len(c.Groups) - 1
		for i := range c.Values {
			c.Values[i] = append(c.Values[i], math.NaN())
		}
	}
	for i, x := range c.Series {
		if x == series {
			s = i
		}
	}
	if s < 0 {
		c.Series = append(c.Series, series)
		s = len(c.Series) - 1
		row := make([]float64, len(c.Groups))
		for i := range row {
			row[i] = math.NaN()
		}
		c.Values = append(c.Values, row)
	}
	return g, s
}

var palette = []string{"#4e79a7", "#f28e2b", "#59a14f", "#e15759", "#76b7b2", "#edc948", "#b07aa1", "#9c755f"}

// SVG draws the chart.
func (c Chart) SVG() string {
	const (
		left, right, top, bottom = 70.0, 20.0, 60.0, 60.0
		barW, gap                = 22.0, 30.0
	)
	bars := len(c.Series)
	groupW := float64(bars)*barW + gap
	// wide enough for the bars and for the note (about 6 px a character)
	plotW := math.Max(float64(len(c.Groups))*groupW, math.Max(360, 6*float64(len([]rune(c.Note)))-left))
	legendH := 18.0 * float64(len(c.Series))
	plotH := 260.0
	width := left + plotW + right
	height := top + plotH + bottom + legendH

	maxV := c.Line
	for _, row := range c.Values {
		for _, v := range row {
			if !math.IsNaN(v) && v > maxV {
				maxV = v
			}
		}
	}
	step := niceStep(maxV / 5)
	if step <= 0 {
		step = 1
	}
	top5 := math.Ceil(maxV/step) * step
	if top5 <= 0 {
		top5 = step
	}
	y := func(v float64) float64 { return top + plotH - v/top5*plotH }

	var b strings.Builder
	fmt.Fprintf(&b, `<svg xmlns="http://www.w3.org/2000/svg" width="%.0f" height="%.0f" viewBox="0 0 %.0f %.0f" font-family="sans-serif" font-size="12">`+"\n", width, height, width, height)
	fmt.Fprintf(&b, `<rect width="100%%" height="100%%" fill="#ffffff"/>`+"\n")
	fmt.Fprintf(&b, `<text x="%.0f" y="22" font-size="15" font-weight="bold">%s</text>`+"\n", left, esc(c.Title))
	fmt.Fprintf(&b, `<text x="%.0f" y="40" font-size="11" fill="#555555">%s</text>`+"\n", left, esc(c.Note))
	for v := 0.0; v <= top5+step/2; v += step {
		fmt.Fprintf(&b, `<line x1="%.0f" x2="%.0f" y1="%.1f" y2="%.1f" stroke="#dddddd"/>`+"\n", left, left+plotW, y(v), y(v))
		fmt.Fprintf(&b, `<text x="%.0f" y="%.1f" text-anchor="end">%s</text>`+"\n", left-6, y(v)+4, label(v))
	}
	fmt.Fprintf(&b, `<text x="14" y="%.0f" transform="rotate(-90 14 %.0f)" text-anchor="middle">%s</text>`+"\n", top+plotH/2, top+plotH/2, esc(c.Unit))
	for g, name := range c.Groups {
		x0 := left + gap/2 + float64(g)*groupW
		for s := range c.Series {
			v := c.Values[s][g]
			if math.IsNaN(v) {
				continue
			}
			x := x0 + float64(s)*barW
			fmt.Fprintf(&b, `<rect x="%.1f" y="%.1f" width="%.1f" height="%.1f" fill="%s"><title>%s %s: %s</title></rect>`+"\n",
				x, y(v), barW-2, top+plotH-y(v), palette[s%len(palette)], esc(c.Series[s]), esc(name), label(v))
			fmt.Fprintf(&b, `<text x="%.1f" y="%.1f" text-anchor="middle" font-size="9">%s</text>`+"\n", x+(barW-2)/2, y(v)-3, short(v))
		}
		fmt.Fprintf(&b, `<text x="%.1f" y="%.0f" text-anchor="middle">%s</text>`+"\n", x0+float64(bars)*barW/2, top+plotH+18, esc(name))
	}
	if c.Line > 0 {
		fmt.Fprintf(&b, `<line x1="%.0f" x2="%.0f" y1="%.1f" y2="%.1f" stroke="#000000" stroke-dasharray="5,3"/>`+"\n", left, left+plotW, y(c.Line), y(c.Line))
		fmt.Fprintf(&b, `<text x="%.0f" y="%.1f" text-anchor="end" font-size="11">%s</text>`+"\n", left+plotW, y(c.Line)-4, esc(c.LineLabel))
	}
	fmt.Fprintf(&b, `<line x1="%.0f" x2="%.0f" y1="%.0f" y2="%.0f" stroke="#000000"/>`+"\n", left, left+plotW, top+plotH, top+plotH)
	for s, name := range c.Series {
		ly := top + plotH + bottom - 16 + float64(s)*18
		fmt.Fprintf(&b, `<rect x="%.0f" y="%.0f" width="12" height="12" fill="%s"/>`+"\n", left, ly, palette[s%len(palette)])
		fmt.Fprintf(&b, `<text x="%.0f" y="%.0f">%s</text>`+"\n", left+18, ly+11, esc(name))
	}
	b.WriteString("</svg>\n")
	return b.String()
}

// niceStep rounds x up to 1, 2 or 5 times a power of ten.
func niceStep(x float64) float64 {
	if x <= 0 || math.IsNaN(x) || math.IsInf(x, 0) {
		return 0
	}
	p := math.Pow(10, math.Floor(math.Log10(x)))
	for _, m := range []float64{1, 2, 5, 10} {
		if m*p >= x {
			return m * p
		}
	}
	return 10 * p
}

// label formats a figure with at most two decimals.
func label(v float64) string {
	s := fmt.Sprintf("%.2f", v)
	s = strings.TrimRight(s, "0")
	return strings.TrimSuffix(s, ".")
}

// short formats a figure for the top of a bar: three significant digits.
func short(v float64) string {
	switch {
	case v >= 100:
		return fmt.Sprintf("%.0f", v)
	case v >= 10:
		return fmt.Sprintf("%.1f", v)
	}
	return fmt.Sprintf("%.2f", v)
}

func esc(s string) string { return html.EscapeString(s) }
