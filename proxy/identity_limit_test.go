package proxy_test

import (
	"errors"
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/aws/smithy-go"
)

// A caller whose identity lookup is over identity.ec2.lookup_limits gets a
// ThrottlingException the SDK understands (and would retry), not an access
// denial, and the refusal is counted on /metrics. Four new callers hold the
// default concurrency (4) with their lookups held in the EC2 emulator; the
// fifth is refused at once, and makes no EC2 call.
func TestEC2LookupLimitIsThrottling(t *testing.T) {
	e := startEC2Env(t, "127.0.0.0/8", "")
	release := e.ec2.Hold()
	defer release()

	var wg sync.WaitGroup
	errs := make([]error, 4)
	for i := range errs {
		wg.Add(1)
		go func() {
			defer wg.Done()
			errs[i] = ec2Converse(e.client(t, fromAddr(fmt.Sprintf("127.0.0.%d", 11+i))))
		}()
	}
	for i := 0; len(e.ec2.Calls()) < 4; i++ {
		if i == 2000 {
			t.Fatalf("%d lookups in flight, want 4", len(e.ec2.Calls()))
		}
		time.Sleep(5 * time.Millisecond)
	}
	err := ec2Converse(e.client(t, fromAddr("127.0.0.20")))
	var ae smithy.APIError
	if !errors.As(err, &ae) || ae.ErrorCode() != "ThrottlingException" || !strings.Contains(ae.ErrorMessage(), "ec2 identity lookups are limited (concurrency limit, client 127.0.0.20)") {
		t.Fatalf("fifth new caller: %v, want ThrottlingException naming the limit", err)
	}
	if n := len(e.ec2.Calls()); n != 4 {
		t.Fatalf("%d EC2 calls, want 4: the refused lookup was made", n)
	}
	release()
	wg.Wait()
	for _, err := range errs {
		ec2WantDenied(t, err, "") // no ENI holds 127.0.0.1x: no identity, no app
	}
	if m := scrape(t, e.srv); !strings.Contains(m, `warden_identity_lookups_limited_total{source="ec2"} 1`) {
		t.Errorf("/metrics lacks the refused lookup:\n%s", m)
	}
}
