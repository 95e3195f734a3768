package main

import (
	"encoding/json"
	"encoding/xml"
	"io"
	"math"
	"strconv"
	"strings"
	"testing"
)

const sample = `{
  "generated": "2026-12-03 08:00 UTC", "commit": "abc1234",
  "load_start": "1.00 2.00 3.00", "load_end": "1.50 2.00 3.00",
  "hit_ratio": [
    {"size": "1KB", "target": "reverse_proxy", "ratio": 0.37, "rps_ratio": 0.38},
    {"size": "1KB", "target": "cache-memory", "ratio": 1.01, "rps_ratio": 1.02},
    {"size": "16KB", "target": "cache-memory", "ratio": 1.06, "rps_ratio": 1.07}
  ],
  "rss": [
    {"store": "memory", "size": "4KB", "body": 4096, "entries": 20000, "bytes_per_entry": 9300},
    {"store": "hot-tier", "size": "4KB", "body": 4096, "entries": 20000, "bytes_per_entry": 10300}
  ],
  "fill": []
}`

func charts(t *testing.T) map[string]Chart {
	t.Helper()
	var r Results
	if err := json.Unmarshal([]byte(sample), &r); err != nil {
		t.Fatal(err)
	}
	return Charts(&r)
}

func TestChartsOnlyForMeasuredParts(t *testing.T) {
	c := charts(t)
	if _, ok := c["fill.svg"]; ok {
		t.Error("fill.svg drawn without fill figures")
	}
	if _, ok := c["hit-ratio.svg"]; !ok {
		t.Error("no hit-ratio.svg")
	}
	if _, ok := c["rss.svg"]; !ok {
		t.Error("no rss.svg")
	}
}

func TestChartGroupsAndSeries(t *testing.T) {
	h := charts(t)["hit-ratio.svg"]
	if got := strings.Join(h.Groups, ","); got != "1KB,16KB" {
		t.Errorf("groups %q, want 1KB,16KB", got)
	}
	if got := strings.Join(h.Series, ","); got != "reverse_proxy,cache-memory" {
		t.Errorf("series %q", got)
	}
	if v := h.Values[0][1]; !math.IsNaN(v) {
		t.Errorf("reverse_proxy at 16KB = %v, want no bar", v)
	}
	if v := h.Values[1][1]; v != 1.06 {
		t.Errorf("cache-memory at 16KB = %v, want 1.06", v)
	}
	r := charts(t)["rss.svg"]
	// memory, hot-tier, the goal and the body, in that order, in the one group
	if len(r.Groups) != 1 || strings.Join(r.Series, ",") != "memory,hot-tier,goal: 1.1 × body + 1 KiB,body" {
		t.Fatalf("rss groups %q series %q", r.Groups, r.Series)
	}
	if v := r.Values[2][0]; math.Abs(v-(1.1*4096+1024)/1024) > 1e-9 {
		t.Errorf("goal bar %v", v)
	}
}

func TestSVGIsWellFormed(t *testing.T) {
	for name, c := range charts(t) {
		svg := c.SVG()
		d := xml.NewDecoder(strings.NewReader(svg))
		rects := 0
		for {
			tok, err := d.Token()
			if err == io.EOF {
				break
			}
			if err != nil {
				t.Fatalf("%s: %v\n%s", name, err, svg)
			}
			if se, ok := tok.(xml.StartElement); ok && se.Name.Local == "rect" {
				rects++
			}
		}
		// the background, the legend keys and at least one bar
		if rects < 2+len(c.Series) {
			t.Errorf("%s: %d rects", name, rects)
		}
		if !strings.Contains(svg, "abc1234") {
			t.Errorf("%s: the commit is not on the chart", name)
		}
	}
}

func TestBarHeightsFollowValues(t *testing.T) {
	c := Chart{Title: "t", Unit: "u", Groups: []string{"g"}, Series: []string{"a", "b"}, Values: [][]float64{{1}, {2}}}
	svg := c.SVG()
	ha, hb := barHeight(t, svg, "a g"), barHeight(t, svg, "b g")
	if math.Abs(hb-2*ha) > 0.2 {
		t.Errorf("bar heights %v and %v, want the second twice the first", ha, hb)
	}
}

// barHeight finds the height of the bar titled title.
func barHeight(t *testing.T, svg, title string) float64 {
	t.Helper()
	d := xml.NewDecoder(strings.NewReader(svg))
	var h float64
	var inRect bool
	for {
		tok, err := d.Token()
		if err == io.EOF {
			break
		}
		if err != nil {
			t.Fatal(err)
		}
		switch x := tok.(type) {
		case xml.StartElement:
			if x.Name.Local == "rect" {
				inRect = true
				for _, a := range x.Attr {
					if a.Name.Local == "height" {
						h, _ = strconv.ParseFloat(a.Value, 64) // the background's is "100%"
					}
				}
			}
		case xml.CharData:
			if inRect && strings.HasPrefix(string(x), title+":") {
				return h
			}
		case xml.EndElement:
			if x.Name.Local == "rect" {
				inRect = false
			}
		}
	}
	t.Fatalf("no bar %q", title)
	return 0
}

func TestNiceStep(t *testing.T) {
	for _, c := range []struct{ in, want float64 }{{0.23, 0.5}, {1, 1}, {1.2, 2}, {3, 5}, {7, 10}, {0, 0}} {
		if got := niceStep(c.in); math.Abs(got-c.want) > 1e-12 {
			t.Errorf("niceStep(%v) = %v, want %v", c.in, got, c.want)
		}
	}
}
