package bedrock_test

import (
	"fmt"

	"github.com/warden-egress/warden/bedrock"
)

// An SDK percent-encodes an ARN model id, a hand-written client may not;
// both route to the same operation and model.
func ExampleParseRoute() {
	for _, p := range []string{
		"/model/arn%3Aaws%3Abedrock%3Aus-east-1%3A123456789012%3Aapplication-inference-profile%2Fabc123def456/converse",
		"/model/arn:aws:bedrock:us-east-1:123456789012:application-inference-profile/abc123def456/converse",
	} {
		r, err := bedrock.ParseRoute("POST", p, "")
		fmt.Println(r.Op, r.Model.Kind, r.Model.Canonical, err)
	}
	_, err := bedrock.ParseRoute("POST", "/model/anthropic.claude-v2%252F/invoke", "")
	fmt.Println(err)
	// Output:
	// Converse application-inference-profile arn:aws:bedrock:us-east-1:123456789012:application-inference-profile/abc123def456 <nil>
	// Converse application-inference-profile arn:aws:bedrock:us-east-1:123456789012:application-inference-profile/abc123def456 <nil>
	// ValidationException: request path "/model/anthropic.claude-v2%252F/invoke" is double-encoded (%25)
}

func ExampleParseModelID() {
	m, _ := bedrock.ParseModelID("arn:aws:bedrock:eu-central-1:123456789012:inference-profile/eu.anthropic.claude-3-5-haiku-20241022-v1:0")
	fmt.Println(m.Kind, m.Scope, m.Foundation, m.Canonical)
	// Output:
	// inference-profile eu anthropic.claude-3-5-haiku-20241022-v1:0 eu.anthropic.claude-3-5-haiku-20241022-v1:0
}
