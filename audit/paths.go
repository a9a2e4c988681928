package audit

import (
	"bytes"
	"fmt"
	"io"
	"slices"
	"strings"
	"text/tabwriter"
	"time"
)

// PathLayers names the access-path view's layers, left to right: the
// caller's account, its network (VPC/subnet), the app, the model.
var pathLayers = [4]string{"account", "vpc/subnet", "app", "model"}

// PathLayers returns the access-path view's layer names, left to right.
func PathLayers() []string { return pathLayers[:] }

// PathKey is one access path: account → VPC/subnet → app → model.
type PathKey struct {
	Account string // the record's src_account, else Account(tags)
	Network string // see Network
	App     string
	Model   string // canonical id, else as requested
}

// Node returns the path's node in layer i (0 to 3).
func (k PathKey) Node(i int) string {
	return [4]string{k.Account, k.Network, k.App, k.Model}[i]
}

// PathCounts are the calls on a path or an edge: how many, how many were
// denied or dry-run denied, and the guard findings they carried (the sum
// of the findings' counts).
type PathCounts struct {
	Calls, Denied, DryRunDeny, Findings int
}

func (c *PathCounts) add(r *Record) {
	n := r.Calls()
	c.Calls += n
	switch r.Decision {
	case DecisionDeny:
		c.Denied += n
	case DecisionDryRunDeny:
		c.DryRunDeny += n
	}
	for _, f := range r.Findings {
		if f.Count > 0 {
			c.Findings += f.Count
		}
	}
}

// PathStats are one access path's calls.
type PathStats struct {
	PathKey
	PathCounts
}

// EdgeStats are the calls over one edge of the access-path graph: from a
// node of layer Layer to a node of layer Layer+1.
type EdgeStats struct {
	Layer    int
	From, To string
	PathCounts
}

// Network is a record's network node: "VPC/subnet" as far as known, the
// VPC endpoint the call came through when neither is, "" when nothing is
// (a sidecar's or a routed caller's record without EC2 identity).
func Network(p Path) string {
	switch {
	case p.VPC != "" && p.Subnet != "":
		return p.VPC + "/" + p.Subnet
	case p.VPC != "":
		return p.VPC
	case p.Subnet != "":
		return p.Subnet
	}
	return p.VPCEndpoint
}

// RecordPath is the access path a record took.
func RecordPath(r *Record) PathKey {
	acct := r.Path.Account
	if acct == "" {
		acct = Account(r.Tags)
	}
	model := r.ModelCanonical
	if model == "" {
		model = r.Model
	}
	return PathKey{Account: acct, Network: Network(r.Path), App: r.App, Model: model}
}

// paths aggregates access paths; edges are derived from them.
type paths map[PathKey]*PathCounts

func (p paths) add(r *Record) {
	k := RecordPath(r)
	c := p[k]
	if c == nil {
		c = &PathCounts{}
		p[k] = c
	}
	c.add(r)
}

func (p paths) stats() ([]PathStats, []EdgeStats) {
	out := make([]PathStats, 0, len(p))
	edges := map[EdgeStats]*PathCounts{} // key: layer, from, to (counts zero)
	for k, c := range p {
		out = append(out, PathStats{PathKey: k, PathCounts: *c})
		for i := 0; i < 3; i++ {
			ek := EdgeStats{Layer: i, From: k.Node(i), To: k.Node(i + 1)}
			e := edges[ek]
			if e == nil {
				e = &PathCounts{}
				edges[ek] = e
			}
			e.Calls += c.Calls
			e.Denied += c.Denied
			e.DryRunDeny += c.DryRunDeny
			e.Findings += c.Findings
		}
	}
	slices.SortFunc(out, func(x, y PathStats) int {
		if x.Calls != y.Calls {
			return y.Calls - x.Calls
		}
		return comparePathKeys(x.PathKey, y.PathKey)
	})
	es := make([]EdgeStats, 0, len(edges))
	for k, c := range edges {
		k.PathCounts = *c
		es = append(es, k)
	}
	slices.SortFunc(es, func(x, y EdgeStats) int {
		if x.Layer != y.Layer {
			return x.Layer - y.Layer
		}
		if x.Calls != y.Calls {
			return y.Calls - x.Calls
		}
		if c := strings.Compare(x.From, y.From); c != 0 {
			return c
		}
		return strings.Compare(x.To, y.To)
	})
	return out, es
}

func comparePathKeys(x, y PathKey) int {
	for i := 0; i < 4; i++ {
		if c := strings.Compare(x.Node(i), y.Node(i)); c != 0 {
			return c
		}
	}
	return 0
}

// ExposureFilter selects the records of an exposure view. Every field set
// must match; an empty filter matches every record. Times bound the call
// time, From inclusive and To exclusive (a record without a time matches
// no range).
type ExposureFilter struct {
	Account string // the path's account
	VPC     string
	Subnet  string
	App     string
	// Model matches the canonical id or the id as requested.
	Model string
	// FindingType matches a finding's type ("EMAIL") or guard/type
	// ("pii-block/EMAIL").
	FindingType string
	From, To    time.Time
}

