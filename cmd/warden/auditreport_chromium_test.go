package main

import (
	"bytes"
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"golang.org/x/net/html"

	"github.com/warden-egress/warden/audit"
	"github.com/warden-egress/warden/internal/testenv"
)

const chromiumPath = "/usr/bin/chromium"

// TestAuditReportChromium renders the report page in headless Chromium and
// checks, in the DOM after the page's script ran, that every chart was
// drawn as SVG with one mark per item of the fixture, under the page's own
// Content-Security-Policy (a blocked script would draw nothing), and that
// no hostile name from the records became an element.
func TestAuditReportChromium(t *testing.T) {
	if _, err := os.Stat(chromiumPath); err != nil {
		testenv.Missing(t, "headless Chromium (%s): %v", chromiumPath, err)
	}
	dir := t.TempDir()
	page := filepath.Join(dir, "report.html")
	if _, errs, code := runAuditReport(t, "--html", page, reportFixture); code != 0 {
		t.Fatalf("audit report exit %d: %s", code, errs)
	}

	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	doc, dom := chromiumDOM(ctx, t, dir, page)

	// What the fixture must draw: one timeline segment per non-empty
	// (hour, app), one bar per denial reason, model and guard/type, one
	// cost bar and two token bars (in, out) per app.
	r, err := audit.BuildReport(ctx, []string{reportFixture}, audit.SourceOptions{}, audit.ReportOptions{})
	if err != nil {
		t.Fatal(err)
	}
	segments := 0
	for _, b := range r.Timeline {
		for _, n := range b.Apps {
			if n > 0 {
				segments++
			}
		}
	}
	want := map[string]int{
		"timeline": segments,
		"denials":  len(r.Reasons),
		"models":   len(r.Models),
		"tokens":   2 * len(r.Apps),
		"cost":     len(r.Apps),
		"findings": len(r.Findings),
		"paths":    len(r.Edges),
	}
	fixed := map[string]int{"timeline": 7, "denials": 4, "models": 4, "tokens": 8, "cost": 4, "findings": 3, "paths": 12}
	for k, n := range fixed {
		if want[k] != n {
			t.Fatalf("fixture changed: chart %s should have %d marks, the report says %d", k, n, want[k])
		}
	}

	seen := map[string]bool{}
	var walk func(n *html.Node)
	walk = func(n *html.Node) {
		if n.Type == html.ElementNode {
			if n.Data == "img" || n.Data == "b" {
				t.Errorf("the DOM has an <%s> element: a name from the records became markup", n.Data)
			}
			for _, a := range n.Attr {
				if strings.HasPrefix(a.Key, "on") {
					t.Errorf("<%s> has an event handler %s=%q", n.Data, a.Key, a.Val)
				}
			}
			if name := attr(n, "data-chart"); name != "" {
				seen[name] = true
				checkChart(t, n, name, want[name])
				return
			}
		}
		for c := n.FirstChild; c != nil; c = c.NextSibling {
			walk(c)
		}
	}
	walk(doc)
	for _, name := range audit.HTMLCharts() {
		if !seen[name] {
			t.Errorf("chart %s missing from the DOM", name)
		}
	}
	if t.Failed() {
		t.Logf("dumped DOM:\n%s", dom)
	}
}

// chromiumDOM loads page in headless Chromium and returns the DOM after
// its script ran.
func chromiumDOM(ctx context.Context, t *testing.T, dir, page string) (*html.Node, string) {
	t.Helper()
	cmd := exec.CommandContext(ctx, chromiumPath,
		"--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
		"--disable-background-networking", "--disable-component-update", "--disable-sync",
		"--disable-dev-shm-usage", "--user-data-dir="+filepath.Join(dir, "profile"),
		"--virtual-time-budget=5000", "--dump-dom", "file://"+page)
	cmd.Env = append(os.Environ(), "HOME="+dir)
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	if err := cmd.Run(); err != nil {
		t.Fatalf("chromium: %v\n%s", err, stderr.String())
	}
	dom := stdout.String()
	doc, err := html.Parse(&stdout)
	if err != nil {
		t.Fatalf("dumped DOM: %v", err)
	}
	return doc, dom
}

