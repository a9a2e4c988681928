package policy

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	"testing"

	"github.com/warden-egress/warden/bedrock"
)

func TestAsyncOwnersBoundedFirstOwnerWins(t *testing.T) {
	ctx := context.Background()
	o := AsyncJobs{limit: 3}
	o.Remember(ctx, "arn1", "a")
	o.Remember(ctx, "arn1", "b") // a replayed clientRequestToken returns a's ARN to b
	if !o.Owns("arn1", "a") || o.Owns("arn1", "b") {
		t.Fatal("first owner must win")
	}
	for i := 2; i <= 5; i++ {
		o.Remember(ctx, fmt.Sprintf("arn%d", i), "a")
	}
	// Capacity 3: arn1 and arn2 are forgotten, and forgotten means denied.
	for i, want := range []bool{false, false, true, true, true} {
		if got := o.Owns(fmt.Sprintf("arn%d", i+1), "a"); got != want {
			t.Errorf("arn%d: owns = %v, want %v", i+1, got, want)
		}
	}
	if len(o.owner) != 3 || len(o.order) != 3 {
		t.Errorf("store holds %d/%d entries, want 3", len(o.owner), len(o.order))
	}
}

func TestCheckAsyncOwner(t *testing.T) {
	ctx := context.Background()
	jobs := NewAsyncJobs(0)
	jobs.Remember(ctx, "arn:job/1", "a")
	allow := Decision{Allow: true, App: "a", Rule: "apps[0]"}
	for _, tc := range []struct {
		name string
		d    Decision
		op   bedrock.Operation
		arn  string
		deny bool
	}{
		{"own job", allow, bedrock.OpGetAsyncInvoke, "arn:job/1", false},
		{"another app's job", Decision{Allow: true, App: "b"}, bedrock.OpGetAsyncInvoke, "arn:job/1", true},
		{"unknown job", allow, bedrock.OpGetAsyncInvoke, "arn:job/2", true},
		{"not a Get", allow, bedrock.OpListAsyncInvokes, "", false},
		{"already denied stays as decided", Decision{App: "b", Rule: "apps[1].allow.models"}, bedrock.OpGetAsyncInvoke, "arn:job/1", false},
	} {
		got := CheckAsyncOwner(ctx, jobs, tc.d, tc.op, tc.arn)
		if tc.deny != (got.Rule == "async-ownership") || (tc.deny && (got.Allow || !strings.Contains(got.Reason, tc.arn))) {
			t.Errorf("%s: %+v", tc.name, got)
		}
		if !tc.deny && got != tc.d {
			t.Errorf("%s: changed %+v to %+v", tc.name, tc.d, got)
		}
	}
}

func TestDecisionCheckBody(t *testing.T) {
	d := Decision{Allow: true, App: "a", MaxBodyBytes: 10}
	if rule, err := d.CheckBody(10); rule != "" || err != nil {
		t.Fatalf("at the limit: %q %v", rule, err)
	}
	rule, err := d.CheckBody(11)
	var ae *bedrock.APIError
	if rule != "app.limits.max_body_bytes" || !errors.As(err, &ae) || ae.Status != 400 || !strings.Contains(ae.Message, "app a") {
		t.Fatalf("over the limit: %q %v", rule, err)
	}
	d.Allow, d.DryRun = false, true // a limit holds in dry-run too
	if _, err := d.CheckBody(11); err == nil {
		t.Fatal("dry-run lifted the app's body limit")
	}
	if _, err := (Decision{App: "a"}).CheckBody(1 << 30); err != nil {
		t.Fatalf("no app limit: %v", err)
	}
}

type failingJobs struct{}

func (failingJobs) Remember(context.Context, string, string) error { return errors.New("down") }
func (failingJobs) Owners(context.Context, []string) ([]string, error) {
	return nil, errors.New("down")
}

// A job store that cannot answer denies GetAsyncInvoke: fail closed.
func TestCheckAsyncOwnerStoreDown(t *testing.T) {
	d := CheckAsyncOwner(context.Background(), failingJobs{}, Decision{Allow: true, App: "a"}, bedrock.OpGetAsyncInvoke, "arn:job/1")
	if d.Allow || d.Rule != "async-ownership" || !strings.Contains(d.Reason, "could not be checked") {
		t.Fatalf("store down: %+v", d)
	}
}

// A listing shows an app only the entries it started; an entry without a
// key or with an unknown owner is hidden, and a store that cannot answer
// hides the listing.
func TestVisible(t *testing.T) {
	jobs := NewAsyncJobs(0)
	ctx := context.Background()
	for arn, app := range map[string]string{"arn:job/a1": "a", "arn:job/a2": "a", "arn:job/b1": "b"} {
		if err := jobs.Remember(ctx, arn, app); err != nil {
			t.Fatal(err)
		}
	}
	keys := []string{"arn:job/a1", "arn:job/b1", "", "arn:job/unknown", "arn:job/a2"}
	for _, tc := range []struct {
		app  string
		want []bool
	}{
		{"a", []bool{true, false, false, false, true}},
		{"b", []bool{false, true, false, false, false}},
		{"c", []bool{false, false, false, false, false}},
		{"", []bool{false, false, false, false, false}}, // no app: nothing, not the unknown-owner entries
	} {
		got, err := Visible(ctx, jobs, tc.app, keys)
		if err != nil || !slices.Equal(got, tc.want) {
			t.Errorf("Visible(%q) = %v, %v; want %v", tc.app, got, err, tc.want)
		}
	}
	if got, err := Visible(ctx, failingJobs{}, "a", keys); err == nil || got != nil {
		t.Errorf("store down: %v, %v; want an error", got, err)
	}
}
