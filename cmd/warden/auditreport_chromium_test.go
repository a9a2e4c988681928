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
	doc, err := html.Parse(&stdout)
	if err != nil {
		t.Fatalf("dumped DOM: %v", err)
	}

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
	}
	fixed := map[string]int{"timeline": 7, "denials": 4, "models": 4, "tokens": 8, "cost": 4, "findings": 3}
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
		t.Logf("dumped DOM:\n%s", stdout.String())
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
