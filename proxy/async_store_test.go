package proxy

import (
	"fmt"
	"testing"
)

func TestAsyncOwnersBoundedFirstOwnerWins(t *testing.T) {
	o := asyncOwners{limit: 3}
	o.remember("arn1", "a")
	o.remember("arn1", "b") // a replayed clientRequestToken returns a's ARN to b
	if !o.owns("arn1", "a") || o.owns("arn1", "b") {
		t.Fatal("first owner must win")
	}
	for i := 2; i <= 5; i++ {
		o.remember(fmt.Sprintf("arn%d", i), "a")
	}
	// Capacity 3: arn1 and arn2 are forgotten, and forgotten means denied.
	for i, want := range []bool{false, false, true, true, true} {
		if got := o.owns(fmt.Sprintf("arn%d", i+1), "a"); got != want {
			t.Errorf("arn%d: owns = %v, want %v", i+1, got, want)
		}
	}
	if len(o.owner) != 3 || len(o.order) != 3 {
		t.Errorf("store holds %d/%d entries, want 3", len(o.owner), len(o.order))
	}
}