// TestAuditReportPathsChromium renders the paths fixture's page with an
// exposure view in headless Chromium and checks that every access path is
// drawn: each of its three edges is a ribbon (a mark naming its layer and
// ends, with the edge's calls) in the access-path graph, and every path of
// the exposure view likewise in the exposure graph, whose table lists
// every matching record id.
func TestAuditReportPathsChromium(t *testing.T) {
	if _, err := os.Stat(chromiumPath); err != nil {
		testenv.Missing(t, "headless Chromium (%s): %v", chromiumPath, err)
	}
	const fixture = "../../audit/testdata/report/paths.jsonl"
	const model = "anthropic.claude-3-5-haiku-20241022-v1:0"
	dir := t.TempDir()
	page := filepath.Join(dir, "report.html")
	if _, errs, code := runAuditReport(t, "--html", page, "--model", model, fixture); code != 0 {
		t.Fatalf("audit report exit %d: %s", code, errs)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	doc, dom := chromiumDOM(ctx, t, dir, page)

	f := audit.ExposureFilter{Model: model}
	r, err := audit.BuildReport(ctx, []string{fixture}, audit.SourceOptions{}, audit.ReportOptions{Exposure: &f})
	if err != nil {
		t.Fatal(err)
	}
	if len(r.Paths) != 8 || len(r.Edges) != 19 || len(r.Exposure.Paths) != 4 || len(r.Exposure.Edges) != 10 {
		t.Fatalf("fixture changed: %d paths, %d edges, exposure %d paths, %d edges", len(r.Paths), len(r.Edges), len(r.Exposure.Paths), len(r.Exposure.Edges))
	}

	type edge struct {
		layer    int
		from, to string
	}
	drawn := map[string]map[edge]int{} // chart -> edge -> data-calls
	charts := map[string]*html.Node{}
	parts := map[string]map[string]int{} // chart -> "deny"/"dry-run" -> shares drawn
	var ids []string
	var walk func(n *html.Node, chart string)
	walk = func(n *html.Node, chart string) {
		if n.Type == html.ElementNode {
			if c := attr(n, "data-chart"); c != "" {
				chart = c
				charts[c] = n
			}
			if n.Data == "path" && strings.Contains(" "+attr(n, "class")+" ", " mark ") && chart != "" {
				layer, err1 := strconv.Atoi(attr(n, "data-layer"))
				calls, err2 := strconv.Atoi(attr(n, "data-calls"))
				if err1 != nil || err2 != nil {
					t.Errorf("chart %s: a ribbon without data-layer/data-calls: %v", chart, n.Attr)
				}
				if drawn[chart] == nil {
					drawn[chart] = map[edge]int{}
				}
				e := edge{layer, attr(n, "data-from"), attr(n, "data-to")}
				if _, dup := drawn[chart][e]; dup {
					t.Errorf("chart %s: edge %+v drawn twice", chart, e)
				}
				drawn[chart][e] = calls
			}
			if cl := strings.Fields(attr(n, "class")); n.Data == "path" && len(cl) == 2 && cl[0] == "part" && chart != "" {
				if parts[chart] == nil {
					parts[chart] = map[string]int{}
				}
				parts[chart][cl[1]]++
			}
			if n.Data == "td" && attr(n, "class") == "ids" {
				for c := n.FirstChild; c != nil; c = c.NextSibling {
					if c.Type == html.ElementNode && c.Data == "code" && c.FirstChild != nil {
						ids = append(ids, c.FirstChild.Data)
					}
				}
			}
		}
		for c := n.FirstChild; c != nil; c = c.NextSibling {
			walk(c, chart)
		}
	}
	walk(doc, "")

	check := func(chart string, paths []audit.PathKey, edges []audit.EdgeStats) {
		n := charts[chart]
		if n == nil {
			t.Errorf("chart %s missing from the DOM", chart)
			return
		}
		checkChart(t, n, chart, len(edges))
		calls := map[edge]int{}
		for _, e := range edges {
			calls[edge{e.Layer, e.From, e.To}] = e.Calls
		}
		for _, p := range paths {
			for layer := 0; layer < 3; layer++ {
				e := edge{layer, p.Node(layer), p.Node(layer + 1)}
				got, ok := drawn[chart][e]
				if !ok {
					t.Errorf("chart %s: path %+v: edge %s -> %s (layer %d) not drawn", chart, p, e.from, e.to, layer)
				} else if got != calls[e] {
					t.Errorf("chart %s: edge %+v drawn with %d calls, want %d", chart, e, got, calls[e])
				}
			}
		}
		if len(drawn[chart]) != len(edges) {
			t.Errorf("chart %s: %d ribbons drawn, want %d", chart, len(drawn[chart]), len(edges))
		}
		// Each edge that carried denials (dry-run denials) shows their share.
		var deny, dry int
		for _, e := range edges {
			if e.Denied > 0 {
				deny++
			}
			if e.DryRunDeny > 0 {
				dry++
			}
		}
		if parts[chart]["deny"] != deny || parts[chart]["dry-run"] != dry {
			t.Errorf("chart %s: denied shares %v, want %d deny and %d dry-run", chart, parts[chart], deny, dry)
		}
	}
	var keys, exposed []audit.PathKey
	for _, p := range r.Paths {
		keys = append(keys, p.PathKey)
	}
	var wantIDs []string
	for _, p := range r.Exposure.Paths {
		exposed = append(exposed, p.PathKey)
		wantIDs = append(wantIDs, p.RecordIDs...)
	}
	check("paths", keys, r.Edges)
	check("exposure", exposed, r.Exposure.Edges)
	if strings.Join(ids, " ") != strings.Join(wantIDs, " ") || len(ids) != 4 {
		t.Errorf("exposure table record ids %q, want %q", ids, wantIDs)
	}
	if t.Failed() {
		t.Logf("dumped DOM:\n%s", dom)
	}
}

// checkChart: data-drawn says how many marks the script drew, the svg holds
// exactly that many, and that is the number the fixture calls for.
func checkChart(t *testing.T, n *html.Node, name string, want int) {
	t.Helper()
	drawn, err := strconv.Atoi(attr(n, "data-drawn"))
	if err != nil || drawn <= 0 {
		t.Errorf("chart %s: data-drawn=%q, want a positive count (did the script run?)", name, attr(n, "data-drawn"))
		return
	}
	var svgs, marks, shapes int
	var walk func(c *html.Node)
	walk = func(c *html.Node) {
		if c.Type == html.ElementNode {
			switch c.Data {
			case "svg":
				svgs++
			case "rect", "path", "circle":
				shapes++
				if strings.Contains(" "+attr(c, "class")+" ", " mark ") {
					marks++
				}
			}
		}
		for k := c.FirstChild; k != nil; k = k.NextSibling {
			walk(k)
		}
	}
	walk(n)
	if svgs != 1 || shapes == 0 {
		t.Errorf("chart %s: %d svg elements and %d shapes, want one svg with shapes", name, svgs, shapes)
	}
	if marks != drawn || drawn != want {
		t.Errorf("chart %s: data-drawn %d, %d marks in the svg, want %d", name, drawn, marks, want)
	}
}

func attr(n *html.Node, key string) string {
	for _, a := range n.Attr {
		if a.Key == key {
			return a.Val
		}
	}
	return ""
}