// Match says whether r is in the view.
func (f *ExposureFilter) Match(r *Record) bool {
	if f.Account != "" && RecordPath(r).Account != f.Account {
		return false
	}
	if f.VPC != "" && r.Path.VPC != f.VPC {
		return false
	}
	if f.Subnet != "" && r.Path.Subnet != f.Subnet {
		return false
	}
	if f.App != "" && r.App != f.App {
		return false
	}
	if f.Model != "" && r.Model != f.Model && r.ModelCanonical != f.Model {
		return false
	}
	if f.FindingType != "" && !slices.ContainsFunc(r.Findings, func(x Finding) bool {
		return x.Type == f.FindingType || x.Guard+"/"+x.Type == f.FindingType
	}) {
		return false
	}
	if !f.From.IsZero() || !f.To.IsZero() {
		if r.Time.IsZero() || (!f.From.IsZero() && r.Time.Before(f.From)) || (!f.To.IsZero() && !r.Time.Before(f.To)) {
			return false
		}
	}
	return true
}

// String is the filter as the view's heading shows it.
func (f *ExposureFilter) String() string {
	var parts []string
	for _, kv := range [][2]string{{"account", f.Account}, {"vpc", f.VPC}, {"subnet", f.Subnet}, {"app", f.App},
		{"model", f.Model}, {"finding-type", f.FindingType}} {
		if kv[1] != "" {
			parts = append(parts, kv[0]+"="+textSafe(kv[1]))
		}
	}
	if !f.From.IsZero() {
		parts = append(parts, "from="+f.From.UTC().Format(time.RFC3339))
	}
	if !f.To.IsZero() {
		parts = append(parts, "to="+f.To.UTC().Format(time.RFC3339))
	}
	if len(parts) == 0 {
		return "all records"
	}
	return strings.Join(parts, " ")
}

// Exposure is the exposure view: every path the matching records took,
// with the ids of those records.
type Exposure struct {
	Filter  ExposureFilter
	Records int // matching call records
	Calls   int // the calls they stand for
	Paths   []ExposurePath
	Edges   []EdgeStats
}

// ExposurePath is one path of the exposure view.
type ExposurePath struct {
	PathKey
	PathCounts
	First, Last time.Time
	// RecordIDs are the matching records' request ids in time order
	// ("" for a record without one).
	RecordIDs []string
}

type exposureAcc struct {
	filter  ExposureFilter
	records int
	calls   int
	paths   paths
	ids     map[PathKey][]idAt
}

type idAt struct {
	t  time.Time
	id string
}

func newExposureAcc(f ExposureFilter) *exposureAcc {
	return &exposureAcc{filter: f, paths: paths{}, ids: map[PathKey][]idAt{}}
}

func (e *exposureAcc) add(r *Record) {
	if !e.filter.Match(r) {
		return
	}
	e.records++
	e.calls += r.Calls()
	e.paths.add(r)
	k := RecordPath(r)
	e.ids[k] = append(e.ids[k], idAt{r.Time, r.RequestID})
}

func (e *exposureAcc) exposure() *Exposure {
	ps, es := e.paths.stats()
	x := &Exposure{Filter: e.filter, Records: e.records, Calls: e.calls, Edges: es}
	for _, p := range ps {
		ids := slices.Clone(e.ids[p.PathKey])
		slices.SortStableFunc(ids, func(a, b idAt) int {
			if c := a.t.Compare(b.t); c != 0 {
				return c
			}
			return strings.Compare(a.id, b.id)
		})
		ep := ExposurePath{PathKey: p.PathKey, PathCounts: p.PathCounts}
		for _, i := range ids {
			if !i.t.IsZero() {
				if ep.First.IsZero() {
					ep.First = i.t
				}
				ep.Last = i.t
			}
			ep.RecordIDs = append(ep.RecordIDs, i.id)
		}
		x.Paths = append(x.Paths, ep)
	}
	return x
}

// writePathsText writes the access-path sections of the text report.
func (r *Report) writePathsText(tw *tabwriter.Writer, section func(string)) {
	section("Access paths (account -> vpc/subnet -> app -> model)")
	fmt.Fprintf(tw, "ACCOUNT\tVPC/SUBNET\tAPP\tMODEL\tCALLS\tDENY\tDRY-RUN-DENY\tFINDINGS\n")
	for _, p := range r.Paths {
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%d\t%d\t%d\t%d\n", textSafe(p.Account), textSafe(p.Network), textSafe(p.App),
			textSafe(p.Model), p.Calls, p.Denied, p.DryRunDeny, p.Findings)
	}
	section("Access path edges")
	writeEdgesText(tw, r.Edges)
}

