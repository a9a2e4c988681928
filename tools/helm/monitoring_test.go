package helm_test

import (
	"bytes"
	"os"
	"path/filepath"
	"reflect"
	"slices"
	"testing"

	"sigs.k8s.io/yaml"
)

// alertsFile is the repository's alerting rules, which proxy's
// TestAlertRulesParse and TestMonitoringMetricsExist check against a
// running Warden.
var alertsFile = filepath.Join("..", "..", "deploy", "monitoring", "warden-alerts.yaml")

// TestPrometheusRule: with monitoring.prometheusRule the chart renders
// deploy/monitoring/warden-alerts.yaml as a PrometheusRule: its copy in the
// chart is the file byte for byte, the rendered groups are the file's
// (Helm reads it as data: the rules' {{ $labels.… }} reach Prometheus
// unchanged), the bundle alerts are among them, and the labels a
// Prometheus' ruleSelector needs are on it. TestServerSideDryRun applies it
// after the PrometheusRule CRD.
func TestPrometheusRule(t *testing.T) {
	want, err := os.ReadFile(alertsFile)
	if err != nil {
		t.Fatal(err)
	}
	copied, err := os.ReadFile(filepath.Join(chartDir, "files", "monitoring", "warden-alerts.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(copied, want) {
		t.Fatalf("%s differs from %s: cp %[2]s %[1]s", filepath.Join(chartDir, "files", "monitoring", "warden-alerts.yaml"), alertsFile)
	}
	var file map[string]any
	if err := yaml.Unmarshal(want, &file); err != nil {
		t.Fatal(err)
	}

	m := modes[slices.IndexFunc(modes, func(m mode) bool { return m.name == "all" })]
	r := mustRender(t, m)
	pr := r.find("PrometheusRule", "warden")
	if pr == nil {
		t.Fatal("no PrometheusRule/warden in the all mode")
	}
	if pr.GetAPIVersion() != "monitoring.coreos.com/v1" || pr.GetNamespace() != m.namespace {
		t.Errorf("PrometheusRule %s in %q", pr.GetAPIVersion(), pr.GetNamespace())
	}
	if got := pr.GetLabels()["release"]; got != "kube-prometheus-stack" {
		t.Errorf("label release = %q, want the values' kube-prometheus-stack", got)
	}
	spec, _ := pr.Object["spec"].(map[string]any)
	// Compare through JSON, as the API server sees both.
	norm := func(v any) any {
		b, err := yaml.Marshal(v)
		if err != nil {
			t.Fatal(err)
		}
		var out any
		if err := yaml.Unmarshal(b, &out); err != nil {
			t.Fatal(err)
		}
		return out
	}
	if !reflect.DeepEqual(norm(spec), norm(file)) {
		t.Errorf("the PrometheusRule's spec is not %s:\n%v", alertsFile, spec)
	}
	alerts := map[string]string{}
	groups, _ := spec["groups"].([]any)
	for _, g := range groups {
		for _, rule := range g.(map[string]any)["rules"].([]any) {
			rm := rule.(map[string]any)
			if a, ok := rm["alert"].(string); ok {
				ann, _ := rm["annotations"].(map[string]any)
				s, _ := ann["summary"].(string)
				alerts[a] = s
			}
		}
	}
	for _, a := range []string{"WardenPolicyBundleExpired", "WardenPolicyBundleUnreachable", "WardenPolicySerialSkew"} {
		if _, ok := alerts[a]; !ok {
			t.Errorf("the PrometheusRule lacks %s (alerts: %v)", a, alerts)
		}
	}
	if s := alerts["WardenPolicyBundleExpired"]; s != "Warden {{ $labels.instance }} runs an expired policy bundle" {
		t.Errorf("WardenPolicyBundleExpired's summary %q: the rule's own template was changed by Helm", s)
	}
}
