package bedrock

import "regexp"

// Bedrock's guardrailIdentifier and guardrailVersion patterns.
var (
	guardrailIDRe      = regexp.MustCompile(`^(([a-z0-9]+)|(arn:aws(-[^:]+)?:bedrock:[a-z0-9-]{1,20}:[0-9]{12}:guardrail/[a-z0-9]+))$`)
	guardrailVersionRe = regexp.MustCompile(`^(([1-9][0-9]{0,7})|(DRAFT))$`)
)

// ValidGuardrailID reports whether s is a guardrailIdentifier Bedrock
// accepts: a guardrail id or a guardrail ARN.
func ValidGuardrailID(s string) bool { return len(s) <= 2048 && guardrailIDRe.MatchString(s) }

// ValidGuardrailVersion reports whether s is a guardrailVersion: a version
// number or DRAFT.
func ValidGuardrailVersion(s string) bool { return guardrailVersionRe.MatchString(s) }