func writeEdgesText(tw *tabwriter.Writer, edges []EdgeStats) {
	fmt.Fprintf(tw, "LAYER\tFROM\tTO\tCALLS\tDENY\tDRY-RUN-DENY\tFINDINGS\n")
	for _, e := range edges {
		fmt.Fprintf(tw, "%s\t%s\t%s\t%d\t%d\t%d\t%d\n", pathLayers[e.Layer]+" -> "+pathLayers[e.Layer+1], textSafe(e.From), textSafe(e.To),
			e.Calls, e.Denied, e.DryRunDeny, e.Findings)
	}
}

// writeExposureText writes the exposure view's sections.
func (x *Exposure) writeText(tw *tabwriter.Writer, section func(string)) {
	section("Exposure: " + x.Filter.String())
	fmt.Fprintf(tw, "matching calls\t%d\n", x.Calls)
	fmt.Fprintf(tw, "matching records\t%d\n", x.Records)
	fmt.Fprintf(tw, "paths\t%d\n", len(x.Paths))
	section("Exposure paths")
	fmt.Fprintf(tw, "ACCOUNT\tVPC/SUBNET\tAPP\tMODEL\tCALLS\tDENY\tDRY-RUN-DENY\tFINDINGS\tFIRST\tLAST\tRECORD IDS\n")
	for _, p := range x.Paths {
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%d\t%d\t%d\t%d\t%s\t%s\t%s\n", textSafe(p.Account), textSafe(p.Network), textSafe(p.App),
			textSafe(p.Model), p.Calls, p.Denied, p.DryRunDeny, p.Findings, fmtTime(p.First), fmtTime(p.Last), joinIDs(p.RecordIDs))
	}
	section("Exposure edges")
	writeEdgesText(tw, x.Edges)
}

// writeTextTo writes the exposure view alone, as WriteText ends with it.
func (x *Exposure) writeTextTo(w io.Writer) error {
	var buf bytes.Buffer
	tw := tabwriter.NewWriter(&buf, 0, 0, 2, ' ', 0)
	x.writeText(tw, func(title string) {
		_ = tw.Flush()
		fmt.Fprintf(&buf, "\n%s\n", title)
	})
	if err := tw.Flush(); err != nil {
		return err
	}
	_, err := w.Write(buf.Bytes())
	return err
}

func fmtTime(t time.Time) string {
	if t.IsZero() {
		return "-"
	}
	return t.UTC().Format(time.RFC3339)
}

// joinIDs lists record ids for the text view, each made terminal-safe.
func joinIDs(ids []string) string {
	out := make([]string, len(ids))
	for i, id := range ids {
		out[i] = textSafe(id)
	}
	return strings.Join(out, " ")
}

// sankeyData is what the page's script draws as a layered graph: the
// nodes of each layer and the edges between neighbouring layers (From and
// To index Nodes).
type sankeyData struct {
	Layers []string     `json:"layers"`
	Nodes  []sankeyNode `json:"nodes"`
	Edges  []sankeyEdge `json:"edges"`
	Paths  [][4]int     `json:"paths"` // each path's nodes, in path order
}

type sankeyNode struct {
	Layer int    `json:"layer"`
	Name  string `json:"name"`
}

type sankeyEdge struct {
	From       int `json:"from"`
	To         int `json:"to"`
	Calls      int `json:"calls"`
	Denied     int `json:"deny"`
	DryRunDeny int `json:"dry"`
	Findings   int `json:"findings"`
}

func newSankey(ps []PathKey, edges []EdgeStats) *sankeyData {
	d := &sankeyData{Layers: PathLayers()}
	idx := map[sankeyNode]int{}
	node := func(layer int, name string) int {
		k := sankeyNode{layer, name}
		if i, ok := idx[k]; ok {
			return i
		}
		idx[k] = len(d.Nodes)
		d.Nodes = append(d.Nodes, k)
		return idx[k]
	}
	for _, e := range edges {
		d.Edges = append(d.Edges, sankeyEdge{From: node(e.Layer, e.From), To: node(e.Layer+1, e.To),
			Calls: e.Calls, Denied: e.Denied, DryRunDeny: e.DryRunDeny, Findings: e.Findings})
	}
	for _, p := range ps {
		var n [4]int
		for i := range n {
			n[i] = node(i, p.Node(i))
		}
		d.Paths = append(d.Paths, n)
	}
	return d
}

func (r *Report) sankey() *sankeyData {
	keys := make([]PathKey, len(r.Paths))
	for i, p := range r.Paths {
		keys[i] = p.PathKey
	}
	return newSankey(keys, r.Edges)
}

func (x *Exposure) sankey() *sankeyData {
	keys := make([]PathKey, len(x.Paths))
	for i, p := range x.Paths {
		keys[i] = p.PathKey
	}
	return newSankey(keys, x.Edges)
}
